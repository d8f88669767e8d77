"""Running checks of the Triton engine through Triton's CPU interpreter, in a child process.

Triton decides between compiling a kernel and interpreting it (``TRITON_INTERPRET=1``) when
the module defining it is imported, and a pytest process may have imported
``torchw2v.engines.triton_kernel`` already. So a test file names its checks (functions of no
argument), runs itself as a script with ``TRITON_INTERPRET=1`` (:func:`results`), and the
script calls :func:`report`, which prints each check's outcome as JSON; one pytest test per
check then asserts it (:func:`assert_ok`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "RESULTS "


def report(checks: dict[str, Callable[[], None]]) -> None:
    """The child's entry point: run every check, print ``{name: outcome}``; an outcome is
    "ok", "skip: why" or the check's traceback."""
    torch.set_num_threads(1)
    results = {}
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            check()
            results[name] = "ok"
        except pytest.skip.Exception as skipped:
            results[name] = f"skip: {skipped.msg}"
        except (Exception, pytest.fail.Exception):  # a failed pytest.raises is the latter
            results[name] = traceback.format_exc()
        print(f"{name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print(PREFIX + json.dumps(results))


def results(script: str | Path) -> dict[str, str]:
    """Run ``script`` in a child with TRITON_INTERPRET=1; the outcomes of its checks by name."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(PREFIX)]
    assert proc.returncode == 0 and lines, (
        f"the interpreter child failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
        f"{proc.stderr[-6000:]}"
    )
    return json.loads(lines[-1][len(PREFIX) :])


def assert_ok(outcome: str) -> None:
    """Pass, skip or fail as the check did in the child."""
    if outcome.startswith("skip: "):
        pytest.skip(outcome[len("skip: ") :])
    assert outcome == "ok", outcome
