"""What the benchmark scripts share: the machine they ran on, and where results go."""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine(*packages: str) -> str:
    """Core count, CPU model, OS, Python and the versions of ``packages``, as one line."""
    model = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = ", ".join(f"{name} {version(name)}" for name in packages)
    return (
        f"nproc {len(os.sched_getaffinity(0))}, {model}, {os.uname().sysname}; "
        f"Python {sys.version.split()[0]}, {versions}"
    )


def publish(block: str, record: bool) -> None:
    """Print a result block; with ``record``, also append it to :data:`RESULTS`."""
    print(block)
    if record:
        with RESULTS.open("a", encoding="utf-8") as results:
            results.write("\n" + block)
