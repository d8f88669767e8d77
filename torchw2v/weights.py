"""The model's weights: gensim's ``KeyedVectors`` and the output layers, their torch tensors,
their saved state, and the conversions to and from gensim's ``Word2Vec``.

A model holds its weights as numpy arrays, as gensim does (``wv.vectors``, ``syn1neg``,
``syn1``), and trains torch tensors over them: on CPU the same memory, on a GPU copies that
:func:`sync_to_host` brings back. :func:`state` is everything needed to continue training;
saving, loading, checkpoints and the gensim conversions all go through it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from gensim.models import KeyedVectors
from gensim.models import Word2Vec as GensimWord2Vec
from gensim.models.word2vec import _assign_binary_codes
from gensim.utils import SaveLoad, call_on_class_only

from . import persistence, safe_pickle
from .objective import SkipGramNS
from .sanity import check_training_state
from .settings import SETTINGS, STATE, plain
from .vocab import (
    CUM_TABLE_DOMAIN,
    EmptyVocabularyError,
    Vocabulary,
    build_vocabulary,
    extend_vocabulary,
    negative_cum_table,
)

logger = logging.getLogger(__name__)


class NotAWord2VecError(ValueError, AttributeError):
    """A gensim file holding another model: a ``ValueError``, an ``AttributeError`` as gensim."""


def fill(
    wv: KeyedVectors, words: list[str], counts: np.ndarray, sample_int: np.ndarray, hs: bool
) -> None:
    """Give ``wv`` the vocabulary ``words`` with their counts and subsampling thresholds
    (and, for hierarchical softmax, gensim's Huffman codes); its vectors are left as they are."""
    wv.index_to_key = list(words)
    wv.key_to_index = {word: i for i, word in enumerate(wv.index_to_key)}
    wv.allocate_vecattrs(attrs=["count", "sample_int"], types=[np.int64, np.uint32])
    wv.expandos["count"][:] = counts
    wv.expandos["sample_int"][:] = sample_int
    if hs:
        _assign_binary_codes(wv)


def vocabulary(model: Any) -> Vocabulary:
    """The model's current vocabulary, read back from ``wv`` and the model."""
    return Vocabulary(
        words=list(model.wv.index_to_key),
        counts=model.wv.expandos["count"].astype(np.int64),
        sample_int=model.wv.expandos["sample_int"].astype(np.uint32),
        cum_table=model.cum_table,
        effective_min_count=model.effective_min_count,
    )


def counted_vocabulary(
    model: Any,
    words: list[str],
    counts: np.ndarray,
    update: bool,
    trim_rule: Callable | None,
    min_count: int | None = None,
    sample: float | None = None,
    dry_run: bool = False,
) -> Vocabulary:
    """The vocabulary ``model``'s settings make of raw counts (gensim's ``prepare_vocab``),
    or with ``update`` its own vocabulary extended by them; not installed.

    ``min_count`` and ``sample`` default to the model's.

    Raises
    ------
    RuntimeError
        ``update`` on a model without a vocabulary.
    EmptyVocabularyError
        No word is kept (unless ``dry_run``).
    """
    sample = model.sample if sample is None else sample
    min_count = model.min_count if min_count is None else min_count
    if update:
        if not len(model.wv):
            raise RuntimeError(
                "cannot update the vocabulary of a model that has none: call "
                "build_vocab(corpus) once without update=True first"
            )
        vocab = extend_vocabulary(
            vocabulary(model),
            words,
            counts,
            min_count=min_count,
            sample=sample,
            ns_exponent=model.ns_exponent,
            max_final_vocab=model.max_final_vocab,
            trim_rule=trim_rule,
        )
    else:
        vocab = build_vocabulary(
            words,
            counts,
            min_count=min_count,
            sample=sample,
            ns_exponent=model.ns_exponent,
            max_final_vocab=model.max_final_vocab,
            trim_rule=trim_rule,
            sorted_vocab=bool(model.sorted_vocab),
            null_word=bool(model.null_word),
        )
    if not len(vocab) and not dry_run:
        raise EmptyVocabularyError(empty_vocabulary_message(model, words, counts, vocab))
    return vocab


def empty_vocabulary_message(
    model: Any, words: list[str], counts: np.ndarray, vocab: Vocabulary
) -> str:
    """Why no word of the scanned counts made the vocabulary, and what to change."""
    tokens = max(int(counts.sum()), int(model.corpus_total_words or 0))
    if tokens and not words and model.max_vocab_size:
        return (
            f"the vocabulary is empty: max_vocab_size={model.max_vocab_size} pruned every "
            f"word of the corpus ({tokens} tokens) while scanning it; raise max_vocab_size "
            "or leave it None"
        )
    return (
        f"the vocabulary is empty: none of the {len(words)} distinct words of the corpus "
        f"({tokens} tokens) occurs min_count={vocab.effective_min_count} times; lower "
        "min_count or train on more text"
    )


def install(model: Any, vocab: Vocabulary, update: bool = False) -> None:
    """Install ``vocab`` in ``model.wv``; initialise the weights of new words as gensim does.

    On an online ``update``, the words already known (the first ``len(wv)`` of ``vocab``)
    keep their weights; otherwise all weights start afresh. New words get gensim's seeded
    random input vectors and zero output vectors.
    """
    sync_to_host(model)
    wv = model.wv
    if not update:
        wv.vectors = np.zeros((0, model.vector_size), dtype=np.float32)
        wv.expandos = {}
        model.syn1neg = model.syn1 = wv.vectors
    fill(wv, vocab.words, vocab.counts, vocab.sample_int, model.hs)
    wv.resize_vectors(seed=model.seed)
    model.syn1neg = _grown(model.syn1neg, len(vocab) if model.negative else 0)
    model.syn1 = _grown(model.syn1, len(vocab) if model.hs else 0)
    model.cum_table = vocab.cum_table
    model.effective_min_count = vocab.effective_min_count
    bind_tensors(model)


def _grown(weights: np.ndarray, rows: int) -> np.ndarray:
    """``weights`` with zero rows appended up to ``rows`` (output layers start at zero)."""
    grown = np.zeros((rows, weights.shape[1]), dtype=np.float32)
    grown[: len(weights)] = weights[:rows]
    return grown


def bind_tensors(model: Any) -> None:
    """Wrap the weights as torch tensors on ``model.device`` (sharing memory on CPU).

    ``model.module`` is the skip-gram negative-sampling objective over ``wv.vectors`` and
    ``syn1neg`` (``None`` when ``negative=0``).
    """
    model._syn0 = torch.from_numpy(model.wv.vectors).to(model.device)
    model._syn1neg = torch.from_numpy(model.syn1neg).to(model.device)
    model._syn1 = torch.from_numpy(model.syn1).to(model.device)
    model.module = None
    if model.negative:
        model.module = SkipGramNS(
            len(model.wv), model.vector_size, model._syn0, model._syn1neg
        ).requires_grad_(False)


def sync_to_host(model: Any) -> None:
    """Make ``wv.vectors``, ``syn1neg`` and ``syn1`` match the device tensors."""
    if model.device.type != "cpu" and hasattr(model, "_syn0"):
        np.copyto(model.wv.vectors, model._syn0.cpu().numpy())
        np.copyto(model.syn1neg, model._syn1neg.cpu().numpy())
        np.copyto(model.syn1, model._syn1.cpu().numpy())
    model.wv.norms = None  # gensim caches norms; they are stale now


class _class_only(classmethod):
    """A classmethod that raises AttributeError when called on an instance (as gensim's load).

    ``model.load(path)`` would return a new model and leave ``model`` as it was.
    """

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        return call_on_class_only if instance is not None else super().__get__(None, owner)


# ---------------------------------------------------------------------- state


def state(model: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Everything needed to continue training: metadata and arrays."""
    sync_to_host(model)
    meta = {
        "settings": {name: getattr(model, name) for name in SETTINGS},
        "state": {name: getattr(model, name) for name in STATE},
        "words": list(model.wv.index_to_key),
    }
    arrays = {
        "vectors": model.wv.vectors,
        "syn1neg": model.syn1neg,
        "syn1": model.syn1,
        "counts": model.wv.expandos.get("count", np.zeros(0, np.int64)),  # none before
        "sample_int": model.wv.expandos.get("sample_int", np.zeros(0, np.uint32)),  # build_vocab
        "cum_table": model.cum_table,
        "vectors_lockf": model.wv.vectors_lockf,
    }
    return meta, arrays


def from_state(
    cls: type,
    meta: dict[str, Any],
    arrays: dict[str, np.ndarray],
    device: str | torch.device | None,
    source: str,
) -> Any:
    """Rebuild a ``cls`` model from :func:`state`'s output, checking that the parts agree.

    Raises
    ------
    ValueError
        The metadata is malformed, an array is missing, its shape does not fit the vocabulary
        and settings, or a weight is NaN or infinite; the message names ``source``.
    """
    check_metadata(meta, source)
    model = cls(**meta["settings"], device=device)
    for name, value in meta["state"].items():
        setattr(model, name, value)
    words, size = meta["words"], model.vector_size
    arrays.setdefault("syn1", np.zeros((0, size), np.float32))  # files from before HS
    arrays.setdefault("vectors_lockf", np.ones(1, dtype=np.float32))
    expected = {
        "vectors": (len(words), size),
        "syn1neg": (len(words) if model.negative else 0, size),
        "syn1": (len(words) if model.hs else 0, size),
        "counts": (len(words),),
        "sample_int": (len(words),),
        "cum_table": None,
        "vectors_lockf": None,
    }
    for name, shape in expected.items():
        if name not in arrays:
            raise ValueError(
                f"{source} is incomplete: it has no {name} array; save the model again"
            )
        if shape is not None and arrays[name].shape != shape:
            raise ValueError(
                f"{source} is inconsistent: {name} has shape {arrays[name].shape}, "
                f"expected {shape} for {len(words)} words of {size} dimensions"
            )
    for name in ("vectors", "syn1neg", "syn1", "vectors_lockf"):
        if not np.isfinite(arrays[name]).all():
            raise ValueError(
                f"{source} is corrupted: {name} holds NaN or infinite values (saved from a run "
                "that diverged?); train a new model, with a lower alpha if training diverged"
            )
    model.wv.vectors = np.ascontiguousarray(arrays["vectors"], dtype=np.float32)
    model.wv.vectors_lockf = np.ascontiguousarray(arrays["vectors_lockf"], dtype=np.float32)
    fill(model.wv, words, arrays["counts"], arrays["sample_int"], model.hs)
    model.syn1neg = np.ascontiguousarray(arrays["syn1neg"], dtype=np.float32)
    model.syn1 = np.ascontiguousarray(arrays["syn1"], dtype=np.float32)
    model.cum_table = np.asarray(arrays["cum_table"], dtype=np.uint32)
    bind_tensors(model)
    return model


def check_metadata(meta: Any, source: str) -> None:
    """Refuse metadata that :func:`state` cannot have written.

    Raises
    ------
    ValueError
        Naming ``source`` and the part that is malformed.
    """
    parts = {"settings": dict, "state": dict, "words": list}
    bad = [name for name, kind in parts.items() if not isinstance(meta.get(name), kind)]
    if not bad:
        bad = [f"state {name!r}" for name in meta["state"] if name not in STATE]
    if not bad and not all(isinstance(word, str) for word in meta["words"]):
        bad = ["words (not all strings)"]
    if bad:
        raise ValueError(
            f"{source} is not a readable torchw2v model file: its metadata has a malformed or "
            f"unknown {', '.join(bad)}; it may be corrupted: save the model again"
        )


def load(
    cls: type, fname: str | Path | IO[bytes], device: str | torch.device | None, **kwargs: Any
) -> Any:
    """A ``cls`` model from a file of torchw2v's ``save`` or gensim's (see ``Word2Vec.load``)."""
    if persistence.is_pickle(fname):
        model = safe_pickle.load_gensim(fname, **kwargs)
        if not isinstance(model, GensimWord2Vec):
            raise NotAWord2VecError(
                f"{str(fname)!r} holds a gensim {type(model).__name__}, not a Word2Vec "
                "model; load it with its own class (e.g. gensim's KeyedVectors.load)"
            )
        return from_gensim(cls, model, device)
    meta, arrays = persistence.read_model(fname)
    return from_state(cls, meta, arrays, device, repr(str(getattr(fname, "name", fname))))


# ---------------------------------------------------------------------- gensim models


def to_gensim(model: Any) -> GensimWord2Vec:
    """A gensim ``Word2Vec`` with ``model``'s settings, vocabulary and weights (copies)."""
    meta, arrays = state(model)
    settings = {k: v for k, v in meta["settings"].items() if k != "engine"}
    theirs = GensimWord2Vec(**settings, callbacks=model.callbacks)
    for name, value in meta["state"].items():
        setattr(theirs, name, value)
    theirs.wv.vectors = arrays["vectors"].copy()
    theirs.wv.vectors_lockf = arrays["vectors_lockf"].copy()
    fill(theirs.wv, meta["words"], arrays["counts"], arrays["sample_int"], model.hs)
    if model.hs:
        theirs.syn1 = arrays["syn1"].copy()
    if model.negative:
        theirs.syn1neg = arrays["syn1neg"].copy()
        theirs.cum_table = arrays["cum_table"].copy()
    return theirs


def from_gensim(cls: type, model: Any, device: str | torch.device | None = None) -> Any:
    """A ``cls`` model continuing from a gensim ``Word2Vec`` (see ``Word2Vec.from_gensim``)."""
    if not isinstance(model, GensimWord2Vec):
        hint = (
            "; KeyedVectors hold no training state: load the full model gensim saved"
            if isinstance(model, KeyedVectors)
            else ""
        )
        raise TypeError(
            "from_gensim needs a gensim.models.Word2Vec, not "
            f"{type(model).__module__}.{type(model).__qualname__}{hint}"
        )
    if type(model) is not GensimWord2Vec:
        logger.warning(
            "%s is a gensim %s: its word vectors and output weights go on as a Word2Vec; "
            "its other parts (subword or document vectors) are not kept",
            model,
            type(model).__name__,
        )
    wv, size = model.wv, model.vector_size
    empty = np.zeros((0, size), dtype=np.float32)
    meta = {
        "settings": {name: getattr(model, name) for name in SETTINGS if hasattr(model, name)},
        "state": {name: plain(getattr(model, name)) for name in STATE if hasattr(model, name)},
        "words": list(wv.index_to_key),
    }
    arrays = {
        "vectors": wv.vectors,
        "syn1neg": getattr(model, "syn1neg", empty) if model.negative else empty,
        "syn1": getattr(model, "syn1", empty) if model.hs else empty,
        "counts": wv.expandos["count"],
        "sample_int": wv.expandos["sample_int"],
        "cum_table": getattr(model, "cum_table", None),
        "vectors_lockf": getattr(wv, "vectors_lockf", np.ones(1, dtype=np.float32)),
    }
    if arrays["cum_table"] is None:  # gensim makes none without negative sampling
        arrays["cum_table"] = negative_cum_table(arrays["counts"], model.ns_exponent)
    arrays = {name: np.array(array) for name, array in arrays.items()}
    return from_state(cls, meta, arrays, device, f"gensim model {model}")


class GensimInterop:
    """What ``torchw2v.Word2Vec`` shares with gensim's ``Word2Vec``: model files, conversions
    both ways, and gensim's own methods, run on this model's weights."""

    def save(self, fname_or_handle: str | Path | IO[bytes], **kwargs: Any) -> None:
        """Save the whole model (settings, vocabulary, weights, training state) atomically.

        The file is an ``.npz`` archive with JSON metadata; loading it never runs code. A
        path ending ``.gz`` or ``.bz2`` is compressed; a file opened in binary mode is
        written where it stands (not atomically) and left open.
        Callbacks, ``trim_rule`` and ``hashfxn`` are not saved. In distributed training only
        rank 0 writes; on the other ranks this does nothing.
        """
        if self._cluster.rank:
            return
        persistence.write_model(fname_or_handle, *state(self))

    @_class_only
    def load(
        cls, fname: str | Path | IO[bytes], device: str | torch.device | None = None, **kwargs: Any
    ) -> Any:
        """Load a model written by :meth:`save`, or by gensim's ``Word2Vec.save``.

        Neither kind of file can run code: torchw2v's are numpy archives read without
        pickle, and gensim's pickles are read by an unpickler that builds only what a gensim
        model is made of (:mod:`torchw2v.safe_pickle`).

        Parameters
        ----------
        fname : str, pathlib.Path or binary file
            The model file (gensim's, by its path only).
        device : str or torch.device, optional
            Where to train next; default CUDA when available.
        **kwargs
            For gensim files, ``mmap`` as in gensim's ``load``.

        Raises
        ------
        FileNotFoundError, ValueError
            Missing file; not a model file, or truncated, corrupted or crafted.
        NotAWord2VecError
            A gensim file holding another model (a ``ValueError`` and, as in gensim, an
            ``AttributeError``).
        """
        return load(cls, fname, device, **kwargs)

    def to_gensim(self) -> Any:
        """A ``gensim.models.Word2Vec`` with this model's settings, vocabulary and weights.

        gensim can go on training it (``train``) where this model stopped; the arrays are
        copies.
        """
        return to_gensim(self)

    @classmethod
    def from_gensim(cls, model: Any, device: str | torch.device | None = None) -> Any:
        """A torchw2v model continuing from a trained (or vocabulary-built) gensim ``Word2Vec``.

        Parameters
        ----------
        model : gensim.models.Word2Vec
            The gensim model; its arrays are copied. Of a subclass (``FastText``, ``Doc2Vec``)
            only the word vectors and output weights are taken, with a warning.
        device : str or torch.device, optional
            Where to train next; default CUDA when available.

        Raises
        ------
        TypeError
            ``model`` is not a gensim ``Word2Vec`` (or a subclass).
        """
        return from_gensim(cls, model, device)

    @property
    def layer1_size(self) -> int:
        """Size of the output layers (gensim's name; equal to ``vector_size``)."""
        return self.vector_size

    def predict_output_word(
        self, context_words_list: list[str], topn: int = 10
    ) -> list[tuple[str, float]] | None:
        """The ``topn`` most probable center words for a context (gensim's method, run as is).

        Needs ``negative > 0``; see ``gensim.models.Word2Vec.predict_output_word``.

        Raises
        ------
        RuntimeError
            ``negative=0``, or ``wv`` lacks the training state of its words.
        """
        if self.negative:  # else gensim's method raises its own RuntimeError
            check_training_state(self)
        sync_to_host(self)
        return GensimWord2Vec.predict_output_word(self, context_words_list, topn=topn)

    def score(
        self, sentences: Iterable[list[str]], total_sentences: int = 1_000_000, **kwargs: Any
    ):
        """Log probability of each sentence under a hierarchical-softmax model (gensim's method).

        Needs ``hs=1``; see ``gensim.models.Word2Vec.score``.
        """
        sync_to_host(self)
        return GensimWord2Vec.score(self, sentences, total_sentences, **kwargs)

    def estimate_memory(self, vocab_size: int | None = None, report: dict | None = None) -> dict:
        """Bytes the vocabulary and weights need, as gensim estimates them."""
        return GensimWord2Vec.estimate_memory(self, vocab_size, report)

    def init_sims(self, replace: bool = False) -> None:
        """Precompute the L2 norms (gensim's obsolete method, run as is); with ``replace=True``
        the trained vectors themselves become unit length, as in gensim."""
        sync_to_host(self)
        self.wv.init_sims(replace=replace)
        if replace and self.device.type != "cpu":
            self._syn0.copy_(torch.from_numpy(self.wv.vectors))

    def init_weights(self) -> None:
        """Start all weights afresh (gensim's seeded input vectors, zero output vectors),
        keeping the vocabulary, as gensim's docstring says (gensim's own keeps the input
        vectors it has)."""
        install(self, vocabulary(self))

    def seeded_vector(self, seed_string: str, vector_size: int) -> np.ndarray:
        """gensim's deterministic random vector for ``seed_string``."""
        return GensimWord2Vec.seeded_vector(self, seed_string, vector_size)

    def make_cum_table(self, domain: int = CUM_TABLE_DOMAIN) -> None:
        """Rebuild the negative-sampling table from the vocabulary's counts (gensim's method)."""
        counts = self.wv.expandos["count"].astype(np.int64)
        self.cum_table = negative_cum_table(counts, self.ns_exponent, domain)

    def create_binary_tree(self) -> None:
        """Rebuild the Huffman codes of the vocabulary from its counts (gensim's method)."""
        _assign_binary_codes(self.wv)

    def add_lifecycle_event(self, event_name: str, log_level: int = logging.INFO, **event: Any):
        """Record an event in ``lifecycle_events`` and log it (gensim's method)."""
        return SaveLoad.add_lifecycle_event(self, event_name, log_level, **event)

    def reset_from(self, other_model: Any) -> None:
        """Take the vocabulary of ``other_model`` (torchw2v or gensim) and start new weights."""
        words = list(other_model.wv.index_to_key)
        counts = other_model.wv.expandos["count"].astype(np.int64)
        vocab = Vocabulary(
            words=words,
            counts=counts,
            sample_int=other_model.wv.expandos["sample_int"].astype(np.uint32),
            cum_table=negative_cum_table(counts, self.ns_exponent),
            effective_min_count=getattr(other_model, "effective_min_count", self.min_count),
        )
        install(self, vocab)
        self.corpus_count = other_model.corpus_count
        self.corpus_total_words = other_model.corpus_total_words
