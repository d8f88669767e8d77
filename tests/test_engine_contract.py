"""The engine contract (:class:`torchw2v.engines.base.Engine`), checked on every engine.

Each check below takes an engine kind, ``"torch"``, ``"compiled"`` (the C++ op on CPU) or
``"triton"`` (the GPU kernel, run on CPU through Triton's interpreter in a child process,
see tests/interpreter.py), and asserts what any engine must do: windows stay inside
sentences, subsampled words are never trained, an empty chunk trains nothing, a seed fixes
the result (one worker) and the chunk index resumes it, predictions are counted as documented,
the loss is the summed ``-log sigmoid``, and bad inputs are refused with errors naming them.
How each engine computes its update is checked against tests/reference.py in its own file.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import interpreter
import numpy as np
import pytest
import torch
from reference import KEEP_ALL, make_tables, one_thread  # noqa: F401 (an autouse fixture)

from torchw2v.engines.base import (
    ChunkStats,
    EngineConfig,
    EngineWeights,
    SamplingTables,
    check_chunk,
)

ENGINES = ("torch", "compiled", "triton")
OBJECTIVES = {
    "sg_ns": {},
    "cbow_ns": {"sg": False},
    "cbow_sum_ns": {"sg": False, "cbow_mean": False},
    "sg_hs": {"hs": True, "negative": 0},
    "cbow_hs": {"sg": False, "hs": True, "negative": 0},
    "sg_hs_ns": {"hs": True},
    "cbow_hs_ns": {"sg": False, "hs": True},
}
"""Objectives as EngineConfig settings (3 negatives unless ``negative`` says otherwise)."""
BATCH = 16
"""Centers per torch batch and per Triton program: on a 40-word vocabulary a batch of all the
chunk's centers (the torch engine's default) updates the frequent words too often at once."""
Weights = dict[str, torch.Tensor]


def config(objective: str, **settings) -> EngineConfig:
    """Test settings for ``objective``; its own settings win over ``settings``."""
    base = {"window": 3, "negative": 3, "seed": 7, "compute_loss": True}
    return EngineConfig(**{**base, **settings, **OBJECTIVES[objective]})


def make_engine(kind: str, weights: Weights, tables: SamplingTables, cfg: EngineConfig):
    """The engine ``kind`` on ``weights``, passing each output matrix only where ``cfg``
    trains it (``syn1neg`` as ``(0, d)`` without negative sampling)."""
    syn1neg = weights["syn1neg"] if cfg.negative else weights["syn1neg"][:0]
    syn1 = weights["syn1"] if cfg.hs else None
    return build(kind, EngineWeights(weights["syn0"], syn1neg, syn1), tables, cfg)


def build(kind, weights, tables, cfg):
    """``Engine(weights, tables, cfg)`` of the engine ``kind``."""
    if kind == "torch":
        from torchw2v.engines.torch_engine import TorchEngine

        return TorchEngine(weights, tables, cfg, batch_centers=BATCH)
    if kind == "compiled":
        from torchw2v.engines import compiled

        if not compiled.is_available():
            pytest.skip("the compiled CPU engine cannot be built here")
        return compiled.CompiledEngine(weights, tables, cfg)
    from torchw2v.engines.triton_engine import TritonEngine

    return TritonEngine(weights, tables, cfg, centers=BATCH)


def start_weights(vocab: int, dim: int, seed: int = 0, outputs: float = 0.1) -> Weights:
    """syn0 as gensim starts it; syn1neg and syn1 ``outputs`` times as large (0: zeros)."""
    rng = np.random.default_rng(seed)

    def uniform() -> torch.Tensor:
        return torch.from_numpy(rng.uniform(-1 / dim, 1 / dim, (vocab, dim)).astype(np.float32))

    syn0 = uniform()
    return {"syn0": syn0, "syn1neg": outputs * uniform(), "syn1": outputs * uniform()}


def copies(weights: Weights) -> Weights:
    return {name: t.clone() for name, t in weights.items()}


def chunk(lengths, ids) -> tuple[torch.Tensor, torch.Tensor]:
    """int32 ids and int64 offsets of sentences of ``lengths`` words."""
    offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    return torch.as_tensor(np.asarray(ids), dtype=torch.int32), offsets


@functools.cache
def small() -> tuple[int, torch.Tensor, torch.Tensor, SamplingTables]:
    """A 40-word vocabulary, 60 short sentences of Zipf-ish words, gensim-like tables whose
    subsampling keeps between ~30% and all of a word's tokens."""
    vocab = 40
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 13, 60)
    ids = np.minimum(rng.zipf(1.3, lengths.sum()) - 1, vocab - 1)
    counts = np.bincount(ids, minlength=vocab) + 1
    keep = np.clip(np.sqrt(30 / counts), 0.3, 1.0)
    sample_int = (keep * (KEEP_ALL - 1)).astype(np.int64)
    return vocab, *chunk(lengths, ids), make_tables(counts, sample_int)


# ----------------------------------------------------------------------------------------
# the checks: each takes the engine kind
# ----------------------------------------------------------------------------------------


def check_windows_stay_inside_sentences(kind: str) -> None:
    """One-word sentences have no pair, whatever the window; two-word sentences have exactly
    two predictions each; and two sentences over disjoint words train each other's words not
    at all."""
    vocab, dim = 11, 8
    tables = make_tables(np.arange(vocab) + 1.0)
    for objective in ("sg_ns", "cbow_ns", "cbow_hs"):
        cfg = config(objective, window=5, shrink_windows=False)
        weights = start_weights(vocab, dim)
        before = copies(weights)
        engine = make_engine(kind, weights, tables, cfg)
        ids, offsets = chunk([1] * 30, np.arange(30) % vocab)
        stats = engine.train_chunk(ids, offsets, 0.05, 0.05)
        assert (stats.words, stats.pairs) == (30, 0), objective
        for name in weights:
            assert torch.equal(weights[name], before[name]), (objective, name)
        stats = engine.train_chunk(ids, torch.arange(0, 31, 2), 0.05, 0.05)
        assert (stats.words, stats.pairs) == (30, 30), objective

    # sentences over words {1..5} and {6..10}; every negative is word 0
    every_negative_is_0 = torch.full((vocab,), 1000, dtype=torch.int64)
    tables = SamplingTables(tables.sample_int, every_negative_is_0)
    rng = np.random.default_rng(0)
    words = np.concatenate([rng.integers(1, 6, 30), rng.integers(6, 11, 30)])
    for objective in ("sg_ns", "cbow_ns"):
        cfg = config(objective, window=5, shrink_windows=False)
        both, first_only = start_weights(vocab, dim), start_weights(vocab, dim)
        make_engine(kind, both, tables, cfg).train_chunk(*chunk([30, 30], words), 0.05, 0.05)
        make_engine(kind, first_only, tables, cfg).train_chunk(*chunk([30], words[:30]), 0.05, 0.05)
        assert torch.equal(both["syn0"][1:6], first_only["syn0"][1:6]), objective
        assert torch.equal(both["syn1neg"][1:6], first_only["syn1neg"][1:6]), objective
        assert not torch.equal(both["syn0"][6:], first_only["syn0"][6:]), objective
        start = start_weights(vocab, dim)
        assert torch.equal(first_only["syn1neg"][6:], start["syn1neg"][6:]), objective


def check_subsampled_words_are_never_trained(kind: str) -> None:
    vocab, ids, offsets, tables = small()
    dropped = 1
    sample_int = torch.full((vocab,), KEEP_ALL, dtype=torch.int64)
    sample_int[dropped] = 0
    counts = np.ones(vocab)
    counts[dropped] = 0  # zero mass: never drawn as a negative either
    cum_table = torch.from_numpy(np.cumsum(counts).astype(np.int64) * 1000)
    tables = SamplingTables(sample_int, cum_table, tables.points, tables.codes, tables.lengths)
    assert (ids == dropped).sum() > 5
    for objective in ("sg_ns", "cbow_ns", "sg_hs", "cbow_hs_ns"):
        weights = start_weights(vocab, 16)
        before = copies(weights)
        engine = make_engine(kind, weights, tables, config(objective, window=5))
        stats = engine.train_chunk(ids, offsets, 0.05, 0.01)
        assert stats.words == int((ids != dropped).sum()), objective
        assert torch.equal(weights["syn0"][dropped], before["syn0"][dropped]), objective
        assert torch.equal(weights["syn1neg"][dropped], before["syn1neg"][dropped]), objective
        # every other word that occurs was trained
        seen = torch.unique(ids[ids != dropped]).long()
        unchanged = torch.isclose(weights["syn0"][seen], before["syn0"][seen]).all(dim=1)
        assert not unchanged.any(), objective


def check_empty_chunk(kind: str) -> None:
    vocab, _, _, tables = small()
    for objective in ("sg_hs_ns", "cbow_ns"):
        weights = start_weights(vocab, 8)
        before = copies(weights)
        engine = make_engine(kind, weights, tables, config(objective))
        empty = (torch.zeros(0, dtype=torch.int32), torch.zeros(1, dtype=torch.int64))
        assert engine.train_chunk(*empty, 0.1, 0.1) == ChunkStats(), objective
        for name in weights:
            assert torch.equal(weights[name], before[name]), (objective, name)


def check_seeds(kind: str) -> None:
    """With one worker a seed fixes the vectors and the stats; a chunk's streams follow its
    first sentence's index in the run (the same sentences in a later epoch draw anew), so a
    fresh engine resumes the streams of an interrupted run."""
    vocab, ids, offsets, tables = small()
    for objective in ("sg_ns", "cbow_sum_ns", "sg_hs", "cbow_hs_ns"):

        def train(seed: int, chunks: int = 2, weights=None, done: int = 0, objective=objective):
            weights = weights or start_weights(vocab, 16)
            engine = make_engine(kind, weights, tables, config(objective, seed=seed))
            sentences = len(offsets) - 1  # each chunk: the corpus, one epoch after another
            stats = [
                engine.train_chunk(ids, offsets, 0.025, 0.02, epoch * sentences)
                for epoch in range(done, chunks)
            ]
            return weights, stats

        (a, stats_a), (b, stats_b), (c, _) = train(5), train(5), train(6)
        for name in a:
            assert torch.equal(a[name], b[name]), (objective, name)
        assert stats_a == stats_b, objective
        assert not torch.equal(a["syn0"], c["syn0"]), objective
        # the same chunk trained again draws a new stream: other kept words and windows
        assert (stats_a[0].words, stats_a[0].pairs) != (stats_a[1].words, stats_a[1].pairs)
        first, _ = train(5, chunks=1)
        resumed, stats_r = train(5, chunks=2, weights=first, done=1)
        assert stats_r == stats_a[1:], objective
        for name in a:
            assert torch.equal(resumed[name], a[name]), (objective, name)


def check_pair_counts(kind: str) -> None:
    """Skip-gram trains (center, context) pairs; CBOW trains centers that have a context."""
    sentences = [[0, 1, 2, 3, 4, 5, 1, 2], [3], [4, 5, 0, 1, 2, 2, 0, 1, 3, 4, 5, 0], [1, 2]]
    lengths = [len(s) for s in sentences]
    ids = sum(sentences, [])
    tables = make_tables(np.ones(6))
    window = 2
    window_pairs = sum(min(i, window) + min(n - 1 - i, window) for n in lengths for i in range(n))
    centers_with_context = sum(n for n in lengths if n > 1)
    for objective, expected in (("sg_hs", window_pairs), ("cbow_ns", centers_with_context)):
        cfg = config(objective, window=window, shrink_windows=False)
        stats = make_engine(kind, start_weights(6, 8), tables, cfg).train_chunk(
            *chunk(lengths, ids), 0.05, 0.05
        )
        assert (stats.words, stats.pairs) == (len(ids), expected), objective


def check_loss(kind: str) -> None:
    """The loss is log 2 per target while the output vectors are 0, decreases as the vectors
    learn two topics, and is 0.0 without ``compute_loss``."""
    rng = np.random.default_rng(0)
    vocab, per_topic = 16, 8  # sentences of 8 words, each from one topic of 8 words
    words = np.concatenate([rng.integers(0, per_topic, 8) + per_topic * (s % 2) for s in range(40)])
    ids, offsets = chunk([8] * 40, words)
    tables = make_tables(np.arange(vocab, 0, -1) * 10.0)
    for objective in ("sg_ns", "cbow_ns", "sg_hs", "cbow_hs_ns"):
        cfg = config(objective)
        weights = start_weights(vocab, 16, outputs=0.0)
        engine = make_engine(kind, weights, tables, cfg)
        # at alpha=1e-4 the vectors barely move: each prediction costs log 2 per target, 1 + K
        # with negative sampling (fewer where a negative is the center), the center's path
        # length with hierarchical softmax
        first = engine.train_chunk(ids, offsets, 1e-4, 1e-4)
        path = tables.lengths[ids.long()].double().mean().item()
        targets = (1 + cfg.negative if cfg.negative else 0) + (path if cfg.hs else 0)
        assert first.loss / first.pairs == pytest.approx(targets * math.log(2), rel=0.1)
        per_pair = []
        for _ in range(6):
            stats = engine.train_chunk(ids, offsets, 0.05, 0.05)
            assert math.isfinite(stats.loss) and stats.loss > 0, objective
            per_pair.append(stats.loss / stats.pairs)
        assert per_pair[-1] < 0.9 * per_pair[0], objective
        assert np.mean(per_pair[-3:]) < np.mean(per_pair[:3]), objective
        silent = EngineConfig(**{**cfg.__dict__, "compute_loss": False})
        stats = make_engine(kind, weights, tables, silent).train_chunk(ids, offsets, 0.05, 0.05)
        assert stats.loss == 0.0 and stats.pairs > 0, objective


def check_a_huge_window_costs_the_longest_sentence(kind: str) -> None:
    """window=10**9 trains as the longest sentence's window does."""
    vocab, lengths = 12, (3, 9, 1)
    ids = np.random.default_rng(2).integers(0, vocab, sum(lengths))
    tables = make_tables(np.ones(vocab))
    trained = []
    for window in (10**9, max(lengths) - 1):
        weights = start_weights(vocab, 8)
        cfg = config("sg_hs_ns", window=window, shrink_windows=False)
        make_engine(kind, weights, tables, cfg).train_chunk(*chunk(lengths, ids), 0.2, 0.1)
        trained.append(weights)
    for name in trained[0]:
        assert torch.equal(trained[0][name], trained[1][name]), name


def check_bad_chunks_are_refused(kind: str) -> None:
    vocab = 10
    weights = start_weights(vocab, 8)
    before = copies(weights)
    engine = make_engine(kind, weights, make_tables(np.ones(vocab)), config("sg_hs_ns"))
    ids = torch.arange(6, dtype=torch.int32)
    cases = [
        (ids.float(), torch.tensor([0, 6]), "int32"),
        (ids, torch.tensor([0, 5]), "end at"),
        (ids, torch.tensor([0, 4, 2, 6]), "non-decreasing|decrease"),
        (ids, torch.tensor([0, 6], dtype=torch.int32), "int64"),
        (torch.tensor([0, 10, 1], dtype=torch.int32), torch.tensor([0, 3]), "out of range"),
        (torch.tensor([0, -1, 1], dtype=torch.int32), torch.tensor([0, 3]), "out of range"),
    ]
    for bad_ids, bad_offsets, message in cases:  # the compiled op's are RuntimeErrors
        with pytest.raises((ValueError, RuntimeError), match=message):
            engine.train_chunk(bad_ids, bad_offsets, 0.025, 0.02)
    for name in weights:
        assert torch.equal(weights[name], before[name]), name


def check_non_finite_weights_raise_the_divergence_error(kind: str) -> None:
    for objective in ("sg_ns", "sg_hs", "cbow_hs_ns"):
        for value in (float("nan"), float("inf")):
            weights = start_weights(10, 8)
            weights["syn0"][3] = value
            engine = make_engine(kind, weights, make_tables(np.ones(10)), config(objective))
            ids, offsets = chunk([10], np.arange(10))
            with pytest.raises(FloatingPointError, match=r"alpha=0\.5 is too high.*alpha=0\.05"):
                engine.train_chunk(ids, offsets, 0.5, 0.4)


def check_bad_settings_are_refused(kind: str) -> None:
    """Every engine checks its arguments the same way (engines.base.check_engine)."""
    tables = make_tables(np.arange(4, 0, -1))
    w = start_weights(4, 8)
    syn0, syn1neg, syn1 = w["syn0"], w["syn1neg"], w["syn1"]
    bare = SamplingTables(tables.sample_int, tables.cum_table)

    def engine(cfg, syn0=syn0, syn1neg=syn1neg, syn1=None, tables=tables):
        return build(kind, EngineWeights(syn0, syn1neg, syn1), tables, cfg)

    points, codes, lengths = tables.points, tables.codes, tables.lengths
    short_paths = SamplingTables(tables.sample_int, tables.cum_table, points[:3], codes, lengths)
    short_sample = SamplingTables(tables.sample_int[:3], tables.cum_table)
    lacks = r"tables.points.*lacks \['points', 'codes', 'lengths'\]"
    cases = [
        (config("sg_ns", negative=0), {}, "nothing to train.*negative > 0.*hs=True"),
        (config("sg_ns", negative=-1), {}, "negative >= 0"),
        (config("sg_ns", window=0), {}, "window >= 1"),
        (config("sg_hs"), {}, "needs syn1"),
        (config("sg_ns"), {"syn1": syn1}, "hs=0"),
        (config("sg_ns"), {"syn0": syn0.double()}, "float32"),
        (config("sg_ns"), {"syn1neg": syn1neg[:3]}, "syn0 and syn1neg must have the same shape"),
        (config("sg_hs"), {"syn1": syn1[:3]}, "syn0 and syn1 must have the same shape"),
        (config("sg_ns"), {"syn0": syn0.t(), "syn1neg": syn1neg.t()}, "contiguous"),
        (config("sg_hs"), {"syn1": syn1, "tables": bare}, lacks),
        (config("sg_hs"), {"syn1": syn1, "tables": short_paths}, r"\(V, L\)"),
        (config("sg_ns"), {"tables": short_sample}, r"sample_int must be \(4,\)"),
    ]
    for bad in (
        SamplingTables(tables.sample_int, tables.cum_table, points + 4, codes, lengths),
        SamplingTables(tables.sample_int, tables.cum_table, points, codes + 2, lengths),
        SamplingTables(tables.sample_int, tables.cum_table, points, codes, lengths + 9),
    ):
        cases.append((config("sg_hs"), {"syn1": syn1, "tables": bad}, "out of range"))
    for cfg, arguments, message in cases:
        with pytest.raises(ValueError, match=message):
            engine(cfg, **arguments)


def check_a_one_word_vocabulary_trains(kind: str) -> None:
    """One word has no Huffman path: hierarchical softmax has nothing to train, and says so
    by training nothing, not by failing."""
    weights = start_weights(1, 8)
    before = copies(weights)
    cfg = config("sg_hs", window=2)
    stats = make_engine(kind, weights, make_tables(np.ones(1)), cfg).train_chunk(
        *chunk([4], [0, 0, 0, 0]), 0.05, 0.05
    )
    assert stats.words == 4 and stats.pairs > 0
    assert torch.equal(weights["syn0"], before["syn0"])


CHECKS: dict[str, Callable[[str], None]] = {
    "windows_stay_inside_sentences": check_windows_stay_inside_sentences,
    "subsampled_words_are_never_trained": check_subsampled_words_are_never_trained,
    "empty_chunk": check_empty_chunk,
    "seeds": check_seeds,
    "pair_counts": check_pair_counts,
    "loss": check_loss,
    "a_huge_window_costs_the_longest_sentence": check_a_huge_window_costs_the_longest_sentence,
    "bad_chunks_are_refused": check_bad_chunks_are_refused,
    "non_finite_weights_raise_the_divergence_error": (
        check_non_finite_weights_raise_the_divergence_error
    ),
    "bad_settings_are_refused": check_bad_settings_are_refused,
    "a_one_word_vocabulary_trains": check_a_one_word_vocabulary_trains,
}


@pytest.fixture(scope="module")
def triton_results() -> dict[str, str]:
    """The checks run on the Triton engine once, in a child with TRITON_INTERPRET=1."""
    pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    return interpreter.results(__file__)


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("kind", ENGINES)
def test_contract(kind, check, request):
    if kind == "triton":
        interpreter.assert_ok(request.getfixturevalue("triton_results")[check])
    else:
        CHECKS[check](kind)


def test_check_chunk_returns_cpu_offsets():
    off = check_chunk(torch.arange(4, dtype=torch.int32), torch.tensor([0, 1, 4]), 4)
    assert off.device.type == "cpu" and off.tolist() == [0, 1, 4]
    with pytest.raises(ValueError, match="found 4"):
        check_chunk(torch.arange(5, dtype=torch.int32), torch.tensor([0, 5]), 4)


if __name__ == "__main__":
    interpreter.report({name: functools.partial(check, "triton") for name, check in CHECKS.items()})
