"""The vectorised torch engine: word2vec's SGD updates in large batches, on any device.

Each batch takes ``B`` center positions of the (subsampled) chunk, their context windows
and their negatives (:mod:`.batches`), and applies one step of the objective
(:mod:`torchw2v.objective`: skip-gram or CBOW, negative sampling, hierarchical softmax or
both) to all of them at once, as small matrix products per center. The gradients are
applied by hand with ``index_add_``, no autograd; all updates of a batch are computed from
the same vectors and summed. The negatives are drawn once per center and shared by all its
contexts (Ji et al., 2016).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from .. import objective
from . import batches
from .base import (
    ChunkStats,
    EngineConfig,
    EngineWeights,
    SamplingTables,
    check_engine,
    divergence_error,
)

# Updates within a batch are computed from the same (stale) vectors and summed. A frequent
# word occurs many times per batch, so a large batch overshoots where sequential SGD would
# saturate: on wiki1m, 4096 centers diverge at alpha=0.025 and 1024 match gensim's quality.
BATCH_CENTERS = 1024
# Every Huffman path starts at the root, so the top inner nodes of the tree take an update
# from every center of a batch: skip-gram HS diverges at 1024 centers and alpha=0.025 on
# wiki text, and trains as sequential SGD does at 256.
HS_BATCH_CENTERS = 256
# Skip-gram with both objectives gives each context the hierarchical-softmax and the
# negative-sampling gradient from the same vectors: on wiki text (2,000 lines, d=50, 3 epochs)
# 256 centers collapsed the vectors (months as similar to any frequent word as to each other)
# and 128 trained as 64 and 16 do. CBOW with both trains alike at 256 and 128.
SG_HS_NS_BATCH_CENTERS = 128
# The most floats in one tensor of a batch: with wide windows (up to the longest sentence) or
# many negatives a batch takes fewer centers.
BATCH_FLOATS = 2**24


class TorchEngine:
    """Skip-gram and CBOW, negative sampling and hierarchical softmax, in vectorised torch ops.

    The reference engine and the GPU path. The arguments are the :class:`~.base.Engine`'s,
    on any one device, and:

    Parameters
    ----------
    batch_centers : int, optional
        Center words per update; default :func:`default_batch_centers`.

    Raises
    ------
    ValueError
        Neither objective is on, or a tensor or table an objective needs is missing or of the
        wrong shape.
    """

    def __init__(
        self,
        weights: EngineWeights,
        tables: SamplingTables,
        config: EngineConfig,
        batch_centers: int | None = None,
    ):
        tables = check_engine(weights, tables, config)
        if config.hs:  # int64 rows for indexing
            tables = replace(tables, points=tables.points.long(), lengths=tables.lengths.long())
        self.syn0, self.syn1neg, self.syn1 = weights.syn0, weights.syn1neg, weights.syn1
        self.tables, self.config = tables, config
        device = self.syn0.device
        self.batch_centers = batch_centers or default_batch_centers(config)
        self.generator = torch.Generator(device=device)
        self.table_end = int(tables.cum_table[-1]) if config.negative else 0

    @torch.no_grad()
    def train_chunk(
        self,
        ids: torch.Tensor,
        offsets: torch.Tensor,
        alpha_start: float,
        alpha_end: float,
        first_sentence: int = 0,
    ) -> ChunkStats:
        offsets = batches.start_chunk(
            ids, offsets, self.syn0.shape[0], self.generator, self.config.seed, first_sentence
        )
        kept = batches.subsample(ids, offsets, self.tables.sample_int, self.generator)
        n = kept.words.numel()
        if n == 0:
            return ChunkStats()
        window_offsets = self._window_offsets(int((kept.ends - kept.starts).max()))
        batch = self._batch_size(window_offsets.numel())
        totals = torch.zeros(3, dtype=torch.float64, device=self.syn0.device)  # pairs, loss, NaNs
        for lo in range(0, n, batch):
            alpha = alpha_start + (alpha_end - alpha_start) * lo / n
            centers = torch.arange(lo, min(lo + batch, n), device=self.syn0.device)
            totals += self._train_centers(kept, centers, window_offsets, alpha)
        pairs, loss, nonfinite = totals.tolist()
        if nonfinite:
            raise divergence_error(alpha_start)
        return ChunkStats(words=n, loss=loss, pairs=int(pairs))

    def _window_offsets(self, longest: int) -> torch.Tensor:
        """``(2W,)`` context offsets ``-W..-1, 1..W`` for ``W = window``, or less: a context
        never lies farther than ``longest - 1`` from its center, so a huge window costs no more
        than the longest sentence (``longest``, kept words)."""
        w = max(1, min(self.config.window, longest - 1))
        return torch.cat([torch.arange(-w, 0), torch.arange(1, w + 1)]).to(self.syn0.device)

    def _batch_size(self, contexts: int) -> int:
        """Centers per batch: ``batch_centers``, fewer when one of a batch's tensors, the
        gathered ``(B, contexts or targets, d)`` vectors or the skip-gram ``(B, contexts,
        targets)`` scores, would exceed ``BATCH_FLOATS``."""
        targets = self.config.negative + 1
        if self.config.hs:
            targets += self.tables.points.shape[1]
        scores = contexts * targets if self.config.sg else targets
        per_center = max(max(contexts, targets) * self.syn0.shape[1], scores)
        return max(1, min(self.batch_centers, BATCH_FLOATS // per_center))

    def _train_centers(
        self,
        kept: batches.KeptWords,
        centers: torch.Tensor,
        window_offsets: torch.Tensor,
        alpha: float,
    ) -> torch.Tensor:
        """One SGD step for the given center positions and all their contexts.

        Returns the number of predictions trained, their summed loss (0 unless asked for) and
        the number of scores that are NaN or infinite (training diverged).
        """
        cfg = self.config
        windows = self._windows(kept, centers, window_offsets)
        losses = self._losses(kept.words[centers])
        if cfg.sg:
            return objective.skip_gram_step(self.syn0, windows, losses, alpha, cfg.compute_loss)
        return objective.cbow_step(
            self.syn0, windows, cfg.cbow_mean, losses, alpha, cfg.compute_loss
        )

    def _windows(
        self, kept: batches.KeptWords, centers: torch.Tensor, window_offsets: torch.Tensor
    ) -> objective.Windows:
        """Each center's context words: ids ``(B, 2W)`` (the center where invalid) and validity.

        A context lies within the center's (reduced) window and sentence, the center excluded;
        ``window_offsets`` are the ``2W`` offsets from the center to look at.
        """
        cfg = self.config
        radius = batches.reduced_windows(
            centers.numel(), cfg.window, cfg.shrink_windows, self.generator
        )[:, None]  # (B, 1)
        context = centers[:, None] + window_offsets  # (B, 2W) positions
        valid = (
            (window_offsets.abs() <= radius)
            & (context >= kept.starts[centers, None])
            & (context < kept.ends[centers, None])
        )  # (B, 2W)
        return objective.Windows(kept.words[torch.where(valid, context, centers[:, None])], valid)

    def _losses(self, center_ids: torch.Tensor) -> list[objective.Targets]:
        """The output rows that predict each center word ``(B,)``, per objective (hierarchical
        softmax first, as in gensim)."""
        cfg, tables, losses = self.config, self.tables, []
        if cfg.hs:
            paths = (tables.points, tables.codes, tables.lengths)
            losses.append(objective.hierarchical_softmax(self.syn1, *paths, center_ids))
        if cfg.negative:
            drawn = batches.negatives(
                center_ids.numel(), cfg.negative, tables.cum_table, self.table_end, self.generator
            )  # (B, K)
            losses.append(objective.negative_sampling(self.syn1neg, center_ids, drawn))
        return losses


def default_batch_centers(config: EngineConfig) -> int:
    """Centers per batch that train as sequential SGD does for ``config``'s objectives:
    ``BATCH_CENTERS`` for negative sampling, ``HS_BATCH_CENTERS`` with hierarchical softmax,
    ``SG_HS_NS_BATCH_CENTERS`` for skip-gram with both."""
    if not config.hs:
        return BATCH_CENTERS
    return SG_HS_NS_BATCH_CENTERS if config.sg and config.negative else HS_BATCH_CENTERS
