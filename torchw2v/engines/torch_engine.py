"""The vectorised torch engine: word2vec's SGD updates in large batches, on any device.

Each batch takes ``B`` center positions of the (subsampled) chunk and their context windows.
The input of a prediction is, in skip-gram, the input vector of each context word (one
prediction per pair) and, in CBOW, the sum or mean of them (one prediction per center). It
predicts the center word through one or both output layers:

- negative sampling: rows of ``syn1neg`` for the center (label 1) and ``K`` negatives
  (label 0), drawn once per center and shared by all its contexts (Ji et al., 2016);
- hierarchical softmax: rows of ``syn1`` for the inner nodes on the center's Huffman path,
  with label ``1 - code``.

Both are the same logistic regression on different rows (:class:`Targets`), computed by one
function, :meth:`TorchEngine._predict`, as a small matrix product per center. The gradients
are applied by hand with ``index_add_``, no autograd; all updates of a batch are computed
from the same vectors and summed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import torch
import torch.nn.functional as F

from . import batches
from .base import (
    ChunkStats,
    EngineConfig,
    SamplingTables,
    check_chunk,
    check_engine,
    chunk_seed,
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


class Targets(NamedTuple):
    """The output rows one batch predicts, ``T`` per center (see the module docstring)."""

    weights: torch.Tensor  # (V, d) syn1neg or syn1, updated in place
    rows: torch.Tensor  # (B, T) int64 rows of weights
    labels: torch.Tensor  # (T,) or (B, 1, T) float: 1 for the true outcome, 0 otherwise
    mask: torch.Tensor  # (B, T) bool: the rows that take part


class TorchEngine:
    """Skip-gram and CBOW, negative sampling and hierarchical softmax, in vectorised torch ops.

    The reference engine and the GPU path.

    Parameters
    ----------
    syn0 : torch.Tensor
        ``(V, d)`` float32 input vectors, updated in place.
    syn1neg : torch.Tensor
        ``(V, d)`` float32 negative-sampling output vectors, updated in place; ``(0, d)``
        when ``config.negative == 0``.
    tables : SamplingTables
        Subsampling thresholds, negative-sampling table and, for hierarchical softmax, the
        Huffman paths, on the same device.
    config : EngineConfig
        Architecture, objectives, window, negatives, seed.
    syn1 : torch.Tensor, optional
        ``(V, d)`` float32 hierarchical-softmax output vectors, updated in place; required
        when ``config.hs``.
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
        syn0: torch.Tensor,
        syn1neg: torch.Tensor,
        tables: SamplingTables,
        config: EngineConfig,
        syn1: torch.Tensor | None = None,
        batch_centers: int | None = None,
    ):
        tables = check_engine(syn0, syn1neg, syn1, tables, config)
        if config.hs:  # int64 rows for indexing
            tables = replace(tables, points=tables.points.long(), lengths=tables.lengths.long())
        self.syn0, self.syn1neg, self.syn1 = syn0, syn1neg, syn1
        self.tables, self.config = tables, config
        device = syn0.device
        self.batch_centers = batch_centers or default_batch_centers(config)
        self.generator = torch.Generator(device=device)
        self.calls = 0
        labels = torch.zeros(config.negative + 1, device=device)
        labels[0] = 1.0
        self.ns_labels = labels  # (K+1,): the center word, then the negatives
        self.table_end = int(tables.cum_table[-1]) if config.negative else 0
        if config.hs:
            self.hs_labels = 1.0 - tables.codes.float()  # (V, L)
            self.path_steps = torch.arange(tables.points.shape[1], device=device)  # (L,)

    @torch.no_grad()
    def train_chunk(
        self, ids: torch.Tensor, offsets: torch.Tensor, alpha_start: float, alpha_end: float
    ) -> ChunkStats:
        offsets = check_chunk(ids, offsets, self.syn0.shape[0])
        self.generator.manual_seed(chunk_seed(self.config.seed, self.calls) % 2**64)
        self.calls += 1
        words, starts, ends = batches.subsample(
            ids, offsets, self.tables.sample_int, self.generator
        )
        n = words.numel()
        if n == 0:
            return ChunkStats()
        window_offsets = self._window_offsets(int((ends - starts).max()))
        batch = self._batch_size(window_offsets.numel())
        totals = torch.zeros(3, dtype=torch.float64, device=words.device)  # pairs, loss, NaNs
        for lo in range(0, n, batch):
            alpha = alpha_start + (alpha_end - alpha_start) * lo / n
            centers = torch.arange(lo, min(lo + batch, n), device=words.device)
            totals += self._train_centers(words, starts, ends, centers, window_offsets, alpha)
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
        words: torch.Tensor,
        starts: torch.Tensor,
        ends: torch.Tensor,
        centers: torch.Tensor,
        window_offsets: torch.Tensor,
        alpha: float,
    ) -> torch.Tensor:
        """One SGD step for the given center positions and all their contexts.

        Returns the number of predictions trained, their summed loss (0 unless asked for) and
        the number of scores that are NaN or infinite (training diverged).
        """
        cfg = self.config
        context_ids, valid = self._contexts(words, starts, ends, centers, window_offsets)
        targets = self._targets(words[centers])
        if cfg.sg:  # each context word predicts the center
            inputs = self.syn0[context_ids]  # (B, 2W, d)
            active = valid  # (B, 2W)
        else:  # the context words together predict the center
            count = valid.sum(1, keepdim=True)[:, :, None]  # (B, 1, 1)
            inputs = (self.syn0[context_ids] * valid[:, :, None]).sum(1, keepdim=True)  # (B, 1, d)
            if cfg.cbow_mean:
                inputs = inputs / count.clamp(min=1)
            active = count[:, :, 0] > 0  # (B, 1)

        grads, losses, nonfinite = zip(*(self._predict(inputs, active, t, alpha) for t in targets))
        grad = sum(grads)  # (B, 2W, d) in skip-gram, (B, 1, d) in CBOW
        if not cfg.sg:  # every context word gets the whole error (its share for a sum)
            if not cfg.cbow_mean:
                grad = grad / count.clamp(min=1)
            grad = grad.expand(-1, context_ids.shape[1], -1)  # (B, 2W, d)
        self.syn0.index_add_(0, context_ids[valid], grad[valid])
        return torch.stack([active.sum(), sum(losses), sum(nonfinite)]).double()

    def _contexts(
        self,
        words: torch.Tensor,
        starts: torch.Tensor,
        ends: torch.Tensor,
        centers: torch.Tensor,
        window_offsets: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
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
            & (context >= starts[centers, None])
            & (context < ends[centers, None])
        )  # (B, 2W)
        return words[torch.where(valid, context, centers[:, None])], valid

    def _targets(self, center_ids: torch.Tensor) -> list[Targets]:
        """The output rows that predict each center word ``(B,)``, per objective."""
        cfg, targets = self.config, []
        if cfg.hs:  # the inner nodes on the center's Huffman path
            rows = self.tables.points[center_ids]  # (B, L)
            labels = self.hs_labels[center_ids][:, None, :]  # (B, 1, L)
            mask = self.path_steps < self.tables.lengths[center_ids, None]  # (B, L)
            targets.append(Targets(self.syn1, rows, labels, mask))
        if cfg.negative:  # the center word, then K negatives
            drawn = batches.negatives(
                center_ids.numel(),
                cfg.negative,
                self.tables.cum_table,
                self.table_end,
                self.generator,
            )  # (B, K)
            rows = torch.cat([center_ids[:, None], drawn], 1)
            # gensim skips a negative that happens to be the center word itself
            mask = rows != center_ids[:, None]  # (B, K+1)
            mask[:, 0] = True
            targets.append(Targets(self.syn1neg, rows, self.ns_labels, mask))
        return targets

    def _predict(
        self, inputs: torch.Tensor, active: torch.Tensor, targets: Targets, alpha: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logistic regression of ``targets`` on ``inputs``: one SGD step on the output rows.

        Parameters
        ----------
        inputs : torch.Tensor
            ``(B, C, d)`` input of each prediction: ``C`` per center.
        active : torch.Tensor
            ``(B, C)`` bool, the predictions that take part.

        Returns
        -------
        (torch.Tensor, torch.Tensor, torch.Tensor)
            The ``(B, C, d)`` update for the inputs, the summed loss (0 unless asked for) and
            the number of scores that are NaN or infinite.
        """
        out = targets.weights[targets.rows]  # (B, T, d)
        scores = torch.bmm(inputs, out.transpose(1, 2))  # (B, C, T)
        mask = active[:, :, None] & targets.mask[:, None, :]  # (B, C, T)
        g = (targets.labels - torch.sigmoid(scores)) * mask * alpha  # (B, C, T)
        nonfinite = (~torch.isfinite(scores)).sum()
        grad_out = torch.bmm(g.transpose(1, 2), inputs)  # (B, T, d)
        targets.weights.index_add_(0, targets.rows.flatten(), grad_out.flatten(0, 1))

        loss = torch.zeros((), device=scores.device)
        if self.config.compute_loss:  # -log sigmoid(f) for label 1, -log sigmoid(-f) for 0
            signed = torch.where(targets.labels.bool(), scores, -scores)
            loss = -(F.logsigmoid(signed) * mask).sum()
        return torch.bmm(g, out), loss, nonfinite


def default_batch_centers(config: EngineConfig) -> int:
    """Centers per batch that train as sequential SGD does for ``config``'s objectives:
    ``BATCH_CENTERS`` for negative sampling, ``HS_BATCH_CENTERS`` with hierarchical softmax,
    ``SG_HS_NS_BATCH_CENTERS`` for skip-gram with both."""
    if not config.hs:
        return BATCH_CENTERS
    return SG_HS_NS_BATCH_CENTERS if config.sg and config.negative else HS_BATCH_CENTERS
