"""The shared copy of the weights that ranks on one machine map (torchw2v.shared_memory)."""

from __future__ import annotations

import errno
import os
from dataclasses import replace

import numpy as np
import pytest

from torchw2v import shared_memory

pytestmark = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="needs memfd_create")


@pytest.fixture
def arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = [(7, 3), (0, 3), (5, 3)]  # an empty syn1neg (negative=0) among them
    return [rng.standard_normal(shape).astype(np.float32) for shape in shapes]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_each_rank_maps_the_same_copy_and_sees_the_others_writes(arrays):
    offered, mapped = shared_memory.offer(arrays)
    theirs = shared_memory.attach(offered)
    os.close(offered.fd)  # what rank 0 does once every rank has attached: the maps live on
    assert theirs is not None
    mine, other = shared_memory.views(mapped, arrays), shared_memory.views(theirs, arrays)
    for a, m, o in zip(arrays, mine, other, strict=True):
        assert m.shape == a.shape and np.array_equal(m, a) and np.array_equal(o, a)
    other[2][4, 1] = 42.0
    assert mine[2][4, 1] == 42.0 and arrays[2][4, 1] != 42.0  # shared, not the original
    offsets, size = shared_memory.layout(arrays)
    assert all(offset % shared_memory.ALIGN == 0 for offset in offsets)
    assert size == offered.size == len(mapped)


def test_memory_that_is_not_rank_0s_copy_is_not_attached(arrays, tmp_path):
    offered, _ = shared_memory.offer(arrays)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    try:
        assert shared_memory.attach(replace(offered, token=bytes(16))) is None  # another run
        assert shared_memory.attach(replace(offered, size=offered.size + 4)) is None
        assert shared_memory.attach(replace(offered, host="elsewhere")) is None
        assert shared_memory.attach(replace(offered, pid=2**22 + 1)) is None  # no such process
        fifo_fd = os.open(fifo, os.O_RDWR)
        try:  # another process's file that is no shared memory: refused, without waiting
            assert shared_memory.attach(replace(offered, fd=fifo_fd)) is None
        finally:
            os.close(fifo_fd)
    finally:
        os.close(offered.fd)


def test_no_room_for_the_copy_is_said_and_leaves_nothing_open(arrays, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(os, "posix_fallocate", full)
    before = open_fds()
    why = shared_memory.offer(arrays)
    assert isinstance(why, str) and "no room" in why and "bytes" in why
    assert open_fds() == before
