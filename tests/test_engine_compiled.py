"""The compiled CPU engine (C++ op), checked against a NumPy replay of the same algorithm (its
random stream here, the update in tests/reference.py) and against gensim's own training where
both do the same arithmetic. What every engine must do is in tests/test_engine_contract.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from gensim.models import Word2Vec as GensimWord2Vec
from reference import Draws, gensim_paths, huffman_tables, reference_train, unigram_cum_table

from torchw2v.engines import compiled
from torchw2v.engines.base import ChunkStats, EngineConfig, EngineWeights, SamplingTables

if not compiled.is_available():  # pragma: no cover - depends on the machine's toolchain
    pytest.skip(
        "the compiled CPU engine cannot be built here (no C++ compiler/ninja?); "
        "see torchw2v.engines.compiled.load_op() for the reason",
        allow_module_level=True,
    )

KEEP_ALL = 2**32 - 1
MASK48 = (1 << 48) - 1
MASK64 = (1 << 64) - 1


# ----------------------------------------------------------------------------------------
# NumPy reference: the kernel's algorithm and random stream, one step at a time
# ----------------------------------------------------------------------------------------


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


class _Lcg:
    """word2vec.c's 48-bit LCG; a draw is ``state >> 16`` (gensim's ``random_int32``)."""

    def __init__(self, seed: int):
        self.state = seed & MASK48

    def next(self) -> int:
        r = self.state >> 16
        self.state = (self.state * 25214903917 + 11) & MASK48
        return r


def _sigmoid_table() -> np.ndarray:
    i = np.arange(1000, dtype=np.float64)
    e = np.exp((i / 1000 * 2 - 1) * 6.0).astype(np.float32)
    return e / (e + np.float32(1))


SIGMOID = _sigmoid_table()
SCALE = np.float32(83)  # 1000 / 6 / 2 in integer arithmetic, as word2vec.c and gensim


def _sigmoid(f: np.ndarray) -> np.ndarray:
    idx = ((f + np.float32(6)) * SCALE).astype(np.int64).clip(0, 999)
    return np.where(f >= 6, np.float32(1), np.where(f <= -6, np.float32(0), SIGMOID[idx]))


def _split(offsets: np.ndarray, workers: int) -> list[int]:
    n, s = int(offsets[-1]), len(offsets) - 1
    nw = max(1, min(workers, max(s, 1)))
    bounds = [0] + [s] * nw
    for w in range(1, nw):
        bounds[w] = max(int(np.searchsorted(offsets, n * w // nw, side="left")), bounds[w - 1])
    return bounds


@dataclass(frozen=True)
class Mode:
    """Architecture and objectives of one training run."""

    negative: int = 3
    hs: bool = False
    sg: bool = True
    cbow_mean: bool = True


def replay_draws(
    ids,
    offsets,
    sample_int,
    cum_table,
    *,
    mode,
    window,
    shrink,
    alpha_start,
    alpha_end,
    seed,
    workers=1,
):
    """The op's draws (each sentence's random stream, worker by worker) and each center's
    learning rate."""
    cum = np.asarray(cum_table, dtype=np.int64)
    negative = mode.negative
    table_end = int(cum[-1]) if negative > 0 else 1
    span = float(offsets[-1]) if offsets[-1] > 0 else 1.0
    bounds = _split(offsets, workers)
    kept_ids, starts, reaches, negatives, alphas = [], [], [], [], []
    for w in range(len(bounds) - 1):
        for s in range(bounds[w], bounds[w + 1]):
            rng = _Lcg(_splitmix64((seed + s) & MASK64))
            alpha = np.float32(alpha_start + (alpha_end - alpha_start) * int(offsets[s]) / span)
            kept = [int(t) for t in ids[offsets[s] : offsets[s + 1]] if rng.next() < sample_int[t]]
            n = len(kept)
            if n < 2:  # no draws for a sentence without a pair
                reaches += [window] * n
                negatives += [[0] * negative] * n
            for _ in range(n if n >= 2 else 0):
                reaches.append(window - rng.next() % window if shrink else window)
                draws = [rng.next() % table_end for _ in range(negative)]
                negatives.append(np.searchsorted(cum, draws, side="left").tolist())
            starts += [len(kept_ids)] * n
            kept_ids += kept
            alphas += [alpha] * n
    lengths = np.bincount(starts, minlength=len(kept_ids)) if kept_ids else np.zeros(0, int)
    ends = np.asarray(starts) + lengths[starts] if kept_ids else np.zeros(0, int)
    draws = Draws(
        np.asarray(kept_ids, dtype=np.int64),
        np.asarray(starts, dtype=np.int64),
        ends,
        np.asarray(reaches, dtype=np.int64),
        np.asarray(negatives, dtype=np.int64).reshape(len(kept_ids), negative),
    )
    return draws, np.asarray(alphas, dtype=np.float32)


def replay_op(
    syn0, syn1neg, syn1, ids, offsets, sample_int, cum_table, huffman=None, *, mode, **kwargs
):
    """Train like the op, on NumPy copies, one worker after the other; return the stats."""
    draws, alphas = replay_draws(ids, offsets, sample_int, cum_table, mode=mode, **kwargs)
    weights = {"syn0": syn0, "syn1neg": syn1neg, "syn1": syn1}
    cfg = EngineConfig(
        window=kwargs["window"],
        negative=mode.negative,
        sg=mode.sg,
        hs=mode.hs,
        cbow_mean=mode.cbow_mean,
    )
    loss, pairs = reference_train(
        weights, draws, cfg, huffman, alphas, sigmoid=_sigmoid, contexts_in_order=mode.hs
    )
    return ChunkStats(words=len(draws.words), loss=loss, pairs=pairs)


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def init_vectors(vocab: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """gensim's initialisation: syn0 uniform in [-1/d, 1/d), syn1neg zeros."""
    rng = np.random.default_rng(seed)
    syn0 = rng.uniform(-1 / dim, 1 / dim, (vocab, dim)).astype(np.float32)
    return torch.from_numpy(syn0), torch.zeros(vocab, dim)


def random_chunk(rng, vocab: int, sentences: int, lo: int = 1, hi: int = 12):
    lengths = rng.integers(lo, hi + 1, sentences)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    # a Zipf-ish corpus so that subsampling and negatives hit repeated words
    ids = np.minimum(rng.zipf(1.3, offsets[-1]) - 1, vocab - 1).astype(np.int32)
    return torch.from_numpy(ids), torch.from_numpy(offsets)


def run_op(
    syn0,
    syn1neg,
    ids,
    offsets,
    sample_int,
    cum_table,
    *,
    syn1=None,
    huffman=None,
    mode=Mode(),
    window=3,
    shrink=True,
    alpha_start=0.05,
    alpha_end=0.01,
    seed=7,
    workers=1,
    compute_loss=True,
) -> ChunkStats:
    """Call the op directly; ``huffman`` is ``(points, codes, lengths)`` as huffman_tables."""
    if huffman is None:
        points, codes, lengths = torch.empty(0, 0), torch.empty(0, 0), torch.empty(0)
    else:
        points, codes, lengths = huffman
    out = compiled.load_op()(
        syn0,
        syn1neg,
        syn0.new_empty(0, syn0.shape[1]) if syn1 is None else syn1,
        ids,
        offsets,
        sample_int,
        cum_table,
        points.int(),
        codes.to(torch.uint8),
        lengths.int(),
        window,
        mode.negative,
        mode.hs,
        mode.sg,
        mode.cbow_mean,
        shrink,
        alpha_start,
        alpha_end,
        seed,
        workers,
        compute_loss,
    )
    words, loss, pairs, _ = out.tolist()
    return ChunkStats(words=int(words), loss=loss, pairs=int(pairs))


@pytest.fixture(scope="module")
def small():
    """A 40-word vocabulary, a chunk of 60 short sentences, gensim-like tables."""
    vocab = 40
    rng = np.random.default_rng(3)
    ids, offsets = random_chunk(rng, vocab, 60)
    counts = np.bincount(ids.numpy(), minlength=vocab) + 1
    # keep-probabilities between ~0.3 and 1 so that subsampling drops some tokens
    keep = np.clip(np.sqrt(30 / counts), 0.3, 1.0)
    sample_int = torch.from_numpy((keep * KEEP_ALL).astype(np.int64))
    return vocab, ids, offsets, sample_int, unigram_cum_table(counts), huffman_tables(counts)


SG_NS = Mode()
CBOW_NS = Mode(sg=False)
CBOW_NS_SUM = Mode(sg=False, cbow_mean=False)
SG_HS = Mode(negative=0, hs=True)
CBOW_HS = Mode(negative=0, hs=True, sg=False)
CBOW_HS_SUM = Mode(negative=0, hs=True, sg=False, cbow_mean=False)
SG_HS_NS = Mode(negative=3, hs=True)
CBOW_HS_NS = Mode(negative=3, hs=True, sg=False)


def mode_id(mode: Mode) -> str:
    arch = "sg" if mode.sg else ("cbow_mean" if mode.cbow_mean else "cbow_sum")
    return "-".join(
        [arch] + (["hs"] if mode.hs else []) + ([f"ns{mode.negative}"] * bool(mode.negative))
    )


def start_vectors(vocab, dim, mode):
    """syn0, syn1neg ((0, d) without negatives) and syn1 (None without HS), all nonzero."""
    syn0, syn1neg = init_vectors(vocab, dim)
    # give the output vectors a start too, so the first updates are not all alike
    syn1neg += 0.1 * init_vectors(vocab, dim, seed=1)[0]
    syn1 = 0.1 * init_vectors(vocab, dim, seed=2)[0] if mode.hs else None
    return syn0, syn1neg if mode.negative else syn1neg[:0], syn1


# ----------------------------------------------------------------------------------------
# the op against the NumPy replay
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode,dim,window,shrink,workers",
    [
        (Mode(3), 10, 3, True, 1),  # d not a multiple of the SIMD width: exercises the tail
        (Mode(5), 16, 2, False, 1),
        (Mode(12), 8, 4, True, 1),  # 13 targets: the generic (non-specialised) kernel
        (Mode(16), 13, 3, True, 1),  # 17 targets: whole and partial generic blocks, d tails
        (Mode(2), 13, 12, False, 1),  # more contexts than the fixed update kernel takes
        (Mode(4), 21, 2, True, 1),  # 8-lane blocks (on AVX), a 4-lane block and a scalar column
        (Mode(1), 12, 5, True, 3),  # three parts, replayed one after the other
        (CBOW_NS, 10, 3, True, 1),
        (CBOW_NS_SUM, 21, 4, False, 1),
        (Mode(12, sg=False), 8, 13, True, 1),  # generic kernel, many contexts
        (SG_HS, 10, 3, True, 1),
        (SG_HS, 21, 12, False, 1),
        (CBOW_HS, 10, 3, True, 1),
        (CBOW_HS_SUM, 16, 5, False, 1),
        (SG_HS_NS, 12, 3, True, 1),
        (Mode(8, hs=True), 9, 4, True, 1),  # more than 11 targets with the path: generic
        (CBOW_HS_NS, 12, 3, True, 1),
        (CBOW_HS_NS, 12, 5, True, 3),
        (SG_HS, 8, 5, True, 2),
    ],
    ids=lambda v: mode_id(v) if isinstance(v, Mode) else None,
)
def test_matches_numpy_reference(small, mode, dim, window, shrink, workers):
    check_against_reference(small, mode, dim, window, shrink, workers)


def saturated_vectors(vocab: int, dim: int, mode: Mode) -> tuple:
    """syn0, syn1neg and syn1 (as start_vectors) whose every score is 8 +- 0.01 in magnitude:
    column 0 is 8 in syn0 and -+1 in the output rows, the other columns within +-0.02."""
    rng = np.random.default_rng(5)

    def rows(first) -> torch.Tensor:
        values = rng.uniform(-0.02, 0.02, (vocab, dim)).astype(np.float32)
        values[:, 0] = first
        return torch.from_numpy(values)

    def signs() -> np.ndarray:
        return rng.choice([-1.0, 1.0], vocab)

    syn1neg = rows(signs()) if mode.negative else torch.zeros(0, dim)
    return rows(8.0), syn1neg, rows(signs()) if mode.hs else None


@pytest.mark.parametrize(
    "mode", [SG_HS_NS, CBOW_HS_NS, Mode(3, sg=False, cbow_mean=False, hs=True)], ids=mode_id
)
@pytest.mark.parametrize("seed", [2, 11])
def test_saturated_scores_match_the_reference(small, mode, seed):
    """Every score beyond -+6, by a margin no rounding or update of the chunk crosses: NS
    saturates (the gradient is 0 or -+alpha), HS skips every node, as the reference does.

    (Vectors merely large, with some scores near -+6 or a step of the sigmoid table, make the
    result hang on how each implementation rounds: one score on the other side of a step, and
    the difference spreads.)"""
    vectors = saturated_vectors(small[0], 16, mode)
    syn0, syn1neg, syn1 = vectors
    assert (syn0 @ syn1neg.T).abs().min() > 7.9 and (syn0 @ syn1.T).abs().min() > 7.9
    syn1_start = syn1.clone()
    stats, want, ref = train_both(small, mode, 3, True, 1, vectors, alpha=2.5e-5, seed=seed)
    assert stats.loss == pytest.approx(want.loss, rel=1e-5)
    np.testing.assert_allclose(syn0.numpy(), ref[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(syn1neg.numpy(), ref[1], rtol=1e-5, atol=1e-6)
    assert torch.equal(syn1, syn1_start)  # every node beyond -+6: skipped
    moved = (syn1neg - saturated_vectors(small[0], 16, mode)[1]).abs().amax(dim=1)
    assert (moved > 1e-5).float().mean() > 0.5  # the saturated NS updates were applied
    assert (syn0 @ syn1neg.T).abs().min() > 6.5  # still beyond -+6 at the end


def train_both(small, mode, window, shrink, workers, vectors, alpha, seed):
    """Train the chunk of ``small`` from ``vectors`` with the op, and a copy with the NumPy
    replay; return both stats and the replay's (syn0, syn1neg, syn1) arrays."""
    vocab, ids, offsets, sample_int, cum_table, huffman = small
    syn0, syn1neg, syn1 = vectors
    ref = [t.numpy().copy() for t in (syn0, syn1neg, syn1 if mode.hs else syn1neg[:0])]
    alpha_start, alpha_end = alpha if isinstance(alpha, tuple) else (alpha, alpha)
    kwargs = dict(
        window=window, shrink=shrink, alpha_start=alpha_start, alpha_end=alpha_end, seed=seed
    )
    stats = run_op(
        syn0,
        syn1neg,
        ids,
        offsets,
        sample_int,
        cum_table,
        syn1=syn1,
        huffman=huffman,
        mode=mode,
        workers=workers,
        **kwargs,
    )
    want = replay_op(
        *ref,
        ids.numpy(),
        offsets.numpy(),
        sample_int.numpy(),
        cum_table.numpy(),
        tuple(t.numpy() for t in huffman),
        mode=mode,
        workers=workers,
        **kwargs,
    )
    assert (stats.words, stats.pairs) == (want.words, want.pairs)
    assert 0 < stats.words < len(ids)  # some tokens were subsampled away
    return stats, want, ref


def sentences_part(ids, offsets, alpha_start, alpha_end, part, parts):
    """Part ``part`` of ``parts`` of a chunk, cut between sentences at about equal tokens:
    its ids, offsets, rates at its first token and past its last, and first sentence."""
    tokens = int(offsets[-1])
    cuts = torch.tensor([tokens * part // parts, tokens * (part + 1) // parts])
    lo, hi = torch.searchsorted(offsets, cuts).tolist()
    hi = offsets.numel() - 1 if part == parts - 1 else hi
    first, last = int(offsets[lo]), int(offsets[hi])
    step = (alpha_end - alpha_start) / tokens
    part_offsets = offsets[lo : hi + 1] - first
    return ids[first:last], part_offsets, alpha_start + step * first, alpha_start + step * last, lo


@pytest.mark.parametrize("mode", [SG_NS, CBOW_NS, SG_HS, CBOW_HS_NS], ids=mode_id)
@pytest.mark.parametrize("parts", [2, 3, 7])
def test_a_chunk_trained_part_by_part_is_the_chunk_trained_whole(small, mode, parts):
    """Each sentence draws from its own stream at the chunk's rate for it: parts passed with
    their first sentence and rates (as chunks of stripes are) train what one call does, and
    threads draw as one thread does."""
    vocab, ids, offsets, sample_int, cum_table, huffman = small
    tables = {"huffman": huffman if mode.hs else None, "mode": mode, "seed": 2**63 - 5}
    whole = start_vectors(vocab, 12, mode)
    stats = run_op(whole[0], whole[1], ids, offsets, sample_int, cum_table, syn1=whole[2], **tables)
    cut = start_vectors(vocab, 12, mode)
    words = pairs = 0
    for part in range(parts):
        part_ids, part_offsets, alpha_start, alpha_end, first = sentences_part(
            ids, offsets, 0.05, 0.01, part, parts
        )
        seed = (tables["seed"] + first + 2**63) % 2**64 - 2**63  # chunk_seed's sum, mod 2**64
        got = run_op(
            cut[0], cut[1], part_ids, part_offsets, sample_int, cum_table, syn1=cut[2],
            **{**tables, "seed": seed}, alpha_start=alpha_start, alpha_end=alpha_end,
        )  # fmt: skip
        words, pairs = words + got.words, pairs + got.pairs
    assert (words, pairs) == (stats.words, stats.pairs)
    for mine, theirs in zip(cut, whole, strict=True):
        if theirs is not None:
            np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)
    threads = start_vectors(vocab, 12, mode)
    raced = run_op(threads[0], threads[1], ids, offsets, sample_int, cum_table, syn1=threads[2],
                   **tables, workers=parts)  # fmt: skip
    assert (raced.words, raced.pairs) == (stats.words, stats.pairs)


def check_against_reference(small, mode, dim, window, shrink, workers):
    vocab = small[0]
    syn0, syn1neg, syn1 = start_vectors(vocab, dim, mode)
    vectors = (syn0, syn1neg, syn1)
    stats, want, ref = train_both(small, mode, window, shrink, workers, vectors, (0.05, 0.01), 11)
    if workers > 1:
        # parts run concurrently in the op; on a 40-word vocabulary they share rows, so the
        # racy float values cannot be replayed, but everything counted can
        assert stats.loss == pytest.approx(want.loss, rel=0.05)
        return
    assert stats.loss == pytest.approx(want.loss, rel=1e-4)
    np.testing.assert_allclose(syn0.numpy(), ref[0], rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(syn1neg.numpy(), ref[1], rtol=1e-4, atol=2e-5)
    if mode.hs:
        np.testing.assert_allclose(syn1.numpy(), ref[2], rtol=1e-4, atol=2e-5)
        assert not np.allclose(syn1.numpy(), start_vectors(vocab, dim, mode)[2].numpy())
    assert not np.allclose(syn0.numpy(), init_vectors(vocab, dim)[0].numpy())


def test_pairs_count_contexts_in_skipgram_and_centers_in_cbow(small):
    vocab, ids, offsets, sample_int, cum_table, huffman = small
    stats = {}
    for mode in (SG_NS, CBOW_NS, SG_HS_NS, CBOW_HS_NS):
        syn0, syn1neg, syn1 = start_vectors(vocab, 8, mode)
        stats[mode] = run_op(
            syn0,
            syn1neg,
            ids,
            offsets,
            sample_int,
            cum_table,
            syn1=syn1,
            huffman=huffman,
            mode=mode,
        )
    # the same draws whatever the architecture and with or without HS (it draws nothing)
    assert len({(s.words) for s in stats.values()}) == 1
    assert stats[SG_NS].pairs == stats[SG_HS_NS].pairs
    assert stats[CBOW_NS].pairs == stats[CBOW_HS_NS].pairs
    # CBOW: kept words of sentences that keep two or more; skip-gram: about 2-3 per center
    assert stats[CBOW_NS].pairs < stats[CBOW_NS].words < stats[SG_NS].pairs
    assert stats[CBOW_HS_NS].loss > stats[CBOW_NS].loss  # the HS terms come on top


# ----------------------------------------------------------------------------------------
# the op against gensim's own training, where both do the same arithmetic
# ----------------------------------------------------------------------------------------

TOY = [
    "the quick brown fox jumps over the lazy dog".split(),
    "a quick brown dog runs past the lazy fox".split(),
    "the dog and the fox are friends".split(),
    "lazy afternoons make the quick fox slow".split(),
]


def gensim_twin(sentences, mode, window, seed=4):
    """A gensim model (no subsampling, no window shrinking, constant alpha) and the op's
    arguments for the same start: copies of its vectors (syn1 and syn1neg made nonzero) and
    tables of its vocabulary. Negatives, gensim's and the op's, are all word 0."""
    model = GensimWord2Vec(
        vector_size=12,
        window=window,
        min_count=1,
        sample=0,
        shrink_windows=False,
        sg=int(mode.sg),
        hs=int(mode.hs),
        negative=mode.negative,
        cbow_mean=int(mode.cbow_mean),
        alpha=0.05,
        min_alpha=0.05,
        workers=1,
        seed=seed,
    )
    model.build_vocab(sentences)
    vocab = len(model.wv)
    rng = np.random.default_rng(seed)
    if mode.hs:
        model.syn1[:] = rng.uniform(-0.3, 0.3, model.syn1.shape)
    if mode.negative:
        model.syn1neg[:] = rng.uniform(-0.3, 0.3, model.syn1neg.shape)
        model.cum_table = np.full(vocab, 1000, dtype=np.uint32)  # all the mass on word 0
    index = model.wv.key_to_index
    args = dict(
        syn0=torch.tensor(model.wv.vectors),
        syn1neg=torch.tensor(model.syn1neg) if mode.negative else torch.zeros(0, 12),
        syn1=torch.tensor(model.syn1) if mode.hs else None,
        ids=torch.tensor([index[w] for s in sentences for w in s], dtype=torch.int32),
        offsets=torch.from_numpy(np.cumsum([0] + [len(s) for s in sentences]).astype(np.int64)),
        sample_int=torch.full((vocab,), 2**32, dtype=torch.int64),  # keep every word
        cum_table=torch.full((vocab,), 1000, dtype=torch.int64),
        huffman=gensim_paths(model.wv) if mode.hs else None,
    )
    return model, args


def train_twins(sentences, mode, window):
    """One pass of gensim and of the op from the same start: the start (syn0), the gensim
    model, the op's (updated) arguments and its stats."""
    model, args = gensim_twin(sentences, mode, window)
    start = model.wv.vectors.copy()
    stats = run_op(**args, mode=mode, window=window, shrink=False, alpha_start=0.05, alpha_end=0.05)
    model.train(sentences, total_examples=len(sentences), epochs=1, compute_loss=True)
    assert not np.allclose(model.wv.vectors, start)
    return start, model, args, stats


def assert_loss_like_gensims(loss: float, model: GensimWord2Vec) -> None:
    """gensim sums table logarithms log(sigmoid) read at int((f + 6) * 83), i.e. at a score
    about 0.03 below f: each term, near f = 0, about 2% above the exact -log(sigmoid(f))."""
    theirs = model.get_latest_training_loss()
    assert 0.96 * theirs < loss < theirs


@pytest.mark.parametrize(
    "mode",
    [CBOW_HS, CBOW_HS_SUM, Mode(1, sg=False), Mode(1, sg=False, cbow_mean=False)],
    ids=mode_id,
)
def test_cbow_matches_gensim(mode):
    """CBOW with HS alone or one negative: gensim reads every output row of a center before
    it writes it, as the op does, so the two agree to float rounding."""
    _, model, ours, stats = train_twins(TOY, mode, window=3)
    np.testing.assert_allclose(ours["syn0"].numpy(), model.wv.vectors, rtol=0, atol=1e-6)
    if mode.hs:
        np.testing.assert_allclose(ours["syn1"].numpy(), model.syn1, rtol=0, atol=1e-6)
    else:
        np.testing.assert_allclose(ours["syn1neg"].numpy(), model.syn1neg, rtol=0, atol=1e-6)
    assert stats.pairs == sum(len(s) for s in TOY)  # every word of a CBOW sentence
    assert_loss_like_gensims(stats.loss, model)


@pytest.mark.parametrize("mode", [SG_HS, Mode(1)], ids=mode_id)
def test_skipgram_matches_gensim_on_word_pairs(mode):
    """Two-word sentences: each center has one context, so gensim's per-pair updates and the
    op's per-center matrix product are the same arithmetic."""
    rng = np.random.default_rng(0)
    words = "alpha beta gamma delta epsilon zeta eta theta".split()
    pairs = [list(rng.choice(words, 2, replace=False)) for _ in range(60)]
    _, model, ours, stats = train_twins(pairs, mode, window=2)
    np.testing.assert_allclose(ours["syn0"].numpy(), model.wv.vectors, rtol=0, atol=1e-6)
    out, gensim_out = (ours["syn1"], model.syn1) if mode.hs else (ours["syn1neg"], model.syn1neg)
    np.testing.assert_allclose(out.numpy(), gensim_out, rtol=0, atol=1e-6)
    assert stats.pairs == 2 * len(pairs)
    assert_loss_like_gensims(stats.loss, model)


def test_skipgram_hs_matches_gensim_on_whole_sentences():
    """Skip-gram with HS trains a center's contexts one after the other, as gensim does:
    whole windows agree to float rounding."""
    _, model, ours, stats = train_twins(TOY, SG_HS, window=3)
    np.testing.assert_allclose(ours["syn0"].numpy(), model.wv.vectors, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours["syn1"].numpy(), model.syn1, rtol=0, atol=1e-6)
    assert_loss_like_gensims(stats.loss, model)


@pytest.mark.parametrize("mode", [Mode(3), SG_HS_NS, CBOW_HS_NS], ids=mode_id)
def test_close_to_gensim_where_the_order_differs(mode):
    """Where gensim updates pair after pair (skip-gram with NS: the contexts of a center,
    each with its own negatives; HS with NS: HS first), the op takes one step from the
    center's values: the same updates to first order in alpha."""
    start, model, ours, _ = train_twins(TOY, mode, window=3)
    want = model.wv.vectors - start
    got = ours["syn0"].numpy() - start
    assert np.linalg.norm(got - want) < 0.1 * np.linalg.norm(want)


# ----------------------------------------------------------------------------------------
# properties of the op and the engine
# ----------------------------------------------------------------------------------------


def test_engine_seeds_a_chunk_with_chunk_seed_of_its_first_sentence(small):
    """A chunk from the run's sentence ``f`` is the op called with ``chunk_seed(seed, f)``
    (that seeds give reproducible, resumable streams is in tests/test_engine_contract.py)."""
    vocab, ids, offsets, sample_int, cum_table, _ = small
    tables = SamplingTables(sample_int, cum_table)
    syn0, syn1 = init_vectors(vocab, 16)
    engine = compiled.CompiledEngine(
        EngineWeights(syn0, syn1), tables, EngineConfig(window=3, negative=3, workers=1, seed=1)
    )
    firsts = (0, len(offsets) - 1)  # the same sentences, in the first and second epoch
    stats = [engine.train_chunk(ids, offsets, 0.025, 0.02, first) for first in firsts]
    assert stats[0] != stats[1]
    assert compiled.chunk_seed(1, 0) != compiled.chunk_seed(2, 0)
    syn0_op, syn1_op = init_vectors(vocab, 16)
    for k, first in enumerate(firsts):
        op_stats = run_op(
            syn0_op,
            syn1_op,
            ids,
            offsets,
            sample_int,
            cum_table,
            alpha_start=0.025,
            alpha_end=0.02,
            seed=compiled.chunk_seed(1, first),
            compute_loss=False,
        )
        assert op_stats == stats[k]
    assert torch.equal(syn0, syn0_op)


def test_engine_passes_every_setting_to_the_op(small):
    """CompiledEngine with CBOW, HS and NS trains like the op called directly."""
    vocab, ids, offsets, sample_int, cum_table, huffman = small
    mode = Mode(negative=2, hs=True, sg=False, cbow_mean=True)
    # hs, sg, cbow_mean, shrink_windows: alternate values, so a swap of neighbours shows
    config = EngineConfig(
        window=4,
        negative=2,
        shrink_windows=False,
        seed=9,
        compute_loss=True,
        sg=False,
        hs=True,
        cbow_mean=True,
    )
    points, codes, lengths = huffman
    engine_vectors = start_vectors(vocab, 8, mode)
    engine = compiled.CompiledEngine(
        EngineWeights(*engine_vectors),
        SamplingTables(sample_int, cum_table, points, codes, lengths),
        config,
    )
    got = engine.train_chunk(ids, offsets, 0.04, 0.02)
    syn0, syn1neg, syn1 = start_vectors(vocab, 8, mode)
    want = run_op(
        syn0,
        syn1neg,
        ids,
        offsets,
        sample_int,
        cum_table,
        syn1=syn1,
        huffman=huffman,
        mode=mode,
        window=4,
        shrink=False,
        alpha_start=0.04,
        alpha_end=0.02,
        seed=compiled.chunk_seed(9, 0),
    )
    assert got == want
    for a, b in zip(engine_vectors, (syn0, syn1neg, syn1)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("mode", [SG_NS, CBOW_NS, CBOW_NS_SUM, SG_HS, CBOW_HS], ids=mode_id)
def test_learns_planted_clusters_with_two_workers(mode):
    """Two clusters of 50 words that only co-occur within their cluster: after 3 epochs each
    word's nearest neighbours are words of its own cluster."""
    rng = np.random.default_rng(0)
    vocab, dim, per = 100, 32, 50
    lengths = rng.integers(8, 20, 4000)
    cluster = rng.integers(0, 2, len(lengths))
    ids = np.concatenate(
        [rng.integers(0, per, n) + per * c for n, c in zip(lengths, cluster)]
    ).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    assert len(ids) > 50_000
    counts = np.bincount(ids, minlength=vocab)
    points, codes, path_lengths = huffman_tables(counts)
    tables = SamplingTables(
        torch.full((vocab,), KEEP_ALL, dtype=torch.int64),
        unigram_cum_table(counts),
        points,
        codes,
        path_lengths,
    )
    syn0, syn1neg = init_vectors(vocab, dim)
    config = EngineConfig(
        window=5,
        negative=mode.negative,
        workers=2,
        seed=3,
        sg=mode.sg,
        hs=mode.hs,
        cbow_mean=mode.cbow_mean,
    )
    weights = EngineWeights(
        syn0,
        syn1neg if mode.negative else syn1neg[:0],
        torch.zeros(vocab, dim) if mode.hs else None,
    )
    engine = compiled.CompiledEngine(weights, tables, config)
    ids_t, offsets_t = torch.from_numpy(ids), torch.from_numpy(offsets)
    total = ChunkStats()
    for epoch in range(3):
        total += engine.train_chunk(
            ids_t, offsets_t, 0.025 * (1 - epoch / 3), 0.025 * (1 - (epoch + 1) / 3) + 1e-4
        )
    assert total.words == 3 * len(ids)
    # cosines around the mean vector: CBOW with the sum gives every word a common part
    unit = torch.nn.functional.normalize(syn0 - syn0.mean(dim=0), dim=1)
    cos = unit @ unit.T
    same = torch.zeros(vocab, vocab, dtype=torch.bool)
    same[:per, :per] = same[per:, per:] = True
    off_diagonal = ~torch.eye(vocab, dtype=torch.bool)
    within = cos[same & off_diagonal].mean().item()
    across = cos[~same].mean().item()
    assert within > across + 0.3, (within, across)
    # each word's 10 nearest neighbours (itself left out) are from its own cluster
    neighbours = cos.masked_fill(~off_diagonal, -2).topk(10, dim=1).indices  # (V, 10)
    own = same.gather(1, neighbours).float().mean().item()
    assert own > 0.95, own


def test_hs_loss_starts_at_path_length_times_log_2():
    """With syn1 = 0 every node scores 0 and costs log 2 until it is trained: a one-sentence
    chunk whose words' paths share no node costs sum(path lengths) * log 2 in CBOW."""
    counts = np.array([8, 4, 2, 1])  # paths: 0 -> [2], 1 -> [2, 1], 2, 3 -> [2, 1, 0]
    points, codes, lengths = huffman_tables(counts)
    ids = torch.tensor([3, 0], dtype=torch.int32)  # paths [2, 1, 0] and [2]: they share 2
    syn0, _ = init_vectors(4, 8)
    stats = run_op(
        syn0,
        torch.zeros(0, 8),
        ids,
        torch.tensor([0, 2]),
        torch.full((4,), KEEP_ALL),
        torch.zeros(4, dtype=torch.int64),
        syn1=torch.zeros(4, 8),
        huffman=(points, codes, lengths),
        mode=CBOW_HS,
        window=1,
        shrink=False,
    )
    assert lengths.tolist() == [1, 2, 3, 3]
    # the first center's 3 nodes cost log 2 each; the second's shared node 2 has moved
    assert stats.pairs == 2
    assert stats.loss == pytest.approx(4 * math.log(2), abs=0.01)
    assert stats.loss != pytest.approx(4 * math.log(2), abs=1e-9)


def _bad_huffman(index: int, value: int):
    def change(a):
        tables = list(a["huffman"])
        tables[index] = tables[index].clone()
        tables[index].view(-1)[0] = value
        return {**a, "huffman": tuple(tables)}

    return change


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda a: {**a, "ids": a["ids"].long()}, "int32"),
        (lambda a: {**a, "offsets": a["offsets"][:-1]}, "end at"),
        (lambda a: {**a, "offsets": a["offsets"].int()}, "int64"),
        (lambda a: {**a, "ids": a["ids"].clone().fill_(40)}, "out of range"),
        (lambda a: {**a, "ids": a["ids"].clone().fill_(-1)}, "out of range"),
        (lambda a: {**a, "syn0": a["syn0"].double()}, "float32"),
        (lambda a: {**a, "syn0": a["syn0"].t().contiguous().t()}, "contiguous"),
        (lambda a: {**a, "syn1neg": a["syn1neg"][:-1]}, "syn1neg must be"),
        (lambda a: {**a, "syn1": a["syn1"][:, :-1]}, "syn1 must be"),
        (lambda a: {**a, "cum_table": a["cum_table"][:-1]}, "cum_table"),
        (lambda a: {**a, "cum_table": a["cum_table"].flip(0)}, "non-decreasing"),
        (lambda a: {**a, "window": 0}, "window"),
        (lambda a: {**a, "workers": 0}, "workers"),
        (lambda a: {**a, "mode": Mode(negative=0)}, "nothing to train"),
        (_bad_huffman(0, 40), "points"),
        (_bad_huffman(1, 2), "codes"),
        (_bad_huffman(2, 99), "lengths"),
        (lambda a: {**a, "huffman": (a["huffman"][0][:, :-1],) + a["huffman"][1:]}, "codes"),
        (lambda a: {**a, "huffman": a["huffman"][:2] + (a["huffman"][2][:-1],)}, "lengths"),
    ],
)
def test_bad_inputs_raise(small, change, match):
    vocab, ids, offsets, sample_int, cum_table, huffman = small
    syn0, syn1neg, syn1 = start_vectors(vocab, 8, SG_HS_NS)
    args = dict(
        syn0=syn0,
        syn1neg=syn1neg,
        syn1=syn1,
        huffman=huffman,
        ids=ids,
        offsets=offsets,
        sample_int=sample_int,
        cum_table=cum_table,
        window=3,
        workers=1,
        mode=SG_HS_NS,
    )
    with pytest.raises(RuntimeError, match=match):
        run_op(**change(args))


def test_engine_converts_the_huffman_tables_once(small):
    """HS alone: syn1neg may be (0, d); the tables are converted to the op's dtypes once (the
    checks of the engine's arguments are in tests/test_engine_contract.py)."""
    vocab, _, _, sample_int, cum_table, huffman = small
    hs_tables = SamplingTables(sample_int, cum_table, *huffman)
    syn0, syn1 = init_vectors(vocab, 8)
    hs_only = EngineConfig(window=3, negative=0, hs=True)
    engine = compiled.CompiledEngine(
        EngineWeights(syn0, syn1[:0], syn1.clone()), hs_tables, hs_only
    )
    assert (engine.points.dtype, engine.codes.dtype, engine.lengths.dtype) == (
        torch.int32,
        torch.uint8,
        torch.int32,
    )


def test_op_releases_the_gil(small):
    """A Python thread keeps running while the op trains in another thread."""
    import threading

    vocab, _, _, sample_int, cum_table, _ = small
    rng = np.random.default_rng(0)
    ids, offsets = random_chunk(rng, vocab, 30_000, 5, 30)
    syn0, syn1 = init_vectors(vocab, 64)
    done = threading.Event()
    ticks = 0

    def train():
        run_op(syn0, syn1, ids, offsets, sample_int, cum_table, window=5, mode=Mode(5))
        done.set()

    thread = threading.Thread(target=train)
    thread.start()
    while not done.is_set():
        ticks += 1
        done.wait(0.001)
    thread.join()
    # with the GIL held by the op this loop could not have run while it trained
    assert ticks > 5


def test_build_failure_reports_the_compiler_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "cache"))
    broken = tmp_path / "broken.cpp"
    broken.write_text("this is not C++;\n")
    with pytest.raises(Exception) as info:
        compiled._compile("torchw2v_broken_for_test", broken)
    line = compiled.summarize_reason(str(info.value))
    assert "error" in line.lower() and "broken.cpp" in line


def test_can_be_disabled_by_environment(monkeypatch):
    monkeypatch.setenv(compiled.DISABLE_ENV, "1")
    op, reason = compiled._load.__wrapped__()
    assert op is None and compiled.DISABLE_ENV in reason
