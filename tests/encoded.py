"""A streamed corpus read whole, for tests that compare encodings."""

from __future__ import annotations

import numpy as np

from torchw2v.corpus import StreamedCorpus


def whole(corpus: StreamedCorpus) -> tuple[np.ndarray, np.ndarray]:
    """Every id of ``corpus`` and its sentence offsets, from a plan of one chunk."""
    bounds, _ = corpus.plan(corpus.tokens + 1)
    chunks = list(corpus.chunks(bounds))
    if not chunks:  # no sentences
        return np.zeros(0, np.int32), np.zeros(1, np.int64)
    ((ids, offsets, start),) = chunks
    assert start == 0
    return ids, offsets
