"""Input adapters: every corpus form gensim takes gives the same vocabulary; bad inputs fail."""

from __future__ import annotations

import bz2
import gzip
import os
import re
import tracemalloc
from pathlib import Path

import gensim
import numpy as np
import pytest
from encoded import whole
from gensim.models.word2vec import LineSentence, PathLineSentences, Text8Corpus

import torchw2v
from torchw2v.corpus import CorpusFile, as_sentences, encode, scan


def ours(**settings):
    settings.setdefault("min_count", 2)
    return torchw2v.Word2Vec(sg=1, device="cpu", engine="torch", **settings)


def theirs(**settings):
    settings.setdefault("min_count", 2)
    return gensim.models.Word2Vec(sg=1, workers=1, **settings)


def write_lines(path, sentences):
    path.write_text("".join(" ".join(s) + "\n" for s in sentences), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sentences(wiki_head):
    return wiki_head[:500]


@pytest.fixture
def corpus_files(tmp_path, sentences):
    """The same sentences as a plain, a .gz and a .bz2 LineSentence file."""
    text = "".join(" ".join(s) + "\n" for s in sentences).encode("utf-8")
    plain = tmp_path / "corpus.txt"
    plain.write_bytes(text)
    gz = tmp_path / "corpus.txt.gz"
    gz.write_bytes(gzip.compress(text))
    bz = tmp_path / "corpus.txt.bz2"
    bz.write_bytes(bz2.compress(text))
    return {"plain": plain, "gz": gz, "bz2": bz}


@pytest.fixture(scope="module")
def reference(sentences):
    """Vocabulary built by torchw2v from the in-memory list of token lists."""
    model = ours()
    model.build_vocab(sentences)
    return model


def test_list_of_token_lists_matches_gensim(sentences, reference, assert_same_vocab):
    model = theirs()
    model.build_vocab(sentences)
    assert_same_vocab(reference, model)
    assert reference.corpus_count == len(sentences)
    assert reference.corpus_total_words == sum(map(len, sentences))


@pytest.mark.parametrize("kind", ["plain", "gz", "bz2"])
def test_corpus_file_gives_the_same_vocabulary(corpus_files, kind, reference, assert_same_vocab):
    model = ours()
    model.build_vocab(corpus_file=corpus_files[kind])
    assert_same_vocab(model, reference)
    gensim_model = theirs()  # gensim refuses compressed corpus_file paths: give it the plain one
    gensim_model.build_vocab(corpus_file=str(corpus_files["plain"]))
    assert_same_vocab(model, gensim_model)


@pytest.mark.parametrize("kind", ["plain", "gz", "bz2"])
def test_corpus_file_as_str_and_path(corpus_files, kind, reference, assert_same_vocab):
    model = ours()
    model.build_vocab(corpus_file=str(corpus_files[kind]))
    assert_same_vocab(model, reference)


def test_line_sentence(corpus_files, reference, assert_same_vocab):
    model = ours()
    model.build_vocab(LineSentence(str(corpus_files["gz"])))
    assert_same_vocab(model, reference)
    gensim_model = theirs()
    gensim_model.build_vocab(LineSentence(str(corpus_files["gz"])))
    assert_same_vocab(model, gensim_model)


def test_path_line_sentences(tmp_path, sentences, reference, assert_same_vocab):
    folder = tmp_path / "parts"
    folder.mkdir()
    write_lines(folder / "b.txt", sentences[200:])  # read in sorted name order
    write_lines(folder / "a.txt", sentences[:200])
    model = ours()
    model.build_vocab(PathLineSentences(str(folder)))
    assert_same_vocab(model, reference)
    gensim_model = theirs()
    gensim_model.build_vocab(PathLineSentences(str(folder)))
    assert_same_vocab(model, gensim_model)


def test_text8_corpus(tmp_path, sentences, reference, assert_same_vocab):
    path = tmp_path / "text8"
    path.write_text(" ".join(w for s in sentences for w in s), encoding="utf-8")
    model = ours()
    model.build_vocab(Text8Corpus(str(path)))
    gensim_model = theirs()
    gensim_model.build_vocab(Text8Corpus(str(path)))
    assert_same_vocab(model, gensim_model)
    # one stream cut into 10,000-word sentences: same words and counts as the line corpus
    assert model.wv.index_to_key == reference.wv.index_to_key
    assert np.array_equal(model.wv.expandos["count"], reference.wv.expandos["count"])
    assert model.corpus_count == -(-reference.corpus_total_words // 10000)


def test_custom_restartable_iterable(sentences, reference, assert_same_vocab):
    class Corpus:
        def __iter__(self):
            for sentence in sentences:
                yield list(sentence)

    model = ours()
    model.build_vocab(Corpus())
    assert_same_vocab(model, reference)


def test_tuples_of_tokens_are_accepted(sentences, reference, assert_same_vocab):
    model = ours()
    model.build_vocab([tuple(s) for s in sentences])
    assert_same_vocab(model, reference)


# ---------------------------------------------------------------- inputs that are refused


@pytest.mark.parametrize(
    "make", [lambda s: (x for x in s), lambda s: iter(s), lambda s: map(list, s)], ids=str
)
def test_one_shot_iterators_are_refused(sentences, make):
    with pytest.raises(TypeError, match="restartable"):
        ours().build_vocab(make(sentences))
    with pytest.raises(TypeError, match="restartable"):
        ours(sentences=make(sentences))


@pytest.mark.parametrize("text", ["the cat sat on the mat", b"the cat sat on the mat"])
def test_a_plain_string_corpus_is_refused(text):
    with pytest.raises(TypeError, match="list of token lists"):
        ours().build_vocab(text)
    with pytest.raises(TypeError, match="list of token lists"):
        ours(sentences=text)


def test_sentences_as_strings_are_refused():
    lines = ["the cat sat on the mat", "the dog sat on the log"]
    with pytest.raises(TypeError, match="list of tokens"):
        ours().build_vocab(lines)
    model = ours(min_count=1)
    model.build_vocab([s.split() for s in lines])
    with pytest.raises(TypeError, match="list of tokens"):
        model.train(lines, total_examples=2, epochs=1)


def test_a_non_iterable_is_refused():
    with pytest.raises(TypeError, match="iterable"):
        ours().build_vocab(42)


def test_exactly_one_corpus_argument(sentences, corpus_files):
    with pytest.raises(TypeError, match="exactly one"):
        ours().build_vocab()
    with pytest.raises(TypeError, match="exactly one"):
        ours().build_vocab(sentences, corpus_file=corpus_files["plain"])
    with pytest.raises(TypeError, match="exactly one"):
        ours(sentences=sentences, corpus_file=corpus_files["plain"])
    model = ours()
    model.build_vocab(sentences)
    with pytest.raises(TypeError, match="exactly one"):
        model.train(sentences, corpus_file=corpus_files["plain"], epochs=1)


def test_missing_corpus_file(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        ours().build_vocab(corpus_file=missing)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        ours(corpus_file=str(missing))


def test_a_folder_as_corpus_file_is_named(tmp_path):
    with pytest.raises(IsADirectoryError, match=f"{tmp_path.name}' is a folder.*PathLineSentences"):
        ours().build_vocab(corpus_file=tmp_path)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        ours(corpus_file=str(tmp_path))


def test_a_pipe_or_a_device_as_corpus_file_is_refused(tmp_path):
    """Training reads the corpus several times; a pipe once, and /dev/zero never ends."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for path in (pipe, Path("/dev/zero")):
        with pytest.raises(ValueError, match="is not a regular file .*write it to a file"):
            ours().build_vocab(corpus_file=path)


@pytest.mark.parametrize("path", [5, ["corpus.txt"], b"corpus.txt"], ids=str)
def test_a_corpus_file_that_is_not_a_path_is_refused(path):
    with pytest.raises(TypeError, match=r"corpus_file must be a path \(str or pathlib.Path\)"):
        ours().build_vocab(corpus_file=path)


@pytest.mark.parametrize(
    "token", [None, 7, 2.5, b"cat", ("c", "a", "t"), ["cat"]], ids=lambda t: type(t).__name__
)
def test_a_token_that_is_not_a_string_is_named(token):
    corpus = [["the", "cat"], ["a", "dog", token, "sat"]]
    message = rf"^token #2 of sentence #1 is {re.escape(repr(token))} \({type(token).__name__}\)"
    with pytest.raises(TypeError, match=message):
        ours(min_count=1).build_vocab(corpus)
    model = ours(min_count=1)
    model.build_vocab([["the", "cat"], ["a", "dog", "sat"]])
    with pytest.raises(TypeError, match=message):  # another corpus: encoded, not scanned
        model.train(corpus, total_examples=2, epochs=1)


def test_a_token_that_is_not_a_string_is_named_before_pruning_forgets_it():
    corpus = [[f"w{i}" for i in range(20)]] * 3 + [["a", None, "b"]] + [["c", "d", "e"]] * 5
    with pytest.raises(TypeError, match=r"^token #1 of sentence #3 is None \(NoneType\)"):
        ours(min_count=1, max_vocab_size=3).build_vocab(corpus)


def test_a_sentence_that_is_not_a_list_is_named():
    with pytest.raises(TypeError, match=r"^sentence #1 is not a list of tokens but 42 \(int\)"):
        ours(min_count=1).build_vocab([["a", "b"], 42])


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress], ids=["plain", "gz"])
def test_non_utf8_corpus_file(tmp_path, compress):
    path = tmp_path / "latin1.txt"
    path.write_bytes(compress(("caf\u00e9 au lait\n" * 10).encode("latin-1")))
    with pytest.raises(ValueError, match="UTF-8"):
        ours(min_count=1).build_vocab(corpus_file=path)
    with pytest.raises(ValueError, match="UTF-8"):
        ours(corpus_file=path, min_count=1)


def _truncated_gz(text: bytes) -> bytes:
    return gzip.compress(text)[:-20]


def _garbled_gz(text: bytes) -> bytes:
    data = bytearray(gzip.compress(text))
    data[20:60] = bytes(b ^ 0x5A for b in data[20:60])
    return bytes(data)


@pytest.mark.parametrize(
    "name, damage",
    [
        ("cut.txt.gz", _truncated_gz),
        ("garbled.txt.gz", _garbled_gz),
        ("plain.txt.bz2", lambda text: text),
        ("cut.txt.bz2", lambda text: bz2.compress(text)[:-10]),
    ],
)
def test_a_damaged_compressed_corpus_file_is_named(tmp_path, name, damage):
    path = tmp_path / name
    path.write_bytes(damage(b"the quick brown fox jumps over the lazy dog\n" * 500))
    with pytest.raises(ValueError, match=f"corpus_file .*{name}.* is truncated or is not"):
        ours(min_count=1).build_vocab(corpus_file=path)


def test_utf8_corpus_file_keeps_non_ascii_words(tmp_path):
    path = tmp_path / "utf8.txt"
    path.write_text("caf\u00e9 na\u00efve \u6f22\u5b57\n" * 3, encoding="utf-8")
    model = ours(min_count=1)
    model.build_vocab(corpus_file=path)
    assert sorted(model.wv.index_to_key) == sorted(["caf\u00e9", "na\u00efve", "\u6f22\u5b57"])


# ---------------------------------------------------------------- long sentences


LONG = 12_000  # longer than gensim's 10,000-token sentence limit


@pytest.fixture
def long_line(tmp_path):
    """One line of 12,000 tokens; 'tailword' occurs 6 times, only after position 10,000."""
    rng = np.random.default_rng(0)
    tokens = [f"w{i}" for i in rng.integers(0, 40, size=LONG)]
    for position in range(10_500, 11_700, 200):
        tokens[position] = "tailword"
    assert "tailword" not in tokens[:10_000]
    return write_lines(tmp_path / "long.txt", [tokens, ["w1", "w2", "w3"]]), tokens


LINE_SENTENCE_CASES = {
    "long line": None,  # the long_line fixture
    "exactly 10,000 and 20,000 tokens": [["w"] * 10_000, ["v"] * 20_000, ["u"]],
    "empty and blank lines": "a b\n\n \t \n\nc\n\n",
    "no newline at the end": "a b\nc d e",
    "unicode spaces": "a\u00a0b\u2028c\x85d \u3000 e\x1cf\n\u2028\n",
}


@pytest.mark.parametrize("case", LINE_SENTENCE_CASES)
@pytest.mark.parametrize("piece_bytes", [None, 1, 7, 1000])
def test_a_file_reads_as_gensims_line_sentence(case, piece_bytes, long_line, tmp_path, monkeypatch):
    """Lines cut every 10,000 tokens, lines without tokens skipped, whatever the pieces a long
    line is read in; the compiled reader's sentences are the same."""
    content = LINE_SENTENCE_CASES[case]
    if content is None:
        path = long_line[0]
    elif isinstance(content, str):
        path = tmp_path / "c.txt"
        path.write_text(content, encoding="utf-8")
    else:
        path = write_lines(tmp_path / "c.txt", content)
    if piece_bytes:
        monkeypatch.setattr(torchw2v.corpus, "PIECE_BYTES", piece_bytes)
    expected = list(LineSentence(str(path)))
    assert list(CorpusFile(path)) == expected
    scanned = scan(CorpusFile(path))
    assert scanned.sentences == len(expected)
    vocabulary = {w: i for i, w in enumerate(scanned.words)}
    ids, offsets = whole(encode(CorpusFile(path), vocabulary))  # the compiled reader
    assert np.diff(offsets).tolist() == [len(s) for s in expected]
    assert [scanned.words[i] for i in ids] == [w for s in expected for w in s]


def test_a_byte_range_of_a_long_line_file(long_line, monkeypatch):
    """A shard starting inside a long line skips that line a piece at a time."""
    path, tokens = long_line
    monkeypatch.setattr(torchw2v.corpus, "PIECE_BYTES", 100)
    assert list(CorpusFile(path, 5)) == [["w1", "w2", "w3"]]
    assert list(CorpusFile(path, 0, 5)) == [tokens[:10_000], tokens[10_000:]]


def test_a_one_line_corpus_is_read_a_piece_at_a_time(tmp_path):
    """text8 is one line of 17M tokens: held whole as str tokens, it would take ~1 GB."""
    path = tmp_path / "one_line.txt"
    path.write_text(" ".join(f"w{i % 5000}" for i in range(2_000_000)), encoding="utf-8")
    tracemalloc.start()
    try:
        sentences = sum(1 for _ in CorpusFile(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sentences == 200
    assert peak < 40 << 20, f"peak {peak >> 20} MiB of Python objects"  # the line: ~130 MiB


def test_word_after_position_10000_is_counted(long_line):
    path, _ = long_line
    model = ours(min_count=5)
    model.build_vocab(corpus_file=path)
    reference = theirs(min_count=5)
    reference.build_vocab(corpus_file=str(path))
    assert model.wv.get_vecattr("tailword", "count") == 6
    assert model.corpus_count == reference.corpus_count == 3  # the line is two sentences
    assert model.corpus_total_words == reference.corpus_total_words == LONG + 3


def test_long_sentence_is_trained_to_its_end(long_line):
    """A word seen only after token 10,000 of a sentence gets trained (the sentence is cut
    into two); gensim drops it."""
    _, tokens = long_line
    corpus = [tokens]
    settings = {"vector_size": 8, "min_count": 5, "sample": 0, "epochs": 1, "seed": 3}
    model = ours(**settings)
    model.build_vocab(corpus)
    before = model.wv["tailword"].copy()
    model.train(corpus, total_examples=1, epochs=1)
    assert not np.allclose(model.wv["tailword"], before)

    g = gensim.models.Word2Vec(sg=1, workers=1, **settings)
    g.build_vocab(corpus)
    g_before = g.wv.vectors.copy()
    g.train(corpus, total_examples=1, epochs=1)
    tail = g.wv.key_to_index["tailword"]
    assert np.array_equal(g.wv.vectors[tail], g_before[tail])  # gensim never reaches it
    assert not np.allclose(g.wv["w1"], g_before[g.wv.key_to_index["w1"]])  # but trains the rest


# ---------------------------------------------------------------- the adapters directly


def test_as_sentences_returns_restartable_input(sentences, corpus_files):
    assert as_sentences(sentences) is sentences
    from_file = as_sentences(corpus_file=corpus_files["bz2"])
    assert isinstance(from_file, CorpusFile)
    assert list(from_file) == list(from_file) == [list(s) for s in sentences]


def test_encode_drops_unknown_words_but_counts_them():
    corpus = encode([["a", "zz", "b"], [], ["zz"], ["b", "a"]], {"a": 0, "b": 1})
    ids, offsets = whole(corpus)
    assert ids.tolist() == [0, 1, 1, 0]
    assert offsets.tolist() == [0, 2, 2, 2, 4]
    assert corpus.raw_words == 6
    assert corpus.sentences == 4
