"""Time gensim's word2vec-format save and load against torchw2v's, text and binary.

The vectors are random float32 values with the spread of trained word vectors (normal, standard
deviation 0.1) under the words ``w0``, ``w1``, ...; both libraries write and read the same
``KeyedVectors`` in this process, one after the other, each timed best of ``--repeats``
(wall-clock seconds). Each check of the results is part of the report: the files written must
be byte-identical and the vectors read must be equal.

Prints a markdown block (the command, the machine, a table) for ``benchmarks/RESULTS.md``;
progress goes to stderr.

Examples
--------
``python benchmarks/bench_vectors_io.py --words 300000 --dims 300``
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from gensim.models import KeyedVectors

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import machine  # noqa: E402

from torchw2v.export import load_word2vec_format, save_word2vec_format  # noqa: E402


def main() -> None:
    """Run the benchmark and print its markdown block."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=300_000, help="vectors (300000)")
    parser.add_argument("--dims", type=int, default=300, help="dimensions (300)")
    parser.add_argument("--repeats", type=int, default=1, help="timings per step, best kept (1)")
    parser.add_argument("--seed", type=int, default=0, help="of the random vectors (0)")
    args = parser.parse_args()
    kv = random_vectors(args.words, args.dims, args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-vectors-") as folder:
        for binary in (False, True):
            rows += compare_format(kv, Path(folder), binary, args.repeats)
    print(report(args, rows))


def random_vectors(words: int, dims: int, seed: int) -> KeyedVectors:
    """``words`` random vectors with descending counts, as a trained model's ``wv`` has."""
    kv = KeyedVectors(dims)
    vectors = np.random.default_rng(seed).standard_normal((words, dims), dtype=np.float32) / 10
    kv.add_vectors([f"w{i}" for i in range(words)], vectors)
    kv.allocate_vecattrs(["count"], [int])
    kv.expandos["count"][:] = np.arange(words, 0, -1)
    return kv


def compare_format(kv: KeyedVectors, folder: Path, binary: bool, repeats: int) -> list[dict]:
    """Save and load timings of both libraries in one format, and whether they agree."""
    kind = "binary" if binary else "text"
    theirs_path, ours_path = folder / f"gensim.{kind}", folder / f"torchw2v.{kind}"
    gensim_save = timed(
        f"gensim save {kind}",
        lambda: kv.save_word2vec_format(str(theirs_path), binary=binary),
        repeats,
    )
    ours_save = timed(
        f"torchw2v save {kind}",
        lambda: save_word2vec_format(kv, ours_path, binary=binary),
        repeats,
    )
    identical = theirs_path.read_bytes() == ours_path.read_bytes()
    loaded: dict[str, Any] = {}
    gensim_load = timed(
        f"gensim load {kind}",
        lambda: loaded.update(
            theirs=KeyedVectors.load_word2vec_format(str(theirs_path), binary=binary)
        ),
        repeats,
    )
    ours_load = timed(
        f"torchw2v load {kind}",
        lambda: loaded.update(ours=load_word2vec_format(theirs_path, binary=binary)),
        repeats,
    )
    theirs, ours = loaded["theirs"], loaded["ours"]
    equal = theirs.index_to_key == ours.index_to_key and np.array_equal(
        theirs.vectors, ours.vectors
    )
    size = f"{theirs_path.stat().st_size / 2**20:,.0f} MiB"
    return [
        row(
            kind,
            "save",
            gensim_save,
            ours_save,
            "bytes identical" if identical else "DIFFERENT",
            size,
        ),
        row(kind, "load", gensim_load, ours_load, "equal vectors" if equal else "DIFFERENT", size),
    ]


def timed(label: str, step: Callable[[], Any], repeats: int) -> float:
    """The best wall-clock seconds of ``repeats`` runs of ``step``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    print(f"{label}: {best:.2f} s", file=sys.stderr, flush=True)
    return best


def row(kind: str, step: str, gensim_s: float, ours_s: float, check: str, size: str) -> dict:
    """One line of the table."""
    return {
        "kind": kind,
        "step": step,
        "gensim": gensim_s,
        "ours": ours_s,
        "check": check,
        "size": size,
    }


def report(args: argparse.Namespace, rows: list[dict]) -> str:
    """The markdown block: heading, command, machine and the table."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    command = shlex.join(["python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    lines = [
        f"### {when} UTC: word2vec-format vectors I/O, {args.words:,} words x {args.dims} "
        "dimensions, float32",
        "",
        f"`{command}`",
        "",
        f"- machine: {machine('numpy', 'gensim')}",
        f"- wall-clock seconds, best of {args.repeats}; both libraries read the file gensim wrote;"
        " torchw2v's saves are atomic (temporary file, fsync, rename), gensim's are not",
        f"- load average at the end: {os.getloadavg()[0]:.1f}",
        "",
        "| format | step | file | gensim s | torchw2v s | speed vs gensim | result |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['kind']} | {r['step']} | {r['size']} | {r['gensim']:.2f} | {r['ours']:.2f} | "
            f"{r['gensim'] / r['ours']:.1f}x | {r['check']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
