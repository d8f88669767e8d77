"""The rest of gensim's Word2Vec surface: CBOW, hierarchical softmax, online training,
loss, callbacks, gensim interop (to_gensim, from_gensim, loading gensim's files), lockf.

gensim's own Word2Vec, run in the same test, is the reference wherever it defines the answer.
"""

from __future__ import annotations

import logging

import gensim
import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.models.callbacks import CallbackAny2Vec

import torchw2v
from torchw2v import trainer
from torchw2v.word2vec import EmptyVocabularyError

FAST = {"vector_size": 32, "epochs": 2, "workers": 1, "seed": 3, "device": "cpu"}
# CBOW learns more slowly on a small corpus: word2vec.c's CBOW rate and more epochs
CBOW = {"sg": 0, "alpha": 0.05, "epochs": 8}
VARIANTS = {
    "cbow-ns": {**CBOW, "hs": 0, "negative": 5},
    "cbow-sum-ns": {**CBOW, "hs": 0, "negative": 5, "cbow_mean": 0},
    "sg-hs": {"sg": 1, "hs": 1, "negative": 0, "epochs": 3},
    "cbow-hs": {**CBOW, "hs": 1, "negative": 0},
    "sg-hs-ns": {"sg": 1, "hs": 1, "negative": 3, "epochs": 3},
}


def make(sentences=None, **settings):
    return torchw2v.Word2Vec(sentences, **{**FAST, **settings})


@pytest.fixture(scope="module")
def halves(wiki_head):
    """Two different real corpora: the first and the second half of the head slice."""
    return wiki_head[:1000], wiki_head[1000:]


# ---------------------------------------------------------------- every objective trains


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("engine", ["torch", "compiled"])
def test_each_objective_learns_related_words(variant, engine, wiki_head):
    if engine == "compiled" and not _compiled_available():
        pytest.skip("the compiled engine does not build here")
    model = make(wiki_head, engine=engine, min_count=5, vector_size=50, **VARIANTS[variant])
    assert np.isfinite(model.wv.vectors).all()
    # months are frequent in Wikipedia and interchangeable in context: they must be closer to
    # each other than to other frequent words (gensim: by 0.14 to 0.7 with these settings)
    months = ["january", "march", "april", "june", "july", "august", "september", "october"]
    others = [w for w in model.wv.index_to_key[100:300] if w not in months]
    within = np.mean([model.wv.similarity(a, b) for a in months for b in months if a != b])
    across = np.mean([model.wv.similarity(a, b) for a in months for b in others])
    assert within > across + 0.1, (variant, engine, within, across)


def test_huffman_tree_is_gensims(small_corpus):
    ours = make(small_corpus, sg=1, hs=1, negative=0, min_count=2, epochs=1)
    theirs = gensim.models.Word2Vec(
        small_corpus, sg=1, hs=1, negative=0, min_count=2, epochs=1, vector_size=32
    )
    for word in theirs.wv.index_to_key:
        np.testing.assert_array_equal(
            ours.wv.get_vecattr(word, "code"), theirs.wv.get_vecattr(word, "code")
        )
        np.testing.assert_array_equal(
            ours.wv.get_vecattr(word, "point"), theirs.wv.get_vecattr(word, "point")
        )
    assert ours.syn1.shape == theirs.syn1.shape and np.abs(ours.syn1).sum() > 0
    assert ours.syn1neg.shape == (0, 32)


# ---------------------------------------------------------------- online training


@pytest.mark.parametrize(
    "settings, update",
    [({}, {}), ({"max_final_vocab": 400}, {}), ({}, {"min_count": 2})],
    ids=["min_count", "max_final_vocab", "min_count argument"],
)
def test_online_update_matches_gensims_vocabulary(halves, assert_same_vocab, settings, update):
    """max_final_vocab raises min_count by the new corpus's counts alone, as in gensim."""
    first, second = halves
    ours = make(first, min_count=5, sg=1, **settings)
    theirs = gensim.models.Word2Vec(first, min_count=5, sg=1, vector_size=32, epochs=1, **settings)
    before = {w: ours.wv[w].copy() for w in ours.wv.index_to_key[:50]}

    ours.build_vocab(second, update=True, **update)
    theirs.build_vocab(second, update=True, **update)

    assert_same_vocab(ours, theirs)
    assert len(ours.wv) > len(before) and ours.wv.vectors.shape == (len(ours.wv), 32)
    for word, vector in before.items():  # known words keep their trained vectors
        np.testing.assert_array_equal(ours.wv[word], vector)


def test_build_vocab_passes_min_count_and_sample_on_as_gensim(small_corpus, assert_same_vocab):
    ours, theirs = make(sg=1), gensim.models.Word2Vec(sg=1, vector_size=32, epochs=1)
    for model in (ours, theirs):
        model.build_vocab(small_corpus, min_count=2, sample=1e-2)
    assert_same_vocab(ours, theirs)
    assert (ours.min_count, ours.sample) == (theirs.min_count, theirs.sample) == (2, 1e-2)
    with pytest.raises(TypeError, match="unexpected keyword"):
        make(sg=1).build_vocab(small_corpus, min_cout=2)


def test_train_stores_its_epochs_and_rates_and_counts_words_as_gensim(small_corpus):
    """sample=0: the words trained are every in-vocabulary token, so the counts are exact."""
    results = []
    for model in (make(sg=1, sample=0), gensim.models.Word2Vec(sg=1, sample=0, workers=1)):
        model.build_vocab(small_corpus)
        done = model.train(
            small_corpus,
            total_examples=model.corpus_count,
            epochs=2,
            start_alpha=0.01,
            end_alpha=0.001,
        )
        results.append((tuple(map(int, done)), model.epochs, model.alpha, model.min_alpha))
    assert results[0] == results[1]
    assert results[0][1:] == (2, 0.01, 0.001)


def test_online_update_trains_new_words(halves):
    first, second = halves
    model = make(first, min_count=5, sg=1)
    known = len(model.wv)
    model.build_vocab(second, update=True)
    new_words = model.wv.index_to_key[known:]
    initial = model.wv.vectors[known:].copy()
    model.train(second, total_examples=model.corpus_count, epochs=model.epochs)
    assert new_words and not np.allclose(model.wv.vectors[known:], initial)
    assert np.isfinite(model.wv.vectors).all()


def test_online_update_after_save_and_load(halves, tmp_path):
    first, second = halves
    make(first, min_count=5, sg=1, hs=1).save(tmp_path / "m.npz")
    model = torchw2v.Word2Vec.load(tmp_path / "m.npz", device="cpu")
    model.build_vocab(second, update=True)
    model.train(second, total_examples=model.corpus_count, epochs=1)
    assert model.syn1.shape == model.wv.vectors.shape
    assert model.wv.get_vecattr(model.wv.index_to_key[-1], "code").size > 0


def test_online_update_needs_a_vocabulary(small_corpus):
    with pytest.raises(RuntimeError, match="without update=True first"):
        make(sg=1).build_vocab(small_corpus, update=True)


def test_build_vocab_from_freq_matches_gensim(assert_same_vocab):
    freq = {"the": 50, "cat": 9, "sat": 3, "on": 20, "mat": 2, "rare": 1}
    ours = make(sg=1, min_count=2)
    theirs = gensim.models.Word2Vec(sg=1, min_count=2, vector_size=32)
    ours.build_vocab_from_freq(freq, corpus_count=7)
    theirs.build_vocab_from_freq(freq, corpus_count=7)
    assert_same_vocab(ours, theirs)


# ---------------------------------------------------------------- loss and callbacks


class EpochLosses(CallbackAny2Vec):
    def __init__(self):
        self.losses, self.epochs = [], 0

    def on_epoch_end(self, model):
        self.epochs += 1
        self.losses.append(model.epoch_loss)


def test_epoch_loss_is_per_epoch_and_sums_to_the_latest_loss(small_corpus):
    callback = EpochLosses()
    model = make(small_corpus, sg=0, min_count=2, epochs=3, compute_loss=True, callbacks=[callback])
    assert len(callback.losses) == 3 and all(loss > 0 for loss in callback.losses)
    assert isinstance(model.get_latest_training_loss(), float)
    assert model.get_latest_training_loss() == pytest.approx(sum(callback.losses))
    # constructor callbacks persist into later train calls
    model.train(small_corpus, total_examples=model.corpus_count, epochs=2, compute_loss=True)
    assert callback.epochs == 5
    assert model.get_latest_training_loss() == pytest.approx(sum(callback.losses[3:]))


# ---------------------------------------------------------------- gensim interop


def test_to_gensim_continues_training_in_gensim(small_corpus, assert_same_vocab):
    ours = make(small_corpus, sg=0, hs=1, negative=5, min_count=2)
    theirs = ours.to_gensim()
    assert isinstance(theirs, gensim.models.Word2Vec)
    np.testing.assert_array_equal(theirs.wv.vectors, ours.wv.vectors)
    np.testing.assert_array_equal(theirs.syn1neg, ours.syn1neg)
    np.testing.assert_array_equal(theirs.syn1, ours.syn1)
    assert_same_vocab(ours, theirs)
    theirs.train(small_corpus, total_examples=theirs.corpus_count, epochs=1)
    assert not np.array_equal(theirs.wv.vectors, ours.wv.vectors)  # a copy, trained further


def test_from_gensim_continues_training_in_torchw2v(small_corpus, assert_same_vocab):
    theirs = gensim.models.Word2Vec(small_corpus, sg=1, min_count=2, vector_size=32, epochs=1)
    ours = torchw2v.Word2Vec.from_gensim(theirs, device="cpu")
    np.testing.assert_array_equal(ours.wv.vectors, theirs.wv.vectors)
    assert_same_vocab(ours, theirs)
    ours.train(small_corpus, total_examples=ours.corpus_count, epochs=1)
    assert not np.array_equal(ours.wv.vectors, theirs.wv.vectors)


def test_from_gensim_refuses_what_is_not_a_gensim_word2vec(small_corpus):
    theirs = gensim.models.Word2Vec(small_corpus, min_count=2, vector_size=8, epochs=1)
    with pytest.raises(TypeError, match=r"KeyedVectors hold no training state"):
        torchw2v.Word2Vec.from_gensim(theirs.wv)
    with pytest.raises(TypeError, match=r"not torchw2v\.word2vec\.Word2Vec$"):
        torchw2v.Word2Vec.from_gensim(make(small_corpus, min_count=2, epochs=1))
    with pytest.raises(TypeError, match=r"not builtins\.NoneType$"):
        torchw2v.Word2Vec.from_gensim(None)


def test_load_reads_a_model_saved_by_gensim(small_corpus, tmp_path):
    theirs = gensim.models.Word2Vec(
        small_corpus, sg=0, hs=1, negative=0, min_count=2, vector_size=16, epochs=1
    )
    theirs.save(str(tmp_path / "gensim.model"))
    ours = torchw2v.Word2Vec.load(tmp_path / "gensim.model", device="cpu")
    assert (ours.sg, ours.hs, ours.negative, ours.vector_size) == (0, 1, 0, 16)
    np.testing.assert_array_equal(ours.syn1, theirs.syn1)
    ours.train(small_corpus, total_examples=ours.corpus_count, epochs=1)
    assert np.isfinite(ours.wv.vectors).all()


def test_save_load_round_trips_hs_and_lockf(small_corpus, tmp_path):
    model = make(small_corpus, sg=1, hs=1, negative=2, min_count=2)
    model.wv.vectors_lockf = np.ones(len(model.wv), dtype=np.float32)
    model.save(tmp_path / "m.npz")
    loaded = torchw2v.Word2Vec.load(tmp_path / "m.npz", device="cpu")
    np.testing.assert_array_equal(loaded.syn1, model.syn1)
    np.testing.assert_array_equal(loaded.syn1neg, model.syn1neg)
    np.testing.assert_array_equal(loaded.wv.vectors_lockf, model.wv.vectors_lockf)


# ---------------------------------------------------------------- gensim's other methods


def test_vectors_lockf_freezes_words(small_corpus):
    model = make(small_corpus, sg=1, min_count=2)
    frozen = [model.wv.key_to_index[w] for w in ("the", "of")]
    model.wv.vectors_lockf = np.ones(len(model.wv), dtype=np.float32)
    model.wv.vectors_lockf[frozen] = 0.0
    before = model.wv.vectors.copy()
    model.train(small_corpus, total_examples=model.corpus_count, epochs=1)
    np.testing.assert_array_equal(model.wv.vectors[frozen], before[frozen])
    assert not np.allclose(np.delete(model.wv.vectors, frozen, 0), np.delete(before, frozen, 0))


def test_predict_output_word_and_score(wiki_head):
    model = make(wiki_head, sg=1, hs=1, negative=5, min_count=5, epochs=3, vector_size=50)
    predicted = model.predict_output_word(["the", "capital", "of"], topn=5)
    assert len(predicted) == 5 and all(0 < p < 1 for _, p in predicted)
    scores = model.score([["the", "city", "of", "paris"], ["of", "the", "the", "of"]])
    assert scores.shape == (2,) and np.isfinite(scores).all() and (scores < 0).all()


def test_predict_output_word_before_build_vocab_says_so():
    with pytest.raises(RuntimeError, match="no vocabulary yet: call build_vocab"):
        torchw2v.Word2Vec(vector_size=8).predict_output_word(["a", "b"])


def test_estimate_memory_is_gensims(small_corpus):
    ours = make(small_corpus, sg=1, hs=1, min_count=2)
    theirs = gensim.models.Word2Vec(small_corpus, sg=1, hs=1, min_count=2, vector_size=32)
    assert ours.estimate_memory() == theirs.estimate_memory()


def test_reset_from_takes_the_other_vocabulary(small_corpus, wiki_head):
    donor = gensim.models.Word2Vec(small_corpus, sg=1, min_count=2, vector_size=32, epochs=1)
    model = make(wiki_head[:100], sg=1, min_count=1)
    model.reset_from(donor)
    assert model.wv.index_to_key == donor.wv.index_to_key
    assert model.wv.vectors.shape == donor.wv.vectors.shape
    model.train(small_corpus, total_examples=donor.corpus_count, epochs=1)


def test_str_is_gensims_shape(small_corpus):
    model = make(small_corpus, sg=1, min_count=2)
    assert str(model) == f"Word2Vec<vocab={len(model.wv)}, vector_size=32, alpha=0.025>"


# ---------------------------------------------------------------- gensim's build steps and checks


@pytest.mark.parametrize(
    "settings", [{"min_count": 5}, {"min_count": 2, "max_final_vocab": 300, "sample": 1e-4}]
)
def test_scan_and_prepare_vocab_report_as_gensims(small_corpus, settings):
    ours = make(sg=1, **settings)
    theirs = gensim.models.Word2Vec(sg=1, vector_size=32, **settings)
    assert ours.scan_vocab(small_corpus) == theirs.scan_vocab(small_corpus)
    trial = {"dry_run": True, "keep_raw_vocab": True, "min_count": 3}
    assert ours.prepare_vocab(**trial) == theirs.prepare_vocab(**trial)
    assert not len(ours.wv) and ours.min_count == settings["min_count"]  # a dry run changes nothing
    assert ours.prepare_vocab() == theirs.prepare_vocab()
    assert ours.wv.index_to_key == theirs.wv.index_to_key
    assert ours.effective_min_count == theirs.effective_min_count
    ours.train(small_corpus, total_examples=ours.corpus_count, epochs=1)  # weights are ready


def test_prepare_vocab_reports_an_update_as_gensims(halves):
    first, second = halves
    ours = make(first, min_count=5, sg=1)
    theirs = gensim.models.Word2Vec(first, min_count=5, sg=1, vector_size=32, epochs=1)
    ours.scan_vocab(second)
    theirs.scan_vocab(second)
    assert ours.prepare_vocab(update=True) == theirs.prepare_vocab(update=True)


def test_train_needs_gensims_explicit_arguments(small_corpus):
    model = make(min_count=2)
    model.build_vocab(small_corpus)
    with pytest.raises(ValueError, match="total_examples or total_words"):
        model.train(small_corpus, epochs=1)
    with pytest.raises(ValueError, match="pass epochs"):
        model.train(small_corpus, total_examples=model.corpus_count)


def test_an_empty_vocabulary_is_gensims_error_and_ours(small_corpus):
    for expected in (RuntimeError, ValueError):  # gensim's class, torchw2v's
        with pytest.raises(expected, match="vocabulary is empty"):
            make(small_corpus[:5], min_count=10**6)
    with pytest.raises(EmptyVocabularyError):
        make().build_vocab([])
    with pytest.raises(EmptyVocabularyError, match="max_vocab_size=2 pruned every word"):
        make(max_vocab_size=2).build_vocab([[f"a{i}", f"b{i}", f"c{i}"] for i in range(9)])


def test_vectors_alone_cannot_train_or_predict(small_corpus, tmp_path):
    make(small_corpus, min_count=2).wv.save_word2vec_format(tmp_path / "v.bin", binary=True)
    model = make(min_count=2)
    model.wv = KeyedVectors.load_word2vec_format(tmp_path / "v.bin", binary=True)
    with pytest.raises(RuntimeError, match="training state.*load_word2vec_format"):
        model.train(small_corpus, total_examples=1, epochs=1)
    with pytest.raises(RuntimeError, match="training state"):
        model.predict_output_word(["the", "of"])


def test_gensims_warnings_are_logged(small_corpus, caplog):
    with caplog.at_level(logging.WARNING):
        model = make(small_corpus, sg=1, hs=1, negative=2, min_count=2, epochs=1)
        assert "Effective 'alpha'" not in caplog.text
        model.train(small_corpus, total_examples=model.corpus_count, epochs=1)
    assert "Both hierarchical softmax and negative sampling are activated." in caplog.text
    assert "Effective 'alpha' higher than previous training cycles" in caplog.text


def test_load_is_called_on_the_class(small_corpus, tmp_path):
    model = make(small_corpus, min_count=2)
    model.save(tmp_path / "m.npz")
    with pytest.raises(AttributeError, match="class"):
        model.load(tmp_path / "m.npz")
    assert torchw2v.Word2Vec.load(tmp_path / "m.npz", device="cpu").wv.index_to_key == (
        model.wv.index_to_key
    )


class RecordingBar:
    """Stands in for tqdm's progress bar and records what it is asked to show."""

    def __init__(self, shown: list, **settings):
        self.shown = shown

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def update(self, n):
        pass

    def set_postfix(self, refresh=True, **values):
        self.shown.append(values)


@pytest.mark.parametrize("compute_loss", [False, True])
def test_progress_bar_shows_the_loss_only_when_computed(small_corpus, monkeypatch, compute_loss):
    shown = []
    monkeypatch.setattr(trainer, "tqdm", lambda **settings: RecordingBar(shown, **settings))
    make(small_corpus, sg=1, min_count=2, epochs=1, compute_loss=compute_loss)
    assert bool(shown) == compute_loss
    assert all(float(values["loss"]) > 0 for values in shown)


def _compiled_available() -> bool:
    from torchw2v.engines import compiled

    return compiled.is_available()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gensim's, for init_sims and others
def test_gensims_other_public_methods_work_as_in_gensim(small_corpus):
    """init_sims, init_weights, seeded_vector, make_cum_table, create_binary_tree and
    add_lifecycle_event, which gensim 3 scripts and gensim's docs call."""
    settings = {"min_count": 5, "hs": 1, "negative": 5, "vector_size": 16, "seed": 3}
    ours = make(small_corpus, **settings)
    theirs = gensim.models.Word2Vec(small_corpus, workers=1, **settings)
    assert np.array_equal(ours.seeded_vector("abc", 8), theirs.seeded_vector("abc", 8))

    def codes(model):
        return [code.tolist() for code in model.wv.expandos["code"]]

    table, before = ours.cum_table.copy(), codes(ours)
    ours.wv.expandos["count"][:2] = ours.wv.expandos["count"][1::-1]  # swap two counts
    theirs.wv.expandos["count"][:2] = theirs.wv.expandos["count"][1::-1]
    for model in (ours, theirs):
        model.make_cum_table()
        model.create_binary_tree()
    assert np.array_equal(ours.cum_table, theirs.cum_table) and not np.array_equal(
        ours.cum_table, table
    )
    assert codes(ours) == codes(theirs) != before

    ours.init_sims(replace=True)
    assert np.allclose(np.linalg.norm(ours.wv.vectors, axis=1), 1, atol=1e-5)
    assert np.array_equal(ours._syn0.numpy(), ours.wv.vectors)  # the trained vectors themselves

    ours.init_weights()
    untrained = gensim.models.Word2Vec(workers=1, **settings)
    untrained.build_vocab(small_corpus)
    assert np.array_equal(ours.wv.vectors, untrained.wv.vectors)  # gensim's seeded vectors
    assert not ours.syn1neg.any() and not ours.syn1.any()
    ours.train(small_corpus, total_examples=ours.corpus_count, epochs=1)  # and it trains on
    assert ours.syn1neg.any()

    ours.add_lifecycle_event("tested", note="here")
    assert ours.lifecycle_events[-1]["event"] == "tested"
