"""The vectorised torch engine, every architecture and objective, against the NumPy reference
(tests/reference.py) with the engine's batch semantics: every update of a batch is computed
from the vectors at the batch's start. The Huffman tree, subsampling thresholds and
negative-sampling table come from gensim itself. What every engine must do is in
tests/test_engine_contract.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gensim.models import Word2Vec as GensimWord2Vec
from reference import (  # one_thread: an autouse fixture
    full_windows,
    gensim_paths,
    one_thread,  # noqa: F401
    reference_train,
)

from torchw2v.engines import torch_engine
from torchw2v.engines.base import EngineConfig, EngineWeights, SamplingTables, chunk_seed
from torchw2v.engines.batches import UINT32_RANGE
from torchw2v.engines.torch_engine import TorchEngine

KEEP_ALL = 2**32  # subsampling keeps a word when a uniform uint32 is below its threshold
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# (sg, hs, negative, cbow_mean): every architecture with every objective
SETUPS = [
    (1, 1, 0, 1),
    (0, 1, 0, 1),
    (0, 1, 0, 0),
    (1, 0, 3, 1),
    (0, 0, 3, 1),
    (0, 0, 3, 0),
    (1, 1, 3, 1),
    (0, 1, 3, 0),
]
SETUP_IDS = [
    f"{'sg' if sg else 'cbow'}-{'hs' if hs else ''}{'ns' if k else ''}"
    + ("" if sg else "-mean" if mean else "-sum")
    for sg, hs, k, mean in SETUPS
]


# ----------------------------------------------------------------------------------------
# Vocabulary and tables from gensim
# ----------------------------------------------------------------------------------------


def gensim_vocabulary(sentences: list[list[str]], sample: float = 0.0) -> GensimWord2Vec:
    """A gensim model with the vocabulary, Huffman tree and tables built, not trained."""
    model = GensimWord2Vec(vector_size=4, hs=1, negative=5, min_count=1, sample=sample)
    model.build_vocab(sentences)
    return model


def sampling_tables(model: GensimWord2Vec, device: str, keep_all: bool = True) -> SamplingTables:
    points, codes, lengths = (t.numpy() for t in gensim_paths(model.wv))
    sample_int = model.wv.expandos["sample_int"].astype(np.int64)
    if keep_all:
        sample_int[:] = KEEP_ALL
    return SamplingTables(
        *(
            torch.from_numpy(a).to(device)
            for a in (sample_int, model.cum_table.astype(np.int64), points, codes, lengths)
        )
    )


def encode(model: GensimWord2Vec, sentences: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids ``(N,)`` int32 and sentence offsets ``(S + 1,)`` int64."""
    ids = np.array([model.wv.key_to_index[w] for s in sentences for w in s], dtype=np.int32)
    offsets = np.cumsum([0] + [len(s) for s in sentences]).astype(np.int64)
    return ids, offsets


# ----------------------------------------------------------------------------------------
# The engine's random stream, replayed
# ----------------------------------------------------------------------------------------


def engine_negatives(seed, device, n, batch, negative, cum_table) -> list[np.ndarray]:
    """The negatives the engine draws in its first chunk: its stream with subsampling first,
    then per batch.

    Valid with ``shrink_windows=False`` (otherwise window draws come before each batch's).
    """
    gen = torch.Generator(device=device).manual_seed(chunk_seed(seed, 0) % 2**64)
    torch.randint(UINT32_RANGE, (n,), generator=gen, device=device)  # subsampling
    table = torch.from_numpy(cum_table.astype(np.int64)).to(device)
    negatives = []
    for lo in range(0, n, batch):
        b = min(batch, n - lo)
        draws = torch.randint(int(table[-1]), (b, negative), generator=gen, device=device)
        negatives.append(torch.searchsorted(table, draws).cpu().numpy())
    return negatives


# ----------------------------------------------------------------------------------------
# One chunk against the reference
# ----------------------------------------------------------------------------------------

TOY = [
    "the cat sat on the mat with the dog".split(),
    "a".split(),  # a center without context
    "the dog ate the cat food and the bird sang on the mat".split(),
    "bird food".split(),
]


@pytest.fixture(scope="module")
def toy_vocab() -> GensimWord2Vec:
    return gensim_vocabulary(TOY)


def run_engine(toy_vocab, device, setup, batch):
    sg, hs, negative, cbow_mean = setup
    cfg = EngineConfig(
        window=2,
        negative=negative,
        shrink_windows=False,
        seed=7,
        compute_loss=True,
        sg=bool(sg),
        hs=bool(hs),
        cbow_mean=bool(cbow_mean),
    )
    rng = np.random.default_rng(0)
    v, d = len(toy_vocab.wv), 6
    start = {
        "syn0": rng.normal(0, 0.5, (v, d)),
        "syn1neg": rng.normal(0, 0.5, (v if negative else 0, d)),
        "syn1": rng.normal(0, 0.5, (v, d)),
    }
    tensors = {k: torch.tensor(a, dtype=torch.float32, device=device) for k, a in start.items()}
    tables = sampling_tables(toy_vocab, device)
    weights = EngineWeights(tensors["syn0"], tensors["syn1neg"], tensors["syn1"] if hs else None)
    engine = TorchEngine(weights, tables, cfg, batch_centers=batch)
    ids, offsets = encode(toy_vocab, TOY)
    stats = engine.train_chunk(torch.from_numpy(ids), torch.from_numpy(offsets), 0.2, 0.1)

    n = len(ids)
    alphas = 0.2 + (0.1 - 0.2) * (np.arange(n) // batch * batch) / n  # per batch
    negatives = engine_negatives(cfg.seed, device, n, batch, negative, toy_vocab.cum_table)
    draws = full_windows(ids, offsets, cfg.window, np.concatenate(negatives))
    expected = {k: a.copy() for k, a in start.items()}
    huffman = tuple(t.numpy() for t in gensim_paths(toy_vocab.wv))
    loss, pairs = reference_train(expected, draws, cfg, huffman, alphas, group=batch)
    return stats, tensors, start, expected, (pairs, loss)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [1024, 5], ids=["one-batch", "batches-of-5"])
@pytest.mark.parametrize("setup", SETUPS, ids=SETUP_IDS)
def test_one_chunk_matches_reference(toy_vocab, device, setup, batch):
    stats, got, start, expected, (pairs, loss) = run_engine(toy_vocab, device, setup, batch)
    for name in ("syn0", "syn1neg", "syn1"):
        np.testing.assert_allclose(got[name].cpu().numpy(), expected[name], atol=2e-6, err_msg=name)
    assert not np.allclose(expected["syn0"], start["syn0"])
    assert stats.words == sum(map(len, TOY))
    assert stats.pairs == pairs
    assert stats.loss == pytest.approx(loss, rel=1e-5)


@pytest.mark.parametrize("setup", [(1, 1, 0, 1), (0, 1, 0, 1)], ids=["sg-hs", "cbow-hs"])
def test_hs_alone_leaves_negative_sampling_alone(toy_vocab, setup):
    stats, got, start, *_ = run_engine(toy_vocab, "cpu", setup, 1024)
    assert got["syn1neg"].shape == (0, 6)
    assert not np.allclose(got["syn1"].numpy(), start["syn1"])


def test_negative_sampling_moves_only_drawn_rows(toy_vocab):
    _, got, start, *_ = run_engine(toy_vocab, "cpu", (0, 0, 3, 1), 1024)
    ids, _ = encode(toy_vocab, TOY)
    negatives = engine_negatives(7, "cpu", len(ids), 1024, 3, toy_vocab.cum_table)[0]
    drawn = np.zeros(len(toy_vocab.wv), dtype=bool)
    drawn[ids] = drawn[negatives.ravel()] = True
    moved = (got["syn1neg"].numpy() != start["syn1neg"].astype(np.float32)).any(1)
    assert not moved[~drawn].any()
    assert moved[ids].all()


# ----------------------------------------------------------------------------------------
# Batch sizes
# ----------------------------------------------------------------------------------------


def train_toy(toy_vocab, batch_centers=None, **settings) -> list[torch.Tensor]:
    """``syn0``, ``syn1neg``, ``syn1`` after one chunk of TOY (skip-gram, NS and HS)."""
    v, d = len(toy_vocab.wv), 6
    cfg = EngineConfig(
        **{"window": 2, "negative": 3, "hs": True, "seed": 7, "shrink_windows": False, **settings}
    )
    gen = torch.Generator().manual_seed(0)
    weights = [torch.rand(v, d, generator=gen) - 0.5 for _ in range(3)]
    tables = sampling_tables(toy_vocab, "cpu")
    engine = TorchEngine(EngineWeights(*weights), tables, cfg, batch_centers=batch_centers)
    ids, offsets = encode(toy_vocab, TOY)
    engine.train_chunk(torch.from_numpy(ids), torch.from_numpy(offsets), 0.2, 0.2)
    return weights


def test_batches_shrink_to_bound_their_tensors(toy_vocab, monkeypatch):
    """A batch gathers at most BATCH_FLOATS floats per (B, contexts or targets, d) tensor."""
    expected = train_toy(toy_vocab, batch_centers=4)
    depth = sampling_tables(toy_vocab, "cpu").points.shape[1]
    per_center = max(2 * 2, 1 + 3 + depth) * 6  # window 2, 3 negatives, 6 dimensions
    monkeypatch.setattr(torch_engine, "BATCH_FLOATS", 4 * per_center + 1)
    for a, b in zip(train_toy(toy_vocab), expected):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------------------
# Short trainings: related words end up together
# ----------------------------------------------------------------------------------------

GROUPS, GROUP_SIZE = 6, 8


@pytest.fixture(scope="module")
def topics() -> list[list[str]]:
    """Sentences of 8 words, each drawn (Zipf-weighted) from one of 6 groups of 8 words."""
    rng = np.random.default_rng(1)
    weights = 1 / np.arange(1, GROUP_SIZE + 1)
    weights /= weights.sum()
    return [
        [f"g{g}w{w}" for w in rng.choice(GROUP_SIZE, 8, p=weights)]
        for g in rng.integers(GROUPS, size=800)
    ]


def train(sentences, setup, epochs=5, d=16):
    sg, hs, negative, cbow_mean = setup
    vocab = gensim_vocabulary(sentences, sample=1e-3)
    cfg = EngineConfig(
        window=3,
        negative=negative,
        seed=3,
        compute_loss=True,
        sg=bool(sg),
        hs=bool(hs),
        cbow_mean=bool(cbow_mean),
    )
    v = len(vocab.wv)
    gen = torch.Generator().manual_seed(0)
    syn0 = (torch.rand(v, d, generator=gen) - 0.5) / d
    syn1neg, syn1 = torch.zeros(v if negative else 0, d), torch.zeros(v, d)
    tables = sampling_tables(vocab, "cpu", keep_all=False)
    weights = EngineWeights(syn0, syn1neg, syn1 if hs else None)
    engine = TorchEngine(weights, tables, cfg, batch_centers=64)
    ids, offsets = (torch.from_numpy(a) for a in encode(vocab, sentences))
    alphas = np.linspace(0.05, 0.0001, epochs + 1)
    losses = [engine.train_chunk(ids, offsets, a, b).loss for a, b in zip(alphas, alphas[1:])]
    return vocab.wv.index_to_key, syn0.numpy(), losses


@pytest.mark.parametrize(
    "setup",
    [(0, 0, 5, 1), (0, 0, 5, 0), (1, 1, 0, 1), (0, 1, 0, 1)],
    ids=["cbow-ns", "cbow-ns-sum", "sg-hs", "cbow-hs"],
)
def test_training_groups_related_words(topics, setup):
    words, vectors, losses = train(topics, setup)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argsort(-similarity, axis=1)[:, : GROUP_SIZE - 1]
    group = np.array([w.split("w")[0] for w in words])
    same_group = (group[nearest] == group[:, None]).mean()
    assert same_group > 0.9, same_group
    assert losses[-1] < losses[0]
