"""The shared copy of the weights that ranks on one machine map (torchw2v.shared_memory)."""

from __future__ import annotations

import errno
import os
from dataclasses import replace

import numpy as np
import pytest

from torchw2v import shared_memory


@pytest.fixture
def arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = [(7, 3), (0, 3), (5, 3)]  # an empty syn1neg (negative=0) among them
    return [rng.standard_normal(shape).astype(np.float32) for shape in shapes]


def test_each_rank_maps_the_same_copy_and_sees_the_others_writes(arrays, tmp_path):
    offered, mapped = shared_memory.offer(arrays, str(tmp_path))
    theirs = shared_memory.attach(offered)
    assert theirs is not None
    mine, other = shared_memory.views(mapped, arrays), shared_memory.views(theirs, arrays)
    for a, m, o in zip(arrays, mine, other, strict=True):
        assert m.shape == a.shape and np.array_equal(m, a) and np.array_equal(o, a)
    other[2][4, 1] = 42.0
    assert mine[2][4, 1] == 42.0 and arrays[2][4, 1] != 42.0  # shared, not the original
    offsets, size = shared_memory.layout(arrays)
    assert all(offset % shared_memory.ALIGN == 0 for offset in offsets)
    assert os.path.getsize(offered.path) == size == offered.size


def test_a_file_that_is_not_rank_0s_copy_is_not_attached(arrays, tmp_path):
    offered, _ = shared_memory.offer(arrays, str(tmp_path))
    assert shared_memory.attach(replace(offered, token=bytes(16))) is None  # another run's
    assert shared_memory.attach(replace(offered, size=offered.size + 4)) is None
    assert shared_memory.attach(replace(offered, path=str(tmp_path / "elsewhere"))) is None


def test_no_room_for_the_copy_is_said_and_leaves_no_file(arrays, tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    why = shared_memory.offer(arrays, str(tmp_path))
    assert isinstance(why, str) and "no room" in why and "--shm-size" in why
    assert not list(tmp_path.iterdir())
    assert "no shared memory" in shared_memory.offer(arrays, str(tmp_path / "missing"))
