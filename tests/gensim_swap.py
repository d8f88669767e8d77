"""pytest plugin: gensim's test modules see ``torchw2v.Word2Vec`` as ``word2vec.Word2Vec``.

Loaded with ``pytest -p gensim_swap`` (``tests/`` on ``PYTHONPATH``) to run gensim's own
``gensim/test/test_word2vec.py`` against torchw2v, as a user who changed one import would.
That file calls ``word2vec.Word2Vec(...)`` through its module global ``word2vec``; each
collected module's ``word2vec`` becomes a copy of ``gensim.models.word2vec`` whose
``Word2Vec`` is torchw2v's. gensim itself is left alone, so pickles of gensim models still
name gensim's own class.
"""

import types

from gensim.models import word2vec

import torchw2v

SWAPPED = types.ModuleType(word2vec.__name__, word2vec.__doc__)
SWAPPED.__dict__.update(vars(word2vec))
SWAPPED.Word2Vec = torchw2v.Word2Vec


def pytest_collection_modifyitems(items):
    for module in {item.module for item in items if getattr(item, "module", None)}:
        if getattr(module, "word2vec", None) is word2vec:
            module.word2vec = SWAPPED
