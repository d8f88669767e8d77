"""Benchmark distributed training: 1, 2, 4 and 8 ranks, synchronisation intervals and modes.

Every run is the ``torchw2v train`` command as a user types it: ``python -m torchw2v train``
for one process, ``torchrun --nproc_per_node R -m torchw2v train`` for R ranks, with
``--threads`` per rank so that all ranks together use ``--total-threads`` threads (at least 1
each, so 4 ranks on 2 threads oversubscribe). The corpus slice is decompressed once, so the
ranks split it into byte ranges. Training and synchronisation seconds come from rank 0's
log; the vectors are scored afterwards (analogies at 30,000 words, WS353, SimLex-999).

A run is ``RANKS[xMACHINES][:MODE[:EVERY_WORDS]]``, e.g. ``1``, ``2``, ``2:delta:32768``,
``4:rows:65536``, ``4x2`` (4 ranks as 2 machines of 2: ``torchrun --nnodes 2``, each node but
the first in a UTS namespace of its own, ``unshare --uts``, so that it has another host name and
its ranks cannot map the first node's memory; needs root); without ``EVERY_WORDS`` the command
runs with the default interval for its ranks (for its machines, with shared weights on each).

Examples
--------
``python benchmarks/bench_distributed.py --tokens 4000000 --epochs 3 --cbow 1 --record``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from common import RESULTS, machine, publish

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = (ROOT / "../shared/corpora/wiki17m.txt.gz").resolve()
DEFAULT_RUNS = ("1", "2", "4", "8")
TRAINED = re.compile(
    r"training on (\d+) raw words \((\d+) effective words\) took [\d.]+s, (\d+) effective words/s"
)
SHARED = "train one copy of the weights in shared memory"
SYNCED = re.compile(
    r"EPOCH \d+: (\d+) synchronisations \(\w+\) took ([\d.]+)s, (\d+)% of rows sent, "
    r"(\d+) bytes reduced"
)


@dataclass
class Run:
    """One ``torchw2v train`` command and what it measured."""

    ranks: int
    mode: str
    every_words: int
    threads: int
    every_given: bool = True
    machines: int = 1
    command_s: float = 0.0
    train_s: float = 0.0
    raw_words: int = 0
    syncs: int = 0
    sync_s: float = 0.0
    rows_percent: float = 0.0
    reduced_bytes: int = 0
    analogy: float = 0.0
    ws353: float = 0.0
    simlex: float = 0.0

    @property
    def senders(self) -> int:
        """The ranks that synchronise (:func:`senders`)."""
        return senders(self.ranks, self.machines, self.mode)

    @property
    def bytes_per_word(self) -> float:
        """Bytes each rank that synchronises sends per word it (or its machine) trains
        (gloo's ring all-reduce)."""
        return 2 * (self.senders - 1) * self.reduced_bytes / max(self.raw_words, 1)

    @property
    def label(self) -> str:
        if self.ranks == 1:
            return "1 process"
        if self.machines > 1 and self.mode == "shared":
            return f"{self.ranks} ranks on {self.machines} machines, shared weights on each"
        if self.mode == "shared":
            return f"{self.ranks} ranks, shared weights"
        return f"{self.ranks} ranks, {self.mode}, every {self.every_words:,} words"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line flags; see ``--help``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="LineSentence .gz")
    parser.add_argument("--tokens", type=int, default=4_000_000, help="first N tokens (lines)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--size", type=int, default=100, help="vector size")
    parser.add_argument("--cbow", type=int, choices=(0, 1), default=0, help="1 for CBOW")
    parser.add_argument("--seed", type=int, default=1, help="the runs' seed")
    parser.add_argument("--total-threads", type=int, default=2, help="threads of all ranks")
    parser.add_argument("--run", action="append", help=f"RANKS[:MODE[:EVERY]] ({DEFAULT_RUNS})")
    parser.add_argument("--record", action="store_true", help=f"append the results to {RESULTS}")
    parser.add_argument("--json", type=Path, help="append each run as a JSON line here")
    return parser.parse_args(argv)


def senders(ranks: int, machines: int, mode: str) -> int:
    """The ranks that synchronise: every rank, or each machine's first with shared weights
    on several machines."""
    return machines if machines > 1 and mode == "shared" else ranks


def parse_run(text: str, total_threads: int) -> Run:
    """``RANKS[:MODE[:EVERY_WORDS]]`` as a :class:`Run` (not measured yet); without
    ``EVERY_WORDS``, the interval ``SyncPolicy`` chooses for ``RANKS``."""
    from torchw2v.synchronizer import SyncPolicy

    ranks, mode, *every = text.split(":") if ":" in text else (text, SyncPolicy.mode)
    ranks, machines = (int(n) for n in ranks.split("x")) if "x" in ranks else (int(ranks), 1)
    if ranks % machines:
        raise ValueError(f"{text}: {ranks} ranks do not fill {machines} machines alike")
    default = SyncPolicy().for_world(senders(ranks, machines, mode)).every_words
    threads = max(1, total_threads // ranks)
    every_words = int(every[0]) if every else default
    return Run(ranks, mode, every_words, threads, bool(every), machines)


def write_slice(source: Path, tokens: int, dest: Path) -> tuple[int, int]:
    """Decompress the first whole lines of ``source`` holding ``tokens`` tokens to ``dest``."""
    lines = written = 0
    with gzip.open(source, "rt", encoding="utf-8") as src, dest.open("w", encoding="utf-8") as dst:
        for line in src:
            if written >= tokens:
                break
            dst.write(line)
            lines += 1
            written += len(line.split())
    return lines, written


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def commands(run: Run, corpus: Path, vectors: Path, args: argparse.Namespace) -> list[list[str]]:
    """The ``torchw2v train`` command line of ``run``, one per machine."""
    launchers = [[sys.executable, "-m", "torchw2v"]]
    if run.ranks > 1:
        port, per_node = str(free_port()), str(run.ranks // run.machines)
        nodes = ("--nnodes", str(run.machines), "--master_addr", "127.0.0.1")
        launchers = [
            [
                *("torchrun", "--nproc_per_node", per_node, "--master_port", port),
                *(nodes + ("--node_rank", str(node)) if run.machines > 1 else ()),
                *("-m", "torchw2v"),
            ]
            for node in range(run.machines)
        ]
        for node, launcher in enumerate(launchers[1:], 1):  # a host name of its own
            rename = f'hostname node{node} && exec "$@"'
            launcher[:0] = ["unshare", "--uts", "sh", "-c", rename, "sh"]
    flags = ["-train", str(corpus), "-output", str(vectors), "-binary", "1"]
    flags += ["-cbow", str(args.cbow), "-seed", str(args.seed)]
    flags += ["-size", str(args.size), "-iter", str(args.epochs), "-threads", str(run.threads)]
    flags += ["-device", "cpu", "-sync-mode", run.mode]
    flags += ["-sync-words", str(run.every_words)] * run.every_given
    return [[*launcher, "train", *flags] for launcher in launchers]


def measure(run: Run, corpus: Path, tmp: Path, args: argparse.Namespace) -> Run:
    """Run the command, read rank 0's log, score the vectors."""
    from torchw2v.cli import load_vectors
    from torchw2v.evaluation import evaluate

    vectors = tmp / "vectors.bin"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}  # this checkout's torchw2v
    started = time.perf_counter()
    first, *others = commands(run, corpus, vectors, args)
    nodes = [subprocess.Popen(c, stdout=subprocess.DEVNULL, env=env) for c in others]
    done = subprocess.run(first, capture_output=True, text=True, env=env)
    failed = [node.args for node in nodes if node.wait()]
    run.command_s = time.perf_counter() - started
    if failed:
        raise RuntimeError(f"{run.label}: a node failed: {failed}")
    if done.returncode:
        raise RuntimeError(f"{run.label} failed:\n{done.stderr[-3000:]}")
    if run.ranks > 1 and run.mode == "shared" and SHARED not in done.stderr:
        raise RuntimeError(f"{run.label} fell back to synchronising:\n{done.stderr[-3000:]}")
    trained = TRAINED.findall(done.stderr)[-1]  # rank 0 logs at INFO, the others do not
    run.raw_words = int(trained[0])
    run.train_s = int(trained[1]) / int(trained[2])  # the seconds logged have 1 decimal
    synced = SYNCED.findall(done.stderr)
    run.syncs = sum(int(calls) for calls, *_ in synced)
    run.sync_s = sum(float(line[1]) for line in synced)
    run.rows_percent = max((float(line[2]) for line in synced), default=0.0)
    run.reduced_bytes = sum(int(line[3]) for line in synced)
    scores = evaluate(load_vectors(str(vectors)))
    run.analogy = scores["analogies"]["overall"]
    run.ws353 = scores["pairs"]["wordsim353.tsv"]["spearman"]
    run.simlex = scores["pairs"]["simlex999.txt"]["spearman"]
    return run


def report(args: argparse.Namespace, slice_: tuple[int, int], runs: list[Run], load: str) -> str:
    """The markdown block for one benchmark run."""
    lines, tokens = slice_
    baseline = runs[0].raw_words / runs[0].train_s
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"### {when}: distributed training, {args.corpus.name}, {tokens:,} tokens "
        f"({lines:,} lines), {args.epochs} epochs",
        "",
        f"`python {shlex.join(sys.argv)}`",
        "",
        f"- machine: {machine('torch', 'gensim')}; "
        f"load average (1, 5, 15 min) before / after: {load}",
        f"- settings: `torchw2v train -cbow {args.cbow} -size {args.size} "
        f"-iter {args.epochs} -seed {args.seed}` "
        f"(window 5, negative 5, sample 1e-3, min-count 5), {args.total_threads} threads over "
        "all ranks (at least 1 per rank), gloo on CPU, one machine (a run `RxM`: M nodes on "
        "it, each but the first with a host name of its own)",
        "- train s and words/s: rank 0's `training on ... took` line (raw words of all ranks; "
        "seconds as effective words over effective words/s); "
        "sync s: rank 0's time in synchronisations; command s: the whole command, start-up, "
        "vocabulary and writing included; bytes/word: what each rank sends per word it "
        "trains, for gloo's ring all-reduce (2 (n - 1) / n of each reduced tensor)",
        "",
        "| run | threads/rank | train s | words/s | vs 1 process | syncs | sync s | rows sent "
        "| bytes/word | command s | analogy | WS353 | SimLex-999 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        speed = run.raw_words / run.train_s
        rows = f"{run.rows_percent:.0f}%" if run.ranks > 1 else ""
        out.append(
            f"| {run.label} | {run.threads} | {run.train_s:.2f} | {speed:,.0f} "
            f"| {speed / baseline:.2f}x | {run.syncs} | {run.sync_s:.1f} | {rows} "
            f"| {run.bytes_per_word:.0f} | {run.command_s:.0f} | {run.analogy:.3f} "
            f"| {run.ws353:.3f} | {run.simlex:.3f} |"
        )
    return "\n".join(out) + "\n"


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))  # score with this checkout's torchw2v
    runs = [parse_run(text, args.total_threads) for text in args.run or DEFAULT_RUNS]
    before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        slice_ = write_slice(args.corpus.resolve(), args.tokens, corpus)
        print(f"corpus: {slice_[1]:,} tokens, {slice_[0]:,} lines", file=sys.stderr)
        for run in runs:
            measure(run, corpus, Path(tmp), args)
            print(
                f"{run.label}: {run.train_s:.1f}s, analogy {run.analogy:.3f}, "
                f"WS353 {run.ws353:.3f}, {run.bytes_per_word:.0f} bytes/word",
                file=sys.stderr,
            )
    block = report(args, slice_, runs, f"{before} / {load_average()}")
    publish(block, args.record)
    if args.json:
        write_json(args.json, args, slice_[1], runs)


def write_json(path: Path, args: argparse.Namespace, tokens: int, runs: list[Run]) -> None:
    """Append each run, with the corpus size and settings, as one JSON line to ``path``."""
    settings = {
        "tokens": tokens,
        **{key: getattr(args, key) for key in ("epochs", "cbow", "size", "seed")},
    }
    with path.open("a", encoding="utf-8") as out:
        for run in runs:
            line = {**settings, **asdict(run), "bytes_per_word": run.bytes_per_word}
            out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
