"""The random draws that turn a chunk into training examples, written once.

word2vec makes three random choices before any update, as word2vec.c and gensim make them:

1. **subsampling**: a token of word ``w`` is kept when a uniform uint32 is below
   ``sample_int[w]``; windows then run over the kept words only;
2. **reduced windows**: each center's effective window is ``window - b`` for ``b`` uniform in
   ``0..window-1`` (with ``shrink_windows``), else ``window``;
3. **negatives**: ``K`` words per center from the unigram^ns_exponent distribution,
   ``searchsorted(cum_table, r)`` for ``r`` uniform in ``[0, cum_table[-1])``, shared by all
   of that center's contexts.

The torch and Triton engines draw them here, on their device, from one ``torch.Generator``
reseeded per chunk (:func:`~.base.chunk_seed`), always in this order: subsampling for the
whole chunk, then windows and negatives (the Triton engine for the whole chunk at once, the
torch engine batch by batch). The compiled CPU op makes the same draws in C++ from
word2vec.c's generator.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .base import check_chunk, chunk_seed

UINT32_RANGE = 2**32
"""Subsampling draws are uniform in ``[0, UINT32_RANGE)``, gensim's ``sample_int`` scale."""


def start_chunk(
    ids: torch.Tensor,
    offsets: torch.Tensor,
    vocab_size: int,
    generator: torch.Generator,
    seed: int,
    first_sentence: int,
) -> torch.Tensor:
    """Check a chunk (:func:`~.base.check_chunk`) and seed ``generator`` for it, a chunk
    from the run's sentence ``first_sentence`` of an engine seeded with ``seed``
    (:func:`~.base.chunk_seed`). Returns the offsets on the CPU."""
    offsets = check_chunk(ids, offsets, vocab_size)
    generator.manual_seed(chunk_seed(seed, first_sentence) % 2**64)
    return offsets


class KeptWords(NamedTuple):
    """A chunk after subsampling: the kept words and the sentence each one lies in."""

    words: torch.Tensor  # (M,) int64 kept ids, in corpus order
    starts: torch.Tensor  # (M,) int64: kept position i lies in the kept sentence
    ends: torch.Tensor  # (M,) int64 [starts[i], ends[i])


def subsample(
    ids: torch.Tensor, offsets: torch.Tensor, sample_int: torch.Tensor, generator: torch.Generator
) -> KeptWords:
    """Drop frequent words from a chunk; give each kept word the bounds of its sentence.

    Parameters
    ----------
    ids : torch.Tensor
        ``(N,)`` int32 or int64 vocabulary ids, sentences back to back.
    offsets : torch.Tensor
        ``(S + 1,)`` int64 sentence boundaries, from 0 to N.
    sample_int : torch.Tensor
        ``(V,)`` int64 keep thresholds, on the generator's device.
    generator : torch.Generator
        The chunk's random stream; takes ``N`` draws.
    """
    device = sample_int.device
    ids = ids.to(device, torch.int64)
    n, s = ids.numel(), offsets.numel() - 1
    r = torch.randint(UINT32_RANGE, (n,), generator=generator, device=device)  # (N,)
    keep = r < sample_int[ids]  # (N,)
    lengths = offsets.to(device).diff()  # (S,)
    sentence = torch.repeat_interleave(torch.arange(s, device=device), lengths, output_size=n)
    sentence = sentence[keep]  # (M,) sentence of each kept token
    kept_offsets = F.pad(torch.bincount(sentence, minlength=s).cumsum(0), (1, 0))  # (S + 1,)
    return KeptWords(ids[keep], kept_offsets[sentence], kept_offsets[sentence + 1])


def reduced_windows(
    count: int, window: int, shrink: bool, generator: torch.Generator
) -> torch.Tensor:
    """``(count,)`` int64 effective windows in ``1..window``: ``window - b``, ``b`` uniform in
    ``0..window-1`` when ``shrink``; ``window`` (no draw) otherwise."""
    device = generator.device
    if not shrink:
        return torch.full((count,), window, dtype=torch.int64, device=device)
    return window - torch.randint(window, (count,), generator=generator, device=device)


def negatives(
    count: int,
    negative: int,
    cum_table: torch.Tensor,
    table_end: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """``(count, negative)`` int64 words drawn from the unigram^ns_exponent distribution:
    ``bisect_left(cum_table, r)`` for ``r`` uniform in ``[0, table_end)`` (``table_end`` is
    ``cum_table[-1]``, passed so that no draw waits on the device). No draw when
    ``negative == 0``."""
    device = cum_table.device
    if negative == 0:
        return torch.empty((count, 0), dtype=torch.int64, device=device)
    draws = torch.randint(table_end, (count, negative), generator=generator, device=device)
    return torch.searchsorted(cum_table, draws)
