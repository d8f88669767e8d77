"""A plain local corpus_file is streamed: read block by block every epoch, its ids never all
held, yet trained exactly as the same corpus held in memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import torchw2v
from torchw2v import corpus, corpus_compiled, trainer
from torchw2v.corpus import CorpusFile, StreamedCorpus, encode

pytestmark = pytest.mark.skipif(
    not corpus_compiled.is_available(), reason="the compiled corpus reader does not build here"
)

LINES = st.lists(st.lists(st.sampled_from(["a", "b", "cc", "out", "é"]), max_size=12), max_size=40)


def chunk_lists(chunks):
    return [(ids.tolist(), offsets.tolist(), start) for ids, offsets, start in chunks]


@settings(max_examples=60, deadline=None)
@given(
    lines=LINES,
    block_bytes=st.integers(1, 64),
    chunk_words=st.integers(1, 20),
    workers=st.sampled_from([1, 2]),
)
def test_streamed_chunks_are_the_held_corpus_chunks(
    tmp_path_factory, lines, block_bytes, chunk_words, workers
):
    path = tmp_path_factory.mktemp("stream") / "corpus.txt"
    path.write_text("".join(" ".join(line) + "\n" for line in lines), encoding="utf-8")
    vocabulary = {"a": 0, "cc": 1, "é": 2, "b": 3}  # "out" is dropped: sentences of no id
    held = encode(CorpusFile(path), vocabulary, workers)
    corpus.BLOCK_BYTES, saved = block_bytes, corpus.BLOCK_BYTES
    try:
        streamed = encode(CorpusFile(path), vocabulary, workers, chunk_words)
        assert isinstance(streamed, StreamedCorpus)
        assert (streamed.tokens, streamed.sentences, streamed.raw_words) == (
            held.tokens,
            held.sentences,
            held.raw_words,
        )
        bounds, done = streamed.plan(chunk_words)
        expected_bounds, expected_done = held.plan(chunk_words)
        assert bounds.tolist() == expected_bounds.tolist()
        assert done.tolist() == expected_done.tolist()
        assert chunk_lists(streamed.chunks(bounds)) == chunk_lists(held.chunks(bounds))
    finally:
        corpus.BLOCK_BYTES = saved


def test_a_file_changed_between_passes_is_an_error(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("a b\na\n" * 10)
    streamed = encode(CorpusFile(path), {"a": 0, "b": 1}, 1, chunk_words=4)
    bounds, _ = streamed.plan(4)
    path.write_text("a b\n")
    with pytest.raises(RuntimeError, match="changed"):
        list(streamed.chunks(bounds))


def test_training_on_a_streamed_file_equals_training_on_it_held(
    small_corpus, tmp_path, monkeypatch
):
    path = tmp_path / "corpus.txt"
    path.write_text("".join(" ".join(s) + "\n" for s in small_corpus), encoding="utf-8")
    monkeypatch.setattr(trainer, "CHUNK_WORDS", 1000)
    monkeypatch.setattr(corpus, "BLOCK_BYTES", 3000)  # chunks straddle blocks
    blocks_read = []
    encode_block = StreamedCorpus._encode
    monkeypatch.setattr(
        StreamedCorpus, "_encode", lambda self, b: blocks_read.append(b) or encode_block(self, b)
    )
    models = []
    for source in ({"corpus_file": str(path)}, {"corpus_iterable": list(CorpusFile(path))}):
        model = torchw2v.Word2Vec(
            vector_size=16, min_count=2, workers=1, seed=3, hs=1, device="cpu"
        )
        model.build_vocab(corpus_file=str(path))
        model.train(**source, total_examples=model.corpus_count, epochs=2)
        models.append(model)
    blocks = -(-path.stat().st_size // 3000)
    assert len(blocks_read) == 3 * blocks  # counted once, then read once per epoch
    for name in ("syn1neg", "syn1"):
        assert np.array_equal(getattr(models[0], name), getattr(models[1], name)), name
    assert np.array_equal(models[0].wv.vectors, models[1].wv.vectors)


PEAK_RSS = textwrap.dedent(
    """
    import json, resource, sys
    import torchw2v
    from torchw2v import corpus

    corpus.BLOCK_BYTES = 1 << 18
    path = sys.argv[1]
    model = torchw2v.Word2Vec(vector_size=4, window=1, negative=1, sample=1e-7, min_count=1,
                              workers=1, seed=1, device="cpu")
    model.build_vocab(corpus_file=path)
    trained, raw = model.train(corpus_file=path, total_examples=model.corpus_count, epochs=1)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"raw": raw, "peak_mib": peak_kib / 1024}))
    """
)


def test_peak_memory_does_not_grow_with_the_length_of_the_file(tmp_path, child_env):
    script = tmp_path / "peak.py"
    script.write_text(PEAK_RSS)
    once, four_times = tmp_path / "x1.txt", tmp_path / "x4.txt"
    text = "a b c d e f g h\n" * 400_000  # 3.2M tokens; held as ids, x4 would add 45 MiB
    once.write_text(text)
    four_times.write_text(text * 4)
    peaks = {}
    for path in (once, four_times):
        result = subprocess.run(
            [sys.executable, str(script), str(path)],
            env=child_env,
            capture_output=True,
            text=True,
            check=True,
        )
        peaks[path.name] = json.loads(result.stdout.strip().splitlines()[-1])
    assert peaks["x4.txt"]["raw"] == 4 * peaks["x1.txt"]["raw"] == 4 * 3_200_000
    assert peaks["x4.txt"]["peak_mib"] - peaks["x1.txt"]["peak_mib"] < 10, peaks
