"""A typical gensim script, with one line changed: ``Word2Vec`` comes from torchw2v.

Everything else (``LineSentence``, the arguments, ``save``/``load``, continued training,
``model.wv`` queries and gensim's ``KeyedVectors`` file) is the gensim 4 tutorial's.
Run from anywhere: ``python examples/gensim_script.py`` (about a minute on 2 cores).
"""

import logging
from pathlib import Path

from gensim.models import KeyedVectors
from gensim.models.word2vec import LineSentence
from gensim.test.utils import get_tmpfile

from torchw2v import Word2Vec  # was: from gensim.models import Word2Vec

logging.basicConfig(format="%(asctime)s : %(levelname)s : %(message)s", level=logging.INFO)

corpus = Path(__file__).resolve().parent.parent / "data" / "wiki1m.txt.gz"
sentences = LineSentence(str(corpus))

# sg=1: skip-gram (torchw2v does not train CBOW, gensim's default, yet).
model = Word2Vec(sentences=sentences, vector_size=100, window=5, min_count=5, workers=2, sg=1)

path = get_tmpfile("word2vec.model")
model.save(path)
model = Word2Vec.load(path)
model.train(sentences, total_examples=model.corpus_count, epochs=1)  # continue training

vector = model.wv["king"]  # a numpy vector of 100 floats
print("most similar to 'king':", model.wv.most_similar("king", topn=5))
print("france ~ germany:", model.wv.similarity("france", "germany"))
print("odd one out:", model.wv.doesnt_match(["january", "march", "april", "piano"]))

word_vectors = get_tmpfile("word2vec.wordvectors")
model.wv.save(word_vectors)
wv = KeyedVectors.load(word_vectors, mmap="r")
print("reloaded vectors:", wv.vectors.shape)
