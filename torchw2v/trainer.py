"""The training loop: epochs, learning-rate schedule, chunks, progress, callbacks.

No per-pair math lives here: each chunk of whole sentences goes to the engine, which applies
the update. The learning rate decays linearly from ``start_alpha`` to ``end_alpha`` over all
epochs, as in gensim; each chunk gets the rates at its first and last word.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .corpus import StreamedCorpus
from .engines import ChunkStats, Engine

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
    """How an epoch is cut into chunks, and how far through the epoch each cut is.

    Attributes
    ----------
    bounds : numpy.ndarray
        ``(C + 1,)`` sentence indices: chunk ``c`` is sentences ``bounds[c]:bounds[c + 1]``.
    progress : numpy.ndarray
        ``(C + 1,)`` fraction of the epoch's words done at each bound; the learning rate
        follows it. Distributed training counts the words of all ranks here.
    """

    bounds: np.ndarray
    progress: np.ndarray


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
    chunk_words : int, optional
        Tokens handed to the engine per call (default ``CHUNK_WORDS``); sets how often
        progress, rates and checkpoints update.
    plan : ChunkPlan, optional
        The chunks and their progress, replacing ``chunk_words`` (distributed training
        gives every rank the same number of chunks).
    show_loss : bool
        Show the epoch's mean loss per pair in the progress bar (when the engine computes
        the loss, ``compute_loss``).
    """

    def __init__(
        self,
        engine: Engine,
        corpus: StreamedCorpus,
        device: torch.device,
        chunk_words: int | None = None,
        plan: ChunkPlan | None = None,
        show_loss: bool = False,
    ):
        self.engine = engine
        self.show_loss = show_loss
        self.corpus, self.device = corpus, device
        if plan is None:
            bounds, done = corpus.plan(chunk_words or CHUNK_WORDS)
            plan = ChunkPlan(bounds, done / max(corpus.tokens, 1))
        self.bounds, self.progress = plan.bounds, plan.progress

    @property
    def chunks_per_epoch(self) -> int:
        """How many chunks one pass over the corpus takes."""
        return len(self.bounds) - 1

    def chunks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """Each chunk's ids, offsets from zero, and its first token's position in the corpus."""
        for ids, offsets, start in self.corpus.chunks(self.bounds):
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
        total = max(self.corpus.tokens, 1)
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
                        schedule.alpha(epoch, float(self.progress[index])),
                        schedule.alpha(epoch, float(self.progress[index + 1])),
                    )
                    bar.update(ids.numel())
                    if self.show_loss and stats.pairs:
                        bar.set_postfix(loss=f"{stats.loss / stats.pairs:.4f}", refresh=False)
                    if time.perf_counter() - last_log >= report_delay:
                        last_log = time.perf_counter()
                        logger.info(
                            "EPOCH %i - PROGRESS: at %.2f%% words, %.0f words/s",
                            epoch,
                            100 * self.progress[index + 1],
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
