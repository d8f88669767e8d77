"""The compiled reader of corpus files gives exactly what the Python reader and gensim give.

Same words, counts, first-occurrence order, sentences and tokens; the same ids and offsets
once encoded; the same error for text that is not UTF-8; the same result for every way of
cutting the file into byte ranges and for any number of threads.
"""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
import threading

import gensim
import numpy as np
import pytest
import torch
from encoded import whole
from hypothesis import given, settings
from hypothesis import strategies as st

import torchw2v
from torchw2v import corpus, corpus_compiled
from torchw2v.corpus import CorpusFile, encode, scan, scan_counts
from torchw2v.distributed import merge_vocabularies, vocabulary_part

pytestmark = pytest.mark.skipif(
    not corpus_compiled.is_available(), reason="the compiled corpus reader does not build here"
)

HOSTILE = {
    "empty": b"",
    "one word": b"word",
    "no trailing newline": b"a b c\nb c d",
    "crlf": b"a b\r\nb c\r\n\r\nc\r\n",
    "tabs and spaces": b"\ta\t\tb  c   \n  \n\t\n d\x0b\x0ce \n",
    "blank lines": b"\n\n\na\n\n",
    "only whitespace": b"   \t \r\n \x0c\n",
    "str.split whitespace": b"a\x1cb\x1dc\x1ed\x1fe f\n",
    "unicode whitespace": "a\u00a0b\u0085c\u1680d\u2000e\u200af\u2028g\u2029h\u202fi"
    "\u205fj\u3000k\n".encode(),
    "not whitespace": "a\u200bb\u180ec\ufeffd\u00ade\x00f\x7fg\x1bh\n".encode(),
    "non-ascii words": "caf\u00e9 na\u00efve \u6f22\u5b57 \U0001f600 caf\u00e9\n"
    "\u00e9t\u00e9\n".encode(),
    "bom": "\ufeffstart of file\nstart\n".encode(),
    "long line": (" ".join(f"w{i % 997}" for i in range(30_000)) + "\nw1 w2\n").encode(),
    "long word": b"x" * 100_000 + b" y\n" + b"x" * 99_999 + b"\n" + b"x" * 100_000 + b"\n",
    "words of 1 to 40 bytes": (
        " ".join("abcdefghijklmnopqrstuvwxyz0123456789ABCD"[:n] for n in range(1, 41)) * 3
    ).encode(),
}

NOT_UTF8 = {
    "latin-1": "caf\u00e9 au lait\n".encode("latin-1"),
    "lone continuation": b"ok\nab \x80 cd\n",
    "overlong 2 bytes": b"ok\n\xc0\xaf\n",
    "overlong 3 bytes": b"ok\n\xe0\x80\xaf\n",
    "surrogate": b"ok\n\xed\xa0\x80\n",
    "above U+10FFFF": b"ok\n\xf4\x90\x80\x80\n",
    "invalid lead": b"ok\nab\xff\n",
    "cut before newline": b"ok\nab\xe2\x82\nok\n",
    "cut at end of file": b"ok\nab\xf0\x9f\x98",
    "second bad line": b"ok\n\xff first\nok\n\xfe second\n",
}


def write(tmp_path, data: bytes, name: str = "corpus.txt"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def python_path(monkeypatch):
    """Make the corpus functions fall back to the Python reader."""
    monkeypatch.setattr(corpus_compiled, "is_available", lambda: False)


def scanned_state(scanned):
    return (
        scanned.words,
        scanned.counts.tolist(),
        scanned.sentences,
        scanned.raw_words,
        scanned.first[1].tolist(),  # positions in sentences
    )


def encoded_state(corpus):
    ids, offsets = whole(corpus)
    assert ids.dtype == np.int32 and offsets.dtype == np.int64
    return ids.tolist(), offsets.tolist(), corpus.raw_words


def python_scan(path):
    return scan(CorpusFile(path))


def index_of(words):
    return {w: i for i, w in enumerate(words)}


# ---------------------------------------------------------------- tokens and lines


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("workers", [1, 3])
def test_hostile_files_read_as_python_reads_them(tmp_path, name, workers):
    path = write(tmp_path, HOSTILE[name])
    expected = python_scan(path)
    scanned = scan_counts(CorpusFile(path), workers=workers)
    assert scanned_state(scanned) == scanned_state(expected)
    vocabulary = index_of(expected.words[::2])  # a vocabulary that leaves words out
    assert encoded_state(encode(CorpusFile(path), vocabulary, workers)) == encoded_state(
        encode(list(CorpusFile(path)), vocabulary)
    )


def test_first_occurrences_are_lines_and_positions(tmp_path):
    path = write(tmp_path, b"b a\n\nc  a d\nd e\n")
    scanned = scan_counts(CorpusFile(path))
    assert scanned.words == ["b", "a", "c", "d", "e"]
    assert scanned.counts.tolist() == [1, 2, 1, 2, 1]
    lines, positions = scanned.first
    assert lines.tolist() == [0, 0, 5, 5, 12]  # byte offsets of the lines
    assert positions.tolist() == [0, 1, 0, 2, 1]


def test_whitespace_is_exactly_what_str_split_separates_on(tmp_path):
    """Every code point but the newline and surrogates, between two letters."""
    points = [c for c in range(0x110000) if c != 0x0A and not 0xD800 <= c <= 0xDFFF]
    points = points[:0x10000] + points[0x10000::997]  # all of the BMP, a sample above it
    text = "".join(f"a{chr(c)}b\n" for c in points)
    path = write(tmp_path, text.encode("utf-8"))
    expected = python_scan(path)
    assert scanned_state(scan_counts(CorpusFile(path), workers=2)) == scanned_state(expected)
    separators = [c for c in points if len(f"a{chr(c)}b".split()) == 2]
    assert len(separators) == 28  # every str.split() whitespace but the newline
    vocabulary = index_of(expected.words)
    assert encoded_state(encode(CorpusFile(path), vocabulary, 2)) == encoded_state(
        encode(list(CorpusFile(path)), vocabulary)
    )


@settings(max_examples=60, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from(
            [
                "a",
                "bb",
                "\u00e9",
                "\u6f22",
                "\U0001f600",
                " ",
                "  ",
                "\t",
                "\r",
                "\n",
                "\n",
                "\u00a0",
                "\u2028",
                "\u3000",
                "\x1c",
                "\x00",
                "\x85",
            ]
        ),
        max_size=60,
    ),
    cuts=st.lists(st.integers(0, 200), max_size=4),
    workers=st.integers(1, 3),
)
def test_random_text_and_ranges_read_as_python_reads_them(tmp_path_factory, pieces, cuts, workers):
    data = "".join(pieces).encode("utf-8")
    path = write(tmp_path_factory.mktemp("fuzz"), data)
    bounds = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    ranges = list(zip(bounds[:-1], bounds[1:])) or [(0, 0)]
    found = corpus_compiled.count_words(str(path), ranges, workers)
    expected = python_scan(path)
    expected_ids, expected_offsets = whole(encode(list(CorpusFile(path)), index_of(expected.words)))
    assert (found.words, found.counts.tolist(), found.sentences, found.tokens) == (
        expected.words,
        expected.counts.tolist(),
        expected.sentences,
        expected.raw_words,
    )
    index = corpus_compiled.WordIndex(expected.words)
    ids, offsets, sentences, tokens, bad, cut = corpus_compiled.encode_words(
        str(path), ranges, index, workers
    )
    assert (ids.tolist(), offsets.tolist(), sentences, tokens, bad, cut) == (
        expected_ids.tolist(),
        expected_offsets.tolist(),
        expected.sentences,
        expected.raw_words,
        -1,
        None,
    )


# ---------------------------------------------------------------- byte ranges


@pytest.fixture
def ragged(tmp_path):
    """Short and empty lines, multi-byte characters, and no newline at the end."""
    text = "a \u00e9t\u00e9\n\nbb a\u00a0c\n\u6f22\u5b57 a  \ndd\te\u2028a\n\U0001f600 bb"
    return write(tmp_path, text.encode("utf-8"))


def test_a_cut_at_every_byte_gives_the_whole_file(ragged):
    size = ragged.stat().st_size
    whole = corpus_compiled.count_words(str(ragged), [(0, size)], 1)
    index = corpus_compiled.WordIndex(whole.words[1:])
    whole_ids = corpus_compiled.encode_words(str(ragged), [(0, size)], index, 1)
    for cut in range(size + 1):
        ranges = [(0, cut), (cut, size)]
        found = corpus_compiled.count_words(str(ragged), ranges, 2)
        assert found.words == whole.words
        assert np.array_equal(found.counts, whole.counts)
        assert np.array_equal(found.first_line, whole.first_line)
        assert np.array_equal(found.first_position, whole.first_position)
        ids = corpus_compiled.encode_words(str(ragged), ranges, index, 2)
        assert [a.tolist() for a in ids[:2]] == [a.tolist() for a in whole_ids[:2]]
        assert ids[2:] == whole_ids[2:]


def test_one_byte_ranges_give_the_whole_file(ragged):
    size = ragged.stat().st_size
    whole = corpus_compiled.count_words(str(ragged), [(0, size)], 1)
    found = corpus_compiled.count_words(str(ragged), [(b, b + 1) for b in range(size)], 3)
    assert (found.words, found.counts.tolist(), found.sentences) == (
        whole.words,
        whole.counts.tolist(),
        whole.sentences,
    )


def test_every_corpus_file_range_reads_as_python_reads_it(ragged):
    size = ragged.stat().st_size
    for start in range(size + 2):
        for end in range(start, size + 2):
            shard = CorpusFile(ragged, start, end)
            expected = scan(shard)
            assert scanned_state(scan_counts(shard, workers=2)) == scanned_state(expected)
            vocabulary = index_of(["a", "bb", "\u00e9t\u00e9"])
            assert encoded_state(encode(shard, vocabulary, 2)) == encoded_state(
                encode(list(shard), vocabulary)
            )


@pytest.mark.parametrize("world", [2, 3])
def test_shards_counted_by_the_compiled_reader_merge_into_the_whole(ragged, world):
    size = ragged.stat().st_size
    shards = [CorpusFile(ragged, size * r // world, size * (r + 1) // world) for r in range(world)]
    parts = [vocabulary_part(scan_counts(s, workers=2), s, r, world) for r, s in enumerate(shards)]
    words, counts = merge_vocabularies(parts)
    whole = python_scan(ragged)
    assert words == whole.words
    assert np.array_equal(counts, whole.counts)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("piece_bytes", [None, 3])  # lines read whole, or in pieces
@pytest.mark.parametrize("name", sorted(NOT_UTF8))
def test_text_that_is_not_utf8_raises_the_python_readers_error(
    tmp_path, name, piece_bytes, monkeypatch
):
    if piece_bytes:
        monkeypatch.setattr(corpus, "PIECE_BYTES", piece_bytes)
    path = write(tmp_path, NOT_UTF8[name])
    with pytest.raises(ValueError) as python_error:
        python_scan(path)
    assert "UTF-8" in str(python_error.value)
    for workers in (1, 2):
        with pytest.raises(ValueError) as error:
            scan_counts(CorpusFile(path), workers=workers)
        assert str(error.value) == str(python_error.value)
        with pytest.raises(ValueError) as error:
            encode(CorpusFile(path), {"ok": 0}, workers)
        assert str(error.value) == str(python_error.value)


def test_the_first_bad_line_is_reported_whatever_the_ranges(tmp_path):
    path = write(tmp_path, b"ok\n" * 50 + b"\xff first\n" + b"ok\n" * 50 + b"\xfe second\n")
    size = path.stat().st_size
    for ranges in ([(0, size)], [(0, 100), (100, size)], [(0, 160), (160, size)]):
        found = corpus_compiled.count_words(str(path), ranges, 2)
        assert found.bad_line == 150


def test_a_folder_is_refused_clearly(tmp_path):
    with pytest.raises(RuntimeError, match="not a regular file"):
        corpus_compiled.count_words(str(tmp_path), [(0, 1)], 1)
    with pytest.raises(OSError, match=re.escape(str(tmp_path))):
        torchw2v.Word2Vec(min_count=1).build_vocab(corpus_file=tmp_path)


def test_ranges_out_of_order_or_overlapping_are_refused(ragged):
    for ranges in ([(5, 10), (0, 5)], [(0, 6), (5, 10)], [(4, 3)]):
        with pytest.raises(RuntimeError, match="byte ranges must be in file order"):
            corpus_compiled.count_words(str(ragged), ranges, 1)


def test_a_missing_file_is_refused_clearly(tmp_path):
    with pytest.raises(RuntimeError, match="cannot open corpus_file .*missing.txt"):
        corpus_compiled.count_words(str(tmp_path / "missing.txt"), [(0, 1)], 1)


# ---------------------------------------------------------------- vocabularies for encoding


def test_words_no_token_can_equal_keep_their_ids(tmp_path):
    path = write(tmp_path, b"a 5 b c d \xc3\xa9\n\nd a\n")
    vocabulary = {"a": 0, "b\nc": 1, 5: 2, "\udcff": 3, "": 4, "d": 5, "\u00e9": 6}
    expected = encode(list(CorpusFile(path)), vocabulary)
    assert encoded_state(encode(CorpusFile(path), vocabulary, 2)) == encoded_state(expected)
    assert whole(expected)[0].tolist() == [0, 5, 6, 5, 0]


def test_ids_out_of_order_fall_back_to_python(tmp_path):
    path = write(tmp_path, b"a b c\n")
    vocabulary = {"b": 1, "a": 0}
    assert whole(encode(CorpusFile(path), vocabulary, 2))[0].tolist() == [0, 1]


def test_an_index_is_checked_against_its_words():
    index = corpus_compiled.WordIndex(["a", "b"])
    other = corpus_compiled.WordIndex(["a", "bc"])
    with pytest.raises(RuntimeError, match="does not belong"):
        torch.ops.torchw2v.encode_words(
            __file__, [0], [1], other.words, index.index, 1, torch.zeros(4, dtype=torch.int64)
        )


# ---------------------------------------------------------------- the model


def test_build_vocab_matches_gensim_on_the_bundled_corpus(wiki_txt, assert_same_vocab):
    theirs = gensim.models.Word2Vec(workers=1)
    theirs.build_vocab(corpus_file=str(wiki_txt))
    for workers in (1, 2, 3):
        ours = torchw2v.Word2Vec(workers=workers, device="cpu")
        ours.build_vocab(corpus_file=wiki_txt)
        assert_same_vocab(ours, theirs)


@pytest.mark.parametrize("name", ["non-ascii words", "unicode whitespace", "long line"])
def test_build_vocab_matches_gensim_on_hostile_files(tmp_path, name):
    path = write(tmp_path, HOSTILE[name])
    theirs = gensim.models.Word2Vec(min_count=1, workers=1)
    theirs.build_vocab(corpus_file=str(path))
    ours = torchw2v.Word2Vec(min_count=1, workers=2, device="cpu")
    ours.build_vocab(corpus_file=path)
    assert ours.wv.index_to_key == theirs.wv.index_to_key
    assert np.array_equal(ours.wv.expandos["count"], theirs.wv.expandos["count"])


def vocabulary_and_vectors(path, monkeypatch, compiled: bool, update_with=None):
    """build_vocab (and optionally an online update) and one epoch on ``path``."""
    with monkeypatch.context() as patch:
        if not compiled:
            python_path(patch)
        model = torchw2v.Word2Vec(
            vector_size=16, min_count=2, workers=1, seed=7, epochs=1, device="cpu"
        )
        model.build_vocab(corpus_file=path)
        model.train(corpus_file=path, total_examples=model.corpus_count, epochs=1)
        if update_with is not None:
            model.build_vocab(corpus_file=update_with, update=True)
            model.train(corpus_file=update_with, total_examples=model.corpus_count, epochs=1)
        return model


@pytest.fixture
def two_files(tmp_path, wiki_head):
    first = "".join(" ".join(s) + "\n" for s in wiki_head[:300])
    second = "".join(" ".join(s) + "\n" for s in wiki_head[300:500])
    return write(tmp_path, first.encode(), "first.txt"), write(tmp_path, second.encode(), "b.txt")


def test_training_on_a_file_is_bit_identical_to_the_python_reader(two_files, monkeypatch):
    first, second = two_files
    compiled = vocabulary_and_vectors(first, monkeypatch, True, update_with=second)
    python = vocabulary_and_vectors(first, monkeypatch, False, update_with=second)
    assert compiled.wv.index_to_key == python.wv.index_to_key
    assert np.array_equal(compiled.wv.expandos["count"], python.wv.expandos["count"])
    assert (compiled.corpus_count, compiled.corpus_total_words) == (
        python.corpus_count,
        python.corpus_total_words,
    )
    assert np.array_equal(compiled.wv.vectors, python.wv.vectors)
    assert np.array_equal(compiled.syn1neg, python.syn1neg)


def test_max_vocab_size_reads_in_python(tmp_path, wiki_head, monkeypatch):
    path = write(tmp_path, "".join(" ".join(s) + "\n" for s in wiki_head[:200]).encode())
    expected = scan(CorpusFile(path), max_vocab_size=300)
    monkeypatch.setattr(corpus_compiled, "count_words", None)  # would raise if called
    scanned = scan_counts(CorpusFile(path), max_vocab_size=300, workers=2)
    assert scanned_state(scanned) == scanned_state(expected)


def test_disabling_the_compiled_code_reads_in_python(tmp_path, child_env):
    path = write(tmp_path, b"a b a\nb a\n")
    code = (
        "import torchw2v; from torchw2v import corpus_compiled as c; "
        f"m = torchw2v.Word2Vec(min_count=1); m.build_vocab(corpus_file={str(path)!r}); "
        "print(c.is_available(), m.wv.index_to_key)"
    )
    env = {**child_env, "TORCHW2V_DISABLE_COMPILED": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "['a',", "'b']"]


# ---------------------------------------------------------------- progress


def test_the_scan_logs_what_the_python_scan_logs(tmp_path, caplog):
    path = write(tmp_path, HOSTILE["non-ascii words"])
    with caplog.at_level(logging.INFO, logger="torchw2v.corpus"):
        python_scan(path)
        scan_counts(CorpusFile(path), workers=2)
    collected = [r.getMessage() for r in caplog.records if r.getMessage().startswith("collected")]
    assert len(collected) == 2 and collected[0] == collected[1]


class FakeOp(threading.Thread):
    """A thread that publishes progress as the op does, one step per join()."""

    def __init__(self, control, steps):
        super().__init__()
        self.control, self.steps = control, list(steps)

    def is_alive(self):
        return bool(self.steps)

    def join(self, timeout=None):
        self.control[1:4] = torch.tensor(self.steps.pop(0))


def test_progress_is_logged_every_progress_per_sentences(caplog):
    control = torch.zeros(4, dtype=torch.int64)
    steps = [(10, 50, 500), (20, 90, 900), (30, 260, 2600), (40, 270, 2700), (50, 300, 3000)]
    bar = corpus_compiled.tqdm(total=50, disable=True)
    with caplog.at_level(logging.INFO, logger="torchw2v.corpus_compiled"):
        corpus_compiled._report(FakeOp(control, steps), control, bar, 50, False, 100)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "PROGRESS: at sentence #260, processed 2600 words, 60% of the bytes",
    ]


def test_the_bar_follows_the_bytes_read():
    control = torch.zeros(4, dtype=torch.int64)
    steps = [(10, 1, 1), (35, 2, 2), (50, 3, 3)]
    bar = corpus_compiled.tqdm(total=50, file=io.StringIO())
    corpus_compiled._report(FakeOp(control, steps), control, bar, 50, True, 100)
    assert bar.n == 50


def test_an_interrupt_stops_the_ops_threads(monkeypatch):
    seen = []

    def run(control):
        while not int(control[0]):
            pass
        seen.append("stopped")
        return None

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(corpus_compiled, "_report", interrupted)
    with pytest.raises(KeyboardInterrupt):
        corpus_compiled._run_reporting(run, 1, 10, "test", None)
    assert seen == ["stopped"]


def test_the_op_stops_when_asked(tmp_path):
    path = write(tmp_path, b"a\nb\nc\nd\n")
    control = torch.zeros(7, dtype=torch.int64)
    control[0] = 1
    *_, totals = torch.ops.torchw2v.count_words(str(path), [0, 4], [4, 8], 2, control)
    assert totals[0].item() == 2  # one line per range, then stop


def test_ranges_are_one_per_worker_but_at_least_a_mebibyte():
    assert corpus_compiled.split_range(0, 10, 4) == [(0, 10)]
    mib = corpus_compiled.MIN_RANGE_BYTES
    assert corpus_compiled.split_range(5, 5 + 4 * mib, 2) == [
        (5, 5 + 2 * mib),
        (5 + 2 * mib, 5 + 4 * mib),
    ]
    assert len(corpus_compiled.split_range(0, 100 * mib, 3)) == 3
    assert corpus_compiled.split_range(0, 0, 3) == [(0, 0)]
