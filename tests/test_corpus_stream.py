"""Every corpus is streamed: read block by block every epoch, its ids never all held, yet cut
into exactly the chunks of the same corpus held in memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from encoded import whole
from hypothesis import given, settings
from hypothesis import strategies as st
from smart_open import open as smart_open

import torchw2v
from torchw2v import corpus, corpus_compiled, trainer
from torchw2v.corpus import CorpusFile, encode
from torchw2v.corpus_compiled import WordIndex

pytestmark = pytest.mark.skipif(
    not corpus_compiled.is_available(), reason="the compiled corpus reader does not build here"
)

LINES = st.lists(st.lists(st.sampled_from(["a", "b", "cc", "out", "é"]), max_size=12), max_size=40)


def chunk_lists(chunks):
    return [(ids.tolist(), offsets.tolist(), start) for ids, offsets, start in chunks]


def held_plan(ids, offsets, chunk_words):
    """The plan and chunks of the corpus ``ids``/``offsets`` held whole: the reference."""
    marks = np.arange(chunk_words, offsets[-1], chunk_words)
    bounds = np.unique(np.concatenate(([0], np.searchsorted(offsets, marks), [offsets.size - 1])))
    if bounds.size > 2 and offsets[-1] - offsets[bounds[-2]] < chunk_words / 2:
        bounds = np.delete(bounds, -2)  # the last chunk joins the one before
    chunks = [
        (ids[offsets[a] : offsets[b]], offsets[a : b + 1] - offsets[a], int(offsets[a]))
        for a, b in zip(bounds[:-1], bounds[1:])
    ]
    return bounds, offsets[bounds], chunks


@settings(max_examples=60, deadline=None)
@given(
    lines=LINES,
    block_bytes=st.integers(1, 64),
    block_words=st.integers(1, 16),
    chunk_words=st.integers(1, 20),
    workers=st.sampled_from([1, 2]),
)
def test_streamed_chunks_are_the_held_corpus_chunks(
    tmp_path_factory, lines, block_bytes, block_words, chunk_words, workers
):
    path = tmp_path_factory.mktemp("stream") / "corpus.txt"
    path.write_text("".join(" ".join(line) + "\n" for line in lines), encoding="utf-8")
    vocabulary = {"a": 0, "cc": 1, "é": 2, "b": 3}  # "out" is dropped: sentences of no id
    saved = corpus.BLOCK_BYTES, corpus.BLOCK_WORDS
    corpus.BLOCK_BYTES, corpus.BLOCK_WORDS = block_bytes, block_words
    try:  # the compiled reader (a file skips empty lines, as LineSentence does), then Python
        for sentences, held in (
            (CorpusFile(path), [line for line in lines if line]),
            (lines, lines),
        ):
            ids = np.array(
                [vocabulary[w] for line in held for w in line if w in vocabulary], np.int32
            )
            lengths = [sum(w in vocabulary for w in line) for line in held]
            offsets = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
            bounds, done, chunks = held_plan(ids, offsets, chunk_words)
            streamed = encode(sentences, vocabulary, workers, chunk_words)
            assert (streamed.tokens, streamed.sentences, streamed.raw_words) == (
                ids.size,
                len(held),
                sum(map(len, held)),
            )
            planned_bounds, planned_done = streamed.plan(chunk_words)
            assert planned_bounds.tolist() == bounds.tolist()
            assert planned_done.tolist() == done.tolist()
            assert chunk_lists(streamed.chunks(bounds)) == chunk_lists(chunks)
    finally:
        corpus.BLOCK_BYTES, corpus.BLOCK_WORDS = saved


@pytest.fixture(scope="module")
def long_lines(tmp_path_factory):
    """Lines of up to 31,234 tokens (three cut into several sentences), short and empty ones."""
    rng = np.random.default_rng(5)
    words = np.array(["a", "b", "cc", "é", "out", "ddd"])
    lengths = [25_000, 3, 0, 10_000, 31_234, 1, 20_000]
    lines = [" ".join(words[rng.integers(0, len(words), n)]) for n in lengths]
    path = tmp_path_factory.mktemp("long") / "corpus.txt"
    path.write_text("\n".join(lines), encoding="utf-8")  # the last line without a newline
    return path


@pytest.mark.parametrize("block_bytes", [64, 777, 20_000, 1 << 20])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_long_line_is_encoded_a_block_at_a_time(long_lines, block_bytes, workers, monkeypatch):
    """Blocks cut long lines between sentences, so no block holds much more than its bytes;
    the ids and sentences are the Python reader's, for the whole file and for shards."""
    monkeypatch.setattr(corpus, "BLOCK_BYTES", block_bytes)
    vocabulary = {"a": 0, "cc": 1, "é": 2, "b": 3, "ddd": 4}
    size = long_lines.stat().st_size
    for start, end in [(0, None), (0, size // 3), (size // 3, 2 * size // 3), (size // 2, None)]:
        shard = CorpusFile(long_lines, start, end)
        blocks = list(
            corpus.FileBlocks(
                str(long_lines), WordIndex(vocabulary), [(0, start, end or size)], workers
            )
        )
        assert max(ids.size for ids, *_ in blocks) <= block_bytes // 2 + 10_001
        held = whole(encode(list(shard), vocabulary))
        streamed = whole(encode(shard, vocabulary, workers))
        assert [a.tolist() for a in streamed] == [a.tolist() for a in held]


def test_a_file_changed_between_passes_is_an_error(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("a b\na\n" * 10)
    streamed = encode(CorpusFile(path), {"a": 0, "b": 1}, 1, chunk_words=4)
    bounds, _ = streamed.plan(4)
    path.write_text("a b\n")
    with pytest.raises(RuntimeError, match="corpus_file .* changed"):
        list(streamed.chunks(bounds))


def test_an_iterable_that_shrinks_between_passes_is_an_error():
    sentences = [["a", "b"], ["a"]] * 10
    streamed = encode(sentences, {"a": 0, "b": 1}, chunk_words=4)
    bounds, _ = streamed.plan(4)
    del sentences[5:]
    with pytest.raises(RuntimeError, match="corpus_iterable changed .* same sentences"):
        list(streamed.chunks(bounds))


def test_a_bad_sentence_met_while_training_is_the_encoders_error():
    sentences = [["a", "b"]] * 3
    streamed = encode(sentences, {"a": 0, "b": 1}, chunk_words=2)
    sentences[1] = ["a", 7]
    with pytest.raises(TypeError, match="token #1 of sentence #1 is 7"):
        list(streamed.chunks(streamed.plan(2)[0]))


def test_training_on_a_file_equals_training_on_its_sentences(small_corpus, tmp_path, monkeypatch):
    path = tmp_path / "corpus.txt"
    path.write_text("".join(" ".join(s) + "\n" for s in small_corpus), encoding="utf-8")
    monkeypatch.setattr(trainer, "CHUNK_WORDS", 1000)
    monkeypatch.setattr(corpus, "BLOCK_BYTES", 3000)  # chunks straddle blocks
    monkeypatch.setattr(corpus, "BLOCK_WORDS", 700)
    blocks_read = []
    encode_block = corpus.FileBlocks.encode
    monkeypatch.setattr(
        corpus.FileBlocks,
        "encode",
        lambda self, *span: blocks_read.append(span) or encode_block(self, *span),
    )
    models = []
    for source in ({"corpus_file": str(path)}, {"corpus_iterable": list(CorpusFile(path))}):
        model = torchw2v.Word2Vec(
            vector_size=16, min_count=2, workers=1, seed=3, hs=1, device="cpu"
        )
        model.build_vocab(**source)
        model.train(**source, total_examples=model.corpus_count, epochs=2)
        models.append(model)
    blocks = -(-path.stat().st_size // 3000)
    assert len(blocks_read) == 3 * blocks  # planned once, then read once per epoch
    assert models[0].wv.index_to_key == models[1].wv.index_to_key
    for name in ("syn1neg", "syn1"):
        assert np.array_equal(getattr(models[0], name), getattr(models[1], name)), name
    assert np.array_equal(models[0].wv.vectors, models[1].wv.vectors)


PEAK_RSS = textwrap.dedent(
    """
    import json, resource, sys
    from gensim.models.word2vec import LineSentence
    import torchw2v
    from torchw2v import corpus

    corpus.BLOCK_BYTES, corpus.BLOCK_WORDS = 1 << 18, 1 << 16
    path, kind = sys.argv[1:]
    iterable = kind == "iterable"
    source = {"corpus_iterable": LineSentence(path)} if iterable else {"corpus_file": path}
    model = torchw2v.Word2Vec(vector_size=4, window=1, negative=1, sample=1e-7, min_count=1,
                              workers=1, seed=1, device="cpu")
    model.build_vocab(**source)
    trained, raw = model.train(**source, total_examples=model.corpus_count, epochs=1)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"raw": raw, "peak_mib": peak_kib / 1024}))
    """
)


@pytest.mark.parametrize(
    "kind, lines",
    [
        ("file", 400_000),
        ("one-line file", 400_000),
        ("compressed file", 60_000),
        ("iterable", 60_000),
    ],
)
def test_peak_memory_does_not_grow_with_the_length_of_the_corpus(tmp_path, child_env, kind, lines):
    """Held as ids, the x4 corpus would add 4 bytes a token (30 MiB for the 3.2M-token file),
    or the Python path's 26 bytes a token (37 MiB for the 480k-token others); a one-line file
    held as one sentence, some 50 bytes a token more."""
    script = tmp_path / "peak.py"
    script.write_text(PEAK_RSS)
    suffix = ".txt.gz" if kind == "compressed file" else ".txt"
    once, four_times = tmp_path / f"x1{suffix}", tmp_path / f"x4{suffix}"
    text = ("a b c d e f g h " if kind == "one-line file" else "a b c d e f g h\n") * lines
    for path, times in ((once, 1), (four_times, 4)):
        with smart_open(path, "w") as out:
            out.write(text * times)
    peaks = {}
    for path in (once, four_times):
        result = subprocess.run(
            [sys.executable, str(script), str(path), kind],
            env=child_env,
            capture_output=True,
            text=True,
            check=True,
        )
        peaks[path.name] = json.loads(result.stdout.strip().splitlines()[-1])
    assert peaks[four_times.name]["raw"] == 4 * peaks[once.name]["raw"] == 4 * 8 * lines
    assert peaks[four_times.name]["peak_mib"] - peaks[once.name]["peak_mib"] < 10, peaks
