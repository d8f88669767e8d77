"""Shared fixtures: the bundled Wikipedia slice, small corpora and vocabulary comparisons."""

from __future__ import annotations

import gzip
import itertools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "wiki1m.txt.gz"
HEAD_LINES = 2000


@pytest.fixture(scope="session")
def child_env() -> dict[str, str]:
    """The environment for a child Python process that imports this checkout's torchw2v,
    whatever torchw2v is installed."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


@pytest.fixture(scope="session")
def wiki_gz() -> Path:
    """The bundled 1M-token Wikipedia slice, gzipped, one sentence per line."""
    assert DATA.is_file(), f"bundled corpus missing: {DATA}"
    return DATA


@pytest.fixture(scope="session")
def wiki_head(wiki_gz) -> list[list[str]]:
    """The first 2,000 lines of the slice (about 150k tokens) as token lists."""
    with gzip.open(wiki_gz, "rt", encoding="utf-8") as lines:
        return [line.split() for line in itertools.islice(lines, HEAD_LINES)]


@pytest.fixture(scope="session")
def small_corpus(wiki_head) -> list[list[str]]:
    """About 20k tokens of real text: enough to train tiny models fast."""
    return wiki_head[:300]


@pytest.fixture(scope="session")
def wiki_txt(wiki_gz, tmp_path_factory) -> Path:
    """The whole slice decompressed once per session (for gensim's corpus_file mode)."""
    path = tmp_path_factory.mktemp("wiki") / "wiki1m.txt"
    with gzip.open(wiki_gz, "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def vocab_state(model) -> dict:
    """Everything the vocabulary decides, from a gensim or a torchw2v model."""
    wv = model.wv
    assert wv.key_to_index == {w: i for i, w in enumerate(wv.index_to_key)}
    return {
        "index_to_key": list(wv.index_to_key),
        "count": np.asarray(wv.expandos["count"], dtype=np.int64),
        "sample_int": np.asarray(wv.expandos["sample_int"]),
        "cum_table": np.asarray(model.cum_table),
        "corpus_count": model.corpus_count,
        "corpus_total_words": model.corpus_total_words,
        "effective_min_count": model.effective_min_count,
    }


@pytest.fixture(scope="session")
def assert_same_vocab():
    """``assert_same_vocab(ours, theirs)``: identical vocabulary state, field by field."""

    def check(ours, theirs) -> None:
        a, b = vocab_state(ours), vocab_state(theirs)
        assert len(a["index_to_key"]) > 0
        assert a["index_to_key"] == b["index_to_key"]
        for name in ("count", "sample_int", "cum_table"):
            assert a[name].dtype == b[name].dtype, name
            assert np.array_equal(a[name], b[name]), name
        for name in ("corpus_count", "corpus_total_words", "effective_min_count"):
            assert a[name] == b[name], name

    return check
