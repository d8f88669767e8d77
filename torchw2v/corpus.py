"""Input adapters: whatever a user trains on becomes sentences of tokens, then int32 ids.

Accepted inputs are those gensim accepts: a list of token lists, any restartable iterable of
token lists (``LineSentence``, ``PathLineSentences``, ``Text8Corpus`` ...), or ``corpus_file``,
a LineSentence-format path opened through smart-open (local, ``.gz``, ``.bz2``, remote).

Nothing here holds the corpus: memory grows with the vocabulary, never with the number of
tokens. ``build_vocab`` counts words in one pass (:func:`scan_counts`): the compiled reader
(:mod:`torchw2v.corpus_compiled`) on ``workers`` threads for a plain local file, else
:func:`scan` in Python. Training reads the corpus again on every pass, as gensim does, and
encodes it a block at a time while the engine trains the previous block
(:class:`StreamedCorpus`, made by :func:`encode`).
"""

from __future__ import annotations

import itertools
import logging
import lzma
import math
import os
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import GeneratorType
from typing import IO, NoReturn, TypeVar

import numpy as np
from gensim.utils import keep_vocab_item
from smart_open import open as smart_open
from smart_open.compression import get_supported_extensions

from . import corpus_compiled

logger = logging.getLogger(__name__)


MAX_SENTENCE_TOKENS = 10000
"""The most tokens of a sentence read from a file: longer lines are cut into sentences of this
many tokens, as gensim's ``LineSentence`` and ``corpus_file`` cut them (gensim's
``MAX_WORDS_IN_BATCH``)."""

STRIPE_BYTES = 1 << 20
"""About the bytes of a corpus file's stripe (:class:`Stripes`). Halves of the file instead
(each rank its own part of the corpus) lost 0.026 WS353 with CBOW on 4M tokens over 3 seeds,
1 MB stripes 0.008 (``benchmarks/RESULTS.md``, before the ranks drew as one process)."""

STRIPE_TOKENS = 1 << 18
"""About the tokens of a stripe of a corpus other than a file (:class:`Stripes`)."""

PIECE_BYTES = 1 << 20
"""A line is read at most about this many bytes at a time (cut at whitespace), so that a corpus
written on one line (``text8``) is never held whole."""

_ASCII_SPACES = tuple(bytes([c]) for c in b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f")
"""The bytes that ``str.split()`` splits at and that never occur inside a UTF-8 character."""


class CorpusFile:
    """Sentences of a LineSentence-format file, as gensim's ``LineSentence`` reads them.

    One sentence per line, tokens split on whitespace; a line of more than
    :data:`MAX_SENTENCE_TOKENS` tokens is cut into sentences of that many, and a line without
    tokens is skipped. A long line is read a piece at a time: memory does not grow with it.
    Paths go through smart-open, so ``.gz``, ``.bz2`` and remote URIs work.

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
        tokens: list[str] = []  # of the current line, not yet yielded
        try:
            with smart_open(self.path, "rb") as stream:
                for piece, line_ends in self._pieces(stream):
                    words = piece.decode("utf-8").split()
                    tokens = tokens + words if tokens else words
                    while len(tokens) >= MAX_SENTENCE_TOKENS:
                        yield tokens[:MAX_SENTENCE_TOKENS]
                        tokens = tokens[MAX_SENTENCE_TOKENS:]
                    if line_ends and tokens:
                        yield tokens
                        tokens = []
        except UnicodeDecodeError as err:
            raise _not_utf8(self.path, err) from None
        except (EOFError, zlib.error, lzma.LZMAError, OSError) as err:
            if isinstance(err, OSError) and err.errno is not None:  # a real I/O error
                raise
            raise ValueError(  # the decompressor's: gzip, bz2 and lzma errors carry no errno
                f"corpus_file {self.path!r} is truncated or is not the compressed data its "
                f"extension says ({err}); copy or compress it again, or rename it if it is "
                "plain text"
            ) from None

    def _pieces(self, stream: IO[bytes]) -> Iterator[tuple[bytes, bool]]:
        """The lines of ``stream`` that start in the byte range (all of them by default), in
        pieces of about :data:`PIECE_BYTES` cut after whitespace: ``(piece, whether it ends
        its line)``."""
        position, end = self.start, math.inf if self.end is None else self.end
        if self.start:
            stream.seek(self.start - 1)
            position += _skip_line(stream) - 1  # the rest of a line begun before start
        carried, in_line = b"", False  # carried: a token cut by the last read
        while in_line or position < end:
            piece = stream.readline(PIECE_BYTES)
            position += len(piece)
            if not piece:  # the end of the file
                if in_line:
                    yield carried, True
                return
            piece = carried + piece
            if piece.endswith(b"\n"):
                carried, in_line = b"", False
                yield piece, True
            else:  # a line longer than PIECE_BYTES, or the last one without a newline
                cut = max(piece.rfind(space) for space in _ASCII_SPACES) + 1
                piece, carried, in_line = piece[:cut], piece[cut:], True
                yield piece, False

    def __repr__(self) -> str:
        return f"CorpusFile({self.path!r})"


class Stripes:
    """Rank ``rank``'s stripes of a corpus that ``world`` ranks train on together: stripes
    ``rank``, ``rank + world``, ... (numbered from 0 in corpus order), so that at each moment
    the ranks train nearby text, as one process's threads do.

    A plain local :class:`CorpusFile` is cut into stripes of about :data:`STRIPE_BYTES`
    (a line belongs to the stripe holding its first byte; every rank gets as many, of one
    size); any other corpus into stripes of sentences, each ending with the first sentence
    that brings it to :data:`STRIPE_TOKENS` tokens (every rank reads every sentence, and
    encodes only its own).
    """

    def __init__(self, sentences: Iterable[list[str]], rank: int, world: int):
        self.sentences, self.rank, self.world = sentences, rank, world

    def byte_stripes(self) -> list[tuple[int, int, int]] | None:
        """``(stripe, start, end)`` of this rank's byte stripes of a plain local file, or
        None for another corpus."""
        if not (isinstance(self.sentences, CorpusFile) and seekable(self.sentences.path)):
            return None
        size = os.path.getsize(self.sentences.path)
        turns = max(1, round(size / (self.world * STRIPE_BYTES)))  # stripes per rank
        width = max(1, -(-size // (turns * self.world)))
        starts = range(self.rank * width, size, self.world * width)
        return [(start // width, start, start + width) for start in starts]

    def numbered(self) -> Iterator[tuple[int, int, list[str]]]:
        """This rank's sentences as ``(stripe, sentence number, sentence)``; sentence
        numbers count every rank's sentences of a corpus other than a file."""
        byte_stripes = self.byte_stripes()
        if byte_stripes is not None:
            number = itertools.count()
            for stripe, start, end in byte_stripes:
                for sentence in CorpusFile(self.sentences.path, start, end):
                    yield stripe, next(number), sentence
            return
        stripe = tokens = 0
        for number, sentence in enumerate(self.sentences):
            if stripe % self.world == self.rank:
                yield stripe, number, sentence
            check_sentence(sentence, number)
            try:
                tokens += len(sentence)
            except TypeError:
                raise token_error(sentence, number) from None
            if tokens >= STRIPE_TOKENS:
                stripe, tokens = stripe + 1, 0

    def __iter__(self) -> Iterator[list[str]]:
        return (sentence for _, _, sentence in self.numbered())

    def __repr__(self) -> str:
        return f"Stripes({self.sentences!r}, rank={self.rank}, world={self.world})"


def _skip_line(stream: IO[bytes]) -> int:
    """Read ``stream`` to the end of its current line, a piece at a time; the bytes read."""
    skipped = 0
    while piece := stream.readline(PIECE_BYTES):
        skipped += len(piece)
        if piece.endswith(b"\n"):
            break
    return skipped


def _not_utf8(path: str, err: UnicodeDecodeError) -> ValueError:
    return ValueError(f"corpus_file {path!r} is not UTF-8 text ({err}); re-encode it as UTF-8")


def _raise_not_utf8(path: str, offset: int) -> NoReturn:
    """Raise the Python reader's error for the line at byte ``offset``, which is not UTF-8."""
    for _ in CorpusFile(path, offset, offset + 1):  # raises the error, a piece at a time
        pass
    raise RuntimeError(f"corpus_file {path!r} changed while it was read")


def seekable(path: str) -> bool:
    """Whether ``path`` is a local file that can be read from a byte offset (not compressed)."""
    return "://" not in path and Path(path).suffix.lower() not in get_supported_extensions()


def _file_of(sentences: Iterable) -> Iterable:
    """What ``sentences`` reads: the corpus itself, or the corpus of :class:`Stripes`."""
    return sentences.sentences if isinstance(sentences, Stripes) else sentences


def _compiled_spans(sentences: Iterable) -> list[tuple[int, int, int]] | None:
    """The ``(stripe, start, end)`` byte ranges in which the compiled reader reads
    ``sentences``, in order, or None if it cannot (not a plain local :class:`CorpusFile`
    or :class:`Stripes` of one, or the reader unavailable). A file read whole is stripe 0."""
    file = _file_of(sentences)
    if not (
        isinstance(file, CorpusFile)
        and seekable(file.path)
        and os.path.isfile(file.path)
        and corpus_compiled.is_available()
    ):
        return None
    size = os.path.getsize(file.path)
    if isinstance(sentences, Stripes):
        spans = sentences.byte_stripes()
    else:
        spans = [(0, file.start, size if file.end is None else file.end)]
    return [(stripe, min(start, size), min(end, size)) for stripe, start, end in spans]


def _compiled_ranges(sentences: Iterable, workers: int) -> list[tuple[int, int]] | None:
    """:func:`_compiled_spans`, each cut into one byte range per thread, or None."""
    spans = _compiled_spans(sentences)
    if spans is None:
        return None
    return [piece for _, *span in spans for piece in corpus_compiled.split_range(*span, workers)]


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
    ValueError
        ``corpus_file`` is a pipe, a device or another file that is not a regular one.
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
        if "://" not in str(corpus_file) and not Path(corpus_file).exists():
            raise FileNotFoundError(f"corpus_file {str(corpus_file)!r} does not exist")
        if "://" not in str(corpus_file) and not Path(corpus_file).is_file():
            raise ValueError(
                f"corpus_file {str(corpus_file)!r} is not a regular file (a pipe or a device?): "
                "training reads the corpus once per epoch and once more for the vocabulary; "
                "write it to a file first"
            )
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


Block = tuple[np.ndarray, np.ndarray, int, int]
"""Encoded sentences: ``(N,)`` int32 ids, ``(S + 1,)`` int64 offsets from zero (sentence ``s``
is ``ids[offsets[s]:offsets[s + 1]]``), the raw tokens read (unknown words included) and
the stripe they are of (:class:`Stripes`; 0 for a whole corpus). No block holds sentences
of two stripes."""

BLOCK_BYTES = 8 << 20
"""A corpus file is encoded this many bytes at a time."""

BLOCK_WORDS = 1 << 20
"""A corpus iterable is encoded (and scanned) this many tokens at a time."""

T = TypeVar("T")


def read_ahead(items: Iterable[T]) -> Iterator[T]:
    """The items of ``items``, each made in a helper thread while the caller uses the previous
    one (the compiled reader and engines release the GIL, so both run at once)."""
    done = object()
    with ThreadPoolExecutor(1, thread_name_prefix="torchw2v reader") as reader:
        iterator = iter(items)
        following = reader.submit(next, iterator, done)
        while (item := following.result()) is not done:
            following = reader.submit(next, iterator, done)
            yield item


class FileBlocks:
    """The lines of byte ranges of a plain local file, range after range, encoded by the
    compiled reader on ``workers`` threads, ``BLOCK_BYTES`` at a time (a longer line too: it
    is cut between two of its sentences). ``spans`` are ``(stripe, start, end)``. Iterating
    reads the file again."""

    def __init__(
        self,
        path: str,
        index: corpus_compiled.WordIndex,
        spans: Sequence[tuple[int, int, int]],
        workers: int,
    ):
        self.path, self.index, self.spans, self.workers = path, index, spans, workers
        self.what = f"corpus_file {path!r}"

    def __iter__(self) -> Iterator[Block]:
        for stripe, begin, end in self.spans:
            cut = None  # where the last block cut a line, which this one reads on
            while begin < end or cut:
                ids, offsets, raw_words, cut = self.encode(
                    begin, min(begin + BLOCK_BYTES, end), cut
                )
                yield ids, offsets, raw_words, stripe
                begin = cut[0] if cut else begin + BLOCK_BYTES

    def encode(
        self, begin: int, end: int, cut: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, int, tuple[int, int] | None]:
        """The rest of the line ``cut`` at ``begin`` (if given), then the lines that start
        in ``[begin, end)``, a line going on past ``begin + BLOCK_BYTES`` cut at a sentence
        end there: ids, offsets, raw words and the new cut (or None)."""
        ranges = corpus_compiled.split_range(begin, max(begin, end), self.workers)
        ids, offsets, _, raw_words, bad_line, cut = corpus_compiled.encode_words(
            self.path, ranges, self.index, self.workers, False, cut, begin + BLOCK_BYTES
        )
        if bad_line >= 0:
            _raise_not_utf8(self.path, bad_line)
        return ids, offsets, raw_words, cut


class SentenceBlocks:
    """A restartable iterable of token lists (or a rank's :class:`Stripes` of one), encoded
    in Python about ``BLOCK_WORDS`` tokens at a time; words outside ``key_to_index`` are
    dropped, and a sentence of more than :data:`MAX_SENTENCE_TOKENS` tokens is cut into
    sentences of that many (gensim trains only its first ones). Iterating reads the corpus
    again.

    Raises
    ------
    TypeError
        A sentence is not a list of ``str`` tokens (see :func:`token_error`).
    """

    def __init__(self, sentences: Iterable[list[str]], key_to_index: Mapping[str, int]):
        self.sentences, self.key_to_index = sentences, key_to_index
        self.what = "corpus_iterable"

    def _numbered(self) -> Iterator[tuple[int, int, list[str]]]:
        """``(stripe, sentence number, sentence)`` of the sentences to encode."""
        if isinstance(self.sentences, Stripes):
            return self.sentences.numbered()
        return ((0, number, sentence) for number, sentence in enumerate(self.sentences))

    def __iter__(self) -> Iterator[Block]:
        get = self.key_to_index.get
        ids, offsets, raw_words, current = array("i"), array("q", [0]), 0, 0
        for stripe, number, sentence in self._numbered():
            if stripe != current and len(offsets) > 1:
                yield _known(ids, offsets, raw_words, current)
                ids, offsets, raw_words = array("i"), array("q", [0]), 0
            current = stripe
            check_sentence(sentence, number)
            try:
                encoded = [get(word, -1) for word in sentence]
                if -1 in encoded:  # an unknown word: is every token a str? (join is C-fast)
                    "".join(sentence)
            except TypeError:
                raise token_error(sentence, number) from None
            raw_words += len(encoded)
            ids.extend(encoded)
            # a long sentence is trained as pieces of MAX_SENTENCE_TOKENS (gensim drops the rest)
            offsets.extend(
                range(len(ids) - len(encoded) + MAX_SENTENCE_TOKENS, len(ids), MAX_SENTENCE_TOKENS)
            )
            offsets.append(len(ids))
            if len(ids) >= BLOCK_WORDS:
                yield _known(ids, offsets, raw_words, current)
                ids, offsets, raw_words = array("i"), array("q", [0]), 0
        if len(offsets) > 1:
            yield _known(ids, offsets, raw_words, current)


def _known(ids: array, offsets: array, raw_words: int, stripe: int) -> Block:
    """The block of ``ids`` without the unknown words' -1s."""
    ids_, offsets_ = np.frombuffer(ids, dtype=np.int32), np.frombuffer(offsets, dtype=np.int64)
    keep = ids_ >= 0
    kept_before = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
    return ids_[keep], kept_before[offsets_], raw_words, stripe


@dataclass
class Parts:
    """The stripes of a :class:`StreamedCorpus` (:class:`Stripes`), in the order read.

    Attributes
    ----------
    stripes : numpy.ndarray
        ``(P,)`` int64 stripe numbers.
    sentences, tokens : numpy.ndarray
        ``(P + 1,)`` int64 sentences and tokens before each stripe, then the totals.
    """

    stripes: np.ndarray
    sentences: np.ndarray
    tokens: np.ndarray

    def holding(self, sentences: np.ndarray) -> np.ndarray:
        """The part each of ``sentences`` (indices into the corpus; the end: the last part)
        lies in, as ``(N,)`` indices into :attr:`stripes`."""
        return np.maximum(np.searchsorted(self.sentences[:-1], sentences, "right") - 1, 0)


class StreamedCorpus:
    """A corpus as word ids, encoded again block by block on every pass.

    No ids outlive a pass: at most two blocks (the next one is encoded in a helper thread
    while the current one trains) plus the part of a chunk carried across a block boundary
    are held, whatever the length of the corpus. A first pass counts the corpus and plans
    its chunks. Build it with :func:`encode`.

    Parameters
    ----------
    blocks : FileBlocks or SentenceBlocks
        The corpus, encoded a block at a time each time it is iterated.
    chunk_words : int
        The chunk size of the first plan (:meth:`plan`).

    Attributes
    ----------
    tokens, sentences, raw_words : int
        Tokens in the vocabulary, sentences and tokens read, counted by the first pass.
    parts : Parts
        The stripes read (one, stripe 0, for a whole corpus), counted by the first pass.
    """

    def __init__(self, blocks: FileBlocks | SentenceBlocks, chunk_words: int):
        self.blocks = blocks
        self._plans = {chunk_words: self._survey(chunk_words)}

    def plan(self, chunk_words: int) -> tuple[np.ndarray, np.ndarray]:
        """Chunks of about ``chunk_words`` tokens: ``(C + 1,)`` sentence indices (chunk ``c``
        is sentences ``bounds[c]:bounds[c + 1]``, cut at each stripe's first sentence and at
        the first sentence that starts at or past each multiple of ``chunk_words`` tokens
        into its stripe, unless less than half of ``chunk_words`` would remain in the
        stripe) and the tokens before each bound. A new ``chunk_words`` takes a
        pass over the corpus."""
        if chunk_words not in self._plans:
            self._plans[chunk_words] = self._survey(chunk_words)
        return self._plans[chunk_words]

    def _survey(self, chunk_words: int) -> tuple[np.ndarray, np.ndarray]:
        """Count the corpus and find the plan's bounds block by block, holding no ids."""
        cuts, done, marks = [np.zeros(1, np.int64)], [np.zeros(1, np.int64)], [np.zeros(1)]
        stripes: list[int] = []
        starts: list[tuple[int, int]] = []  # (sentences, tokens) before each stripe
        tokens = sentences = raw_words = 0
        for _, offsets, raw, stripe in read_ahead(self.blocks):
            if not stripes or stripe != stripes[-1]:  # a stripe starts a chunk
                stripes.append(stripe)
                starts.append((sentences, tokens))
                next_mark = tokens
            reached = offsets + tokens  # corpus positions of the block's sentence bounds
            marks.append(np.arange(next_mark, reached[-1] + 1, chunk_words))
            next_mark += marks[-1].size * chunk_words
            at = np.searchsorted(reached, marks[-1])  # the first sentence at or past a mark
            cuts.append(at + sentences)
            done.append(reached[at])
            tokens, sentences = int(reached[-1]), sentences + offsets.size - 1
            raw_words += raw
        self.tokens, self.sentences, self.raw_words = tokens, sentences, raw_words
        before = np.array(starts + [(sentences, tokens)], np.int64).reshape(-1, 2)
        self.parts = Parts(np.array(stripes, np.int64), before[:, 0], before[:, 1])
        marks.append(np.zeros(1))  # the end, kept below like the start
        cuts.append(np.array([sentences]))
        done.append(np.array([tokens]))
        keep = np.concatenate(marks) < max(tokens, 1)
        bounds, first = np.unique(np.concatenate(cuts)[keep], return_index=True)
        return self._without_short_ends(bounds, np.concatenate(done)[keep][first], chunk_words)

    def _without_short_ends(
        self, bounds: np.ndarray, done: np.ndarray, chunk_words: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``bounds`` and ``done`` without the cuts that leave a stripe's last chunk under
        half of ``chunk_words`` tokens: that chunk joins the one before it (a stripe of
        distributed training would otherwise end in a short chunk, and a synchronisation)."""
        parts = self.parts
        part = parts.holding(bounds)
        rest = parts.tokens[np.minimum(part + 1, parts.tokens.size - 1)] - done
        short = (bounds != parts.sentences[part]) & (rest < chunk_words / 2)
        short[[0, -1]] = False
        return bounds[~short], done[~short]

    def chunks(self, bounds: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """Chunk ``c`` (sentences ``bounds[c]:bounds[c + 1]``) for each ``c``, in one pass:
        its ids, its offsets from zero, and its first token's position in the corpus.

        Raises
        ------
        RuntimeError
            The corpus no longer holds the sentences of ``bounds``.
        """
        ids, offsets = np.zeros(0, np.int32), np.zeros(1, np.int64)  # sentences carried over
        first_sentence = first_token = 0  # corpus positions of the carried sentences
        reached = 1  # bounds[:reached] are done
        no_sentences = (np.zeros(0, np.int32), np.zeros(1, np.int64))  # ends empty chunks
        blocks = itertools.chain(read_ahead(self.blocks), [no_sentences])
        for block_ids, block_offsets, *_ in blocks:
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
            raise RuntimeError(
                f"{self.blocks.what} changed while it was trained on: it must give the same "
                "sentences on every pass"
            )


@dataclass
class ScannedCorpus:
    """The result of one pass over a corpus: its raw vocabulary.

    Attributes
    ----------
    words : list of str
        Distinct words in order of first occurrence (after ``max_vocab_size`` pruning).
    counts : numpy.ndarray
        ``(len(words),)`` int64 counts.
    sentences, raw_words : int
        Sentences and tokens read.
    first : (numpy.ndarray, numpy.ndarray) or None
        Where each word first occurs: ``(W,)`` int64 sentence keys, which sort the scanned
        sentences in order (sentence numbers, or the compiled reader's byte offsets of
        lines), and ``(W,)`` int64 token positions in those sentences. None once merged
        across ranks.
    """

    words: list[str]
    counts: np.ndarray
    sentences: int
    raw_words: int
    first: tuple[np.ndarray, np.ndarray] | None = None


def scan_counts(
    sentences: Iterable[list[str]],
    max_vocab_size: int | None = None,
    trim_rule: Callable | None = None,
    progress_per: int = 10000,
    workers: int = 1,
) -> ScannedCorpus:
    """``build_vocab``'s pass over a corpus: the words, their counts and first occurrences.

    A plain local :class:`CorpusFile` is counted by the compiled reader on ``workers``
    threads. Anything else, and a file when ``max_vocab_size`` is set (its pruning follows
    the order in which one reader meets the sentences), goes through :func:`scan`. Both give
    the same words, counts and order.

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
        found.sentences,
        found.tokens,
        (found.first_line, found.first_position),
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
    """Count words in Python, ``BLOCK_WORDS`` tokens at a time: memory grows with the
    vocabulary, not the corpus.

    Matches gensim's ``scan_vocab``, including its ``max_vocab_size`` pruning: whenever more
    than ``max_vocab_size`` distinct words are held, words seen fewer than ``min_reduce`` times
    so far are forgotten (their counts restart from zero if they come back) and ``min_reduce``
    grows by one.
    """
    index: dict[str, int] = {}
    tally = _Tally()
    ids, offsets = array("i"), array("q", [0])
    min_reduce, number = 1, -1
    for number, sentence in enumerate(sentences):
        check_sentence(sentence, number)
        if number % progress_per == 0:
            logger.info(
                "PROGRESS: at sentence #%i, processed %i words, keeping %i word types",
                number,
                tally.raw_words + len(ids),
                len(index),
            )
        setdefault = index.setdefault
        try:
            ids.extend([setdefault(word, len(index)) for word in sentence])
        except TypeError:  # not iterable, or an unhashable token
            raise token_error(sentence, number) from None
        offsets.append(len(ids))
        prune = bool(max_vocab_size) and len(index) > max_vocab_size
        if prune or len(ids) >= BLOCK_WORDS:
            tally.add(index, ids, offsets, number + 1)
            ids, offsets = array("i"), array("q", [0])
        if prune:
            index = tally.prune(index, min_reduce, trim_rule)
            min_reduce += 1
    tally.add(index, ids, offsets, number + 1)
    scanned = ScannedCorpus(
        list(index), tally.counts, number + 1, tally.raw_words, (tally.sentence, tally.position)
    )
    _log_collected(scanned)
    return scanned


class _Tally:
    """:func:`scan`'s counts and first occurrences, ``(W,)`` int64 arrays indexed by word id,
    added up a block of raw ids at a time."""

    def __init__(self) -> None:
        self.counts, self.sentence, self.position = (np.zeros(0, np.int64) for _ in range(3))
        self.raw_words = 0

    def add(self, index: dict[str, int], ids: array, offsets: array, end: int) -> None:
        """Add the sentences ``end - len(offsets) + 1 .. end - 1``, encoded as ``ids`` and
        ``offsets`` against ``index``; words new to the tally must be ``str``."""
        raw, bounds = np.frombuffer(ids, dtype=np.int32), np.frombuffer(offsets, dtype=np.int64)
        known, first_sentence = self.counts.size, end - (bounds.size - 1)
        at = np.flatnonzero(raw >= known)  # (n,) where words new to the tally occur
        new, first = np.unique(raw[at], return_index=True)
        at = at[first]  # (len(index) - known,) the first occurrence of each new word
        sentence = np.searchsorted(bounds, at, side="right") - 1
        position = at - bounds[sentence]
        new_words = list(itertools.islice(reversed(index), len(index) - known))[::-1]
        for word, number, token in zip(new_words, sentence, position):
            if not isinstance(word, str):
                raise not_a_string(first_sentence + int(number), int(token), word)
        grown = np.zeros(len(index) - known, np.int64)
        self.counts = np.concatenate((self.counts, grown)) + np.bincount(raw, minlength=len(index))
        self.sentence = np.concatenate((self.sentence, sentence + first_sentence))
        self.position = np.concatenate((self.position, position))
        self.raw_words += raw.size

    def prune(self, index: dict[str, int], min_reduce: int, trim_rule: Callable | None) -> dict:
        """Forget rare words as gensim's ``prune_vocab`` does; the survivors keep their order
        and get the ids ``0, 1, ...``."""
        keep = np.array(
            [
                keep_vocab_item(word, count, min_reduce, trim_rule)
                for word, count in zip(index, self.counts.tolist())
            ],
            dtype=bool,
        )
        self.counts, self.sentence, self.position = (
            a[keep] for a in (self.counts, self.sentence, self.position)
        )
        return {word: i for i, word in enumerate(itertools.compress(index, keep))}


def encode(
    sentences: Iterable[list[str]],
    key_to_index: Mapping[str, int],
    workers: int = 1,
    chunk_words: int = 2**18,
) -> StreamedCorpus:
    """A corpus as word ids against an existing vocabulary, unknown words dropped, streamed
    (:class:`StreamedCorpus`, first planned for chunks of ``chunk_words`` tokens).

    A plain local :class:`CorpusFile` (or :class:`Stripes` of one) is read by the compiled
    reader on ``workers`` threads when the ids of ``key_to_index`` are ``0, 1, ...`` in its
    order (as ``wv.key_to_index``); anything else is encoded in Python.

    Raises
    ------
    ValueError
        A line of the file is not UTF-8 (the error the Python reader raises).
    TypeError
        A sentence is not a list of ``str`` tokens.
    """
    spans = _compiled_spans(sentences)
    if spans is not None and _dense(key_to_index):
        index = corpus_compiled.WordIndex(key_to_index)
        blocks = FileBlocks(_file_of(sentences).path, index, spans, workers)
        return StreamedCorpus(blocks, chunk_words)
    return StreamedCorpus(SentenceBlocks(sentences, key_to_index), chunk_words)


def _dense(key_to_index: Mapping[str, int]) -> bool:
    """Whether the ids of ``key_to_index`` are ``0, 1, ...`` in iteration order."""
    ids = np.fromiter(key_to_index.values(), dtype=np.int64, count=len(key_to_index))
    return bool(np.array_equal(ids, np.arange(len(ids))))
