"""Reading gensim's pickled model files without running code from them.

gensim's ``SaveLoad.load`` unpickles whatever the file asks for, so a crafted or corrupted
file can run any function of any module. Here the unpickler builds only what a gensim model
is made of: gensim's classes, numpy arrays, dtypes and random states, and plain Python
containers. Anything else (a function such as ``os.system``, a class of another package, a
user's callback class) is refused before it is called.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from gensim.utils import SaveLoad
from smart_open import open as smart_open

ALLOWED = {
    ("builtins", name)
    for name in ("bool", "complex", "dict", "float", "frozenset", "hash", "int", "list", "set")
    + ("slice", "str", "tuple")
} | {
    ("collections", "defaultdict"),
    ("collections", "OrderedDict"),
    ("collections", "Counter"),
    ("gensim.utils", "call_on_class_only"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    *(
        (f"numpy.{core}.multiarray", name)
        for core in ("core", "_core")
        for name in ("_reconstruct", "scalar")
    ),
    *(
        ("numpy.random._pickle", name)
        for name in ("__bit_generator_ctor", "__randomstate_ctor", "__generator_ctor")
    ),
    *(("numpy.random._mt19937", "MT19937"), ("numpy.random._pcg64", "PCG64")),
}


class GensimUnpickler(pickle.Unpickler):
    """An unpickler that builds gensim's classes and the data they hold, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        if module == "gensim" or module.startswith("gensim."):
            found = super().find_class(module, name)
            if isinstance(found, type):
                return found
        raise pickle.UnpicklingError(
            f"the file asks to call {module}.{name}, which is not part of a gensim model"
        )


def load_gensim(path: str | Path, mmap: str | None = None) -> Any:
    """Load an object saved by gensim's ``save``, as ``SaveLoad.load`` does, safely.

    Parameters
    ----------
    path : str or pathlib.Path
        The pickle file; arrays gensim stored beside it (``path.wv.vectors.npy`` ...) are read
        too, never with pickle.
    mmap : str, optional
        Memory-map those separate arrays (``"r"``), as gensim's ``mmap`` argument.

    Raises
    ------
    ValueError
        The file is truncated or corrupted, or asks to run code a gensim model does not need
        (the message names it).
    """
    path = str(path)
    try:
        with smart_open(path, "rb") as src:
            obj = GensimUnpickler(src, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as err:
        raise ValueError(
            f"{path!r} is not a readable gensim model ({type(err).__name__}: {err}); it may be "
            "truncated, corrupted or crafted. If you trust it, load it with "
            "gensim.models.Word2Vec.load and convert it with torchw2v.Word2Vec.from_gensim"
        ) from None
    if not isinstance(obj, SaveLoad):
        raise ValueError(f"{path!r} holds a {type(obj).__name__}, not a gensim model")
    compress, subname = SaveLoad._adapt_by_suffix(path)
    obj._load_specials(path, mmap, compress, subname)
    return obj
