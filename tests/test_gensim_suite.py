"""gensim's own Word2Vec tests, run against torchw2v: the "change one import" promise.

gensim ships its test file inside the package (``gensim/test/test_word2vec.py``). A child
pytest runs it unchanged, with ``tests/gensim_swap.py`` as a plugin that makes the file's
``word2vec.Word2Vec`` torchw2v's class. Every test must pass except those in
``EXPECTED_FAILURES`` (deliberate differences) and ``MAY_FAIL`` (a check too noisy to pin),
both listed in the README ("Differences from gensim"), and the one gensim itself skips.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import gensim
import pytest

TESTS = Path(__file__).resolve().parent
GENSIM_TESTS = Path(gensim.__file__).parent / "test" / "test_word2vec.py"

EXPECTED_FAILURES = {
    "test_build_vocab_warning": "plain strings as sentences raise a TypeError naming the fix; "
    "gensim logs a warning and trains on the strings' characters",
}
# Either outcome: sanity checks on small corpora that the draws or thread timing decide.
MAY_FAIL = {
    "test_cbow_hs_online": "cos(war, terrorism) > 0 after an online update; with seed=42 "
    "torchw2v lands near 0 (-0.04 to 0.02); over seeds 0-19 gensim fails it 3 times, torchw2v 2",
    "test_parallel": "palestinian among israeli's 6 nearest with 4 Hogwild threads: the rank "
    "was 0-5 in 29 of 30 runs on 2 cores and 6 in one (gensim: 0-2 in 6 runs)",
}
EXPECTED_SKIPS = {"test_method_in_bulk"}  # gensim runs it only with BULK_TEST_REPS set
TESTS_IN_FILE = 84  # gensim 4.4's test_word2vec.py


def outcomes(junit_xml: Path) -> dict[str, str]:
    """Each test's outcome (passed, failed, error, skipped) from a JUnit XML report."""
    results = {}
    for case in ElementTree.parse(junit_xml).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        results[case.get("name")] = (
            {"failure": "failed"}.get(kinds[0], kinds[0]) if kinds else "passed"
        )
    return results


@pytest.fixture(scope="module")
def gensim_run(tmp_path_factory, child_env) -> tuple[dict[str, str], str]:
    """gensim's test_word2vec.py run against torchw2v: outcomes by test name, and the output."""
    if not GENSIM_TESTS.is_file():
        pytest.fail(f"gensim's test file is missing: {GENSIM_TESTS}")
    folder = tmp_path_factory.mktemp("gensim_suite")  # its stand-alone script test writes here
    (folder / "pytest.ini").write_text("[pytest]\n")  # not this project's pytest settings
    report = folder / "report.xml"
    path = os.pathsep.join([str(TESTS), child_env["PYTHONPATH"]])
    command = [sys.executable, "-m", "pytest", "-c", "pytest.ini", "-p", "gensim_swap"]
    command += ["-p", "no:cacheprovider", "-q", "-rfE", f"--junitxml={report}", str(GENSIM_TESTS)]
    done = subprocess.run(
        command,
        cwd=folder,
        env={**child_env, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert report.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return outcomes(report), done.stdout


def test_every_gensim_test_runs(gensim_run):
    results, output = gensim_run
    assert len(results) == TESTS_IN_FILE, output[-3000:]


def test_gensims_word2vec_tests_pass_against_torchw2v(gensim_run):
    results, output = gensim_run
    failed = {name for name, outcome in results.items() if outcome in ("failed", "error")}
    skipped = {name for name, outcome in results.items() if outcome == "skipped"}
    assert failed - set(MAY_FAIL) == set(EXPECTED_FAILURES), output[-6000:]
    assert skipped == EXPECTED_SKIPS, output[-3000:]
    passed = [name for name, outcome in results.items() if outcome == "passed"]
    unsure = len(EXPECTED_FAILURES) + len(MAY_FAIL) + len(EXPECTED_SKIPS)
    assert len(passed) >= TESTS_IN_FILE - unsure == 80
