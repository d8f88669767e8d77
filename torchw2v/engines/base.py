"""The contract every training engine meets.

An engine owns the hot path: given a chunk of the encoded corpus it applies word2vec's SGD
update (skip-gram or CBOW; negative sampling, hierarchical softmax or both) to the embedding
tensors in place. The trainer
decides chunks, learning rates and epochs; the engine never sees a string or an epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

_MASK64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64 of ``x`` (mod 2**64): decorrelates the per-chunk seeds."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def chunk_seed(seed: int, first_sentence: int) -> int:
    """The seed of a chunk whose first sentence is the run's sentence ``first_sentence`` (its
    index over all epochs), for an engine seeded with ``seed``.

    Every engine draws a chunk's randomness (subsampling, windows, negatives) from streams
    seeded with this value, so a chunk draws alike however the run was cut into chunks,
    threads or ranks, and a resumed run draws what the uninterrupted run drew. The compiled
    engine seeds sentence ``s``'s stream with ``chunk_seed(seed, s)``. A signed 64-bit
    value, as the C++ op's ``int`` argument takes.
    """
    x = (_mix(seed & _MASK64) + first_sentence) & _MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


@dataclass(frozen=True)
class EngineConfig:
    """Settings an engine needs beyond the tensors it updates.

    Attributes
    ----------
    window : int
        Maximum distance between a center word and a context word.
    negative : int
        Negative samples drawn per center word and shared by all of its contexts.
    shrink_windows : bool
        Draw each center's effective window uniformly from ``1..window`` (word2vec.c, gensim).
    workers : int
        Threads the engine may use (Hogwild over the shared tensors).
    seed : int
        Seed of the engine's random streams (subsampling, windows, negatives).
    compute_loss : bool
        Whether ``train_chunk`` also sums the loss.
    sg : bool
        Skip-gram (each context word's input vector predicts the center word) when true,
        CBOW (the sum or mean of the context input vectors predicts the center word) when false.
    hs : bool
        Train hierarchical softmax (``syn1`` along the center word's Huffman path), alone or
        together with negative sampling (when ``negative > 0``).
    cbow_mean : bool
        CBOW only: average the context vectors (true) or sum them (false), as gensim does.
    """

    window: int
    negative: int
    shrink_windows: bool = True
    workers: int = 1
    seed: int = 1
    compute_loss: bool = False
    sg: bool = True
    hs: bool = False
    cbow_mean: bool = True


@dataclass(frozen=True)
class EngineWeights:
    """The matrices an engine updates in place, all on one device.

    Attributes
    ----------
    syn0 : torch.Tensor
        ``(V, d)`` float32 contiguous input vectors.
    syn1neg : torch.Tensor
        Negative-sampling output vectors, ``(V, d)`` like ``syn0`` when ``config.negative >
        0``; not read otherwise (then typically ``(0, d)``).
    syn1 : torch.Tensor or None
        Hierarchical-softmax output vectors, ``(V, d)`` like ``syn0``: given exactly when
        ``config.hs``.
    """

    syn0: torch.Tensor
    syn1neg: torch.Tensor
    syn1: torch.Tensor | None = None


@dataclass(frozen=True)
class SamplingTables:
    """Per-word tables, built by :mod:`torchw2v.vocab`, on the engine's device.

    Attributes
    ----------
    sample_int : torch.Tensor
        ``(V,)`` int64. Keep a word occurrence when a uniform random uint32 is below
        ``sample_int[word]`` (gensim's frequent-word subsampling).
    cum_table : torch.Tensor
        ``(V,)`` int64. gensim's cumulative unigram^ns_exponent table: a negative is
        ``searchsorted(cum_table, r, side='left')`` for ``r`` uniform in ``[0, cum_table[-1])``.
    points, codes : torch.Tensor or None
        ``(V, L)`` int64 and ``(V, L)`` uint8: word ``w``'s Huffman path, as gensim builds it,
        is ``points[w, :lengths[w]]`` (rows of ``syn1``) with binary ``codes[w, :lengths[w]]``;
        padded with 0 up to the deepest word ``L``. ``None`` unless hierarchical softmax.
    lengths : torch.Tensor or None
        ``(V,)`` int64 path lengths; ``None`` unless hierarchical softmax.
    """

    sample_int: torch.Tensor
    cum_table: torch.Tensor
    points: torch.Tensor | None = None
    codes: torch.Tensor | None = None
    lengths: torch.Tensor | None = None


@dataclass
class ChunkStats:
    """What one ``train_chunk`` call did."""

    words: int = 0
    """Center words trained, i.e. in-vocabulary words left after subsampling."""
    loss: float = 0.0
    """Summed loss over all predictions (negative sampling and/or hierarchical softmax terms);
    0.0 unless ``compute_loss``."""
    pairs: int = 0
    """Predictions trained: (center, context) pairs in skip-gram, center words with at least
    one context in CBOW."""

    def __iadd__(self, other: ChunkStats) -> ChunkStats:
        self.words += other.words
        self.loss += other.loss
        self.pairs += other.pairs
        return self


class Engine(Protocol):
    """A training engine: ``Engine(weights, tables, config)``.

    Parameters
    ----------
    weights : EngineWeights
        The matrices ``train_chunk`` updates in place.
    tables : SamplingTables
        ``sample_int`` and ``cum_table``, and with ``config.hs`` the Huffman paths.
    config : EngineConfig
        Architecture, objectives, window, negatives, seed, workers, loss.

    Every engine checks these with :func:`check_engine` (a ``ValueError`` naming what is
    wrong). A chunk draws its randomness from streams seeded by
    ``chunk_seed(config.seed, first_sentence)``.
    """

    def train_chunk(
        self,
        ids: torch.Tensor,
        offsets: torch.Tensor,
        alpha_start: float,
        alpha_end: float,
        first_sentence: int = 0,
    ) -> ChunkStats:
        """Train on one chunk of sentences.

        Parameters
        ----------
        ids : torch.Tensor
            ``(N,)`` int32 vocabulary ids of the chunk's tokens, sentences back to back.
        offsets : torch.Tensor
            ``(S + 1,)`` int64 sentence boundaries into ``ids``, starting at 0 and ending at N.
            Context windows never cross a boundary.
        alpha_start, alpha_end : float
            Learning rate at the first and at the last token; it decays linearly between.
        first_sentence : int, optional
            The index of the chunk's first sentence in the run (over all epochs and ranks),
            which keys its random streams (:func:`chunk_seed`). The compiled engine draws
            each sentence from its own stream, so that any cut of the corpus into chunks,
            threads or ranks draws alike.

        Returns
        -------
        ChunkStats
            Kept (trained) center words, summed loss (0.0 unless ``compute_loss``) and
            predictions (skip-gram: (center, context) pairs; CBOW: centers with a context).

        Raises
        ------
        ValueError or RuntimeError
            Bad inputs (see :func:`check_chunk`; the compiled op's own checks raise
            ``RuntimeError``).
        FloatingPointError
            Training diverged (:func:`divergence_error`).
        """
        ...


def divergence_error(alpha: float, where: str = "", name: str = "alpha") -> FloatingPointError:
    """The error every engine raises when training diverges to NaN or infinity.

    Parameters
    ----------
    alpha : float
        The learning rate in force when the divergence was seen.
    where : str, optional
        Where it was seen, e.g. ``"in epoch 3"``.
    name : str, optional
        The setting that gave the rate (``"min_alpha"`` when it is the larger).
    """
    place = f" {where}" if where else ""
    return FloatingPointError(
        f"training diverged to NaN/inf{place}; the learning rate {name}={alpha:g} is too high "
        f"for this corpus: lower it (e.g. {name}={alpha / 10:g})"
    )


def huffman_tables(
    tables: SamplingTables, vocab: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Huffman paths of ``tables`` as the compiled engines take them, checked.

    Returns
    -------
    (torch.Tensor, torch.Tensor, torch.Tensor)
        ``points`` ``(V, L)`` int32, ``codes`` ``(V, L)`` uint8 and ``lengths`` ``(V,)`` int32
        on ``device``, contiguous; ``L >= 1`` (a one-word vocabulary has no path: one padding
        column).

    Raises
    ------
    ValueError
        A table is missing, of the wrong shape, or out of range.
    """
    missing = [name for name in ("points", "codes", "lengths") if getattr(tables, name) is None]
    if missing:
        raise ValueError(
            "hierarchical softmax needs tables.points, tables.codes and tables.lengths; "
            f"SamplingTables lacks {missing}"
        )
    points = tables.points.to(device, torch.int64)
    codes = tables.codes.to(device, torch.int64)
    lengths = tables.lengths.to(device, torch.int64)
    if points.dim() != 2 or points.shape[0] != vocab or codes.shape != points.shape:
        raise ValueError(
            f"tables.points and tables.codes must both be (V, L) with V={vocab}, got "
            f"{tuple(points.shape)} and {tuple(codes.shape)}"
        )
    if lengths.shape != (vocab,):
        raise ValueError(f"tables.lengths must be ({vocab},), got {tuple(lengths.shape)}")
    depth = points.shape[1]
    on_path = torch.arange(depth, device=device) < lengths[:, None]  # (V, L)
    bad_node = ((points < 0) | (points >= vocab) | (codes < 0) | (codes > 1)) & on_path
    if (lengths < 0).any() or (lengths > depth).any() or bad_node.any():
        raise ValueError(
            f"the Huffman tables are out of range: lengths must lie in [0, {depth}], points "
            f"in [0, {vocab}) and codes in {{0, 1}} along each path"
        )
    if depth == 0:
        points, codes = points.new_zeros(vocab, 1), codes.new_zeros(vocab, 1)
    return (
        points.to(torch.int32).contiguous(),
        codes.to(torch.uint8).contiguous(),
        lengths.to(torch.int32).contiguous(),
    )


def check_objectives(config: EngineConfig, syn1: torch.Tensor | None) -> None:
    """Raise ``ValueError`` unless ``config`` trains something, with ``syn1`` exactly when
    ``config.hs``."""
    if config.window < 1 or config.negative < 0:
        raise ValueError(
            "need window >= 1 and negative >= 0, got "
            f"window={config.window}, negative={config.negative}"
        )
    if config.negative == 0 and not config.hs:
        raise ValueError(
            f"nothing to train with negative={config.negative} and hs={config.hs}: need "
            "negative > 0 (negative sampling), hs=True (hierarchical softmax), or both"
        )
    if config.hs and syn1 is None:
        raise ValueError("hierarchical softmax (config.hs) needs syn1 of syn0's shape, got None")
    if not config.hs and syn1 is not None:
        raise ValueError("syn1 is given but config.hs is false (hs=0): pass syn1=None")


def check_weights(weights: EngineWeights, config: EngineConfig) -> None:
    """``syn0`` and the output matrices ``config`` trains are 2-D float32, contiguous, alike.

    Raises
    ------
    ValueError
        Naming the matrix and what is wrong with it.
    """
    syn0 = weights.syn0
    outputs = {"syn1neg": weights.syn1neg} if config.negative > 0 else {}
    if config.hs:
        outputs["syn1"] = weights.syn1
    for name, t in (("syn0", syn0), *outputs.items()):
        if t.dtype != torch.float32 or t.dim() != 2:
            raise ValueError(
                f"{name} must be a 2-D float32 tensor, got {t.dtype} of shape {tuple(t.shape)}"
            )
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous (it is updated in place)")
    for name, t in outputs.items():
        if t.shape != syn0.shape or t.device != syn0.device:
            raise ValueError(
                f"syn0 and {name} must have the same shape and device, got "
                f"{tuple(syn0.shape)} on {syn0.device} and {tuple(t.shape)} on {t.device}"
            )
    if syn0.shape[0] < 1 or syn0.shape[1] < 1:
        raise ValueError(f"empty embedding matrix of shape {tuple(syn0.shape)}")


def check_engine(
    weights: EngineWeights, tables: SamplingTables, config: EngineConfig
) -> SamplingTables:
    """Check an engine's arguments against the contract (:class:`Engine`); return ``tables``
    checked, contiguous on the weights' device.

    The Huffman tables come back as :func:`huffman_tables` gives them (int32, uint8, int32)
    with ``config.hs``, and are left out without it.

    Raises
    ------
    ValueError
        ``config`` trains nothing, or a weight matrix or table is missing or of the wrong
        dtype, shape, layout or range; the message names it.
    """
    check_objectives(config, weights.syn1)
    check_weights(weights, config)
    vocab, device = weights.syn0.shape[0], weights.syn0.device
    sample_int = tables.sample_int.to(device, torch.int64).contiguous()
    cum_table = tables.cum_table.to(device, torch.int64).contiguous()
    for name, t in (("sample_int", sample_int), ("cum_table", cum_table)):
        if t.dim() != 1 or t.numel() != vocab:
            raise ValueError(
                f"{name} must be ({vocab},), one entry per word, got shape {tuple(t.shape)}"
            )
    if config.negative > 0 and int(cum_table[-1]) <= 0:
        raise ValueError("cum_table[-1] must be > 0 to draw negatives")
    if not config.hs:
        return SamplingTables(sample_int, cum_table)
    return SamplingTables(sample_int, cum_table, *huffman_tables(tables, vocab, device))


def check_chunk(ids: torch.Tensor, offsets: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Validate a chunk (see :meth:`Engine.train_chunk`); return its offsets on the CPU.

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
        lo, hi = (int(v) for v in torch.aminmax(ids))
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"ids out of range: they must lie in [0, {vocab_size}), found {bad}")
    return off
