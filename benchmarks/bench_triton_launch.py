"""How many centers the Triton engine may train at once: quality and speed on a GPU.

The Triton kernel's programs run at the same time and read rows before each other's updates
land, so the centers in flight act as one mini-batch; too many and skip-gram's frequent output
rows overshoot. This trains each setting with a bound on the centers in flight (the engine's
``centers_in_flight``) and, optionally, the centers per program (``centers``), and appends
words/s and scores to ``OUT/launches.jsonl`` and ``OUT/launches.md`` as each run ends. The
engine's defaults (:func:`torchw2v.engines.triton_engine.default_centers_in_flight`) come
from such a run (RESULTS.md, 2026-12-04).

Usage, on the GPU machine, after ``benchmarks/gpu_check.sh``'s install and corpus steps::

    python benchmarks/bench_triton_launch.py OUT CORPUS.txt --budget 240 \\
        SG-NS:100:16384 SG-NS:100:1024 CBOW-NS:100:16384:1

A variant is ``SETTING:VECTOR_SIZE:CENTERS_IN_FLIGHT[:CENTERS_PER_PROGRAM]`` (in flight 0:
the engine's default; centers per program by default as many as fill the kernel's columns).
Variants are run in the order given while the budget (seconds) lasts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench_vs_gensim import train_and_score
from gpu_check import check_settings, gpu_memory

from torchw2v.engines.triton_engine import TritonEngine as ENGINE


def settings_for(setting: str, vector_size: int, epochs: int, device: str) -> dict:
    """``SG-NS``, ``CBOW-HS`` and the like as the GPU check's torchw2v settings; the compiled
    engine is the Triton kernel on CUDA (the C++ op on CPU, for a dry run)."""
    model, loss = setting.split("-")
    settings = check_settings(int(model == "SG"), int(loss == "HS"), vector_size, epochs, 16)
    return {**settings, "engine": "compiled", "device": device}


def run_variant(variant: str, corpus: Path, epochs: int, device: str) -> dict:
    """Train one variant with the engine's launch options set; its record."""
    from torchw2v.engines import triton_engine

    setting, size, in_flight, *centers = variant.split(":")
    options = {"centers_in_flight": int(in_flight) or None}
    options["centers"] = int(centers[0]) if centers else None

    class Tuned(ENGINE):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs, **options)

    triton_engine.TritonEngine = Tuned  # what torchw2v.engines.make_engine constructs
    try:
        run = train_and_score(
            "torchw2v", settings_for(setting, int(size), epochs, device), str(corpus)
        )
    finally:
        triton_engine.TritonEngine = ENGINE
    return {"variant": variant, **asdict(run), "words_per_s": run.words_per_s(epochs)} | (
        gpu_memory(True)
    )


def table(records: list[dict]) -> str:
    """The records as a markdown table."""
    rows = [
        "| variant (setting:d:centers in flight[:per program]) | train s | words/s | analogy "
        "| WS353 | SimLex-999 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows += [
        f"| {r['variant']} | {r['train_s']:.2f} | {r['words_per_s']:,.0f} | {r['analogy']:.3f} "
        f"| {r['ws353']:.3f} | {r['simlex']:.3f} |"
        for r in records
    ]
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("corpus", type=Path, help="the decompressed corpus")
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--budget", type=float, default=240, help="seconds")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    started, records = time.monotonic(), []
    for variant in args.variants:
        if time.monotonic() - started > args.budget:
            print(f"{variant}: skipped, the {args.budget:g}s budget is spent")
            continue
        try:
            record = run_variant(variant, args.corpus, args.epochs, args.device)
        except Exception as err:  # one variant failing leaves the others their runs
            print(f"{variant}: FAILED: {type(err).__name__}: {err}")
            continue
        records.append(record)
        print(
            f"{variant}: {record['words_per_s']:,.0f} words/s, analogy {record['analogy']:.3f}, "
            f"WS353 {record['ws353']:.3f}",
            flush=True,
        )
        with (args.out / "launches.jsonl").open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        (args.out / "launches.md").write_text(table(records), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
