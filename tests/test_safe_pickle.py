"""gensim's pickled models load without running code from the file."""

from __future__ import annotations

import os
import pickle

import gensim
import numpy as np
import pytest
from gensim.models.callbacks import CallbackAny2Vec

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
