"""The compiled CPU engine (C++ op), checked against a NumPy replay of the same algorithm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchw2v.engines import compiled
from torchw2v.engines.base import ChunkStats, EngineConfig, SamplingTables

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
SCALE = np.float32(1000 / 12.0)


def _sigmoid(f: np.ndarray) -> np.ndarray:
    idx = ((f + np.float32(6)) * SCALE).astype(np.int64).clip(0, 999)
    return np.where(f >= 6, np.float32(1), np.where(f <= -6, np.float32(0), SIGMOID[idx]))


def _softplus_neg(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))


def _split(offsets: np.ndarray, workers: int) -> list[int]:
    n, s = int(offsets[-1]), len(offsets) - 1
    nw = max(1, min(workers, max(s, 1)))
    bounds = [0] + [s] * nw
    for w in range(1, nw):
        bounds[w] = max(int(np.searchsorted(offsets, n * w // nw, side="left")), bounds[w - 1])
    return bounds


def reference_train(
    syn0,
    syn1,
    ids,
    offsets,
    sample_int,
    cum_table,
    *,
    window,
    negative,
    shrink,
    alpha_start,
    alpha_end,
    seed,
    workers=1,
):
    """Train like the op, on NumPy copies, one worker after the other; return the stats."""
    cum = np.asarray(cum_table, dtype=np.int64)
    table_end = int(cum[-1]) if negative > 0 else 1
    base = _splitmix64(seed & MASK64)
    bounds = _split(offsets, workers)
    words = pairs = 0
    loss = 0.0
    for w in range(len(bounds) - 1):
        rng = _Lcg(_splitmix64((base + w) & MASK64))
        s_lo, s_hi = bounds[w], bounds[w + 1]
        tok_lo, tok_hi = int(offsets[s_lo]), int(offsets[s_hi])
        span = float(tok_hi - tok_lo) if tok_hi > tok_lo else 1.0
        for s in range(s_lo, s_hi):
            alpha = np.float32(
                alpha_start + (alpha_end - alpha_start) * (int(offsets[s]) - tok_lo) / span
            )
            kept = [int(t) for t in ids[offsets[s] : offsets[s + 1]] if rng.next() < sample_int[t]]
            n = len(kept)
            words += n
            if n < 2:
                continue
            reach, negs = [], []
            for _ in range(n):
                reach.append(window - rng.next() % window if shrink else window)
                draws = [rng.next() % table_end for _ in range(negative)]
                negs.append(np.searchsorted(cum, draws, side="left").astype(np.int64))
            for i in range(n):
                ctx = [
                    kept[j] for j in range(max(0, i - reach[i]), min(n, i + reach[i] + 1)) if j != i
                ]
                targets = np.concatenate([[kept[i]], negs[i]]).astype(np.int64)
                x, o = syn0[ctx], syn1[targets]  # (C, d), (T, d) copies: the old values
                f = x @ o.T  # (C, T)
                label = np.zeros(len(targets), np.float32)
                label[0] = 1
                valid = np.ones(len(targets), bool)
                valid[1:] = targets[1:] != kept[i]
                g = np.where(valid, (label - _sigmoid(f)) * alpha, np.float32(0))
                loss += float(np.where(valid, _softplus_neg(np.where(label > 0, f, -f)), 0).sum())
                np.add.at(syn0, ctx, g @ o)
                np.add.at(syn1, targets, g.T @ x)
                pairs += len(ctx)
    return ChunkStats(words=words, loss=loss, pairs=pairs)


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def init_vectors(vocab: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """gensim's initialisation: syn0 uniform in [-1/d, 1/d), syn1neg zeros."""
    rng = np.random.default_rng(seed)
    syn0 = rng.uniform(-1 / dim, 1 / dim, (vocab, dim)).astype(np.float32)
    return torch.from_numpy(syn0), torch.zeros(vocab, dim)


def unigram_cum_table(counts: np.ndarray, power: float = 0.75) -> torch.Tensor:
    """gensim's cumulative table over a domain of 2**31 - 1."""
    p = counts.astype(np.float64) ** power
    return torch.from_numpy(np.round(np.cumsum(p) / p.sum() * (2**31 - 1)).astype(np.int64))


def random_chunk(rng, vocab: int, sentences: int, lo: int = 1, hi: int = 12):
    lengths = rng.integers(lo, hi + 1, sentences)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    # a Zipf-ish corpus so that subsampling and negatives hit repeated words
    ids = np.minimum(rng.zipf(1.3, offsets[-1]) - 1, vocab - 1).astype(np.int32)
    return torch.from_numpy(ids), torch.from_numpy(offsets)


def run_op(
    syn0,
    syn1,
    ids,
    offsets,
    sample_int,
    cum_table,
    *,
    window=3,
    negative=3,
    shrink=True,
    alpha_start=0.05,
    alpha_end=0.01,
    seed=7,
    workers=1,
    compute_loss=True,
) -> ChunkStats:
    out = compiled.load_op()(
        syn0,
        syn1,
        ids,
        offsets,
        sample_int,
        cum_table,
        window,
        negative,
        shrink,
        alpha_start,
        alpha_end,
        seed,
        workers,
        compute_loss,
    )
    words, loss, pairs = out.tolist()
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
    return vocab, ids, offsets, sample_int, unigram_cum_table(counts)


# ----------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dim,window,negative,shrink,workers",
    [
        (10, 3, 3, True, 1),  # d not a multiple of the SIMD width: exercises the tail
        (16, 2, 5, False, 1),
        (8, 4, 12, True, 1),  # 13 targets: the generic (non-specialised) kernel
        (13, 12, 2, False, 1),  # more contexts than the fixed update kernel takes
        (21, 2, 4, True, 1),  # 8-lane blocks (on AVX), a 4-lane block and a scalar column
        (12, 5, 1, True, 3),  # three parts, replayed one after the other
        (10, 3, 0, True, 1),  # no negatives at all
    ],
)
def test_matches_numpy_reference(small, dim, window, negative, shrink, workers):
    vocab, ids, offsets, sample_int, cum_table = small
    syn0, syn1 = init_vectors(vocab, dim)
    # give syn1neg a start too, so the first updates are not all alike
    syn1 += 0.1 * init_vectors(vocab, dim, seed=1)[0]
    ref0, ref1 = syn0.numpy().copy(), syn1.numpy().copy()
    kwargs = dict(
        window=window,
        negative=negative,
        shrink=shrink,
        alpha_start=0.05,
        alpha_end=0.01,
        seed=11,
        workers=workers,
    )
    if workers > 1:
        # parts run concurrently in the op; on a 40-word vocabulary they share rows, so the
        # racy float values cannot be replayed, but everything counted can
        stats = run_op(syn0, syn1, ids, offsets, sample_int, cum_table, **kwargs)
        want = reference_train(
            ref0,
            ref1,
            ids.numpy(),
            offsets.numpy(),
            sample_int.numpy(),
            cum_table.numpy(),
            **{**kwargs, "shrink": shrink},
        )
        assert (stats.words, stats.pairs) == (want.words, want.pairs)
        assert stats.loss == pytest.approx(want.loss, rel=0.05)
        return
    stats = run_op(syn0, syn1, ids, offsets, sample_int, cum_table, **kwargs)
    want = reference_train(
        ref0, ref1, ids.numpy(), offsets.numpy(), sample_int.numpy(), cum_table.numpy(), **kwargs
    )
    assert stats.words == want.words
    assert stats.pairs == want.pairs
    assert 0 < stats.words < len(ids)  # some tokens were subsampled away
    assert stats.loss == pytest.approx(want.loss, rel=1e-4)
    np.testing.assert_allclose(syn0.numpy(), ref0, rtol=0, atol=2e-5)
    np.testing.assert_allclose(syn1.numpy(), ref1, rtol=0, atol=2e-5)
    assert not np.allclose(syn0.numpy(), init_vectors(vocab, dim)[0].numpy())


def test_deterministic_for_a_seed_with_one_worker(small):
    vocab, ids, offsets, sample_int, cum_table = small
    results = []
    for seed in (5, 5, 6):
        syn0, syn1 = init_vectors(vocab, 16)
        run_op(syn0, syn1, ids, offsets, sample_int, cum_table, seed=seed)
        results.append((syn0, syn1))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])
    assert not torch.equal(results[0][0], results[2][0])
    assert not torch.equal(results[0][1], results[2][1])


def test_engine_seeds_each_chunk_differently_and_reproducibly(small):
    vocab, ids, offsets, sample_int, cum_table = small
    tables = SamplingTables(sample_int, cum_table)

    def train(seed: int, chunks: int) -> tuple[torch.Tensor, list[ChunkStats]]:
        syn0, syn1 = init_vectors(vocab, 16)
        engine = compiled.CompiledEngine(
            syn0, syn1, tables, EngineConfig(window=3, negative=3, workers=1, seed=seed)
        )
        return syn0, [engine.train_chunk(ids, offsets, 0.025, 0.02) for _ in range(chunks)]

    syn0_a, stats_a = train(1, 3)
    syn0_b, stats_b = train(1, 3)
    assert torch.equal(syn0_a, syn0_b)
    assert stats_a == stats_b
    # the same chunk trained again draws a new stream: different subsampling/windows
    assert len({(s.words, s.pairs) for s in stats_a}) > 1
    assert compiled.chunk_seed(1, 0) != compiled.chunk_seed(1, 1)
    assert compiled.chunk_seed(1, 0) != compiled.chunk_seed(2, 0)
    # the first chunk of an engine is the op called with chunk_seed(seed, 0)
    syn0, syn1 = init_vectors(vocab, 16)
    op_stats = run_op(
        syn0,
        syn1,
        ids,
        offsets,
        sample_int,
        cum_table,
        alpha_start=0.025,
        alpha_end=0.02,
        seed=compiled.chunk_seed(1, 0),
        compute_loss=False,
    )
    assert op_stats == stats_a[0]


def test_windows_never_cross_sentences():
    vocab, dim = 6, 8
    sample_int = torch.full((vocab,), KEEP_ALL, dtype=torch.int64)
    cum_table = unigram_cum_table(np.ones(vocab))
    # one-word sentences: no pair at all, whatever the window
    ids = torch.arange(vocab, dtype=torch.int32).repeat(5)
    offsets = torch.arange(len(ids) + 1, dtype=torch.int64)
    syn0, syn1 = init_vectors(vocab, dim)
    before = syn0.clone()
    stats = run_op(syn0, syn1, ids, offsets, sample_int, cum_table, window=5, shrink=False)
    assert (stats.words, stats.pairs) == (len(ids), 0)
    assert torch.equal(syn0, before) and not syn1.any()
    # two-word sentences: exactly two pairs each, even with a window of 5
    offsets = torch.arange(0, len(ids) + 1, 2, dtype=torch.int64)
    stats = run_op(syn0, syn1, ids, offsets, sample_int, cum_table, window=5, shrink=False)
    assert (stats.words, stats.pairs) == (len(ids), len(ids))


def test_disjoint_sentences_do_not_touch_each_other():
    """Sentences over words {1..5} and {6..10}; negatives only ever draw word 0."""
    vocab, dim = 11, 8
    sample_int = torch.full((vocab,), KEEP_ALL, dtype=torch.int64)
    cum_table = torch.full((vocab,), 1000, dtype=torch.int64)  # all the mass on word 0
    rng = np.random.default_rng(0)
    first = rng.integers(1, 6, 30)
    second = rng.integers(6, 11, 30)
    ids = torch.from_numpy(np.concatenate([first, second]).astype(np.int32))
    offsets = torch.tensor([0, 30, 60])
    syn0, syn1 = init_vectors(vocab, dim)
    syn0_first_only = syn0.clone()
    syn1_first_only = syn1.clone()
    run_op(syn0, syn1, ids, offsets, sample_int, cum_table, window=5, workers=1)
    # train the first sentence alone from the same start, with the same random stream
    # (its draws come first): rows of the first sentence's words must end up identical
    run_op(
        syn0_first_only,
        syn1_first_only,
        ids[:30],
        offsets[:2],
        sample_int,
        cum_table,
        window=5,
        workers=1,
    )
    assert torch.equal(syn0[1:6], syn0_first_only[1:6])
    assert torch.equal(syn1[1:6], syn1_first_only[1:6])
    assert syn1[1:6].any()
    # the second sentence's words were trained, and its rows were not touched by the first
    assert not torch.equal(syn0[6:], syn0_first_only[6:])
    assert not syn1_first_only[6:].any()


def test_subsampled_word_is_never_trained(small):
    vocab, ids, offsets, _, _ = small
    dropped = 1
    sample_int = torch.full((vocab,), KEEP_ALL, dtype=torch.int64)
    sample_int[dropped] = 0
    counts = np.ones(vocab)
    counts[dropped] = 0  # zero mass: never drawn as a negative either
    cum_table = torch.from_numpy(np.cumsum(counts).astype(np.int64) * 1000)
    syn0, syn1 = init_vectors(vocab, 16)
    syn0_init = syn0.clone()
    assert (ids == dropped).sum() > 5
    stats = run_op(syn0, syn1, ids, offsets, sample_int, cum_table, window=5, negative=4)
    assert stats.words == int((ids != dropped).sum())
    assert torch.equal(syn0[dropped], syn0_init[dropped])
    assert not syn1[dropped].any()
    # every other word that occurs was trained
    seen = torch.unique(ids[ids != dropped]).long()
    assert not torch.isclose(syn0[seen], syn0_init[seen]).all(dim=1).any()


def test_learns_planted_clusters_with_two_workers():
    """Two clusters of 50 words that only co-occur within their cluster."""
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
    tables = SamplingTables(
        torch.full((vocab,), KEEP_ALL, dtype=torch.int64), unigram_cum_table(counts)
    )
    syn0, syn1 = init_vectors(vocab, dim)
    engine = compiled.CompiledEngine(
        syn0, syn1, tables, EngineConfig(window=5, negative=5, workers=2, seed=3)
    )
    ids_t, offsets_t = torch.from_numpy(ids), torch.from_numpy(offsets)
    total = ChunkStats()
    for epoch in range(3):
        total += engine.train_chunk(
            ids_t, offsets_t, 0.025 * (1 - epoch / 3), 0.025 * (1 - (epoch + 1) / 3) + 1e-4
        )
    assert total.words == 3 * len(ids)
    unit = torch.nn.functional.normalize(syn0, dim=1)
    cos = unit @ unit.T
    same = torch.zeros(vocab, vocab, dtype=torch.bool)
    same[:per, :per] = same[per:, per:] = True
    off_diagonal = ~torch.eye(vocab, dtype=torch.bool)
    within = cos[same & off_diagonal].mean().item()
    across = cos[~same].mean().item()
    assert within > across + 0.3, (within, across)


def test_loss_is_positive_and_decreases(small):
    vocab, ids, offsets, sample_int, cum_table = small
    tables = SamplingTables(sample_int, cum_table)
    syn0, syn1 = init_vectors(vocab, 16)
    engine = compiled.CompiledEngine(
        syn0,
        syn1,
        tables,
        EngineConfig(window=3, negative=4, workers=1, seed=2, compute_loss=True),
    )
    per_pair = []
    for _ in range(15):
        stats = engine.train_chunk(ids, offsets, 0.05, 0.05)
        assert math.isfinite(stats.loss) and stats.loss > 0
        per_pair.append(stats.loss / stats.pairs)
    # at the start every pair costs about (1 + K) * log 2 (all scores near 0)
    assert per_pair[0] == pytest.approx(5 * math.log(2), rel=0.1)
    assert per_pair[-1] < 0.9 * per_pair[0]
    assert np.mean(per_pair[-3:]) < np.mean(per_pair[3:6]) < np.mean(per_pair[:3])
    # without compute_loss the loss is not summed
    engine_no_loss = compiled.CompiledEngine(
        syn0, syn1, tables, EngineConfig(window=3, negative=4, seed=2, compute_loss=False)
    )
    assert engine_no_loss.train_chunk(ids, offsets, 0.05, 0.05).loss == 0.0


def test_empty_chunk(small):
    vocab, _, _, sample_int, cum_table = small
    syn0, syn1 = init_vectors(vocab, 8)
    stats = run_op(
        syn0,
        syn1,
        torch.zeros(0, dtype=torch.int32),
        torch.zeros(1, dtype=torch.int64),
        sample_int,
        cum_table,
        workers=2,
    )
    assert stats == ChunkStats(words=0, loss=0.0, pairs=0)


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
        (lambda a: {**a, "syn1": a["syn1"][:-1]}, "same shape"),
        (lambda a: {**a, "cum_table": a["cum_table"][:-1]}, "cum_table"),
        (lambda a: {**a, "cum_table": a["cum_table"].flip(0)}, "non-decreasing"),
        (lambda a: {**a, "window": 0}, "window"),
        (lambda a: {**a, "workers": 0}, "workers"),
    ],
)
def test_bad_inputs_raise(small, change, match):
    vocab, ids, offsets, sample_int, cum_table = small
    syn0, syn1 = init_vectors(vocab, 8)
    args = dict(
        syn0=syn0,
        syn1=syn1,
        ids=ids,
        offsets=offsets,
        sample_int=sample_int,
        cum_table=cum_table,
        window=3,
        workers=1,
    )
    args = change(args)
    with pytest.raises(RuntimeError, match=match):
        compiled.load_op()(
            args["syn0"],
            args["syn1"],
            args["ids"],
            args["offsets"],
            args["sample_int"],
            args["cum_table"],
            args["window"],
            3,
            True,
            0.025,
            0.0001,
            1,
            args["workers"],
            False,
        )


def test_engine_rejects_bad_tensors(small):
    vocab, _, _, sample_int, cum_table = small
    tables = SamplingTables(sample_int, cum_table)
    syn0, syn1 = init_vectors(vocab, 8)
    config = EngineConfig(window=3, negative=3)
    with pytest.raises(ValueError, match="float32"):
        compiled.CompiledEngine(syn0.double(), syn1, tables, config)
    with pytest.raises(ValueError, match="same shape"):
        compiled.CompiledEngine(syn0, syn1[:-1], tables, config)
    with pytest.raises(ValueError, match="contiguous"):
        compiled.CompiledEngine(syn0.t(), syn1.t(), tables, config)


def test_op_releases_the_gil(small):
    """A Python thread keeps running while the op trains in another thread."""
    import threading

    vocab, _, _, sample_int, cum_table = small
    rng = np.random.default_rng(0)
    ids, offsets = random_chunk(rng, vocab, 30_000, 5, 30)
    syn0, syn1 = init_vectors(vocab, 64)
    done = threading.Event()
    ticks = 0

    def train():
        run_op(syn0, syn1, ids, offsets, sample_int, cum_table, window=5, negative=5)
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
