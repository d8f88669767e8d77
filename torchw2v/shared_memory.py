"""One copy of the weights for all the ranks on one machine: a file in ``/dev/shm`` that each
rank maps (``SyncPolicy(mode="shared")``, used by
:meth:`torchw2v.distributed.Cluster.shared_weights`).

Rank 0 creates the file, reserves every page of it (so that a full tmpfs fails here, with a
message, instead of killing a rank with SIGBUS in the middle of training) and writes a random
token and its weights into it (:func:`offer`). Each other rank maps the file and checks the
token (:func:`attach`): a rank on another machine finds no such file, or another one. Once
every rank has mapped it, rank 0 unlinks it, so that nothing is left in ``/dev/shm`` however
the ranks end.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SHARED_DIR = "/dev/shm"
TOKEN_BYTES = 16
ALIGN = 64  # each matrix starts on a cache line, the first one after the token's


@dataclass(frozen=True)
class Offer:
    """Where rank 0's shared copy is, and how the other ranks recognise it."""

    path: str
    token: bytes
    size: int


def layout(arrays: Sequence[np.ndarray]) -> tuple[list[int], int]:
    """Byte offsets of ``arrays`` one after another after the token, and the total size."""
    offsets, end = [], TOKEN_BYTES
    for array in arrays:
        offsets.append(-(-end // ALIGN) * ALIGN)
        end = offsets[-1] + array.size * 4
    return offsets, end


def views(mapped: mmap.mmap, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """float32 arrays of ``arrays``' shapes over ``mapped``, at :func:`layout`'s offsets."""
    offsets, _ = layout(arrays)
    return [
        np.frombuffer(mapped, np.float32, array.size, offset).reshape(array.shape)
        for array, offset in zip(arrays, offsets, strict=True)
    ]


def offer(
    arrays: Sequence[np.ndarray], directory: str = SHARED_DIR
) -> tuple[Offer, mmap.mmap] | str:
    """Rank 0: a new shared file holding a copy of ``arrays``, and its mapping; or, as a
    string, why there is none."""
    size = layout(arrays)[1]
    try:
        fd, path = tempfile.mkstemp(prefix="torchw2v-", dir=directory)
    except OSError as err:
        return f"no shared memory in {directory} ({err})"
    try:
        try:
            os.posix_fallocate(fd, 0, size)
            mapped = mmap.mmap(fd, size)
        finally:
            os.close(fd)
    except OSError as err:
        os.unlink(path)
        return (
            f"{directory} has no room for the weights' {size:,} bytes ({err}); in a container, "
            "give it more (docker run --shm-size)"
        )
    token = os.urandom(TOKEN_BYTES)
    mapped[:TOKEN_BYTES] = token
    for view, array in zip(views(mapped, arrays), arrays, strict=True):
        np.copyto(view, array)
    return Offer(path, token, size), mapped


def attach(offered: Offer) -> mmap.mmap | None:
    """Another rank: the mapping of rank 0's shared file, or ``None`` where this rank cannot
    open that very file (it runs on another machine)."""
    try:
        with open(offered.path, "r+b") as file:
            if os.fstat(file.fileno()).st_size != offered.size:
                return None
            mapped = mmap.mmap(file.fileno(), offered.size)
    except OSError:
        return None
    if mapped[:TOKEN_BYTES] != offered.token:
        mapped.close()
        return None
    return mapped
