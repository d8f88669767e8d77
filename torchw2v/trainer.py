"""The training loop: epochs, learning-rate schedule, chunks, progress, callbacks.

:func:`fit` is ``Word2Vec.train``'s run: it makes the engine for the model's settings and
runs the :class:`Trainer` over the corpus, through the hooks of :class:`OneProcess` (or of a
distributed ``Cluster``). No per-pair math lives here: each chunk of whole sentences goes to
the engine, which applies the update. The learning rate decays linearly from ``start_alpha``
to ``end_alpha`` over all epochs, as in gensim; each chunk gets the rates at its first and
last word, and the index of its first sentence, which keys its random draws: where a
sentence lies in the epoch decides how it is trained, not how the corpus was cut into
chunks, threads or ranks.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .corpus import ScannedCorpus, StreamedCorpus
from .engines import (
    ChunkStats,
    Engine,
    EngineConfig,
    EngineWeights,
    SamplingTables,
    create_engine,
)
from .engines.base import divergence_error
from .engines.lockf import LockedRows
from .vocab import huffman_paths
from .weights import sync_to_host

logger = logging.getLogger(__name__)

CHUNK_WORDS = 2**18


@dataclass
class Schedule:
    """Epochs and the linear learning-rate decay across them."""

    epochs: int
    start_alpha: float
    end_alpha: float

    def alpha(self, epoch: int, epoch_progress: float) -> float:
        """Learning rate at ``epoch_progress`` (0..1) through ``epoch`` (0-based)."""
        progress = (epoch + epoch_progress) / self.epochs
        return self.start_alpha - (self.start_alpha - self.end_alpha) * progress


@dataclass
class EpochReport:
    """What one epoch did; ``loss`` is float64 and starts from zero each epoch."""

    epoch: int
    raw_words: int
    stats: ChunkStats
    seconds: float


@dataclass
class Position:
    """Where training stands: the next chunk of an epoch, and that epoch's totals so far."""

    epoch: int = 0
    chunk: int = 0
    stats: ChunkStats = field(default_factory=ChunkStats)


@dataclass
class ChunkPlan:
    """How an epoch is cut into chunks, and where each chunk lies in the whole epoch (all
    ranks' sentences, in corpus order), which keys its random draws and its learning rates.

    Attributes
    ----------
    bounds : numpy.ndarray
        ``(C + 1,)`` sentence indices into this process's corpus: chunk ``c`` is sentences
        ``bounds[c]:bounds[c + 1]``.
    first : numpy.ndarray
        ``(C,)`` int64: the index of each chunk's first sentence among the epoch's.
    start, end : numpy.ndarray
        ``(C,)`` float64: the fraction of the epoch's tokens before each chunk's first token
        and past its last; the learning rate follows them.
    part : numpy.ndarray
        ``(C,)`` int64: the part of the corpus (:attr:`StreamedCorpus.parts`) each chunk is
        of.
    sentences : int
        The epoch's sentences.
    """

    bounds: np.ndarray
    first: np.ndarray
    start: np.ndarray
    end: np.ndarray
    part: np.ndarray
    sentences: int


def chunk_plan(
    corpus: StreamedCorpus,
    chunk_words: int,
    places: np.ndarray | None = None,
    totals: tuple[int, int] | None = None,
) -> ChunkPlan:
    """``corpus``'s chunks of about ``chunk_words`` tokens, placed in the epoch.

    Parameters
    ----------
    places : numpy.ndarray, optional
        ``(P, 2)`` int64: the epoch's sentences and tokens before each of ``corpus.parts``
        (its stripes, in distributed training); default: ``corpus``'s own.
    totals : (int, int), optional
        The epoch's sentences and tokens; default: ``corpus``'s.
    """
    bounds, done = corpus.plan(chunk_words)
    parts = corpus.parts
    if places is None:
        places = np.stack((parts.sentences[:-1], parts.tokens[:-1]), axis=1)
        totals = (corpus.sentences, corpus.tokens)
    part = parts.holding(bounds[:-1])  # (C,)
    shift = places - np.stack((parts.sentences[:-1], parts.tokens[:-1]), axis=1)  # (P, 2)
    sentences, tokens = totals
    return ChunkPlan(
        bounds,
        bounds[:-1] + shift[part, 0],
        (done[:-1] + shift[part, 1]) / max(tokens, 1),
        (done[1:] + shift[part, 1]) / max(tokens, 1),
        part,
        sentences,
    )


class Trainer:
    """Runs epochs of one engine over one encoded corpus.

    Parameters
    ----------
    engine : Engine
        Applies the update to the weight tensors.
    corpus : StreamedCorpus
        The training corpus as ids, read again each epoch.
    device : torch.device
        Where the engine's tensors live; each chunk's ids are moved there.
    plan : ChunkPlan
        The chunks, and where each lies in the epoch (:func:`chunk_plan`).
    show_loss : bool
        Show the epoch's mean loss per pair in the progress bar (when the engine computes
        the loss, ``compute_loss``).
    """

    def __init__(
        self,
        engine: Engine,
        corpus: StreamedCorpus,
        device: torch.device,
        plan: ChunkPlan,
        show_loss: bool = False,
    ):
        self.engine, self.corpus, self.device, self.plan = engine, corpus, device, plan
        self.show_loss = show_loss

    @property
    def chunks_per_epoch(self) -> int:
        """How many chunks one pass over the corpus takes."""
        return len(self.plan.bounds) - 1

    def chunks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """Each chunk's ids, offsets from zero, and its first token's position in the corpus."""
        for ids, offsets, start in self.corpus.chunks(self.plan.bounds):
            yield torch.from_numpy(ids).to(self.device), torch.from_numpy(offsets), start

    def run(
        self,
        schedule: Schedule,
        on_epoch_begin: Callable[[int], None],
        on_epoch_end: Callable[[EpochReport], None],
        report_delay: float = 1.0,
        start: Position | None = None,
        on_chunk_end: Callable[[Position], None] | None = None,
    ) -> list[EpochReport]:
        """Train all epochs from ``start`` (default: the beginning); call the hooks around
        each epoch, and ``on_chunk_end`` with the position after each chunk."""
        start = start or Position()
        plan, total = self.plan, max(self.corpus.tokens, 1)
        reports = []
        with tqdm(
            total=total * schedule.epochs,
            initial=total * start.epoch,
            unit="w",
            unit_scale=True,
            disable=not sys.stderr.isatty(),
            desc="training",
        ) as bar:
            for epoch in range(start.epoch, schedule.epochs):
                on_epoch_begin(epoch)
                started = last_log = time.perf_counter()
                resumed = epoch == start.epoch
                stats = start.stats if resumed else ChunkStats()
                for index, (ids, offsets, start_word) in enumerate(self.chunks()):
                    if resumed and index < start.chunk:
                        continue
                    end = start_word + ids.numel()
                    stats += self.engine.train_chunk(
                        ids,
                        offsets,
                        schedule.alpha(epoch, float(plan.start[index])),
                        schedule.alpha(epoch, float(plan.end[index])),
                        epoch * plan.sentences + int(plan.first[index]),
                    )
                    bar.update(ids.numel())
                    if self.show_loss and stats.pairs:
                        bar.set_postfix(loss=f"{stats.loss / stats.pairs:.4f}", refresh=False)
                    if time.perf_counter() - last_log >= report_delay:
                        last_log = time.perf_counter()
                        logger.info(
                            "EPOCH %i - PROGRESS: at %.2f%% words, %.0f words/s",
                            epoch,
                            100 * plan.end[index],
                            end / (last_log - started),
                        )
                    if on_chunk_end is not None:
                        on_chunk_end(Position(epoch, index + 1, stats))
                report = EpochReport(
                    epoch, self.corpus.raw_words, stats, time.perf_counter() - started
                )
                logger.info(
                    "EPOCH %i: training on %i raw words (%i effective words) took %.1fs, "
                    "%.0f effective words/s",
                    epoch,
                    report.raw_words,
                    stats.words,
                    report.seconds,
                    stats.words / max(report.seconds, 1e-9),
                )
                on_epoch_end(report)
                reports.append(report)
        return reports


class OneProcess:
    """Training in this process alone: the hooks through which distributed training
    (:class:`torchw2v.distributed.Cluster`) shards the corpus, merges the vocabulary and
    keeps the ranks in step. Here each is the identity or does nothing.

    Attributes
    ----------
    rank, world : int
        0 and 1.
    device : torch.device
        Where the model trains.
    """

    rank, world = 0, 1

    def __init__(self, device: torch.device):
        self.device = device

    def shard(self, sentences: Iterable[list[str]], training: bool = False) -> Iterable[list[str]]:
        """This rank's part of the corpus (to count or to train on): all of it."""
        return sentences

    def merge_vocabulary(
        self, scanned: ScannedCorpus, shard: Iterable[list[str]]
    ) -> tuple[ScannedCorpus, int, int]:
        """The whole corpus's raw vocabulary, sentences and raw words: this rank's."""
        return scanned, scanned.sentences, scanned.raw_words

    def total(self, count: int) -> int:
        """``count`` added up over the ranks: this rank's."""
        return count

    def plan(self, corpus: StreamedCorpus) -> ChunkPlan:
        """The chunks every rank trains in step: here those of :data:`CHUNK_WORDS`."""
        return chunk_plan(corpus, CHUNK_WORDS)

    def share_start(self, start: Position | None) -> Position | None:
        """Rank 0's resume position, for every rank."""
        return start

    def rates(self, schedule: Schedule, sg: bool) -> Schedule:
        """The learning rates this rank trains with: ``schedule``'s."""
        return schedule

    def shared_weights(self, model: Any) -> AbstractContextManager[None]:
        """Where ``model``'s weights train meanwhile: in place."""
        return nullcontext()

    def chunk_end(
        self,
        weights: Sequence[torch.Tensor],
        chunks_per_epoch: int,
        counts: Sequence[np.ndarray | None],
        saver: Callable[[Position], None] | None,
    ) -> Callable[[Position], None] | None:
        """The ``on_chunk_end`` hook: keeps the ranks' weights in step (``counts[i]``: the
        corpus count of each row's word of ``weights[i]``, ``None`` for rows of no word),
        then calls ``saver``: here ``saver`` alone."""
        return saver

    def sum_report(self, report: EpochReport) -> EpochReport:
        """The epoch's report with every rank's counts added up."""
        return report

    def wait_for_ranks(self) -> None:
        """Wait for the ranks that train weights shared with this one (so that callbacks see
        no rank training): none."""


def fit(
    model: Any,
    corpus: StreamedCorpus,
    schedule: Schedule,
    hooks: OneProcess,
    start: Position | None = None,
    saver: Callable[[Position], None] | None = None,
    report_delay: float = 1.0,
) -> tuple[int, int]:
    """Train ``model`` (a :class:`torchw2v.Word2Vec`) on ``corpus``: ``Word2Vec.train``'s run.

    Parameters
    ----------
    hooks : OneProcess
        This process's place among the ranks (a ``Cluster`` in distributed training).
    start : Position, optional
        Where a checkpoint left off; default: the beginning.
    saver : callable, optional
        Called after each chunk with the position (checkpoints).

    Returns
    -------
    (int, int)
        Effective words trained and raw words read, over all epochs.

    Raises
    ------
    FloatingPointError
        Training diverged; the message names the larger of the schedule's rates and a smaller
        one.
    """
    start = hooks.share_start(start)
    with hooks.shared_weights(model):
        return _fit(model, corpus, schedule, hooks, start, saver, report_delay)


def _fit(
    model: Any,
    corpus: StreamedCorpus,
    schedule: Schedule,
    hooks: OneProcess,
    start: Position | None,
    saver: Callable[[Position], None] | None,
    report_delay: float,
) -> tuple[int, int]:
    engine = engine_for(model, model.seed + model.train_count)
    trainer = Trainer(engine, corpus, model.device, hooks.plan(corpus), model.compute_loss)
    logger.info(
        "training model with %i workers on %i vocabulary and %i features, using sg=%s "
        "hs=%s sample=%s negative=%s window=%s shrink_windows=%s on %s with the %s engine",
        model.workers,
        len(model.wv),
        model.vector_size,
        model.sg,
        model.hs,
        model.sample,
        model.negative,
        model.window,
        model.shrink_windows,
        model.device,
        type(engine).__name__,
    )
    model.running_training_loss = 0.0
    started = time.perf_counter()
    for callback in model.callbacks:
        callback.on_train_begin(model)
    hooks.wait_for_ranks()
    weights = (model._syn0, model._syn1neg, model._syn1)
    counts = model.wv.expandos["count"]  # of syn0's and syn1neg's rows; syn1's are tree nodes
    on_chunk_end = hooks.chunk_end(weights, trainer.chunks_per_epoch, (counts, counts, None), saver)

    def epoch_ends(report: EpochReport) -> None:
        _epoch_ends(model, hooks.sum_report(report), schedule)
        hooks.wait_for_ranks()

    try:
        reports = trainer.run(
            hooks.rates(schedule, bool(model.sg)),
            on_epoch_begin=lambda epoch: _epoch_begins(model),
            on_epoch_end=epoch_ends,
            report_delay=report_delay,
            start=start,
            on_chunk_end=on_chunk_end,
        )
    except FloatingPointError:  # an engine names the rate of its chunk: name the user's
        raise _diverged(schedule) from None
    for callback in model.callbacks:
        callback.on_train_end(model)
    elapsed = time.perf_counter() - started
    trained = sum(r.stats.words for r in reports)
    raw = sum(r.raw_words for r in reports)
    model.train_count += 1
    model.total_train_time += elapsed
    model.min_alpha_yet_reached = schedule.end_alpha
    logger.info(
        "training on %i raw words (%i effective words) took %.1fs, %.0f effective words/s",
        raw,
        trained,
        elapsed,
        trained / max(elapsed, 1e-9),
    )
    return trained, raw


def _epoch_begins(model: Any) -> None:
    for callback in model.callbacks:
        callback.on_epoch_begin(model)


def _diverged(schedule: Schedule) -> FloatingPointError:
    """The divergence error naming the user's larger rate, alpha or min_alpha."""
    if schedule.end_alpha > schedule.start_alpha:
        return divergence_error(schedule.end_alpha, name="min_alpha")
    return divergence_error(schedule.start_alpha)


def _epoch_ends(model: Any, report: EpochReport, schedule: Schedule) -> None:
    """Bring the weights to the host, check them, record the loss, call the callbacks."""
    sync_to_host(model)
    if not all(np.isfinite(w).all() for w in (model.wv.vectors, model.syn1neg, model.syn1)):
        raise _diverged(schedule)
    model.epoch_loss = report.stats.loss
    model.running_training_loss += report.stats.loss
    for callback in model.callbacks:
        callback.on_epoch_end(model)


def engine_for(model: Any, seed: int) -> Engine:
    """The training engine for ``model``'s settings, device and weights."""
    engine = create_engine(
        model.engine,
        EngineWeights(model._syn0, model._syn1neg, model._syn1 if model.hs else None),
        sampling_tables(model),
        EngineConfig(
            window=model.window,
            negative=model.negative,
            shrink_windows=model.shrink_windows,
            workers=model.workers,
            seed=seed,
            compute_loss=model.compute_loss,
            sg=bool(model.sg),
            hs=bool(model.hs),
            cbow_mean=bool(model.cbow_mean),
        ),
    )
    if (model.wv.vectors_lockf != 1).any():
        engine = LockedRows(engine, model._syn0, torch.from_numpy(model.wv.vectors_lockf))
    return engine


def sampling_tables(model: Any) -> SamplingTables:
    """Subsampling thresholds, negative table and Huffman paths on the training device."""

    def on_device(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(model.device)

    paths = (None, None, None)
    if model.hs:
        codes = model.wv.expandos["code"]
        # gensim stores a one-word vocabulary's empty path as a list
        points = [np.asarray(p, dtype=np.int64) for p in model.wv.expandos["point"]]
        paths = tuple(on_device(a) for a in huffman_paths(list(codes), points))
    return SamplingTables(
        on_device(model.wv.expandos["sample_int"].astype(np.int64)),
        on_device(model.cum_table.astype(np.int64)),
        *paths,
    )
