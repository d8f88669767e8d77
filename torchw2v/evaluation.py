"""Scores of word vectors on analogy and word-similarity tests, through gensim's own functions.

The defaults are the test files that ship with gensim: ``questions-words.txt`` (Mikolov et
al.'s analogies; sections whose names start with ``gram`` are syntactic, the others semantic),
``wordsim353.tsv`` and ``simlex999.txt`` (word pairs with human similarity judgements).

Examples
--------
>>> from gensim.test.utils import common_texts
>>> from torchw2v import Word2Vec
>>> from torchw2v.evaluation import evaluate
>>> model = Word2Vec(common_texts, vector_size=16, min_count=1, sg=1, device="cpu")
>>> scores = evaluate(model.wv, pairs=[])
>>> sorted(scores["analogies"])
['answered', 'file', 'overall', 'questions', 'sections', 'semantic', 'syntactic']
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gensim import utils
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

ANALOGIES = "questions-words.txt"
PAIRS = ("wordsim353.tsv", "simlex999.txt")
RESTRICT_VOCAB = 30000
TOTAL = "Total accuracy"  # the section gensim appends with every question


def evaluate(
    wv: KeyedVectors,
    analogies: str | Path | None = None,
    pairs: Sequence[str | Path] | None = None,
    restrict_vocab: int = RESTRICT_VOCAB,
) -> dict[str, Any]:
    """Analogy accuracy and word-pair Spearman correlations of ``wv``.

    Parameters
    ----------
    wv : gensim.models.KeyedVectors
        The vectors, e.g. ``model.wv``.
    analogies : str or pathlib.Path, optional
        An analogy file in ``questions-words.txt`` format (``: section`` headers, then
        ``a b c d`` lines). Default: gensim's bundled ``questions-words.txt``.
    pairs : sequence of str or pathlib.Path, optional
        Word-pair files in ``wordsim353.tsv`` format (``word1<TAB>word2<TAB>score`` lines,
        ``#`` comments). Default: gensim's bundled ``wordsim353.tsv`` and ``simlex999.txt``;
        ``[]`` for none.
    restrict_vocab : int
        Analogies only use the ``restrict_vocab`` most frequent words, as gensim does.

    Returns
    -------
    dict
        ``"analogies"``: ``file``, accuracies ``overall``, ``semantic``, ``syntactic`` (0.0
        where no question could be answered, as gensim), ``sections`` (section name to
        accuracy), ``questions`` (in the file) and ``answered`` (all four words known).
        ``"pairs"``: file name to ``file``, ``spearman``, ``pearson``, ``pairs`` (in the file)
        and ``oov_percent`` (pairs with an unknown word); correlations are NaN when no pair
        is known.

    Raises
    ------
    ValueError
        A file is not in the expected format; the message names it.
    FileNotFoundError
        A file does not exist.
    """
    analogies, pairs = _resolve(analogies, pairs)
    return {
        "analogies": analogy_scores(wv, analogies, restrict_vocab),
        "pairs": {Path(path).name: pair_scores(wv, path) for path in pairs},
    }


def headline_scores(wv: KeyedVectors) -> dict[str, float]:
    """The scores comparisons print, on gensim's bundled test files (see :func:`evaluate`).

    Returns
    -------
    dict
        ``analogy`` (overall accuracy, 30,000 most frequent words), ``analogy_semantic``,
        ``analogy_syntactic``, and the Spearman correlations ``ws353`` and ``simlex999``.
    """
    scores = evaluate(wv)
    analogies, pairs = scores["analogies"], scores["pairs"]
    return {
        "analogy": analogies["overall"],
        "analogy_semantic": analogies["semantic"],
        "analogy_syntactic": analogies["syntactic"],
        "ws353": pairs["wordsim353.tsv"]["spearman"],
        "simlex999": pairs["simlex999.txt"]["spearman"],
    }


def check_files(
    analogies: str | Path | None = None, pairs: Sequence[str | Path] | None = None
) -> None:
    """Raise now what :func:`evaluate` would raise for these files (before loading vectors):
    ``ValueError`` for a file not in the expected format, ``FileNotFoundError`` for a file
    that does not exist."""
    analogies, pairs = _resolve(analogies, pairs)
    _count_analogies(analogies)
    for path in pairs:
        _count_pairs(path)


def _resolve(
    analogies: str | Path | None, pairs: Sequence[str | Path] | None
) -> tuple[str, list[str]]:
    """The analogy file and word-pair files to use: those given, or gensim's."""
    analogies = str(analogies or datapath(ANALOGIES))
    return analogies, [str(p) for p in (pairs if pairs is not None else map(datapath, PAIRS))]


def analogy_scores(wv: KeyedVectors, path: str, restrict_vocab: int) -> dict[str, Any]:
    """Accuracy on one analogy file: overall, semantic, syntactic and per section."""
    questions = _count_analogies(path)
    _, sections = wv.evaluate_word_analogies(path, restrict_vocab=restrict_vocab)
    sections = [s for s in sections if s["section"] != TOTAL]
    syntactic = [s for s in sections if is_syntactic(s["section"])]
    semantic = [s for s in sections if not is_syntactic(s["section"])]
    return {
        "file": path,
        "overall": _accuracy(sections),
        "semantic": _accuracy(semantic),
        "syntactic": _accuracy(syntactic),
        "sections": {s["section"]: _accuracy([s]) for s in sections},
        "questions": questions,
        "answered": sum(len(s["correct"]) + len(s["incorrect"]) for s in sections),
    }


def pair_scores(wv: KeyedVectors, path: str) -> dict[str, Any]:
    """Spearman and Pearson correlations with the human judgements of one word-pair file."""
    scores = {"file": path, "spearman": math.nan, "pearson": math.nan, "pairs": _count_pairs(path)}
    try:
        pearson, spearman, oov_percent = wv.evaluate_word_pairs(path)
    except ValueError:  # the format was checked, so: no pair has both words in ``wv``
        return {**scores, "oov_percent": 100.0}
    return {
        **scores,
        "spearman": float(spearman.statistic),
        "pearson": float(pearson.statistic),
        "oov_percent": float(oov_percent),
    }


def is_syntactic(section: str) -> bool:
    """Whether an analogy section is syntactic (``gram1-adjective-to-adverb``, ...)."""
    return section.startswith("gram")


def format_scores(scores: dict[str, Any]) -> str:
    """:func:`evaluate`'s result as text: accuracies per group and section, correlations."""
    analogies = scores["analogies"]
    lines = [
        f"analogies: {analogies['file']} ({analogies['answered']:,} of "
        f"{analogies['questions']:,} questions have all four words in the vocabulary)",
        f"  {'overall':<36}{analogies['overall']:.3f}",
    ]
    for group in ("semantic", "syntactic"):
        lines.append(f"  {group:<36}{analogies[group]:.3f}")
        lines += [
            f"    {name:<34}{accuracy:.3f}"
            for name, accuracy in analogies["sections"].items()
            if is_syntactic(name) == (group == "syntactic")
        ]
    if scores["pairs"]:
        lines.append("word pairs (Spearman correlation with human judgements):")
    for name, pair in scores["pairs"].items():
        lines.append(
            f"  {name:<36}{pair['spearman']:.3f}  ({pair['oov_percent']:.1f}% of "
            f"{pair['pairs']:,} pairs have a word outside the vocabulary)"
        )
    return "\n".join(lines)


def _accuracy(sections: list[dict[str, Any]]) -> float:
    """Correct over answered questions of ``sections``; 0.0 when none was answered."""
    correct = sum(len(s["correct"]) for s in sections)
    answered = correct + sum(len(s["incorrect"]) for s in sections)
    return correct / answered if answered else 0.0


def _lines(path: str) -> list[str]:
    """The lines of ``path`` decoded as UTF-8, as gensim reads them."""
    try:
        with utils.open(path, "rb") as lines:
            return [line.decode("utf-8") for line in lines]
    except UnicodeDecodeError:
        raise ValueError(f"evaluation file {path} is not UTF-8 text") from None


def _count_analogies(path: str) -> int:
    """Questions in an analogy file, checking its format first.

    Lines of another shape after the first header are skipped, as gensim does.
    """
    lines = _lines(path)
    if not lines or not lines[0].startswith(": "):
        raise ValueError(
            f"evaluation file {path} is not an analogy file: it must start with a "
            "': section' header, as questions-words.txt does"
        )
    questions = sum(len(line.split()) == 4 for line in lines if not line.startswith(": "))
    if not questions:
        raise ValueError(
            f"evaluation file {path} is not an analogy file: it has no 'a b c d' question "
            "lines, as questions-words.txt has"
        )
    return questions


def _count_pairs(path: str) -> int:
    """Scored pairs in a word-pair file, checking its format first.

    Comment lines (``#``) and lines of another shape are skipped, as gensim does.
    """
    pairs = sum(_is_pair(line) for line in _lines(path) if not line.startswith("#"))
    if not pairs:
        raise ValueError(
            f"evaluation file {path} is not a word-pair file: it has no "
            "'word1<TAB>word2<TAB>score' lines, as wordsim353.tsv has"
        )
    return pairs


def _is_pair(line: str) -> bool:
    """Whether ``line`` is a ``word1<TAB>word2<TAB>score`` judgement gensim would use."""
    fields = line.split("\t")
    if len(fields) != 3:
        return False
    try:
        float(fields[2])
    except ValueError:
        return False
    return True


def to_json(data: Any) -> str:
    """``data`` as indented JSON text; NaN (an undefined score) becomes null."""
    return json.dumps(_nan_to_none(data), indent=2)


def _nan_to_none(data: Any) -> Any:
    if isinstance(data, float) and math.isnan(data):
        return None
    if isinstance(data, dict):
        return {key: _nan_to_none(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_nan_to_none(value) for value in data]
    return data
