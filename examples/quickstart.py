"""Train gensim's Word2Vec and torchw2v's on the same corpus and compare them side by side.

Run from the repository root: ``python examples/quickstart.py`` (under a minute on 2 cores).
Both libraries get the same settings and their natural input: gensim's fast ``corpus_file``
mode needs a plain-text file, torchw2v reads the ``.gz`` directly.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import shutil
import tempfile
from pathlib import Path

from gensim.models import KeyedVectors
from gensim.models import Word2Vec as GensimWord2Vec

import torchw2v
from torchw2v.compare import train_timed, warm_up
from torchw2v.evaluation import headline_scores

DATA = Path(__file__).resolve().parent.parent / "data" / "wiki1m.txt.gz"
SETTINGS = dict(sg=1, negative=5, window=5, vector_size=100, min_count=5, sample=1e-3, workers=2)
PROBES = ("king", "france", "music")
LABELS = {  # headline_scores' names, as printed
    "analogy": "analogy (all)",
    "analogy_semantic": "  semantic",
    "analogy_syntactic": "  syntactic",
    "ws353": "WS353 Spearman",
    "simlex999": "SimLex-999 Spearman",
}


def train(cls: type, epochs: int, corpus_file: str) -> tuple[KeyedVectors, float]:
    """Train ``cls`` (either library's Word2Vec); its vectors and seconds (vocabulary + train)."""
    timed = train_timed(cls, {**SETTINGS, "epochs": epochs, "seed": 1}, corpus_file=corpus_file)
    return timed.model.wv, timed.vocab_seconds + timed.train_seconds


def summary(wv: KeyedVectors, seconds: float, words: int, gensim_seconds: float) -> dict[str, str]:
    """One library's column: time, speed over ``words`` trained words, and quality scores."""
    return {
        "seconds (vocab + train)": f"{seconds:.1f}",
        "words/s": f"{words / seconds:,.0f}",
        "speed vs gensim": f"{gensim_seconds / seconds:.2f}x",
        **{LABELS[name]: f"{value:.3f}" for name, value in headline_scores(wv).items()},
    }


def neighbours(wv: KeyedVectors, word: str) -> str:
    """The 5 nearest neighbours of ``word``, comma-separated."""
    if word not in wv:
        return "(not in vocabulary)"
    return ", ".join(w for w, _ in wv.most_similar(word, topn=5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=DATA, help="a LineSentence .gz file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "corpus.txt"
        with gzip.open(args.corpus, "rb") as src, plain.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        with plain.open(encoding="utf-8") as lines:
            words = sum(len(line.split()) for line in lines)
        gensim_wv, gensim_s = train(GensimWord2Vec, args.epochs, str(plain))
    warm_up(SETTINGS)  # one-time costs (building the compiled engine) are not timed
    ours_wv, ours_s = train(torchw2v.Word2Vec, args.epochs, str(args.corpus))

    trained = words * args.epochs
    theirs = summary(gensim_wv, gensim_s, trained, gensim_s)
    ours = summary(ours_wv, ours_s, trained, gensim_s)
    print(f"{args.corpus.name}: {words:,} words x {args.epochs} epochs, sg=1 negative=5 window=5\n")
    print(f"{'':<24}{'gensim':>12}{'torchw2v':>12}")
    for name in theirs:
        print(f"{name:<24}{theirs[name]:>12}{ours[name]:>12}")
    for word in PROBES:
        print(f"\n{word}\n  gensim:   {neighbours(gensim_wv, word)}")
        print(f"  torchw2v: {neighbours(ours_wv, word)}")


if __name__ == "__main__":
    main()
