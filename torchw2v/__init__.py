"""torchw2v: word2vec in PyTorch, as a drop-in for ``gensim.models.Word2Vec``."""

import importlib
from typing import Any

from gensim.models.word2vec import LineSentence, PathLineSentences, Text8Corpus

from .corpus import CorpusFile
from .export import load_word2vec_format, save_word2vec_format
from .objective import SkipGramNS
from .word2vec import Word2Vec

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``compare`` and ``ComparisonResult``, imported on first use: the comparison harness
    (:mod:`torchw2v.compare`) is not imported with the package."""
    if name in ("compare", "ComparisonResult"):
        module = importlib.import_module(".compare", __name__)
        return module if name == "compare" else module.ComparisonResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ComparisonResult",
    "CorpusFile",
    "LineSentence",
    "PathLineSentences",
    "SkipGramNS",
    "Text8Corpus",
    "Word2Vec",
    "__version__",
    "compare",
    "load_word2vec_format",
    "save_word2vec_format",
]
