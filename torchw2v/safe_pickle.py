"""Reading gensim's pickled model files without running code from them.

gensim's ``SaveLoad.load`` unpickles whatever the file asks for, so a crafted or corrupted
file can run any function of any module. Here the unpickler builds only what a gensim model
is made of: gensim's classes, numpy arrays, dtypes and random states, and plain Python
containers. Anything else (a function such as ``os.system``, a class of another package, a
user's callback class) is refused before it is called.

Files saved by gensim 1.x to 3.x (pickle protocol 2) name Python 2's modules
(``__builtin__.long``); they are translated to Python 3's names, as pickle itself does, before
the check. Those files also need the three callables below, each harmless:

- ``_codecs.encode``: how a protocol-2 pickle stores ``bytes`` (``encode(text, "latin1")``).
  It is replaced by :func:`latin1_bytes`, which does only that and refuses any other codec.
- ``numpy.random.__RandomState_ctor``: takes no argument and returns ``RandomState(seed=0)``,
  whose state the pickle then sets (gensim 1.x to 3.x kept a ``RandomState`` on the model).
- ``builtins.hash`` (the files' ``__builtin__.hash``): stored as the model's ``hashfxn``
  attribute, a reference that is never called; calling it would only hash an object the
  unpickler itself built.
"""

from __future__ import annotations

import _compat_pickle
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
    ("numpy.random", "__RandomState_ctor"),
}


def latin1_bytes(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of ``bytes`` call it: latin-1 text to bytes."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(
            f"the file asks to encode {type(text).__name__} with {encoding!r}; a gensim model "
            "only encodes text with latin1"
        )
    return text.encode("latin1")


class GensimUnpickler(pickle.Unpickler):
    """An unpickler that builds gensim's classes and the data they hold, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        module, name = python3_name(module, name)
        if (module, name) == ("_codecs", "encode"):
            return latin1_bytes
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        if module == "gensim" or module.startswith("gensim."):
            found = super().find_class(module, name)
            if isinstance(found, type):
                return found
        raise pickle.UnpicklingError(
            f"the file asks to call {module}.{name}, which is not part of a gensim model"
        )


def python3_name(module: str, name: str) -> tuple[str, str]:
    """The Python 3 name of a global a Python 2 pickle names (``__builtin__.long``: ``int``)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


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
