"""The vectorised torch engine: word2vec's SGNS update in large batches, on any device.

Each batch takes ``B`` center positions of the (subsampled) chunk. Like gensim, the input
vector of every context word predicts the center word (label 1) and ``K`` negatives
(label 0); the negatives are drawn once per center and shared by all its contexts (Ji et
al., 2016), which turns the dot products into one small matrix product per center. The
gradients are those of the SGNS loss, applied by hand with ``index_add_``: no autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ChunkStats, EngineConfig, SamplingTables

UINT32_RANGE = 2**32
# Updates within a batch are computed from the same (stale) vectors and summed. A frequent
# word occurs many times per batch, so a large batch overshoots where sequential SGD would
# saturate: on wiki1m, 4096 centers diverge at alpha=0.025 and 1024 match gensim's quality.
BATCH_CENTERS = 1024


class TorchEngine:
    """SGNS with vectorised torch ops; the reference engine and the GPU path.

    Parameters
    ----------
    syn0, syn1neg : torch.Tensor
        ``(V, d)`` float32 input and output vectors, updated in place.
    tables : SamplingTables
        Subsampling thresholds and negative-sampling table, on the same device.
    config : EngineConfig
        Window, negatives, seed.
    batch_centers : int
        Center words per update (see ``BATCH_CENTERS``).
    """

    def __init__(
        self,
        syn0: torch.Tensor,
        syn1neg: torch.Tensor,
        tables: SamplingTables,
        config: EngineConfig,
        batch_centers: int = BATCH_CENTERS,
    ):
        self.syn0, self.syn1neg, self.tables, self.config = syn0, syn1neg, tables, config
        device = syn0.device
        self.batch_centers = batch_centers
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.seed)
        w = config.window
        self.window_offsets = torch.cat([torch.arange(-w, 0), torch.arange(1, w + 1)]).to(device)
        labels = torch.zeros(config.negative + 1, device=device)
        labels[0] = 1.0
        self.labels = labels  # (K+1,): the center word, then the negatives
        self.table_end = int(tables.cum_table[-1])

    @torch.no_grad()
    def train_chunk(
        self, ids: torch.Tensor, offsets: torch.Tensor, alpha_start: float, alpha_end: float
    ) -> ChunkStats:
        words, starts, ends = self._subsample(ids, offsets)
        n = words.numel()
        totals = torch.zeros(2, dtype=torch.float64, device=words.device)  # pairs, loss
        for lo in range(0, n, self.batch_centers):
            alpha = alpha_start + (alpha_end - alpha_start) * lo / n
            centers = torch.arange(lo, min(lo + self.batch_centers, n), device=words.device)
            totals += self._train_centers(words, starts, ends, centers, alpha)
        pairs, loss = totals.tolist()
        return ChunkStats(words=n, loss=loss, pairs=int(pairs))

    def _subsample(
        self, ids: torch.Tensor, offsets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Drop frequent words; return kept ids and the bounds of each one's sentence.

        Windows then run over the kept words only, as in gensim and word2vec.c.
        """
        device = self.syn0.device
        ids = ids.to(device, torch.int64)
        offsets = offsets.to(device)
        r = torch.randint(UINT32_RANGE, ids.shape, generator=self.generator, device=device)
        keep = r < self.tables.sample_int[ids]  # (N,)
        sentence = torch.repeat_interleave(
            torch.arange(len(offsets) - 1, device=device), offsets.diff()
        )[keep]  # (M,)
        kept_offsets = F.pad(torch.bincount(sentence, minlength=len(offsets) - 1).cumsum(0), (1, 0))
        return ids[keep], kept_offsets[sentence], kept_offsets[sentence + 1]

    def _train_centers(
        self,
        words: torch.Tensor,
        starts: torch.Tensor,
        ends: torch.Tensor,
        centers: torch.Tensor,
        alpha: float,
    ) -> torch.Tensor:
        """One SGD step for the given center positions and all their contexts.

        Returns the number of pairs trained and their summed loss (0 unless asked for).
        """
        cfg, gen = self.config, self.generator
        b, k = centers.numel(), cfg.negative
        radius = cfg.window
        if cfg.shrink_windows:
            radius = cfg.window - torch.randint(
                cfg.window, (b, 1), generator=gen, device=gen.device
            )
        context = centers[:, None] + self.window_offsets  # (B, 2W) positions
        valid = (
            (self.window_offsets.abs() <= radius)
            & (context >= starts[centers, None])
            & (context < ends[centers, None])
        )  # (B, 2W)
        context_ids = words[torch.where(valid, context, centers[:, None])]  # (B, 2W)
        center_ids = words[centers]  # (B,)

        table = self.tables.cum_table
        draws = torch.randint(self.table_end, (b, k), generator=gen, device=gen.device)
        targets = torch.cat([center_ids[:, None], torch.searchsorted(table, draws)], 1)  # (B, K+1)
        # gensim skips a negative that happens to be the center word itself
        target_ok = targets != center_ids[:, None]
        target_ok[:, 0] = True

        x = self.syn0[context_ids]  # (B, 2W, d)
        o = self.syn1neg[targets]  # (B, K+1, d)
        scores = torch.bmm(x, o.transpose(1, 2))  # (B, 2W, K+1)
        mask = valid[:, :, None] & target_ok[:, None, :]  # (B, 2W, K+1)
        g = (self.labels - torch.sigmoid(scores)) * mask * alpha  # (B, 2W, K+1)

        grad_o = torch.bmm(g.transpose(1, 2), x)  # (B, K+1, d)
        grad_x = torch.bmm(g, o)  # (B, 2W, d)
        self.syn1neg.index_add_(0, targets.flatten(), grad_o.flatten(0, 1))
        self.syn0.index_add_(0, context_ids[valid], grad_x[valid])

        loss = torch.zeros((), device=scores.device)
        if cfg.compute_loss:
            signed = torch.where(self.labels.bool(), scores, -scores)
            loss = -(F.logsigmoid(signed) * mask).sum()
        return torch.stack([valid.sum(), loss]).double()
