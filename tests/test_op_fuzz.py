"""Fuzz of the compiled op itself, ``torch.ops.torchw2v.train_chunk``.

Random legal inputs of every size and value (huge windows, hostile sampling and cumulative
tables, arbitrary Huffman paths, vectors up to float32's limit, NaN and infinity) either
train, with consistent counts, or report divergence; hostile inputs (wrong dtypes or shapes,
ids, offsets or tables out of range, settings beyond the op's limits) raise a RuntimeError
naming the argument before any vector is touched. Nothing crashes. ``benchmarks/sanitize_op.py``
runs this file against an AddressSanitizer + UndefinedBehaviorSanitizer build of the op with
more examples (``TORCHW2V_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchw2v.engines import compiled
from torchw2v.engines.base import EngineConfig, EngineWeights, SamplingTables

if not compiled.is_available():  # pragma: no cover - depends on the machine's toolchain
    pytest.skip("the compiled CPU engine cannot be built here", allow_module_level=True)

EXAMPLES = int(os.environ.get("TORCHW2V_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
INT64_MAX = 2**63 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Call:
    """Every argument of one op call. The output matrices and Huffman tables are always
    there and well formed, so that a corruption may switch ``hs`` or ``negative`` on."""

    syn0: torch.Tensor
    syn1neg: torch.Tensor
    syn1: torch.Tensor
    ids: torch.Tensor
    offsets: torch.Tensor
    sample_int: torch.Tensor
    cum_table: torch.Tensor
    points: torch.Tensor
    codes: torch.Tensor
    lengths: torch.Tensor
    window: int
    negative: int
    hs: bool
    sg: bool
    cbow_mean: bool
    shrink_windows: bool
    alpha_start: float
    alpha_end: float
    seed: int
    workers: int
    compute_loss: bool

    @property
    def sentence_lengths(self) -> np.ndarray:
        return np.diff(self.offsets.numpy())

    @property
    def matrices(self) -> tuple[torch.Tensor, ...]:
        """The vectors the op trains with these settings."""
        return (self.syn0,) + (self.syn1neg,) * (self.negative > 0) + (self.syn1,) * self.hs

    def run(self) -> tuple[float, float, float, float]:
        """Call the op: ``(words, loss, pairs, diverged)``."""
        out = compiled.load_op()(*(getattr(self, name) for name in self.__dataclass_fields__))
        assert out.dtype == torch.float64 and out.shape == (4,)
        return tuple(out.tolist())


def _vectors(rng: np.random.Generator, vocab: int, dim: int, scale: float) -> torch.Tensor:
    with np.errstate(over="ignore"):
        return torch.from_numpy((rng.standard_normal((vocab, dim)) * scale).astype(np.float32))


def _cum_table(draw, vocab: int) -> torch.Tensor:
    """Non-decreasing, >= 0, last entry > 0; steps from none (words never drawn) to 2**62."""
    top = (2**62) // vocab
    steps = draw(
        st.lists(
            st.one_of(st.integers(0, 3), st.integers(0, 2**31), st.integers(0, top)),
            min_size=vocab,
            max_size=vocab,
        )
    )
    steps[-1] = max(steps[-1], 1)
    return torch.tensor(np.cumsum(steps), dtype=torch.int64)


@st.composite
def legal_calls(draw) -> Call:
    """Any input the op must accept, hostile values included."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    vocab = draw(st.integers(1, 40))
    dim = draw(st.integers(1, 40))
    sentences = np.array(draw(st.lists(st.integers(0, 40), max_size=8)), dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sentences)]).astype(np.int64)
    depth = draw(st.integers(0, 8))
    scale = draw(st.sampled_from([0.0, 1e-3, 0.1, 1.0, 1e3, 1e19, 1e38]))
    negative = draw(st.one_of(st.integers(0, 12), st.just(64)))
    hs = draw(st.booleans()) or negative == 0
    alpha = st.one_of(
        st.floats(-2.0, 2.0),
        st.sampled_from([0.0, 1e-4, 0.025, 1.0, 50.0, 100.0, 1e30, FLOAT32_MAX, -FLOAT32_MAX]),
    )
    return Call(
        syn0=_vectors(rng, vocab, dim, scale),
        syn1neg=_vectors(rng, vocab, dim, scale),
        syn1=_vectors(rng, vocab, dim, scale),
        ids=torch.from_numpy(rng.integers(0, vocab, offsets[-1], dtype=np.int32)),
        offsets=torch.from_numpy(offsets),
        sample_int=torch.tensor(
            draw(
                st.lists(
                    st.one_of(st.just(2**32 - 1), st.integers(-(2**63), INT64_MAX)),
                    min_size=vocab,
                    max_size=vocab,
                )
            ),
            dtype=torch.int64,
        ),
        cum_table=_cum_table(draw, vocab),
        points=torch.from_numpy(rng.integers(0, vocab, (vocab, depth), dtype=np.int32)),
        codes=torch.from_numpy(rng.integers(0, 2, (vocab, depth), dtype=np.uint8)),
        lengths=torch.from_numpy(rng.integers(0, depth + 1, vocab, dtype=np.int32)),
        window=draw(st.one_of(st.integers(1, 12), st.sampled_from([10**9, 2**31, INT64_MAX]))),
        negative=negative,
        hs=hs,
        sg=draw(st.booleans()),
        cbow_mean=draw(st.booleans()),
        shrink_windows=draw(st.booleans()),
        alpha_start=draw(alpha),
        alpha_end=draw(alpha),
        seed=draw(st.integers(-(2**63), INT64_MAX)),
        workers=draw(st.integers(1, 4)),
        compute_loss=draw(st.booleans()),
    )


def _growth_bound_is_small(call: Call) -> bool:
    """Whether no score or vector can leave float32's range, whatever the draws.

    One center moves no vector entry by more than ``alpha * T * C`` times the largest entry
    M (T targets, C contexts, every gradient at most alpha), so after the chunk's N centers
    M <= M0 * (1 + alpha T C)**N and a score is at most d C M**2.
    """
    m0 = float(torch.stack([t.abs().max() for t in call.matrices]).max())  # NaN stays NaN
    if m0 == 0.0:
        return True
    if not math.isfinite(m0):
        return False
    alpha = max(abs(call.alpha_start), abs(call.alpha_end))
    path = int(call.lengths.max()) if call.hs and len(call.lengths) else 0
    targets = (call.negative + 1 if call.negative else 0) + path
    contexts = max(1, int(call.sentence_lengths.max(initial=0)))
    log_m = math.log(m0) + int(call.offsets[-1]) * math.log1p(alpha * targets * contexts)
    return math.log(call.syn0.shape[1] * contexts) + 2 * log_m < math.log(1e37)


def _assert_same(ours: list[torch.Tensor], theirs: tuple[torch.Tensor, ...]) -> None:
    """Bit for bit, NaN equal to NaN."""
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


@FUZZ
@given(legal_calls())
def test_legal_inputs_train_or_report_divergence(call):
    before = [t.clone() for t in call.matrices]
    words, loss, pairs, diverged = call.run()
    lengths = call.sentence_lengths
    assert diverged in (0.0, 1.0)
    assert words == int(words) and 0 <= words <= lengths.sum()
    most_pairs = (lengths * (lengths - 1)).sum() if call.sg else lengths.sum()
    assert pairs == int(pairs) and 0 <= pairs <= most_pairs
    if not call.compute_loss:
        assert loss == 0.0
    elif not diverged:
        assert math.isfinite(loss) and loss >= 0.0  # every score was finite
    if _growth_bound_is_small(call):
        assert not diverged
        assert all(bool(t.isfinite().all()) for t in call.matrices)
    if pairs == 0:  # no center was trained
        _assert_same(before, call.matrices)


@FUZZ
@given(legal_calls(), st.sampled_from([math.nan, math.inf, -math.inf]))
def test_nonfinite_vectors_stop_training_at_the_first_score(call, value):
    call.syn0.fill_(value)
    call.sample_int.fill_(2**32)  # keep every token: every sentence of 2+ tokens is trained
    # a negative makes every center's target list non-empty (an HS path may be empty)
    call = replace(call, negative=max(call.negative, 1), alpha_start=0.025, alpha_end=0.025)
    before = [t.clone() for t in call.matrices]
    _, _, pairs, diverged = call.run()
    assert pairs == 0  # every score involves a non-finite row: nothing is applied
    assert diverged == float(call.sentence_lengths.max(initial=0) >= 2)
    _assert_same(before, call.matrices)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_infinite_huffman_nodes_are_left_as_they_are(workers):
    """With several threads each trains its own copies of the Huffman nodes near the root and
    hands their change back: an entry it did not change stays infinite (not inf - inf = NaN)."""
    vocab, dim, sentences = 6, 4, 8
    syn1 = torch.rand(vocab, dim)
    syn1[::2, 1] = math.inf
    syn1[1::2, 2] = -math.inf
    call = Call(
        syn0=torch.full((vocab, dim), math.nan),
        syn1neg=torch.zeros(vocab, dim),
        syn1=syn1,
        ids=torch.arange(sentences * 5, dtype=torch.int32) % vocab,
        offsets=torch.arange(0, sentences * 5 + 1, 5),
        sample_int=torch.full((vocab,), 2**32),
        cum_table=torch.arange(1, vocab + 1) * 10,
        points=torch.tensor([[vocab - 1, vocab - 2]] * vocab, dtype=torch.int32),
        codes=torch.tensor([[0, 1]] * vocab, dtype=torch.uint8),
        lengths=torch.full((vocab,), 2, dtype=torch.int32),
        **dict(window=2, negative=0, hs=True, sg=True, cbow_mean=True, shrink_windows=False),
        **dict(alpha_start=0.025, alpha_end=0.025, seed=1, workers=workers, compute_loss=False),
    )
    before = syn1.clone()
    _, _, pairs, diverged = call.run()
    assert (pairs, diverged) == (0, 1)
    _assert_same([before], (call.syn1,))


@FUZZ
@given(legal_calls(), st.sampled_from([10**9, INT64_MAX]))
def test_a_window_wider_than_every_sentence_is_the_whole_sentence(call, huge):
    """Without shrinking, a window beyond the longest sentence trains exactly what that
    sentence's length does."""
    call = replace(call, shrink_windows=False, workers=1, alpha_start=0.025, alpha_end=0.01)
    for t in (call.syn0, call.syn1neg, call.syn1):
        t.nan_to_num_(0.0).clamp_(-1.0, 1.0)
    copies = {name: getattr(call, name).clone() for name in ("syn0", "syn1neg", "syn1")}
    wide = replace(call, window=huge, **copies)
    longest = max(1, int(call.sentence_lengths.max(initial=0)))
    np.testing.assert_equal(wide.run(), replace(call, window=longest).run())
    _assert_same(list(wide.matrices), call.matrices)


# ----------------------------------------------------------------------------------------
# hostile inputs: a RuntimeError naming the argument, before any vector is touched
# ----------------------------------------------------------------------------------------


def _with_tokens(call: Call) -> Call:
    """The call with at least one token (some corruptions need one)."""
    if int(call.offsets[-1]) > 0:
        return call
    return replace(call, ids=torch.zeros(1, dtype=torch.int32), offsets=torch.tensor([0, 1]))


def _with_paths(call: Call) -> Call:
    """The call with hierarchical softmax and every word on a path of at least one node."""
    vocab = call.syn0.shape[0]
    depth = max(1, call.points.shape[1])
    return replace(
        call,
        hs=True,
        points=torch.zeros(vocab, depth, dtype=torch.int32),
        codes=torch.zeros(vocab, depth, dtype=torch.uint8),
        lengths=torch.ones(vocab, dtype=torch.int32),
    )


def _bad_id(call: Call, data) -> Call:
    call = _with_tokens(call)
    vocab = call.syn0.shape[0]
    ids = call.ids.clone()
    where = data.draw(st.integers(0, len(ids) - 1))
    ids[where] = data.draw(st.sampled_from([vocab, vocab + 7, -1, -(2**31), 2**31 - 1]))
    return replace(call, ids=ids)


def _offsets(call: Call, data, kind: str) -> Call:
    call = _with_tokens(call)
    n = int(call.offsets[-1])
    big = data.draw(st.sampled_from([1, 2**31, 2**62]))
    offsets = {
        "shifted": call.offsets + big,
        "short": torch.cat([call.offsets[:-1], torch.tensor([n - 1])]),
        "long": torch.cat([call.offsets[:-1], torch.tensor([n + big])]),
        "decreasing": torch.tensor([0, n + big, n]),
        "negative": torch.tensor([0, -big, n]),
    }[kind]
    return replace(call, offsets=offsets)


def _cum(call: Call, data, kind: str) -> Call:
    cum = call.cum_table.clone()
    if kind == "decreasing":
        cum = torch.cat([cum[-1:] + 1, cum])[: len(cum)] if len(cum) > 1 else cum - cum - 1
    elif kind == "negative":
        cum[0] = data.draw(st.sampled_from([-1, -(2**63)]))
    elif kind == "empty":
        cum.zero_()
    return replace(call, cum_table=cum, negative=max(call.negative, 1))


def _huffman(call: Call, data, kind: str) -> Call:
    call = _with_paths(call)
    vocab, depth = call.points.shape
    word = data.draw(st.integers(0, vocab - 1))
    points, codes, lengths = call.points.clone(), call.codes.clone(), call.lengths.clone()
    if kind == "lengths":
        lengths[word] = data.draw(st.sampled_from([depth + 1, -1, 2**31 - 1, -(2**31)]))
    elif kind == "points":
        points[word, 0] = data.draw(st.sampled_from([vocab, -1, 2**31 - 1, -(2**31)]))
    else:
        codes[word, 0] = data.draw(st.integers(2, 255))
    return replace(call, points=points, codes=codes, lengths=lengths)


def _setting(name: str, *values) -> Callable[[Call, object], Call]:
    return lambda call, data: replace(call, **{name: data.draw(st.sampled_from(values))})


def _tensor(name: str, change: Callable[[torch.Tensor], torch.Tensor], **also):
    return lambda call, data: replace(call, **{name: change(getattr(call, name))}, **also)


def _strided(t: torch.Tensor) -> torch.Tensor:
    """A non-contiguous (2, d) matrix: every other column of a (2, 2d) one."""
    return torch.zeros(2, 2 * t.shape[1])[:, ::2]


def _too_much_scratch(call: Call, data) -> Call:
    """One long sentence with the most negatives: its buffers pass the scratch limit."""
    tokens = 30_000
    return replace(
        call,
        ids=torch.zeros(tokens, dtype=torch.int32),
        offsets=torch.tensor([0, tokens]),
        negative=compiled.MAX_NEGATIVE,
    )


HOSTILE = {
    "ids int64": (_tensor("ids", torch.Tensor.long), "ids must be"),
    "ids 2-D": (_tensor("ids", lambda t: t.reshape(1, -1)), "ids must be"),
    "id out of range": (_bad_id, "out of range"),
    "offsets not from 0": (lambda c, d: _offsets(c, d, "shifted"), "start at 0"),
    "offsets short of N": (lambda c, d: _offsets(c, d, "short"), "end at"),
    "offsets past N": (lambda c, d: _offsets(c, d, "long"), "end at"),
    "offsets decreasing": (lambda c, d: _offsets(c, d, "decreasing"), "non-decreasing"),
    "offsets negative": (lambda c, d: _offsets(c, d, "negative"), "non-decreasing"),
    "offsets int32": (_tensor("offsets", torch.Tensor.int), "offsets must be"),
    "offsets empty": (_tensor("offsets", lambda t: t[:0]), "offsets must be"),
    "cum_table decreasing": (lambda c, d: _cum(c, d, "decreasing"), "cum_table"),
    "cum_table negative": (lambda c, d: _cum(c, d, "negative"), "cum_table"),
    "cum_table all 0": (lambda c, d: _cum(c, d, "empty"), "cum_table"),
    "cum_table short": (_tensor("cum_table", lambda t: t[:-1], negative=3), "cum_table"),
    "cum_table int32": (_tensor("cum_table", torch.Tensor.int, negative=3), "cum_table"),
    "sample_int long": (_tensor("sample_int", lambda t: torch.cat([t, t])), "sample_int"),
    "sample_int float": (_tensor("sample_int", torch.Tensor.double), "sample_int"),
    "syn0 float64": (_tensor("syn0", torch.Tensor.double), "syn0 must be"),
    "syn0 1-D": (_tensor("syn0", lambda t: t.reshape(-1)), "syn0 must be"),
    "syn0 no rows": (_tensor("syn0", lambda t: t[:0]), "empty embedding"),
    "syn0 no columns": (_tensor("syn0", lambda t: t[:, :0]), "empty embedding"),
    "syn0 strided": (_tensor("syn0", _strided), "syn0 must be"),
    "syn1neg rows": (_tensor("syn1neg", lambda t: t[:-1], negative=3), "syn1neg must be"),
    "syn1neg float64": (_tensor("syn1neg", torch.Tensor.double, negative=3), "syn1neg must be"),
    "syn1 columns": (_tensor("syn1", lambda t: t[:, 1:], hs=True), "syn1 must be"),
    "path too long": (lambda c, d: _huffman(c, d, "lengths"), "lengths"),
    "node out of range": (lambda c, d: _huffman(c, d, "points"), "points"),
    "code not binary": (lambda c, d: _huffman(c, d, "codes"), "codes"),
    "points int64": (lambda c, d: replace(_with_paths(c), points=c.points.long()), "points"),
    "codes shape": (lambda c, d: replace(_with_paths(c), codes=c.codes[:-1]), "codes"),
    "lengths short": (lambda c, d: replace(_with_paths(c), lengths=c.lengths[:-1]), "lengths"),
    "window": (_setting("window", 0, -1, -(2**63)), "window"),
    "negative": (_setting("negative", -1, compiled.MAX_NEGATIVE + 1, INT64_MAX), "negative"),
    "workers": (_setting("workers", 0, -1, compiled.MAX_WORKERS + 1, INT64_MAX), "workers"),
    "alpha_start": (_setting("alpha_start", math.nan, math.inf, -math.inf, 1e39), "alpha"),
    "alpha_end": (_setting("alpha_end", math.nan, -math.inf, -1e300), "alpha"),
    "nothing to train": (_setting("negative", 0), "nothing to train"),
    "scratch": (_too_much_scratch, "scratch"),
}


@pytest.mark.parametrize("name", HOSTILE)
@settings(FUZZ, max_examples=max(5, EXAMPLES // 6))
@given(call=legal_calls(), data=st.data())
def test_hostile_inputs_raise_before_training(name, call, data):
    corrupt, match = HOSTILE[name]
    if name == "nothing to train":
        call = replace(call, hs=False)
    call = corrupt(call, data)
    tensors = [getattr(call, n) for n in ("syn0", "syn1neg", "syn1")]
    before = [t.clone() for t in tensors]
    with pytest.raises(RuntimeError, match=match):
        call.run()
    _assert_same(before, tuple(tensors))


# ----------------------------------------------------------------------------------------
# the engine on top of the op
# ----------------------------------------------------------------------------------------


def _engine(vocab: int = 5, dim: int = 4, **config) -> compiled.CompiledEngine:
    tables = SamplingTables(torch.full((vocab,), 2**32), torch.arange(1, vocab + 1) * 100)
    syn0 = torch.rand(vocab, dim) - 0.5
    weights = EngineWeights(syn0, torch.zeros(vocab, dim))
    return compiled.CompiledEngine(weights, tables, EngineConfig(**config))


def test_engine_raises_the_divergence_error_naming_alpha():
    engine = _engine(window=2, negative=2)
    engine.syn0[1, 0] = math.inf
    ids, offsets = torch.tensor([0, 1, 2], dtype=torch.int32), torch.tensor([0, 3])
    with pytest.raises(FloatingPointError, match=r"alpha=0\.5 .*alpha=0\.05"):
        engine.train_chunk(ids, offsets, 0.5, 0.4)


def test_engine_and_op_share_the_limits_on_negative_and_workers():
    ids, offsets = torch.tensor([0, 1, 2, 3], dtype=torch.int32), torch.tensor([0, 2, 3, 4])
    widest = _engine(window=2, negative=compiled.MAX_NEGATIVE, workers=compiled.MAX_WORKERS)
    stats = widest.train_chunk(ids, offsets, 0.025, 0.025)  # the op takes both limits
    assert stats.words == 4 and stats.pairs == 2
    with pytest.raises(ValueError, match=f"negative={compiled.MAX_NEGATIVE}"):
        _engine(window=2, negative=compiled.MAX_NEGATIVE + 1)
    with pytest.raises(ValueError, match=rf"workers in \[1, {compiled.MAX_WORKERS}\]"):
        _engine(window=2, negative=2, workers=compiled.MAX_WORKERS + 1)


def test_divergent_learning_rate_through_the_public_api_raises():
    """Issue 14's reproduction: this segfaulted (a NaN score indexed the sigmoid table)."""
    from gensim.test.utils import common_texts

    from torchw2v import Word2Vec

    with pytest.raises(FloatingPointError, match="alpha=2 "):
        Word2Vec(
            common_texts[:2] * 50,
            min_count=1,
            alpha=2.0,
            min_alpha=2.0,
            epochs=20,
            vector_size=10,
            engine="compiled",
        )
