"""One copy of the weights for all the ranks on one machine: anonymous shared memory that each
rank maps (``SyncPolicy(mode="shared")``, used by
:meth:`torchw2v.distributed.Cluster.shared_weights`).

Rank 0 creates the memory (``memfd_create``: no file in ``/dev/shm``, so neither its size
limit, 64 MB in a Docker container, nor a file left behind), reserves every page of it (so
that a lack of memory fails here, with a message, instead of killing a rank with SIGBUS in
the middle of training) and writes a random token and its weights into it (:func:`offer`).
Each other rank opens it through ``/proc/<pid>/fd/<fd>`` of rank 0, maps it and checks the
token (:func:`attach`): a rank on another machine or in another container finds a different
host name, no such file, or another one. The memory is freed when the last rank unmaps it.
"""

from __future__ import annotations

import mmap
import os
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TOKEN_BYTES = 16
ALIGN = 64  # each matrix starts on a cache line, the first one after the token's


@dataclass(frozen=True)
class Offer:
    """Where rank 0's shared copy is, and how the other ranks recognise it."""

    host: str
    pid: int
    fd: int
    token: bytes
    size: int

    @property
    def path(self) -> str:
        return f"/proc/{self.pid}/fd/{self.fd}"


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


def offer(arrays: Sequence[np.ndarray]) -> tuple[Offer, mmap.mmap] | str:
    """Rank 0: new shared memory holding a copy of ``arrays``, and its mapping; or, as a
    string, why there is none. Close ``Offer.fd`` once every rank has attached."""
    size = layout(arrays)[1]
    try:
        fd = os.memfd_create("torchw2v-weights")
    except (AttributeError, OSError) as err:  # not Linux
        return f"no anonymous shared memory here ({err})"
    try:
        os.posix_fallocate(fd, 0, size)
        mapped = mmap.mmap(fd, size)
    except OSError as err:
        os.close(fd)
        return f"no room for the weights' {size:,} bytes in shared memory ({err})"
    token = os.urandom(TOKEN_BYTES)
    mapped[:TOKEN_BYTES] = token
    for view, array in zip(views(mapped, arrays), arrays, strict=True):
        np.copyto(view, array)
    return Offer(socket.gethostname(), os.getpid(), fd, token, size), mapped


def attach(offered: Offer) -> mmap.mmap | None:
    """Another rank: the mapping of rank 0's shared memory, or ``None`` where this rank cannot
    open that very memory (it runs on another machine, or may not open rank 0's files)."""
    if offered.host != socket.gethostname():
        return None
    try:
        fd = os.open(offered.path, os.O_RDWR | os.O_NONBLOCK)  # never wait on a FIFO
    except OSError:
        return None
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode) or found.st_size != offered.size:
            return None
        mapped = mmap.mmap(fd, offered.size)
    except OSError:
        return None
    finally:
        os.close(fd)
    if mapped[:TOKEN_BYTES] != offered.token:
        mapped.close()
        return None
    return mapped
