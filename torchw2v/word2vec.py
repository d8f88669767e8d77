"""``torchw2v.Word2Vec``: gensim's ``Word2Vec`` API, trained in PyTorch.

The product is ``model.wv``, a real :class:`gensim.models.KeyedVectors`: similarity
queries, evaluations and ``save_word2vec_format`` are gensim's own. Training state
(``syn1neg``, ``cum_table``) lives on the model, as in gensim.

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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gensim.models import KeyedVectors
from gensim.models.callbacks import CallbackAny2Vec

from . import persistence
from .corpus import EncodedCorpus, as_sentences, encode, scan
from .engines import ENGINES, EngineConfig, SamplingTables, create_engine, resolve_device
from .model import SkipGramNS
from .trainer import EpochReport, Schedule, Trainer
from .vocab import Vocabulary, build_vocabulary

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


class Word2Vec:
    """Train word2vec embeddings with gensim's API on a torch device.

    Parameters
    ----------
    sentences : iterable of list of str, optional
        A restartable iterable of token lists. If given (or ``corpus_file``), the model's
        vocabulary is built and the model trained right away.
    corpus_file : str or pathlib.Path, optional
        A LineSentence-format file (one sentence per line, tokens split on whitespace),
        read through smart-open: ``.gz``, ``.bz2`` and remote URIs work.
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
        more unique words than this (as gensim does). ``None`` for no limit.
    sample : float
        Threshold for downsampling frequent words; 0 disables it.
    seed : int
        Seed of the vector initialisation and of the training random streams.
    workers : int
        Worker threads used by the compiled CPU engine.
    min_alpha : float
        Learning rate reached at the end of training (linear decay from ``alpha``).
    sg : {0, 1}
        1 for skip-gram. CBOW (0, gensim's default) is not implemented yet.
    hs : {0, 1}
        1 for hierarchical softmax; not implemented yet.
    negative : int
        Number of negative samples per center word.
    ns_exponent : float
        Exponent of the unigram distribution negatives are drawn from.
    cbow_mean, hashfxn, null_word
        Accepted for gensim compatibility; used by CBOW, which is not implemented yet.
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
        Training engine: ``"compiled"`` is a C++ op for CPU, ``"torch"`` vectorised torch
        ops for any device; ``"auto"`` picks the compiled op on CPU when it builds.
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
        self.callbacks = tuple(callbacks)
        self.comment = comment
        self.max_final_vocab = max_final_vocab
        self.shrink_windows = shrink_windows
        self.engine = engine
        self._check_settings()
        self.device = resolve_device(device)

        self.wv = KeyedVectors(vector_size)
        self.wv.vectors_lockf = np.ones(1, dtype=np.float32)
        self.syn1neg = np.zeros((0, vector_size), dtype=np.float32)
        self.cum_table = np.zeros(0, dtype=np.uint32)
        self.corpus_count = 0
        self.corpus_total_words = 0
        self.effective_min_count = min_count
        self.train_count = 0
        self.total_train_time = 0.0
        self.running_training_loss = 0.0
        self.epoch_loss = 0.0
        self.min_alpha_yet_reached = alpha
        self._cache: tuple[Any, EncodedCorpus] | None = None  # (source key, encoded corpus)

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
        """Reject settings that cannot train, naming the fix."""
        for name, least in (
            ("vector_size", 1),
            ("window", 1),
            ("epochs", 1),
            ("workers", 1),
            ("min_count", 0),
            ("negative", 0),
        ):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
            setattr(self, name, int(value))  # numpy integers become plain ints (JSON-safe)
        for name in ("alpha", "min_alpha", "sample", "ns_exponent"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            setattr(self, name, float(value))
        if self.alpha <= 0 or self.min_alpha < 0 or self.sample < 0:
            raise ValueError(
                f"alpha must be > 0 and min_alpha, sample >= 0; got alpha={self.alpha}, "
                f"min_alpha={self.min_alpha}, sample={self.sample}"
            )
        if not self.sg:
            raise NotImplementedError("CBOW (sg=0) is not implemented yet; pass sg=1 for skip-gram")
        if self.hs:
            raise NotImplementedError(
                "hierarchical softmax (hs=1) is not implemented yet; pass hs=0, negative=5"
            )
        if not self.negative:
            raise ValueError("negative must be >= 1: negative sampling is the training objective")
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
        """Build the vocabulary from a corpus and reset the weights.

        The corpus is read once; its encoded form is kept so that ``train`` on the same
        corpus does not read it again.

        Parameters
        ----------
        corpus_iterable : iterable of list of str, optional
            A restartable iterable of token lists.
        corpus_file : str or pathlib.Path, optional
            A LineSentence-format file (local, compressed or remote).
        update : bool
            Online vocabulary update; not implemented yet.
        progress_per : int
            Log progress every this many sentences.
        keep_raw_vocab, **kwargs
            Accepted for gensim compatibility.
        trim_rule : callable, optional
            Vocabulary trimming rule, see the class docstring.

        Raises
        ------
        ValueError
            No word of the corpus survives ``min_count``.
        """
        if update:
            raise NotImplementedError("online vocabulary updates (update=True) are not built yet")
        sentences = as_sentences(corpus_iterable, corpus_file)
        scanned = scan(sentences, self.max_vocab_size, trim_rule, progress_per)
        self.corpus_count = scanned.corpus.sentences
        self.corpus_total_words = scanned.corpus.raw_words
        vocab, remap = build_vocabulary(
            scanned.words,
            scanned.counts,
            min_count=self.min_count,
            sample=self.sample,
            ns_exponent=self.ns_exponent,
            max_final_vocab=self.max_final_vocab,
            trim_rule=trim_rule,
            sorted_vocab=bool(self.sorted_vocab),
        )
        if not len(vocab):
            raise ValueError(
                f"the vocabulary is empty: none of the {len(scanned.words)} distinct words of "
                f"the corpus ({scanned.corpus.raw_words} tokens) occurs min_count="
                f"{vocab.effective_min_count} times; lower min_count or train on more text"
            )
        self._set_vocabulary(vocab)
        self._cache = (_source_key(corpus_iterable, corpus_file), scanned.corpus.remapped(remap))

    def _set_vocabulary(self, vocab: Vocabulary) -> None:
        """Install ``vocab`` in ``wv`` and initialise the weights as gensim does."""
        wv = self.wv
        wv.index_to_key = vocab.words
        wv.key_to_index = {word: i for i, word in enumerate(vocab.words)}
        wv.vectors = np.zeros((0, self.vector_size), dtype=np.float32)
        wv.allocate_vecattrs(attrs=["count", "sample_int"], types=[np.int64, np.uint32])
        wv.expandos["count"][:] = vocab.counts
        wv.expandos["sample_int"][:] = vocab.sample_int
        wv.resize_vectors(seed=self.seed)
        self.syn1neg = np.zeros((len(vocab), self.vector_size), dtype=np.float32)
        self.cum_table = vocab.cum_table
        self.effective_min_count = vocab.effective_min_count
        self._bind_tensors()

    def _bind_tensors(self) -> None:
        """Wrap the weights as torch tensors on ``self.device`` (sharing memory on CPU)."""
        self.module = SkipGramNS(
            len(self.wv),
            self.vector_size,
            torch.from_numpy(self.wv.vectors).to(self.device),
            torch.from_numpy(self.syn1neg).to(self.device),
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
        **kwargs: Any,
    ) -> tuple[int, int]:
        """Train the model on a corpus, as gensim's ``Word2Vec.train``.

        Parameters
        ----------
        corpus_iterable, corpus_file
            The corpus, as for :meth:`build_vocab`. Words outside the vocabulary are skipped.
        total_examples, total_words : int, optional
            Accepted for gensim compatibility; the exact counts are known after reading.
        epochs : int, optional
            Passes over the corpus; defaults to ``self.epochs``.
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

        Returns
        -------
        (int, int)
            Effective words trained (after subsampling) and raw words read, over all epochs.

        Raises
        ------
        RuntimeError
            The vocabulary has not been built.
        FloatingPointError
            Training diverged to NaN or infinity (lower ``alpha``).
        """
        if not len(self.wv):
            raise RuntimeError(
                "the vocabulary is empty: call model.build_vocab(corpus) before model.train()"
            )
        epochs = self.epochs if epochs is None else epochs
        if not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        start_alpha = self.alpha if start_alpha is None else start_alpha
        end_alpha = self.min_alpha if end_alpha is None else end_alpha
        if not (math.isfinite(start_alpha) and math.isfinite(end_alpha) and start_alpha > 0):
            raise ValueError(
                f"learning rates must be finite and start_alpha > 0; got {start_alpha}, {end_alpha}"
            )
        self.compute_loss = compute_loss
        if callbacks:
            self.callbacks = tuple(callbacks)
        corpus = self._encoded(corpus_iterable, corpus_file)
        if not corpus.ids.size:
            raise ValueError("no word of the training corpus is in the vocabulary")

        engine = create_engine(
            self.engine,
            self.module.input.weight.data,
            self.module.output.weight.data,
            self._sampling_tables(),
            EngineConfig(
                window=self.window,
                negative=self.negative,
                shrink_windows=self.shrink_windows,
                workers=self.workers,
                seed=self.seed + self.train_count,
                compute_loss=compute_loss,
            ),
        )
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
        reports = Trainer(engine, corpus, self.device).run(
            Schedule(epochs, start_alpha, end_alpha),
            on_epoch_begin=self._on_epoch_begin,
            on_epoch_end=lambda report: self._on_epoch_end(report, start_alpha),
            report_delay=report_delay,
        )
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

    def _encoded(
        self, corpus_iterable: Iterable[list[str]] | None, corpus_file: str | Path | None
    ) -> EncodedCorpus:
        """The corpus as ids: the one ``build_vocab`` read if it is the same, else read now."""
        if self._cache is not None and _same_source(
            self._cache[0], _source_key(corpus_iterable, corpus_file)
        ):
            return self._cache[1]
        return encode(as_sentences(corpus_iterable, corpus_file), self.wv.key_to_index)

    def _sampling_tables(self) -> SamplingTables:
        return SamplingTables(
            sample_int=torch.from_numpy(self.wv.expandos["sample_int"].astype(np.int64)).to(
                self.device
            ),
            cum_table=torch.from_numpy(self.cum_table.astype(np.int64)).to(self.device),
        )

    def _on_epoch_begin(self, epoch: int) -> None:
        for callback in self.callbacks:
            callback.on_epoch_begin(self)

    def _on_epoch_end(self, report: EpochReport, alpha: float) -> None:
        self._sync_to_host()
        if not np.isfinite(self.wv.vectors).all():
            raise FloatingPointError(
                f"training diverged to NaN/inf in epoch {report.epoch}; the learning rate "
                f"alpha={alpha} is too high for this corpus: lower it (e.g. alpha={alpha / 10})"
            )
        self.epoch_loss = report.stats.loss
        self.running_training_loss += report.stats.loss
        for callback in self.callbacks:
            callback.on_epoch_end(self)

    def _sync_to_host(self) -> None:
        """Make ``wv.vectors`` and ``syn1neg`` match the device tensors."""
        if self.device.type != "cpu":
            np.copyto(self.wv.vectors, self.module.input.weight.data.cpu().numpy())
            np.copyto(self.syn1neg, self.module.output.weight.data.cpu().numpy())
        self.wv.norms = None  # gensim caches norms; they are stale now

    def get_latest_training_loss(self) -> float:
        """Summed SGNS loss of the latest ``train`` call (gensim's semantics), in float64.

        Only recorded with ``compute_loss=True``. ``epoch_loss`` holds the latest epoch's.
        """
        return self.running_training_loss

    # ------------------------------------------------------------------ persistence

    def save(self, fname_or_handle: str | Path, **kwargs: Any) -> None:
        """Save the whole model (settings, vocabulary, both weight matrices) atomically.

        The file is an ``.npz`` archive with JSON metadata; loading it never runs code.
        Callbacks, ``trim_rule`` and ``hashfxn`` are not saved.
        """
        self._sync_to_host()
        meta = {
            "settings": {name: getattr(self, name) for name in SETTINGS},
            "state": {
                "corpus_count": self.corpus_count,
                "corpus_total_words": self.corpus_total_words,
                "effective_min_count": self.effective_min_count,
                "train_count": self.train_count,
                "total_train_time": self.total_train_time,
                "running_training_loss": self.running_training_loss,
                "min_alpha_yet_reached": self.min_alpha_yet_reached,
            },
            "words": self.wv.index_to_key,
        }
        arrays = {
            "vectors": self.wv.vectors,
            "syn1neg": self.syn1neg,
            "counts": self.wv.expandos["count"],
            "sample_int": self.wv.expandos["sample_int"],
            "cum_table": self.cum_table,
        }
        persistence.write_model(fname_or_handle, meta, arrays)

    @classmethod
    def load(
        cls, fname: str | Path, device: str | torch.device | None = None, **kwargs: Any
    ) -> Word2Vec:
        """Load a model written by :meth:`save`, onto ``device`` (default: CUDA if available).

        Raises
        ------
        FileNotFoundError, ValueError
            Missing file; not a torchw2v model, or truncated or corrupted.
        """
        meta, arrays = persistence.read_model(fname)
        model = cls(**meta["settings"], device=device)
        for name, value in meta["state"].items():
            setattr(model, name, value)
        vectors, syn1neg = arrays["vectors"], arrays["syn1neg"]
        if (
            vectors.shape != (len(meta["words"]), model.vector_size)
            or syn1neg.shape != vectors.shape
        ):
            raise ValueError(
                f"{str(fname)!r} is inconsistent: array shapes do not match its vocabulary"
            )
        wv = model.wv
        wv.index_to_key = meta["words"]
        wv.key_to_index = {word: i for i, word in enumerate(wv.index_to_key)}
        wv.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        wv.allocate_vecattrs(attrs=["count", "sample_int"], types=[np.int64, np.uint32])
        wv.expandos["count"][:] = arrays["counts"]
        wv.expandos["sample_int"][:] = arrays["sample_int"]
        model.syn1neg = np.ascontiguousarray(syn1neg, dtype=np.float32)
        model.cum_table = arrays["cum_table"]
        model._bind_tensors()
        return model

    def __str__(self) -> str:
        return (
            f"{type(self).__name__}<vocab={len(self.wv.index_to_key)}, "
            f"vector_size={self.wv.vector_size}, alpha={self.alpha}>"
        )


def _source_key(corpus_iterable: Any, corpus_file: str | Path | None) -> Any:
    """Identifies a corpus argument: the file's path, or the iterable object itself."""
    return str(corpus_file) if corpus_file is not None else corpus_iterable


def _same_source(a: Any, b: Any) -> bool:
    """Whether two corpus keys name the corpus that ``build_vocab`` already read."""
    return a is b or (isinstance(a, str) and a == b)
