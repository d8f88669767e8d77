"""The Word2Vec facade: gensim's API, files gensim reads, model files, errors, callbacks."""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys
import threading

import gensim
import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors
from gensim.models.callbacks import CallbackAny2Vec

import torchw2v
from torchw2v.word2vec import SETTINGS

FAST = {"sg": 1, "vector_size": 16, "epochs": 2, "device": "cpu", "engine": "torch", "workers": 1}


def make(sentences=None, **settings):
    return torchw2v.Word2Vec(sentences, **{**FAST, **settings})


@pytest.fixture(scope="module")
def trained(small_corpus):
    return make(small_corpus, min_count=3, compute_loss=True)


def test_wv_is_gensim_keyed_vectors(trained):
    assert isinstance(trained.wv, KeyedVectors)
    assert trained.wv.vectors.shape == (len(trained.wv.index_to_key), 16)
    assert trained.wv.vectors.dtype == np.float32
    neighbours = trained.wv.most_similar("the", topn=3)
    assert len(neighbours) == 3 and all(w in trained.wv for w, _ in neighbours)


def test_wv_vectors_are_the_trained_tensor(trained):
    assert np.array_equal(trained.wv.vectors, trained.module.input.weight.data.numpy())
    assert np.array_equal(trained.syn1neg, trained.module.output.weight.data.numpy())


def test_training_moves_the_vectors(small_corpus):
    untrained = make(min_count=3)
    untrained.build_vocab(small_corpus)
    initial = untrained.wv.vectors.copy()
    model = make(small_corpus, min_count=3)
    assert model.wv.index_to_key == untrained.wv.index_to_key
    assert not np.allclose(model.wv.vectors, initial)
    assert np.isfinite(model.wv.vectors).all()
    assert np.abs(model.syn1neg).sum() > 0


def test_str_matches_gensim(small_corpus):
    ours = make(min_count=3, alpha=0.03)
    ours.build_vocab(small_corpus)
    theirs = gensim.models.Word2Vec(sg=1, vector_size=16, min_count=3, alpha=0.03)
    theirs.build_vocab(small_corpus)
    assert str(ours) == str(theirs)
    assert str(ours) == f"Word2Vec<vocab={len(ours.wv)}, vector_size=16, alpha=0.03>"


# ---------------------------------------------------------------- word2vec formats


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_save_word2vec_format_loads_in_gensim(trained, tmp_path, binary):
    path, vocab = tmp_path / "vectors", tmp_path / "vocab.txt"
    trained.wv.save_word2vec_format(str(path), fvocab=str(vocab), binary=binary)
    loaded = KeyedVectors.load_word2vec_format(str(path), fvocab=str(vocab), binary=binary)
    assert loaded.index_to_key == trained.wv.index_to_key
    assert np.allclose(loaded.vectors, trained.wv.vectors, rtol=0, atol=1e-6)
    assert np.array_equal(loaded.expandos["count"], trained.wv.expandos["count"])
    word = trained.wv.index_to_key[10]
    assert [w for w, _ in loaded.most_similar(word, topn=5)] == [
        w for w, _ in trained.wv.most_similar(word, topn=5)
    ]


# ---------------------------------------------------------------- model files


def test_save_load_round_trip(trained, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(path)
    loaded = torchw2v.Word2Vec.load(path, device="cpu")
    assert isinstance(loaded, torchw2v.Word2Vec)
    assert loaded.wv.index_to_key == trained.wv.index_to_key
    assert loaded.wv.key_to_index == trained.wv.key_to_index
    assert np.array_equal(loaded.wv.vectors, trained.wv.vectors)
    assert np.array_equal(loaded.syn1neg, trained.syn1neg)
    for attr in ("count", "sample_int"):
        assert np.array_equal(loaded.wv.expandos[attr], trained.wv.expandos[attr])
    assert np.array_equal(loaded.cum_table, trained.cum_table)
    for name in SETTINGS:
        assert getattr(loaded, name) == getattr(trained, name), name
    for name in ("corpus_count", "corpus_total_words", "effective_min_count", "train_count"):
        assert getattr(loaded, name) == getattr(trained, name), name
    assert loaded.get_latest_training_loss() == trained.get_latest_training_loss()
    assert str(loaded) == str(trained)
    assert loaded.wv.most_similar("the", topn=5) == trained.wv.most_similar("the", topn=5)


@pytest.mark.parametrize("suffix", [".gz", ".bz2"])
def test_save_load_compressed(trained, tmp_path, suffix):
    path = tmp_path / f"model.npz{suffix}"
    trained.save(path)
    with open(path, "rb") as raw:
        assert raw.read(2) in (b"\x1f\x8b", b"BZ")  # compressed, as the extension says
    loaded = torchw2v.Word2Vec.load(path, device="cpu")
    assert np.array_equal(loaded.wv.vectors, trained.wv.vectors)
    assert np.array_equal(loaded.syn1neg, trained.syn1neg)


def test_save_load_through_open_binary_files(trained, tmp_path):
    path = tmp_path / "model.npz"
    with open(path, "wb") as out:
        trained.save(out)
        assert not out.closed
    with open(path, "rb") as src:
        loaded = torchw2v.Word2Vec.load(src, device="cpu")
        assert not src.closed
    assert np.array_equal(loaded.wv.vectors, trained.wv.vectors)
    buffer = io.BytesIO()
    trained.save(buffer)
    buffer.seek(0)
    assert torchw2v.Word2Vec.load(buffer, device="cpu").wv.index_to_key == trained.wv.index_to_key


def test_save_load_refuse_text_files(trained, tmp_path):
    with open(tmp_path / "model.npz", "w") as out:
        with pytest.raises(TypeError, match="text file: open the model file in binary mode"):
            trained.save(out)
    with open(tmp_path / "model.npz") as src:
        with pytest.raises(TypeError, match="binary mode"):
            torchw2v.Word2Vec.load(src, device="cpu")


def test_gensim_model_saved_compressed_loads(small_corpus, tmp_path):
    path = tmp_path / "gensim.model.gz"
    theirs = gensim.models.Word2Vec(small_corpus[:200], vector_size=8, min_count=2, epochs=1)
    theirs.save(str(path))
    loaded = torchw2v.Word2Vec.load(path, device="cpu")
    assert loaded.wv.index_to_key == theirs.wv.index_to_key
    assert np.array_equal(loaded.wv.vectors, theirs.wv.vectors)


def test_saved_files_get_the_umask_mode_or_keep_theirs(trained, tmp_path):
    old = os.umask(0o022)
    try:
        trained.save(tmp_path / "model.npz")
        trained.wv.save_word2vec_format(tmp_path / "gensim.txt")
        torchw2v.save_word2vec_format(trained.wv, tmp_path / "ours.txt")
    finally:
        os.umask(old)
    modes = {name: os.stat(tmp_path / name).st_mode & 0o777 for name in os.listdir(tmp_path)}
    assert modes == {"model.npz": 0o644, "gensim.txt": 0o644, "ours.txt": 0o644}
    os.chmod(tmp_path / "model.npz", 0o640)
    trained.save(tmp_path / "model.npz")  # overwriting keeps the file's permissions
    assert os.stat(tmp_path / "model.npz").st_mode & 0o777 == 0o640


def test_untrained_model_saves_loads_and_trains(small_corpus, tmp_path):
    empty = make(min_count=2)
    assert len(empty.to_gensim().wv) == 0
    empty.save(tmp_path / "untrained.npz")
    loaded = torchw2v.Word2Vec.load(tmp_path / "untrained.npz", device="cpu")
    assert len(loaded.wv) == 0
    loaded.build_vocab(small_corpus)
    loaded.train(small_corpus, total_examples=len(small_corpus), epochs=1)
    assert len(loaded.wv) > 0 and np.isfinite(loaded.wv.vectors).all()


def test_loaded_model_keeps_training(trained, small_corpus, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(str(path))
    loaded = torchw2v.Word2Vec.load(str(path), device="cpu")
    before = loaded.wv.vectors.copy()
    effective, raw = loaded.train(small_corpus, total_examples=len(small_corpus), epochs=1)
    assert raw == trained.corpus_total_words
    assert 0 < effective < raw
    assert not np.allclose(loaded.wv.vectors, before)
    assert np.isfinite(loaded.wv.vectors).all()
    assert np.array_equal(trained.wv.vectors, torchw2v.Word2Vec.load(path, device="cpu").wv.vectors)


def test_save_leaves_only_the_model_file(trained, small_corpus, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(path)
    assert os.listdir(tmp_path) == ["model.npz"]
    other = make(small_corpus[:100], min_count=1, seed=7)
    other.save(path)  # overwrite in place
    assert os.listdir(tmp_path) == ["model.npz"]
    assert torchw2v.Word2Vec.load(path, device="cpu").wv.index_to_key == other.wv.index_to_key


def test_failed_save_keeps_the_old_file(trained, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    trained.save(path)
    original = path.read_bytes()

    def crash(out, **arrays):
        out.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torchw2v.persistence.np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        trained.save(path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.npz"]
    assert path.read_bytes() == original
    torchw2v.Word2Vec.load(path, device="cpu")


def test_save_into_missing_folder(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        trained.save(tmp_path / "missing" / "model.npz")
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_save_where_no_file_can_be_made_names_the_target(trained):
    with pytest.raises(OSError, match=r"cannot save to '/proc/model\.npz': cannot create files"):
        trained.save("/proc/model.npz")


def test_save_onto_a_folder(trained, tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        trained.save(tmp_path)
    assert os.listdir(tmp_path) == []


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        torchw2v.Word2Vec.load(tmp_path / "nope.npz", device="cpu")
    with pytest.raises(IsADirectoryError, match="is a folder, not a model file"):
        torchw2v.Word2Vec.load(tmp_path, device="cpu")


def test_load_truncated_file(trained, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        torchw2v.Word2Vec.load(path, device="cpu")


@pytest.mark.parametrize(
    "content",
    [b"", b"this is not a model\n" * 50, bytes(range(256)) * 8],
    ids=["empty", "text", "binary"],
)
def test_load_garbage_file(tmp_path, content):
    path = tmp_path / "garbage.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="torchw2v model"):
        torchw2v.Word2Vec.load(path, device="cpu")


def test_load_other_npz_files(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, vectors=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="torchw2v model"):
        torchw2v.Word2Vec.load(plain, device="cpu")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, meta=np.frombuffer(b'{"format": "other"}', dtype=np.uint8))
    with pytest.raises(ValueError, match="not a torchw2v model"):
        torchw2v.Word2Vec.load(foreign, device="cpu")


def test_load_npy_file(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.arange(10))
    with pytest.raises(ValueError, match="torchw2v model"):
        torchw2v.Word2Vec.load(path, device="cpu")


def rewritten(path, tmp_path, meta=None, arrays=None):
    """A copy of the model file at ``path`` with its metadata or arrays edited."""
    with np.load(path) as npz:
        contents = {name: npz[name] for name in npz.files}
    info = json.loads(contents.pop("meta").tobytes())
    info = meta(info) if meta else info
    contents = arrays(contents) if arrays else contents
    out = tmp_path / "edited.npz"
    np.savez(out, meta=np.frombuffer(json.dumps(info).encode(), np.uint8), **contents)
    return out


def edit(changes):
    return lambda info: {**info, **changes}


@pytest.mark.parametrize(
    "meta, arrays, message",
    [
        (edit({"state": None}), None, "malformed or unknown state"),
        (edit({"state": {"train": 1}}), None, "unknown state 'train'"),
        (edit({"words": 7}), None, "malformed or unknown words"),
        (lambda info: {**info, "words": [1] * len(info["words"])}, None, "not all strings"),
        (None, lambda a: {k: v for k, v in a.items() if k != "syn1neg"}, "has no syn1neg array"),
        (None, lambda a: {**a, "vectors": a["vectors"] * np.nan}, "vectors holds NaN"),
        (None, lambda a: {**a, "vectors_lockf": a["vectors_lockf"] * np.inf}, "lockf holds NaN"),
        (lambda info: [info], None, "not a torchw2v model file"),
        (edit({"version": "1"}), None, "format version is '1', not a number"),
        (edit({"version": None}), None, "format version is None"),
    ],
    ids=[
        *("state", "state name", "words", "word types", "missing array", "nan", "inf lockf"),
        *("meta list", "version string", "version null"),
    ],
)
def test_load_garbled_model_file(trained, tmp_path, meta, arrays, message):
    trained.save(tmp_path / "model.npz")
    path = rewritten(tmp_path / "model.npz", tmp_path, meta, arrays)
    with pytest.raises(ValueError, match=message):
        torchw2v.Word2Vec.load(path, device="cpu")


def test_numpy_integer_settings_can_be_saved(small_corpus, tmp_path):
    window = np.arange(1, 5)[2]  # e.g. a sweep over np.arange(...)
    model = make(small_corpus[:50], min_count=1, window=window, epochs=1)
    model.save(tmp_path / "model.npz")
    assert torchw2v.Word2Vec.load(tmp_path / "model.npz", device="cpu").window == 3


# ---------------------------------------------------------------- settings and errors


def test_no_objective_is_rejected():
    with pytest.raises(ValueError, match="negative > 0.*hs=1"):
        torchw2v.Word2Vec(sg=1, hs=0, negative=0, device="cpu")


class NotACallback:
    def on_epoch_end(self, model):
        pass


@pytest.mark.parametrize(
    "name, value, accepted",
    [
        ("vector_size", 2.5, "an integer"),
        ("vector_size", True, "an integer"),
        ("window", "5", "an integer"),
        ("min_count", None, "an integer"),
        ("seed", "1", "an integer"),
        ("seed", 1.0, "an integer"),
        ("workers", 2.0, "an integer"),
        ("negative", "5", "an integer"),
        ("epochs", 2.0, "an integer"),
        ("batch_words", None, "an integer"),
        ("max_vocab_size", 1.5, "an integer"),
        ("max_final_vocab", "10", "an integer"),
        ("alpha", "0.1", "a number"),
        ("min_alpha", None, "a number"),
        ("sample", True, "a number"),
        ("ns_exponent", "0.75", "a number"),
        ("sg", "1", "0, 1 or a bool"),
        ("hs", None, "0, 1 or a bool"),
        ("cbow_mean", 1.0, "0, 1 or a bool"),
        ("null_word", "0", "0, 1 or a bool"),
        ("sorted_vocab", None, "0, 1 or a bool"),
        ("compute_loss", "yes", "0, 1 or a bool"),
        ("shrink_windows", 1.0, "0, 1 or a bool"),
        ("hashfxn", None, "a callable"),
        ("trim_rule", 5, "a callable or None"),
        ("comment", 5, "a str or None"),
        ("engine", None, "one of ('auto', 'torch', 'compiled')"),
        ("distributed", "yes", "a bool or a torchw2v.distributed.SyncPolicy"),
        ("callbacks", None, "a sequence of gensim CallbackAny2Vec objects"),
        ("callbacks", CallbackAny2Vec(), "a sequence of gensim CallbackAny2Vec objects"),
    ],
)
def test_wrong_types_raise_type_error(name, value, accepted):
    got = re.escape(f"got {value!r}"[:30])
    with pytest.raises(TypeError, match=rf"^{name} must be {re.escape(accepted)}.*{got}"):
        torchw2v.Word2Vec(device="cpu", **{"sg": 1, name: value})


@pytest.mark.parametrize(
    "name, value, accepted",
    [
        ("vector_size", 0, ">= 1"),
        ("window", 0, "in [1, 2147483647]"),
        ("window", 2**31, "in [1, 2147483647]"),
        ("min_count", -1, ">= 0"),
        ("seed", -1, ">= 0"),
        ("workers", 0, "in [1, 1024]"),
        ("workers", 1025, "in [1, 1024]"),
        ("negative", -5, "in [0, 10000]"),
        ("negative", 10001, "in [0, 10000]"),
        ("epochs", 0, ">= 1"),
        ("batch_words", 0, ">= 1"),
        ("max_vocab_size", -1, ">= 0"),
        ("max_final_vocab", 0, ">= 1"),
        ("alpha", float("nan"), "a finite number > 0"),
        ("alpha", float("inf"), "a finite number > 0"),
        ("alpha", 0.0, "a finite number > 0"),
        ("min_alpha", -0.1, "a finite number >= 0"),
        ("sample", -1e-3, "a finite number >= 0"),
        ("ns_exponent", float("nan"), "a finite number"),
        ("sg", 2, "0 or 1"),
        ("hs", -1, "0 or 1"),
        ("cbow_mean", 2, "0 or 1"),
        ("null_word", 2, "0 or 1"),
        ("sorted_vocab", 3, "0 or 1"),
        ("engine", "fast", "one of ('auto', 'torch', 'compiled')"),
    ],
)
def test_out_of_range_settings_raise_value_error(name, value, accepted):
    got = re.escape(f"got {value!r}")
    with pytest.raises(ValueError, match=rf"^{name} must be .*{re.escape(accepted)}.*{got}"):
        torchw2v.Word2Vec(device="cpu", **{"sg": 1, name: value})


def test_numpy_and_bool_settings_are_taken_as_gensim_takes_them(small_corpus, tmp_path):
    model = make(
        small_corpus[:50], min_count=1, epochs=1, sg=np.bool_(True), hs=True, seed=np.int64(3)
    )
    assert (model.sg, model.hs, model.seed) == (True, True, 3)
    model.save(tmp_path / "model.npz")  # the settings are JSON
    assert torchw2v.Word2Vec.load(tmp_path / "model.npz", device="cpu").seed == 3


@pytest.mark.parametrize(
    "method, arguments, error, message",
    [
        ("build_vocab", {"progress_per": 0}, ValueError, "progress_per must be an integer >= 1"),
        ("build_vocab", {"progress_per": 1.5}, TypeError, "progress_per must be an integer"),
        ("build_vocab", {"trim_rule": 5}, TypeError, "trim_rule must be a callable or None"),
        ("train", {"start_alpha": "0.1"}, TypeError, "start_alpha must be a number"),
        ("train", {"end_alpha": float("nan")}, ValueError, "end_alpha must be a finite number"),
        ("train", {"compute_loss": "yes"}, TypeError, "compute_loss must be 0, 1 or a bool"),
        ("train", {"report_delay": -1.0}, ValueError, "report_delay must be a finite number >= 0"),
        ("train", {"checkpoint_every": "1"}, TypeError, "checkpoint_every must be a number"),
        ("train", {"checkpoint_every": -1}, ValueError, "checkpoint_every must be .* >= 0"),
    ],
)
def test_bad_method_arguments_are_named(small_corpus, method, arguments, error, message):
    model = make(min_count=1)
    if method == "train":
        model.build_vocab(small_corpus[:20])
        arguments = {"total_examples": 20, "epochs": 1, **arguments}
    with pytest.raises(error, match=f"^{message}"):
        getattr(model, method)(small_corpus[:20], **arguments)


@pytest.mark.parametrize("where", ["constructor", "train"])
def test_a_callback_without_gensims_methods_is_refused(small_corpus, where):
    message = r"callbacks\[1\] is <.*NotACallback.*no on_train_begin, on_epoch_begin, on_train_end"
    callbacks = [Recorder(), NotACallback()]
    with pytest.raises(TypeError, match=message):
        if where == "constructor":
            make(small_corpus[:20], min_count=1, callbacks=callbacks)
        else:
            model = make(min_count=1)
            model.build_vocab(small_corpus[:20])
            model.train(small_corpus[:20], total_examples=20, epochs=1, callbacks=callbacks)


def test_numpy_float_settings_are_accepted(small_corpus):
    model = make(small_corpus[:50], min_count=1, alpha=np.float32(0.05), epochs=1)
    assert math.isclose(model.alpha, 0.05, rel_tol=1e-6)


def test_train_rejects_bad_epochs_and_rates(small_corpus):
    model = make(min_count=3)
    model.build_vocab(small_corpus)
    with pytest.raises(ValueError, match="epochs"):
        model.train(small_corpus, total_examples=len(small_corpus), epochs=0)
    with pytest.raises(ValueError, match="start_alpha"):
        model.train(small_corpus, total_examples=len(small_corpus), start_alpha=float("nan"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:7"])
def test_cuda_device_without_cuda(device):
    with pytest.raises(ValueError, match="CUDA is not available"):
        torchw2v.Word2Vec(sg=1, device=device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_that_does_not_exist():
    with pytest.raises(ValueError, match="does not exist"):
        torchw2v.Word2Vec(sg=1, device=f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("device", ["tpu", "mps", "gpu0"])
def test_unknown_device(device):
    with pytest.raises(ValueError, match=device):
        torchw2v.Word2Vec(sg=1, device=device)


def test_cpu_device(trained):
    assert trained.device == torch.device("cpu")
    assert trained.module.input.weight.device.type == "cpu"


def test_empty_vocabulary(small_corpus):
    with pytest.raises(ValueError, match="min_count"):
        make(small_corpus[:20], min_count=10**6)
    with pytest.raises(ValueError, match="min_count"):
        make([[], []], min_count=1)


def test_train_before_build_vocab(small_corpus):
    with pytest.raises(RuntimeError, match="build_vocab"):
        make().train(small_corpus, total_examples=len(small_corpus), epochs=1)


def test_training_corpus_without_known_words(small_corpus):
    model = make(min_count=3)
    model.build_vocab(small_corpus)
    with pytest.raises(ValueError, match="vocabulary"):
        model.train([["qqq", "zzz"]], total_examples=1, epochs=1)


def test_divergence_names_alpha(small_corpus):
    with pytest.raises(FloatingPointError, match="alpha"):
        make(small_corpus, alpha=1e4, epochs=1)


@pytest.mark.parametrize("engine", ["torch", "compiled"])
@pytest.mark.parametrize(
    "objective",
    [{"sg": 1}, {"sg": 0}, {"sg": 1, "hs": 1}, {"sg": 0, "hs": 1, "cbow_mean": 0}],
    ids=["sg-ns", "cbow-ns", "sg-hs-ns", "cbow-sum-hs-ns"],
)
def test_every_engine_stops_a_divergence_naming_the_alpha_given(small_corpus, engine, objective):
    """Negative sampling diverges at alpha=1e6 (hierarchical softmax alone may not: it skips
    saturated nodes; the fuzz tests check it ends finite or in this error)."""
    message = r"^training diverged to NaN/inf; the learning rate alpha=1e\+06 .*alpha=100000\)$"
    with pytest.raises(FloatingPointError, match=message):
        make(small_corpus[:50], min_count=1, alpha=1e6, engine=engine, **objective)


def test_divergence_from_a_huge_min_alpha_names_min_alpha(small_corpus):
    message = r"the learning rate min_alpha=1e\+06 .*\(e\.g\. min_alpha=100000\)$"
    with pytest.raises(FloatingPointError, match=message):
        make(small_corpus[:50], min_count=1, min_alpha=1e6, epochs=2)


@pytest.mark.parametrize("matrix", ["syn1neg", "syn1"])
def test_non_finite_output_weights_are_a_divergence(small_corpus, matrix):
    model = make(small_corpus[:50], min_count=1, hs=1, epochs=1)
    getattr(model, matrix)[:] = np.inf  # shares memory with the training tensors on CPU
    with pytest.raises(FloatingPointError, match="alpha=0.025"):
        model.train(small_corpus[:50], total_examples=50, epochs=1)


def test_one_word_hierarchical_softmax_trains():
    model = make([["only"] * 5], min_count=1, hs=1, negative=0)
    assert np.isfinite(model.wv.vectors).all() and len(model.wv) == 1


# ---------------------------------------------------------------- training API


class Recorder(CallbackAny2Vec):
    def __init__(self):
        self.events = []
        self.snapshots = []

    def on_train_begin(self, model):
        self.events.append(("train_begin", model))

    def on_epoch_begin(self, model):
        self.events.append(("epoch_begin", model))

    def on_epoch_end(self, model):
        self.events.append(("epoch_end", model))
        self.snapshots.append(model.wv.vectors.copy())

    def on_train_end(self, model):
        self.events.append(("train_end", model))


def expected_events(epochs):
    return ["train_begin"] + ["epoch_begin", "epoch_end"] * epochs + ["train_end"]


def test_callbacks(small_corpus):
    recorder = Recorder()
    model = make(small_corpus, min_count=3, epochs=3, callbacks=[recorder])
    assert [e for e, _ in recorder.events] == expected_events(3)
    assert all(m is model for _, m in recorder.events)
    # on_epoch_end sees the vectors of that epoch
    assert not np.allclose(recorder.snapshots[0], recorder.snapshots[1])
    assert np.array_equal(recorder.snapshots[-1], model.wv.vectors)

    # callbacks given to the constructor are used again by a later train()
    model.train(small_corpus, total_examples=model.corpus_count, epochs=2)
    assert [e for e, _ in recorder.events] == expected_events(3) + expected_events(2)
    assert all(m is model for _, m in recorder.events)

    # callbacks given to train() replace them
    other = Recorder()
    model.train(small_corpus, total_examples=model.corpus_count, epochs=1, callbacks=[other])
    assert [e for e, _ in other.events] == expected_events(1)
    assert len(recorder.events) == len(expected_events(3) + expected_events(2))


def test_build_vocab_then_train_with_callbacks(small_corpus):
    recorder = Recorder()
    model = make(min_count=3, callbacks=(recorder,))
    model.build_vocab(small_corpus)
    assert recorder.events == []
    model.train(small_corpus, total_examples=model.corpus_count, epochs=model.epochs)
    assert [e for e, _ in recorder.events] == expected_events(2)


def test_compute_loss(small_corpus):
    losses = []

    class EpochLoss(CallbackAny2Vec):
        def on_epoch_end(self, model):
            losses.append(model.epoch_loss)

    model = make(small_corpus, min_count=3, compute_loss=True, callbacks=[EpochLoss()])
    total = model.get_latest_training_loss()
    assert math.isfinite(total) and total > 0
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    assert math.isclose(total, sum(losses), rel_tol=1e-9)
    # SGNS loss per pair starts near (1 + K) log 2 and falls as training proceeds
    assert losses[1] < losses[0]

    model.train(small_corpus, total_examples=model.corpus_count, epochs=1)
    assert model.get_latest_training_loss() == 0.0  # not recorded without compute_loss


def test_train_returns_effective_and_raw_words(small_corpus):
    model = make(min_count=3)
    model.build_vocab(small_corpus)
    effective, raw = model.train(small_corpus, total_examples=model.corpus_count, epochs=3)
    assert raw == 3 * model.corpus_total_words
    assert 0 < effective < raw  # subsampling and min_count drop words

    everything = make(min_count=1, sample=0)
    everything.build_vocab(small_corpus)
    effective, raw = everything.train(small_corpus, total_examples=len(small_corpus), epochs=2)
    assert raw == 2 * sum(map(len, small_corpus))
    assert effective == raw


def test_train_on_a_different_corpus(small_corpus):
    first, second = small_corpus[:150], small_corpus[150:]
    model = make(min_count=2, sample=0)
    model.build_vocab(first)
    before = model.wv.vectors.copy()
    unseen = [s + ["zzz_unknown_word"] for s in second]
    effective, raw = model.train(unseen, total_examples=len(unseen), epochs=2)
    assert raw == 2 * sum(map(len, unseen))
    assert effective == 2 * sum(w in model.wv for s in unseen for w in s)
    assert "zzz_unknown_word" not in model.wv
    in_second = np.array([w in {w for s in second for w in s} for w in model.wv.index_to_key])
    assert 100 < in_second.sum() < len(in_second) - 100
    moved = ~np.all(model.wv.vectors == before, axis=1)
    # the input vectors of exactly the words of the training corpus move. (Two epochs: the
    # torch engine's first batch of 1024 centers trains against all-zero output vectors.)
    assert np.array_equal(moved, in_second)


def test_corpus_file_training(small_corpus, tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("".join(" ".join(s) + "\n" for s in small_corpus), encoding="utf-8")
    from_file = make(corpus_file=path, min_count=3, seed=5)
    from_list = make(small_corpus, min_count=3, seed=5)
    assert from_file.wv.index_to_key == from_list.wv.index_to_key
    assert np.array_equal(from_file.wv.vectors, from_list.wv.vectors)


def test_same_seed_is_reproducible(small_corpus):
    a = make(small_corpus, min_count=3, seed=11)
    b = make(small_corpus, min_count=3, seed=11)
    c = make(small_corpus, min_count=3, seed=12)
    assert np.array_equal(a.wv.vectors, b.wv.vectors)
    assert np.array_equal(a.syn1neg, b.syn1neg)
    assert not np.allclose(a.wv.vectors, c.wv.vectors)


def test_one_process_never_enters_the_distributed_module(small_corpus, tmp_path):
    from torchw2v import distributed, synchronizer

    entered, modules = set(), {distributed.__file__, synchronizer.__file__}

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename in modules:
            entered.add(frame.f_code.co_name)

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        model = torchw2v.Word2Vec(vector_size=8, min_count=1, workers=2, device="cpu")
        model.build_vocab(small_corpus)
        model.train(small_corpus, total_examples=model.corpus_count, epochs=2)
        model.save(tmp_path / "model.npz")
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    assert model.train_count == 1
    assert not entered, sorted(entered)
