"""The ``torchw2v`` command end to end: train, evaluate, compare, and one-line errors.

A few runs go through ``python -m torchw2v`` in a subprocess; the rest call ``main([...])`` in
process, which is faster. Corpora are small and trained for one epoch with skip-gram
(``-cbow 0``) so that the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import gensim
import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

import torchw2v
from torchw2v import cli, persistence, trainer
from torchw2v.cli import main
from torchw2v.compare import BOTH, METRICS, PAIRED_METRICS, figure_class, usable_cores

FAST = ["-cbow", "0", "-size", "16", "-iter", "1", "-threads", "2", "-device", "cpu"]
CORPUS_LINES = 1000  # about 75k tokens, a vocabulary of about 2,000 words at min_count 5


@pytest.fixture(scope="module")
def corpus(wiki_head, tmp_path_factory) -> Path:
    """A plain-text slice of the bundled Wikipedia text."""
    path = tmp_path_factory.mktemp("cli") / "corpus.txt"
    path.write_text("\n".join(" ".join(line) for line in wiki_head[:CORPUS_LINES]) + "\n")
    return path


@pytest.fixture(scope="module")
def gensim_vocab(corpus) -> list[str]:
    """gensim's vocabulary of the corpus at min_count 5, in its order."""
    model = gensim.models.Word2Vec(min_count=5)
    model.build_vocab(corpus_file=str(corpus))
    return list(model.wv.index_to_key)


def run_module(*args: str) -> subprocess.CompletedProcess:
    """``python -m torchw2v ARGS`` with this checkout's torchw2v first on the path."""
    root = str(Path(torchw2v.__file__).resolve().parent.parent)
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "torchw2v", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        timeout=300,
    )


@pytest.fixture(scope="module")
def text_vectors(corpus, tmp_path_factory) -> Path:
    """Vectors written by ``python -m torchw2v train`` in word2vec's text format."""
    output = tmp_path_factory.mktemp("vectors") / "vectors.txt"
    done = run_module("train", "-train", str(corpus), "-output", str(output), *FAST)
    assert done.returncode == 0, done.stderr
    return output


def assert_one_error_line(stderr: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("torchw2v: error: "), stderr
    assert "Traceback" not in stderr


# ------------------------------------------------------------------ train


def test_train_writes_text_vectors_gensim_reads(text_vectors, gensim_vocab):
    wv = KeyedVectors.load_word2vec_format(str(text_vectors), binary=False)
    assert wv.vectors.shape == (len(gensim_vocab), 16)
    assert wv.index_to_key == gensim_vocab
    assert np.isfinite(wv.vectors).all()


def test_train_binary_long_flags_and_model(corpus, gensim_vocab, tmp_path):
    output, saved = tmp_path / "vectors.bin", tmp_path / "model.npz"
    flags = [flag.replace("-", "--", 1) for flag in FAST]
    status = main(
        ["train", "--train", str(corpus), "--output", str(output), *flags, "--binary", "1"]
        + ["--min-count", "5", "--save-model", str(saved)]
    )
    assert status == 0
    wv = KeyedVectors.load_word2vec_format(str(output), binary=True)
    assert wv.vectors.shape == (len(gensim_vocab), 16)
    assert wv.index_to_key == gensim_vocab
    model = torchw2v.Word2Vec.load(saved, device="cpu")
    np.testing.assert_allclose(model.wv.vectors, wv.vectors)


class Refused:
    """Stands in for ``Word2Vec``: records its arguments, then refuses as an unbuilt option."""

    def __init__(self, **settings):
        Refused.settings = settings
        raise NotImplementedError("CBOW (sg=0) is not implemented yet; pass sg=1 for skip-gram")


@pytest.mark.parametrize(
    ("flags", "alpha"),
    [([], 0.05), (["-cbow", "0"], 0.025), (["-alpha", "0.1"], 0.1), (["-seed", "7"], 0.05)],
)
def test_train_passes_word2vec_c_defaults_and_unbuilt_options_fail_in_one_line(
    flags, alpha, corpus, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(cli, "Word2Vec", Refused)
    status = main(["train", "-train", str(corpus), "-output", str(tmp_path / "v.txt"), *flags])
    assert status != 0
    assert_one_error_line(capsys.readouterr().err)
    assert Refused.settings == {
        "sg": 1 if flags == ["-cbow", "0"] else 0,
        "hs": 0,
        "negative": 5,
        "vector_size": 100,
        "window": 5,
        "sample": 1e-3,
        "min_count": 5,
        "alpha": alpha,
        "epochs": 5,
        "seed": 7 if flags == ["-seed", "7"] else 1,
        "workers": usable_cores(),
        "device": None,
    }
    assert not (tmp_path / "v.txt").exists()


def test_train_resumes_from_its_checkpoint(corpus, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(trainer, "CHUNK_WORDS", 8192)  # several chunks an epoch
    vectors, checkpoint = tmp_path / "v.txt", tmp_path / "ck.npz"
    args = ["train", "-train", str(corpus), "-output", str(vectors), *FAST, "-iter", "2"]
    args += ["-checkpoint", str(checkpoint), "-checkpoint-every", "0"]
    write, writes = persistence.write_model, iter(range(1, 100))

    def write_then_crash(*written):
        write(*written)
        if next(writes) == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(persistence, "write_model", write_then_crash)
    assert main(args) == 130
    assert checkpoint.is_file() and not vectors.exists()

    monkeypatch.setattr(persistence, "write_model", write)
    with caplog.at_level(logging.INFO, logger="torchw2v"):
        assert main(args) == 0
    assert any("resuming from" in record.getMessage() for record in caplog.records)
    assert not checkpoint.exists()
    assert len(KeyedVectors.load_word2vec_format(str(vectors))) > 1000


# ------------------------------------------------------------------ evaluate


def test_evaluate_json(text_vectors):
    done = run_module("evaluate", str(text_vectors), "--json")
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)
    analogies = scores["analogies"]
    assert {"overall", "semantic", "syntactic", "sections"} <= analogies.keys()
    assert "capital-common-countries" in analogies["sections"]
    assert 0 < analogies["answered"] < analogies["questions"] == 19544
    assert set(scores["pairs"]) == {"wordsim353.tsv", "simlex999.txt"}
    assert all(-1 <= pair["spearman"] <= 1 for pair in scores["pairs"].values())


def test_evaluate_text_with_own_files(text_vectors, tmp_path, capsys):
    analogies, pairs = tmp_path / "analogies.txt", tmp_path / "pairs.tsv"
    analogies.write_text(": family\nhe she his her\nking queen man woman\n")
    pairs.write_text("# word1\tword2\tscore\nking\tqueen\t8.5\nthe\tof\t1.0\nwar\tarmy\t7\n")
    status = main(
        ["evaluate", str(text_vectors), "--analogies", str(analogies)]
        + ["--pairs", str(pairs), datapath("wordsim353.tsv")]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert f"analogies: {analogies} (" in out and "of 2 questions" in out
    for line in ("overall", "semantic", "family", "syntactic", "pairs.tsv", "wordsim353.tsv"):
        assert f"  {line} " in out


# ------------------------------------------------------------------ compare


def test_compare_from_python(corpus):
    result = torchw2v.compare(
        corpus, repeats=2, sg=1, vector_size=16, epochs=1, workers=2, device="cpu"
    )
    assert isinstance(result, torchw2v.ComparisonResult)
    assert result.seeds == [1, 2]
    assert [(row.library, row.seed) for row in result.rows] == [
        (library, seed) for seed in (1, 2) for library in ("gensim", "torchw2v", BOTH)
    ]
    assert result.settings["workers"] == 2 and result.settings["device"] == "cpu"
    for library in ("gensim", "torchw2v"):
        summary = result.summary[library]
        assert {key for key, _, _ in METRICS} == summary.keys()
        assert summary["words_per_second"].mean > 0 and summary["train_seconds"].spread >= 0
    both = result.summary[BOTH]
    assert both["speed_ratio"].mean > 0
    assert 0 <= both["neighbour_overlap"].mean <= 1


def test_compare_table_json_and_plot(corpus, tmp_path, capsys):
    report, image = tmp_path / "compare.json", tmp_path / "compare.png"
    status = main(["compare", str(corpus), *FAST, "--json", str(report), "--plot", str(image)])
    assert status == 0
    table = capsys.readouterr().out
    assert f"gensim {gensim.__version__}" in table and f"torchw2v {torchw2v.__version__}" in table
    for _, label, _ in METRICS + PAIRED_METRICS:
        assert label in table
    data = json.loads(report.read_text())
    fields = {"corpus", "words", "vocabulary", "settings", "versions", "machine", "rows"}
    assert fields | {"summary"} <= data.keys()
    assert set(data["summary"]) == {"gensim", "torchw2v", BOTH}
    assert data["summary"][BOTH]["speed_ratio"]["mean"] > 0
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_needs_matplotlib(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install torchw2v\[plot\]"):
        figure_class()
    status = main(["compare", str(corpus), *FAST, "--plot", str(tmp_path / "c.png")])
    assert status != 0
    err = capsys.readouterr().err
    assert_one_error_line(err)
    assert "pip install torchw2v[plot]" in err


# ------------------------------------------------------------------ bad input


def test_bad_input_through_the_module_is_one_line(tmp_path):
    missing = str(tmp_path / "missing.txt")
    done = run_module("train", "-train", missing, "-output", str(tmp_path / "v.txt"), *FAST)
    assert done.returncode != 0
    assert_one_error_line(done.stderr)
    assert "missing.txt" in done.stderr


TRAIN = ["train", "-train", "{corpus}", "-output", "{tmp}/v.txt"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["fly"], "invalid choice: 'fly'"),
        ([*TRAIN, "-bogus", "1"], "unrecognized arguments: -bogus 1"),
        ([*TRAIN, "-cbow", "2"], "-cbow"),
        ([*TRAIN, "-size", "ten"], "-size"),
        (["train", "-train", "{corpus}"], "-output"),
        (["train", "-train", "{tmp}/missing.txt", "-output", "{tmp}/v.txt", *FAST], "missing.txt"),
        (["train", "-train", "{corpus}", "-output", "{tmp}/no/folder/v.txt", *FAST], "no/folder"),
        (["train", "-train", "{corpus}", "-output", "{tmp}", *FAST], "-output"),
        ([*TRAIN, *FAST, "-save-model", "{tmp}/no/m.npz"], "-save-model"),
        ([*TRAIN, *FAST, "-checkpoint", "{tmp}/no/ck.npz"], "-checkpoint"),
        ([*TRAIN, *FAST, "-device", "tpu"], "tpu"),
        ([*TRAIN, *FAST, "-size", "0"], "vector_size"),
        (["evaluate", "{tmp}/missing.vec"], "missing.vec"),
        (["evaluate", "{corpus}"], "corpus.txt"),
        (["evaluate", "{vectors}", "--analogies", datapath("wordsim353.tsv")], "wordsim353.tsv"),
        (["evaluate", "{vectors}", "--analogies", "{vectors}"], "vectors.txt"),
        (["evaluate", "{vectors}", "--pairs", datapath("questions-words.txt")], "questions-words"),
        (["evaluate", "{vectors}", "--pairs", "{tmp}/missing.tsv"], "missing.tsv"),
        (["compare", "{tmp}/missing.txt", *FAST], "missing.txt"),
        (["compare", "{corpus}", *FAST, "--json", "{tmp}/no/c.json"], "--json"),
        (["compare", "{corpus}", *FAST, "--repeats", "0"], "repeats"),
    ],
)
def test_bad_input_is_one_line(args, named, corpus, text_vectors, tmp_path, capsys):
    names = {"corpus": corpus, "vectors": text_vectors, "tmp": tmp_path}
    status = main([arg.format(**names) for arg in args])
    assert status != 0
    err = capsys.readouterr().err
    assert_one_error_line(err)
    assert named in err
    assert list(tmp_path.iterdir()) == []  # nothing written, not even an empty output
