"""``torchw2v.export``: gensim's bytes written fast, any word2vec file read fast, clear errors.

The writer is checked byte for byte against gensim's ``KeyedVectors.save_word2vec_format``;
the reader against gensim's ``load_word2vec_format`` on files written by gensim, by the writer
and by hand in word2vec.c's layout; every damaged input must stop with a message that names
the file, the place and the fix.
"""

from __future__ import annotations

import gzip
import logging
import struct
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from torchw2v import export
from torchw2v.cli import main
from torchw2v.export import load_word2vec_format, save_word2vec_format

SPECIAL = [0.0, -0.0, 1e-5, -1e-4, 1e-4, 9.9999e-5, 0.5, 1.0, 100.0, 999999.94, 1e6, -1e7]
SPECIAL += [123456789.0, 3.4028235e38, 1e-45, -1.1754942e-38, 16777216.0, 0.1, 1 / 3]


def keyed_vectors(vectors: np.ndarray, words: list | None = None, counts=None) -> KeyedVectors:
    """A ``KeyedVectors`` of ``vectors`` under ``words`` (w0, w1, ...), with ``count``s if given."""
    kv = KeyedVectors(vectors.shape[1], dtype=vectors.dtype)
    kv.add_vectors(words or [f"w{i}" for i in range(len(vectors))], vectors)
    if counts is not None:
        kv.allocate_vecattrs(["count"], [int])
        kv.expandos["count"][:] = counts
    return kv


@pytest.fixture(scope="module")
def kv() -> KeyedVectors:
    """1,500 random vectors of 40 dimensions, unicode words, special values, tied counts."""
    rng = np.random.default_rng(7)
    vectors = ((rng.random((1500, 40)) - 0.5) / 40).astype(np.float32)
    vectors[1, : len(SPECIAL)] = SPECIAL
    vectors[2] = rng.standard_normal(40) * 1e3
    vectors[3] = rng.integers(-50, 50, 40)
    words = [f"w{i}" for i in range(1500)]
    words[4:8] = ["héllo", "日本語", "naïve-café", "emoji🙂"]
    return keyed_vectors(vectors, words, counts=rng.integers(1, 30, 1500))


def written_by_gensim(kv: KeyedVectors, path: Path, **kwargs) -> bytes:
    kv.save_word2vec_format(str(path), **kwargs)
    return path.read_bytes()


def assert_same_vectors(ours: KeyedVectors, theirs: KeyedVectors) -> None:
    assert ours.index_to_key == theirs.index_to_key
    assert ours.key_to_index == theirs.key_to_index
    assert ours.vectors.dtype == theirs.vectors.dtype
    np.testing.assert_array_equal(ours.vectors, theirs.vectors)
    np.testing.assert_array_equal(ours.expandos["count"], theirs.expandos["count"])


# ------------------------------------------------------------------ writing: gensim's bytes


@pytest.mark.parametrize("binary", [False, True])
def test_writes_gensim_bytes(kv, binary, tmp_path):
    expected = written_by_gensim(kv, tmp_path / "gensim", binary=binary)
    save_word2vec_format(kv, tmp_path / "ours", binary=binary)
    assert (tmp_path / "ours").read_bytes() == expected


@pytest.mark.parametrize("binary", [False, True])
def test_writes_gensim_bytes_with_options(kv, binary, tmp_path):
    options = {"prefix": "pre_", "total_vec": 9999, "binary": binary}
    expected = written_by_gensim(kv, tmp_path / "gensim", **options)
    save_word2vec_format(kv, tmp_path / "ours", **options)
    assert (tmp_path / "ours").read_bytes() == expected
    expected = written_by_gensim(kv, tmp_path / "gensim", write_header=False, binary=binary)
    save_word2vec_format(kv, tmp_path / "ours", write_header=False, binary=binary)
    assert (tmp_path / "ours").read_bytes() == expected


def test_without_counts_keeps_index_order(tmp_path, caplog):
    vectors = np.random.default_rng(1).random((50, 8)).astype(np.float32)
    kv = keyed_vectors(vectors)  # no "count" attribute
    expected = written_by_gensim(kv, tmp_path / "gensim")
    with caplog.at_level(logging.WARNING, logger="torchw2v.export"):
        save_word2vec_format(kv, tmp_path / "ours")
    assert (tmp_path / "ours").read_bytes() == expected
    assert "attribute count not present" in caplog.text


@pytest.mark.parametrize("seed", [0, 1])
def test_text_of_any_float32_is_gensims(seed, tmp_path):
    """Random bit patterns: every exponent, subnormals, NaN, infinities, exact ties."""
    bits = np.random.default_rng(seed).integers(0, 2**32, (400, 250), dtype=np.uint64)
    vectors = bits.astype(np.uint32).view(np.float32)
    vectors[:200] = np.where(np.isfinite(vectors[:200]), vectors[:200], 1.5)  # mostly plain rows
    kv = keyed_vectors(vectors)
    expected = written_by_gensim(kv, tmp_path / "gensim")
    save_word2vec_format(kv, tmp_path / "ours")
    assert (tmp_path / "ours").read_bytes() == expected


def test_text_of_dyadic_and_integer_values_is_gensims(tmp_path):
    """Exact binary fractions and integers, where decimal ties are common."""
    values = np.concatenate([np.arange(1, 6001) / 1024, np.arange(-3000, 3000) * 37.0])
    kv = keyed_vectors(values.astype(np.float32).reshape(-1, 60))
    expected = written_by_gensim(kv, tmp_path / "gensim")
    save_word2vec_format(kv, tmp_path / "ours")
    assert (tmp_path / "ours").read_bytes() == expected


@pytest.mark.parametrize("legacy", ["1.13", "2.2"])
def test_text_follows_numpys_print_mode(kv, legacy, tmp_path):
    """numpy's legacy modes print float32 differently; gensim's bytes follow, and so do ours."""
    try:
        options = np.printoptions(legacy=legacy)
        options.__enter__()
    except ValueError:
        pytest.skip(f"this numpy has no legacy={legacy!r} print mode")
    try:
        expected = written_by_gensim(kv, tmp_path / "gensim")
        save_word2vec_format(kv, tmp_path / "ours")
    finally:
        options.__exit__(None, None, None)
    assert (tmp_path / "ours").read_bytes() == expected


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_text_of_other_dtypes_is_gensims(dtype, tmp_path):
    vectors = np.random.default_rng(3).standard_normal((30, 6)).astype(dtype)
    kv = keyed_vectors(vectors, counts=np.arange(30, 0, -1))
    for binary in (False, True):
        expected = written_by_gensim(kv, tmp_path / "gensim", binary=binary)
        save_word2vec_format(kv, tmp_path / "ours", binary=binary)
        assert (tmp_path / "ours").read_bytes() == expected


def test_empty_vectors(tmp_path):
    kv = keyed_vectors(np.zeros((0, 5), dtype=np.float32), words=[], counts=[])
    for binary in (False, True):
        save_word2vec_format(kv, tmp_path / "ours", binary=binary)
        assert (tmp_path / "ours").read_bytes() == b"0 5\n"
        loaded = load_word2vec_format(tmp_path / "ours", binary=binary)
        assert len(loaded) == 0 and loaded.vectors.shape == (0, 5)


def test_failed_write_leaves_the_old_file(kv, tmp_path, monkeypatch):
    path = tmp_path / "vectors.txt"
    path.write_bytes(b"old")

    def broken(*args):
        yield b"half of the "
        raise OSError("disk full")

    monkeypatch.setattr(export, "_text_records", broken)
    with pytest.raises(OSError, match="disk full"):
        save_word2vec_format(kv, path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["vectors.txt"]  # no temporary file left


def test_inconsistent_vectors_are_refused(tmp_path):
    kv = keyed_vectors(np.ones((3, 4), dtype=np.float32))
    kv.vectors = kv.vectors[:2]
    with pytest.raises(ValueError, match=r"vectors are \(2, 4\), not \(3, 4\)"):
        save_word2vec_format(kv, tmp_path / "v.txt")


# ------------------------------------------------------------------ reading


@pytest.mark.parametrize("binary", [False, True])
def test_reads_what_gensim_writes_as_gensim_does(kv, binary, tmp_path):
    kv.save_word2vec_format(str(tmp_path / "v"), binary=binary)
    theirs = KeyedVectors.load_word2vec_format(str(tmp_path / "v"), binary=binary)
    assert_same_vectors(load_word2vec_format(tmp_path / "v", binary=binary), theirs)
    assert_same_vectors(load_word2vec_format(tmp_path / "v"), theirs)  # told apart


@pytest.mark.parametrize("binary", [False, True])
def test_round_trip_is_exact(kv, binary, tmp_path):
    save_word2vec_format(kv, tmp_path / "v", binary=binary)
    loaded = load_word2vec_format(tmp_path / "v")
    order = [kv.key_to_index[word] for word in loaded.index_to_key]
    assert sorted(loaded.index_to_key) == sorted(kv.index_to_key)
    np.testing.assert_array_equal(loaded.vectors, kv.vectors[order])  # text too: shortest digits
    assert loaded.lifecycle_events[-1]["binary"] is binary


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("datatype", [np.float64, np.float16])
def test_datatype_as_gensim(binary, datatype, tmp_path):
    vectors = np.random.default_rng(4).standard_normal((100, 12)).astype(np.float32)
    kv = keyed_vectors(vectors, counts=np.arange(100, 0, -1))
    kv.save_word2vec_format(str(tmp_path / "v"), binary=binary)
    theirs = KeyedVectors.load_word2vec_format(
        str(tmp_path / "v"), binary=binary, datatype=datatype
    )
    ours = load_word2vec_format(tmp_path / "v", binary=binary, datatype=datatype)
    assert_same_vectors(ours, theirs)


def word2vec_c_file(path: Path, words: list[bytes], vectors: np.ndarray, binary: bool, **layout):
    """A vectors file laid out by hand as word2vec.c writes it.

    Binary: ``word<space><float32 values>\\n`` per vector (``newlines=False``: no newline, as
    gensim writes). Text: ``word v1 v2 ... \\n`` with "%lf " values (a trailing space), the
    last line's newline left out with ``last_newline=False``; ``crlf=True`` ends lines "\\r\\n".
    """
    rows = []
    for word, vector in zip(words, vectors):
        if binary:
            end = b"\n" if layout.get("newlines", True) else b""
            rows.append(word + b" " + struct.pack(f"<{len(vector)}f", *vector) + end)
        else:
            end = b"\r\n" if layout.get("crlf") else b"\n"
            rows.append(word + b" " + b"".join(b"%f " % v for v in vector) + end)
    data = f"{len(words)} {vectors.shape[1]}\n".encode() + b"".join(rows)
    if not binary and not layout.get("last_newline", True):
        data = data.rstrip(b"\r\n")
    path.write_bytes(data)
    return path


WORDS = [b"</s>", b"the", b"caf\xc3\xa9", b"x" * 150, b"\xe6\x97\xa5"]


@pytest.mark.parametrize(
    ("binary", "layout"),
    [
        (True, {}),
        (True, {"newlines": False}),
        (False, {}),
        (False, {"last_newline": False}),
        (False, {"crlf": True}),
    ],
)
def test_reads_word2vec_c_files_as_gensim_does(binary, layout, tmp_path):
    vectors = np.random.default_rng(5).standard_normal((len(WORDS), 7)).astype(np.float32)
    vectors[:, 0] = [32.0, 10.0, 0.0, 8.0, 1.0]  # 0x20 and 0x0a bytes inside binary vectors
    path = word2vec_c_file(tmp_path / "c.vec", WORDS, vectors, binary, **layout)
    theirs = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert_same_vectors(load_word2vec_format(path), theirs)
    assert load_word2vec_format(path).index_to_key[2:] == ["café", "x" * 150, "日"]


@pytest.mark.parametrize("binary", [False, True])
def test_gz_paths(kv, binary, tmp_path):
    path = tmp_path / "vectors.gz"
    save_word2vec_format(kv, path, binary=binary)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    plain = tmp_path / "plain"
    save_word2vec_format(kv, plain, binary=binary)
    assert gzip.decompress(path.read_bytes()) == plain.read_bytes()
    theirs = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert_same_vectors(load_word2vec_format(path), theirs)
    kv.save_word2vec_format(str(tmp_path / "gensim.txt.gz"), binary=binary)
    assert_same_vectors(load_word2vec_format(tmp_path / "gensim.txt.gz"), theirs)


@pytest.mark.parametrize("binary", [False, True])
def test_limit(kv, binary, tmp_path):
    kv.save_word2vec_format(str(tmp_path / "v"), binary=binary)
    theirs = KeyedVectors.load_word2vec_format(str(tmp_path / "v"), binary=binary, limit=10)
    ours = load_word2vec_format(tmp_path / "v", limit=10)
    assert len(ours) == 10
    assert_same_vectors(ours, theirs)
    assert len(load_word2vec_format(tmp_path / "v", limit=0)) == len(kv)  # 0: all, as gensim


def test_limit_reads_a_truncated_file_up_to_its_end(kv, tmp_path):
    kv.save_word2vec_format(str(tmp_path / "v"), binary=True)
    data = (tmp_path / "v").read_bytes()
    (tmp_path / "v").write_bytes(data[: len(data) // 2])
    assert len(load_word2vec_format(tmp_path / "v", limit=100)) == 100


def test_long_lines_across_blocks(monkeypatch, tmp_path):
    """Lines and records longer than a read block, split anywhere."""
    monkeypatch.setattr(export, "BLOCK_BYTES", 97)
    vectors = np.random.default_rng(2).standard_normal((20, 64)).astype(np.float32)
    kv = keyed_vectors(vectors, counts=np.arange(20, 0, -1))
    for binary in (False, True):
        kv.save_word2vec_format(str(tmp_path / "v"), binary=binary)
        theirs = KeyedVectors.load_word2vec_format(str(tmp_path / "v"), binary=binary)
        assert_same_vectors(load_word2vec_format(tmp_path / "v"), theirs)


def test_unicode_errors_as_gensim(tmp_path):
    words = [b"ok", b"cut\xe6\x97", b"\xff\xfebad"]
    vectors = np.ones((3, 4), dtype=np.float32)
    for binary in (False, True):
        path = word2vec_c_file(tmp_path / f"u{binary}", words, vectors, binary)
        for errors in ("replace", "ignore"):
            theirs = KeyedVectors.load_word2vec_format(
                str(path), binary=binary, unicode_errors=errors
            )
            assert_same_vectors(load_word2vec_format(path, unicode_errors=errors), theirs)


def test_duplicate_words_keep_the_first(tmp_path, caplog):
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = word2vec_c_file(tmp_path / "d.vec", [b"a", b"b", b"a"], vectors, binary=False)
    with caplog.at_level(logging.WARNING, logger="torchw2v.export"):
        loaded = load_word2vec_format(path)
    assert loaded.index_to_key == ["a", "b"]
    np.testing.assert_array_equal(loaded.vectors, vectors[:2])
    assert "duplicate word 'a'" in caplog.text


# ------------------------------------------------------------------ errors


@pytest.fixture()
def text_file(tmp_path) -> Path:
    vectors = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    return word2vec_c_file(tmp_path / "v.txt", [b"a", b"b", b"c", b"d"], vectors, binary=False)


@pytest.fixture()
def binary_file(tmp_path) -> Path:
    vectors = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    return word2vec_c_file(tmp_path / "v.bin", [b"a", b"b", b"c", b"d"], vectors, binary=True)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such vectors file") as err:
        load_word2vec_format(tmp_path / "missing.vec")
    assert err.value.filename == str(tmp_path / "missing.vec")


def test_folder_instead_of_a_file(tmp_path):
    with pytest.raises(IsADirectoryError, match="a folder, not a vectors file"):
        load_word2vec_format(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.vec").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.vec is empty; .*header .*write the vectors"):
        load_word2vec_format(tmp_path / "empty.vec")


@pytest.mark.parametrize(
    "header",
    [b"hello world\n", b"3\n", b"3 4 5\n", b"3 0\n", b"-1 4\n", b"\xff\xfe 3\n", b"7" * 5000],
)
def test_bad_header(header, tmp_path):
    (tmp_path / "bad.vec").write_bytes(header + b"a 1 2 3 4\n")
    with pytest.raises(ValueError, match=r"bad\.vec: line 1 should be the header") as err:
        load_word2vec_format(tmp_path / "bad.vec")
    assert "no_header=True" in str(err.value)


def test_truncated_text(text_file):
    text_file.write_bytes(b"".join(text_file.read_bytes().splitlines(keepends=True)[:3]))
    with pytest.raises(ValueError, match=r"ends at line 4, after 2 of the 4 vectors") as err:
        load_word2vec_format(text_file)
    assert "truncated" in str(err.value) and "limit=2" in str(err.value)


@pytest.mark.parametrize("cut", [2, 5, 13])  # 1 would only drop the last newline
def test_truncated_binary(binary_file, cut):
    binary_file.write_bytes(binary_file.read_bytes()[:-cut])
    with pytest.raises(ValueError, match=r"ends inside vector 4, after 3 of the 4 vectors"):
        load_word2vec_format(binary_file, binary=True)


def test_binary_without_spaces_ends_in_an_error(tmp_path):
    (tmp_path / "v.bin").write_bytes(b"2 3\n" + b"\x01" * 100_000)
    with pytest.raises(ValueError, match="ends inside vector 1, after 0 of the 2 vectors"):
        load_word2vec_format(tmp_path / "v.bin", binary=True)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"c 1.0 2.0\n", r"line 4: the word 'c' has 2 values, but the header says 3"),
        (b"c 1.0 2.0 3.0 4.0\n", r"line 4: the word 'c' has 4 values, but the header says 3"),
        (b"c\n", r"line 4: expected a word and 3 numbers, found 'c'"),
        (b"\n", r"line 4: expected a word and 3 numbers, found ''"),
        (b"c 1.0 two 3.0\n", r"line 4: 'two' is not a number"),
        (b"c 1.0 2,5 3.0\n", r"line 4: '2,5' is not a number"),
    ],
)
def test_bad_text_lines(text_file, line, message):
    lines = text_file.read_bytes().splitlines(keepends=True)
    text_file.write_bytes(b"".join(lines[:3] + [line] + lines[4:]))
    with pytest.raises(ValueError, match=message):
        load_word2vec_format(text_file)


def test_binary_file_read_as_text_says_so(binary_file):
    with pytest.raises(ValueError, match=r"v\.bin: line \d+: .*pass binary=True"):
        load_word2vec_format(binary_file, binary=False)


@pytest.mark.parametrize("binary", [False, True])
def test_non_utf8_words(binary, tmp_path):
    vectors = np.ones((3, 2), dtype=np.float32)
    path = word2vec_c_file(tmp_path / "v", [b"ok", b"caf\xe9", b"x"], vectors, binary)
    place = "vector 2" if binary else "line 3"
    with pytest.raises(ValueError, match=rf"{place}: the word b'caf\\xe9' is not valid utf8"):
        load_word2vec_format(path)
    with pytest.raises(ValueError, match="unicode_errors='replace'"):
        load_word2vec_format(path)
    assert load_word2vec_format(path, encoding="latin1").index_to_key == ["ok", "café", "x"]


def test_damaged_gzip(kv, tmp_path):
    path = tmp_path / "v.txt.gz"
    save_word2vec_format(kv, path)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"v\.txt\.gz: cannot read it .*damaged"):
        load_word2vec_format(path)
    (tmp_path / "fake.gz").write_bytes(b"3 4\nnot gzip at all")
    with pytest.raises(ValueError, match=r"fake\.gz: cannot read it"):
        load_word2vec_format(tmp_path / "fake.gz")


def test_impossible_header_size(tmp_path):
    (tmp_path / "huge.vec").write_bytes(b"1000000000000000 1000000\na 1\n")
    with pytest.raises(ValueError, match=r"header announces 1000000000000000 vectors .*limit="):
        load_word2vec_format(tmp_path / "huge.vec")


def test_negative_limit(text_file):
    with pytest.raises(ValueError, match="limit must be"):
        load_word2vec_format(text_file, limit=-1)


def test_cli_evaluate_reports_a_damaged_file_in_one_line(text_file, capsys):
    text_file.write_bytes(b"".join(text_file.read_bytes().splitlines(keepends=True)[:3]))
    assert main(["evaluate", str(text_file)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("torchw2v: error: ") and "\n" not in err
    assert "after 2 of the 4 vectors" in err
