"""What the benchmark scripts share: the machine they ran on, the corpus slice they train on,
and where results go. Warming up and timing a training are :mod:`torchw2v.compare`'s
(``warm_up``, ``train_timed``), scoring is :mod:`torchw2v.evaluation`'s."""

from __future__ import annotations

import gzip
import sys
from importlib.metadata import version
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine(*packages: str) -> str:
    """CPU model, usable cores, OS, Python and the versions of ``packages``, as one line."""
    from torchw2v.compare import machine as hardware

    versions = ", ".join(f"{name} {version(name)}" for name in packages)
    return f"{hardware()}; Python {sys.version.split()[0]}, {versions}"


def write_slice(source: Path, skip: int, tokens: int, dest: Path) -> tuple[int, int]:
    """Decompress whole lines of ``source`` to ``dest``: skip lines until ``skip`` tokens are
    passed, then write until ``tokens`` are written (0: to the end).

    Returns
    -------
    (int, int)
        Lines and tokens written.
    """
    lines = written = skipped = 0
    with gzip.open(source, "rt", encoding="utf-8") as src, dest.open("w", encoding="utf-8") as dst:
        for line in src:
            if skipped < skip:
                skipped += len(line.split())
                continue
            if tokens and written >= tokens:
                break
            dst.write(line)
            lines += 1
            written += len(line.split())
    return lines, written


def publish(block: str, record: bool) -> None:
    """Print a result block; with ``record``, also append it to :data:`RESULTS`."""
    print(block)
    if record:
        with RESULTS.open("a", encoding="utf-8") as results:
            results.write("\n" + block)
