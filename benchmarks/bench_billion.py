"""Train on a billion tokens: scan time, words/s and peak memory of torchw2v beside gensim's.

The corpus is ``--corpus`` (default: the shared ``wiki17m.txt.gz``) decompressed and repeated
until it holds at least ``--tokens`` tokens, written once into ``--folder`` and reused by later
runs (about 6 GB for a billion tokens). torchw2v builds the vocabulary from the whole file and
trains one epoch of SG-NS, d100 (gensim's other defaults, ``--workers`` threads). gensim's
``corpus_file`` mode trains about six times slower, so it runs the same job on the text once (a
slice of the big file: its first copy); torchw2v runs that too, so the ratio compares like with
like. Each run is a child process of its own, so its peak resident memory is its own. The
vectors are scored on gensim's analogies (30,000 most frequent words) and WS353.

Prints a markdown block for ``benchmarks/RESULTS.md`` (appended with ``--record``).

Example
-------
``python benchmarks/bench_billion.py --workers 2 --record``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_scan import plain_text, repeated  # noqa: E402
from common import machine, publish  # noqa: E402

WIKI17M = Path("/work/shared/corpora/wiki17m.txt.gz")


def main() -> None:
    """Parse the command line; run the parent (or, with ``--child``, one run)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=WIKI17M, help="plain or .gz text file")
    parser.add_argument("--tokens", type=float, default=1e9, help="tokens at least (1e9)")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/torchw2v-billion"))
    parser.add_argument("--workers", type=int, default=2, help="threads (2)")
    parser.add_argument("--record", action="store_true", help="append to RESULTS.md")
    parser.add_argument("--child", nargs=2, metavar=("LIBRARY", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.child[0], Path(args.child[1]), args.workers)))
        return
    load_before = os.getloadavg()[0]
    args.folder.mkdir(parents=True, exist_ok=True)
    once = plain_text(args.corpus, args.folder)
    copies = math.ceil(args.tokens / count_tokens(once))
    big = args.folder / f"{once.stem}_x{copies}{once.suffix}"
    if not big.exists() or big.stat().st_size != copies * once.stat().st_size:
        big = repeated(once, copies, args.folder)
    child("torchw2v", warm_up_slice(once, args.folder), args.workers)  # builds the extensions
    runs = {
        "torchw2v, whole file": child("torchw2v", big, args.workers),
        "torchw2v, first copy": child("torchw2v", once, args.workers),
        "gensim, first copy": child("gensim", once, args.workers),
    }
    publish(report(args, copies, runs, load_before), args.record)


def warm_up_slice(plain: Path, folder: Path) -> Path:
    """The first 2,000 lines of ``plain``, for a first run that is not timed."""
    path = folder / "warm-up.txt"
    with open(plain, "rb") as text, open(path, "wb") as out:
        out.writelines(line for _, line in zip(range(2000), text))
    return path


def count_tokens(path: Path) -> int:
    """Whitespace-separated tokens of a text file."""
    with open(path, "rb") as text:
        return sum(len(line.split()) for line in text)


def child(library: str, path: Path, workers: int) -> dict:
    """One run in a fresh Python process."""
    command = [sys.executable, __file__, "--workers", str(workers), "--child", library, str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{library} on {path} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.splitlines()[-1])
    print(f"{library} {path.name}: {result}", file=sys.stderr, flush=True)
    return result


def run(library: str, path: Path, workers: int) -> dict:
    """build_vocab and one epoch in this process: seconds, words/s, peak MiB and scores."""
    settings = {"vector_size": 100, "sg": 1, "negative": 5, "workers": workers, "seed": 1}
    if library == "gensim":
        from gensim.models import Word2Vec

        model = Word2Vec(**settings)
    else:
        from torchw2v import Word2Vec

        model = Word2Vec(**settings, device="cpu")
    start = time.perf_counter()
    model.build_vocab(corpus_file=str(path))
    scan = time.perf_counter() - start
    start = time.perf_counter()
    model.train(corpus_file=str(path), total_words=model.corpus_total_words, epochs=1)
    train = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from torchw2v.evaluation import evaluate

    scores = evaluate(model.wv, pairs=[_wordsim()], restrict_vocab=30000)
    return {
        "tokens": model.corpus_total_words,
        "vocabulary": len(model.wv),
        "scan_s": scan,
        "train_s": train,
        "peak_mib": peak_mib,
        "analogy": scores["analogies"]["overall"],
        "ws353": next(iter(scores["pairs"].values()))["spearman"],
    }


def _wordsim() -> str:
    from gensim.test.utils import datapath

    return datapath("wordsim353.tsv")


def report(args: argparse.Namespace, copies: int, runs: dict, load_before: float) -> str:
    """The markdown block: heading, command, machine and the table."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    command = shlex.join(["python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    big = runs["torchw2v, whole file"]
    lines = [
        f"### {when} UTC: {big['tokens']:,} tokens ({args.corpus.name} x{copies}), "
        "SG-NS d100, 1 epoch",
        "",
        f"`{command}`",
        "",
        f"- machine: {machine('torch', 'gensim')}; load average before {load_before:.1f}, after "
        f"{os.getloadavg()[0]:.1f}",
        f"- settings: sg=1 negative=5 window=5 vector_size=100 min_count=5 sample=0.001 "
        f"workers={args.workers} seed=1, corpus_file; gensim runs on the first copy only "
        f"({runs['gensim, first copy']['tokens']:,} tokens), as does the second torchw2v run",
        "",
        "| run | tokens | vocabulary | scan s | train s | train words/s | peak RSS MiB "
        "| analogy | WS353 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in runs.items():
        lines.append(
            f"| {name} | {r['tokens']:,} | {r['vocabulary']:,} | {r['scan_s']:.1f} "
            f"| {r['train_s']:.1f} | {r['tokens'] / r['train_s']:,.0f} | {r['peak_mib']:,.0f} "
            f"| {r['analogy']:.3f} | {r['ws353']:.3f} |"
        )
    ours, theirs = runs["torchw2v, first copy"], runs["gensim, first copy"]
    lines += [
        "",
        f"On the first copy torchw2v scans {theirs['scan_s'] / ours['scan_s']:.1f}x and trains "
        f"{theirs['train_s'] / ours['train_s']:.1f}x as fast as gensim; on the whole file its "
        f"peak RSS is {big['peak_mib'] / ours['peak_mib']:.2f}x that of the first copy "
        f"({big['tokens'] / ours['tokens']:.0f}x the tokens).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
