"""gensim's pickled models load without running code from the file."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import gensim
import numpy as np
import pytest
from gensim.models.callbacks import CallbackAny2Vec
from gensim.test.utils import datapath, lee_corpus_list

import torchw2v


class Payload:
    """Unpickling this runs ``touch MARKER``, as a crafted model file would."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Noted(CallbackAny2Vec):
    """A user's callback class, defined outside gensim."""


def gensim_model(corpus, **settings):
    return gensim.models.Word2Vec(corpus, min_count=2, vector_size=16, epochs=1, **settings)


def test_crafted_pickle_is_refused_before_it_runs(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "evil.model"
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError, match="posix.system|os.system"):
        torchw2v.Word2Vec.load(path, device="cpu")
    assert not marker.exists()


def test_payload_inside_a_real_gensim_model_is_refused(small_corpus, tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "evil.model"
    model = gensim_model(small_corpus)
    model.note = Payload(marker)
    model.save(str(path))
    with pytest.raises(ValueError, match="not part of a gensim model.*gensim.models.Word2Vec"):
        torchw2v.Word2Vec.load(path, device="cpu")
    assert not marker.exists()


def test_truncated_gensim_model_is_a_clear_error(small_corpus, tmp_path):
    path = tmp_path / "g.model"
    gensim_model(small_corpus).save(str(path))
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="truncated, corrupted or crafted"):
        torchw2v.Word2Vec.load(path, device="cpu")


def test_model_trained_with_user_callbacks_loads(small_corpus, tmp_path):
    path = tmp_path / "g.model"
    theirs = gensim_model(small_corpus, callbacks=[Noted()])
    theirs.save(str(path))  # gensim leaves callbacks out of the file
    ours = torchw2v.Word2Vec.load(path, device="cpu")
    np.testing.assert_array_equal(ours.wv.vectors, theirs.wv.vectors)


def test_arrays_stored_beside_the_pickle_are_read_and_can_be_mapped(small_corpus, tmp_path):
    path = tmp_path / "g.model"
    theirs = gensim_model(small_corpus, hs=1)
    theirs.save(str(path), sep_limit=0)  # every array in a .npy file of its own
    assert (tmp_path / "g.model.wv.vectors.npy").is_file()
    ours = torchw2v.Word2Vec.load(path, device="cpu", mmap="r")
    np.testing.assert_array_equal(ours.wv.vectors, theirs.wv.vectors)
    np.testing.assert_array_equal(ours.syn1, theirs.syn1)


def test_other_gensim_objects_are_named(small_corpus, tmp_path):
    path = tmp_path / "kv.model"
    gensim_model(small_corpus).wv.save(str(path))
    with pytest.raises(ValueError, match="KeyedVectors, not a Word2Vec"):
        torchw2v.Word2Vec.load(path, device="cpu")


# Every file of gensim's test data that gensim 4's Word2Vec.load reads: models saved by gensim
# 0.13 to 3.8 (pickle protocol 2, Python 2 names) and one FastText model (a Word2Vec subclass).
GENSIM_TEST_MODELS = [
    "compatible-hash-true.model",
    "model-from-gensim-3.8.0.w2v",
    "word2vec_3.3",
    "word2vec_old",
    "word2vec_old_sep",
    *(
        f"old_w2v_models/w2v_{version}.mdl"
        for version in ("0.13.4", "1.0.0", "1.0.1", "2.0.0", "2.1.0", "2.2.0", "2.3.0")
        + ("3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0")
    ),
]


def test_the_list_holds_every_model_gensim_loads_from_its_test_data():
    root = Path(datapath(""))
    candidates = [
        path
        for path in sorted([*root.iterdir(), *(root / "old_w2v_models").iterdir()])
        if path.is_file() and path.suffix != ".npy"
    ]
    loaded = []
    logging.disable(logging.CRITICAL)  # gensim logs an error for each file it cannot read
    try:
        for path in candidates:
            try:
                gensim.models.Word2Vec.load(str(path))  # gensim's own data: trusted
            except Exception:
                continue
            loaded.append(path.relative_to(root).as_posix())
    finally:
        logging.disable(logging.NOTSET)
    assert sorted(loaded) == sorted(GENSIM_TEST_MODELS)


@pytest.mark.parametrize("name", GENSIM_TEST_MODELS)
def test_old_gensim_model_loads_as_gensim_loads_it_and_trains_on(name):
    theirs = gensim.models.Word2Vec.load(datapath(name))
    ours = torchw2v.Word2Vec.load(datapath(name), device="cpu")
    assert ours.wv.index_to_key == theirs.wv.index_to_key
    np.testing.assert_array_equal(ours.wv.vectors, theirs.wv.vectors)
    if theirs.negative:
        np.testing.assert_array_equal(ours.syn1neg, theirs.syn1neg)
    known = len(ours.wv)
    ours.build_vocab(lee_corpus_list[:100], update=True)
    before = ours.wv.vectors.copy()
    ours.train(lee_corpus_list[:100], total_examples=100, epochs=1)
    assert len(ours.wv) > known and np.isfinite(ours.wv.vectors).all()
    assert not np.allclose(ours.wv.vectors, before)


def protocol2_call(module: str, name: str, *args: str) -> bytes:
    """A protocol-2 pickle that calls ``module.name(*args)``, written opcode by opcode."""
    strings = b"".join(b"X" + len(a).to_bytes(4, "little") + a.encode() for a in args)
    return b"\x80\x02c%s\n%s\n(%stR." % (module.encode(), name.encode(), strings)


@pytest.mark.parametrize(
    "module, name, args",
    [
        ("__builtin__", "eval", ("__import__('os').system('touch MARKER')",)),
        ("__builtin__", "getattr", ("os", "system")),
        ("__builtin__", "__import__", ("os",)),
        ("_codecs", "encode", ("x", "rot13")),
        ("_codecs", "decode", ("x", "latin1")),
        ("numpy.random", "seed", ("1",)),
    ],
)
def test_python2_names_and_legacy_callables_open_no_door(module, name, args, tmp_path):
    path = tmp_path / "evil.model"
    payload = protocol2_call(
        module, name, *(a.replace("MARKER", str(tmp_path / "ran")) for a in args)
    )
    assert pickle.loads(protocol2_call("_codecs", "encode", "ok", "latin1")) == b"ok"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match="truncated, corrupted or crafted"):
        torchw2v.Word2Vec.load(path, device="cpu")
    assert not (tmp_path / "ran").exists()
