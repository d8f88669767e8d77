"""Checkpoint and resume: a killed training run goes on from its last checkpoint."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from gensim.models.callbacks import CallbackAny2Vec

import torchw2v
from torchw2v import corpus, persistence, trainer

FAST = {"sg": 1, "vector_size": 32, "min_count": 3, "workers": 1, "seed": 5, "device": "cpu"}


class Crash(CallbackAny2Vec):
    """Raises at the end of epoch ``at``, as a crash would."""

    def __init__(self, at: int):
        self.at, self.seen = at, 0

    def on_epoch_end(self, model):
        self.seen += 1
        if self.seen == self.at:
            raise KeyboardInterrupt


class Count(CallbackAny2Vec):
    def __init__(self):
        self.epochs = 0

    def on_epoch_end(self, model):
        self.epochs += 1


def fresh(corpus, **settings):
    model = torchw2v.Word2Vec(**{**FAST, **settings})
    model.build_vocab(corpus)
    return model


def test_resume_trains_only_what_is_left_and_removes_the_checkpoint(small_corpus, tmp_path):
    path = tmp_path / "ck.npz"
    crashed = fresh(small_corpus, callbacks=[Crash(at=2)])
    with pytest.raises(KeyboardInterrupt):
        crashed.train(small_corpus, total_examples=1, epochs=4, checkpoint=path, checkpoint_every=0)
    assert path.is_file()

    count = Count()
    resumed = fresh(small_corpus, callbacks=[count])
    resumed.train(small_corpus, total_examples=1, epochs=4, checkpoint=path, checkpoint_every=0)
    assert count.epochs == 3  # epoch 2 had finished its chunks; its end and epochs 3-4 remain
    assert not path.exists()
    assert resumed.wv.most_similar("city", topn=1)  # trained, finite vectors


@pytest.mark.parametrize("source", ["list", "streamed file"])
@pytest.mark.parametrize("engine", ["torch", "compiled"])
def test_resumed_run_equals_the_uninterrupted_one_bit_for_bit(
    small_corpus, tmp_path, monkeypatch, engine, source
):
    monkeypatch.setattr(trainer, "CHUNK_WORDS", 4096)  # several chunks an epoch
    monkeypatch.setattr(corpus, "BLOCK_BYTES", 10_000)  # a file's chunks straddle blocks
    settings = {"engine": engine, "hs": 1}
    train_on = {"corpus_iterable": small_corpus}
    if source == "streamed file":
        text = tmp_path / "corpus.txt"
        text.write_text("".join(" ".join(s) + "\n" for s in small_corpus), encoding="utf-8")
        train_on = {"corpus_file": str(text)}
    whole = fresh(small_corpus, **settings)
    whole.train(**train_on, total_examples=1, epochs=2)

    path, write, writes = tmp_path / "ck.npz", persistence.write_model, itertools.count(1)

    def write_then_crash(*args):
        write(*args)
        if next(writes) == 7:  # mid second epoch
            raise KeyboardInterrupt

    monkeypatch.setattr(persistence, "write_model", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        fresh(small_corpus, **settings).train(
            **train_on, total_examples=1, epochs=2, checkpoint=path, checkpoint_every=0
        )
    monkeypatch.setattr(persistence, "write_model", write)
    resumed = fresh(small_corpus, **settings)
    resumed.train(**train_on, total_examples=1, epochs=2, checkpoint=path, checkpoint_every=0)
    for name in ("vectors", "syn1neg", "syn1"):
        ours = resumed.wv.vectors if name == "vectors" else getattr(resumed, name)
        theirs = whole.wv.vectors if name == "vectors" else getattr(whole, name)
        assert np.array_equal(ours, theirs), name


def test_checkpoint_of_another_run_is_refused(small_corpus, tmp_path):
    path = tmp_path / "ck.npz"
    crashed = fresh(small_corpus, callbacks=[Crash(at=1)])
    with pytest.raises(KeyboardInterrupt):
        crashed.train(small_corpus, total_examples=1, epochs=2, checkpoint=path, checkpoint_every=0)
    other = fresh(small_corpus, window=2)
    with pytest.raises(ValueError, match="another training run.*delete it"):
        other.train(small_corpus, total_examples=1, epochs=2, checkpoint=path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda meta, arrays: meta["checkpoint"].update(stats=[1]), "corrupted .*delete it"),
        (lambda meta, arrays: meta["checkpoint"].pop("epoch"), "corrupted .*delete it"),
        (lambda meta, arrays: meta.update(checkpoint=3), "another training run"),
        (lambda meta, arrays: meta.update(state=[]), "malformed or unknown state"),
        (lambda meta, arrays: arrays.update(vectors=arrays["vectors"][:-1]), "another training"),
    ],
    ids=["stats", "no epoch", "mark", "state", "vectors"],
)
def test_garbled_checkpoint_is_refused_and_changes_nothing(small_corpus, tmp_path, change, message):
    path = tmp_path / "ck.npz"
    crashed = fresh(small_corpus, callbacks=[Crash(at=1)])
    with pytest.raises(KeyboardInterrupt):
        crashed.train(small_corpus, total_examples=1, epochs=2, checkpoint=path, checkpoint_every=0)
    meta, arrays = persistence.read_model(path)
    change(meta, arrays)
    persistence.write_model(path, meta, arrays)
    model = fresh(small_corpus)
    before = model.wv.vectors.copy(), model.train_count
    with pytest.raises(ValueError, match=message):
        model.train(small_corpus, total_examples=1, epochs=2, checkpoint=path)
    assert np.array_equal(model.wv.vectors, before[0]) and model.train_count == before[1]


SCRIPT = textwrap.dedent(
    """
    import json, sys
    from gensim.test.utils import datapath
    from torchw2v import Word2Vec

    corpus, checkpoint, out = sys.argv[1:4]
    model = Word2Vec(sg=1, vector_size=50, min_count=5, workers=1, epochs=4, seed=7,
                     device="cpu")
    model.build_vocab(corpus_file=corpus)
    model.train(corpus_file=corpus, total_examples=model.corpus_count,
                epochs=model.epochs, checkpoint=checkpoint, checkpoint_every=0)
    analogy = model.wv.evaluate_word_analogies(datapath("questions-words.txt"),
                                               restrict_vocab=30000)[0]
    ws353 = model.wv.evaluate_word_pairs(datapath("wordsim353.tsv"))[1][0]
    json.dump({"analogy": analogy, "ws353": ws353}, open(out, "w"))
    """
)


def run_script(script, corpus, checkpoint, out, env):
    return subprocess.Popen(
        [sys.executable, str(script), str(corpus), str(checkpoint), str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_kill_9_and_resume_reaches_the_quality_of_an_uninterrupted_run(
    wiki_txt, tmp_path, child_env
):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    checkpoint, killed_out, whole_out = (tmp_path / n for n in ("ck.npz", "a.json", "b.json"))

    victim = run_script(script, wiki_txt, checkpoint, killed_out, child_env)
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert victim.poll() is None, "training ended before any checkpoint was written"
    time.sleep(1.0)  # let it run on past the first checkpoint
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert checkpoint.exists() and not killed_out.exists()

    assert run_script(script, wiki_txt, checkpoint, killed_out, child_env).wait() == 0
    assert run_script(script, wiki_txt, tmp_path / "other.npz", whole_out, child_env).wait() == 0
    resumed, whole = json.loads(killed_out.read_text()), json.loads(whole_out.read_text())
    assert not checkpoint.exists()
    assert whole["analogy"] > 0.01 and whole["ws353"] > 0.1  # the yardstick learnt something
    assert abs(resumed["analogy"] - whole["analogy"]) < 0.015
    assert abs(resumed["ws353"] - whole["ws353"]) < 0.03
