"""``torchw2v.Word2Vec``: gensim's ``Word2Vec`` API, trained in PyTorch.

The product is ``model.wv``, a real :class:`gensim.models.KeyedVectors`: similarity
queries, evaluations and ``save_word2vec_format`` are gensim's own. Training state
(``syn1neg``, ``syn1``, ``cum_table``) lives on the model, as in gensim.

Examples
--------
>>> from gensim.test.utils import common_texts
>>> from torchw2v import Word2Vec
>>> model = Word2Vec(common_texts, vector_size=16, min_count=1, sg=1, device="cpu")
>>> vector = model.wv["computer"]
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gensim.models import KeyedVectors
from gensim.models import Word2Vec as _GensimWord2Vec
from gensim.models.callbacks import CallbackAny2Vec
from gensim.models.word2vec import _assign_binary_codes
from gensim.utils import call_on_class_only

from . import persistence, safe_pickle
from . import trainer as training
from .corpus import ScannedCorpus, StreamedCorpus, as_sentences, encode, scan_counts
from .distributed import Cluster, SyncPolicy, chain
from .engines import (
    ENGINES,
    ChunkStats,
    Engine,
    EngineConfig,
    SamplingTables,
    create_engine,
    resolve_device,
)
from .engines.base import divergence_error
from .engines.compiled import MAX_NEGATIVE, MAX_WORKERS
from .engines.lockf import LockedRows
from .objective import SkipGramNS
from .sanity import check_train_call, check_training_state
from .trainer import EpochReport, Position, Schedule, Trainer
from .vocab import (
    Vocabulary,
    build_vocabulary,
    extend_vocabulary,
    huffman_paths,
    negative_cum_table,
)

logger = logging.getLogger(__name__)

MAX_WORDS_IN_BATCH = 10000

# Settings saved with a model and restored by ``load``; everything else is derived state.
SETTINGS = (
    "vector_size",
    "alpha",
    "window",
    "min_count",
    "max_vocab_size",
    "sample",
    "seed",
    "workers",
    "min_alpha",
    "sg",
    "hs",
    "negative",
    "ns_exponent",
    "cbow_mean",
    "epochs",
    "null_word",
    "sorted_vocab",
    "batch_words",
    "compute_loss",
    "comment",
    "max_final_vocab",
    "shrink_windows",
    "engine",
)
# Training progress saved with a model, so that training can continue where it stopped.
STATE = (
    "corpus_count",
    "corpus_total_words",
    "effective_min_count",
    "train_count",
    "total_train_time",
    "running_training_loss",
    "min_alpha_yet_reached",
)


class EmptyVocabularyError(ValueError, RuntimeError):
    """No word to train on: a ``ValueError`` as torchw2v raised, a ``RuntimeError`` as gensim."""


class NotAWord2VecError(ValueError, AttributeError):
    """A gensim file holding another model: a ``ValueError``, an ``AttributeError`` as gensim."""


class _class_only(classmethod):
    """A classmethod that raises AttributeError when called on an instance (as gensim's load).

    ``model.load(path)`` would return a new model and leave ``model`` as it was.
    """

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        return call_on_class_only if instance is not None else super().__get__(None, owner)


class Word2Vec:
    """Train word2vec embeddings with gensim's API on a torch device.

    Parameters
    ----------
    sentences : iterable of list of str, optional
        A restartable iterable of token lists. If given (or ``corpus_file``), the model's
        vocabulary is built and the model trained right away.
    corpus_file : str or pathlib.Path, optional
        A LineSentence-format file (one sentence per line, tokens split on whitespace),
        read through smart-open: ``.gz``, ``.bz2`` and remote URIs work. A plain local file
        is read by compiled code on ``workers`` threads (tokens exactly as ``str.split()``
        makes them), again every epoch, so that its ids are never all held;
        ``TORCHW2V_DISABLE_COMPILED=1`` reads it in Python.
    vector_size : int
        Dimensionality of the word vectors.
    alpha : float
        Initial learning rate.
    window : int
        Maximum distance between the current and predicted word within a sentence.
    min_count : int
        Ignores all words with total frequency lower than this.
    max_vocab_size : int, optional
        Limits RAM during vocabulary building by pruning the rarest words whenever there are
        more unique words than this (as gensim does). ``None`` for no limit. Pruning depends
        on the order in which one reader meets the sentences, so with it a ``corpus_file``
        is read in Python, not by the parallel compiled reader.
    sample : float
        Threshold for downsampling frequent words; 0 disables it.
    seed : int
        Seed of the vector initialisation and of the training random streams.
    workers : int
        Worker threads used by the compiled CPU engine.
    min_alpha : float
        Learning rate reached at the end of training (linear decay from ``alpha``).
    sg : {0, 1}
        1 for skip-gram, 0 for CBOW (gensim's default).
    hs : {0, 1}
        1 for hierarchical softmax (over gensim's Huffman tree), alone or with ``negative``.
    negative : int
        Number of negative samples per center word; 0 for none (then ``hs=1`` is needed).
    ns_exponent : float
        Exponent of the unigram distribution negatives are drawn from.
    cbow_mean : {0, 1}
        CBOW only: 1 to average the context vectors, 0 to sum them.
    hashfxn, null_word
        Accepted for gensim compatibility: vectors are initialised from ``seed`` as gensim 4
        does (``hashfxn`` is unused there too), and no null word is added.
    epochs : int
        Passes over the corpus.
    trim_rule : callable, optional
        ``trim_rule(word, count, min_count)`` returning a ``gensim.utils.RULE_*`` value,
        applied while building the vocabulary; not stored with the model.
    sorted_vocab : {0, 1}
        1 to sort the vocabulary by descending frequency.
    batch_words : int
        Accepted for gensim compatibility; the engines choose their own batch sizes.
    compute_loss : bool
        Record the training loss (see :meth:`get_latest_training_loss` and ``epoch_loss``).
    callbacks : sequence of gensim.models.callbacks.CallbackAny2Vec
        Called at the start and end of training and of each epoch, with this model.
    comment : str, optional
        Free text stored with the model.
    max_final_vocab : int, optional
        Keep at most this many words by raising ``min_count`` as needed.
    shrink_windows : bool
        Draw each center word's window uniformly from ``1..window`` (word2vec.c, gensim).
    device : str or torch.device, optional
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. Default: CUDA when available, else CPU.
    engine : {"auto", "torch", "compiled"}
        Training engine: ``"compiled"`` is a C++ op on CPU and a fused Triton kernel on
        CUDA, ``"torch"`` vectorised torch ops for any device; ``"auto"`` picks the compiled
        engine when it is available for the device and settings, else ``"torch"``.
    distributed : bool or torchw2v.distributed.SyncPolicy
        Train one model across the processes ``torchrun`` started (gloo on CPU, NCCL on
        CUDA, each rank on ``cuda:LOCAL_RANK``): each rank reads its own shard of the corpus,
        the vocabulary is the whole corpus's, and the ranks synchronise their weights every
        ``SyncPolicy.every_words`` words. Only rank 0 writes models and checkpoints. A
        ``SyncPolicy`` sets the interval, the synchronisation mode and the timeout.

    Raises
    ------
    TypeError
        An argument of the wrong type (numpy numbers and bools are taken as gensim takes
        them), naming it, its value and what is accepted; a token that is not a string.
    ValueError
        A setting out of range, naming it, its value and what is accepted.
    FloatingPointError
        Training diverged (``alpha`` too high); the message names a smaller one to try.
    """

    def __init__(
        self,
        sentences: Iterable[list[str]] | None = None,
        corpus_file: str | Path | None = None,
        vector_size: int = 100,
        alpha: float = 0.025,
        window: int = 5,
        min_count: int = 5,
        max_vocab_size: int | None = None,
        sample: float = 1e-3,
        seed: int = 1,
        workers: int = 3,
        min_alpha: float = 0.0001,
        sg: int = 0,
        hs: int = 0,
        negative: int = 5,
        ns_exponent: float = 0.75,
        cbow_mean: int = 1,
        hashfxn: Callable[[str], int] = hash,
        epochs: int = 5,
        null_word: int = 0,
        trim_rule: Callable | None = None,
        sorted_vocab: int = 1,
        batch_words: int = MAX_WORDS_IN_BATCH,
        compute_loss: bool = False,
        callbacks: Sequence[CallbackAny2Vec] = (),
        comment: str | None = None,
        max_final_vocab: int | None = None,
        shrink_windows: bool = True,
        device: str | torch.device | None = None,
        engine: str = "auto",
        distributed: bool | SyncPolicy = False,
    ):
        self.vector_size = vector_size
        self.alpha = alpha
        self.window = window
        self.min_count = min_count
        self.max_vocab_size = max_vocab_size
        self.sample = sample
        self.seed = seed
        self.workers = workers
        self.min_alpha = min_alpha
        self.sg = sg
        self.hs = hs
        self.negative = negative
        self.ns_exponent = ns_exponent
        self.cbow_mean = cbow_mean
        self.hashfxn = hashfxn
        self.epochs = epochs
        self.null_word = null_word
        self.sorted_vocab = sorted_vocab
        self.batch_words = batch_words
        self.compute_loss = compute_loss
        self.callbacks = _callbacks(callbacks)
        self.comment = comment
        self.max_final_vocab = max_final_vocab
        self.shrink_windows = shrink_windows
        self.engine = engine
        self._check_settings()
        _check_trim_rule(trim_rule)
        _check_type(
            "distributed",
            distributed,
            "a bool or a torchw2v.distributed.SyncPolicy",
            lambda d: isinstance(d, (bool, SyncPolicy)),
        )
        self.distributed = distributed
        self._cluster = Cluster.connect(distributed, resolve_device(device))
        self.device = self._cluster.device

        self.wv = KeyedVectors(vector_size)
        self.wv.vectors_lockf = np.ones(1, dtype=np.float32)
        self.syn1neg = np.zeros((0, vector_size), dtype=np.float32)
        self.syn1 = np.zeros((0, vector_size), dtype=np.float32)
        self.cum_table = np.zeros(0, dtype=np.uint32)
        self.corpus_count = 0
        self.corpus_total_words = 0
        self.effective_min_count = min_count
        self.train_count = 0
        self.total_train_time = 0.0
        self.running_training_loss = 0.0
        self.epoch_loss = 0.0
        self.min_alpha_yet_reached = alpha
        self._scanned: ScannedCorpus | None = None  # scan_vocab's, for prepare_vocab

        if sentences is not None or corpus_file is not None:
            self.build_vocab(
                corpus_iterable=sentences, corpus_file=corpus_file, trim_rule=trim_rule
            )
            self.train(
                corpus_iterable=sentences,
                corpus_file=corpus_file,
                total_examples=self.corpus_count,
                total_words=self.corpus_total_words,
                epochs=self.epochs,
                start_alpha=self.alpha,
                end_alpha=self.min_alpha,
                compute_loss=compute_loss,
                callbacks=callbacks,
            )

    def _check_settings(self) -> None:
        """Check the type and range of every setting, as gensim takes them (numpy numbers
        too, stored as Python numbers so that model files stay JSON).

        Raises
        ------
        TypeError, ValueError
            A wrong type or an out-of-range value, naming the setting, its value and what is
            accepted; no objective to train.
        """
        for name, least, most in (
            ("vector_size", 1, None),
            ("window", 1, 2**31 - 1),  # gensim's C int
            ("min_count", 0, None),
            ("seed", 0, None),  # numpy's default_rng, which gensim seeds the vectors with
            ("workers", 1, MAX_WORKERS),
            ("negative", 0, MAX_NEGATIVE),
            ("epochs", 1, None),
            ("batch_words", 1, None),
        ):
            setattr(self, name, _integer(name, getattr(self, name), least, most))
        for name, least in (("max_vocab_size", 0), ("max_final_vocab", 1)):  # or None
            if getattr(self, name) is not None:
                setattr(self, name, _integer(name, getattr(self, name), least))
        for name, least, strict in (
            ("alpha", 0.0, True),
            ("min_alpha", 0.0, False),
            ("sample", 0.0, False),
            ("ns_exponent", None, False),
        ):
            setattr(self, name, _real(name, getattr(self, name), least, strict))
        for name in (
            "sg",
            "hs",
            "cbow_mean",
            "null_word",
            "sorted_vocab",
            "compute_loss",
            "shrink_windows",
        ):
            setattr(self, name, _flag(name, getattr(self, name)))
        _check_type("hashfxn", self.hashfxn, "a callable", callable)
        _check_type(
            "comment", self.comment, "a str or None", lambda c: c is None or isinstance(c, str)
        )
        _check_type("engine", self.engine, f"one of {ENGINES}", lambda e: isinstance(e, str))
        if not self.negative and not self.hs:
            raise ValueError(
                "nothing to train with negative=0 and hs=0: set negative > 0 (negative "
                "sampling), hs=1 (hierarchical softmax), or both"
            )
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")

    # ------------------------------------------------------------------ vocabulary

    def build_vocab(
        self,
        corpus_iterable: Iterable[list[str]] | None = None,
        corpus_file: str | Path | None = None,
        update: bool = False,
        progress_per: int = 10000,
        keep_raw_vocab: bool = False,
        trim_rule: Callable | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the vocabulary from a corpus and initialise the weights.

        The corpus is read once here, and ``train`` reads it again every epoch, a block at a
        time, as gensim does: memory does not grow with the length of the corpus. A plain
        local ``corpus_file`` is read by the compiled reader on ``workers`` threads.

        Parameters
        ----------
        corpus_iterable : iterable of list of str, optional
            A restartable iterable of token lists.
        corpus_file : str or pathlib.Path, optional
            A LineSentence-format file (local, compressed or remote).
        update : bool
            Online training: add the corpus's new words (those reaching the model's
            effective ``min_count`` in it) to the vocabulary with fresh vectors, keeping
            every trained vector, and add the corpus's counts to the known words.
        progress_per : int
            Log progress every this many sentences.
        keep_raw_vocab : bool
            Keep the word counts for a later :meth:`prepare_vocab`.
        trim_rule : callable, optional
            Vocabulary trimming rule, see the class docstring.
        **kwargs
            Accepted for gensim compatibility.

        Raises
        ------
        EmptyVocabularyError
            No word of the corpus survives ``min_count`` (a ``ValueError`` and a
            ``RuntimeError``).
        RuntimeError
            ``update=True`` on a model without a vocabulary.
        """
        self.scan_vocab(corpus_iterable, corpus_file, progress_per, trim_rule=trim_rule)
        self.prepare_vocab(update=update, keep_raw_vocab=keep_raw_vocab, trim_rule=trim_rule)

    def scan_vocab(
        self,
        corpus_iterable: Iterable[list[str]] | None = None,
        corpus_file: str | Path | None = None,
        progress_per: int = 10000,
        workers: int | None = None,
        trim_rule: Callable | None = None,
    ) -> tuple[int, int]:
        """Read the corpus once and count its words: :meth:`build_vocab`'s first step.

        ``workers`` is accepted for gensim compatibility; the other arguments are
        :meth:`build_vocab`'s.

        Returns
        -------
        (int, int)
            The corpus's words and sentences (``corpus_total_words``, ``corpus_count``).
        """
        _integer("progress_per", progress_per, 1)
        _check_trim_rule(trim_rule)
        sentences = self._cluster.shard(as_sentences(corpus_iterable, corpus_file))
        scanned = scan_counts(sentences, self.max_vocab_size, trim_rule, progress_per, self.workers)
        scanned, self.corpus_count, self.corpus_total_words = self._cluster.merge_vocabulary(
            scanned, sentences
        )
        self._scanned = scanned
        return self.corpus_total_words, self.corpus_count

    def prepare_vocab(
        self,
        update: bool = False,
        keep_raw_vocab: bool = False,
        trim_rule: Callable | None = None,
        min_count: int | None = None,
        sample: float | None = None,
        dry_run: bool = False,
    ) -> dict[str, int]:
        """Make the vocabulary from :meth:`scan_vocab`'s counts and initialise the weights.

        :meth:`build_vocab`'s second step (gensim's ``prepare_vocab`` and
        ``prepare_weights``).

        Parameters
        ----------
        update, trim_rule
            As for :meth:`build_vocab`.
        keep_raw_vocab : bool
            Keep the counts, so that ``prepare_vocab`` can be called again.
        min_count, sample : optional
            Apply (and store) these instead of the model's settings.
        dry_run : bool
            Only report what the settings would keep; change nothing.

        Returns
        -------
        dict of str to int
            gensim's report: ``drop_unique``, ``retain_total``, ``downsample_unique``,
            ``downsample_total`` and ``num_retained_words``.
        """
        if self._scanned is None:
            raise RuntimeError("no word counts to prepare: call scan_vocab(corpus) first")
        scanned = self._scanned
        min_count, sample = min_count or self.min_count, sample or self.sample
        vocab = self._install_counts(
            scanned.words, scanned.counts, update, trim_rule, min_count, sample, dry_run
        )
        if not dry_run:
            self.min_count, self.sample = min_count, sample
            self._scanned = self._scanned if keep_raw_vocab else None
        return vocab.report

    def build_vocab_from_freq(
        self,
        word_freq: Mapping[str, int],
        keep_raw_vocab: bool = False,
        corpus_count: int | None = None,
        trim_rule: Callable | None = None,
        update: bool = False,
    ) -> None:
        """Build (or, with ``update=True``, extend) the vocabulary from word counts.

        Parameters
        ----------
        word_freq : mapping of str to int
            Word counts, e.g. ``{"the": 2000, "cat": 20}``.
        keep_raw_vocab
            Accepted for gensim compatibility.
        corpus_count : int, optional
            Number of sentences the counts come from (gensim's ``corpus_count``).
        trim_rule : callable, optional
            Vocabulary trimming rule, see the class docstring.
        update : bool
            Extend the existing vocabulary, as ``build_vocab(..., update=True)``.
        """
        words = list(word_freq)
        counts = np.fromiter((word_freq[w] for w in words), dtype=np.int64, count=len(words))
        self._install_counts(words, counts, update, trim_rule)
        self.corpus_count = corpus_count or 0

    def _install_counts(
        self,
        words: list[str],
        counts: np.ndarray,
        update: bool,
        trim_rule: Callable | None,
        min_count: int | None = None,
        sample: float | None = None,
        dry_run: bool = False,
    ) -> Vocabulary:
        """Make the vocabulary from raw counts (or extend it) and install it unless ``dry_run``.

        ``min_count`` and ``sample`` default to the model's. Returns the vocabulary.
        """
        sample = self.sample if sample is None else sample
        if update:
            if not len(self.wv):
                raise RuntimeError(
                    "cannot update the vocabulary of a model that has none: call "
                    "build_vocab(corpus) once without update=True first"
                )
            vocab = extend_vocabulary(
                self._vocabulary(),
                words,
                counts,
                sample=sample,
                ns_exponent=self.ns_exponent,
                trim_rule=trim_rule,
            )
        else:
            vocab = build_vocabulary(
                words,
                counts,
                min_count=self.min_count if min_count is None else min_count,
                sample=sample,
                ns_exponent=self.ns_exponent,
                max_final_vocab=self.max_final_vocab,
                trim_rule=trim_rule,
                sorted_vocab=bool(self.sorted_vocab),
            )
        if dry_run:
            return vocab
        if not len(vocab):
            raise EmptyVocabularyError(
                f"the vocabulary is empty: none of the {len(words)} distinct words of the "
                f"corpus ({int(counts.sum())} tokens) occurs min_count="
                f"{vocab.effective_min_count} times; lower min_count or train on more text"
            )
        self._set_vocabulary(vocab, update)
        return vocab

    def _vocabulary(self) -> Vocabulary:
        """The current vocabulary, read back from ``wv`` and the model."""
        return Vocabulary(
            words=list(self.wv.index_to_key),
            counts=self.wv.expandos["count"].astype(np.int64),
            sample_int=self.wv.expandos["sample_int"].astype(np.uint32),
            cum_table=self.cum_table,
            effective_min_count=self.effective_min_count,
        )

    def _set_vocabulary(self, vocab: Vocabulary, update: bool = False) -> None:
        """Install ``vocab`` in ``wv``; initialise the weights of new words as gensim does.

        On an online ``update``, the words already known (the first ``len(wv)`` of
        ``vocab``) keep their weights; otherwise all weights start afresh. New words get
        gensim's seeded random input vectors and zero output vectors.
        """
        self._sync_to_host()
        wv = self.wv
        if not update:
            wv.vectors = np.zeros((0, self.vector_size), dtype=np.float32)
            wv.expandos = {}
            self.syn1neg = self.syn1 = wv.vectors
        wv.index_to_key = list(vocab.words)
        wv.key_to_index = {word: i for i, word in enumerate(vocab.words)}
        wv.allocate_vecattrs(attrs=["count", "sample_int"], types=[np.int64, np.uint32])
        wv.expandos["count"][:] = vocab.counts
        wv.expandos["sample_int"][:] = vocab.sample_int
        wv.resize_vectors(seed=self.seed)
        self.syn1neg = _grown(self.syn1neg, len(vocab) if self.negative else 0)
        self.syn1 = _grown(self.syn1, len(vocab) if self.hs else 0)
        if self.hs:
            _assign_binary_codes(wv)
        self.cum_table = vocab.cum_table
        self.effective_min_count = vocab.effective_min_count
        self._bind_tensors()

    def _bind_tensors(self) -> None:
        """Wrap the weights as torch tensors on ``self.device`` (sharing memory on CPU).

        ``module`` is the skip-gram negative-sampling objective over ``wv.vectors`` and
        ``syn1neg`` (``None`` when ``negative=0``).
        """
        self._syn0 = torch.from_numpy(self.wv.vectors).to(self.device)
        self._syn1neg = torch.from_numpy(self.syn1neg).to(self.device)
        self._syn1 = torch.from_numpy(self.syn1).to(self.device)
        self.module = None
        if self.negative:
            self.module = SkipGramNS(
                len(self.wv), self.vector_size, self._syn0, self._syn1neg
            ).requires_grad_(False)

    # ------------------------------------------------------------------ training

    def train(
        self,
        corpus_iterable: Iterable[list[str]] | None = None,
        corpus_file: str | Path | None = None,
        total_examples: int | None = None,
        total_words: int | None = None,
        epochs: int | None = None,
        start_alpha: float | None = None,
        end_alpha: float | None = None,
        word_count: int = 0,
        queue_factor: int = 2,
        report_delay: float = 1.0,
        compute_loss: bool = False,
        callbacks: Sequence[CallbackAny2Vec] = (),
        checkpoint: str | Path | None = None,
        checkpoint_every: float = 600.0,
        **kwargs: Any,
    ) -> tuple[int, int]:
        """Train the model on a corpus, as gensim's ``Word2Vec.train``.

        Parameters
        ----------
        corpus_iterable, corpus_file
            The corpus, as for :meth:`build_vocab`. Words outside the vocabulary are skipped.
        total_examples, total_words : int, optional
            One of them is required, as in gensim (``total_examples=model.corpus_count``);
            the learning rate follows the exact counts, known after reading.
        epochs : int
            Passes over the corpus (required, as in gensim; usually ``model.epochs``).
        start_alpha, end_alpha : float, optional
            Learning rate at the start and end of this call; default ``alpha``, ``min_alpha``.
        word_count, queue_factor
            Accepted for gensim compatibility.
        report_delay : float
            Seconds between progress log lines.
        compute_loss : bool
            Record the training loss.
        callbacks : sequence of CallbackAny2Vec, optional
            Replace the model's callbacks; by default those given before are kept.
        checkpoint : str or pathlib.Path, optional
            A file to save training progress to (weights, epoch and position), atomically,
            every ``checkpoint_every`` seconds. If it exists when ``train`` starts, training
            resumes from it, so running the same script again after a crash or a kill goes
            on where the last checkpoint left off, with the random streams of the
            uninterrupted run (with ``workers=1`` the result is bit for bit the same). It is
            deleted when ``train`` completes.
        checkpoint_every : float
            Seconds between checkpoints.

        Returns
        -------
        (int, int)
            Effective words trained (after subsampling) and raw words read, over all epochs.

        Raises
        ------
        RuntimeError
            The vocabulary has not been built, or ``wv`` lacks its training state.
        ValueError
            No ``epochs``, or neither ``total_examples`` nor ``total_words``; ``checkpoint``
            exists but was written for another vocabulary, corpus or schedule.
        FloatingPointError
            Training diverged to NaN or infinity (lower ``alpha``).
        """
        start_alpha = _real("start_alpha", self.alpha if start_alpha is None else start_alpha)
        end_alpha = _real("end_alpha", self.min_alpha if end_alpha is None else end_alpha)
        check_train_call(
            self,
            corpus_iterable,
            corpus_file,
            total_examples,
            total_words,
            epochs,
            start_alpha,
            end_alpha,
        )
        self.compute_loss = _flag("compute_loss", compute_loss)
        _real("report_delay", report_delay, 0.0)
        _real("checkpoint_every", checkpoint_every, 0.0)
        if callbacks:
            self.callbacks = _callbacks(callbacks)
        corpus = self._encoded(corpus_iterable, corpus_file)
        if not corpus.tokens:
            raise ValueError("no word of the training corpus is in the vocabulary")

        schedule = Schedule(epochs, start_alpha, end_alpha)
        writer = self._cluster.rank == 0  # only rank 0 reads and writes checkpoints
        start = self._resume(checkpoint, schedule, corpus) if checkpoint and writer else None
        start = self._cluster.share_start(start)
        engine = self._make_engine(self._cluster.seed(self.seed + self.train_count))
        trainer = Trainer(
            engine, corpus, self.device, plan=self._cluster.plan(corpus), show_loss=compute_loss
        )
        if start:
            engine.calls = start.epoch * trainer.chunks_per_epoch + start.chunk
        logger.info(
            "training model with %i workers on %i vocabulary and %i features, using sg=%s "
            "hs=%s sample=%s negative=%s window=%s shrink_windows=%s on %s with the %s engine",
            self.workers,
            len(self.wv),
            self.vector_size,
            self.sg,
            self.hs,
            self.sample,
            self.negative,
            self.window,
            self.shrink_windows,
            self.device,
            type(engine).__name__,
        )
        self.running_training_loss = 0.0
        started = time.perf_counter()
        for callback in self.callbacks:
            callback.on_train_begin(self)
        saver = (
            _Checkpointer(self, checkpoint, checkpoint_every, schedule, corpus)
            if checkpoint and writer
            else None
        )
        weights = (self._syn0, self._syn1neg, self._syn1)
        sync = self._cluster.synchronizer(weights, trainer.chunks_per_epoch)
        try:
            reports = trainer.run(
                schedule,
                on_epoch_begin=self._on_epoch_begin,
                on_epoch_end=lambda report: self._on_epoch_end(
                    self._cluster.sum_report(report), start_alpha
                ),
                report_delay=report_delay,
                start=start,
                on_chunk_end=chain(sync, saver),
            )
        except FloatingPointError:  # an engine names the rate of its chunk: name the user's
            raise divergence_error(start_alpha) from None
        if saver:
            saver.remove()
        for callback in self.callbacks:
            callback.on_train_end(self)
        elapsed = time.perf_counter() - started

        trained = sum(r.stats.words for r in reports)
        raw = sum(r.raw_words for r in reports)
        self.train_count += 1
        self.total_train_time += elapsed
        self.min_alpha_yet_reached = end_alpha
        logger.info(
            "training on %i raw words (%i effective words) took %.1fs, %.0f effective words/s",
            raw,
            trained,
            elapsed,
            trained / max(elapsed, 1e-9),
        )
        return trained, raw

    def _make_engine(self, seed: int) -> Engine:
        """The training engine for this model's settings, device and weights."""
        engine = create_engine(
            self.engine,
            self._syn0,
            self._syn1neg,
            self._sampling_tables(),
            EngineConfig(
                window=self.window,
                negative=self.negative,
                shrink_windows=self.shrink_windows,
                workers=self.workers,
                seed=seed,
                compute_loss=self.compute_loss,
                sg=bool(self.sg),
                hs=bool(self.hs),
                cbow_mean=bool(self.cbow_mean),
            ),
            syn1=self._syn1 if self.hs else None,
        )
        if (self.wv.vectors_lockf != 1).any():
            engine = LockedRows(engine, self._syn0, torch.from_numpy(self.wv.vectors_lockf))
        return engine

    def _resume(
        self, path: str | Path, schedule: Schedule, corpus: StreamedCorpus
    ) -> Position | None:
        """Load the weights and position of a checkpoint at ``path``, if there is one."""
        if not persistence.exists(path):
            return None
        meta, arrays = persistence.read_model(path)
        mark = meta.get("checkpoint")
        expected = _checkpoint_key(self, schedule, corpus)
        if mark is None or meta["words"] != self.wv.index_to_key or mark["key"] != expected:
            raise ValueError(
                f"checkpoint {str(path)!r} was written by another training run (other "
                "vocabulary, corpus, settings or schedule); delete it to start afresh, or "
                "pass another checkpoint path"
            )
        for name, value in meta["state"].items():
            setattr(self, name, value)
        for name, tensor in (("vectors", self._syn0), ("syn1neg", self._syn1neg)):
            tensor.copy_(torch.from_numpy(arrays[name]))
        self._syn1.copy_(torch.from_numpy(arrays["syn1"]))
        self._sync_to_host()
        position = Position(mark["epoch"], mark["chunk"], ChunkStats(**mark["stats"]))
        logger.info("resuming from %s at epoch %i, chunk %i", path, mark["epoch"], mark["chunk"])
        return position

    def _encoded(
        self, corpus_iterable: Iterable[list[str]] | None, corpus_file: str | Path | None
    ) -> StreamedCorpus:
        """The corpus (this rank's shard of it) as ids, streamed: read again every epoch."""
        sentences = self._cluster.shard(as_sentences(corpus_iterable, corpus_file))
        return encode(sentences, self.wv.key_to_index, self.workers, training.CHUNK_WORDS)

    def _sampling_tables(self) -> SamplingTables:
        """Subsampling thresholds, negative table and Huffman paths on the training device."""

        def on_device(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array).to(self.device)

        paths = (None, None, None)
        if self.hs:
            codes = self.wv.expandos["code"]
            # gensim stores a one-word vocabulary's empty path as a list
            points = [np.asarray(p, dtype=np.int64) for p in self.wv.expandos["point"]]
            paths = tuple(on_device(a) for a in huffman_paths(list(codes), points))
        return SamplingTables(
            on_device(self.wv.expandos["sample_int"].astype(np.int64)),
            on_device(self.cum_table.astype(np.int64)),
            *paths,
        )

    def _on_epoch_begin(self, epoch: int) -> None:
        for callback in self.callbacks:
            callback.on_epoch_begin(self)

    def _on_epoch_end(self, report: EpochReport, alpha: float) -> None:
        self._sync_to_host()
        if not all(np.isfinite(w).all() for w in (self.wv.vectors, self.syn1neg, self.syn1)):
            raise divergence_error(alpha)
        self.epoch_loss = report.stats.loss
        self.running_training_loss += report.stats.loss
        for callback in self.callbacks:
            callback.on_epoch_end(self)

    def _sync_to_host(self) -> None:
        """Make ``wv.vectors``, ``syn1neg`` and ``syn1`` match the device tensors."""
        if self.device.type != "cpu" and hasattr(self, "_syn0"):
            np.copyto(self.wv.vectors, self._syn0.cpu().numpy())
            np.copyto(self.syn1neg, self._syn1neg.cpu().numpy())
            np.copyto(self.syn1, self._syn1.cpu().numpy())
        self.wv.norms = None  # gensim caches norms; they are stale now

    def get_latest_training_loss(self) -> float:
        """Summed SGNS loss of the latest ``train`` call (gensim's semantics), in float64.

        Only recorded with ``compute_loss=True``. ``epoch_loss`` holds the latest epoch's.
        """
        return self.running_training_loss

    # ------------------------------------------------------------------ persistence

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Everything needed to continue training: metadata and arrays."""
        self._sync_to_host()
        meta = {
            "settings": {name: getattr(self, name) for name in SETTINGS},
            "state": {name: getattr(self, name) for name in STATE},
            "words": list(self.wv.index_to_key),
        }
        arrays = {
            "vectors": self.wv.vectors,
            "syn1neg": self.syn1neg,
            "syn1": self.syn1,
            "counts": self.wv.expandos["count"],
            "sample_int": self.wv.expandos["sample_int"],
            "cum_table": self.cum_table,
            "vectors_lockf": self.wv.vectors_lockf,
        }
        return meta, arrays

    @classmethod
    def _from_state(
        cls,
        meta: dict[str, Any],
        arrays: dict[str, np.ndarray],
        device: str | torch.device | None,
        source: str,
    ) -> Word2Vec:
        """Rebuild a model from :meth:`_state`'s output, checking that the parts agree."""
        model = cls(**meta["settings"], device=device)
        for name, value in meta["state"].items():
            setattr(model, name, value)
        words, size = meta["words"], model.vector_size
        expected = {
            "vectors": (len(words), size),
            "syn1neg": (len(words) if model.negative else 0, size),
            "syn1": (len(words) if model.hs else 0, size),
            "counts": (len(words),),
            "sample_int": (len(words),),
        }
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise ValueError(
                    f"{source} is inconsistent: {name} has shape {arrays[name].shape}, "
                    f"expected {shape} for {len(words)} words of {size} dimensions"
                )
        wv = model.wv
        wv.index_to_key = list(words)
        wv.key_to_index = {word: i for i, word in enumerate(words)}
        wv.vectors = np.ascontiguousarray(arrays["vectors"], dtype=np.float32)
        wv.vectors_lockf = np.ascontiguousarray(arrays["vectors_lockf"], dtype=np.float32)
        wv.allocate_vecattrs(attrs=["count", "sample_int"], types=[np.int64, np.uint32])
        wv.expandos["count"][:] = arrays["counts"]
        wv.expandos["sample_int"][:] = arrays["sample_int"]
        if model.hs:
            _assign_binary_codes(wv)
        model.syn1neg = np.ascontiguousarray(arrays["syn1neg"], dtype=np.float32)
        model.syn1 = np.ascontiguousarray(arrays["syn1"], dtype=np.float32)
        model.cum_table = np.asarray(arrays["cum_table"], dtype=np.uint32)
        model._bind_tensors()
        return model

    def save(self, fname_or_handle: str | Path, **kwargs: Any) -> None:
        """Save the whole model (settings, vocabulary, weights, training state) atomically.

        The file is an ``.npz`` archive with JSON metadata; loading it never runs code.
        Callbacks, ``trim_rule`` and ``hashfxn`` are not saved. In distributed training only
        rank 0 writes; on the other ranks this does nothing.
        """
        if self._cluster.rank:
            return
        persistence.write_model(fname_or_handle, *self._state())

    @_class_only
    def load(
        cls, fname: str | Path, device: str | torch.device | None = None, **kwargs: Any
    ) -> Word2Vec:
        """Load a model written by :meth:`save`, or by gensim's ``Word2Vec.save``.

        Neither kind of file can run code: torchw2v's are numpy archives read without
        pickle, and gensim's pickles are read by an unpickler that builds only what a gensim
        model is made of (:mod:`torchw2v.safe_pickle`).

        Parameters
        ----------
        fname : str or pathlib.Path
            The model file.
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
        if persistence.is_pickle(fname):
            model = safe_pickle.load_gensim(fname, **kwargs)
            if not isinstance(model, _GensimWord2Vec):
                raise NotAWord2VecError(
                    f"{str(fname)!r} holds a gensim {type(model).__name__}, not a Word2Vec "
                    "model; load it with its own class (e.g. gensim's KeyedVectors.load)"
                )
            return cls.from_gensim(model, device=device)
        meta, arrays = persistence.read_model(fname)
        arrays.setdefault("syn1", np.zeros((0, meta["settings"]["vector_size"]), np.float32))
        arrays.setdefault("vectors_lockf", np.ones(1, dtype=np.float32))
        return cls._from_state(meta, arrays, device, repr(str(fname)))

    def to_gensim(self) -> Any:
        """A ``gensim.models.Word2Vec`` with this model's settings, vocabulary and weights.

        gensim can go on training it (``train``) where this model stopped; the arrays are
        copies.
        """
        meta, arrays = self._state()
        settings = {k: v for k, v in meta["settings"].items() if k != "engine"}
        model = _GensimWord2Vec(**settings, callbacks=self.callbacks)
        for name, value in meta["state"].items():
            setattr(model, name, value)
        wv = model.wv
        wv.index_to_key = list(meta["words"])
        wv.key_to_index = {word: i for i, word in enumerate(wv.index_to_key)}
        wv.vectors = arrays["vectors"].copy()
        wv.vectors_lockf = arrays["vectors_lockf"].copy()
        wv.allocate_vecattrs(attrs=["count", "sample_int"], types=[np.int64, np.uint32])
        wv.expandos["count"][:] = arrays["counts"]
        wv.expandos["sample_int"][:] = arrays["sample_int"]
        if self.hs:
            _assign_binary_codes(wv)
            model.syn1 = arrays["syn1"].copy()
        if self.negative:
            model.syn1neg = arrays["syn1neg"].copy()
            model.cum_table = arrays["cum_table"].copy()
        return model

    @classmethod
    def from_gensim(cls, model: Any, device: str | torch.device | None = None) -> Word2Vec:
        """A torchw2v model continuing from a trained (or vocabulary-built) gensim ``Word2Vec``.

        Parameters
        ----------
        model : gensim.models.Word2Vec
            The gensim model; its arrays are copied. Of a subclass (``FastText``, ``Doc2Vec``)
            only the word vectors and output weights are taken, with a warning.
        device : str or torch.device, optional
            Where to train next; default CUDA when available.
        """
        if type(model) is not _GensimWord2Vec:
            logger.warning(
                "%s is a gensim %s: its word vectors and output weights go on as a Word2Vec; "
                "its other parts (subword or document vectors) are not kept",
                model,
                type(model).__name__,
            )
        wv, size = model.wv, model.vector_size
        empty = np.zeros((0, size), dtype=np.float32)
        settings = {name: getattr(model, name) for name in SETTINGS if hasattr(model, name)}
        meta = {
            "settings": settings,
            "state": {name: _plain(getattr(model, name)) for name in STATE if hasattr(model, name)},
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
        return cls._from_state(meta, arrays, device, f"gensim model {model}")

    # ------------------------------------------------------------------ gensim's own methods

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
        self._sync_to_host()
        return _GensimWord2Vec.predict_output_word(self, context_words_list, topn=topn)

    def score(
        self, sentences: Iterable[list[str]], total_sentences: int = 1_000_000, **kwargs: Any
    ):
        """Log probability of each sentence under a hierarchical-softmax model (gensim's method).

        Needs ``hs=1``; see ``gensim.models.Word2Vec.score``.
        """
        self._sync_to_host()
        return _GensimWord2Vec.score(self, sentences, total_sentences, **kwargs)

    def estimate_memory(self, vocab_size: int | None = None, report: dict | None = None) -> dict:
        """Bytes the vocabulary and weights need, as gensim estimates them."""
        return _GensimWord2Vec.estimate_memory(self, vocab_size, report)

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
        self._set_vocabulary(vocab)
        self.corpus_count = other_model.corpus_count
        self.corpus_total_words = other_model.corpus_total_words

    def __str__(self) -> str:
        return (
            f"{type(self).__name__}<vocab={len(self.wv.index_to_key)}, "
            f"vector_size={self.wv.vector_size}, alpha={self.alpha}>"
        )


def _checkpoint_key(model: Word2Vec, schedule: Schedule, corpus: StreamedCorpus) -> dict:
    """What must match for a checkpoint to belong to this training run."""
    return {
        "settings": {name: getattr(model, name) for name in SETTINGS},
        "train_count": model.train_count,
        "schedule": [schedule.epochs, schedule.start_alpha, schedule.end_alpha],
        "corpus": [int(corpus.tokens), int(corpus.sentences + 1)],
    }


class _Checkpointer:
    """Called after each chunk: saves the model and its position every ``every`` seconds."""

    def __init__(
        self,
        model: Word2Vec,
        path: str | Path,
        every: float,
        schedule: Schedule,
        corpus: StreamedCorpus,
    ):
        self.model, self.path, self.every = model, path, every
        self.key = _checkpoint_key(model, schedule, corpus)
        self.last = time.monotonic()

    def __call__(self, position: Position) -> None:
        if time.monotonic() - self.last < self.every:
            return
        meta, arrays = self.model._state()
        stats = vars(position.stats)
        meta["checkpoint"] = {
            "key": self.key,
            "epoch": position.epoch,
            "chunk": position.chunk,
            "stats": stats,
        }
        persistence.write_model(self.path, meta, arrays)
        self.last = time.monotonic()
        logger.info("checkpoint written to %s (epoch %i)", self.path, position.epoch)

    def remove(self) -> None:
        """Training completed: the checkpoint is not needed any more."""
        persistence.remove(self.path)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (so that metadata stays JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def _grown(weights: np.ndarray, rows: int) -> np.ndarray:
    """``weights`` with zero rows appended up to ``rows`` (output layers start at zero)."""
    grown = np.zeros((rows, weights.shape[1]), dtype=np.float32)
    grown[: len(weights)] = weights[:rows]
    return grown


def _integer(name: str, value: Any, least: int, most: int | None = None) -> int:
    """``value``, an integer (numpy's too, not a bool) in ``[least, most]``, as an ``int``.

    Raises
    ------
    TypeError
        Not an integer.
    ValueError
        Out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < least or (most is not None and value > most):
        accepted = f">= {least}" if most is None else f"in [{least}, {most}]"
        raise ValueError(f"{name} must be an integer {accepted}, got {value!r}")
    return int(value)


def _real(name: str, value: Any, least: float | None = None, strict: bool = False) -> float:
    """``value``, a finite real number (numpy's too, not a bool) of at least ``least`` (above
    it if ``strict``), as a ``float``.

    Raises
    ------
    TypeError
        Not a real number.
    ValueError
        Not finite, or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    number = float(value)
    low = least is not None and (number <= least if strict else number < least)
    if not math.isfinite(number) or low:
        bound = "" if least is None else f" {'>' if strict else '>='} {least:g}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return number


def _flag(name: str, value: Any) -> bool | int:
    """``value``, a switch as gensim takes it: a bool (numpy's too) or the integer 0 or 1.

    Raises
    ------
    TypeError
        Neither a bool nor an integer.
    ValueError
        An integer other than 0 and 1.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be 0, 1 or a bool, got {value!r} ({type(value).__name__})")
    if value not in (0, 1):
        raise ValueError(f"{name} must be 0 or 1 (or a bool), got {value!r}")
    return int(value)


def _check_type(name: str, value: Any, accepted: str, test: Callable[[Any], bool]) -> None:
    """Raise ``TypeError`` naming ``name``, ``value`` and what is ``accepted`` unless
    ``test(value)``."""
    if not test(value):
        raise TypeError(f"{name} must be {accepted}, got {value!r:.60} ({type(value).__name__})")


def _check_trim_rule(trim_rule: Any) -> None:
    """Raise ``TypeError`` unless ``trim_rule`` is ``None`` or a callable."""
    _check_type("trim_rule", trim_rule, "a callable or None", lambda f: f is None or callable(f))


CALLBACK_METHODS = ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end")
"""What a callback must have: the methods of gensim's ``CallbackAny2Vec``."""


def _callbacks(callbacks: Any) -> tuple:
    """``callbacks`` as a tuple of objects with gensim's ``CallbackAny2Vec`` methods.

    Raises
    ------
    TypeError
        ``callbacks`` is not a sequence (a single callback, ``None``), or holds an object
        without those methods, naming it and its position.
    """
    _check_type(
        "callbacks",
        callbacks,
        "a sequence of gensim CallbackAny2Vec objects, e.g. callbacks=[MyCallback()]",
        lambda c: isinstance(c, Iterable) and not isinstance(c, (str, bytes)),
    )
    callbacks = tuple(callbacks)
    for i, callback in enumerate(callbacks):
        missing = [m for m in CALLBACK_METHODS if not callable(getattr(callback, m, None))]
        if missing:
            raise TypeError(
                f"callbacks[{i}] is {callback!r:.60} ({type(callback).__name__}), not a "
                f"gensim CallbackAny2Vec: it has no {', '.join(missing)}; subclass "
                "gensim.models.callbacks.CallbackAny2Vec"
            )
    return callbacks
