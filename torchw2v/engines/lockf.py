"""gensim's ``wv.vectors_lockf``: per-word factors on the input-vector updates, for any engine.

A factor of 0 freezes a word's vector (e.g. pretrained vectors kept as they are), 1 trains it
normally, values between damp its updates. gensim applies the factor inside every update; here
the rows with a factor other than 1 are saved before each chunk and their change over the
chunk is scaled afterwards, which is exact for frozen rows and leaves the engines untouched.
"""

from __future__ import annotations

import torch

from .base import ChunkStats, Engine


class LockedRows:
    """Wraps an engine so that ``syn0`` row ``w`` moves by ``lockf[w]`` times its update.

    Parameters
    ----------
    engine : Engine
        The engine doing the training.
    syn0 : torch.Tensor
        ``(V, d)`` input vectors the engine updates.
    lockf : torch.Tensor
        ``(V,)`` float32 factors, or ``(1,)`` for one factor for every word (gensim's default
        ``[1.0]``).
    """

    def __init__(self, engine: Engine, syn0: torch.Tensor, lockf: torch.Tensor):
        self.engine, self.syn0 = engine, syn0
        factors = lockf.to(syn0.device, torch.float32).expand(len(syn0))  # (V,)
        self.rows = torch.nonzero(factors != 1).flatten()  # (R,)
        self.factors = factors[self.rows, None]  # (R, 1)

    def train_chunk(
        self,
        ids: torch.Tensor,
        offsets: torch.Tensor,
        alpha_start: float,
        alpha_end: float,
        first_sentence: int = 0,
    ) -> ChunkStats:
        before = self.syn0[self.rows]  # (R, d), a copy
        stats = self.engine.train_chunk(ids, offsets, alpha_start, alpha_end, first_sentence)
        self.syn0[self.rows] = before + self.factors * (self.syn0[self.rows] - before)
        return stats
