"""Input adapters: whatever a user trains on becomes sentences of tokens, then int32 ids.

Accepted inputs are those gensim accepts: a list of token lists, any restartable iterable of
token lists (``LineSentence``, ``PathLineSentences``, ``Text8Corpus`` ...), or ``corpus_file``,
a LineSentence-format path opened through smart-open (local, ``.gz``, ``.bz2``, remote).

An iterable is read once: :func:`scan` counts words and records every token as an id in the
same pass, so training never iterates over it again. A plain local ``corpus_file`` is read by
the compiled reader (:mod:`torchw2v.corpus_compiled`) on ``workers`` threads instead: counted by
:func:`scan_counts`, then encoded by :func:`encode` once the vocabulary is final, either held
(4 bytes per token rather than the Python path's lists) or, for training on one machine,
streamed: read again block by block every epoch (:class:`StreamedCorpus`), its ids never all
held. The encoded corpus is a flat ``int32`` id array plus ``int64`` sentence offsets (CSR
style).
"""

from __future__ import annotations

import logging
import math
import os
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import GeneratorType
from typing import IO, NoReturn

import numpy as np
from gensim.utils import keep_vocab_item, to_unicode
from smart_open import open as smart_open
from smart_open.compression import get_supported_extensions

from . import corpus_compiled

logger = logging.getLogger(__name__)


class CorpusFile:
    """Sentences of a LineSentence-format file: one sentence per line, tokens split on whitespace.

    Unlike gensim's ``LineSentence`` it never cuts a long line: a sentence of any length is
    trained whole. Paths go through smart-open, so ``.gz``, ``.bz2`` and remote URIs work.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to read.
    start, end : int, optional
        Read only the lines whose first byte lies in ``[start, end)`` (a seekable file):
        byte ranges that tile a file split its lines among readers, each line read once.
    """

    def __init__(self, path: str | Path, start: int = 0, end: int | None = None):
        self.path = str(path)
        self.start, self.end = start, end

    def __iter__(self) -> Iterator[list[str]]:
        try:
            with smart_open(self.path, "rb") as lines:
                for line in self._lines(lines):
                    yield to_unicode(line).split()
        except UnicodeDecodeError as err:
            raise _not_utf8(self.path, err) from None

    def _lines(self, stream: IO[bytes]) -> Iterator[bytes]:
        """The lines of ``stream`` that start in the byte range (all of them by default)."""
        if not self.start and self.end is None:
            yield from stream
            return
        position, end = self.start, math.inf if self.end is None else self.end
        if self.start:
            stream.seek(self.start - 1)
            position += len(stream.readline()) - 1  # the rest of a line begun before start
        while position < end and (line := stream.readline()):
            position += len(line)
            yield line

    def __repr__(self) -> str:
        return f"CorpusFile({self.path!r})"


def _not_utf8(path: str, err: UnicodeDecodeError) -> ValueError:
    return ValueError(f"corpus_file {path!r} is not UTF-8 text ({err}); re-encode it as UTF-8")


def _raise_not_utf8(path: str, offset: int) -> NoReturn:
    """Raise the Python reader's error for the line at byte ``offset``, which is not UTF-8."""
    with open(path, "rb") as stream:
        stream.seek(offset)
        line = stream.readline()
    try:
        to_unicode(line)
    except UnicodeDecodeError as err:
        raise _not_utf8(path, err) from None
    raise RuntimeError(f"corpus_file {path!r} changed while it was read")


def seekable(path: str) -> bool:
    """Whether ``path`` is a local file that can be read from a byte offset (not compressed)."""
    return "://" not in path and Path(path).suffix.lower() not in get_supported_extensions()


def _compiled_span(sentences: Iterable) -> tuple[int, int] | None:
    """The byte range ``[start, end)`` in which the compiled reader reads ``sentences``, or
    None if it cannot (not a plain local :class:`CorpusFile`, or the reader unavailable)."""
    if not (
        isinstance(sentences, CorpusFile)
        and seekable(sentences.path)
        and os.path.isfile(sentences.path)
        and corpus_compiled.is_available()
    ):
        return None
    size = os.path.getsize(sentences.path)
    end = size if sentences.end is None else min(sentences.end, size)
    return min(sentences.start, end), end


def _compiled_ranges(sentences: Iterable, workers: int) -> list[tuple[int, int]] | None:
    """:func:`_compiled_span` cut into one byte range per thread, or None."""
    span = _compiled_span(sentences)
    return None if span is None else corpus_compiled.split_range(*span, workers)


def as_sentences(
    corpus_iterable: Iterable[list[str]] | None = None, corpus_file: str | Path | None = None
) -> Iterable[list[str]]:
    """Validate the user's corpus arguments and return a restartable iterable of sentences.

    Raises
    ------
    TypeError
        Neither or both arguments given; a generator or one-shot iterator; a plain string;
        a ``corpus_file`` that is not a path.
    FileNotFoundError
        ``corpus_file`` is a local path that does not exist.
    IsADirectoryError
        ``corpus_file`` is a folder.
    """
    if (corpus_iterable is None) == (corpus_file is None):
        raise TypeError(
            "pass exactly one of corpus_iterable (sentences as lists of tokens) or corpus_file "
            "(a path to a text file with one sentence per line)"
        )
    if corpus_file is not None:
        if not isinstance(corpus_file, (str, os.PathLike)):
            raise TypeError(
                f"corpus_file must be a path (str or pathlib.Path), got {corpus_file!r} "
                f"({type(corpus_file).__name__})"
            )
        if "://" not in str(corpus_file) and Path(corpus_file).is_dir():
            raise IsADirectoryError(
                f"corpus_file {str(corpus_file)!r} is a folder, not a file; pass one of its "
                "files, or all of them as corpus_iterable=PathLineSentences(folder) (gensim)"
            )
        if "://" not in str(corpus_file) and not Path(corpus_file).is_file():
            raise FileNotFoundError(f"corpus_file {str(corpus_file)!r} does not exist")
        return CorpusFile(corpus_file)
    if isinstance(corpus_iterable, (str, bytes)):
        raise TypeError(
            "corpus_iterable is a single string; pass a list of token lists, "
            "e.g. [line.split() for line in text.splitlines()], or corpus_file=PATH for a file"
        )
    if isinstance(corpus_iterable, GeneratorType) or isinstance(corpus_iterable, Iterator):
        raise TypeError(
            f"corpus_iterable is a {type(corpus_iterable).__name__}, which can be read only "
            "once, but training reads the corpus again; pass a restartable iterable instead: "
            "a list of token lists, gensim's LineSentence(path), or a class whose __iter__ "
            "yields token lists"
        )
    if not isinstance(corpus_iterable, Iterable):
        raise TypeError(
            f"corpus_iterable must be an iterable of token lists, got {type(corpus_iterable)}"
        )
    return corpus_iterable


def check_sentence(sentence: object, number: int) -> None:
    """Reject a sentence that is a plain string instead of a list of tokens."""
    if isinstance(sentence, (str, bytes)):
        raise TypeError(
            f"sentence #{number} is a plain string ({sentence[:40]!r}...); each sentence must "
            "be a list of tokens, e.g. line.split()"
        )


def token_error(sentence: object, number: int) -> TypeError:
    """The error for sentence #``number``, which is not a list of ``str`` tokens (slow: call
    it only once a cheap check failed)."""
    try:
        tokens = list(sentence)
    except TypeError:
        return TypeError(
            f"sentence #{number} is not a list of tokens but {sentence!r:.40} "
            f"({type(sentence).__name__}); each sentence must be a list of str, e.g. line.split()"
        )
    position = next((i for i, t in enumerate(tokens) if not isinstance(t, str)), None)
    return not_a_string(number, position, None if position is None else tokens[position])


def not_a_string(number: int, position: int | None, token: object) -> TypeError:
    """The error for token #``position`` of sentence #``number``, which is not a ``str``."""
    return TypeError(
        f"token #{position} of sentence #{number} is {token!r:.40} "
        f"({type(token).__name__}), not a string; tokens must be str, e.g. [str(t) for t in "
        "sentence]"
    )


def _check_words(index: dict, ids: array, offsets: array) -> None:
    """Raise :func:`not_a_string` for the first token that is not a ``str``: a check per
    distinct word, not per token."""
    for word, raw_id in index.items():
        if not isinstance(word, str):
            at = int(np.argmax(np.frombuffer(ids, dtype=np.int32) == raw_id))
            number = int(np.searchsorted(np.frombuffer(offsets, dtype=np.int64), at, "right")) - 1
            raise not_a_string(number, at - offsets[number], word)


def chunk_bounds(offsets: np.ndarray, chunk_words: int) -> np.ndarray:
    """Sentence indices that cut the corpus into chunks of about ``chunk_words`` tokens."""
    marks = np.arange(chunk_words, offsets[-1], chunk_words)
    cuts = np.searchsorted(offsets, marks)
    return np.unique(np.concatenate(([0], cuts, [len(offsets) - 1])))


@dataclass
class EncodedCorpus:
    """A corpus as word ids, sentences back to back.

    Attributes
    ----------
    ids : numpy.ndarray
        ``(N,)`` int32 word ids.
    offsets : numpy.ndarray
        ``(S + 1,)`` int64: sentence ``s`` is ``ids[offsets[s]:offsets[s + 1]]``.
    raw_words : int
        Tokens read from the corpus, including those not in the vocabulary.
    """

    ids: np.ndarray
    offsets: np.ndarray
    raw_words: int

    @property
    def sentences(self) -> int:
        return len(self.offsets) - 1

    @property
    def tokens(self) -> int:
        """Ids held: the tokens in the vocabulary."""
        return self.ids.size

    def plan(self, chunk_words: int) -> tuple[np.ndarray, np.ndarray]:
        """Chunks of about ``chunk_words`` tokens: ``(C + 1,)`` sentence bounds (as
        :func:`chunk_bounds`) and the tokens before each bound."""
        bounds = chunk_bounds(self.offsets, chunk_words)
        return bounds, self.offsets[bounds]

    def chunks(self, bounds: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """Chunk ``c`` (sentences ``bounds[c]:bounds[c + 1]``) for each ``c``: its ids, its
        offsets from zero, and its first token's position in the corpus."""
        for first, last in zip(bounds[:-1], bounds[1:]):
            offsets = self.offsets[first : last + 1]
            start = int(offsets[0])
            yield self.ids[start : int(offsets[-1])], offsets - start, start

    def remapped(self, remap: np.ndarray) -> EncodedCorpus:
        """Map every id through ``remap`` and drop the tokens mapped (or already set) to -1."""
        ids = np.append(remap.astype(np.int32), np.int32(-1))[self.ids]  # id -1 stays -1
        keep = ids >= 0
        kept_before = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
        return EncodedCorpus(ids[keep], kept_before[self.offsets], self.raw_words)


BLOCK_BYTES = 8 << 20
"""A :class:`StreamedCorpus` encodes its file this many bytes at a time."""


class StreamedCorpus:
    """A plain local corpus file as word ids, encoded again block by block on every pass.

    No ids outlive a pass: at most two blocks of ids (the next one is encoded in a helper
    thread while the current one trains) plus the part of a chunk carried across a block
    boundary are held, about ``4 * 2 * BLOCK_BYTES / bytes per token`` bytes whatever the
    length of the file. Its chunks are exactly those :class:`EncodedCorpus` cuts from the
    same file, so training on either is the same. Build it with :func:`encode`.

    Parameters
    ----------
    path : str
        A plain local file.
    index : corpus_compiled.WordIndex
        The vocabulary.
    span : (int, int)
        The byte range whose lines are read.
    workers : int
        Threads encoding each block.
    chunk_words : int
        The chunk size of the plan worked out while counting (:meth:`plan`).

    Attributes
    ----------
    tokens, sentences, raw_words : int
        Tokens in the vocabulary, sentences (lines) and tokens read, counted by a first pass.

    Raises
    ------
    ValueError
        A line of the file is not UTF-8 (the error the Python reader raises).
    """

    def __init__(
        self,
        path: str,
        index: corpus_compiled.WordIndex,
        span: tuple[int, int],
        workers: int,
        chunk_words: int,
    ):
        self.path, self.index, self.workers = path, index, workers
        self.blocks = [
            (begin, min(begin + BLOCK_BYTES, span[1]))
            for begin in range(span[0], span[1], BLOCK_BYTES)
        ]
        self._plans = {chunk_words: self._survey(chunk_words)}

    def plan(self, chunk_words: int) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`EncodedCorpus.plan` (a pass over the file for a new ``chunk_words``)."""
        if chunk_words not in self._plans:
            self._plans[chunk_words] = self._survey(chunk_words)
        return self._plans[chunk_words]

    def _survey(self, chunk_words: int) -> tuple[np.ndarray, np.ndarray]:
        """Count the corpus and find :func:`chunk_bounds` block by block, holding no ids."""
        cuts, done, marks = [np.zeros(1, np.int64)], [np.zeros(1, np.int64)], [np.zeros(1)]
        tokens = sentences = raw_words = 0
        next_mark = chunk_words
        for _, offsets, raw in self._encoded_blocks():
            reached = offsets + tokens  # corpus positions of the block's sentence bounds
            marks.append(np.arange(next_mark, reached[-1] + 1, chunk_words))
            next_mark += marks[-1].size * chunk_words
            at = np.searchsorted(reached, marks[-1])  # the first sentence at or past a mark
            cuts.append(at + sentences)
            done.append(reached[at])
            tokens, sentences = int(reached[-1]), sentences + offsets.size - 1
            raw_words += raw
        self.tokens, self.sentences, self.raw_words = tokens, sentences, raw_words
        marks.append(np.zeros(1))  # the end, kept below like the start
        cuts.append(np.array([sentences]))
        done.append(np.array([tokens]))
        keep = np.concatenate(marks) < max(tokens, 1)
        bounds, first = np.unique(np.concatenate(cuts)[keep], return_index=True)
        return bounds, np.concatenate(done)[keep][first]

    def chunks(self, bounds: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """As :meth:`EncodedCorpus.chunks`, reading the file once.

        Raises
        ------
        RuntimeError
            The file no longer holds the sentences of ``bounds``.
        """
        ids, offsets = np.zeros(0, np.int32), np.zeros(1, np.int64)  # sentences carried over
        first_sentence = first_token = 0  # corpus positions of the carried sentences
        reached = 1  # bounds[:reached] are done
        for block_ids, block_offsets, _ in self._encoded_blocks():
            ids = np.concatenate((ids, block_ids))
            offsets = np.concatenate((offsets[:-1], block_offsets + offsets[-1]))
            held_end = first_sentence + offsets.size - 1  # past the last sentence held
            ends = bounds[reached : np.searchsorted(bounds, held_end, "right")]
            cut = 0
            for end in ends - first_sentence:
                lo, hi = offsets[cut], offsets[end]
                yield ids[lo:hi], offsets[cut : end + 1] - lo, first_token + int(lo)
                cut = end
            reached += ends.size
            lo = offsets[cut]
            ids, offsets = ids[lo:], offsets[cut:] - lo
            first_sentence, first_token = first_sentence + int(cut), first_token + int(lo)
        if reached != len(bounds):
            raise RuntimeError(f"corpus_file {self.path!r} changed while it was trained on")

    def _encoded_blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """Each block's ids, offsets from zero and raw tokens; the next encoded meanwhile."""
        with ThreadPoolExecutor(1, thread_name_prefix="torchw2v reader") as reader:
            ahead = None
            for block in [*self.blocks, None]:
                following = None if block is None else reader.submit(self._encode, block)
                if ahead is not None:
                    yield ahead.result()
                ahead = following

    def _encode(self, block: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int]:
        ranges = corpus_compiled.split_range(*block, self.workers)
        ids, offsets, _, raw_words, bad_line = corpus_compiled.encode_words(
            self.path, ranges, self.index, self.workers, report=False
        )
        if bad_line >= 0:
            _raise_not_utf8(self.path, bad_line)
        return ids, offsets, raw_words


@dataclass
class ScannedCorpus:
    """The result of one pass over a corpus: raw vocabulary, and the corpus as raw ids if kept.

    Attributes
    ----------
    words : list of str
        Distinct words in order of first occurrence (after ``max_vocab_size`` pruning).
    counts : numpy.ndarray
        ``(len(words),)`` int64 counts.
    sentences, raw_words : int
        Sentences and tokens read.
    corpus : EncodedCorpus or None
        Tokens as indices into ``words``; tokens pruned during the scan are dropped. None
        when the compiled reader counted a file: :func:`encode` it with the final vocabulary.
    first : (numpy.ndarray, numpy.ndarray) or None
        Where each word first occurs: ``(W,)`` int64 sentence keys, which sort the scanned
        sentences in order (the compiled reader's are byte offsets of lines), and ``(W,)``
        int64 token positions in those sentences. None: derived from ``corpus``.
    """

    words: list[str]
    counts: np.ndarray
    sentences: int
    raw_words: int
    corpus: EncodedCorpus | None = None
    first: tuple[np.ndarray, np.ndarray] | None = None

    def first_occurrences(self) -> tuple[np.ndarray, np.ndarray]:
        """Each word's first occurrence: ``(sentence key, position)``, see ``first``."""
        if self.first is not None:
            return self.first
        corpus = self.corpus
        first = np.full(len(self.words), corpus.ids.size, dtype=np.int64)
        present, at = np.unique(corpus.ids, return_index=True)
        first[present] = at  # (W,) each word's first token
        sentence = np.searchsorted(corpus.offsets, first, side="right") - 1
        return sentence, first - corpus.offsets[sentence]


def scan_counts(
    sentences: Iterable[list[str]],
    max_vocab_size: int | None = None,
    trim_rule: Callable | None = None,
    progress_per: int = 10000,
    workers: int = 1,
) -> ScannedCorpus:
    """``build_vocab``'s pass over a corpus: the words, their counts and first occurrences.

    A plain local :class:`CorpusFile` is counted by the compiled reader on ``workers``
    threads, without keeping its ids (``corpus`` is None). Anything else, and a file when
    ``max_vocab_size`` is set (its pruning follows the order in which one reader meets the
    sentences), goes through :func:`scan`. Both give the same words, counts and order.

    Raises
    ------
    ValueError
        A line of the file is not UTF-8 (the error the Python reader raises).
    """
    ranges = None if max_vocab_size else _compiled_ranges(sentences, workers)
    if ranges is None:
        return scan(sentences, max_vocab_size, trim_rule, progress_per)
    found = corpus_compiled.count_words(sentences.path, ranges, workers, progress_per)
    if found.bad_line >= 0:
        _raise_not_utf8(sentences.path, found.bad_line)
    scanned = ScannedCorpus(
        found.words,
        found.counts,
        found.lines,
        found.tokens,
        first=(found.first_line, found.first_position),
    )
    _log_collected(scanned)
    return scanned


def _log_collected(scanned: ScannedCorpus) -> None:
    logger.info(
        "collected %i word types from a corpus of %i raw words and %i sentences",
        len(scanned.words),
        scanned.raw_words,
        scanned.sentences,
    )


def scan(
    sentences: Iterable[list[str]],
    max_vocab_size: int | None = None,
    trim_rule: Callable | None = None,
    progress_per: int = 10000,
) -> ScannedCorpus:
    """Count words and encode the corpus in a single pass.

    Matches gensim's ``scan_vocab``, including its ``max_vocab_size`` pruning: whenever more
    than ``max_vocab_size`` distinct words are held, words seen fewer than ``min_reduce`` times
    so far are forgotten (their counts restart from zero if they come back) and ``min_reduce``
    grows by one.
    """
    index: dict[str, int] = {}
    ids = array("i")
    offsets = array("q", [0])
    min_reduce = 1
    for number, sentence in enumerate(sentences):
        check_sentence(sentence, number)
        if number % progress_per == 0:
            logger.info(
                "PROGRESS: at sentence #%i, processed %i words, keeping %i word types",
                number,
                len(ids),
                len(index),
            )
        setdefault = index.setdefault
        try:
            ids.extend([setdefault(word, len(index)) for word in sentence])
        except TypeError:  # not iterable, or an unhashable token
            raise token_error(sentence, number) from None
        offsets.append(len(ids))
        if max_vocab_size and len(index) > max_vocab_size:
            _check_words(index, ids, offsets)  # before pruning forgets a word
            index = _prune(index, ids, min_reduce, trim_rule)
            min_reduce += 1
    _check_words(index, ids, offsets)
    raw_ids = np.frombuffer(ids, dtype=np.int32)
    counts = np.bincount(raw_ids[raw_ids >= 0], minlength=len(index)).astype(np.int64)
    corpus = EncodedCorpus(raw_ids, np.frombuffer(offsets, dtype=np.int64), len(raw_ids))
    if max_vocab_size:  # drop the occurrences forgotten by pruning
        corpus = corpus.remapped(np.arange(len(index), dtype=np.int32))
    scanned = ScannedCorpus(list(index), counts, corpus.sentences, corpus.raw_words, corpus)
    _log_collected(scanned)
    return scanned


def _prune(
    index: dict[str, int], ids: array, min_reduce: int, trim_rule: Callable | None
) -> dict[str, int]:
    """Forget rare words as gensim's ``prune_vocab`` does; renumber ``ids`` in place.

    Occurrences of forgotten words become -1, and survivors keep their relative order, so
    ids stay dense and ``len(index)`` remains the next free id.
    """
    view = np.frombuffer(ids, dtype=np.int32)
    counts = np.bincount(view[view >= 0], minlength=len(index))
    survivors = {
        w: i for w, i in index.items() if keep_vocab_item(w, counts[i], min_reduce, trim_rule)
    }
    remap = np.full(len(index) + 1, -1, dtype=np.int32)  # the last slot maps -1 to -1
    remap[list(survivors.values())] = np.arange(len(survivors), dtype=np.int32)
    view[:] = remap[view]
    del view  # release the buffer so `ids` can grow again
    return {w: new for new, w in enumerate(survivors)}


def encode(
    sentences: Iterable[list[str]],
    key_to_index: Mapping[str, int],
    workers: int = 1,
    chunk_words: int | None = None,
) -> EncodedCorpus | StreamedCorpus:
    """Encode a corpus with an existing vocabulary, dropping unknown words.

    A plain local :class:`CorpusFile` is read by the compiled reader on ``workers`` threads
    when the ids of ``key_to_index`` are ``0, 1, ...`` in its order (as ``wv.key_to_index``);
    with ``chunk_words`` it is then not held but streamed (:class:`StreamedCorpus`, planned
    for chunks of that many tokens).

    Raises
    ------
    ValueError
        A line of the file is not UTF-8 (the error the Python reader raises).
    """
    span = _compiled_span(sentences)
    if span is not None and _dense(key_to_index):
        index = corpus_compiled.WordIndex(key_to_index)
        if chunk_words:
            return StreamedCorpus(sentences.path, index, span, workers, chunk_words)
        ranges = corpus_compiled.split_range(*span, workers)
        ids, offsets, _, raw_words, bad_line = corpus_compiled.encode_words(
            sentences.path, ranges, index, workers
        )
        if bad_line >= 0:
            _raise_not_utf8(sentences.path, bad_line)
        return EncodedCorpus(ids, offsets, raw_words)
    ids = array("i")
    offsets = array("q", [0])
    get = key_to_index.get
    raw_words = 0
    for number, sentence in enumerate(sentences):
        check_sentence(sentence, number)
        try:
            encoded = [get(word, -1) for word in sentence]
            if -1 in encoded:  # an unknown word: is every token a str? (join is C-fast)
                "".join(sentence)
        except TypeError:
            raise token_error(sentence, number) from None
        raw_words += len(encoded)
        ids.extend(encoded)
        offsets.append(len(ids))
    corpus = EncodedCorpus(
        np.frombuffer(ids, dtype=np.int32), np.frombuffer(offsets, dtype=np.int64), raw_words
    )
    return corpus.remapped(np.arange(len(key_to_index), dtype=np.int32))


def _dense(key_to_index: Mapping[str, int]) -> bool:
    """Whether the ids of ``key_to_index`` are ``0, 1, ...`` in iteration order."""
    ids = np.fromiter(key_to_index.values(), dtype=np.int64, count=len(key_to_index))
    return bool(np.array_equal(ids, np.arange(len(ids))))
