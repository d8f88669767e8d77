"""The fused GPU engine (a Triton kernel), checked on CPU through Triton's interpreter.

Triton decides between compiling a kernel and interpreting it (``TRITON_INTERPRET=1``) when
the module defining it is imported, and this pytest process may have imported
``torchw2v.engines.triton_engine`` already. So the kernel checks, the ``check_*`` functions
below, run in one child process, ``python tests/test_engine_triton.py``, started with
``TRITON_INTERPRET=1``; it reports each check's outcome as JSON and one pytest test per check
asserts it. The interpreter runs a launch's programs one after another, so the kernel must
equal a sequential NumPy replay of the same math exactly (to float32 rounding).

The preparation (subsampling, windows, negatives), input validation and engine choice are
plain torch and run in this process. The tests at the end need CUDA and skip without it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import traceback
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

from torchw2v.engines import choose_engine, triton_unavailable_reason  # noqa: E402
from torchw2v.engines.base import EngineConfig, SamplingTables  # noqa: E402
from torchw2v.engines.triton_engine import (  # noqa: E402
    PreparedChunk,
    TritonEngine,
    check_chunk,
    launch_shape,
    prepare_chunk,
)

ROOT = Path(__file__).resolve().parent.parent
KEEP_ALL = 2**32 - 1
HAS_CUDA = torch.cuda.is_available()


# ----------------------------------------------------------------------------------------
# helpers shared by this process and the interpreter child
# ----------------------------------------------------------------------------------------


def make_tables(counts: np.ndarray, sample_int: np.ndarray | None = None) -> SamplingTables:
    """gensim-style tables for word counts: keep-all subsampling unless given."""
    p = counts.astype(np.float64) ** 0.75
    cum = np.round(np.cumsum(p) / p.sum() * (2**31 - 1)).astype(np.int64)
    if sample_int is None:
        sample_int = np.full(len(counts), KEEP_ALL, dtype=np.int64)
    return SamplingTables(torch.from_numpy(sample_int.astype(np.int64)), torch.from_numpy(cum))


def fixed_chunk(
    vocab: int, negative: int, window: int, seed: int = 0, lengths: tuple[int, ...] = (1, 7, 2, 30)
) -> PreparedChunk:
    """A hand-made prepared chunk: sentences of ``lengths`` kept words, a vocabulary small
    enough for repeated words among contexts and targets, full windows clipped at sentence
    edges, and negatives equal to their center (which must be skipped)."""
    rng = np.random.default_rng(seed)
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    starts = np.repeat(bounds[:-1], lengths)
    ends = np.repeat(bounds[1:], lengths)
    m = int(bounds[-1])
    words = rng.integers(0, vocab, m)
    negatives = rng.integers(0, vocab, (m, negative))
    negatives[::5, 0] = words[::5]  # some negatives are their center word
    reach = rng.integers(1, window + 1, m)
    reach[bounds[:-1]] = reach[bounds[1:] - 1] = window  # first and last word of each sentence

    def i32(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int32))

    return PreparedChunk(i32(words), i32(starts), i32(ends), i32(reach), i32(negatives))


def reference_update(
    syn0: np.ndarray,
    syn1neg: np.ndarray,
    chunk: PreparedChunk,
    alpha_start: float,
    alpha_end: float,
    centers: int,
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """The kernel's math, one center at a time, in float64.

    Centers are taken in groups of ``centers`` consecutive positions, in order; all updates
    of a group are computed from the vectors as they were before the group (the kernel's
    programs), then added. Returns the new ``syn0``, ``syn1neg``, the loss and the pairs.
    """
    syn0, syn1neg = syn0.astype(np.float64), syn1neg.astype(np.float64)
    words, starts, ends = (chunk.words.numpy(), chunk.starts.numpy(), chunk.ends.numpy())
    reach, negatives = chunk.reach.numpy(), chunk.negatives.numpy()
    m = len(words)
    loss, pairs = 0.0, 0
    for first in range(0, m, centers):
        old0, old1 = syn0.copy(), syn1neg.copy()
        for i in range(first, min(first + centers, m)):
            lo, hi = max(starts[i], i - reach[i]), min(ends[i], i + reach[i] + 1)
            context = words[[j for j in range(lo, hi) if j != i]]  # (C,)
            if not len(context):
                continue
            targets = np.concatenate(([words[i]], negatives[i]))  # (T,)
            label = (np.arange(len(targets)) == 0).astype(np.float64)
            live = np.concatenate(([True], negatives[i] != words[i]))  # (T,)
            alpha = alpha_start + (alpha_end - alpha_start) * i / m
            x, o = old0[context], old1[targets]  # (C, d), (T, d)
            scores = x @ o.T  # (C, T)
            sig = np.where(
                scores >= 6,
                1.0,
                np.where(scores <= -6, 0.0, 1 / (1 + np.exp(-scores.clip(-30, 30)))),
            )
            grad = (label - sig) * alpha * live  # (C, T)
            np.add.at(syn0, context, grad @ o)
            np.add.at(syn1neg, targets, grad.T @ x)
            z = np.where(label > 0, scores, -scores)
            loss += float((np.logaddexp(0.0, -z) * live).sum())
            pairs += len(context)
    return syn0, syn1neg, loss, pairs


def random_weights(vocab: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Input vectors as gensim starts them and non-zero output vectors (so both move)."""
    g = torch.Generator().manual_seed(seed)
    syn0 = (torch.rand(vocab, dim, generator=g) - 0.5) / dim * 20
    syn1neg = torch.randn(vocab, dim, generator=g) * 0.2
    return syn0, syn1neg


def config(**kw) -> EngineConfig:
    settings = {"window": 3, "negative": 5, "seed": 7, "compute_loss": True}
    return EngineConfig(**{**settings, **kw})


# ----------------------------------------------------------------------------------------
# checks run by the interpreter child (TRITON_INTERPRET=1)
# ----------------------------------------------------------------------------------------


def _kernel_vs_reference(dim: int, centers: int | None, block_d: int) -> None:
    vocab, k, window = 12, 5, 3
    chunk = fixed_chunk(vocab, k, window)
    syn0, syn1neg = random_weights(vocab, dim)
    start0, start1 = syn0.numpy().copy(), syn1neg.numpy().copy()
    engine = TritonEngine(
        syn0,
        syn1neg,
        make_tables(np.arange(vocab, 0, -1)),
        config(window=window, negative=k),
        centers=centers,
        block_d=block_d,
    )
    g = engine.shape.centers
    stats = engine.run_kernel(chunk, 0.5, 0.1)
    ref0, ref1, loss, pairs = reference_update(start0, start1, chunk, 0.5, 0.1, g)
    np.testing.assert_allclose(syn0.numpy(), ref0, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(syn1neg.numpy(), ref1, atol=1e-5, rtol=1e-5)
    assert np.abs(syn0.numpy() - start0).max() > 1e-2  # the update is not vanishingly small
    assert stats.words == len(chunk.words) == 40
    assert stats.pairs == pairs
    assert stats.loss == pytest.approx(loss, rel=1e-5)
    # the comparison can tell the order of the updates apart
    other = reference_update(start0, start1, chunk, 0.5, 0.1, 1 if g > 1 else 8)
    assert np.abs(other[0] - ref0).max() > 1e-3


def check_kernel_one_center_per_program() -> None:
    """Programs of one center: word2vec.c's sequential order; d=100 in two steps of 64."""
    _kernel_vs_reference(dim=100, centers=1, block_d=64)


def check_kernel_default_groups() -> None:
    """Default groups (5 centers for K=5); d=100 padded to one step of 128."""
    _kernel_vs_reference(dim=100, centers=None, block_d=128)


def check_kernel_d300() -> None:
    """d=300 in five steps of 64 (the last one masked), groups of 8 centers."""
    _kernel_vs_reference(dim=300, centers=8, block_d=64)


def check_stats_without_loss() -> None:
    vocab = 12
    chunk = fixed_chunk(vocab, 2, 3, seed=1)
    syn0, syn1neg = random_weights(vocab, 20)
    start0, start1 = syn0.numpy().copy(), syn1neg.numpy().copy()
    engine = TritonEngine(
        syn0, syn1neg, make_tables(np.ones(vocab)), config(negative=2, compute_loss=False)
    )
    stats = engine.run_kernel(chunk, 0.025, 0.025)
    _, _, _, pairs = reference_update(start0, start1, chunk, 0.025, 0.025, engine.shape.centers)
    assert (stats.words, stats.loss, stats.pairs) == (40, 0.0, pairs)


def check_train_chunk_is_prepare_then_kernel() -> None:
    """train_chunk: validation, draws from the per-chunk seed, then the kernel."""
    vocab, dim = 30, 24
    counts = np.arange(vocab, 0, -1) * 50
    sample_int = np.full(vocab, KEEP_ALL, dtype=np.int64)
    sample_int[:3] = 2**31  # the three most frequent words are kept half of the time
    tables = make_tables(counts, sample_int)
    ids = torch.from_numpy(np.random.default_rng(3).integers(0, vocab, 120).astype(np.int32))
    offsets = torch.tensor([0, 5, 6, 40, 40, 120])
    cfg = config(negative=4, window=4)
    syn0, syn1neg = random_weights(vocab, dim, seed=5)
    start0, start1 = syn0.numpy().copy(), syn1neg.numpy().copy()
    engine = TritonEngine(syn0, syn1neg, tables, cfg, centers=16)  # fewer programs: faster
    stats = engine.train_chunk(ids, offsets, 0.3, 0.2)
    seed = engine.generator.initial_seed()

    chunk = _prepare(ids, offsets, engine.tables, cfg, seed)  # the same draws again
    assert 60 < len(chunk.words) < 120  # some of the frequent words were dropped
    ref0, ref1, loss, pairs = reference_update(
        start0, start1, chunk, 0.3, 0.2, engine.shape.centers
    )
    np.testing.assert_allclose(syn0.numpy(), ref0, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(syn1neg.numpy(), ref1, atol=1e-5, rtol=1e-5)
    assert (stats.words, stats.pairs) == (len(chunk.words), pairs)
    assert stats.loss == pytest.approx(loss, rel=1e-5)
    engine.train_chunk(ids, offsets, 0.3, 0.2)
    assert engine.generator.initial_seed() != seed  # the next chunk draws another stream


def check_bad_chunks_raise() -> None:
    vocab = 10
    syn0, syn1neg = random_weights(vocab, 8)
    engine = TritonEngine(syn0, syn1neg, make_tables(np.ones(vocab)), config())
    ids = torch.arange(6, dtype=torch.int32)
    cases = [
        (ids.float(), torch.tensor([0, 6]), "int32"),
        (ids, torch.tensor([0, 5]), "end at len"),
        (ids, torch.tensor([0, 4, 2, 6]), "non-decreasing"),
        (ids, torch.tensor([0, 6], dtype=torch.int32), "int64"),
        (torch.tensor([0, 10, 1], dtype=torch.int32), torch.tensor([0, 3]), r"\[0, 10\)"),
        (torch.tensor([0, -1, 1], dtype=torch.int32), torch.tensor([0, 3]), "found -1"),
    ]
    for bad_ids, bad_offsets, message in cases:
        with pytest.raises(ValueError, match=message):
            engine.train_chunk(bad_ids, bad_offsets, 0.025, 0.02)
    before = syn0.clone()
    empty = engine.train_chunk(torch.zeros(0, dtype=torch.int32), torch.tensor([0]), 0.1, 0.1)
    assert (empty.words, empty.pairs, empty.loss) == (0, 0, 0.0)
    assert torch.equal(syn0, before)


def check_learns_topics() -> None:
    """Two topics of 8 words, each sentence from one topic: words rank their topic first."""
    rng = np.random.default_rng(0)
    vocab, dim, per_topic = 16, 16, 8
    topic = np.arange(vocab) // per_topic
    sentences = [rng.integers(0, per_topic, 8) + per_topic * (s % 2) for s in range(80)]
    ids = torch.from_numpy(np.concatenate(sentences).astype(np.int32))
    offsets = torch.arange(0, len(ids) + 1, 8)
    g = torch.Generator().manual_seed(1)
    syn0 = (torch.rand(vocab, dim, generator=g) - 0.5) / dim
    syn1neg = torch.zeros(vocab, dim)
    cfg = config(window=3, negative=3, compute_loss=False)
    engine = TritonEngine(syn0, syn1neg, make_tables(np.ones(vocab)), cfg, centers=128)
    epochs = 4
    for epoch in range(epochs):
        a0, a1 = 0.05 * (1 - epoch / epochs), 0.05 * (1 - (epoch + 1) / epochs) + 1e-4
        engine.train_chunk(ids, offsets, a0, a1)
    unit = torch.nn.functional.normalize(syn0, dim=1).numpy()
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    nearest = np.argsort(-sim, axis=1)[:, :5]  # (V, 5)
    share = (topic[nearest] == topic[:, None]).mean()
    # at random about 7/15 of them would (about 0.47)
    assert share >= 0.9, f"only {share:.0%} of the 5 nearest neighbours share the topic"


CHECKS = (
    "check_kernel_one_center_per_program",
    "check_kernel_default_groups",
    "check_kernel_d300",
    "check_stats_without_loss",
    "check_train_chunk_is_prepare_then_kernel",
    "check_bad_chunks_raise",
    "check_learns_topics",
)


def _run_checks() -> None:
    """Child process entry point: run every check, print ``{name: "ok" | traceback}``."""
    torch.set_num_threads(1)
    results = {}
    for name in CHECKS:
        started = time.perf_counter()
        try:
            globals()[name]()
            results[name] = "ok"
        except Exception:
            results[name] = traceback.format_exc()
        print(f"{name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print("RESULTS " + json.dumps(results))


@pytest.fixture(scope="module")
def interpreter_results() -> dict[str, str]:
    """Run the checks once in a child with TRITON_INTERPRET=1; their outcomes by name."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, __file__],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, (
        f"the interpreter child failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
        f"{proc.stderr[-6000:]}"
    )
    return json.loads(lines[-1][len("RESULTS ") :])


@pytest.mark.parametrize("check", CHECKS)
def test_in_interpreter(interpreter_results, check):
    assert interpreter_results[check] == "ok", interpreter_results[check]


# ----------------------------------------------------------------------------------------
# preparation, validation and engine choice (plain torch, this process)
# ----------------------------------------------------------------------------------------


def _prepare(ids, offsets, tables, cfg, seed=0) -> PreparedChunk:
    return prepare_chunk(ids, offsets, tables, cfg, torch.Generator().manual_seed(seed))


def test_prepare_keeps_everything_and_bounds_sentences():
    ids = torch.arange(10, dtype=torch.int32)
    offsets = torch.tensor([0, 3, 3, 4, 10])
    chunk = _prepare(ids, offsets, make_tables(np.ones(10)), config(window=4))
    assert torch.equal(chunk.words, ids)
    assert chunk.starts.tolist() == [0, 0, 0, 3, 4, 4, 4, 4, 4, 4]
    assert chunk.ends.tolist() == [3, 3, 3, 4, 10, 10, 10, 10, 10, 10]
    assert all(t.dtype == torch.int32 for t in (chunk.words, chunk.starts, chunk.reach))
    assert chunk.negatives.shape == (10, 5) and chunk.negatives.dtype == torch.int32


def test_prepare_subsampling_recomputes_sentence_bounds():
    sample_int = np.array([0, KEEP_ALL, KEEP_ALL])  # word 0 is never kept
    ids = torch.tensor([0, 1, 2, 0, 0, 1, 0, 2, 2, 0], dtype=torch.int32)
    offsets = torch.tensor([0, 3, 5, 6, 10])  # [0 1 2] [0 0] [1] [0 2 2 0]
    chunk = _prepare(ids, offsets, make_tables(np.ones(3), sample_int), config())
    assert chunk.words.tolist() == [1, 2, 1, 2, 2]
    assert chunk.starts.tolist() == [0, 0, 2, 3, 3]
    assert chunk.ends.tolist() == [2, 2, 3, 5, 5]


def test_prepare_keeps_words_at_their_rate():
    sample_int = np.array([2**31, KEEP_ALL])  # word 0 is kept half of the time
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, 2, 4000).astype(np.int32))
    chunk = _prepare(ids, torch.tensor([0, 4000]), make_tables(np.ones(2), sample_int), config())
    words, raw = chunk.words.numpy(), ids.numpy()
    assert (words == 1).sum() == (raw == 1).sum()
    assert 0.45 < (words == 0).sum() / (raw == 0).sum() < 0.55


def test_prepare_windows():
    ids = torch.zeros(3000, dtype=torch.int32)
    offsets = torch.tensor([0, 3000])
    tables = make_tables(np.ones(1))
    reach = _prepare(ids, offsets, tables, config(window=5)).reach.numpy()
    assert set(np.unique(reach)) == {1, 2, 3, 4, 5}
    fixed = _prepare(ids, offsets, tables, config(window=5, shrink_windows=False)).reach
    assert (fixed == 5).all()


def test_prepare_negatives_follow_the_table():
    counts = np.array([100.0, 0.0, 10.0, 1.0])  # word 1 can never be drawn
    ids = torch.zeros(20000, dtype=torch.int32)
    tables = make_tables(counts)
    negatives = _prepare(ids, torch.tensor([0, 20000]), tables, config(negative=5)).negatives
    freq = np.bincount(negatives.numpy().ravel(), minlength=4) / negatives.numel()
    expected = counts**0.75 / (counts**0.75).sum()
    assert freq[1] == 0
    np.testing.assert_allclose(freq, expected, atol=0.01)


def test_prepare_is_reproducible():
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, 50, 500).astype(np.int32))
    offsets = torch.tensor([0, 200, 500])
    sample_int = np.full(50, 2**31, dtype=np.int64)
    tables = make_tables(np.ones(50), sample_int)
    a, b, c = (_prepare(ids, offsets, tables, config(), seed=s) for s in (3, 3, 4))
    for field in ("words", "starts", "ends", "reach", "negatives"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert not torch.equal(a.negatives[:10], c.negatives[:10])


def test_launch_shape():
    s = launch_shape(window=5, negative=5, dim=100)
    assert (s.centers, s.rows, s.cols, s.block_d) == (5, 16, 32, 16)
    s = launch_shape(window=5, negative=5, dim=8, centers=1)
    assert (s.centers, s.rows, s.cols, s.block_d) == (1, 16, 16, 16)
    assert launch_shape(window=10, negative=200, dim=300).centers == 1
    with pytest.raises(ValueError, match="centers"):
        launch_shape(window=5, negative=5, dim=100, centers=0)


def test_check_chunk_returns_cpu_offsets():
    off = check_chunk(torch.arange(4, dtype=torch.int32), torch.tensor([0, 1, 4]), 4)
    assert off.device.type == "cpu" and off.tolist() == [0, 1, 4]
    with pytest.raises(ValueError, match="found 4"):
        check_chunk(torch.arange(5, dtype=torch.int32), torch.tensor([0, 5]), 4)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sg": False}, "skip-gram with negative sampling only"),
        ({"hs": True}, "skip-gram with negative sampling only"),
        ({"negative": 0}, "negative >= 1"),
        ({"window": 0}, "window >= 1"),
    ],
)
def test_engine_rejects_other_settings(settings, message):
    syn0, syn1neg = random_weights(4, 8)
    with pytest.raises(ValueError, match=message):
        TritonEngine(syn0, syn1neg, make_tables(np.ones(4)), config(**settings))


def test_engine_rejects_bad_weights():
    tables = make_tables(np.ones(4))
    syn0, syn1neg = random_weights(4, 8)
    with pytest.raises(ValueError, match="float32"):
        TritonEngine(syn0.double(), syn1neg, tables, config())
    with pytest.raises(ValueError, match="same shape"):
        TritonEngine(syn0, syn1neg[:3], tables, config())
    with pytest.raises(ValueError, match="contiguous"):
        TritonEngine(syn0.t(), syn1neg.t(), tables, config())
    with pytest.raises(ValueError, match="hs=0"):
        TritonEngine(syn0, syn1neg, tables, config(), syn1=syn1neg)
    with pytest.raises(ValueError, match="dot_precision"):
        TritonEngine(syn0, syn1neg, tables, config(), dot_precision="fp16")


@pytest.mark.skipif(
    HAS_CUDA or os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"),
    reason="checks the error given without CUDA and without the interpreter",
)
def test_engine_on_cpu_needs_the_interpreter():
    syn0, syn1neg = random_weights(4, 8)
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        TritonEngine(syn0, syn1neg, make_tables(np.ones(4)), config())


@pytest.fixture
def fresh_triton_reason():
    """Forget the cached answer of triton_unavailable_reason before and after the test."""
    triton_unavailable_reason.cache_clear()
    yield
    triton_unavailable_reason.cache_clear()


CUDA = torch.device("cuda")


@pytest.mark.skipif(
    os.environ.get("TORCHW2V_DISABLE_COMPILED", "").strip() not in ("", "0"),
    reason="TORCHW2V_DISABLE_COMPILED is set",
)
def test_cuda_choice_with_triton(fresh_triton_reason):
    assert triton_unavailable_reason() is None
    assert choose_engine("auto", CUDA, config()) == "triton"
    assert choose_engine("compiled", CUDA, config()) == "triton"
    assert choose_engine("torch", CUDA, config()) == "torch"
    # CBOW and hierarchical softmax stay on the torch engine
    assert choose_engine("auto", CUDA, config(sg=False)) == "torch"
    with pytest.raises(ValueError, match="engine='torch'"):
        choose_engine("compiled", CUDA, config(hs=True))


def test_cpu_choice_is_unchanged():
    assert choose_engine("torch", torch.device("cpu"), config()) == "torch"
    assert choose_engine("compiled", torch.device("cpu"), config()) == "compiled"
    with pytest.raises(ValueError, match="engine must be one of"):
        choose_engine("triton", torch.device("cpu"), config())


def test_disabled_triton_falls_back_with_one_warning(fresh_triton_reason, monkeypatch, caplog):
    from torchw2v.engines import _warn_triton_fallback

    _warn_triton_fallback.cache_clear()
    monkeypatch.setenv("TORCHW2V_DISABLE_COMPILED", "1")
    with caplog.at_level(logging.WARNING, logger="torchw2v.engines"):
        assert choose_engine("auto", CUDA, config()) == "torch"
        assert choose_engine("auto", CUDA, config()) == "torch"
    warnings = [r for r in caplog.records if "fused GPU engine unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "TORCHW2V_DISABLE_COMPILED" in warnings[0].getMessage()
    with pytest.raises(RuntimeError, match="TORCHW2V_DISABLE_COMPILED"):
        choose_engine("compiled", CUDA, config())


def test_missing_triton_is_named(fresh_triton_reason, monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` now raises ImportError
    reason = triton_unavailable_reason()
    assert reason is not None and "triton cannot be imported" in reason
    with pytest.raises(RuntimeError, match="install triton"):
        choose_engine("compiled", CUDA, config())


def test_import_torchw2v_does_not_import_triton():
    code = (
        "import sys, torchw2v, torchw2v.engines\n"
        "assert 'triton' not in sys.modules, 'importing torchw2v imported triton'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION is unset")
def test_kernel_compiles_for_hopper_without_spills(tmp_path):
    """Compile (no GPU needed) for sm_90 with the default launch shape: the compiler accepts
    what the interpreter did, and no register spills to local memory."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from torchw2v.engines import triton_engine as te

    cuobjdump = Path(te.triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if not cuobjdump.is_file():
        pytest.skip("triton's NVIDIA backend tools are not installed")
    shape = launch_shape(window=5, negative=5, dim=100)
    pointers = ("syn0", "syn1neg", "words", "starts", "ends", "reach", "negatives", "partials")
    signature = {
        f"{name}_ptr": "*fp32" if name.startswith(("syn", "part")) else "*i32" for name in pointers
    }
    signature.update(M="i32", D="i32", window="i32", alpha_start="fp32", alpha_step="fp32")
    constants = {
        "T": 6,
        "CENTERS": shape.centers,
        "ROWS": shape.rows,
        "COLS": shape.cols,
        "BLOCK_D": shape.block_d,
        "COMPUTE_LOSS": True,
        "MAX_EXP": te.MAX_EXP,
        "DOT_PRECISION": te.DOT_PRECISION,
    }
    signature.update(dict.fromkeys(constants, "constexpr"))
    assert list(signature) == list(te._sgns_kernel.arg_names)
    kernel = te.triton.compile(
        ASTSource(te._sgns_kernel, signature, constants),
        target=GPUTarget("cuda", 90, 32),
        options={"num_warps": te.NUM_WARPS},
    )
    cubin = tmp_path / "kernel.cubin"
    cubin.write_bytes(kernel.asm["cubin"])
    usage = subprocess.run(
        [cuobjdump, "--dump-resource-usage", cubin], capture_output=True, text=True
    )
    line = next(line for line in usage.stdout.splitlines() if "REG:" in line)
    assert "STACK:0 " in line, f"the kernel spills registers: {line.strip()}"


# ----------------------------------------------------------------------------------------
# on a GPU
# ----------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")


@needs_cuda
def test_cuda_kernel_matches_reference():
    """One program (all 20 centers in one group): the compiled kernel equals the replay."""
    vocab, k, window, dim = 12, 5, 3, 100
    chunk = fixed_chunk(vocab, k, window, lengths=(1, 4, 15))
    syn0, syn1neg = random_weights(vocab, dim)
    start0, start1 = syn0.numpy().copy(), syn1neg.numpy().copy()
    syn0, syn1neg = syn0.cuda(), syn1neg.cuda()
    tables = make_tables(np.arange(vocab, 0, -1))
    engine = TritonEngine(syn0, syn1neg, tables, config(window=window), centers=20)
    assert (engine.shape.rows, engine.shape.cols) == (32, 128)
    on_gpu = PreparedChunk(*(getattr(chunk, f.name).cuda() for f in fields(chunk)))
    stats = engine.run_kernel(on_gpu, 0.5, 0.1)
    ref0, ref1, loss, pairs = reference_update(start0, start1, chunk, 0.5, 0.1, 20)
    np.testing.assert_allclose(syn0.cpu().numpy(), ref0, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(syn1neg.cpu().numpy(), ref1, atol=1e-4, rtol=1e-4)
    assert stats.words == 20 and stats.pairs == pairs
    assert stats.loss == pytest.approx(loss, rel=1e-4)


@needs_cuda
def test_cuda_draws_are_reproducible():
    vocab, dim = 200, 100
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 1000, vocab)
    tables = make_tables(counts, np.full(vocab, 2**31, dtype=np.int64))
    ids = torch.from_numpy(rng.integers(0, vocab, 20000).astype(np.int32)).cuda()
    offsets = torch.arange(0, 20001, 20)
    runs = []
    for _ in range(2):
        syn0, syn1neg = (t.cuda() for t in random_weights(vocab, dim))
        engine = TritonEngine(syn0, syn1neg, tables, config(negative=5, window=5))
        stats = engine.train_chunk(ids, offsets, 0.025, 0.02)
        generator = torch.Generator("cuda").manual_seed(engine.generator.initial_seed())
        draws = prepare_chunk(ids, offsets, engine.tables, engine.config, generator)
        runs.append((stats, draws, syn0.cpu()))
    (s1, c1, v1), (s2, c2, v2) = runs
    for field in ("words", "starts", "ends", "reach", "negatives"):
        assert torch.equal(getattr(c1, field), getattr(c2, field)), field
    assert (s1.words, s1.pairs) == (s2.words, s2.pairs)
    assert s1.loss == pytest.approx(s2.loss, rel=1e-4)
    # atomic adds land in a varying order: equal up to rounding
    torch.testing.assert_close(v1, v2, atol=1e-4, rtol=1e-4)


@needs_cuda
def test_cuda_quality_matches_compiled_cpu(wiki_gz):
    """SG, NS5, d100 on the 1M-token slice: the GPU kernel scores as the CPU engine does."""
    from gensim.test.utils import datapath

    import torchw2v
    from torchw2v.engines import compiled

    settings = {
        "sg": 1,
        "negative": 5,
        "window": 5,
        "vector_size": 100,
        "min_count": 5,
        "sample": 1e-3,
        "epochs": 3,
        "seed": 1,
    }

    def scores(wv) -> tuple[float, float]:
        analogy = wv.evaluate_word_analogies(datapath("questions-words.txt"))[0]
        return analogy, wv.evaluate_word_pairs(datapath("wordsim353.tsv"))[1][0]

    assert choose_engine("auto", CUDA, config()) == "triton"
    gpu = torchw2v.Word2Vec(corpus_file=wiki_gz, device="cuda", engine="compiled", **settings)
    gpu_analogy, gpu_ws353 = scores(gpu.wv)
    cpu_engine = "compiled" if compiled.is_available() else "torch"
    cpu = torchw2v.Word2Vec(corpus_file=wiki_gz, device="cpu", engine=cpu_engine, **settings)
    cpu_analogy, cpu_ws353 = scores(cpu.wv)
    print(
        f"\n[triton] analogy {gpu_analogy:.4f} ws353 {gpu_ws353:.4f}; "
        f"[{cpu_engine} cpu] analogy {cpu_analogy:.4f} ws353 {cpu_ws353:.4f}"
    )
    assert np.isfinite(gpu.wv.vectors).all()
    # margins as in test_quality.py: both scores are noisy on 1M tokens
    assert gpu_analogy >= cpu_analogy - 0.015
    assert gpu_ws353 >= cpu_ws353 - 0.06
    months = {"february", "march", "april", "june", "july", "august", "september", "october"}
    assert len(months.intersection(w for w, _ in gpu.wv.most_similar("january", topn=10))) >= 4


if __name__ == "__main__":
    _run_checks()
