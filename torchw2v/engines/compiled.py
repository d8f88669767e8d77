"""The compiled CPU engine: a C++ op that trains a chunk with Hogwild threads.

The op (``torch.ops.torchw2v.train_chunk``, source in ``csrc/word2vec_cpu.cpp``) is
built with :func:`torch.utils.cpp_extension.load` on first use and cached in torch's
extension directory (``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``),
so later processes only load it. It implements gensim's word2vec: skip-gram or CBOW
(``cbow_mean`` either way), negative sampling (the negatives drawn once per center word and
shared by all of its contexts), hierarchical softmax, or both; it runs ``config.workers``
threads that update ``syn0``, ``syn1neg`` and ``syn1`` in place without locks, as word2vec.c
and gensim do. The GIL is released while the op runs.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import threading
from collections.abc import Callable
from pathlib import Path

import torch

from .base import (
    ChunkStats,
    EngineConfig,
    EngineWeights,
    SamplingTables,
    check_engine,
    chunk_seed,
    divergence_error,
)

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "csrc" / "word2vec_cpu.cpp"
EXTENSION_NAME = "torchw2v_cpu"
PART_TOKENS = 10000
"""The fewest tokens a thread is given (gensim's jobs of ``batch_words``): a chunk of fewer
trains on one thread, so that a small corpus trains alike on every run, as in gensim."""
DISABLE_ENV = "TORCHW2V_DISABLE_COMPILED"
"""Set to a non-empty value other than ``0`` to never build or use the compiled op."""
MAX_NEGATIVE = 10000
"""The most negatives per center word the op takes (its ``kMaxNegative``)."""
MAX_WORKERS = 1024
"""The most threads the op runs (its ``kMaxWorkers``)."""


def _host_tag() -> str:
    """A short fingerprint of this CPU's instruction set.

    The op is built with ``-march=native``; the tag goes into the compiler flags, so a
    build cached on one CPU is rebuilt, not loaded, on a CPU with other features.
    """
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = line
                    break
    except OSError:
        pass
    text = f"{platform.machine()}|{platform.processor()}|{flags}"
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _cflags() -> list[str]:
    # No -ffast-math: the kernels vectorise by hand (GCC vector extensions) and through
    # `#pragma omp simd` (-fopenmp-simd); fast-math measured no faster and would loosen the
    # loss's log/exp and NaN semantics. -ffp-contract=fast lets a*b+c become one FMA.
    return [
        "-O3",
        "-march=native",
        "-fopenmp-simd",
        "-fno-math-errno",
        "-ffp-contract=fast",
        f"-DTORCHW2V_HOST={_host_tag()}",
    ]


def _registered_op() -> Callable[..., torch.Tensor] | None:
    """The op if a library registering it is already loaded in this process."""
    try:
        return torch.ops.torchw2v.train_chunk
    except (AttributeError, RuntimeError):
        return None


def _compile(
    name: str, source: Path, registered: Callable[[], Callable | None] = _registered_op
) -> Callable[..., torch.Tensor]:
    """Build (or find in torch's extension cache) and load the op that ``registered`` looks
    up (by default ``train_chunk``); raise on failure. The build is named after ``name`` and
    a hash of the source, so that installs of different sources never load each other's."""
    from torch.utils import cpp_extension

    digest = hashlib.sha1(source.read_bytes()).hexdigest()[:12]
    cpp_extension.load(
        name=f"{name}_{digest}",
        sources=[str(source)],
        extra_cflags=_cflags(),
        is_python_module=False,
        verbose=False,
    )
    op = registered()
    if op is None:
        raise RuntimeError(f"{source.name} was loaded but registered no torchw2v op")
    return op


def summarize_reason(reason: str) -> str:
    """The most telling line of a build failure: the compiler's first error, if any."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() and "Error building extension" not in line:
            return line[:300]
    return lines[0][:300] if lines else "unknown reason"


_lock = threading.Lock()


@functools.cache
def _load() -> tuple[Callable[..., torch.Tensor] | None, str]:
    """Build/load the op once per process: ``(op, "")``, or ``(None, reason)``."""
    with _lock:
        if os.environ.get(DISABLE_ENV, "").strip() not in ("", "0"):
            return None, f"disabled by the environment variable {DISABLE_ENV}"
        op = _registered_op()
        if op is not None:
            return op, ""
        try:
            return _compile(EXTENSION_NAME, SOURCE), ""
        except Exception as err:  # the compiler's or the loader's reason, whatever it is
            reason = f"{type(err).__name__}: {err}".strip()
            if len(reason) > 6000:
                reason = reason[:1500] + "\n...\n" + reason[-4500:]
            return None, reason


def load_op() -> Callable[..., torch.Tensor]:
    """The compiled ``train_chunk`` op, built on first use.

    The first call in a process compiles the C++ source (about 15 s) unless torch's
    extension cache already holds a build of this source for these flags; later calls
    return at once.

    Returns
    -------
    callable
        ``torch.ops.torchw2v.train_chunk``.

    Raises
    ------
    RuntimeError
        The extension cannot be built or loaded here; the message carries the reason
        (the compiler's output). The failure is remembered: later calls raise at once.
    """
    op, reason = _load()
    if op is None:
        raise RuntimeError(
            f"torchw2v: cannot build the compiled CPU engine ({summarize_reason(reason)}).\n"
            f"Full reason:\n{reason}"
        )
    return op


@functools.cache
def is_available() -> bool:
    """Whether the compiled op builds and loads here. Never raises.

    The first call may compile the op (see :func:`load_op`). A failure is logged once at
    WARNING with its reason (the full compiler output at DEBUG).
    """
    op, reason = _load()
    if op is None:
        logger.warning(
            "torchw2v: compiled CPU engine unavailable (%s); "
            "falling back to the vectorised torch engine",
            summarize_reason(reason),
        )
        logger.debug("torchw2v: compiled CPU engine build failure:\n%s", reason)
        return False
    return True


class CompiledEngine:
    """word2vec on CPU with the compiled op and ``config.workers`` Hogwild threads.

    Skip-gram or CBOW (``config.sg``, ``config.cbow_mean``) with negative sampling
    (``config.negative > 0``), hierarchical softmax (``config.hs``) or both.

    The arguments are the :class:`~.base.Engine`'s, on the CPU; the tables are converted
    to contiguous tensors of the op's dtypes once, here.

    Raises
    ------
    ValueError
        A tensor is missing, not on the CPU, or has the wrong dtype, shape or layout; the
        config trains nothing (``negative == 0`` without ``hs``); or ``config.negative`` or
        ``config.workers`` exceeds :data:`MAX_NEGATIVE` or :data:`MAX_WORKERS`.
    RuntimeError
        The op cannot be built here (see :func:`load_op`).

    Notes
    -----
    Each sentence draws from its own random stream, seeded by ``chunk_seed(config.seed, s)``
    for the run's sentence ``s``: a run with a fixed seed and ``workers=1`` is bit-for-bit
    reproducible, and any ``workers``, chunks or ranks draw the same. With ``workers > 1``
    the threads race on shared rows (Hogwild), so results vary slightly from run to run.
    """

    def __init__(self, weights: EngineWeights, tables: SamplingTables, config: EngineConfig):
        syn0, syn1neg, syn1 = weights.syn0, weights.syn1neg, weights.syn1
        if syn0.device.type != "cpu" or not 1 <= config.workers <= MAX_WORKERS:
            raise ValueError(
                f"the compiled CPU engine needs CPU tensors and workers in [1, {MAX_WORKERS}], "
                f"got {syn0.device} and workers={config.workers}"
            )
        if config.negative > MAX_NEGATIVE:
            raise ValueError(
                f"the compiled CPU engine takes at most negative={MAX_NEGATIVE}, "
                f"got {config.negative}"
            )
        tables = check_engine(weights, tables, config)
        if config.hs:
            self.points, self.codes, self.lengths = tables.points, tables.codes, tables.lengths
        else:
            syn1 = syn0.new_empty(0, syn0.shape[1])  # not read by the op
            self.points = torch.empty(0, 0, dtype=torch.int32)
            self.codes = torch.empty(0, 0, dtype=torch.uint8)
            self.lengths = torch.empty(0, dtype=torch.int32)
        self.op = load_op()
        self.syn0, self.syn1neg, self.syn1, self.config = syn0, syn1neg, syn1, config
        self.sample_int, self.cum_table = tables.sample_int, tables.cum_table

    def train_chunk(
        self,
        ids: torch.Tensor,
        offsets: torch.Tensor,
        alpha_start: float,
        alpha_end: float,
        first_sentence: int = 0,
    ) -> ChunkStats:
        """Train on one chunk (see :meth:`.base.Engine.train_chunk`) with ``workers`` threads.

        The learning rate decays linearly over the chunk, updated once per sentence. Sentence
        ``s`` of the chunk draws from a stream seeded by ``chunk_seed(seed, first_sentence +
        s)``: the draws depend on neither ``workers`` nor how the corpus was cut.

        Raises
        ------
        RuntimeError
            Bad inputs (dtype, shape, ids out of range, offsets not from 0 to N, a learning
            rate that is not a finite float32), or a chunk whose buffers would exceed the op's
            scratch limit (2**28 values: the longest sentence's tokens times ``negative``, plus
            its contexts times the targets of a center).
        FloatingPointError
            Training diverged (:func:`~.base.divergence_error`); the op stopped at the first
            NaN or infinite score without applying it.
        """
        cfg = self.config
        seed = chunk_seed(cfg.seed, first_sentence)
        out = self.op(
            self.syn0,
            self.syn1neg,
            self.syn1,
            ids,
            offsets,
            self.sample_int,
            self.cum_table,
            self.points,
            self.codes,
            self.lengths,
            cfg.window,
            cfg.negative,
            cfg.hs,
            cfg.sg,
            cfg.cbow_mean,
            cfg.shrink_windows,
            float(alpha_start),
            float(alpha_end),
            seed,
            min(cfg.workers, max(1, ids.numel() // PART_TOKENS)),
            cfg.compute_loss,
        )
        words, loss, pairs, diverged = out.tolist()
        if diverged:
            raise divergence_error(alpha_start)
        return ChunkStats(words=int(words), loss=float(loss), pairs=int(pairs))
