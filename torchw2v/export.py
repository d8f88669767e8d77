"""Word2vec-format vectors, written and read with numpy: gensim's bytes, several times faster.

:func:`save_word2vec_format` writes exactly the bytes of gensim's
``KeyedVectors.save_word2vec_format`` (text and binary), which word2vec.c's tools read;
:func:`load_word2vec_format` reads text and binary files (telling them apart itself) into a
gensim ``KeyedVectors``, as gensim's loader does. Both go through smart-open, so ``.gz`` and
``.bz2`` paths are compressed and decompressed on the fly; writes are atomic.

Where gensim handles one value at a time in Python, these work on large blocks: binary
vectors are copied as raw float32 bytes, text numbers are parsed in one ``numpy`` call per
block, and text values are formatted by a vectorised shortest round-trip algorithm that gives
the digits of numpy's ``str(numpy.float32)``, which gensim writes. The rare values that
algorithm cannot settle in float64 take their digits from numpy's own formatter, and rows
with NaN or infinities, or vectors of another dtype than float32, are formatted by ``str``
itself, so the text is always gensim's.

A damaged file (empty, a bad header, truncated, a row of the wrong length, a value that is no
number, a word that is not valid in its encoding, a broken ``.gz``) stops the reader with a
``ValueError`` that names the file, the line or record and the fix.

Examples
--------
>>> from gensim.test.utils import get_tmpfile
>>> from torchw2v import Word2Vec, load_word2vec_format, save_word2vec_format
>>> model = Word2Vec([["hello", "world", "world"]], vector_size=4, min_count=1, device="cpu")
>>> path = get_tmpfile("vectors.bin")
>>> save_word2vec_format(model.wv, path, binary=True)
>>> load_word2vec_format(path).index_to_key
['world', 'hello']
"""

from __future__ import annotations

import errno
import logging
import os
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
from gensim.models import KeyedVectors
from smart_open import open as smart_open

from . import float_text
from .persistence import atomic_open

logger = logging.getLogger(__name__)

BLOCK_BYTES = 1 << 24  # read this much at a time
HEADER_BYTES = 1024  # a longer first line is no word2vec header
ROW_VALUES = 1 << 14  # values formatted per block when writing text (cache-sized)
FLOAT32 = np.dtype("<f4")  # word2vec.c's binary vectors, little-endian as on every host it runs on

Decoder = Callable[[list[bytes], Callable[[int], str]], list[str]]  # words, their place


def save_word2vec_format(
    wv: KeyedVectors,
    path: str | Path,
    binary: bool = False,
    *,
    total_vec: int | None = None,
    write_header: bool = True,
    prefix: str = "",
    sort_attr: str = "count",
) -> None:
    """Write ``wv`` in word2vec's format: the bytes gensim's ``save_word2vec_format`` writes.

    Parameters
    ----------
    wv : :class:`gensim.models.KeyedVectors`
        The vectors, e.g. ``model.wv``.
    path : str or pathlib.Path
        The file to write; ``.gz``, ``.bz2`` or a remote URI go through smart-open. A local
        file is written to a temporary file and renamed into place when complete.
    binary : bool, optional
        word2vec's binary format (``word<space><float32 values>`` per vector) if True, else
        text (``word v1 v2 ...`` per line, each value as ``str(numpy.float32)`` prints it).
    total_vec : int, optional
        The number of vectors the header states (default: ``len(wv)``).
    write_header : bool, optional
        False leaves out the ``<words> <dimensions>`` header line (GloVe's layout).
    prefix : str, optional
        A string written before every word.
    sort_attr : str, optional
        Vectors go in descending order of this attribute (``count``: most frequent first),
        in the order of ``wv.index_to_key`` when ``wv`` has no such attribute.

    Raises
    ------
    ValueError
        ``wv.vectors`` does not have one row of ``wv.vector_size`` values per key.
    FileNotFoundError
        The folder of a local ``path`` does not exist.

    Notes
    -----
    gensim writes the integer keys ``0, 1, ...`` that start ``index_to_key`` (Doc2Vec's plain
    tags) twice, against its own header; they are written once here.
    """
    if (len(wv.index_to_key), wv.vector_size) != wv.vectors.shape:
        raise ValueError(
            f"cannot save {wv}: its vectors are {wv.vectors.shape}, not "
            f"({len(wv.index_to_key)}, {wv.vector_size}) as its keys and vector_size say"
        )
    order = _write_order(wv, sort_attr)
    total = len(wv.index_to_key) if total_vec is None else total_vec
    logger.info("storing %sx%s projection weights into %s", total, wv.vector_size, path)
    keys = [f"{prefix}{wv.index_to_key[index]}".encode() for index in order.tolist()]
    records = _binary_records if binary else _text_records
    with atomic_open(path) as out:
        if write_header:
            out.write(f"{total} {wv.vector_size}\n".encode())
        for chunk in records(keys, wv.vectors, order):
            out.write(chunk)


def load_word2vec_format(
    path: str | Path,
    binary: bool | None = None,
    *,
    encoding: str = "utf8",
    unicode_errors: str = "strict",
    limit: int | None = None,
    datatype: type[np.floating] = np.float32,
) -> KeyedVectors:
    """Read word2vec-format vectors, text or binary, as gensim's ``load_word2vec_format`` does.

    Parameters
    ----------
    path : str or pathlib.Path
        The file; ``.gz``, ``.bz2`` or a remote URI go through smart-open.
    binary : bool, optional
        True for word2vec's binary format, False for text; None (default) tells them apart by
        the first vector: a line of a word and numbers is text.
    encoding : str, optional
        The encoding of the words.
    unicode_errors : str, optional
        What to do with words that are not valid in ``encoding`` (word2vec.c may cut a word
        in the middle of a character): ``'strict'`` (an error), ``'replace'`` or ``'ignore'``,
        as for :meth:`bytes.decode`.
    limit : int, optional
        Read at most this many vectors, the first ones (None or 0: all).
    datatype : numpy floating type, optional
        The type of the vectors (float32 by default).

    Returns
    -------
    :class:`gensim.models.KeyedVectors`
        The vectors, in file order, with made-up descending ``count`` attributes as gensim
        gives them. Of a word that occurs more than once, the first vector is kept.

    Raises
    ------
    FileNotFoundError
        No such local file.
    IsADirectoryError
        ``path`` is a folder.
    ValueError
        The file is empty, its header is not ``<words> <dimensions>``, it ends before the
        vectors its header announces, a line has the wrong number of values or a value that
        is no number, a word is not valid in ``encoding`` (with ``unicode_errors='strict'``),
        or a compressed file is damaged. The message names the line or record and the fix.
        Also for a negative ``limit``.
    """
    path = str(path)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be a number of vectors, 0 or more, not {limit}")
    if "://" not in path and os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "a folder, not a vectors file (pass a file)", path)
    if "://" not in path and not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, "no such vectors file (check the path)", path)
    logger.info("loading projection weights from %s", path)
    decode = _decoder(path, encoding, unicode_errors)
    with smart_open(path, "rb") as stream:
        count, size, body = _read_header(stream, path, encoding)
        count = min(count, limit) if limit else count
        if binary is None:
            body = _with_first_line(stream, path, body, size)
        detected = not _looks_like_text(body, size) if binary is None else binary
        if detected:
            words, vectors = _read_binary(stream, path, body, count, size, datatype, decode)
        else:
            hint = binary is False
            words, vectors = _read_text(stream, path, body, count, hint, size, datatype, decode)
    return _keyed_vectors(words, vectors, count, path, detected, encoding)


# ------------------------------------------------------------------------------ writing


def _write_order(wv: KeyedVectors, sort_attr: str) -> np.ndarray:
    """Row indices in gensim's writing order: by descending ``sort_attr``, ties as they come."""
    if sort_attr not in wv.expandos:
        logger.warning(
            "attribute %s not present in %s; will store in internal index_to_key order",
            sort_attr,
            wv,
        )
        return np.arange(len(wv.index_to_key))
    indices = np.fromiter(wv.key_to_index.values(), dtype=np.int64, count=len(wv.key_to_index))
    return indices[np.argsort(-wv.expandos[sort_attr][indices], kind="stable")]


def _binary_records(keys: list[bytes], vectors: np.ndarray, order: np.ndarray) -> Iterator[bytes]:
    """``key<space><float32 bytes>`` per vector, joined into large blocks."""
    width = vectors.shape[1] * FLOAT32.itemsize
    rows = max(1, BLOCK_BYTES // max(width, 1))
    for start in range(0, len(order), rows):
        block = memoryview(vectors[order[start : start + rows]].astype(FLOAT32).tobytes())
        parts = []
        for row, key in enumerate(keys[start : start + rows]):
            parts += (key, b" ", block[row * width : (row + 1) * width])
        yield b"".join(parts)


def _text_records(keys: list[bytes], vectors: np.ndarray, order: np.ndarray) -> Iterator[bytes]:
    """``key v1 v2 ...\\n`` per vector, each value as ``str`` prints it, in large blocks."""
    limit = float_text.positional_limit()
    vectorised = vectors.dtype == np.float32 and vectors.shape[1] > 0 and limit is not None
    rows = max(1, ROW_VALUES // max(vectors.shape[1], 1))
    for start in range(0, len(order), rows):
        block = vectors[order[start : start + rows]]
        lines = float_text.format_rows(block, limit) if vectorised else [None] * len(block)
        parts = []
        for key, values, line in zip(keys[start : start + rows], block, lines):
            parts += (key, float_text.format_row(values) if line is None else line, b"\n")
        yield b"".join(parts)


# ------------------------------------------------------------------------------ reading


def _read_block(stream: IO[bytes], path: str) -> bytes:
    """The next block of the file; b"" at its end."""
    try:
        return stream.read(BLOCK_BYTES)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(
            f"{path}: cannot read it ({type(err).__name__}: {err}); a compressed file may be "
            "damaged or cut short: write it again"
        ) from None


def _read_header(stream: IO[bytes], path: str, encoding: str) -> tuple[int, int, bytes]:
    """The header's vector count and dimensions, and the bytes read after it."""
    data = _read_block(stream, path)
    if not data:
        raise ValueError(
            f"{path} is empty; a word2vec file starts with a header line "
            "'<number of words> <dimensions>': write the vectors again"
        )
    end = data.find(b"\n", 0, HEADER_BYTES)
    if end < 0 and len(data) >= HEADER_BYTES:
        end = HEADER_BYTES  # no header line: reported below
    line = data[:end] if end >= 0 else data
    try:
        count, size = (int(field) for field in line.decode(encoding).split())
        if count < 0 or size < 1:
            raise ValueError
    except ValueError:  # also UnicodeDecodeError, and fields that are not two
        shown = line[:60].decode(encoding, "replace")
        raise ValueError(
            f"{path}: line 1 should be the header '<number of words> <dimensions>' (two whole "
            f"numbers, dimensions at least 1), found {shown!r}; is it a word2vec file? "
            "(gensim's load_word2vec_format(..., no_header=True) reads text without a header)"
        ) from None
    return count, size, data[end + 1 :] if end >= 0 else b""


def _with_first_line(stream: IO[bytes], path: str, body: bytes, size: int) -> bytes:
    """``body`` and more of the file, up to the end of its first line if a text line could be
    that long."""
    longest = 64 * (size + 1) + HEADER_BYTES  # "word v1 v2 ...", generously
    while b"\n" not in body and len(body) < longest:
        block = _read_block(stream, path)
        if not block:
            break
        body += block
    return body


def _looks_like_text(body: bytes, size: int) -> bool:
    """Whether the first vector is a text line: a word and ``size`` numbers."""
    end = body.find(b"\n")
    fields = (body[:end] if end >= 0 else body).split()
    if len(fields) != size + 1:
        return False
    try:
        np.array(fields[1:], dtype=np.float64)
    except ValueError:
        return False
    return True


def _allocate(count: int, size: int, dtype: type[np.floating] | np.dtype, path: str) -> np.ndarray:
    """An uninitialised ``count`` x ``size`` array; a clear error if the header asks too much."""
    try:
        return np.empty((count, size), dtype=dtype)
    except (MemoryError, ValueError):
        gigabytes = count * size * np.dtype(dtype).itemsize / 1e9
        raise ValueError(
            f"{path}: the header announces {count} vectors of {size} dimensions "
            f"({gigabytes:.3g} GB), more than fits in memory; check the header, or pass "
            "limit= to read fewer vectors"
        ) from None


def _truncated(path: str, found: int, count: int, where: str) -> ValueError:
    """The error for a file that ends before the vectors its header announces."""
    keep = f", or pass limit={found} to read the {found} complete ones" if found else ""
    return ValueError(
        f"{path}: the file ends {where}, after {found} of the {count} vectors its header "
        f"announces; it is truncated (or its header is wrong): write it again{keep}"
    )


def _decoder(path: str, encoding: str, unicode_errors: str) -> Decoder:
    """Decodes a block's words; an error names the first bad word and its place in the file."""

    def decode(words: list[bytes], place: Callable[[int], str]) -> list[str]:
        try:
            return [word.decode(encoding, unicode_errors) for word in words]
        except UnicodeDecodeError:
            index, err = next(_decode_errors(words, encoding, unicode_errors))
        raise ValueError(
            f"{path}: {place(index)}: the word {words[index]!r} is not valid {encoding} "
            f"({err.reason}); pass unicode_errors='replace' (or 'ignore') to read it anyway "
            "(word2vec.c may cut a word in the middle of a character)"
        )

    return decode


def _decode_errors(
    words: list[bytes], encoding: str, unicode_errors: str
) -> Iterator[tuple[int, UnicodeDecodeError]]:
    """The words that do not decode, with their index and error."""
    for index, word in enumerate(words):
        try:
            word.decode(encoding, unicode_errors)
        except UnicodeDecodeError as err:
            yield index, err


def _read_binary(
    stream: IO[bytes],
    path: str,
    data: bytes,
    count: int,
    size: int,
    datatype: type[np.floating],
    decode: Decoder,
) -> tuple[list[str], np.ndarray]:
    """``count`` records ``word<space><size float32>``, each possibly after a newline."""
    width = size * FLOAT32.itemsize
    vectors = _allocate(count, size, FLOAT32, path)
    out = memoryview(vectors.reshape(-1).view(np.uint8))
    words: list[bytes] = []
    row = start = 0
    view = memoryview(data)
    while row < count:
        space = data.find(b" ", start)
        end = space + 1 + width
        if space < 0 or end > len(data):  # the record goes on in the next block
            block = _read_block(stream, path)
            if not block:
                raise _truncated(path, row, count, f"inside vector {row + 1}")
            data = data[start:] + block
            view, start = memoryview(data), 0
            continue
        words.append(data[start:space])
        out[row * width : (row + 1) * width] = view[space + 1 : end]
        row, start = row + 1, end
    words = [word.lstrip(b"\n") for word in words]  # a newline may end a record
    return decode(words, lambda index: f"vector {index + 1}"), vectors.astype(datatype, copy=False)


def _read_text(
    stream: IO[bytes],
    path: str,
    data: bytes,
    count: int,
    hint: bool,
    size: int,
    datatype: type[np.floating],
    decode: Decoder,
) -> tuple[list[str], np.ndarray]:
    """``count`` lines ``word v1 v2 ... v<size>``, parsed a block of lines at a time."""
    vectors = _allocate(count, size, datatype, path)
    words: list[str] = []
    blocks = _line_blocks(stream, path, data)
    lines = _TextLines(path, size, decode, hint)
    while len(words) < count:
        block = next(blocks, None)
        if block is None:
            raise _truncated(path, len(words), count, f"at line {len(words) + 2}")
        done = len(words)
        found, values = lines.parse(block, count - done, first=done + 2)
        vectors[done : done + len(found)] = values
        words += found
    return words, vectors


def _line_blocks(stream: IO[bytes], path: str, data: bytes) -> Iterator[bytes]:
    """The file from ``data`` on, in blocks of whole lines (the last one given its newline)."""
    pending: list[bytes] = []
    for block in _blocks(stream, path, data):
        end = block.rfind(b"\n") + 1
        if end:
            yield b"".join([*pending, block[:end]])
            pending = []
        pending.append(block[end:])
    rest = b"".join(pending)
    if rest:
        yield rest + b"\n"


def _blocks(stream: IO[bytes], path: str, data: bytes) -> Iterator[bytes]:
    """``data``, then the rest of the file, a block at a time."""
    if data:
        yield data
    while block := _read_block(stream, path):
        yield block


class _TextLines:
    """Parses blocks of text lines ``word v1 v2 ...``: the words, then all numbers at once."""

    def __init__(self, path: str, size: int, decode: Decoder, hint: bool) -> None:
        self.path, self.size, self.decode = path, size, decode
        self.hint = " (if it is a binary word2vec file, pass binary=True)" if hint else ""

    def parse(self, block: bytes, most: int, first: int) -> tuple[list[str], np.ndarray]:
        """The words and vectors of the block's first ``most`` lines, line ``first`` onwards."""
        chars = np.frombuffer(block, dtype=np.uint8)
        ends = np.flatnonzero(chars == ord("\n"))[:most]
        starts = np.concatenate(([0], ends[:-1] + 1))
        spaces = np.append(np.flatnonzero(chars[: ends[-1]] == ord(" ")), ends[-1] + 1)
        word_ends = spaces[np.searchsorted(spaces, starts)]
        for line in np.flatnonzero(word_ends > ends)[:1].tolist():
            found = block[starts[line] : ends[line]][:60].decode("utf8", "replace")
            raise self._error(
                first + line, f"expected a word and {self.size} numbers, found {found!r}"
            )
        spans = zip(starts.tolist(), word_ends.tolist())
        words = self.decode([block[s:e] for s, e in spans], lambda index: f"line {first + index}")
        view = memoryview(block)
        numbers = b"".join([view[w:e] for w, e in zip(word_ends.tolist(), ends.tolist())])
        counts = _field_counts(numbers, np.cumsum(ends - word_ends))
        for line in np.flatnonzero(counts != self.size)[:1].tolist():
            raise self._error(
                first + line,
                f"the word {words[line]!r} has {counts[line]} values, but the header says "
                f"{self.size} dimensions; fix that line or the header",
            )
        values = _parse_numbers(numbers, len(words) * self.size)
        if values is None:
            raise self._bad_number(block, word_ends, ends, first)
        return words, values.reshape(len(words), self.size)

    def _bad_number(
        self, block: bytes, word_ends: np.ndarray, ends: np.ndarray, first: int
    ) -> ValueError:
        """The error for the block's first value that is no number."""
        for line, (start, end) in enumerate(zip(word_ends.tolist(), ends.tolist())):
            for field in block[start:end].split():
                if _parse_numbers(field, 1) is None:
                    shown = field[:60].decode("utf8", "replace")
                    return self._error(first + line, f"{shown!r} is not a number")
        return self._error(
            first, f"numpy cannot read the numbers of lines {first} to {first + len(ends) - 1}"
        )

    def _error(self, line: int, problem: str) -> ValueError:
        """An error about one line of the file."""
        return ValueError(f"{self.path}: line {line}: {problem}{self.hint}")


def _field_counts(text: bytes, ends: np.ndarray) -> np.ndarray:
    """How many whitespace-separated fields each piece of ``text`` (up to each end) holds."""
    chars = np.frombuffer(text, dtype=np.uint8)
    gaps = (chars == ord(" ")) | ((chars >= ord("\t")) & (chars <= ord("\r")))
    starts = np.flatnonzero(~gaps[1:] & gaps[:-1]) + 1  # every piece starts with a space
    return np.diff(np.searchsorted(starts, ends), prepend=0)


def _parse_numbers(text: bytes, expected: int) -> np.ndarray | None:
    """The ``expected`` whitespace-separated numbers in ``text`` as float64; None if not."""
    with warnings.catch_warnings():  # numpy < 2.3 warns where newer ones raise
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            values = np.fromstring(text, sep=" ")
        except ValueError:
            return None
    return values if len(values) == expected else None


def _keyed_vectors(
    words: list[str], vectors: np.ndarray, count: int, path: str, binary: bool, encoding: str
) -> KeyedVectors:
    """A ``KeyedVectors`` as gensim's loader builds it; of repeated words, the first kept."""
    key_to_index = dict(zip(words, range(len(words))))
    if len(key_to_index) < len(words):
        words, vectors = _first_occurrences(words, vectors)
        key_to_index = dict(zip(words, range(len(words))))
    kv = KeyedVectors(vectors.shape[1], dtype=vectors.dtype)
    kv.index_to_key, kv.key_to_index, kv.vectors = words, key_to_index, vectors
    kv.next_index = len(words)
    kv.allocate_vecattrs(["count"], [int])
    kv.expandos["count"][:] = count - np.arange(len(words))  # gensim's made-up counts
    kv.add_lifecycle_event(
        "load_word2vec_format",
        msg=f"loaded {vectors.shape} matrix of type {vectors.dtype} from {path}",
        binary=binary,
        encoding=encoding,
    )
    return kv


def _first_occurrences(words: list[str], vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The words without repeats, each with its first vector; a warning per repeat."""
    first: dict[str, int] = {}
    for index, word in enumerate(words):
        if word in first:
            logger.warning("duplicate word '%s' in word2vec file, ignoring all but first", word)
        else:
            first[word] = index
    keep = list(first.values())
    return list(first), np.ascontiguousarray(vectors[keep])
