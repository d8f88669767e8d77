"""The model file: arrays plus JSON metadata in one ``.npz``, written atomically.

Loading never unpickles (``allow_pickle=False``), so a model file cannot execute code. A
save goes to a temporary file beside the target, is fsynced, then renamed over it, so a
crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO, Any

import numpy as np
from smart_open import open as smart_open

FORMAT = "torchw2v-model"
FORMAT_VERSION = 1


def write_model(
    path: str | Path | IO[bytes], meta: dict[str, Any], arrays: dict[str, np.ndarray]
) -> None:
    """Write ``meta`` (JSON-serialisable) and ``arrays`` to ``path`` atomically.

    ``path`` may be a file opened for binary writing: the model is written where it stands
    (not atomically) and the file is left open.

    Raises
    ------
    FileNotFoundError
        The folder of a local ``path`` does not exist.
    IsADirectoryError
        A local ``path`` is a folder.
    TypeError
        ``path`` is a file opened in text mode.
    """
    header = {"format": FORMAT, "version": FORMAT_VERSION, **meta}
    payload = {"meta": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays}
    if _is_handle(path):  # the caller's open file: written where it stands, not atomically
        np.savez(_ForwardOnly(path), **payload)
        return
    with atomic_open(path) as out:
        np.savez(_ForwardOnly(out), **payload)


def _is_handle(target: Any) -> bool:
    """Whether ``target`` is an open file rather than a path; raise if it is a text one."""
    if isinstance(target, io.TextIOBase):
        raise TypeError(f"{target!r} is a text file: open the model file in binary mode ('b')")
    return hasattr(target, "write") or hasattr(target, "read")


class _ForwardOnly(io.RawIOBase):
    """``out`` as a stream that cannot seek, so that ``zipfile`` writes it in one pass: a
    compressed stream (``.gz``) says it can seek but cannot seek back."""

    def __init__(self, out: IO[bytes]):
        super().__init__()
        self.out = out

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return self.out.write(data)


@contextmanager
def atomic_open(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary file to write ``path`` through, in place only once it is complete.

    A local ``path`` is written to a temporary file beside it, compressed as the extension of
    ``path`` says (``.gz``, ``.bz2``, ... through smart-open), fsynced, then renamed over
    ``path``; if the writing fails, the temporary file is removed and ``path`` is untouched.
    Remote paths (``s3://`` ...) are written through smart-open, whose stores replace objects
    whole.

    Raises
    ------
    FileNotFoundError
        The folder of a local ``path`` does not exist.
    IsADirectoryError
        A local ``path`` is a folder.
    """
    path = str(path)
    if "://" in path:
        with smart_open(path, "wb") as out:
            yield out
        return
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"cannot save to {path!r}: it is a folder; pass a file path, e.g. "
            f"{os.path.join(path, 'word2vec.model')!r}"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save to {path!r}: folder {folder!r} does not exist")
    # the temporary name ends with the target's extension, so smart-open compresses alike
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=".torchw2v-", suffix=".tmp" + Path(path).suffix, dir=folder
        )
    except OSError as err:  # it names the temporary file, not the one asked for
        raise type(err)(
            err.errno, f"cannot save to {path!r}: cannot create files in {folder!r}: {err.strerror}"
        ) from None
    try:
        os.chmod(tmp, _new_file_mode(path))  # mkstemp's 0600, not what open() would give
        try:
            with smart_open(tmp, "wb") as out:
                yield out
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _new_file_mode(path: str) -> int:
    """The permissions ``path`` keeps if it exists, else those ``open`` gives a new file."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def read_model(path: str | Path | IO[bytes]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a file written by :func:`write_model`; return its metadata and arrays.

    ``path`` may be a file opened for binary reading (left open).

    Raises
    ------
    FileNotFoundError
        No such file.
    IsADirectoryError
        ``path`` is a folder.
    TypeError
        ``path`` is a file opened in text mode.
    ValueError
        The file is not a torchw2v model, or is truncated or corrupted.
    """
    handle = path if _is_handle(path) else None
    path = str(getattr(handle, "name", "the open file")) if handle else str(path)
    if not handle and "://" not in path and os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a folder, not a model file; pass its path")
    if not handle and "://" not in path and not os.path.isfile(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    try:
        with nullcontext(handle) if handle else smart_open(path, "rb") as src:
            npz = np.load(src, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single array, not an .npz archive")
            with npz:
                arrays = {name: npz[name] for name in npz.files}
        meta = json.loads(arrays.pop("meta").tobytes())
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as err:
        raise ValueError(
            f"{path!r} is not a readable torchw2v model file ({type(err).__name__}: {err}); "
            "it may be truncated or corrupted: save the model again"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a torchw2v model file")
    if type(meta.get("version")) is not int:
        raise ValueError(
            f"{path!r} is not a readable torchw2v model file: its format version is "
            f"{meta.get('version')!r}, not a number; it may be corrupted: save the model again"
        )
    if meta["version"] > FORMAT_VERSION:
        raise ValueError(
            f"{path!r} was written by a newer torchw2v (format {meta['version']}); upgrade torchw2v"
        )
    return meta, arrays


def is_pickle(path: str | Path) -> bool:
    """Whether ``path`` starts like a pickle (as gensim's ``save`` writes), not a zip archive."""
    path = str(path)
    if "://" not in path and not os.path.isfile(path):
        return False
    try:  # a gensim model saved as .gz or .bz2 is a compressed pickle
        with smart_open(path, "rb") as src:
            return src.read(1) == b"\x80"
    except (OSError, EOFError, ValueError, zlib.error):  # not what its extension says
        return False


def exists(path: str | Path) -> bool:
    """Whether a local or remote ``path`` exists."""
    path = str(path)
    if "://" not in path:
        return os.path.exists(path)
    try:
        with smart_open(path, "rb"):
            return True
    except (OSError, ValueError):
        return False


def remove(path: str | Path) -> None:
    """Delete a local file if it exists (remote objects are left alone)."""
    path = str(path)
    if "://" not in path and os.path.exists(path):
        os.remove(path)
