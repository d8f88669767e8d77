"""Random legal settings and random small corpora through ``Word2Vec``, for every engine.

Every example must end in finite vectors (``wv.vectors``, ``syn1neg``, ``syn1``) of the right
shape, in the divergence ``FloatingPointError`` (naming alpha and a smaller one to try), or,
exactly when no word reaches ``min_count``, in the empty-vocabulary ``ValueError``. Anything
else fails, and so does a crash: each engine's examples run in a child process,
``python tests/test_fuzz_api.py ENGINE``, so a segfault is a failed test that names the last
example (printed before it runs) instead of the end of the test session. The child caps its
heap at ``MEMORY_LIMIT`` so that an allocation sized by a setting (``window=10**9``) fails
there instead of taking the machine's memory. The Triton kernel runs in Triton's
interpreter (``TRITON_INTERPRET=1``, read when triton is imported, hence the child too),
which is slow: its corpora are smaller.

The settings span what gensim accepts: alpha 1e-4..100 (plus explicit cases of 100 for every
objective and 1e6), window 1..1000 and 10**9, vector_size 1..301, negative 0..64, hs, sg,
cbow_mean, sample, ns_exponent, workers 1..3, sentences of 0..3,000 tokens. The examples
are derandomized, so CI runs the same ones every time; ``TORCHW2V_FUZZ_EXAMPLES=N`` runs N
fresh random examples per engine instead (slower, opt-in).
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import resource
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("torch", "compiled", "triton")
EXAMPLES = {"torch": 60, "compiled": 100, "triton": 10}
"""Random examples per engine in CI, besides the explicit ones."""
TOKENS = {"torch": 3000, "compiled": 3000, "triton": 200}
"""The most tokens of a random corpus."""
WORK = {"torch": 10**8, "compiled": 10**8, "triton": 3 * 10**6}
"""About the most operations a random example may take: (center, context) pairs x targets x
epochs x (dimensions + SCORE_OPS). A corpus is drawn short enough for its settings and then
``vector_size`` shrinks to fit, so that a long sentence comes with a narrow window or few
dimensions and every example takes about a second at most (the interpreter is slow)."""
SMALL = {"torch": (40, 0, 25, 60), "compiled": (40, 0, 25, 60), "triton": (12, 0, 6, 20)}
"""Sentence lengths of the explicit cases' small corpus."""
LONG = {"torch": 1000, "compiled": 1000, "triton": 2}
"""The window of the explicit case with a 3,000-token sentence."""
SCORE_OPS = 20
"""Operations per score besides the dot product (sigmoid, masks, gradient, checks)."""
MEMORY_LIMIT = 4 << 30
"""Bytes of heap a child may take (``RLIMIT_DATA``)."""
OBJECTIVES = [
    {"sg": sg, "cbow_mean": mean, "hs": hs, "negative": negative}
    for sg, mean in ((1, 1), (0, 1), (0, 0))
    for hs, negative in ((0, 5), (1, 0), (1, 5))
]
"""Skip-gram, CBOW mean and CBOW sum, each with negative sampling, hierarchical softmax or
both."""


@dataclass(frozen=True)
class Case:
    """One example: settings for ``Word2Vec`` and a corpus drawn from a seed.

    Attributes
    ----------
    settings : dict
        Keyword arguments for ``Word2Vec`` (engine and device are added per engine).
    lengths : tuple of int
        Tokens of each sentence (0 is an empty sentence).
    words : int
        Distinct words the tokens are drawn from, Zipf-distributed: a few frequent words
        (which subsampling drops) and rare ones (which ``min_count`` drops).
    seed : int
        Seed of the tokens.
    """

    settings: dict
    lengths: tuple[int, ...]
    words: int = 30
    seed: int = 0

    def corpus(self) -> list[list[str]]:
        rng = np.random.default_rng(self.seed)
        return [[f"w{i}" for i in rng.zipf(1.5, n) % self.words] for n in self.lengths]


@st.composite
def cases(draw: st.DrawFn, tokens: int, work: int) -> Case:
    """Random legal settings, sentence lengths adding up to at most ``tokens`` and about
    ``work`` operations (see ``WORK``)."""
    negative = draw(st.integers(0, 64))
    settings = {
        "alpha": 10 ** draw(st.floats(-4, 2)),
        "min_alpha": draw(st.sampled_from([0.0, 1e-4, 0.01])),
        "window": draw(st.one_of(st.integers(1, 1000), st.just(10**9))),
        "vector_size": draw(st.integers(1, 301)),
        "negative": negative,
        "hs": draw(st.sampled_from([0, 1, False, True])) if negative else 1,
        "sg": draw(st.sampled_from([0, 1, False, True])),
        "cbow_mean": draw(st.sampled_from([0, 1])),
        "sample": draw(st.sampled_from([0.0, 1e-5, 1e-3, 0.1, 1.0])),
        "ns_exponent": draw(st.floats(-1, 2)),
        "workers": draw(st.integers(1, 3)),
        "min_count": draw(st.integers(1, 3)),
        "epochs": draw(st.integers(1, 2)),
        "shrink_windows": draw(st.booleans()),
        "compute_loss": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }
    targets = (negative + 1 + 12 * settings["hs"]) * settings["epochs"]  # ~12 Huffman nodes
    pairs = work // (targets * (1 + SCORE_OPS))  # the most (center, context) pairs
    # a sentence of n tokens has about n * min(2 * window, n) pairs
    left = min(tokens, max(math.isqrt(pairs), pairs // (2 * settings["window"])))
    lengths = []
    for n in draw(st.lists(st.integers(0, tokens), max_size=5)):
        lengths.append(min(n, left))
        left -= lengths[-1]
    pairs = sum(n * min(2 * settings["window"], n) for n in lengths)
    most = work // max(pairs * targets, 1) - SCORE_OPS
    settings["vector_size"] = max(1, min(settings["vector_size"], most))
    words = draw(st.integers(1, 200))
    return Case(settings, tuple(lengths), words, draw(st.integers(0, 2**32 - 1)))


def explicit_cases(engine: str) -> list[Case]:
    """Cases every run covers: alpha 100 for every objective and 1e6, window=10**9, and the
    longest sentence (with a narrow window in the interpreter)."""
    small = SMALL[engine]
    alpha = {"min_count": 1, "epochs": 2}
    long = {"window": LONG[engine], "epochs": 1, "vector_size": 8, "min_count": 1, "sg": 1, "hs": 1}
    return [
        *(Case({**alpha, "alpha": 100.0, **o}, small, words=12) for o in OBJECTIVES),
        Case({**alpha, "alpha": 1e6, "sg": 1}, small, words=12),
        Case({**alpha, "alpha": 1e6, "hs": 1, "negative": 0}, small, words=12),
        Case({"window": 10**9, "min_count": 1, "sg": 1, "hs": 1}, small),
        Case({"window": 10**9, "min_count": 1, "shrink_windows": False}, small),
        Case(long, (3000,)),
        Case({"vector_size": 1, "negative": 64, "min_count": 1}, (5,), words=2),
        Case({"min_count": 1}, ()),
        Case({"min_count": 1}, (0, 0)),
    ]


def check(engine: str, case: Case) -> None:
    """Train ``case`` with ``engine``: finite vectors, divergence or an empty vocabulary."""
    from torchw2v import Word2Vec

    corpus = case.corpus()
    counts = collections.Counter(word for sentence in corpus for word in sentence)
    kept = sum(count >= case.settings.get("min_count", 5) for count in counts.values())
    name = "compiled" if engine == "triton" else engine  # the child routes it to Triton
    print(json.dumps(asdict(case)), file=sys.stderr, flush=True)  # named if this crashes
    try:
        model = Word2Vec(corpus, **case.settings, engine=name, device="cpu")
    except FloatingPointError as err:
        assert re.search(r"alpha=\S+ is too high.*\(e\.g\. alpha=\S+\)", str(err)), err
        return
    except ValueError as err:
        assert not kept and "vocabulary is empty" in str(err), err
        return
    assert kept, "trained without a word reaching min_count"
    assert model.wv.vectors.shape == (kept, model.vector_size)
    for matrix in (model.wv.vectors, model.syn1neg, model.syn1):
        assert np.isfinite(matrix).all()


def fuzz(engine: str, examples: int, derandomize: bool) -> None:
    """Run ``examples`` random cases and the explicit ones through ``engine``."""

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    @given(case=cases(TOKENS[engine], WORK[engine]))
    def run(case: Case) -> None:
        check(engine, case)

    for case in explicit_cases(engine):
        run = example(case=case)(run)
    run()


def _child(engine: str) -> None:
    """Child process entry point: ``python tests/test_fuzz_api.py ENGINE``."""
    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, MEMORY_LIMIT))
    warnings.simplefilter("ignore", RuntimeWarning)  # numpy overflow while diverging
    import torch

    torch.set_num_threads(1)
    if engine == "triton":
        import torchw2v.engines

        torchw2v.engines.choose_engine = lambda name, device: "triton"
    requested = int(os.environ.get("TORCHW2V_FUZZ_EXAMPLES", "0"))
    started = time.perf_counter()
    fuzz(engine, requested or EXAMPLES[engine], derandomize=not requested)
    print(f"FUZZ OK in {time.perf_counter() - started:.1f} s")


@pytest.mark.parametrize("engine", ENGINES)
def test_public_api_never_crashes(engine, child_env):
    if engine == "triton":
        pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    if engine == "compiled":
        from torchw2v.engines import compiled

        if not compiled.is_available():
            pytest.skip("the compiled CPU engine does not build here")
    env = {**child_env, "TRITON_INTERPRET": "1"} if engine == "triton" else child_env
    proc = subprocess.run(
        [sys.executable, __file__, engine],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0 and "FUZZ OK" in proc.stdout, (
        f"the {engine} fuzz child failed (exit {proc.returncode}); the last case printed is "
        f"the one that failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    )


if __name__ == "__main__":
    _child(sys.argv[1])
