"""The steps of ``benchmarks/gpu_check.sh``, each run in a process of its own.

- ``env OUT``: the machine, the GPU and every package the check needs, to ``OUT/env.txt``;
  each missing piece is named with its fix, and the exit status is 1 if any is missing.
- ``prepare SOURCE TOKENS DEST``: decompress the first ``TOKENS`` tokens (whole lines; 0 for
  all) of the gzipped corpus ``SOURCE`` to ``DEST``.
- ``train OUT ...``: train one library with one setting on the decompressed corpus through
  ``bench_vs_gensim.train_and_score`` (the same timing and scores as ``RESULTS.md``), append
  its numbers to ``OUT/results.jsonl`` and rewrite ``OUT/report.md`` from all of them, so that
  a check cut short still leaves a report.
- ``profile OUT CORPUS``: one epoch of torchw2v SG-NS d100 on ``CORPUS`` under
  ``torch.profiler``, after an untimed warm-up; the operators and kernels by device time, and
  the epoch's words/s, to ``OUT/profile.txt``: where a GPU run's time goes.

Examples
--------
``python benchmarks/gpu_check.py train $OUT --library torchw2v --sg 1 --hs 0 --vector-size 100
--corpus /tmp/corpus.txt --source wiki17m.txt.gz --device cuda``
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import sysconfig
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import import_module
from pathlib import Path

from bench_vs_gensim import train_and_score, write_slice
from common import machine

NEEDED = {
    "torch": "the machine's python3 must hold PyTorch with CUDA",
    "triton": "CUDA builds of torch bring triton",
    "numpy": "the machine's image holds numpy",
    "scipy": "gensim needs scipy: add its wheel to the bundle",
    "wrapt": "smart-open needs wrapt: add its wheel to the bundle",
    "tqdm": "torchw2v needs tqdm: add its wheel to the bundle",
    "smart_open": "run benchmarks/gpu_bundle.sh and carry benchmarks/gpu_bundle",
    "gensim": "run benchmarks/gpu_bundle.sh and carry benchmarks/gpu_bundle",
    "torchw2v": "the install of the working tree failed: see check.log",
}
"""Every module the check imports, and what to do when it is missing."""
EVALUATION_FILES = ("questions-words.txt", "wordsim353.tsv", "simlex999.txt")
MIB = 2**20
PROGRESS_LOGGERS = ("torchw2v.trainer", "gensim.models.word2vec")
"""Loggers whose progress lines show a run's speed in check.log even when it is cut short."""


def environment() -> tuple[list[str], bool]:
    """Lines describing the packages, the evaluation files and the GPU; whether all are there."""
    lines, complete = [], True
    for name, fix in NEEDED.items():
        try:
            module = import_module(name)
        except Exception as err:  # ImportError, or a broken installation
            lines.append(f"MISSING {name}: {type(err).__name__}: {err}; fix: {fix}")
            complete = False
            continue
        lines.append(f"ok {name} {getattr(module, '__version__', '?')} {module.__file__}")
    if complete:
        from gensim.test.utils import datapath

        for name in EVALUATION_FILES:
            found = Path(datapath(name)).is_file()
            complete &= found
            lines.append(f"{'ok' if found else 'MISSING'} evaluation file {datapath(name)}")
        lines.append("machine: " + machine("torch", "triton", "gensim", "numpy", "scipy"))
    lines += build_tools() + gpu_facts()
    return lines, complete


def build_tools() -> list[str]:
    """Where the compiled CPU op's build tools are (the CUDA tests build it)."""
    header = Path(sysconfig.get_paths()["include"]) / "Python.h"
    tools = [f"{tool}: {shutil.which(tool) or 'MISSING'}" for tool in ("c++", "ninja", "nvcc")]
    return [*tools, f"Python.h: {header if header.is_file() else 'MISSING'}"]


def gpu_facts() -> list[str]:
    """The CUDA device torch sees, or why it sees none."""
    try:
        import torch
    except ImportError:
        return ["cuda: torch is missing"]
    if not torch.cuda.is_available():
        return ["cuda: not available (a dry run, or a broken driver)"]
    props = torch.cuda.get_device_properties(0)
    return [
        f"cuda: {torch.cuda.device_count()} device(s); cuda:0 {props.name}, capability "
        f"{props.major}.{props.minor}, {props.multi_processor_count} SMs, "
        f"{props.total_memory / MIB:,.0f} MiB; torch CUDA {torch.version.cuda}"
    ]


def gpu_memory(used_torch: bool) -> dict:
    """This process's peak CUDA memory, when it trained with torch on a GPU (gensim's runs
    do not import torch, so that their peak RSS is gensim's own)."""
    if not used_torch:
        return {}
    import torch

    if not torch.cuda.is_available():
        return {}
    return {
        "gpu_peak_allocated_mib": torch.cuda.max_memory_allocated() / MIB,
        "gpu_peak_reserved_mib": torch.cuda.max_memory_reserved() / MIB,
        "gpu": torch.cuda.get_device_name(0),
    }


def setting_name(sg: int, hs: int, vector_size: int) -> str:
    """``SG-NS d100`` and the like."""
    return f"{'SG' if sg else 'CBOW'}-{'HS' if hs else 'NS'} d{vector_size}"


def check_settings(sg: int, hs: int, vector_size: int, epochs: int, workers: int) -> dict:
    """The check's training settings, gensim's defaults (negative sampling unless ``hs``)."""
    return dict(
        sg=sg,
        hs=hs,
        vector_size=vector_size,
        window=5,
        negative=0 if hs else 5,
        min_count=5,
        sample=1e-3,
        workers=workers,
        epochs=epochs,
        seed=1,
    )


def train(args: argparse.Namespace) -> None:
    """Train and score one run; record it under ``args.out``."""
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")
    for name in PROGRESS_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    settings = check_settings(args.sg, args.hs, args.vector_size, args.epochs, args.workers)
    if args.library == "torchw2v":
        settings.update(engine="auto", device=args.device)
    run = train_and_score(args.library, settings, str(args.corpus))
    record = {
        "setting": setting_name(args.sg, args.hs, args.vector_size),
        "library": args.library,
        "source": args.source,
        "settings": settings,
        **asdict(run),
        "words_per_s": run.words_per_s(args.epochs),
        **gpu_memory(args.library == "torchw2v"),
    }
    print(
        f"{record['setting']}, {run.label}: {record['words_per_s']:,.0f} words/s, analogy "
        f"{run.analogy:.3f}, WS353 {run.ws353:.3f}, SimLex-999 {run.simlex:.3f}"
    )
    results = args.out / "results.jsonl"
    with results.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
    records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    (args.out / "report.md").write_text(report(records), encoding="utf-8")


def profile(out: Path, corpus: Path, device: str) -> None:
    """Profile one epoch of SG-NS d100 on ``device``; write the table to ``out/profile.txt``."""
    import time

    import torch
    from torch.profiler import ProfilerActivity

    from torchw2v import Word2Vec
    from torchw2v.compare import warm_up

    settings = dict(sg=1, vector_size=100, workers=16, seed=1, device=device, epochs=1)
    warm_up(settings)
    model = Word2Vec(**settings)
    model.build_vocab(corpus_file=str(corpus))
    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * torch.cuda.is_available()
    with torch.profiler.profile(activities=activities) as prof:
        started = time.perf_counter()
        model.train(
            corpus_file=str(corpus),
            total_examples=model.corpus_count,
            total_words=model.corpus_total_words,
            epochs=1,
        )
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    sort = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=30, max_name_column_width=60)
    head = (
        f"SG-NS d100, 1 epoch of {model.corpus_total_words:,} words on {device} under the "
        f"profiler: {seconds:.2f} s, {model.corpus_total_words / seconds:,.0f} words/s\n"
    )
    print(head + table)
    (out / "profile.txt").write_text(head + table + "\n", encoding="utf-8")


def report(records: list[dict]) -> str:
    """The markdown block for RESULTS.md: one row per run, speed against gensim's same setting;
    the runs of one setting together, in the order the settings were first trained."""
    settings = list(dict.fromkeys(r["setting"] for r in records))
    records = sorted(records, key=lambda r: settings.index(r["setting"]))
    gensim = {r["setting"]: r["words_per_s"] for r in records if r["library"] == "gensim"}
    first = records[0]
    gpu = next((r["gpu"] for r in records if "gpu" in r), "none")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"### {when}: GPU check, {first['source']}, {first['corpus_words']:,} tokens, "
        f"{first['settings']['epochs']} epochs",
        "",
        "`benchmarks/gpu_check.sh`",
        "",
        f"- machine: {machine('torch', 'triton', 'gensim')}; GPU: {gpu}",
        f"- settings: window=5 negative=5 (0 with HS) min_count=5 sample=0.001 "
        f"workers={first['settings']['workers']} seed=1; vocabulary {first['vocab_size']:,} "
        "words; gensim in corpus_file mode",
        "",
        "| setting | library (engine used) | vocab s | train s | train words/s "
        "| speed vs gensim | peak GPU MiB (allocated / reserved) | peak RSS MiB "
        "| analogy | WS353 | SimLex-999 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        baseline = gensim.get(r["setting"])
        speed = f"{r['words_per_s'] / baseline:.2f}x" if baseline else "no gensim run"
        memory = (
            f"{r['gpu_peak_allocated_mib']:,.0f} / {r['gpu_peak_reserved_mib']:,.0f}"
            if "gpu" in r
            else ""
        )
        out.append(
            f"| {r['setting']} | {r['label']} | {r['vocab_s']:.1f} | {r['train_s']:.1f} "
            f"| {r['words_per_s']:,.0f} | {speed} | {memory} | {r['peak_rss_mib']:,.0f} "
            f"| {r['analogy']:.3f} | {r['ws353']:.3f} | {r['simlex']:.3f} |"
        )
    return "\n".join(out) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Subcommands and their flags; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    steps.add_parser("env").add_argument("out", type=Path)
    prepare = steps.add_parser("prepare")
    prepare.add_argument("source", type=Path)
    prepare.add_argument("tokens", type=int)
    prepare.add_argument("dest", type=Path)
    profiled = steps.add_parser("profile")
    profiled.add_argument("out", type=Path)
    profiled.add_argument("corpus", type=Path)
    profiled.add_argument("--device", default="cuda")
    run = steps.add_parser("train")
    run.add_argument("out", type=Path)
    run.add_argument("--library", choices=("torchw2v", "gensim"), required=True)
    run.add_argument("--sg", type=int, choices=(0, 1), required=True)
    run.add_argument("--hs", type=int, choices=(0, 1), required=True)
    run.add_argument("--vector-size", type=int, required=True)
    run.add_argument("--corpus", type=Path, required=True, help="the decompressed corpus")
    run.add_argument("--source", required=True, help="the corpus's name, for the report")
    run.add_argument("--epochs", type=int, default=3)
    run.add_argument("--workers", type=int, default=16)
    run.add_argument("--device", default="cuda", help="torchw2v's device")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.step == "env":
        lines, complete = environment()
        text = "\n".join(lines) + "\n"
        print(text, end="")
        with (args.out / "env.txt").open("a", encoding="utf-8") as out:
            out.write(text)
        sys.exit(0 if complete else 1)
    if args.step == "prepare":
        lines, tokens = write_slice(args.source, 0, args.tokens, args.dest)
        print(f"{args.source.name}: {tokens:,} tokens, {lines:,} lines -> {args.dest}")
    elif args.step == "profile":
        profile(args.out, args.corpus, args.device)
    else:
        train(args)


if __name__ == "__main__":
    main(sys.argv[1:])
