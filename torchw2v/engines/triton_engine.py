"""The fused GPU engine: skip-gram negative sampling as one Triton kernel launch per chunk.

A chunk is trained in two steps:

1. **Preparation** (:func:`prepare_chunk`, a few torch ops on the device, per chunk): drop
   frequent words (subsampling), compact the kept ids and give each kept position the bounds
   of its sentence among the kept words, draw each center's reduced window and its ``K``
   negatives (``searchsorted`` in the unigram table). Nothing here is per pair, and nothing is
   kept from one chunk to the next.
2. **One kernel launch** (:func:`_sgns_kernel`): program ``p`` trains the ``G`` consecutive
   kept positions ``[p * G, p * G + G)`` as centers. It gathers on chip the ``syn0`` rows of
   every position that can be a context of those centers (``ROWS`` = the centers and ``window``
   positions either side) and the ``syn1neg`` rows of every center's ``1 + K`` targets (the
   center word, label 1, then its negatives, label 0; ``COLS = G * (1 + K)`` columns), takes
   all their dot products as one ``(ROWS, COLS)`` matrix product, masks the pairs that are not
   (context, center) pairs of a window, and applies

   - ``grad = (label - sigmoid(score)) * alpha`` on the valid pairs, 0 elsewhere;
   - ``syn0[context] += grad @ syn1neg[targets]`` and ``syn1neg[targets] += grad.T @ syn0[ctx]``

   with ``tl.atomic_add``: a word occurring twice in a program gets the sum of its updates, and
   no update is lost when programs touch the same rows at once (Hogwild: rows are read without
   locks, so a program may read a row another program is updating, as word2vec.c's threads do).

Semantics are those of the compiled CPU op's skip-gram negative sampling (:mod:`.compiled`):
gensim's direction (the context word's input vector predicts the center word's output vector),
negatives shared by all contexts of a center (Ji et al., 2016), a negative equal to its center
skipped, word2vec.c's sigmoid saturation at +-6, windows never crossing a sentence. The
differences: the ``G`` centers of a program are one mini-batch (their updates are computed
from the same values, then summed); the sigmoid is computed, not looked up in word2vec.c's
1000-entry table; the learning rate decays linearly over the chunk's kept words, not per
sentence; and the random streams are torch's, not word2vec.c's LCG.

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
import torch.nn.functional as F
import triton
import triton.language as tl

from .base import ChunkStats, EngineConfig, SamplingTables
from .compiled import chunk_seed

UINT32_RANGE = 2**32
MAX_EXP = 6.0
"""word2vec.c's MAX_EXP: above it the sigmoid is 1, below its negative 0."""
# Launch defaults, chosen from the compiled kernel's resources (sm_90, Triton 3.9, d=100,
# window 5, K=5), not yet from timings: 5 centers per program fill a 16 x 32 tile (15 context
# rows, 30 target columns) and the kernel takes about 106 registers per thread with no
# spills; 21 centers (32 x 128) or 32-component steps need 255 registers and spill.
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
        ``(M, K)`` int32 negatives of each center, shared by all of its contexts.
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
    cols : int
        (center, target) columns per program: ``G * (1 + K)`` rounded up to a power of two
        (>= 16).
    block_d : int
        Vector components per loop step (a power of two >= 16).
    """

    centers: int
    rows: int
    cols: int
    block_d: int


def launch_shape(
    window: int,
    negative: int,
    dim: int,
    centers: int | None = None,
    block_d: int = BLOCK_D,
) -> LaunchShape:
    """Choose the kernel's block sizes.

    Parameters
    ----------
    window, negative, dim : int
        The model's window, negatives per center and vector size.
    centers : int, optional
        Centers per program; by default as many as fill ``TARGET_COLUMNS`` columns.
    block_d : int
        Upper bound on the components per loop step (rounded to a power of two >= 16).

    Returns
    -------
    LaunchShape
    """
    targets = negative + 1
    g = centers if centers is not None else max(1, TARGET_COLUMNS // targets)
    if g < 1:
        raise ValueError(f"centers per program must be >= 1, got {g}")
    # tl.dot needs every block dimension >= 16
    return LaunchShape(
        centers=g,
        rows=max(16, triton.next_power_of_2(g + 2 * window)),
        cols=max(16, triton.next_power_of_2(g * targets)),
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
def _pair_mask(pos, center, col_ok, starts_ptr, ends_ptr, reach_ptr):
    """Which (row, column) entries are (context, center) pairs of a window.

    ``pos`` is ``(ROWS,)`` kept positions, ``center`` ``(COLS,)`` the center position of
    each column and ``col_ok`` ``(COLS,)`` the columns that hold a real target. Returns a
    ``(ROWS, COLS)`` mask: the row is within the center's reduced window, is not the center
    itself, and lies in the center's sentence.
    """
    start = tl.load(starts_ptr + center, mask=col_ok, other=0)  # (COLS,)
    end = tl.load(ends_ptr + center, mask=col_ok, other=0)  # (COLS,)
    reach = tl.load(reach_ptr + center, mask=col_ok, other=0)  # (COLS,)
    dist = pos[:, None] - center[None, :]  # (ROWS, COLS)
    in_window = (dist != 0) & (dist <= reach[None, :]) & (-dist <= reach[None, :])
    in_sentence = (pos[:, None] >= start[None, :]) & (pos[:, None] < end[None, :])
    return in_window & in_sentence & col_ok[None, :]


@triton.jit
def _gradient(scores, label, alpha, pair, MAX_EXP: tl.constexpr):
    """``(label - sigmoid(score)) * alpha`` on the pairs, 0 elsewhere: ``(ROWS, COLS)``.

    The sigmoid saturates to 1 at ``MAX_EXP`` and to 0 at ``-MAX_EXP``, as in word2vec.c.
    """
    sig = tl.sigmoid(tl.minimum(tl.maximum(scores, -MAX_EXP), MAX_EXP))
    sig = tl.where(scores >= MAX_EXP, 1.0, tl.where(scores <= -MAX_EXP, 0.0, sig))
    return tl.where(pair, (label[None, :] - sig) * alpha[None, :], 0.0)


@triton.jit
def _loss(scores, label, pair):
    """Summed ``-log sigmoid(+-score)`` over the pairs (sign + for the center, - for negatives)."""
    z = tl.where(label[None, :] > 0, scores, -scores)  # (ROWS, COLS)
    softplus = tl.maximum(-z, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(z)))  # -log sigmoid(z)
    return tl.sum(tl.sum(tl.where(pair, softplus, 0.0), axis=1), axis=0)


@triton.jit
def _sgns_kernel(
    syn0_ptr,  # (V, D) float32, input vectors, updated in place
    syn1neg_ptr,  # (V, D) float32, output vectors, updated in place
    words_ptr,  # (M,) int32 kept ids
    starts_ptr,  # (M,) int32 sentence start of each kept position
    ends_ptr,  # (M,) int32 sentence end of each kept position
    reach_ptr,  # (M,) int32 reduced window of each center
    negatives_ptr,  # (M, T - 1) int32 negatives of each center
    partials_ptr,  # (P, 2) float32 out: this program's loss and pairs
    M,
    D,
    window,
    alpha_start,  # learning rate at kept position 0 ...
    alpha_step,  # ... and its change per kept position
    T: tl.constexpr,  # targets per center: 1 + K
    CENTERS: tl.constexpr,
    ROWS: tl.constexpr,
    COLS: tl.constexpr,
    BLOCK_D: tl.constexpr,
    COMPUTE_LOSS: tl.constexpr,
    MAX_EXP: tl.constexpr,
    DOT_PRECISION: tl.constexpr,  # "ieee", "tf32x3" or "tf32"
):
    pid = tl.program_id(0)
    first = pid * CENTERS
    # rows: the kept positions that can be contexts of this program's centers
    pos = first - window + tl.arange(0, ROWS)  # (ROWS,)
    row_in = (pos >= 0) & (pos < M)
    row_words = tl.load(words_ptr + pos, mask=row_in, other=0)  # (ROWS,)

    # columns: (center g, target t); t = 0 is the center word (label 1), t > 0 its negatives
    col = tl.arange(0, COLS)
    g = col // T
    t = col % T
    center = first + g  # (COLS,)
    col_in = (g < CENTERS) & (center < M)
    center_words = tl.load(words_ptr + center, mask=col_in, other=0)  # (COLS,)
    neg_ptrs = negatives_ptr + center.to(tl.int64) * (T - 1) + (t - 1)
    negs = tl.load(neg_ptrs, mask=col_in & (t > 0), other=0)  # (COLS,)
    targets = tl.where(t == 0, center_words, negs)  # (COLS,)
    col_ok = col_in & ((t == 0) | (negs != center_words))  # gensim skips a negative == center
    pair = _pair_mask(pos, center, col_ok, starts_ptr, ends_ptr, reach_ptr)  # (ROWS, COLS)
    used = pair.to(tl.int32)
    row_used = tl.max(used, axis=1) > 0  # (ROWS,) rows that are a context of some center
    col_used = tl.max(used, axis=0) > 0  # (COLS,) targets of centers with a context

    # scores = syn0[rows] @ syn1neg[targets].T, over the vector in steps of BLOCK_D
    scores = tl.zeros((ROWS, COLS), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        x_ptrs, x_mask = _rows(syn0_ptr, row_words, row_used, d0, D, BLOCK_D)
        o_ptrs, o_mask = _rows(syn1neg_ptr, targets, col_used, d0, D, BLOCK_D)
        x = tl.load(x_ptrs, mask=x_mask, other=0.0)  # (ROWS, BLOCK_D)
        o = tl.load(o_ptrs, mask=o_mask, other=0.0)  # (COLS, BLOCK_D)
        scores += tl.dot(x, tl.trans(o), input_precision=DOT_PRECISION)  # (ROWS, COLS)

    label = (t == 0).to(tl.float32)  # (COLS,)
    alpha = alpha_start + center.to(tl.float32) * alpha_step  # (COLS,)
    grad = _gradient(scores, label, alpha, pair, MAX_EXP)  # (ROWS, COLS)

    # updates, computed from the values the scores came from (each step below reads its
    # components before it adds to them), added atomically
    for d0 in range(0, D, BLOCK_D):
        x_ptrs, x_mask = _rows(syn0_ptr, row_words, row_used, d0, D, BLOCK_D)
        o_ptrs, o_mask = _rows(syn1neg_ptr, targets, col_used, d0, D, BLOCK_D)
        x = tl.load(x_ptrs, mask=x_mask, other=0.0)  # (ROWS, BLOCK_D)
        o = tl.load(o_ptrs, mask=o_mask, other=0.0)  # (COLS, BLOCK_D)
        dx = tl.dot(grad, o, input_precision=DOT_PRECISION)  # (ROWS, BLOCK_D)
        do = tl.dot(tl.trans(grad), x, input_precision=DOT_PRECISION)  # (COLS, BLOCK_D)
        tl.atomic_add(x_ptrs, dx, mask=x_mask, sem="relaxed")
        tl.atomic_add(o_ptrs, do, mask=o_mask, sem="relaxed")

    # this program's statistics: (center, context) pairs and, if asked, their loss
    pairs = tl.sum(tl.sum(tl.where(pair & (t == 0)[None, :], 1.0, 0.0), axis=1), axis=0)
    tl.store(partials_ptr + 2 * pid + 1, pairs)
    if COMPUTE_LOSS:
        tl.store(partials_ptr + 2 * pid, _loss(scores, label, pair))
    else:
        tl.store(partials_ptr + 2 * pid, 0.0)


# ------------------------------------------------------------------------------------------
# preparation and launch
# ------------------------------------------------------------------------------------------


def check_chunk(ids: torch.Tensor, offsets: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Validate a chunk; return its offsets as a CPU int64 tensor.

    Raises
    ------
    ValueError
        ``ids`` is not 1-D int32/int64 or holds an id outside ``[0, vocab_size)``;
        ``offsets`` is not 1-D int64, does not run from 0 to ``len(ids)``, or decreases.
    """
    if ids.dim() != 1 or ids.dtype not in (torch.int32, torch.int64):
        raise ValueError(
            f"ids must be a 1-D int32 tensor, got {ids.dtype} of shape {tuple(ids.shape)}"
        )
    if offsets.dim() != 1 or offsets.dtype != torch.int64 or offsets.numel() < 1:
        raise ValueError(
            "offsets must be a 1-D int64 tensor of S + 1 sentence boundaries, got "
            f"{offsets.dtype} of shape {tuple(offsets.shape)}"
        )
    off = offsets.cpu()
    n = ids.numel()
    if off[0] != 0 or off[-1] != n:
        raise ValueError(
            f"offsets must start at 0 and end at len(ids)={n}, got {int(off[0])} and {int(off[-1])}"
        )
    if (off.diff() < 0).any():
        raise ValueError("offsets must be non-decreasing")
    if n:
        lo, hi = torch.aminmax(ids)
        lo, hi = int(lo), int(hi)
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"ids must lie in [0, {vocab_size}), found {bad}")
    return off


def prepare_chunk(
    ids: torch.Tensor,
    offsets: torch.Tensor,
    tables: SamplingTables,
    config: EngineConfig,
    generator: torch.Generator,
) -> PreparedChunk:
    """Subsample a chunk and draw its windows and negatives, on the tables' device.

    Parameters
    ----------
    ids : torch.Tensor
        ``(N,)`` int32 or int64 vocabulary ids, sentences back to back.
    offsets : torch.Tensor
        ``(S + 1,)`` int64 sentence boundaries, from 0 to N (validated by :func:`check_chunk`).
    tables : SamplingTables
        ``sample_int`` and ``cum_table``, ``(V,)`` int64 on the device.
    config : EngineConfig
        ``window``, ``negative`` and ``shrink_windows``.
    generator : torch.Generator
        The random stream, on the device.

    Returns
    -------
    PreparedChunk
        Kept words with their sentence bounds, windows and negatives, all int32.
    """
    device = tables.sample_int.device
    ids = ids.to(device, torch.int64)
    n, s = ids.numel(), offsets.numel() - 1
    # subsampling: keep a token when a uniform uint32 is below its word's threshold
    r = torch.randint(UINT32_RANGE, (n,), generator=generator, device=device)  # (N,)
    keep = r < tables.sample_int[ids]  # (N,)
    lengths = offsets.to(device).diff()  # (S,)
    sentence = torch.repeat_interleave(torch.arange(s, device=device), lengths, output_size=n)
    kept = keep.nonzero().squeeze(1)  # (M,) positions of the kept tokens
    sentence = sentence[kept]  # (M,) sentence of each kept token
    kept_offsets = F.pad(torch.bincount(sentence, minlength=s).cumsum(0), (1, 0))  # (S + 1,)
    words = ids[kept].to(torch.int32)  # (M,)
    m = words.numel()
    # reduced windows: b uniform in 0..window-1, the window is window - b
    if config.shrink_windows:
        shrink = torch.randint(config.window, (m,), generator=generator, device=device)
        reach = (config.window - shrink).to(torch.int32)  # (M,)
    else:
        reach = torch.full((m,), config.window, dtype=torch.int32, device=device)
    # negatives: bisect_left(cum_table, r) for r uniform in [0, cum_table[-1])
    draws = torch.randint(
        int(tables.cum_table[-1]), (m, config.negative), generator=generator, device=device
    )  # (M, K)
    negatives = torch.searchsorted(tables.cum_table, draws, side="left", out_int32=True)
    return PreparedChunk(
        words=words,
        starts=kept_offsets[sentence].to(torch.int32),
        ends=kept_offsets[sentence + 1].to(torch.int32),
        reach=reach,
        negatives=negatives,
    )


def _interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    knobs = getattr(triton, "knobs", None)
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0").strip() not in ("", "0")  # pragma: no cover


class TritonEngine:
    """SGNS on a CUDA device: per-chunk preparation in torch, then one fused Triton kernel.

    Parameters
    ----------
    syn0, syn1neg : torch.Tensor
        ``(V, d)`` float32 contiguous CUDA tensors (input and output vectors), updated in
        place by :meth:`train_chunk`. CPU tensors are accepted only under Triton's
        interpreter (``TRITON_INTERPRET=1``), which the tests use.
    tables : SamplingTables
        ``sample_int`` and ``cum_table``, ``(V,)`` (moved to the device as int64 once).
    config : EngineConfig
        Skip-gram negative sampling settings: ``sg`` true, ``hs`` false, ``negative >= 1``.
        ``workers`` is ignored: the GPU runs thousands of programs at once.
    syn1 : None
        Hierarchical-softmax vectors; not supported by this engine, must be ``None``.
    centers, block_d, num_warps, num_stages : int, optional
        Kernel tuning: centers per program (default: fill ``TARGET_COLUMNS`` columns),
        vector components per loop step, warps per program, and software-pipelining stages
        of the loops (default: Triton's).
    dot_precision : {"ieee", "tf32x3", "tf32"}
        How the small matrix products multiply on the GPU (see ``DOT_PRECISION``).

    Raises
    ------
    ValueError
        A tensor has the wrong device, dtype, shape or layout, or the settings ask for what
        this engine does not train (CBOW, hierarchical softmax, no negatives).
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
        block_d: int = BLOCK_D,
        num_warps: int = NUM_WARPS,
        num_stages: int | None = None,
        dot_precision: str = DOT_PRECISION,
    ):
        _check_settings(config, syn1)
        _check_weights(syn0, syn1neg)
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
        self.syn0, self.syn1neg, self.config = syn0, syn1neg, config
        self.device = syn0.device
        self.tables = SamplingTables(
            tables.sample_int.to(self.device, torch.int64).contiguous(),
            tables.cum_table.to(self.device, torch.int64).contiguous(),
        )
        _check_tables(self.tables, syn0.shape[0])
        self.shape = launch_shape(config.window, config.negative, syn0.shape[1], centers, block_d)
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
            Kept (trained) center words, summed loss (0.0 unless ``compute_loss``), pairs.

        Raises
        ------
        ValueError
            Bad inputs (dtype, shape, ids out of range, offsets not from 0 to N).
        """
        offsets = check_chunk(ids, offsets, self.syn0.shape[0])
        self.generator.manual_seed(chunk_seed(self.config.seed, self.calls) % 2**64)
        self.calls += 1
        prepared = prepare_chunk(ids, offsets, self.tables, self.config, self.generator)
        return self.run_kernel(prepared, alpha_start, alpha_end)

    def run_kernel(
        self, prepared: PreparedChunk, alpha_start: float, alpha_end: float
    ) -> ChunkStats:
        """Train the prepared chunk's centers with one kernel launch.

        The learning rate of kept position ``i`` of ``M`` is
        ``alpha_start + (alpha_end - alpha_start) * i / M``.
        """
        m = prepared.words.numel()
        if m == 0:
            return ChunkStats()
        shape = self.shape
        programs = triton.cdiv(m, shape.centers)
        partials = torch.empty((programs, 2), dtype=torch.float32, device=self.device)
        with _on(self.device):
            _sgns_kernel[(programs,)](
                self.syn0,
                self.syn1neg,
                prepared.words,
                prepared.starts,
                prepared.ends,
                prepared.reach,
                prepared.negatives,
                partials,
                m,
                self.syn0.shape[1],
                self.config.window,
                float(alpha_start),
                float(alpha_end - alpha_start) / m,
                T=self.config.negative + 1,
                CENTERS=shape.centers,
                ROWS=shape.rows,
                COLS=shape.cols,
                BLOCK_D=shape.block_d,
                COMPUTE_LOSS=bool(self.config.compute_loss),
                MAX_EXP=MAX_EXP,
                DOT_PRECISION=self.dot_precision,
                **self.launch_options,
            )
        loss, pairs = partials.double().sum(0).tolist()
        return ChunkStats(words=m, loss=loss, pairs=round(pairs))


def _on(device: torch.device) -> contextlib.AbstractContextManager:
    """A context making ``device`` current for the launch (a no-op off CUDA)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _check_settings(config: EngineConfig, syn1: torch.Tensor | None) -> None:
    if not config.sg or config.hs or syn1 is not None:
        raise ValueError(
            "the Triton engine trains skip-gram with negative sampling only (sg=1, hs=0); "
            "use engine='torch' for CBOW or hierarchical softmax"
        )
    if config.window < 1 or config.negative < 1:
        raise ValueError(
            "the Triton engine needs window >= 1 and negative >= 1, got "
            f"window={config.window}, negative={config.negative}"
        )


def _check_weights(syn0: torch.Tensor, syn1neg: torch.Tensor) -> None:
    for name, t in (("syn0", syn0), ("syn1neg", syn1neg)):
        if t.dtype != torch.float32 or t.dim() != 2:
            raise ValueError(
                f"{name} must be a 2-D float32 tensor, got {t.dtype} of shape {tuple(t.shape)}"
            )
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous (it is updated in place)")
    if syn0.shape != syn1neg.shape or syn0.device != syn1neg.device:
        raise ValueError(
            f"syn0 and syn1neg must have the same shape and device, got {tuple(syn0.shape)} "
            f"on {syn0.device} and {tuple(syn1neg.shape)} on {syn1neg.device}"
        )
    if syn0.shape[0] < 1 or syn0.shape[1] < 1:
        raise ValueError(f"empty embedding matrix of shape {tuple(syn0.shape)}")


def _check_tables(tables: SamplingTables, vocab_size: int) -> None:
    for name in ("sample_int", "cum_table"):
        t = getattr(tables, name)
        if t.dim() != 1 or t.numel() != vocab_size:
            raise ValueError(
                f"{name} must be ({vocab_size},), one entry per word, got shape {tuple(t.shape)}"
            )
    if int(tables.cum_table[-1]) <= 0:
        raise ValueError("cum_table[-1] must be > 0 to draw negatives")
