"""Compare torchw2v with gensim on the bundled 1M-token corpus; write the table, JSON and plot.

Both libraries train with identical settings and threads, three times each (seeds 1-3), as
``torchw2v compare`` does. Writes ``docs/compare.txt``, ``docs/compare.json`` and
``docs/compare.png`` (the plot in the README). A few minutes on 2 cores:
``python examples/compare_run.py [--epochs 2] [--repeats 3]``.
"""

import argparse
import logging
import os
from pathlib import Path

from torchw2v.compare import compare, format_table, plot, write_json

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = dict(sg=1, negative=5, window=5, vector_size=100, min_count=5, sample=1e-3, workers=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "data" / "wiki1m.txt.gz")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="torchw2v's device")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the files")
    args = parser.parse_args()
    logging.basicConfig(format="%(asctime)s : %(levelname)s : %(message)s", level=logging.INFO)
    logging.getLogger("gensim").setLevel(logging.WARNING)

    corpus = os.path.relpath(args.corpus)  # as recorded in the JSON: no home folders
    result = compare(
        corpus, repeats=args.repeats, epochs=args.epochs, device=args.device, **SETTINGS
    )
    table = format_table(result)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.txt").write_text(table + "\n", encoding="utf-8")
    write_json(result, args.out / "compare.json")
    plot(result, args.out / "compare.png")
    print(f"wrote compare.txt, compare.json and compare.png to {args.out}")


if __name__ == "__main__":
    main()
