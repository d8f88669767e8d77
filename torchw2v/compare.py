"""Train gensim's ``Word2Vec`` and torchw2v's with identical settings and compare them.

Both libraries read the same plain-text corpus (gensim in its fast ``corpus_file`` mode; a
compressed corpus is decompressed to a temporary file first), with the same settings and
worker threads, once per repeat, each repeat with its own seed. Only ``train`` is timed;
torchw2v trains a tiny untimed model first, so that one-time costs (building the compiled op
on a fresh install) are not counted.

Examples
--------
>>> from torchw2v.compare import compare, format_table
>>> result = compare("data/wiki1m.txt.gz", sg=1, epochs=1, workers=2)  # doctest: +SKIP
>>> print(format_table(result))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gensim
import numpy as np
import torch
from gensim import utils
from gensim.models import KeyedVectors
from gensim.models import Word2Vec as GensimWord2Vec
from gensim.test.utils import common_texts

from .evaluation import headline_scores, to_json
from .word2vec import Word2Vec

logger = logging.getLogger(__name__)

GENSIM, TORCHW2V, BOTH = "gensim", "torchw2v", "torchw2v vs gensim"
TORCHW2V_ONLY = ("device", "engine")  # settings gensim's Word2Vec does not take
SHOWN = (
    "sg", "hs", "negative", "vector_size", "window", "min_count", "sample", "alpha", "epochs",
    "workers",
)  # fmt: skip
COMPRESSED = (".gz", ".bz2")
# (key, label, format) of each library's measurements, then of those comparing the two.
METRICS = (
    ("train_seconds", "training time (s)", "{:.1f}"),
    ("words_per_second", "words/s", "{:,.0f}"),
    ("analogy", "analogy (overall)", "{:.3f}"),
    ("analogy_semantic", "  semantic", "{:.3f}"),
    ("analogy_syntactic", "  syntactic", "{:.3f}"),
    ("ws353", "WS353 (Spearman)", "{:.3f}"),
    ("simlex999", "SimLex-999 (Spearman)", "{:.3f}"),
)
PAIRED_METRICS = (
    ("speed_ratio", "speed ratio (torchw2v / gensim)", "{:.2f}x"),
    ("neighbour_overlap", "top-10 neighbour overlap", "{:.3f}"),
)
QUALITY = METRICS[2:]


@dataclass
class Row:
    """The measurements of one library (or of the pair, ``library=BOTH``) in one repeat."""

    library: str
    repeat: int
    seed: int
    scores: dict[str, float]


@dataclass
class Spread:
    """Mean and sample standard deviation over repeats (0 with one repeat)."""

    mean: float
    spread: float


@dataclass
class ComparisonResult:
    """Everything :func:`compare` measured.

    Attributes
    ----------
    corpus : str
        The corpus as given.
    words : int
        Raw words in the corpus (one epoch).
    vocabulary : int
        Words in the vocabulary.
    settings : dict
        The training settings both libraries used, and torchw2v's ``device`` (and ``engine``
        when given).
    versions : dict
        Versions of gensim, torchw2v and torch.
    machine : str
        CPU, usable cores and operating system.
    rows : list of Row
        Per repeat: one row per library (``METRICS``), one comparing them (``BOTH``:
        ``PAIRED_METRICS``; the speed ratio is torchw2v's words/s over gensim's).
    summary : dict
        Library (or ``BOTH``) to metric to :class:`Spread` over the repeats.
    """

    corpus: str
    words: int
    vocabulary: int
    settings: dict[str, Any]
    versions: dict[str, str]
    machine: str
    rows: list[Row]
    summary: dict[str, dict[str, Spread]] = field(init=False)

    def __post_init__(self) -> None:
        self.summary = summarise(self.rows)

    @property
    def seeds(self) -> list[int]:
        """The seed of each repeat."""
        return sorted({row.seed for row in self.rows})


def compare(corpus: str | Path, *, repeats: int = 1, **settings: Any) -> ComparisonResult:
    """Train both libraries on ``corpus`` with ``settings``; time and score them.

    Parameters
    ----------
    corpus : str or pathlib.Path
        A LineSentence-format file: plain, ``.gz`` or ``.bz2``.
    repeats : int
        Trainings of each library; repeat ``i`` uses seed ``seed + i``.
    **settings
        ``Word2Vec`` arguments (gensim's names and defaults; ``seed`` defaults to 1), plus
        torchw2v's ``device`` and ``engine``, which only torchw2v gets.

    Returns
    -------
    ComparisonResult

    Raises
    ------
    FileNotFoundError
        The corpus does not exist.
    ValueError, NotImplementedError
        torchw2v rejects the settings (checked before anything is trained).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    from . import __version__  # here, not at the top: the package imports this module

    ours = {name: settings.pop(name) for name in TORCHW2V_ONLY if name in settings}
    first_seed = settings.pop("seed", 1)
    rows: list[Row] = []
    with plain_text(corpus) as path:
        warm_up({**settings, **ours})
        for repeat in range(repeats):
            seed = first_seed + repeat
            theirs = train_timed(GensimWord2Vec, {**settings, "seed": seed}, corpus_file=path)
            mine = train_timed(Word2Vec, {**settings, **ours, "seed": seed}, corpus_file=path)
            rows += _rows(repeat, seed, theirs, mine)
    model = theirs.model
    return ComparisonResult(
        corpus=str(corpus),
        words=model.corpus_total_words,
        vocabulary=len(model.wv),
        settings={
            **{name: getattr(model, name) for name in SHOWN},
            **ours,
            "device": str(mine.model.device),
        },
        versions={GENSIM: gensim.__version__, TORCHW2V: __version__, "torch": torch.__version__},
        machine=machine(),
        rows=rows,
    )


def machine() -> str:
    """This machine's CPU model, usable cores and operating system, as one line."""
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            models = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
        cpu = models[0] if models else cpu
    return f"{cpu}, {usable_cores()} usable cores, {platform.system()}"


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def plain_text(corpus: str | Path) -> Iterator[str]:
    """``corpus`` as a local plain-text file: itself, or a decompressed temporary copy."""
    corpus = str(corpus)
    if "://" not in corpus and not Path(corpus).is_file():
        raise FileNotFoundError(f"corpus file not found: {corpus}")
    if "://" not in corpus and Path(corpus).suffix not in COMPRESSED:
        yield corpus
        return
    with tempfile.TemporaryDirectory(prefix="torchw2v-") as folder:
        plain = Path(folder) / "corpus.txt"
        with utils.open(corpus, "rb") as source, plain.open("wb") as target:
            shutil.copyfileobj(source, target)
        yield str(plain)


@dataclass
class Timed:
    """A model trained by :func:`train_timed`, and how long its two steps took."""

    model: Any
    vocab_seconds: float
    train_seconds: float


def train_timed(cls: type, settings: dict[str, Any], **corpus: Any) -> Timed:
    """A model of ``cls`` (either library's ``Word2Vec``) built and trained on ``corpus``
    (``corpus_file=`` or ``corpus_iterable=``), its vocabulary scan and training timed apart."""
    model = cls(**settings)
    started = time.perf_counter()
    model.build_vocab(**corpus)
    built = time.perf_counter()
    model.train(
        **corpus,
        total_examples=model.corpus_count,
        total_words=model.corpus_total_words,
        epochs=model.epochs,
    )
    trained = time.perf_counter()
    logger.info("%s trained in %.1f s", cls.__module__.split(".")[0], trained - built)
    return Timed(model, built - started, trained - built)


def warm_up(settings: dict[str, Any]) -> None:
    """Train a tiny torchw2v model from a file with ``settings``, untimed, so that one-time
    costs (building the compiled training op and corpus reader on a fresh install) are not
    counted in the timings that follow."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as tiny:
        tiny.write("".join(" ".join(words) + "\n" for words in common_texts))
        tiny.flush()
        Word2Vec(corpus_file=tiny.name, **{**settings, "min_count": 1, "epochs": 1})


def _rows(repeat: int, seed: int, theirs: Timed, mine: Timed) -> list[Row]:
    """One repeat's rows: gensim's, torchw2v's and the comparison of the two."""
    gensim_scores = _measure(theirs.model, theirs.train_seconds)
    our_scores = _measure(mine.model, mine.train_seconds)
    paired = {
        "speed_ratio": our_scores["words_per_second"] / gensim_scores["words_per_second"],
        "neighbour_overlap": neighbour_overlap(theirs.model.wv, mine.model.wv),
    }
    return [
        Row(GENSIM, repeat, seed, gensim_scores),
        Row(TORCHW2V, repeat, seed, our_scores),
        Row(BOTH, repeat, seed, paired),
    ]


def _measure(model: Any, seconds: float) -> dict[str, float]:
    """Speed and quality scores of one trained model."""
    return {
        "train_seconds": seconds,
        "words_per_second": model.corpus_total_words * model.epochs / seconds,
        **headline_scores(model.wv),
    }


def neighbour_overlap(
    a: KeyedVectors, b: KeyedVectors, skip: int = 50, words: int = 100, topn: int = 10
) -> float:
    """Mean share of the ``topn`` nearest neighbours that ``a`` and ``b`` agree on.

    Over ``a``'s ``words`` most frequent words after its ``skip`` most frequent (function
    words have unstable neighbours) that ``b`` also knows; NaN when there are none.
    """
    probes = [word for word in a.index_to_key[skip : skip + words] if word in b]
    if not probes:
        return float("nan")
    shared = [len(_nearest(a, word, topn) & _nearest(b, word, topn)) for word in probes]
    return sum(shared) / (topn * len(probes))


def _nearest(wv: KeyedVectors, word: str, topn: int) -> set[str]:
    return {neighbour for neighbour, _ in wv.most_similar(word, topn=topn)}


def summarise(rows: list[Row]) -> dict[str, dict[str, Spread]]:
    """Library to metric to mean and spread over the repeats of ``rows``."""
    summary: dict[str, dict[str, Spread]] = {}
    for library in dict.fromkeys(row.library for row in rows):
        scores = [row.scores for row in rows if row.library == library]
        summary[library] = {name: _spread([s[name] for s in scores]) for name in scores[0]}
    return summary


def _spread(values: list[float]) -> Spread:
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return Spread(float(np.mean(values)), spread)


def format_table(result: ComparisonResult) -> str:
    """The comparison as a text table: one column per library, mean ± spread per cell."""
    settings = " ".join(f"{name}={value}" for name, value in result.settings.items())
    columns = [f"{library} {result.versions[library]}" for library in (GENSIM, TORCHW2V)]
    lines = [
        f"corpus {Path(result.corpus).name}: {result.words:,} words, "
        f"vocabulary {result.vocabulary:,}; "
        f"{len(result.seeds)} repeat(s), seeds {', '.join(map(str, result.seeds))}; "
        "cells: mean ± standard deviation over repeats",
        f"settings: {settings}",
        f"machine: {result.machine}; torch {result.versions['torch']}",
        "",
    ]
    rows = [("", *columns)]
    rows += [
        (label, *(_cell(result, library, key, form) for library in (GENSIM, TORCHW2V)))
        for key, label, form in METRICS
    ]
    rows += [(label, "", _cell(result, BOTH, key, form)) for key, label, form in PAIRED_METRICS]
    width = 2 + max(len(cell) for row in rows for cell in row[1:])
    lines += [f"{label:<34}{left:>{width}}{right:>{width}}" for label, left, right in rows]
    return "\n".join(lines)


def _cell(result: ComparisonResult, library: str, key: str, form: str) -> str:
    """``mean ± spread`` (just the mean with one repeat) of one metric."""
    value = result.summary[library][key]
    if len(result.seeds) == 1:
        return form.format(value.mean)
    return f"{form.format(value.mean)} ± {form.format(value.spread)}"


def write_json(result: ComparisonResult, path: str | Path) -> None:
    """Write ``result`` (rows and summary) as JSON; undefined scores (NaN) become null."""
    Path(path).write_text(to_json(asdict(result)) + "\n", encoding="utf-8")


def figure_class() -> type:
    """matplotlib's ``Figure``, or an ImportError saying how to install it.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "plotting the comparison needs matplotlib: pip install torchw2v[plot]"
        ) from None
    return Figure


def plot(result: ComparisonResult, path: str | Path) -> None:
    """Draw the comparison to an image file (PNG, SVG, PDF: by the suffix of ``path``).

    Left: training speed of each library; right: the quality scores side by side. Error
    bars are the spread over repeats.

    Raises
    ------
    ImportError
        matplotlib is not installed (``pip install torchw2v[plot]``).
    """
    figure = figure_class()(figsize=(11, 4.2), layout="constrained")
    speed, quality = figure.subplots(1, 2, width_ratios=(1, 3))
    x = np.arange(len(QUALITY))
    for i, library in enumerate((GENSIM, TORCHW2V)):
        label = f"{library} {result.versions[library]}"
        summary = result.summary[library]
        rate = summary["words_per_second"]
        bars = speed.bar(i, rate.mean, yerr=rate.spread, capsize=4, color=f"C{i}")
        speed.bar_label(bars, fmt="{:,.0f}", label_type="center", color="white")
        means = [summary[key].mean for key, _, _ in QUALITY]
        spreads = [summary[key].spread for key, _, _ in QUALITY]
        bars = quality.bar(x + (i - 0.5) * 0.4, means, 0.4, yerr=spreads, capsize=3, label=label)
        quality.bar_label(bars, fmt="{:.2f}", fontsize=8)
    speed.set_xticks([0, 1], [GENSIM, TORCHW2V])
    speed.set_ylabel("training words/s")
    speed.yaxis.set_major_formatter("{x:,.0f}")
    quality.set_xticks(x, [label.split(" (")[0].strip() for _, label, _ in QUALITY])
    quality.set_ylabel("score")
    quality.legend()
    both = result.summary[BOTH]
    figure.suptitle(
        f"{Path(result.corpus).name}, {result.words:,} words, epochs={result.settings['epochs']}: "
        f"torchw2v trains {both['speed_ratio'].mean:.2f}x as fast as gensim; "
        f"top-10 neighbour overlap {both['neighbour_overlap'].mean:.2f}"
    )
    figure.supxlabel(
        f"{result.machine}; torch {result.versions['torch']}, torchw2v on "
        f"{result.settings['device']}; {len(result.seeds)} repeat(s), "
        "error bars: ±1 standard deviation",
        fontsize=8,
    )
    figure.savefig(path, dpi=110)


class _CallableModule(types.ModuleType):
    """This module, callable as its :func:`compare`.

    ``import torchw2v`` does not import the comparison harness; ``torchw2v.compare`` imports
    it on first use, and importing a submodule binds the package's attribute of that name to
    the module: so the module itself is ``torchw2v.compare``, and calling it compares.
    """

    def __call__(self, corpus: str | Path, *, repeats: int = 1, **settings: Any):
        return compare(corpus, repeats=repeats, **settings)


sys.modules[__name__].__class__ = _CallableModule
