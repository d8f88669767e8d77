"""The Triton kernel of the fused GPU engine (:mod:`.triton_engine`): one launch trains the
centers of a prepared chunk (:class:`.triton_engine.PreparedChunk`).

The chunk's kept positions fall into groups of ``G`` consecutive centers; of ``P`` programs,
program ``p`` trains groups ``p``, ``p + P``, ``p + 2P``, ... one after the other. For each
group it gathers on chip the ``syn0`` rows of every position that can be a context of its
centers (``ROWS`` = the centers and ``window`` positions either side) and, per output table,
the rows of every center's targets as columns (center, target):

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
negative equal to its center skipped, word2vec.c's MAX_EXP rule as :mod:`torchw2v.objective`
states it (the sigmoid saturates at +-6; a Huffman node scored beyond it is not trained), the
loss summed exactly over every target, windows never crossing a sentence; with both
objectives a center is trained against both lists at once, from the same values (gensim runs
hierarchical softmax first, then negative sampling). The differences: the ``G`` centers of a
group are one mini-batch (their updates are computed from the same values, then summed); the
sigmoid is computed, not looked up in word2vec.c's 1000-entry table; the learning rate decays
linearly over the chunk's kept words, not per sentence; and the random streams are torch's,
not word2vec.c's LCG.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ..objective import MAX_EXP as _MAX_EXP

MAX_EXP = tl.constexpr(_MAX_EXP)
"""word2vec.c's MAX_EXP (:data:`torchw2v.objective.MAX_EXP`), a compile-time constant here."""


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
def _centers(words_ptr, first, M, T: tl.constexpr, CENTERS: tl.constexpr, COLS: tl.constexpr):
    """Column ``g * T + t`` is target ``t`` of center ``first + g``. Returns, each ``(COLS,)``:
    ``t``, the center's position, whether it is a center of this program, and its word."""
    col = tl.arange(0, COLS)
    g = col // T
    t = col % T
    center = first + g  # (COLS,)
    col_in = (g < CENTERS) & (center < M)
    return t, center, col_in, tl.load(words_ptr + center, mask=col_in, other=0)


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
    t, center, col_in, center_words = _centers(words_ptr, first, M, T, CENTERS, COLS)
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
    node, center, col_in, word = _centers(words_ptr, first, M, L, CENTERS, COLS)
    length = tl.load(lengths_ptr + word, mask=col_in, other=0)  # (COLS,)
    ok = col_in & (node < length)
    path = word.to(tl.int64) * L + node  # (COLS,) into the (V, L) path tables
    targets = tl.load(points_ptr + path, mask=ok, other=0)
    code = tl.load(codes_ptr + path, mask=ok, other=0)
    return center, col_in, targets, 1.0 - code.to(tl.float32), ok, node == 0


@triton.jit
def _sigmoid_gradient(scores, label, alpha, live, SKIP_SATURATED: tl.constexpr):
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
):
    """One output table's update weights from its scores.

    ``scores`` and ``win`` (the (context, center) pairs) are ``(ROWS, COLS)``; ``label``,
    ``alpha`` and ``ok`` (the trained columns) ``(COLS,)``. Returns ``(A, B, loss)``: the
    update is ``syn0[rows] += A @ out[cols]`` and ``out[cols] += B.T @ syn0[rows]``, both
    ``(ROWS, COLS)`` (see the module docstring); ``loss`` is 0.0 unless ``COMPUTE_LOSS``.
    """
    pair = win & ok[None, :]  # (ROWS, COLS)
    if SG:
        a = _sigmoid_gradient(scores, label[None, :], alpha[None, :], pair, SKIP_SATURATED)
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
        g = _sigmoid_gradient(score, label, alpha, live, SKIP_SATURATED)  # (COLS,)
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
def w2v_kernel(
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
    steps,  # groups of CENTERS centers each program trains, one after the other
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
    DOT_PRECISION: tl.constexpr,  # "ieee", "tf32x3" or "tf32"
):
    pid = tl.program_id(0)
    loss = 0.0
    predictions = 0.0
    nonfinite = 0.0
    for step in range(steps):  # groups pid, pid + P, pid + 2P, ... of P programs
        first = (pid + step * tl.num_programs(0)) * CENTERS
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

        if NS_T > 0:
            nonfinite += _nonfinite(ns_scores)
            ns_alpha = alpha_start + ns_center.to(tl.float32) * alpha_step  # (NS_COLS,)
            ns_a, ns_b, ns_loss = _gradients(
                ns_scores, ns_label, ns_alpha, ns_win, ns_ok, SG, CBOW_MEAN, False, COMPUTE_LOSS
            )
            loss += ns_loss
        if HS_T > 0:  # a Huffman node scored beyond +-MAX_EXP is not trained
            nonfinite += _nonfinite(hs_scores)
            hs_alpha = alpha_start + hs_center.to(tl.float32) * alpha_step  # (HS_COLS,)
            hs_a, hs_b, hs_loss = _gradients(
                hs_scores, hs_label, hs_alpha, hs_win, hs_ok, SG, CBOW_MEAN, True, COMPUTE_LOSS
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

        predictions += _predictions(lead_win, lead, SG)

    tl.store(partials_ptr + 3 * pid, loss)
    tl.store(partials_ptr + 3 * pid + 1, predictions)
    tl.store(partials_ptr + 3 * pid + 2, nonfinite)
