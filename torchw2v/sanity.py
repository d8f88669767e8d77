"""The checks gensim's ``Word2Vec.train`` makes before training, with messages naming the fix.

gensim's scripts and tests rely on them: a call gensim refuses raises the same exception class
here, and the warnings gensim logs ("Both hierarchical softmax and negative sampling are
activated.", "Effective 'alpha' higher than previous training cycles") are logged too.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import as_sentences

logger = logging.getLogger(__name__)


def check_train_call(
    model: Any,
    corpus_iterable: Any,
    corpus_file: str | Path | None,
    total_examples: int | None,
    total_words: int | None,
    epochs: int | None,
    start_alpha: float,
    end_alpha: float,
) -> None:
    """Refuse a ``train`` call that cannot train (or that gensim refuses); log gensim's warnings.

    Raises
    ------
    RuntimeError
        The model has no vocabulary, or its ``wv`` lacks the training state of its words.
    TypeError
        The corpus arguments are wrong (see :func:`torchw2v.corpus.as_sentences`).
    ValueError
        Learning rates that are not finite or ``start_alpha <= 0``; neither
        ``total_examples`` nor ``total_words``; no ``epochs``, or not a positive integer.
    """
    if not len(model.wv):
        raise RuntimeError(
            "the vocabulary is empty: call model.build_vocab(corpus) before model.train()"
        )
    as_sentences(corpus_iterable, corpus_file)  # the arguments only: nothing is read yet
    if not (math.isfinite(start_alpha) and math.isfinite(end_alpha) and start_alpha > 0):
        raise ValueError(
            f"learning rates must be finite and start_alpha > 0; got {start_alpha}, {end_alpha}"
        )
    if total_examples is None and total_words is None:
        raise ValueError(
            "pass total_examples or total_words to train, as gensim requires; after "
            "build_vocab on the same corpus, total_examples=model.corpus_count"
        )
    if epochs is None:
        raise ValueError("pass epochs to train, as gensim requires; usually epochs=model.epochs")
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    check_training_state(model)
    if model.hs and model.negative:
        logger.warning(
            "Both hierarchical softmax and negative sampling are activated. This is probably "
            "a mistake. You should set either 'hs=0' or 'negative=0' to disable one of them."
        )
    if start_alpha > model.min_alpha_yet_reached:
        logger.warning("Effective 'alpha' higher than previous training cycles")


def check_training_state(model: Any) -> None:
    """Refuse a model whose ``wv`` lacks the counts and output weights of its words.

    This is the case when ``model.wv`` was replaced by vectors alone, such as
    ``KeyedVectors.load_word2vec_format`` reads.

    Raises
    ------
    RuntimeError
        Naming what is missing and the fix.
    """
    wv, words = model.wv, len(model.wv)
    if not words and "count" not in wv.expandos:
        raise RuntimeError(
            "the model has no vocabulary yet: call build_vocab (and train) before using it"
        )
    missing = [name for name in ("count", "sample_int") if name not in wv.expandos]
    for name, used in (("syn1neg", model.negative), ("syn1", model.hs)):
        if used and len(getattr(model, name)) != words:
            missing.append(f"{name} ({len(getattr(model, name))} rows)")
    if missing:
        raise RuntimeError(
            f"model.wv holds {words} words but the model lacks their training state: "
            f"{', '.join(missing)}. Was wv replaced, e.g. by "
            "KeyedVectors.load_word2vec_format? Vectors alone cannot be trained or used for "
            "predictions: load a whole model (Word2Vec.load), or build a vocabulary "
            "(build_vocab) and copy the vectors into model.wv.vectors"
        )
