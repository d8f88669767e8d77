"""The vocabulary: the single owner of word statistics, with gensim 4.x semantics.

From raw counts (made by :func:`torchw2v.corpus.scan`) it decides which words are kept
(``min_count``, ``max_final_vocab``, ``trim_rule``), their order (descending count), the
subsampling thresholds and the negative-sampling table. Every array here is indexed by the
final word id; the rest of the package never sees a string after this point.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from gensim.utils import keep_vocab_item

logger = logging.getLogger(__name__)

CUM_TABLE_DOMAIN = 2**31 - 1
NULL_WORD = "\0"
"""The pseudo-word gensim adds with ``null_word=1``."""


class EmptyVocabularyError(ValueError, RuntimeError):
    """No word to train on: a ``ValueError`` as torchw2v raised, a ``RuntimeError`` as gensim."""


@dataclass
class Vocabulary:
    """Words kept for training and their statistics.

    Attributes
    ----------
    words : list of str
        Kept words, index = word id.
    counts : numpy.ndarray
        ``(V,)`` int64 corpus counts.
    sample_int : numpy.ndarray
        ``(V,)`` uint32 subsampling thresholds: keep an occurrence when a random uint32 is below.
    cum_table : numpy.ndarray
        ``(V,)`` uint32 cumulative unigram^ns_exponent table for drawing negatives.
    effective_min_count : int
        The ``min_count`` actually applied, raised by ``max_final_vocab`` when needed.
    report : dict of str to int
        What gensim's ``prepare_vocab`` reports about the corpus it was made from
        (:func:`prepare_report`); empty for a vocabulary not made from raw counts.
    """

    words: list[str]
    counts: np.ndarray
    sample_int: np.ndarray
    cum_table: np.ndarray
    effective_min_count: int
    report: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.words)


def build_vocabulary(
    raw_words: list[str],
    raw_counts: np.ndarray,
    *,
    min_count: int,
    sample: float,
    ns_exponent: float,
    max_final_vocab: int | None = None,
    trim_rule: Callable | None = None,
    sorted_vocab: bool = True,
    null_word: bool = False,
) -> Vocabulary:
    """Turn raw counts into the training vocabulary, as gensim's ``prepare_vocab`` does.

    Parameters
    ----------
    raw_words : list of str
        Every distinct word, in order of first occurrence.
    raw_counts : numpy.ndarray
        ``(len(raw_words),)`` counts.
    min_count, sample, ns_exponent, max_final_vocab, trim_rule, sorted_vocab, null_word
        As in :class:`torchw2v.Word2Vec`.

    Returns
    -------
    Vocabulary
    """
    raw_counts = np.asarray(raw_counts, dtype=np.int64)
    min_count = effective_min_count(raw_counts, min_count, max_final_vocab)
    kept = kept_word_indices(raw_words, raw_counts, min_count, trim_rule)
    words, counts = [raw_words[i] for i in kept.tolist()], raw_counts[kept]
    sample_int = subsample_thresholds(counts, sample)
    report = prepare_report(len(raw_words), counts, sample)
    if null_word and words and NULL_WORD not in words:  # gensim's pseudo-word: count 1
        words, counts = [*words, NULL_WORD], np.append(counts, 1)
        sample_int = np.append(sample_int, np.uint32(0))
    if sorted_vocab:  # by descending count, ties in reverse (gensim's reversed argsort)
        order = np.lexsort((-np.arange(len(words)), -counts))
        words, counts, sample_int = (
            [words[i] for i in order.tolist()],
            counts[order],
            sample_int[order],
        )
    vocab = Vocabulary(
        words=words,
        counts=counts,
        sample_int=sample_int,
        cum_table=negative_cum_table(counts, ns_exponent),
        effective_min_count=min_count,
        report=report,
    )
    logger.info(
        "effective_min_count=%i retains %i unique words (%.2f%% of original %i) "
        "and %i of %i word occurrences",
        min_count,
        len(kept),
        100 * len(kept) / max(len(raw_words), 1),
        len(raw_words),
        counts.sum(),
        raw_counts.sum(),
    )
    return vocab


def effective_min_count(counts: np.ndarray, min_count: int, max_final_vocab: int | None) -> int:
    """Raise ``min_count`` so that at most ``max_final_vocab`` words survive (gensim's rule)."""
    if max_final_vocab is None or max_final_vocab >= len(counts):
        return min_count
    descending = np.sort(counts)[::-1]
    return max(int(descending[max_final_vocab]) + 1, min_count)


def kept_word_indices(
    words: list[str], counts: np.ndarray, min_count: int, trim_rule: Callable | None
) -> np.ndarray:
    """Indices of the words that pass ``min_count`` or the user's ``trim_rule``."""
    if trim_rule is None:
        return np.flatnonzero(counts >= min_count)
    keep = [keep_vocab_item(w, int(c), min_count, trim_rule) for w, c in zip(words, counts)]
    return np.flatnonzero(np.asarray(keep, dtype=bool))


def subsample_thresholds(counts: np.ndarray, sample: float) -> np.ndarray:
    """gensim's ``sample_int``: a word is kept with probability ``sample_int / 2**32``."""
    return (keep_probabilities(counts, sample) * (2**32 - 1)).astype(np.uint32)


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """The float64 probability that subsampling keeps an occurrence of each word.

    With ``t = sample * total``, the keep probability is ``(sqrt(c / t) + 1) * t / c``,
    capped at 1; ``sample >= 1`` means "downsample words seen more than ``sample`` times".
    """
    counts = counts.astype(np.float64)
    total = counts.sum()
    if not sample:
        threshold = total
    elif sample < 1.0:
        threshold = sample * total
    else:
        threshold = int(sample * (3 + np.sqrt(5)) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        prob = (np.sqrt(counts / threshold) + 1) * (threshold / counts)
    return np.where(prob < 1.0, prob, 1.0)


def prepare_report(raw_words: int, kept_counts: np.ndarray, sample: float) -> dict[str, int]:
    """gensim's ``prepare_vocab`` report on a corpus of ``raw_words`` distinct words.

    ``kept_counts`` are the counts in that corpus of the words that passed ``min_count`` (or
    ``trim_rule``); ``downsample_*`` say how many of them subsampling thins out and how many
    occurrences it is expected to leave.
    """
    keep = keep_probabilities(kept_counts, sample)
    return {
        "drop_unique": raw_words - len(kept_counts),
        "retain_total": int(kept_counts.sum()),
        "downsample_unique": int((keep < 1.0).sum()),
        "downsample_total": int((keep * kept_counts).sum()),
        "num_retained_words": len(kept_counts),
    }


def negative_cum_table(
    counts: np.ndarray, ns_exponent: float, domain: int = CUM_TABLE_DOMAIN
) -> np.ndarray:
    """gensim's ``cum_table``: cumulative ``count**ns_exponent`` scaled to ``domain``.

    A negative is the insertion point (``searchsorted``, side left) of a random integer in
    ``[0, cum_table[-1])``, so word ``i`` is drawn with probability proportional to
    ``count_i**ns_exponent``.
    """
    if len(counts) == 0:
        return np.zeros(0, dtype=np.uint32)
    with np.errstate(over="ignore"):
        weights = counts.astype(np.float64) ** float(ns_exponent)
    if not np.isfinite(weights.sum()):  # a huge exponent: the same shares, from logarithms
        logs = float(ns_exponent) * np.log(counts.astype(np.float64))
        weights = np.exp(logs - logs.max())
    cumulative = np.cumsum(weights)
    return np.round(cumulative / cumulative[-1] * domain).astype(np.uint32)


def extend_vocabulary(
    old: Vocabulary,
    raw_words: list[str],
    raw_counts: np.ndarray,
    *,
    min_count: int,
    sample: float,
    ns_exponent: float,
    max_final_vocab: int | None = None,
    trim_rule: Callable | None = None,
) -> Vocabulary:
    """Add a new corpus's words to ``old``, as gensim's ``build_vocab(update=True)`` does.

    The new corpus's words that pass ``min_count`` (raised for ``max_final_vocab`` by the new
    corpus's counts alone, as gensim does) or ``trim_rule`` are kept: new ones are appended in
    order of first occurrence, and every known word's count grows by its count in the new
    corpus. Like gensim, the subsampling thresholds of the kept words are recomputed from the
    new corpus's counts alone; the others keep theirs.
    """
    raw_counts = np.asarray(raw_counts, dtype=np.int64)
    min_count = effective_min_count(raw_counts, min_count, max_final_vocab)
    index = {word: i for i, word in enumerate(old.words)}
    remap = np.array([index.get(word, -1) for word in raw_words], dtype=np.int32)
    kept = kept_word_indices(raw_words, raw_counts, min_count, trim_rule)
    new = kept[remap[kept] < 0]
    remap[new] = np.arange(len(old), len(old) + len(new), dtype=np.int32)

    counts = np.concatenate([old.counts, np.zeros(len(new), dtype=np.int64)])
    known = remap >= 0
    counts[remap[known]] += raw_counts[known]
    sample_int = np.concatenate([old.sample_int, np.zeros(len(new), dtype=np.uint32)])
    sample_int[remap[kept]] = subsample_thresholds(raw_counts[kept], sample)
    logger.info(
        "added %i new unique words and increased the count of %i pre-existing words",
        len(new),
        len(kept) - len(new),
    )
    vocab = Vocabulary(
        words=old.words + [raw_words[i] for i in new.tolist()],
        counts=counts,
        sample_int=sample_int,
        cum_table=negative_cum_table(counts, ns_exponent),
        effective_min_count=min_count,
        report=prepare_report(len(raw_words), raw_counts[kept], sample),
    )
    return vocab


def huffman_paths(codes: list[np.ndarray], points: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Pack per-word Huffman codes and points (as gensim stores them) into padded arrays.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray)
        ``points`` ``(V, L)`` int64, ``codes`` ``(V, L)`` uint8 (both zero-padded to the
        deepest word's ``L``) and ``lengths`` ``(V,)`` int64.
    """
    lengths = np.array([len(c) for c in codes], dtype=np.int64)
    depth = int(lengths.max(initial=0))
    padded_points = np.zeros((len(codes), depth), dtype=np.int64)
    padded_codes = np.zeros((len(codes), depth), dtype=np.uint8)
    mask = np.arange(depth) < lengths[:, None]
    if depth:
        padded_points[mask] = np.concatenate(points)
        padded_codes[mask] = np.concatenate(codes)
    return padded_points, padded_codes, lengths
