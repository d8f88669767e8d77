"""The compiled reader of plain local corpus files: word counts and word ids by byte ranges.

Three ops from ``engines/csrc/corpus_cpu.cpp``, built on first use and cached like the
training op (see :mod:`torchw2v.engines.compiled`), read a LineSentence file on ``workers``
threads, each taking byte ranges of the file in turn: ``count_words`` counts the distinct
words with their first occurrences, ``encode_words`` turns the tokens into vocabulary ids.
Lines, sentences and tokens are exactly :class:`torchw2v.corpus.CorpusFile`'s (strict UTF-8,
split on the whitespace of ``str.split()``, lines cut into sentences of at most
:data:`torchw2v.corpus.MAX_SENTENCE_TOKENS` tokens, lines without tokens skipped); memory
grows with the vocabulary and, when encoding, with the 4 bytes of each kept token, never with
the text itself.

The ops run in a helper thread with the GIL released; meanwhile the calling thread shows a
tqdm bar over bytes on an interactive terminal, or else logs gensim-style progress lines.
This module knows nothing of corpora: :mod:`torchw2v.corpus` decides when to use it.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from .engines import compiled

logger = logging.getLogger(__name__)

SOURCE = Path(compiled.__file__).resolve().parent / "csrc" / "corpus_cpu.cpp"
EXTENSION_NAME = "torchw2v_corpus"
MIN_RANGE_BYTES = 1 << 20
"""A file is cut into at most one range per this many bytes: below it a thread costs more
than it saves."""

T = TypeVar("T")


def _registered() -> Callable | None:
    """``count_words`` if the reader's library is already loaded in this process."""
    try:
        return torch.ops.torchw2v.count_words
    except (AttributeError, RuntimeError):
        return None


_lock = threading.Lock()


@functools.cache
def _load() -> str:
    """Build/load the reader's ops once per process: ``""`` on success, else the reason."""
    with _lock:
        if os.environ.get(compiled.DISABLE_ENV, "").strip() not in ("", "0"):
            return f"disabled by the environment variable {compiled.DISABLE_ENV}"
        if _registered() is not None:
            return ""
        try:
            compiled._compile(EXTENSION_NAME, SOURCE, _registered)
        except Exception as err:  # the compiler's or the loader's reason, whatever it is
            return f"{type(err).__name__}: {err}".strip()
        return ""


@functools.cache
def is_available() -> bool:
    """Whether the compiled reader builds and loads here (the first call may build it).

    Never raises; a failure is logged once at WARNING (the full reason at DEBUG), and
    ``corpus_file`` is then read in Python.
    """
    reason = _load()
    if reason:
        logger.warning(
            "torchw2v: compiled corpus reader unavailable (%s); reading corpus_file in Python",
            compiled.summarize_reason(reason),
        )
        logger.debug("torchw2v: compiled corpus reader build failure:\n%s", reason)
    return not reason


def split_range(start: int, end: int, workers: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into ``workers`` equal byte ranges (fewer for a small range)."""
    pieces = max(1, min(workers, (end - start) // MIN_RANGE_BYTES))
    return [
        (start + (end - start) * i // pieces, start + (end - start) * (i + 1) // pieces)
        for i in range(pieces)
    ]


@dataclass
class FileCounts:
    """What :func:`count_words` found in the byte ranges of a file.

    Attributes
    ----------
    words : list of str
        Distinct words in order of first occurrence.
    counts : numpy.ndarray
        ``(W,)`` int64 occurrences.
    first_line, first_position : numpy.ndarray
        ``(W,)`` int64: the byte offset of the line where each word first occurs, and its
        token index in that line.
    sentences, tokens : int
        Sentences and tokens read.
    bad_line : int
        Byte offset of the first line that is not UTF-8, or -1; when set, the rest is
        meaningless.
    """

    words: list[str]
    counts: np.ndarray
    first_line: np.ndarray
    first_position: np.ndarray
    sentences: int
    tokens: int
    bad_line: int


def count_words(
    path: str,
    ranges: list[tuple[int, int]],
    workers: int,
    progress_per: int = 10000,
) -> FileCounts:
    """Count the words of the lines starting in ``ranges`` (in file order) of a local file.

    Parameters
    ----------
    path : str
        A plain (uncompressed) local file.
    ranges : list of (int, int)
        Byte ranges ``[start, end)`` in file order; a line belongs to the range holding its
        first byte.
    workers : int
        Threads.
    progress_per : int
        Without a terminal, log progress every this many sentences (at most once a second).

    Raises
    ------
    RuntimeError
        The reader is unavailable, or the file cannot be opened or is not a regular file.
    """
    starts, ends = _bounds(ranges)
    words, counts, first_line, first_position, totals = _run_reporting(
        lambda control: torch.ops.torchw2v.count_words(path, starts, ends, workers, control),
        workers,
        sum(end - start for start, end in ranges),
        "collecting words",
        progress_per,
    )
    sentences, tokens, bad_line = totals.tolist()
    return FileCounts(
        _decode_words(words),
        counts.numpy(),
        first_line.numpy(),
        first_position.numpy(),
        sentences,
        tokens,
        bad_line,
    )


class WordIndex:
    """A vocabulary (words with ids ``0..V-1`` in order) as the reader's hash table.

    Build it once per vocabulary and encode any number of ranges with it. Words that no
    token of a file can equal (non-strings, words with a newline) keep their id and are
    never found.
    """

    def __init__(self, words: Iterable[object]):
        words = list(words)
        try:
            text = "".join(word + "\n" for word in words)
        except TypeError:
            text = ""
        if text.count("\n") != len(words):
            text = "".join(_findable(word) + "\n" for word in words)
        data = bytearray(text.encode("utf-8", "surrogatepass"))
        self.words = torch.from_numpy(np.frombuffer(data, dtype=np.uint8))
        self.index = torch.ops.torchw2v.word_index(self.words)


def encode_words(
    path: str,
    ranges: list[tuple[int, int]],
    index: WordIndex,
    workers: int,
    report: bool = True,
    resume: tuple[int, int] | None = None,
    stop_at: int | None = None,
) -> tuple[np.ndarray, np.ndarray, int, int, int, tuple[int, int] | None]:
    """The tokens of the lines starting in ``ranges`` of a local file as vocabulary ids.

    With ``report=False`` (a block of a longer read) no progress is shown or logged. A line
    that goes on past byte ``stop_at`` is cut at its first sentence end at or past it; the
    next call, with ``resume`` = that cut and its first range starting at the cut, reads on
    from there (so a line of any length is read a block at a time).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, int, int, int, (int, int) or None)
        ``(N,)`` int32 ids of the tokens in ``index`` (the others dropped), ``(S + 1,)``
        int64 sentence offsets into them from 0, then sentences, tokens read, the byte
        offset of the first line that is not UTF-8 or -1 (as :class:`FileCounts`), and the
        cut: the byte where a line was cut and that line's first byte, or None.
    """
    starts, ends = _bounds(ranges)
    resume_line = -1
    if resume is not None:
        assert starts and starts[0] == resume[0], "the first range starts at the cut"
        resume_line = resume[1]

    def run(control: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.ops.torchw2v.encode_words(
            path,
            starts,
            ends,
            index.words,
            index.index,
            workers,
            control,
            resume_line,
            -1 if stop_at is None else stop_at,
        )

    if report:
        total_bytes = sum(end - start for start, end in ranges)
        ids, offsets, totals = _run_reporting(run, workers, total_bytes, "reading corpus", None)
    else:
        ids, offsets, totals = run(_control(workers))
    sentences, tokens, bad_line, cut_at, cut_line = totals.tolist()
    cut = (cut_at, cut_line) if cut_at >= 0 else None
    return ids.numpy(), offsets.numpy(), sentences, tokens, bad_line, cut


def _bounds(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    return [int(start) for start, _ in ranges], [int(end) for _, end in ranges]


def _control(workers: int) -> torch.Tensor:
    """The tensor through which the ops publish progress and are asked to stop."""
    return torch.zeros(1 + 3 * workers, dtype=torch.int64)


def _decode_words(data: torch.Tensor) -> list[str]:
    """Words the op returned as UTF-8, each followed by a newline."""
    return data.numpy().tobytes().decode("utf-8").split("\n")[:-1]


def _findable(word: object) -> str:
    """``word`` if a token could equal it, else ``""`` (no token is empty)."""
    return word if isinstance(word, str) and "\n" not in word else ""


def _run_reporting(
    run: Callable[[torch.Tensor], T],
    workers: int,
    total_bytes: int,
    desc: str,
    progress_per: int | None,
) -> T:
    """``run(control)`` in a helper thread, reporting the progress the op publishes.

    An interrupt (Ctrl-C) asks the op's threads to stop, waits for them, and is re-raised.
    """
    control = _control(workers)
    outcome: list = []

    def target() -> None:
        try:
            outcome.append((True, run(control)))
        except BaseException as err:  # handed to the calling thread
            outcome.append((False, err))

    interactive = sys.stderr.isatty()
    thread = threading.Thread(target=target, name=f"torchw2v {desc}", daemon=True)
    with tqdm(
        total=total_bytes, unit="B", unit_scale=True, desc=desc, disable=not interactive
    ) as bar:
        thread.start()
        try:
            _report(thread, control, bar, total_bytes, interactive, progress_per)
        except BaseException:
            control[0] = 1
            thread.join()
            raise
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _report(
    thread: threading.Thread,
    control: torch.Tensor,
    bar: tqdm,
    total_bytes: int,
    interactive: bool,
    progress_per: int | None,
) -> None:
    """Until ``thread`` ends: move ``bar``, or log a line every ``progress_per`` sentences."""
    shown, next_log = 0, progress_per
    while thread.is_alive():
        thread.join(0.1 if interactive else 1.0)
        done, sentences, tokens = control[1:].view(-1, 3).sum(0).tolist()
        if interactive:
            bar.update(done - shown)
            shown = done
        elif progress_per and sentences >= next_log and thread.is_alive():
            logger.info(
                "PROGRESS: at sentence #%i, processed %i words, %.0f%% of the bytes",
                sentences,
                tokens,
                100 * done / max(total_bytes, 1),
            )
            next_log = (sentences // progress_per + 1) * progress_per
