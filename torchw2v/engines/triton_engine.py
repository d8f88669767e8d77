"""The fused GPU engine: word2vec as Triton kernel launches over a chunk.

It trains every objective of the compiled CPU engine (:mod:`.compiled`): skip-gram or CBOW
(``cbow_mean`` either way) with negative sampling, hierarchical softmax or both. A chunk is
trained in two steps:

1. **Preparation** (:func:`prepare_chunk`, a few torch ops on the device, per chunk): drop
   frequent words (subsampling), compact the kept ids and give each kept position the bounds
   of its sentence among the kept words, draw each center's reduced window and, with negative
   sampling, its ``K`` negatives (``searchsorted`` in the unigram table). Nothing here is per
   pair, and nothing is kept from one chunk to the next.
2. **The kernel** (:func:`_w2v_kernel`, one launch per chunk, or a few, see below): program
   ``p`` trains ``G`` consecutive kept positions as centers. It gathers on chip the ``syn0``
   rows of every position that can be a context of those centers (``ROWS`` = the centers and
   ``window`` positions either side) and, per output table, the rows of every center's
   targets as columns (center, target):

   - negative sampling: in ``syn1neg``, the center word (label 1) and its negatives (label 0),
     ``G * (1 + K)`` columns;
   - hierarchical softmax: in ``syn1``, the inner nodes of the center word's Huffman path
     (label ``1 - code``), ``G * L`` columns for the deepest path ``L``, the columns past a
     word's own path masked.

   It takes all (row, column) dot products as one ``(ROWS, COLS)`` matrix product per table,
   masks the entries whose row is not a context of the column's center, and turns the scores
   into two weight matrices ``A`` and ``B`` of the same shape (:func:`_gradients`):

   - skip-gram: every (context, column) entry is a prediction of its own, and
     ``A = B = (label - sigmoid(score)) * alpha``;
   - CBOW: a column predicts from ``neu1``, the sum (or mean) of its center's contexts, so its
     score ``neu1 . out`` is the weighted sum of its column of scores; its gradient ``g`` moves
     the output row by ``g * neu1`` (``B = g`` times the weights of ``neu1``) and every
     context by ``g * out`` (``A = g``, divided by the number of contexts with the sum, as
     gensim does).

   Then ``syn0[rows] += A @ out[cols]`` and ``out[cols] += B.T @ syn0[rows]``, with
   ``tl.atomic_add``: a word occurring twice in a program gets the sum of its updates, and no
   update is lost when programs touch the same rows at once (Hogwild: rows are read without
   locks, so a program may read a row another program is updating, as word2vec.c's threads
   do).

Semantics are those of the compiled CPU op: gensim's direction (the input side predicts the
center word's output rows), negatives shared by all contexts of a center (Ji et al., 2016), a
negative equal to its center skipped, word2vec.c's sigmoid saturation at +-6 for negative
sampling, a Huffman node with a score beyond +-6 not trained (as word2vec.c and gensim skip
it), the loss summed exactly over every target, windows never crossing a sentence; with both
objectives a center is trained against both lists at once, from the same values (gensim runs
hierarchical softmax first, then negative sampling). The differences: the ``G`` centers of a
program are one mini-batch (their updates are computed from the same values, then summed); the
sigmoid is computed, not looked up in word2vec.c's 1000-entry table; the learning rate decays
linearly over the chunk's kept words, not per sentence; and the random streams are torch's,
not word2vec.c's LCG.

Every Huffman path starts at the root, so every center updates the top nodes of the tree, and
programs running at the same time read those rows before each other's updates land: a
mini-batch as large as the centers in flight. The torch engine measured hierarchical softmax
diverging at batches of 1024 centers and training as sequential SGD does at 256
(:data:`.torch_engine.HS_BATCH_CENTERS`; 128 for skip-gram with negative sampling beside it),
so with hierarchical softmax a chunk is trained in launches of at most that many centers
(:func:`.torch_engine.default_batch_centers`), one after the other.

The random draws come from a ``torch.Generator`` on the device, reseeded for every chunk from
``(config.seed, chunk index)``: a run with a fixed seed draws the same kept words, windows and
negatives every time. The floating-point sums of concurrent atomic adds land in a varying order,
so the vectors themselves agree between such runs only to rounding.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ..objective import MAX_EXP
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
from .torch_engine import default_batch_centers

# Launch defaults, chosen from the compiled kernel's resources (sm_90, Triton 3.9, d=100,
# window 5, K=5), not yet from timings: 5 centers per program fill a 16 x 32 tile (15 context
# rows, 30 target columns) and the kernel takes about 102 registers per thread (skip-gram;
# CBOW 108) with no spills; 21 centers (32 x 128) or 32-component steps need 255 registers
# and spill. With hierarchical softmax and a Huffman depth of 20 to 40, one center per
# program takes 104 to 136 registers, 140 to 182 with negative sampling beside it.
TARGET_COLUMNS = 32
"""About this many (center, target) columns per program: sets the centers per program."""
BLOCK_D = 16
"""Vector components per step of the kernel's loops over the dimension (a power of two)."""
NUM_WARPS = 4
DOT_PRECISION = "ieee"
"""How ``tl.dot`` multiplies float32 on the GPU: ``"ieee"`` is float32 on the ordinary cores;
``"tf32"`` uses tensor cores with 10-bit mantissas (fewer registers, less accurate);
``"tf32x3"`` three TF32 products, about float32's accuracy. The interpreter computes float32
whatever this says."""
MAX_ROWS = 2048
"""The most context rows of a program: its ``(ROWS, BLOCK_D)`` tile of ``syn0`` then takes
128 KiB of shared memory (H100 and H200 have 228 KiB per multiprocessor)."""


@dataclass(frozen=True)
class PreparedChunk:
    """A chunk after subsampling and the random draws: the kernel's inputs.

    Attributes
    ----------
    words : torch.Tensor
        ``(M,)`` int32 ids of the kept words, in corpus order: the centers.
    starts, ends : torch.Tensor
        ``(M,)`` int32: kept position ``i`` belongs to the sentence ``[starts[i], ends[i])``
        of kept positions. Contexts never leave it.
    reach : torch.Tensor
        ``(M,)`` int32 effective window of each center, in ``1..window``.
    negatives : torch.Tensor
        ``(M, K)`` int32 negatives of each center, shared by all of its contexts; ``(M, 0)``
        without negative sampling.
    """

    words: torch.Tensor
    starts: torch.Tensor
    ends: torch.Tensor
    reach: torch.Tensor
    negatives: torch.Tensor


@dataclass(frozen=True)
class LaunchShape:
    """Block sizes of one kernel launch (compile-time constants of the kernel).

    Attributes
    ----------
    centers : int
        ``G``, consecutive centers per program.
    rows : int
        Context rows per program: ``G + 2 * window`` rounded up to a power of two (>= 16).
    ns_cols : int
        Negative-sampling (center, target) columns per program: ``G * (1 + K)`` rounded up to
        a power of two (>= 16); 0 without negative sampling.
    hs_cols : int
        Hierarchical-softmax (center, node) columns per program: ``G * L`` for the deepest
        Huffman path ``L``, rounded up to a power of two (>= 16); 0 without it.
    block_d : int
        Vector components per loop step (a power of two >= 16).
    """

    centers: int
    rows: int
    ns_cols: int
    hs_cols: int
    block_d: int


def launch_shape(
    window: int,
    negative: int,
    dim: int,
    depth: int = 0,
    centers: int | None = None,
    block_d: int = BLOCK_D,
) -> LaunchShape:
    """Choose the kernel's block sizes.

    Parameters
    ----------
    window, negative, dim : int
        The model's window, negatives per center (0: no negative sampling) and vector size.
    depth : int
        Nodes of the deepest Huffman path with hierarchical softmax; 0 without it.
    centers : int, optional
        Centers per program; by default as many as fill ``TARGET_COLUMNS`` columns.
    block_d : int
        Upper bound on the components per loop step (rounded to a power of two >= 16).

    Returns
    -------
    LaunchShape
    """
    ns_targets = negative + 1 if negative > 0 else 0
    targets = max(1, ns_targets + depth)
    g = centers if centers is not None else max(1, TARGET_COLUMNS // targets)
    if g < 1:
        raise ValueError(f"centers per program must be >= 1, got {g}")

    def block(n: int) -> int:  # tl.dot needs every block dimension >= 16
        return max(16, triton.next_power_of_2(n))

    return LaunchShape(
        centers=g,
        rows=block(g + 2 * window),
        ns_cols=block(g * ns_targets) if ns_targets else 0,
        hs_cols=block(g * depth) if depth else 0,
        block_d=max(16, min(triton.next_power_of_2(block_d), triton.next_power_of_2(dim))),
    )


# ------------------------------------------------------------------------------------------
# the kernel
# ------------------------------------------------------------------------------------------


@triton.jit
def _rows(table_ptr, rows, row_mask, d0, D, BLOCK_D: tl.constexpr):
    """Pointers to components ``[d0, d0 + BLOCK_D)`` of ``table[rows]`` and their mask.

    ``rows`` is ``(R,)``; both results are ``(R, BLOCK_D)``. Components past ``D`` (the
    padding up to a power of two) and rows outside ``row_mask`` are masked.
    """
    cols = d0 + tl.arange(0, BLOCK_D)  # (BLOCK_D,)
    ptrs = table_ptr + rows.to(tl.int64)[:, None] * D + cols[None, :]  # (R, BLOCK_D)
    mask = row_mask[:, None] & (cols < D)[None, :]  # (R, BLOCK_D)
    return ptrs, mask


@triton.jit
def _windows(pos, center, col_in, starts_ptr, ends_ptr, reach_ptr):
    """Which (row, column) entries are (context, center) pairs of a window.

    ``pos`` is ``(ROWS,)`` kept positions, ``center`` ``(COLS,)`` the center position of
    each column and ``col_in`` ``(COLS,)`` the columns of a center of this program. Returns a
    ``(ROWS, COLS)`` mask: the row is within the center's reduced window, is not the center
    itself, and lies in the center's sentence.
    """
    start = tl.load(starts_ptr + center, mask=col_in, other=0)  # (COLS,)
    end = tl.load(ends_ptr + center, mask=col_in, other=0)  # (COLS,)
    reach = tl.load(reach_ptr + center, mask=col_in, other=0)  # (COLS,)
    dist = pos[:, None] - center[None, :]  # (ROWS, COLS)
    in_window = (dist != 0) & (dist <= reach[None, :]) & (-dist <= reach[None, :])
    in_sentence = (pos[:, None] >= start[None, :]) & (pos[:, None] < end[None, :])
    return in_window & in_sentence & col_in[None, :]


@triton.jit
def _ns_columns(
    words_ptr,
    negatives_ptr,
    first,
    M,
    T: tl.constexpr,
    CENTERS: tl.constexpr,
    COLS: tl.constexpr,
):
    """Negative-sampling columns: column ``g * T + t`` is center ``first + g``'s target ``t``.

    Target 0 is the center word (label 1), targets ``1..T-1`` its negatives (label 0). Returns,
    each ``(COLS,)``: the center's position, whether it is a center of this program, the
    ``syn1neg`` row, the label, whether the column is trained (a negative equal to its center
    word is not, as in gensim) and whether it is its center's first column.
    """
    col = tl.arange(0, COLS)
    g = col // T
    t = col % T
    center = first + g  # (COLS,)
    col_in = (g < CENTERS) & (center < M)
    center_words = tl.load(words_ptr + center, mask=col_in, other=0)  # (COLS,)
    neg_ptrs = negatives_ptr + center.to(tl.int64) * (T - 1) + (t - 1)
    negs = tl.load(neg_ptrs, mask=col_in & (t > 0), other=0)  # (COLS,)
    targets = tl.where(t == 0, center_words, negs)
    ok = col_in & ((t == 0) | (negs != center_words))
    return center, col_in, targets, (t == 0).to(tl.float32), ok, t == 0


@triton.jit
def _hs_columns(
    words_ptr,
    points_ptr,
    codes_ptr,
    lengths_ptr,
    first,
    M,
    L: tl.constexpr,
    CENTERS: tl.constexpr,
    COLS: tl.constexpr,
):
    """Hierarchical-softmax columns: column ``g * L + l`` is node ``l`` of the Huffman path of
    center ``first + g``'s word.

    Returns, each ``(COLS,)``: the center's position, whether it is a center of this program,
    the ``syn1`` row (the node), the label ``1 - code``, whether the column is trained (``l``
    is on the word's path) and whether it is its center's first column.
    """
    col = tl.arange(0, COLS)
    g = col // L
    node = col % L
    center = first + g  # (COLS,)
    col_in = (g < CENTERS) & (center < M)
    word = tl.load(words_ptr + center, mask=col_in, other=0)  # (COLS,)
    length = tl.load(lengths_ptr + word, mask=col_in, other=0)  # (COLS,)
    ok = col_in & (node < length)
    path = word.to(tl.int64) * L + node  # (COLS,) into the (V, L) path tables
    targets = tl.load(points_ptr + path, mask=ok, other=0)
    code = tl.load(codes_ptr + path, mask=ok, other=0)
    return center, col_in, targets, 1.0 - code.to(tl.float32), ok, node == 0


@triton.jit
def _sigmoid_gradient(
    scores, label, alpha, live, SKIP_SATURATED: tl.constexpr, MAX_EXP: tl.constexpr
):
    """``(label - sigmoid(score)) * alpha`` where ``live``, 0 elsewhere (broadcast shapes).

    The sigmoid saturates to 1 at ``MAX_EXP`` and to 0 at ``-MAX_EXP``, as in word2vec.c; with
    ``SKIP_SATURATED`` (hierarchical softmax) a score beyond them gets no gradient at all.
    """
    sig = tl.sigmoid(tl.minimum(tl.maximum(scores, -MAX_EXP), MAX_EXP))
    sig = tl.where(scores >= MAX_EXP, 1.0, tl.where(scores <= -MAX_EXP, 0.0, sig))
    if SKIP_SATURATED:
        live = live & (scores > -MAX_EXP) & (scores < MAX_EXP)
    return tl.where(live, (label - sig) * alpha, 0.0)


@triton.jit
def _softplus(scores, label, live):
    """``-log sigmoid(score)`` (label 1) or ``-log sigmoid(-score)`` (label 0) where ``live``."""
    z = tl.where(label > 0, scores, -scores)
    return tl.where(live, tl.maximum(-z, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(z))), 0.0)


@triton.jit
def _gradients(
    scores,
    label,
    alpha,
    win,
    ok,
    SG: tl.constexpr,
    CBOW_MEAN: tl.constexpr,
    SKIP_SATURATED: tl.constexpr,
    COMPUTE_LOSS: tl.constexpr,
    MAX_EXP: tl.constexpr,
):
    """One output table's update weights from its scores.

    ``scores`` and ``win`` (the (context, center) pairs) are ``(ROWS, COLS)``; ``label``,
    ``alpha`` and ``ok`` (the trained columns) ``(COLS,)``. Returns ``(A, B, loss)``: the
    update is ``syn0[rows] += A @ out[cols]`` and ``out[cols] += B.T @ syn0[rows]``, both
    ``(ROWS, COLS)`` (see the module docstring); ``loss`` is 0.0 unless ``COMPUTE_LOSS``.
    """
    pair = win & ok[None, :]  # (ROWS, COLS)
    if SG:
        a = _sigmoid_gradient(scores, label[None, :], alpha[None, :], pair, SKIP_SATURATED, MAX_EXP)
        b = a
        if COMPUTE_LOSS:
            loss = tl.sum(tl.sum(_softplus(scores, label[None, :], pair), axis=1), axis=0)
        else:
            loss = 0.0
    else:
        contexts = tl.sum(win.to(tl.float32), axis=0)  # (COLS,) of each column's center
        ones = pair.to(tl.float32)
        shares = tl.where(pair, 1.0 / tl.maximum(contexts, 1.0)[None, :], 0.0)
        # neu1 = the mean (or sum) of the contexts; each context takes the whole error
        # (or its share of it)
        if CBOW_MEAN:
            to_neu1 = shares
            to_context = ones
        else:
            to_neu1 = ones
            to_context = shares
        score = tl.sum(scores * to_neu1, axis=0)  # (COLS,) neu1 . out
        live = ok & (contexts > 0)
        g = _sigmoid_gradient(score, label, alpha, live, SKIP_SATURATED, MAX_EXP)  # (COLS,)
        a = to_context * g[None, :]
        b = to_neu1 * g[None, :]
        if COMPUTE_LOSS:
            loss = tl.sum(_softplus(score, label, live), axis=0)
        else:
            loss = 0.0
    return a, b, loss


@triton.jit
def _scores(
    acc, x, table_ptr, targets, used, d0, D, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr
):
    """``acc + x @ table[targets].T`` over components ``[d0, d0 + BLOCK_D)``: ``(ROWS, COLS)``."""
    o_ptrs, o_mask = _rows(table_ptr, targets, used, d0, D, BLOCK_D)
    o = tl.load(o_ptrs, mask=o_mask, other=0.0)  # (COLS, BLOCK_D)
    return tl.dot(x, tl.trans(o), acc, input_precision=PRECISION)


@triton.jit
def _update(
    dx, x, table_ptr, targets, used, a, b, d0, D, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr
):
    """Add ``b.T @ x`` to components ``[d0, d0 + BLOCK_D)`` of ``table[targets]``, from the
    values before; return ``dx + a @ table[targets]``, the contexts' share, ``(ROWS, BLOCK_D)``."""
    o_ptrs, o_mask = _rows(table_ptr, targets, used, d0, D, BLOCK_D)
    o = tl.load(o_ptrs, mask=o_mask, other=0.0)  # (COLS, BLOCK_D)
    do = tl.dot(tl.trans(b), x, input_precision=PRECISION)  # (COLS, BLOCK_D)
    # both products before the add: taking a @ o after it costs ~35 registers more (sm_90)
    dx = tl.dot(a, o, dx, input_precision=PRECISION)
    tl.atomic_add(o_ptrs, do, mask=o_mask, sem="relaxed")
    return dx


@triton.jit
def _nonfinite(scores):
    """How many of the ``(ROWS, COLS)`` ``scores`` are NaN or infinite (training diverged)."""
    finite = tl.abs(scores) <= 3.4028234663852886e38  # float32's largest; false for NaN
    return tl.sum(tl.sum(tl.where(finite, 0.0, 1.0), axis=1), axis=0)


@triton.jit
def _predictions(win, lead, SG: tl.constexpr):
    """Predictions trained: (context, center) pairs in skip-gram, centers with a context in
    CBOW. ``win`` is ``(ROWS, COLS)``, ``lead`` ``(COLS,)`` marks one column per center."""
    contexts = tl.sum(tl.where(win & lead[None, :], 1.0, 0.0), axis=0)  # (COLS,)
    if SG:
        count = tl.sum(contexts, axis=0)
    else:
        count = tl.sum(tl.where(contexts > 0, 1.0, 0.0), axis=0)
    return count


@triton.jit
def _w2v_kernel(
    syn0_ptr,  # (V, D) float32, input vectors, updated in place
    syn1neg_ptr,  # (V, D) float32, negative-sampling output vectors (None without NS)
    syn1_ptr,  # (V, D) float32, hierarchical-softmax output vectors (None without HS)
    words_ptr,  # (M,) int32 kept ids
    starts_ptr,  # (M,) int32 sentence start of each kept position
    ends_ptr,  # (M,) int32 sentence end of each kept position
    reach_ptr,  # (M,) int32 reduced window of each center
    negatives_ptr,  # (M, NS_T - 1) int32 negatives of each center (None without NS)
    points_ptr,  # (V, HS_T) int32 Huffman path nodes of each word (None without HS)
    codes_ptr,  # (V, HS_T) uint8 their codes (None without HS)
    lengths_ptr,  # (V,) int32 path lengths (None without HS)
    partials_ptr,  # (P, 3) float32 out: each program's loss, predictions, NaN/inf scores
    base,  # kept position of this launch's first center
    M,
    D,
    window,
    alpha_start,  # learning rate at kept position 0 ...
    alpha_step,  # ... and its change per kept position
    SG: tl.constexpr,  # skip-gram, else CBOW
    CBOW_MEAN: tl.constexpr,
    NS_T: tl.constexpr,  # negative-sampling targets per center, 1 + K; 0 without
    HS_T: tl.constexpr,  # Huffman nodes per center, the deepest path L; 0 without
    CENTERS: tl.constexpr,
    ROWS: tl.constexpr,
    NS_COLS: tl.constexpr,
    HS_COLS: tl.constexpr,
    BLOCK_D: tl.constexpr,
    COMPUTE_LOSS: tl.constexpr,
    MAX_EXP: tl.constexpr,
    DOT_PRECISION: tl.constexpr,  # "ieee", "tf32x3" or "tf32"
):
    pid = tl.program_id(0)
    first = base + pid * CENTERS
    # rows: the kept positions that can be contexts of this program's centers
    pos = first - window + tl.arange(0, ROWS)  # (ROWS,)
    row_in = (pos >= 0) & (pos < M)
    row_words = tl.load(words_ptr + pos, mask=row_in, other=0)  # (ROWS,)

    # columns of each output table, and which (row, column) entries are window pairs
    if NS_T > 0:
        ns_center, ns_in, ns_targets, ns_label, ns_ok, ns_lead = _ns_columns(
            words_ptr, negatives_ptr, first, M, NS_T, CENTERS, NS_COLS
        )
        ns_win = _windows(pos, ns_center, ns_in, starts_ptr, ends_ptr, reach_ptr)
        ns_used = tl.max((ns_win & ns_ok[None, :]).to(tl.int32), axis=0) > 0  # (NS_COLS,)
        lead, lead_win = ns_lead, ns_win
    if HS_T > 0:
        hs_center, hs_in, hs_targets, hs_label, hs_ok, hs_lead = _hs_columns(
            words_ptr, points_ptr, codes_ptr, lengths_ptr, first, M, HS_T, CENTERS, HS_COLS
        )
        hs_win = _windows(pos, hs_center, hs_in, starts_ptr, ends_ptr, reach_ptr)
        hs_used = tl.max((hs_win & hs_ok[None, :]).to(tl.int32), axis=0) > 0  # (HS_COLS,)
        if NS_T == 0:
            lead, lead_win = hs_lead, hs_win
    row_used = tl.max(lead_win.to(tl.int32), axis=1) > 0  # (ROWS,) contexts of some center

    # scores = syn0[rows] @ out[targets].T per table, over the vector in steps of BLOCK_D
    if NS_T > 0:
        ns_scores = tl.zeros((ROWS, NS_COLS), dtype=tl.float32)
    if HS_T > 0:
        hs_scores = tl.zeros((ROWS, HS_COLS), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        x_ptrs, x_mask = _rows(syn0_ptr, row_words, row_used, d0, D, BLOCK_D)
        x = tl.load(x_ptrs, mask=x_mask, other=0.0)  # (ROWS, BLOCK_D)
        if NS_T > 0:
            ns_scores = _scores(
                ns_scores, x, syn1neg_ptr, ns_targets, ns_used, d0, D, BLOCK_D, DOT_PRECISION
            )
        if HS_T > 0:
            hs_scores = _scores(
                hs_scores, x, syn1_ptr, hs_targets, hs_used, d0, D, BLOCK_D, DOT_PRECISION
            )

    loss = 0.0
    nonfinite = 0.0
    if NS_T > 0:
        nonfinite += _nonfinite(ns_scores)
        ns_alpha = alpha_start + ns_center.to(tl.float32) * alpha_step  # (NS_COLS,)
        ns_a, ns_b, ns_loss = _gradients(
            ns_scores,
            ns_label,
            ns_alpha,
            ns_win,
            ns_ok,
            SG,
            CBOW_MEAN,
            SKIP_SATURATED=False,
            COMPUTE_LOSS=COMPUTE_LOSS,
            MAX_EXP=MAX_EXP,
        )
        loss += ns_loss
    if HS_T > 0:
        nonfinite += _nonfinite(hs_scores)
        hs_alpha = alpha_start + hs_center.to(tl.float32) * alpha_step  # (HS_COLS,)
        hs_a, hs_b, hs_loss = _gradients(
            hs_scores,
            hs_label,
            hs_alpha,
            hs_win,
            hs_ok,
            SG,
            CBOW_MEAN,
            SKIP_SATURATED=True,
            COMPUTE_LOSS=COMPUTE_LOSS,
            MAX_EXP=MAX_EXP,
        )
        loss += hs_loss

    # updates, computed from the values the scores came from (each step below reads its
    # components before it adds to them), added atomically
    for d0 in range(0, D, BLOCK_D):
        x_ptrs, x_mask = _rows(syn0_ptr, row_words, row_used, d0, D, BLOCK_D)
        x = tl.load(x_ptrs, mask=x_mask, other=0.0)  # (ROWS, BLOCK_D)
        dx = tl.zeros((ROWS, BLOCK_D), dtype=tl.float32)
        if NS_T > 0:
            dx = _update(
                dx,
                x,
                syn1neg_ptr,
                ns_targets,
                ns_used,
                ns_a,
                ns_b,
                d0,
                D,
                BLOCK_D,
                DOT_PRECISION,
            )
        if HS_T > 0:
            dx = _update(
                dx, x, syn1_ptr, hs_targets, hs_used, hs_a, hs_b, d0, D, BLOCK_D, DOT_PRECISION
            )
        tl.atomic_add(x_ptrs, dx, mask=x_mask, sem="relaxed")

    tl.store(partials_ptr + 3 * pid, loss)
    tl.store(partials_ptr + 3 * pid + 1, _predictions(lead_win, lead, SG))
    tl.store(partials_ptr + 3 * pid + 2, nonfinite)


# ------------------------------------------------------------------------------------------
# preparation and launch
# ------------------------------------------------------------------------------------------


def prepare_chunk(
    ids: torch.Tensor,
    offsets: torch.Tensor,
    tables: SamplingTables,
    config: EngineConfig,
    generator: torch.Generator,
) -> PreparedChunk:
    """Subsample a chunk and draw its windows and negatives (:mod:`.batches`), on the tables'
    device, for the whole chunk at once.

    ``offsets`` are validated by :func:`check_chunk`; ``tables`` hold ``sample_int`` and
    ``cum_table`` on the device; ``generator`` is the chunk's random stream there. Returns the
    kernel's inputs, all int32.
    """
    kept = batches.subsample(ids, offsets, tables.sample_int, generator)
    m = kept.words.numel()
    reach = batches.reduced_windows(m, config.window, config.shrink_windows, generator)
    table_end = int(tables.cum_table[-1]) if config.negative else 0
    negatives = batches.negatives(m, config.negative, tables.cum_table, table_end, generator)
    return PreparedChunk(*(t.to(torch.int32) for t in (*kept, reach, negatives)))


def _interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    knobs = getattr(triton, "knobs", None)
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0").strip() not in ("", "0")  # pragma: no cover


class TritonEngine:
    """word2vec on a CUDA device: per-chunk preparation in torch, then fused Triton kernels.

    Skip-gram or CBOW (``config.sg``, ``config.cbow_mean``) with negative sampling
    (``config.negative > 0``), hierarchical softmax (``config.hs``) or both.

    Parameters
    ----------
    syn0 : torch.Tensor
        ``(V, d)`` float32 contiguous CUDA tensor of input vectors, updated in place by
        :meth:`train_chunk`. CPU tensors are accepted only under Triton's interpreter
        (``TRITON_INTERPRET=1``), which the tests use.
    syn1neg : torch.Tensor
        Negative-sampling output vectors: ``(V, d)`` like ``syn0`` when ``config.negative > 0``;
        not used otherwise (then typically ``(0, d)``).
    tables : SamplingTables
        ``sample_int`` and ``cum_table``, ``(V,)``, and with ``config.hs`` the Huffman tables
        ``points``, ``codes`` ``(V, L)`` and ``lengths`` ``(V,)``; moved to the device once,
        here (as int64, and int32, uint8, int32 for the paths).
    config : EngineConfig
        Architecture, objectives, window, negatives, seed, loss. ``workers`` is ignored: the
        GPU runs thousands of programs at once.
    syn1 : torch.Tensor, optional
        Hierarchical-softmax output vectors, ``(V, d)`` like ``syn0``; required with
        ``config.hs``, must be ``None`` without.
    centers, block_d, num_warps, num_stages : int, optional
        Kernel tuning: centers per program (default: fill ``TARGET_COLUMNS`` columns),
        vector components per loop step, warps per program, and software-pipelining stages
        of the loops (default: Triton's).
    centers_per_launch : int, optional
        The most centers one launch trains, rounded down to a multiple of the centers per
        program; a chunk takes as many launches, one after the other. Default: the whole
        chunk in one launch, or with hierarchical softmax the torch engine's batch
        (:func:`.torch_engine.default_batch_centers`).
    dot_precision : {"ieee", "tf32x3", "tf32"}
        How the small matrix products multiply on the GPU (see ``DOT_PRECISION``).

    Raises
    ------
    ValueError
        A tensor or table is missing or has the wrong device, dtype, shape, layout or range,
        or the settings train nothing (``negative == 0`` without ``hs``).
    """

    def __init__(
        self,
        syn0: torch.Tensor,
        syn1neg: torch.Tensor,
        tables: SamplingTables,
        config: EngineConfig,
        syn1: torch.Tensor | None = None,
        *,
        centers: int | None = None,
        centers_per_launch: int | None = None,
        block_d: int = BLOCK_D,
        num_warps: int = NUM_WARPS,
        num_stages: int | None = None,
        dot_precision: str = DOT_PRECISION,
    ):
        tables = check_engine(syn0, syn1neg, syn1, tables, config)
        if dot_precision not in ("ieee", "tf32x3", "tf32"):
            raise ValueError(
                f"dot_precision must be 'ieee', 'tf32x3' or 'tf32', got {dot_precision!r}"
            )
        if syn0.device.type != "cuda" and not _interpreting():
            raise ValueError(
                f"the Triton engine trains CUDA tensors, got {syn0.device} (CPU tensors run "
                "only under Triton's interpreter, TRITON_INTERPRET=1); use engine='compiled' "
                "or 'torch' on CPU"
            )
        self.syn0, self.syn1neg, self.syn1, self.config = syn0, syn1neg, syn1, config
        self.device = syn0.device
        self.tables = tables
        depth = self.tables.points.shape[1] if config.hs else 0
        self.shape = launch_shape(
            config.window, config.negative, syn0.shape[1], depth, centers, block_d
        )
        self.centers_per_launch = _centers_per_launch(
            centers_per_launch, config, self.shape.centers
        )
        self.dot_precision = dot_precision
        self.launch_options = {"num_warps": num_warps}
        if num_stages is not None:
            self.launch_options["num_stages"] = num_stages
        self.generator = torch.Generator(device=self.device)
        self.calls = 0

    def train_chunk(
        self, ids: torch.Tensor, offsets: torch.Tensor, alpha_start: float, alpha_end: float
    ) -> ChunkStats:
        """Train on one chunk of sentences (see :class:`~torchw2v.engines.base.Engine`).

        Parameters
        ----------
        ids : torch.Tensor
            ``(N,)`` int32 vocabulary ids, sentences back to back (any device).
        offsets : torch.Tensor
            ``(S + 1,)`` int64 sentence boundaries, from 0 to N.
        alpha_start, alpha_end : float
            Learning rate at the start and at the end of the chunk: kept word ``i`` of ``M``
            trains at ``alpha_start + (alpha_end - alpha_start) * i / M``.

        Returns
        -------
        ChunkStats
            Kept (trained) center words, summed loss (0.0 unless ``compute_loss``),
            predictions (skip-gram: (center, context) pairs; CBOW: centers with a context).

        Raises
        ------
        ValueError
            Bad inputs (dtype, shape, ids out of range, offsets not from 0 to N), or a window
            wider than the kernel holds (``MAX_ROWS``) over the chunk's sentences.
        FloatingPointError
            Training diverged: a score was NaN or infinite (``alpha`` is too high).
        """
        offsets = check_chunk(ids, offsets, self.syn0.shape[0])
        self.generator.manual_seed(chunk_seed(self.config.seed, self.calls) % 2**64)
        self.calls += 1
        prepared = prepare_chunk(ids, offsets, self.tables, self.config, self.generator)
        return self.run_kernel(prepared, alpha_start, alpha_end)

    def run_kernel(
        self, prepared: PreparedChunk, alpha_start: float, alpha_end: float
    ) -> ChunkStats:
        """Train the prepared chunk's centers, ``centers_per_launch`` at a time.

        The learning rate of kept position ``i`` of ``M`` is
        ``alpha_start + (alpha_end - alpha_start) * i / M``.

        Raises
        ------
        FloatingPointError
            A score was NaN or infinite: training diverged.
        """
        m = prepared.words.numel()
        if m == 0:
            return ChunkStats()
        window, shape = self._fitted_shape(prepared)
        g = shape.centers
        per_launch = self.centers_per_launch or m  # a multiple of g unless it is m
        partials = torch.empty((triton.cdiv(m, g), 3), dtype=torch.float32, device=self.device)
        alpha_step = float(alpha_end - alpha_start) / m
        with _on(self.device):
            for base in range(0, m, per_launch):
                programs = triton.cdiv(min(per_launch, m - base), g)
                launch = (base, programs, alpha_start, alpha_step, window, shape)
                self._launch(prepared, partials[base // g :], *launch)
        loss, pairs, nonfinite = partials.double().sum(0).tolist()
        if nonfinite:
            raise divergence_error(alpha_start)
        return ChunkStats(words=m, loss=loss, pairs=round(pairs))

    def _fitted_shape(self, prepared: PreparedChunk) -> tuple[int, LaunchShape]:
        """The window the kernel's rows span, and the launch shape for it.

        That is ``config.window``, or less when the chunk's longest sentence (of kept words)
        is shorter: a context never lies farther than ``longest - 1`` from its center, so a
        huge window costs no more than the longest sentence. The reduced windows drawn from
        ``config.window`` stay as they are.

        Raises
        ------
        ValueError
            The window spans more than ``MAX_ROWS`` rows in this chunk's sentences.
        """
        longest = int((prepared.ends - prepared.starts).max())
        window = max(1, min(self.config.window, longest - 1))
        shape = self.shape
        if window < self.config.window:
            depth = self.tables.points.shape[1] if self.config.hs else 0
            dim, centers, block_d = self.syn0.shape[1], shape.centers, shape.block_d
            shape = launch_shape(window, self.config.negative, dim, depth, centers, block_d)
        if shape.rows > MAX_ROWS:
            raise ValueError(
                f"window={self.config.window} spans {window} words either side in sentences "
                f"of up to {longest} words, more than the Triton kernel holds ({MAX_ROWS} rows "
                "with its centers): lower window or split long sentences, or use engine='torch'"
            )
        return window, shape

    def _launch(
        self,
        prepared: PreparedChunk,
        partials: torch.Tensor,
        base: int,
        programs: int,
        alpha_start: float,
        alpha_step: float,
        window: int,
        shape: LaunchShape,
    ) -> None:
        """One launch: ``programs`` programs from kept position ``base`` on, their rows
        spanning ``window`` positions either side of their centers."""
        cfg, tables = self.config, self.tables
        ns, hs = cfg.negative > 0, cfg.hs
        _w2v_kernel[(programs,)](
            self.syn0,
            self.syn1neg if ns else None,
            self.syn1 if hs else None,
            prepared.words,
            prepared.starts,
            prepared.ends,
            prepared.reach,
            prepared.negatives if ns else None,
            tables.points if hs else None,
            tables.codes if hs else None,
            tables.lengths if hs else None,
            partials,
            base,
            prepared.words.numel(),
            self.syn0.shape[1],
            window,
            float(alpha_start),
            alpha_step,
            SG=bool(cfg.sg),
            CBOW_MEAN=bool(cfg.cbow_mean),
            NS_T=cfg.negative + 1 if ns else 0,
            HS_T=tables.points.shape[1] if hs else 0,
            CENTERS=shape.centers,
            ROWS=shape.rows,
            NS_COLS=shape.ns_cols,
            HS_COLS=shape.hs_cols,
            BLOCK_D=shape.block_d,
            COMPUTE_LOSS=bool(cfg.compute_loss),
            MAX_EXP=MAX_EXP,
            DOT_PRECISION=self.dot_precision,
            **self.launch_options,
        )


def _on(device: torch.device) -> contextlib.AbstractContextManager:
    """A context making ``device`` current for the launch (a no-op off CUDA)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _centers_per_launch(requested: int | None, config: EngineConfig, centers: int) -> int | None:
    """The centers per launch, a multiple of ``centers`` per program; ``None``: all at once."""
    default = default_batch_centers(config) if config.hs else None
    limit = requested if requested is not None else default
    if limit is None:
        return None
    if limit < 1:
        raise ValueError(f"centers_per_launch must be >= 1, got {limit}")
    return max(1, limit // centers) * centers
