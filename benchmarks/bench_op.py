"""A/B the compiled op's variants in one process: the only comparison this noisy machine allows.

The speed of a shared 2-core machine drifts by up to 1.5x over minutes, so the op's sources are
timed side by side: each source is built as its own extension (its ``TORCH_LIBRARY`` namespace
renamed), and the ops are called alternately on the same captured chunk, from copies of the
same weights. The ratio of each pair of calls is taken against the first source; the median
of the ratios is printed.

A chunk is captured from a real run: ``--capture`` trains ``torchw2v.Word2Vec`` on a corpus
file and saves its ``--chunk``-th call of the compiled engine (weights, tables, settings).

Examples
--------
``python benchmarks/bench_op.py --capture sg_hs.pt --corpus c5m.txt --sg 1 --hs 1 --negative 0``

``python benchmarks/bench_op.py --chunk-file sg_hs.pt --workers 2 --calls 11 op.cpp variant.cpp``
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils import cpp_extension

import torchw2v
from torchw2v.engines import compiled


class Captured(Exception):
    """Raised to stop training once the chunk is saved."""


def capture(args: argparse.Namespace) -> None:
    """Train on ``args.corpus`` and save the ``args.chunk``-th chunk the op is given."""
    train_chunk = compiled.CompiledEngine.train_chunk
    calls = iter(range(args.chunk))

    def save_then_stop(engine, ids, offsets, alpha_start, alpha_end, first_sentence=0):
        if next(calls, None) is not None:  # not yet the chunk to save
            return train_chunk(engine, ids, offsets, alpha_start, alpha_end, first_sentence)
        weights = {n: getattr(engine, n).clone() for n in ("syn0", "syn1neg", "syn1")}
        tables = ("sample_int", "cum_table", "points", "codes", "lengths")
        tables = {n: getattr(engine, n) for n in tables}
        torch.save(
            {
                **weights,
                **tables,
                "ids": ids,
                "offsets": offsets,
                "config": engine.config,
                "alphas": (alpha_start, alpha_end),
            },
            args.capture,
        )
        raise Captured

    compiled.CompiledEngine.train_chunk = save_then_stop
    settings = dict(sg=args.sg, hs=args.hs, negative=args.negative, workers=2, epochs=3)
    try:
        torchw2v.Word2Vec(corpus_file=str(args.corpus), seed=1, engine="compiled", **settings)
    except Captured:
        print(f"saved chunk {args.chunk} to {args.capture}")
        return
    raise SystemExit(f"the run took fewer than {args.chunk + 1} chunks: lower --chunk")


def load_variant(source: Path, index: int, build: Path):
    """Build ``source`` with its op registered as ``torchw2vab<index>``; return the op."""
    text = source.read_text()
    for macro in ("TORCH_LIBRARY", "TORCH_LIBRARY_IMPL"):
        text = text.replace(f"{macro}(torchw2v,", f"{macro}(torchw2vab{index},")
    name = f"ab{index}_{hashlib.sha1(text.encode()).hexdigest()[:12]}"
    renamed = build / f"{name}.cpp"
    if not renamed.exists():  # ninja rebuilds what is newer, even with the same text
        renamed.write_text(text)
    cpp_extension.load(
        name=name, sources=[str(renamed)], extra_cflags=compiled._cflags(), is_python_module=False
    )
    return getattr(torch.ops, f"torchw2vab{index}").train_chunk


def time_call(op, chunk: dict, workers: int) -> float:
    """Seconds one call of ``op`` takes on fresh copies of the chunk's weights."""
    c = chunk["config"]
    weights = [chunk[n].clone() for n in ("syn0", "syn1neg", "syn1")]
    tables = [
        chunk[n]
        for n in ("ids", "offsets", "sample_int", "cum_table", "points", "codes", "lengths")
    ]
    settings = (c.window, c.negative, c.hs, c.sg, c.cbow_mean, c.shrink_windows)
    started = time.perf_counter()
    op(*weights, *tables, *settings, *map(float, chunk["alphas"]), 7, workers, False)
    return time.perf_counter() - started


def compare(args: argparse.Namespace) -> None:
    """Call the sources' ops alternately; print each one's median speed against the first."""
    chunk = torch.load(args.chunk_file, weights_only=False)
    args.build.mkdir(parents=True, exist_ok=True)
    ops = [load_variant(source, i, args.build) for i, source in enumerate(args.sources)]
    seconds = [[] for _ in ops]
    for _ in range(args.calls):
        for op, times in zip(ops, seconds):
            times.append(time_call(op, chunk, args.workers))
    words = chunk["ids"].numel()
    for source, times in zip(args.sources, seconds):
        ratio = statistics.median(a / b for a, b in zip(seconds[0], times))
        median = statistics.median(times)
        print(
            f"{source}: {median * 1e3:.1f} ms a call, {words / median:,.0f} words/s, "
            f"{ratio:.3f}x the first"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", type=Path, help="op sources, the first the base")
    parser.add_argument("--chunk-file", type=Path, help="a chunk saved by --capture")
    parser.add_argument("--capture", type=Path, help="save a chunk here instead of timing")
    parser.add_argument("--corpus", type=Path, help="--capture: the corpus file to train on")
    parser.add_argument("--chunk", type=int, default=12, help="--capture: which call to save")
    parser.add_argument("--sg", type=int, default=1)
    parser.add_argument("--hs", type=int, default=1)
    parser.add_argument("--negative", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="the op's threads")
    parser.add_argument("--calls", type=int, default=11, help="calls of each op")
    default_build = Path(tempfile.gettempdir()) / "torchw2v_bench_op"
    parser.add_argument("--build", type=Path, default=default_build, help="renamed sources")
    args = parser.parse_args()
    if not args.capture and not (args.chunk_file and args.sources):
        parser.error("give --capture FILE --corpus CORPUS, or --chunk-file FILE and sources")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.capture:
        capture(arguments)
    else:
        compare(arguments)
