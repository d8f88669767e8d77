"""Run the compiled ops' tests under AddressSanitizer and UndefinedBehaviorSanitizer.

Builds ``torchw2v/engines/csrc/word2vec_cpu.cpp`` (or ``--source``) and the corpus reader's
``corpus_cpu.cpp`` with ``-fsanitize=address,undefined,float-cast-overflow
-fno-sanitize-recover=all -fno-omit-frame-pointer -O1 -g -D_GLIBCXX_ASSERTIONS`` under their
own extension names in their own directory (``build/sanitize_op``, never torch's extension
cache), loads them, so that ``torch.ops.torchw2v.train_chunk`` and the reader's ops are the
sanitized ones, then runs against them:

1. ``tests/test_op_fuzz.py`` with ``--examples`` hypothesis examples per test, and
   ``tests/test_engine_compiled.py`` (every kernel against its NumPy replay) and the engine
   contract suite's torch and compiled cases (``tests/test_engine_contract.py``);
2. the corpus reader's tests (``tests/test_corpus_scan.py``, random text and byte ranges
   against the Python reader, ``tests/test_corpus_stream.py``, ``tests/test_corpus.py``);
3. issue 14's public-API reproductions (a divergent alpha, ``window=10**9``, ``alpha=1`` with
   ``vector_size=1``, CBOW with ``window=1000``, ``alpha=100`` with every objective) and
   ``--trials`` random legal settings: each must end in finite vectors or the
   FloatingPointError.

Python is not instrumented, so the run happens in a child process started with libasan (and
libstdc++) preloaded, ``ASAN_OPTIONS=detect_leaks=0`` (Python does not free everything at exit, by
design) and ``UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1``; pytest captures only
``sys.stdout``/``sys.stderr`` (``--capture=sys``), so that a report written to file descriptor 2
reaches this script's output even when it halts the process. The script fails (exit status 1)
on any sanitizer report, test failure or bad ending. With ``--record`` its result block is
appended to ``benchmarks/RESULTS.md``.

Examples
--------
``python benchmarks/sanitize_op.py --record``
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import machine, publish  # noqa: E402

SANITIZE = ["-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all"]
CFLAGS = [*SANITIZE, "-fno-omit-frame-pointer", "-O1", "-g", "-D_GLIBCXX_ASSERTIONS"]
EXTENSION_NAME = "torchw2v_cpu_sanitized"
CORPUS_EXTENSION_NAME = "torchw2v_corpus_sanitized"
ASAN_OPTIONS = "detect_leaks=0:abort_on_error=1"
REPORT = re.compile(r"AddressSanitizer:|runtime error:")
UBSAN_OPTIONS = "halt_on_error=1:print_stacktrace=1"
CHILD_FLAG = "--child"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="per fuzz test (1000)")
    parser.add_argument("--trials", type=int, default=30, help="random legal settings (30)")
    parser.add_argument(
        "--source",
        type=Path,
        default=ROOT / "torchw2v" / "engines" / "csrc" / "word2vec_cpu.cpp",
        help="the op's C++ source (the checkout's)",
    )
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build" / "sanitize_op")
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.add_argument(CHILD_FLAG, action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def runtime_library(name: str) -> str:
    """The path of the compiler's runtime library ``name`` (e.g. ``libasan.so``)."""
    compiler = os.environ.get("CXX", "c++")
    path = subprocess.run(
        [compiler, f"-print-file-name={name}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not os.path.isabs(path) or not os.path.exists(path):
        sys.exit(f"{compiler} has no {name}; install it (e.g. the libasan8 package)")
    return path


def run_child(argv: list[str]) -> tuple[int, str]:
    """Run this script as the sanitized child; echo its output; return (status, output)."""
    env = {
        **os.environ,
        # libstdc++ too: loaded later, ASan could not intercept its __cxa_throw
        "LD_PRELOAD": ":".join(map(runtime_library, ("libasan.so", "libstdc++.so"))),
        "ASAN_OPTIONS": ASAN_OPTIONS,
        "UBSAN_OPTIONS": UBSAN_OPTIONS,
    }
    child = subprocess.Popen(
        [sys.executable, __file__, CHILD_FLAG, *argv],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in child.stdout:
        sys.stdout.write(line)
        lines.append(line)
    return child.wait(), "".join(lines)


def load_sanitized_ops(source: Path, build_dir: Path) -> None:
    """Build (or reuse) the sanitized ops in ``build_dir`` and register them in this process."""
    from torch.utils import cpp_extension

    from torchw2v import corpus_compiled
    from torchw2v.engines import compiled

    os.environ.pop("LD_PRELOAD")  # the compiler runs uninstrumented; this process keeps it
    flags = [f for f in compiled._cflags() if not f.startswith("-O")] + CFLAGS
    for name, path in ((EXTENSION_NAME, source), (CORPUS_EXTENSION_NAME, corpus_compiled.SOURCE)):
        (build_dir / name).mkdir(parents=True, exist_ok=True)
        cpp_extension.load(
            name=name,
            sources=[str(path)],
            extra_cflags=flags,
            extra_ldflags=SANITIZE,
            build_directory=str(build_dir / name),
            is_python_module=False,
        )
    compiled.load_op()  # the registered ops: the sanitized ones
    assert corpus_compiled.is_available()


def reproductions(trials: int) -> list[tuple[str, dict]]:
    """Issue 14's public-API cases, then ``trials`` random legal settings: (name, kwargs)."""
    import numpy as np
    from gensim.test.utils import common_texts

    two = common_texts[:2] * 50
    text = common_texts * 20
    cases = [
        (
            "alpha=2, common_texts[:2] * 50",
            dict(sentences=two, alpha=2.0, min_alpha=2.0, epochs=20, vector_size=10),
        ),
        ("window=10**9, CBOW", dict(sentences=text, window=10**9, epochs=2)),
        ("window=10**9, skip-gram", dict(sentences=text, window=10**9, epochs=2, sg=1)),
        ("alpha=1, vector_size=1", dict(sentences=text, alpha=1.0, vector_size=1, epochs=5)),
        ("CBOW, window=1000, alpha=0.5", dict(sentences=text, alpha=0.5, window=1000, epochs=5)),
    ]
    for sg in (0, 1):
        for hs, negative in ((0, 5), (1, 0), (1, 5)):
            for cbow_mean in (1,) if sg else (0, 1):
                name = f"alpha=100, sg={sg}, hs={hs}, negative={negative}, cbow_mean={cbow_mean}"
                settings = dict(sg=sg, hs=hs, negative=negative, cbow_mean=cbow_mean)
                cases.append((name, dict(sentences=two, alpha=100.0, epochs=5, **settings)))
    rng = np.random.default_rng(14)
    words = [f"w{i}" for i in range(60)]
    for trial in range(trials):
        tokens = rng.integers(1, 1500)
        cuts = np.sort(rng.integers(0, tokens + 1, rng.integers(0, 6)))
        ids = np.minimum(rng.zipf(1.5, tokens) - 1, len(words) - 1)
        sentences = [[words[i] for i in part] for part in np.split(ids, cuts)]
        negative = int(rng.integers(0, 17))
        settings = dict(
            alpha=float(10 ** rng.uniform(-4, np.log10(50))),
            window=int(rng.integers(1, 1001)),
            vector_size=int(rng.integers(1, 33)),
            negative=negative,
            hs=int(negative == 0 or rng.random() < 0.5),
            sg=int(rng.random() < 0.5),
            cbow_mean=int(rng.random() < 0.5),
            sample=float(rng.choice([0.0, 1e-3, 1e-1])),
            ns_exponent=float(rng.uniform(-1, 1)),
            workers=int(rng.integers(1, 4)),
            epochs=int(rng.integers(1, 3)),
            seed=trial,
        )
        cases.append((f"random {trial}: {settings}", dict(sentences=sentences, **settings)))
    return cases


def train_or_diverge(kwargs: dict) -> str:
    """Train with the compiled engine: "finite vectors" or the FloatingPointError; raise else."""
    import numpy as np

    from torchw2v import Word2Vec

    try:
        model = Word2Vec(min_count=1, engine="compiled", **kwargs)
    except FloatingPointError as err:
        assert "alpha=" in str(err), err  # names the learning rate and a lower one
        return "FloatingPointError"
    if not np.isfinite(model.wv.vectors).all():
        raise AssertionError("non-finite vectors without a FloatingPointError")
    return "finite vectors"


class Outcomes:
    """A pytest plugin counting the tests' outcomes."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call" or report.outcome != "passed":
            self.counts[report.outcome] = self.counts.get(report.outcome, 0) + 1


def child(args: argparse.Namespace) -> int:
    """In the sanitized process: build, load, test, reproduce; print SUMMARY lines."""
    import pytest

    load_sanitized_ops(args.source, args.build_dir)
    os.environ["TORCHW2V_FUZZ_EXAMPLES"] = str(args.examples)
    tests = [
        "tests/test_op_fuzz.py",
        "tests/test_engine_compiled.py",
        "tests/test_engine_contract.py",
        "tests/test_corpus_scan.py",
        "tests/test_corpus_stream.py",
        "tests/test_corpus.py",
    ]
    outcomes = Outcomes()
    options = ["-q", "-p", "no:cacheprovider", "--capture=sys", "-k", "not triton"]
    status = pytest.main([*options, *tests], [outcomes])
    print(f"SUMMARY: pytest {' '.join(tests)}: {outcomes.counts}, exit status {int(status)}")
    endings: dict[str, int] = {}
    for name, kwargs in reproductions(args.trials):
        ending = train_or_diverge(kwargs)
        print(f"{name[:150]}: {ending}", flush=True)
        endings[ending] = endings.get(ending, 0) + 1
    print(f"SUMMARY: public-API reproductions: {endings}")
    return int(status)


def report(args: argparse.Namespace, argv: list[str], summary: list[str], seconds: float) -> str:
    command = shlex.join(["python", "benchmarks/sanitize_op.py", *argv])
    lines = "\n".join(f"- {line}" for line in summary)
    return f"""## The compiled ops under AddressSanitizer and UndefinedBehaviorSanitizer

`benchmarks/sanitize_op.py` builds the training op and the corpus reader as
`{EXTENSION_NAME}` and `{CORPUS_EXTENSION_NAME}` in `build/sanitize_op` with the ops' flags but
`-O3`, and `{" ".join(CFLAGS)}`; it runs in a child process with libasan and libstdc++
preloaded, `ASAN_OPTIONS={ASAN_OPTIONS}`, `UBSAN_OPTIONS={UBSAN_OPTIONS}`: the op's fuzz tests
with {args.examples} examples each, its NumPy-replay tests, the corpus reader's tests (random
text and byte ranges against the Python reader), and issue 14's public-API reproductions with
{args.trials} random legal settings.

```
{command}
```

- machine: {machine("torch")}
{lines}
- sanitizer reports: none; {seconds:.0f} s in all
"""


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.child:
        sys.exit(child(args))
    start = time.perf_counter()
    status, output = run_child(argv)
    reports = REPORT.findall(output)
    summary = [
        line.removeprefix("SUMMARY: ") for line in output.splitlines() if line.startswith("SUMMARY")
    ]
    if status != 0 or reports or len(summary) != 2:
        sys.exit(f"sanitized run failed: exit status {status}, {len(reports)} sanitizer report(s)")
    publish(report(args, argv, summary, time.perf_counter() - start), args.record)


if __name__ == "__main__":
    main(sys.argv[1:])
