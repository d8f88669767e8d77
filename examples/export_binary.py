"""Train, export the vectors in word2vec's binary format, and load them back with gensim.

The file is written by gensim's own ``save_word2vec_format``, so word2vec.c's tools
(``distance``, ``word-analogy``) read it too. The command line does the same in one step:
``torchw2v train -train data/wiki1m.txt.gz -output vectors.bin -cbow 0 -binary 1``.
Run from anywhere: ``python examples/export_binary.py [OUTPUT.bin]``.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors

from torchw2v import Word2Vec

DATA = Path(__file__).resolve().parent.parent / "data" / "wiki1m.txt.gz"


def export(output: Path) -> None:
    """Train on the bundled corpus, write ``output`` (binary), read it back and check it."""
    model = Word2Vec(corpus_file=str(DATA), sg=1, epochs=2, workers=2)
    model.wv.save_word2vec_format(str(output), binary=True)

    loaded = KeyedVectors.load_word2vec_format(str(output), binary=True)
    assert loaded.index_to_key == model.wv.index_to_key
    assert np.array_equal(loaded.vectors, model.wv.vectors)
    print(f"{output}: {len(loaded):,} words x {loaded.vector_size} dimensions")
    print("most similar to 'france':", loaded.most_similar("france", topn=5))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        export(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            export(Path(folder) / "vectors.bin")
