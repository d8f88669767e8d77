"""Benchmark torchw2v against gensim: same corpus, same settings, same run, same machine.

The corpus slice is written decompressed to a temporary file once; each library builds its
vocabulary from it and trains on it (gensim in its fast ``corpus_file`` mode) in a child process
of its own, so that peak RSS is per library. Vocabulary building and training are timed apart.
Before timing, torchw2v trains a tiny warm-up model from a file (``torchw2v.compare.warm_up``)
so that one-time costs (building the compiled training op and corpus reader on a fresh install)
are not counted. Both are scored by ``torchw2v.evaluation.headline_scores``.

Examples
--------
``python benchmarks/bench_vs_gensim.py --tokens 4000000 --epochs 3 --engine torch --engine auto``
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import re
import resource
import shlex
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

from common import RESULTS, machine, publish, write_slice

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = (ROOT / "../shared/corpora/wiki17m.txt.gz").resolve()


@dataclass
class Run:
    """What one library's child process measured."""

    label: str
    vocab_size: int
    corpus_words: int
    vocab_s: float
    train_s: float
    peak_rss_mib: float
    analogy: float
    ws353: float
    simlex: float

    def words_per_s(self, epochs: int) -> float:
        """Raw corpus words trained per second of training."""
        return self.corpus_words * epochs / self.train_s


class EngineName(logging.Handler):
    """Keeps the engine class named by torchw2v's "training model ... engine" log line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.engine = "?"

    def emit(self, record: logging.LogRecord) -> None:
        match = re.search(r"with the (\w+) engine", record.getMessage())
        if match:
            self.engine = match.group(1)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line flags; see ``--help``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="LineSentence .gz")
    parser.add_argument("--tokens", type=int, default=0, help="first N tokens (whole lines); 0=all")
    parser.add_argument(
        "--skip-tokens",
        type=int,
        default=0,
        help="skip the first N tokens (whole lines) first, e.g. to train on held-out text",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sg", type=int, default=1, choices=(0, 1), help="1 skip-gram, 0 CBOW")
    parser.add_argument("--hs", type=int, default=0, choices=(0, 1), help="hierarchical softmax")
    parser.add_argument("--vector-size", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--sample", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--engine",
        action="append",
        choices=("auto", "torch", "compiled"),
        help="torchw2v engine; repeat to compare several against one gensim run (default: auto)",
    )
    parser.add_argument("--device", default="cpu", help="torchw2v's device")
    parser.add_argument(
        "--gensim-run",
        action="append",
        metavar="INPUT:WORKERS",
        help="a gensim run to train, INPUT 'file' (corpus_file) or 'iterable' (LineSentence); "
        "repeat for several; the first is the speed baseline (default: file:--workers)",
    )
    parser.add_argument("--record", action="store_true", help=f"append the results to {RESULTS}")
    return parser.parse_args(argv)


def train_and_score(
    library: str, settings: dict[str, Any], corpus_file: str, iterable: bool = False
) -> Run:
    """Child process: train one library on ``corpus_file`` and measure it.

    Parameters
    ----------
    library : {"gensim", "torchw2v"}
        Which ``Word2Vec`` to train.
    settings : dict
        Constructor arguments (for torchw2v including ``engine`` and ``device``).
    corpus_file : str
        The decompressed corpus.
    iterable : bool
        Read it as a ``LineSentence`` iterable instead of in ``corpus_file`` mode.
    """
    from gensim.models.word2vec import LineSentence

    # the gensim child imports nothing of torchw2v (nor torch) before its peak RSS is read
    if library == "gensim":
        from gensim.models import Word2Vec
    else:
        from torchw2v import Word2Vec
        from torchw2v.compare import warm_up

        warm_up(settings)
    model = Word2Vec(**settings)
    corpus = {"corpus_iterable": LineSentence(corpus_file)} if iterable else {}
    corpus = corpus or {"corpus_file": corpus_file}
    engine = EngineName()
    logging.getLogger("torchw2v.trainer").addHandler(engine)
    logging.getLogger("torchw2v.trainer").setLevel(logging.INFO)

    started = time.perf_counter()
    model.build_vocab(**corpus)
    built = time.perf_counter()
    model.train(
        **corpus,
        total_examples=model.corpus_count,
        total_words=model.corpus_total_words,
        epochs=settings["epochs"],
    )
    trained = time.perf_counter()
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    if library == "gensim":
        mode = "iterable" if iterable else "corpus_file"
        label = f"gensim {version('gensim')} ({mode}, workers={settings['workers']})"
    else:
        label = f"torchw2v engine={settings['engine']} ({engine.engine})"
    from torchw2v.evaluation import headline_scores

    scores = headline_scores(model.wv)
    return Run(
        label,
        len(model.wv),
        model.corpus_total_words,
        built - started,
        trained - built,
        peak_rss_mib,
        scores["analogy"],
        scores["ws353"],
        scores["simlex999"],
    )


def in_child(
    library: str, settings: dict[str, Any], corpus_file: str, iterable: bool = False
) -> Run:
    """Run :func:`train_and_score` in a fresh spawned process."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(train_and_score, library, settings, corpus_file, iterable).result()


def gensim_runs(specs: list[str] | None, workers: int) -> list[tuple[bool, int]]:
    """``(iterable, workers)`` of each ``--gensim-run INPUT:WORKERS``."""
    runs = []
    for spec in specs or [f"file:{workers}"]:
        mode, _, count = spec.partition(":")
        if mode not in ("file", "iterable") or not count.isdigit() or int(count) < 1:
            raise SystemExit(f"--gensim-run {spec!r}: expected file:N or iterable:N")
        runs.append((mode == "iterable", int(count)))
    return runs


def report(
    args: argparse.Namespace, slice_: tuple[int, int], settings: dict[str, Any], runs: list[Run]
) -> str:
    """The markdown block for one benchmark run."""
    lines, tokens = slice_
    epochs = settings["epochs"]
    baseline = runs[0].words_per_s(epochs)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    shown = " ".join(f"{k}={v}" for k, v in settings.items())
    held_out = f" after its first {args.skip_tokens:,} tokens" if args.skip_tokens else ""
    out = [
        f"### {when}: {args.corpus.name}{held_out}, {tokens:,} tokens ({lines:,} lines), "
        f"{epochs} epochs",
        "",
        f"`python {shlex.join(sys.argv)}`",
        "",
        f"- machine: {machine('torch', 'gensim')}",
        f"- settings: {shown}; vocabulary {runs[0].vocab_size:,} words; "
        f"torchw2v device={args.device}",
        "",
        "| library (engine used) | vocab s | train s | train words/s | speed vs gensim "
        "| peak RSS MiB | analogy | WS353 | SimLex-999 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        speed = run.words_per_s(epochs)
        out.append(
            f"| {run.label} | {run.vocab_s:.1f} | {run.train_s:.1f} | {speed:,.0f} "
            f"| {speed / baseline:.2f}x | {run.peak_rss_mib:,.0f} | {run.analogy:.3f} "
            f"| {run.ws353:.3f} | {run.simlex:.3f} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    settings = dict(
        sg=args.sg,
        hs=args.hs,
        vector_size=args.vector_size,
        window=args.window,
        negative=args.negative,
        min_count=args.min_count,
        sample=args.sample,
        workers=args.workers,
        epochs=args.epochs,
        seed=1,
    )
    with tempfile.TemporaryDirectory() as tmp:
        corpus_file = Path(tmp) / "corpus.txt"
        slice_ = write_slice(args.corpus.resolve(), args.skip_tokens, args.tokens, corpus_file)
        print(f"corpus: {slice_[1]:,} tokens, {slice_[0]:,} lines", file=sys.stderr)
        runs = []
        for iterable, workers in gensim_runs(args.gensim_run, args.workers):
            theirs = {**settings, "workers": workers}
            runs.append(in_child("gensim", theirs, str(corpus_file), iterable))
            print(f"{runs[-1].label}: {runs[-1].train_s:.1f}s", file=sys.stderr)
        for engine in args.engine or ["auto"]:
            ours = {**settings, "engine": engine, "device": args.device}
            runs.append(in_child("torchw2v", ours, str(corpus_file)))
            print(f"{runs[-1].label}: {runs[-1].train_s:.1f}s", file=sys.stderr)
    block = report(args, slice_, settings, runs)
    publish(block, args.record)


if __name__ == "__main__":
    main(sys.argv[1:])
