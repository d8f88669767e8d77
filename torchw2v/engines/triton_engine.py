"""The fused GPU engine: word2vec as one Triton kernel launch per chunk.

It trains every objective of the compiled CPU engine (:mod:`.compiled`): skip-gram or CBOW
(``cbow_mean`` either way) with negative sampling, hierarchical softmax or both. A chunk is
trained in two steps:

1. **Preparation** (:func:`prepare_chunk`, a few torch ops on the device, per chunk): the
   draws of :mod:`.batches` for the whole chunk at once: the kept words with the bounds of
   their sentences, each center's reduced window and, with negative sampling, its ``K``
   negatives. Nothing here is per pair, and nothing is kept from one chunk to the next.
2. **The kernel** (:func:`.triton_kernel.w2v_kernel`, one launch per chunk): ``P``
   programs each train groups of ``G`` consecutive kept positions as centers, one group after
   another (program ``p`` groups ``p``, ``p + P``, ...), from the ``syn0`` rows of every
   position that can be a context of them and the output rows of their targets, as small
   matrix products on chip, and add the updates back with ``tl.atomic_add`` (Hogwild, as
   word2vec.c's threads). The semantics are the compiled CPU op's, with the ``G`` centers of
   a group as one mini-batch (see the kernel's module).

Programs running at the same time read rows before each other's updates land, so the
``P * G`` centers in flight act as one loose mini-batch; frequent words (and, with
hierarchical softmax, the top nodes of the tree, on every center's path) take an update from
most of them. The bound is set by measurement on an H200 (wiki17m, 3 epochs, d100;
``benchmarks/bench_triton_launch.py``, RESULTS.md 2026-12-04): with negative sampling
16,384 centers in flight train as gensim does (SG-NS analogy 0.338 against gensim's 0.331,
at 42M words/s), while one program per group of the whole chunk (about 40,000 programs a
launch) scored 0.080; with hierarchical softmax 1,024 scored as 256 did (0.341, 0.339) at
twice the speed. Skip-gram with both objectives, not measured there, takes half of that, as
in the torch engine (:data:`.torch_engine.SG_HS_NS_BATCH_CENTERS`).

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

from . import base, batches
from .base import ChunkStats, EngineConfig, EngineWeights, SamplingTables
from .triton_kernel import w2v_kernel

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
NS_CENTERS_IN_FLIGHT = 16384
"""The most centers in flight with negative sampling alone (see the module docstring)."""
HS_CENTERS_IN_FLIGHT = 1024
"""... with hierarchical softmax; half of it for skip-gram with both objectives."""
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

    ``offsets`` are validated by :func:`.base.check_chunk`; ``tables`` hold ``sample_int`` and
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

    The arguments are the :class:`~.base.Engine`'s, on a CUDA device (CPU tensors only
    under Triton's interpreter, ``TRITON_INTERPRET=1``, which the tests use); the tables are
    moved to the device once, here (the Huffman paths as int32, uint8, int32).
    ``config.workers`` is ignored: the GPU runs thousands of programs at once. Then, kernel
    tuning:

    Parameters
    ----------
    centers, block_d, num_warps, num_stages : int, optional
        Kernel tuning: centers per program (default: fill ``TARGET_COLUMNS`` columns),
        vector components per loop step, warps per program, and software-pipelining stages
        of the loops (default: Triton's).
    centers_in_flight : int, optional
        The most centers trained at once, rounded down to a multiple of the centers per
        program: the number of programs times their centers. Default:
        :func:`default_centers_in_flight`.
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
        weights: EngineWeights,
        tables: SamplingTables,
        config: EngineConfig,
        *,
        centers: int | None = None,
        centers_in_flight: int | None = None,
        block_d: int = BLOCK_D,
        num_warps: int = NUM_WARPS,
        num_stages: int | None = None,
        dot_precision: str = DOT_PRECISION,
    ):
        tables = base.check_engine(weights, tables, config)
        syn0 = weights.syn0
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
        self.syn0, self.syn1neg, self.syn1 = syn0, weights.syn1neg, weights.syn1
        self.config, self.tables, self.device = config, tables, syn0.device
        depth = self.tables.points.shape[1] if config.hs else 0
        self.shape = launch_shape(
            config.window, config.negative, syn0.shape[1], depth, centers, block_d
        )
        self.centers_in_flight = _centers_in_flight(centers_in_flight, config, self.shape.centers)
        self.dot_precision = dot_precision
        self.launch_options = {"num_warps": num_warps}
        if num_stages is not None:
            self.launch_options["num_stages"] = num_stages
        self.generator = torch.Generator(device=self.device)

    def train_chunk(
        self,
        ids: torch.Tensor,
        offsets: torch.Tensor,
        alpha_start: float,
        alpha_end: float,
        first_sentence: int = 0,
    ) -> ChunkStats:
        """Train on one chunk (see :meth:`.base.Engine.train_chunk`): prepare it, then run
        the kernel. Kept word ``i`` of ``M`` trains at ``alpha_start + (alpha_end -
        alpha_start) * i / M``.

        Raises
        ------
        ValueError
            Bad inputs (:func:`~.base.check_chunk`), or a window wider than the kernel holds
            (``MAX_ROWS``) over the chunk's sentences.
        FloatingPointError
            Training diverged: a score was NaN or infinite (``alpha`` is too high).
        """
        offsets = batches.start_chunk(
            ids, offsets, self.syn0.shape[0], self.generator, self.config.seed, first_sentence
        )
        prepared = prepare_chunk(ids, offsets, self.tables, self.config, self.generator)
        return self.run_kernel(prepared, alpha_start, alpha_end)

    def run_kernel(
        self, prepared: PreparedChunk, alpha_start: float, alpha_end: float
    ) -> ChunkStats:
        """Train the prepared chunk's centers in one launch, ``centers_in_flight`` at a time.

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
        groups = triton.cdiv(m, shape.centers)
        programs = min(groups, self.centers_in_flight // shape.centers)
        partials = torch.empty((programs, 3), dtype=torch.float32, device=self.device)
        alpha_step = float(alpha_end - alpha_start) / m
        with _on(self.device):
            self._launch(
                prepared,
                partials,
                programs,
                triton.cdiv(groups, programs),
                alpha_start,
                alpha_step,
                window,
                shape,
            )
        loss, pairs, nonfinite = partials.double().sum(0).tolist()
        if nonfinite:
            raise base.divergence_error(alpha_start)
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
        programs: int,
        steps: int,
        alpha_start: float,
        alpha_step: float,
        window: int,
        shape: LaunchShape,
    ) -> None:
        """One launch: ``programs`` programs, each training ``steps`` groups of centers
        (program ``p`` groups ``p``, ``p + programs``, ...), their rows spanning ``window``
        positions either side of their centers."""
        cfg, tables = self.config, self.tables
        ns, hs = cfg.negative > 0, cfg.hs
        w2v_kernel[(programs,)](
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
            steps,
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
            DOT_PRECISION=self.dot_precision,
            **self.launch_options,
        )


def _on(device: torch.device) -> contextlib.AbstractContextManager:
    """A context making ``device`` current for the launch (a no-op off CUDA)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def default_centers_in_flight(config: EngineConfig) -> int:
    """The most centers trained at once for ``config``'s objectives (module docstring)."""
    if not config.hs:
        return NS_CENTERS_IN_FLIGHT
    return HS_CENTERS_IN_FLIGHT // 2 if config.sg and config.negative else HS_CENTERS_IN_FLIGHT


def _centers_in_flight(requested: int | None, config: EngineConfig, centers: int) -> int:
    """The centers in flight, a positive multiple of ``centers`` per program."""
    limit = requested if requested is not None else default_centers_in_flight(config)
    if limit < 1:
        raise ValueError(f"centers_in_flight must be >= 1, got {limit}")
    return max(1, limit // centers) * centers
