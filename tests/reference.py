"""What the engine tests share: one NumPy reference of word2vec's update and one Huffman helper.

:func:`reference_train` replays :mod:`torchw2v.objective` one center, one target at a time,
in the dtype of the arrays it is given (float64 for the torch and Triton engines, float32 to
follow the compiled op's arithmetic). Each engine's test supplies what that engine drew
(:class:`Draws`: kept words, windows, negatives) and how it batches: ``group`` consecutive
centers are computed from the vectors as they were before the group, then added (1:
word2vec.c's sequential order, the compiled op; the torch engine's batch; the Triton
kernel's centers per program).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors
from gensim.models.word2vec import _assign_binary_codes

from torchw2v.engines.base import EngineConfig, SamplingTables
from torchw2v.objective import MAX_EXP
from torchw2v.vocab import huffman_paths

KEEP_ALL = 2**32
"""A subsampling threshold above every uint32 draw: the word is always kept."""
Weights = dict[str, np.ndarray]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Imported into a test module, runs it on one thread: its tensors are tiny, and extra
    threads only spin, and crawl on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------
# Huffman paths and tables
# ----------------------------------------------------------------------------------------


def gensim_paths(wv: KeyedVectors) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """gensim's per-word Huffman ``point`` and ``code`` of ``wv``, padded as SamplingTables
    holds them: points ``(V, L)`` int64, codes ``(V, L)`` uint8, lengths ``(V,)`` int64."""
    codes = [np.asarray(wv.get_vecattr(i, "code"), np.uint8) for i in range(len(wv))]
    points = [np.asarray(wv.get_vecattr(i, "point"), np.int64) for i in range(len(wv))]
    return tuple(torch.from_numpy(a) for a in huffman_paths(codes, points))


def huffman_tables(counts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """gensim's Huffman tree over words with these counts (see :func:`gensim_paths`)."""
    wv = KeyedVectors(1)
    wv.add_vectors([str(i) for i in range(len(counts))], np.zeros((len(counts), 1)))
    for i, count in enumerate(counts):
        wv.set_vecattr(i, "count", int(count))
    _assign_binary_codes(wv)
    return gensim_paths(wv)


def unigram_cum_table(counts: np.ndarray, power: float = 0.75) -> torch.Tensor:
    """gensim's cumulative unigram^power table over a domain of 2**31 - 1."""
    p = counts.astype(np.float64) ** power
    return torch.from_numpy(np.round(np.cumsum(p) / p.sum() * (2**31 - 1)).astype(np.int64))


def make_tables(counts: np.ndarray, sample_int: np.ndarray | None = None) -> SamplingTables:
    """gensim-style tables for word counts, Huffman paths included; keep-all subsampling
    unless ``sample_int`` is given."""
    if sample_int is None:
        sample_int = np.full(len(counts), KEEP_ALL, dtype=np.int64)
    return SamplingTables(
        torch.from_numpy(np.asarray(sample_int, dtype=np.int64)),
        unigram_cum_table(counts),
        *huffman_tables(counts),
    )


# ----------------------------------------------------------------------------------------
# the reference update
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draws:
    """A chunk as an engine drew it: the kept words and each one's window and negatives.

    ``words``, ``starts``, ``ends`` and ``reach`` are ``(M,)``: kept position ``i`` lies in
    the kept sentence ``[starts[i], ends[i])`` and sees ``reach[i]`` positions either side;
    ``negatives`` is ``(M, K)``.
    """

    words: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    reach: np.ndarray
    negatives: np.ndarray


def full_windows(ids: np.ndarray, offsets: np.ndarray, window: int, negatives: np.ndarray) -> Draws:
    """The draws of a chunk where every word is kept and every window is full."""
    lengths = np.diff(offsets)
    starts, ends = np.repeat(offsets[:-1], lengths), np.repeat(offsets[1:], lengths)
    return Draws(ids, starts, ends, np.full(len(ids), window), negatives)


def saturated_sigmoid(f: np.ndarray) -> np.ndarray:
    """word2vec.c's saturation at +-MAX_EXP, the exact sigmoid between (in ``f``'s dtype)."""
    one, zero = f.dtype.type(1), f.dtype.type(0)
    exact = one / (one + np.exp(-f.clip(-30, 30)))
    return np.where(f >= MAX_EXP, one, np.where(f <= -MAX_EXP, zero, exact))


def _outputs(word: int, negs: np.ndarray, cfg: EngineConfig, huffman, dtype) -> list:
    """What a center word predicts: ``(table, rows, labels, skip_saturated)`` per loss,
    hierarchical softmax first."""
    layers = []
    if cfg.hs:
        points, codes, lengths = huffman
        n = int(lengths[word])
        labels = (1 - np.asarray(codes[word, :n])).astype(dtype)
        layers.append(("syn1", np.asarray(points[word, :n]), labels, True))
    if cfg.negative:
        rows = np.array([word] + [n for n in negs if n != word])  # a negative == center: skipped
        layers.append(("syn1neg", rows, (np.arange(len(rows)) == 0).astype(dtype), False))
    return layers


def _train_center(old, new, cfg, huffman, context, word, negs, alpha, sigmoid) -> float:
    """One center word, every prediction from ``old``, the updates added to ``new``."""
    dtype = new["syn0"].dtype.type
    x = old["syn0"][context]  # (C, d)
    inputs = x
    if not cfg.sg:  # neu1: the mean or the sum of the contexts
        inputs = x.sum(axis=0, keepdims=True)  # (1, d)
        if cfg.cbow_mean:
            inputs = inputs * (dtype(1) / dtype(len(context)))
    dx, loss = np.zeros_like(inputs), 0.0  # (C or 1, d)
    for table, rows, labels, skip_saturated in _outputs(word, negs, cfg, huffman, dtype):
        o = old[table][rows]  # (T, d)
        f = inputs @ o.T  # (C or 1, T)
        g = (labels - sigmoid(f)) * dtype(alpha)
        if skip_saturated:  # hierarchical softmax: no update beyond +-MAX_EXP
            g[(f <= -MAX_EXP) | (f >= MAX_EXP)] = 0
        z = np.where(labels > 0, f, -f).astype(np.float64)
        loss += float((np.maximum(-z, 0) + np.log1p(np.exp(-np.abs(z)))).sum())
        dx += g @ o
        np.add.at(new[table], rows, g.T @ inputs)
    if not cfg.sg:  # every context takes neu1's whole error (mean) or its share (sum)
        share = dtype(1) if cfg.cbow_mean else dtype(1) / dtype(len(context))
        dx = np.repeat(dx * share, len(context), axis=0)
    np.add.at(new["syn0"], context, dx)
    return loss


def reference_train(
    weights: Weights,
    draws: Draws,
    cfg: EngineConfig,
    huffman: tuple | None,
    alphas: np.ndarray,
    group: int = 1,
    sigmoid: Callable[[np.ndarray], np.ndarray] = saturated_sigmoid,
    contexts_in_order: bool = False,
) -> tuple[float, int]:
    """Train the drawn chunk on ``weights`` (``syn0``, ``syn1neg``, ``syn1``), in place.

    ``alphas`` is the ``(M,)`` learning rate of each center; ``huffman`` is ``(points,
    codes, lengths)`` with ``cfg.hs``. Centers go in groups of ``group`` consecutive
    positions, each group's updates computed from the vectors before it; with
    ``contexts_in_order`` (skip-gram, ``group=1``), each context of a center from the
    vectors its previous contexts left, as gensim. Returns the summed loss and the number of
    predictions (skip-gram pairs; CBOW centers with a context).
    """
    m = len(draws.words)
    loss, pairs = 0.0, 0
    for first in range(0, m, group):
        old = {name: w.copy() for name, w in weights.items()}
        for i in range(first, min(first + group, m)):
            lo = max(draws.starts[i], i - draws.reach[i])
            hi = min(draws.ends[i], i + draws.reach[i] + 1)
            context = draws.words[[j for j in range(lo, hi) if j != i]]  # (C,)
            if not len(context):
                continue
            word, negs = int(draws.words[i]), draws.negatives[i]
            in_order = contexts_in_order and cfg.sg
            for step in np.split(context, len(context)) if in_order else [context]:
                if in_order:  # this context from the vectors the previous one left
                    old = {name: w.copy() for name, w in weights.items()}
                loss += _train_center(
                    old, weights, cfg, huffman, step, word, negs, alphas[i], sigmoid
                )
            pairs += len(context) if cfg.sg else 1
    return loss, pairs
