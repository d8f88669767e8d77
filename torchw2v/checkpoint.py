"""Checkpoints: a training run saved every few minutes, and resumed where it stopped.

A checkpoint is a model file (:mod:`torchw2v.persistence`, written atomically) whose metadata
also holds the position (epoch, chunk, the epoch's totals so far) and a key of what the run
was: settings, schedule and corpus size. A run resumes only from a checkpoint of the same run;
with ``workers=1`` the resumed run is bit for bit the uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import persistence, weights
from .corpus import StreamedCorpus
from .engines import ChunkStats
from .settings import SETTINGS
from .trainer import Position, Schedule

logger = logging.getLogger(__name__)


def run_key(model: Any, schedule: Schedule, corpus: StreamedCorpus) -> dict:
    """What must match for a checkpoint to belong to this training run."""
    return {
        "settings": {name: getattr(model, name) for name in SETTINGS},
        "train_count": model.train_count,
        "schedule": [schedule.epochs, schedule.start_alpha, schedule.end_alpha],
        "corpus": [int(corpus.tokens), int(corpus.sentences + 1)],
    }


def resume(
    model: Any, path: str | Path, schedule: Schedule, corpus: StreamedCorpus
) -> Position | None:
    """Load the weights and position of the checkpoint at ``path`` into ``model``, if there
    is one.

    Raises
    ------
    ValueError
        The checkpoint was written by another run (vocabulary, settings, schedule, corpus),
        or is corrupted.
    """
    if not persistence.exists(path):
        return None
    meta, arrays = persistence.read_model(path)
    weights.check_metadata(meta, f"checkpoint {str(path)!r}")
    mark = meta.get("checkpoint")
    shapes = {name: tensor.shape for name, tensor in tensors(model)}
    if (
        not isinstance(mark, dict)
        or meta["words"] != model.wv.index_to_key
        or mark.get("key") != run_key(model, schedule, corpus)
        or any(arrays.get(name, np.zeros(0)).shape != shape for name, shape in shapes.items())
    ):
        raise ValueError(
            f"checkpoint {str(path)!r} was written by another training run (other "
            "vocabulary, corpus, settings or schedule); delete it to start afresh, or "
            "pass another checkpoint path"
        )
    try:
        position = Position(int(mark["epoch"]), int(mark["chunk"]), ChunkStats(**mark["stats"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"checkpoint {str(path)!r} is corrupted ({type(err).__name__}: {err}); delete it "
            "to start afresh"
        ) from None
    for name, value in meta["state"].items():
        setattr(model, name, value)
    for name, tensor in tensors(model):
        tensor.copy_(torch.from_numpy(arrays[name]))
    weights.sync_to_host(model)
    logger.info("resuming from %s at epoch %i, chunk %i", path, position.epoch, position.chunk)
    return position


def tensors(model: Any) -> tuple[tuple[str, torch.Tensor], ...]:
    """The trained tensors of ``model`` by their names in a model file."""
    return (("vectors", model._syn0), ("syn1neg", model._syn1neg), ("syn1", model._syn1))


class Checkpointer:
    """Called after each chunk: saves the model and its position every ``every`` seconds."""

    def __init__(
        self, model: Any, path: str | Path, every: float, schedule: Schedule, corpus: StreamedCorpus
    ):
        self.model, self.path, self.every = model, path, every
        self.key = run_key(model, schedule, corpus)
        self.last = time.monotonic()

    def __call__(self, position: Position) -> None:
        if time.monotonic() - self.last < self.every:
            return
        meta, arrays = weights.state(self.model)
        meta["checkpoint"] = {
            "key": self.key,
            "epoch": position.epoch,
            "chunk": position.chunk,
            "stats": vars(position.stats),
        }
        persistence.write_model(self.path, meta, arrays)
        self.last = time.monotonic()
        logger.info("checkpoint written to %s (epoch %i)", self.path, position.epoch)

    def remove(self) -> None:
        """Training completed: the checkpoint is not needed any more."""
        persistence.remove(self.path)
