"""torchw2v: word2vec in PyTorch, as a drop-in for ``gensim.models.Word2Vec``."""

from gensim.models.word2vec import LineSentence, PathLineSentences, Text8Corpus

from .compare import ComparisonResult, compare
from .corpus import CorpusFile
from .export import load_word2vec_format, save_word2vec_format
from .objective import SkipGramNS
from .word2vec import Word2Vec

__version__ = "0.1.0"

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
