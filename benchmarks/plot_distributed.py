"""Plot the distributed quality curve: analogy and WS353 against ranks, from
``bench_distributed.py --json`` lines.

Each line of the plot is one objective and corpus size, each point the mean of its runs
(seeds); a rank count of 1 is one process with all the threads. The shaded band is the done
bar of issue 18: 1 analogy point and 0.02 WS353 around one process.

Examples
--------
``python benchmarks/plot_distributed.py curve.jsonl docs/distributed_quality.png``
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRICS = (("analogy", "analogy accuracy", 0.01), ("ws353", "WS353 Spearman", 0.02))


def read_curves(paths: list[Path]) -> dict[tuple[int, int], dict[int, dict[str, float]]]:
    """``{(cbow, tokens): {ranks: {metric: mean over its runs}}}``."""
    runs: dict[tuple[int, int, int], list[dict]] = defaultdict(list)
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            run = json.loads(line)
            runs[run["cbow"], run["tokens"], run["ranks"]].append(run)
    curves: dict[tuple[int, int], dict[int, dict[str, float]]] = defaultdict(dict)
    for (cbow, tokens, ranks), same in runs.items():
        means = {key: sum(run[key] for run in same) / len(same) for key, _, _ in METRICS}
        curves[cbow, tokens][ranks] = means
    return curves


def plot(curves: dict[tuple[int, int], dict[int, dict[str, float]]], out: Path) -> None:
    """Two panels, analogy and WS353 against ranks, one line per curve, its band shaded."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (key, title, bar) in zip(axes, METRICS):
        for (cbow, tokens), runs in sorted(curves.items()):
            ranks = sorted(runs)
            values = [runs[r][key] for r in ranks]
            label = f"{'CBOW' if cbow else 'SG'}, {tokens / 1e6:.0f}M tokens"
            (line,) = ax.plot(ranks, values, marker="o", label=label)
            if 1 in runs:
                alone = runs[1][key]
                ax.axhspan(alone - bar, alone + bar, color=line.get_color(), alpha=0.12)
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 2, 4, 8], ["1 process", "2", "4", "8"])
        ax.set_xlabel("ranks (torchrun, gloo, 1 thread each)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "torchw2v distributed: quality against ranks, each point the mean of its runs "
        "(band: one process \u00b1 the bar)"
    )
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="bench_distributed.py --json files")
    parser.add_argument("out", type=Path, help="the PNG to write")
    args = parser.parse_args()
    plot(read_curves(args.runs), args.out)


if __name__ == "__main__":
    main()
