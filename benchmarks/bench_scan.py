"""Time ``build_vocab(corpus_file=...)`` of gensim and torchw2v on one plain text file, same run.

Every measurement runs in a child process of its own, so that its peak resident memory
(``ru_maxrss``) is its own; the children alternate (gensim, torchw2v with the compiled
reader, torchw2v with the Python reader it falls back to) for ``--repeats`` rounds and the
best time of each is kept. Settings: SG, d100, ``--workers`` threads, gensim's other defaults.
A ``.gz`` corpus is decompressed to a temporary folder first (not timed). The children also
report a digest of the vocabulary (words in order and their counts), which must be the same.

``--train`` adds the issue's memory measurement: ``build_vocab`` and one training epoch of
torchw2v on the corpus and on the corpus repeated ``--times`` times, with either reader; the
growth of the peak resident memory divided by the growth in tokens is the memory per token.

Prints a markdown block (the command, the machine and its load, the tables) for
``benchmarks/RESULTS.md`` (appended with ``--record``); progress goes to stderr.

Examples
--------
``python benchmarks/bench_scan.py --corpus /work/shared/corpora/wiki17m.txt.gz --workers 2``
``python benchmarks/bench_scan.py --corpus wiki1m.txt.gz --train --times 4 --repeats 1``
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import machine, publish  # noqa: E402

READERS = ("gensim", "torchw2v", "torchw2v-python")


def main() -> None:
    """Parse the command line; run the parent (or, with ``--child``, one measurement)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="plain or .gz text file")
    parser.add_argument("--workers", type=int, default=2, help="threads (2)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, best time kept (3)")
    parser.add_argument("--train", action="store_true", help="also measure memory per token")
    parser.add_argument("--times", type=int, default=4, help="repetitions of the text (4)")
    parser.add_argument("--record", action="store_true", help="append to RESULTS.md")
    parser.add_argument("--loaded", action="store_true", help="say other jobs shared the machine")
    parser.add_argument(
        "--child", nargs=3, metavar=("READER", "PATH", "TRAIN"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        reader, path, train = args.child
        print(json.dumps(measure(reader, Path(path), args.workers, int(train))))
        return
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as folder:
        plain = plain_text(args.corpus, Path(folder))
        scans = {reader: [] for reader in READERS}
        for round_ in range(args.repeats):
            order = READERS if round_ % 2 == 0 else READERS[::-1]
            for reader in order:
                scans[reader].append(child(reader, plain, args.workers, train=0))
        memory = memory_runs(plain, Path(folder), args) if args.train else []
    publish(report(args, scans, memory, load_before), args.record)


def plain_text(corpus: Path, folder: Path) -> Path:
    """``corpus`` itself, or decompressed into ``folder`` if it is a ``.gz``."""
    if corpus.suffix != ".gz":
        return corpus
    plain = folder / corpus.with_suffix("").name
    with gzip.open(corpus, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 22)
    return plain


def repeated(plain: Path, times: int, folder: Path) -> Path:
    """A file holding the text of ``plain`` ``times`` times over."""
    path = folder / f"{plain.stem}_x{times}{plain.suffix}"
    with open(path, "wb") as dst:
        for _ in range(times):
            with open(plain, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 22)
    return path


def memory_runs(plain: Path, folder: Path, args: argparse.Namespace) -> list[dict]:
    """torchw2v's build_vocab and one epoch, both readers, on the text once and repeated."""
    bigger = repeated(plain, args.times, folder)
    runs = []
    for reader in READERS[1:]:
        for times, path in ((1, plain), (args.times, bigger)):
            runs.append({**child(reader, path, args.workers, train=times), "times": times})
    return runs


def child(reader: str, path: Path, workers: int, train: int) -> dict:
    """One measurement in a fresh Python process (``train``: see :func:`measure`)."""
    command = [sys.executable, __file__, "--corpus", str(path), "--workers", str(workers)]
    command += ["--child", reader, str(path), str(int(train))]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{reader} on {path} failed:\n{done.stderr[-3000:]}")
    result = {**json.loads(done.stdout.splitlines()[-1]), "reader": reader}
    print(f"{reader} {path.name} train={train}: {result}", file=sys.stderr, flush=True)
    return result


def measure(reader: str, path: Path, workers: int, train: int) -> dict:
    """build_vocab (and, if ``train``, one epoch) in this process: seconds, peak MiB, digest.

    ``train`` is how many times the file repeats the text (0: no training): ``min_count`` is
    5 times that, so that every repetition keeps the same words as the text once.
    """
    settings = {"vector_size": 100, "sg": 1, "workers": workers, "min_count": 5 * max(train, 1)}
    if reader == "gensim":
        import gensim

        model = gensim.models.Word2Vec(**settings)
    else:
        import torchw2v
        from torchw2v import corpus_compiled

        if reader == "torchw2v-python":
            corpus_compiled.is_available = lambda: False
        else:
            assert corpus_compiled.is_available(), "the compiled reader does not build here"
        model = torchw2v.Word2Vec(**settings, device="cpu")
    start = time.perf_counter()
    model.build_vocab(corpus_file=str(path))
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "tokens": model.corpus_total_words, "digest": digest(model)}
    result["vocabulary"] = len(model.wv)
    if train:
        start = time.perf_counter()
        model.train(corpus_file=str(path), total_examples=model.corpus_count, epochs=1)
        result["train_seconds"] = time.perf_counter() - start
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def digest(model) -> str:
    """A fingerprint of the vocabulary: words in order and their counts."""
    counts = model.wv.expandos["count"].astype("int64").tobytes()
    return hashlib.sha1("\n".join(model.wv.index_to_key).encode() + counts).hexdigest()[:12]


def report(args: argparse.Namespace, scans: dict, memory: list[dict], load_before: float) -> str:
    """The markdown block: heading, command, machine, load and the tables."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    command = shlex.join(["python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    load_after, cores = os.getloadavg()[0], len(os.sched_getaffinity(0))
    loaded = args.loaded or load_before > 0.5 * cores  # after: this benchmark's own threads
    gensim_s = min(r["seconds"] for r in scans["gensim"])
    digests = {r["digest"] for runs in scans.values() for r in runs}
    lines = [
        f"### {when} UTC: build_vocab(corpus_file=) of {args.corpus.name}, {args.workers} workers",
        "",
        f"`{command}`",
        "",
        f"- machine: {machine('torch', 'gensim')}",
        f"- load average {load_before:.1f} before, {load_after:.1f} after"
        + (
            ": **machine under load** (other jobs running), times are not comparable"
            if loaded
            else ""
        ),
        f"- wall-clock seconds of build_vocab alone (SG, d100), best of {args.repeats}, each in a "
        "fresh process; peak RSS of that process",
        "- vocabularies (words, order, counts): "
        + ("identical" if len(digests) == 1 else "DIFFERENT"),
        "",
        "| reader | build_vocab s | speed vs gensim | peak RSS MiB |",
        "|---|---:|---:|---:|",
    ]
    for reader in READERS:
        best = min(scans[reader], key=lambda r: r["seconds"])
        lines.append(
            f"| {reader} | {best['seconds']:.2f} | {gensim_s / best['seconds']:.1f}x | "
            f"{best['peak_mib']:,.0f} |"
        )
    if memory:
        lines += memory_table(memory, args.times)
    return "\n".join(lines) + "\n"


def memory_table(memory: list[dict], times: int) -> list[str]:
    """Peak RSS of build_vocab + one epoch, once and repeated, and the growth per token."""
    lines = [
        "",
        f"build_vocab + 1 epoch of torchw2v on the text once and {times} times over "
        f"(min_count 5 and {5 * times}: the same words):",
        "",
        "| reader | tokens | vocabulary | build_vocab s | train s | peak RSS MiB "
        f"| x{times} / x1 | bytes per extra token |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for reader in READERS[1:]:
        once, more = (r for r in memory if r["reader"] == reader)
        per_token = (
            (more["peak_mib"] - once["peak_mib"]) * 2**20 / (more["tokens"] - once["tokens"])
        )
        ratio = more["peak_mib"] / once["peak_mib"]
        for run in (once, more):
            extra = f"{ratio:.3f} | {per_token:.1f}" if run is more else " | "
            lines.append(
                f"| {reader} | {run['tokens']:,} | {run['vocabulary']:,} | {run['seconds']:.2f} "
                f"| {run['train_seconds']:.2f} | {run['peak_mib']:,.0f} | {extra} |"
            )
    return lines


if __name__ == "__main__":
    main()
