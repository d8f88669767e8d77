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

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gensim.models import KeyedVectors
from gensim.models.callbacks import CallbackAny2Vec

from . import checkpoint as checkpoints
from . import trainer as training
from . import weights
from .corpus import ScannedCorpus, StreamedCorpus, as_sentences, encode, scan_counts
from .distributed import Cluster, SyncPolicy
from .engines import resolve_device
from .sanity import check_train_call
from .settings import (
    SETTINGS,
    check_callbacks,
    check_settings,
    check_trim_rule,
    check_type,
    flag,
    integer,
    real,
)
from .trainer import OneProcess, Schedule
from .vocab import EmptyVocabularyError
from .weights import GensimInterop, NotAWord2VecError

__all__ = ["EmptyVocabularyError", "NotAWord2VecError", "Word2Vec"]

MAX_WORDS_IN_BATCH = 10000


class Word2Vec(GensimInterop):
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
    hashfxn
        Accepted for gensim compatibility: vectors are initialised from ``seed`` as gensim 4
        does (``hashfxn`` is unused there too).
    null_word : {0, 1}
        1 adds gensim's pseudo-word ``"\\0"`` (count 1, never in the corpus) to the
        vocabulary, as gensim does.
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
        the vocabulary is the whole corpus's. Ranks on one machine train one copy of the
        weights in shared memory; others synchronise their copies every
        ``SyncPolicy.every_words`` words. Only rank 0 writes models and checkpoints. A
        ``SyncPolicy`` sets the mode, the interval and the timeout.

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
        arguments = locals()
        for name in SETTINGS:  # stored as given, then checked and made plain Python values
            setattr(self, name, arguments[name])
        self.hashfxn = hashfxn
        self.callbacks = check_callbacks(callbacks)
        check_settings(self)
        check_trim_rule(trim_rule)
        check_type(
            "distributed",
            distributed,
            "a bool or a torchw2v.distributed.SyncPolicy",
            lambda d: isinstance(d, (bool, SyncPolicy)),
        )
        self.distributed = distributed
        device = resolve_device(device)
        self._cluster = Cluster.connect(distributed, device) if distributed else OneProcess(device)
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
            Passed on to :meth:`prepare_vocab` (``min_count``, ``sample``, ``dry_run``), as
            gensim passes them.

        Raises
        ------
        EmptyVocabularyError
            No word of the corpus survives ``min_count`` (a ``ValueError`` and a
            ``RuntimeError``).
        RuntimeError
            ``update=True`` on a model without a vocabulary.
        TypeError
            A keyword that :meth:`prepare_vocab` does not take.
        """
        self.scan_vocab(corpus_iterable, corpus_file, progress_per, trim_rule=trim_rule)
        self.prepare_vocab(
            update=update, keep_raw_vocab=keep_raw_vocab, trim_rule=trim_rule, **kwargs
        )

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
        integer("progress_per", progress_per, 1)
        check_trim_rule(trim_rule)
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
            Apply these instead of the model's settings (and, without ``update``, store
            them, as gensim does).
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
        vocab = weights.counted_vocabulary(
            self, scanned.words, scanned.counts, update, trim_rule, min_count, sample, dry_run
        )
        if not dry_run:
            weights.install(self, vocab, update)
            if not update:
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
        weights.install(
            self, weights.counted_vocabulary(self, words, counts, update, trim_rule), update
        )
        self.corpus_count = corpus_count or 0

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
            Passes over the corpus (required, as in gensim; usually ``model.epochs``); stored
            as ``model.epochs``, as gensim does.
        start_alpha, end_alpha : float, optional
            Learning rate at the start and end of this call; default ``alpha``, ``min_alpha``;
            stored as those, as gensim does.
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
        start_alpha = real("start_alpha", self.alpha if start_alpha is None else start_alpha)
        end_alpha = real("end_alpha", self.min_alpha if end_alpha is None else end_alpha)
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
        self.alpha, self.min_alpha, self.epochs = start_alpha, end_alpha, int(epochs)  # gensim's
        self.compute_loss = flag("compute_loss", compute_loss)
        real("report_delay", report_delay, 0.0)
        real("checkpoint_every", checkpoint_every, 0.0)
        if callbacks:
            self.callbacks = check_callbacks(callbacks)
        corpus = self._encoded(corpus_iterable, corpus_file)
        if not self._cluster.total(corpus.tokens):  # a rank's shard alone may hold none
            raise ValueError("no word of the training corpus is in the vocabulary")

        schedule = Schedule(epochs, start_alpha, end_alpha)
        start = saver = None
        if checkpoint and self._cluster.rank == 0:  # only rank 0 reads and writes checkpoints
            start = checkpoints.resume(self, checkpoint, schedule, corpus)
            saver = checkpoints.Checkpointer(self, checkpoint, checkpoint_every, schedule, corpus)
        result = training.fit(self, corpus, schedule, self._cluster, start, saver, report_delay)
        if saver:
            saver.remove()
        return result

    def _encoded(
        self, corpus_iterable: Iterable[list[str]] | None, corpus_file: str | Path | None
    ) -> StreamedCorpus:
        """The corpus (this rank's shard of it) as ids, streamed: read again every epoch."""
        sentences = self._cluster.shard(as_sentences(corpus_iterable, corpus_file), training=True)
        return encode(sentences, self.wv.key_to_index, self.workers, training.CHUNK_WORDS)

    def get_latest_training_loss(self) -> float:
        """Summed SGNS loss of the latest ``train`` call (gensim's semantics), in float64.

        Only recorded with ``compute_loss=True``. ``epoch_loss`` holds the latest epoch's.
        """
        return self.running_training_loss

    def __str__(self) -> str:
        return (
            f"{type(self).__name__}<vocab={len(self.wv.index_to_key)}, "
            f"vector_size={self.wv.vector_size}, alpha={self.alpha}>"
        )
