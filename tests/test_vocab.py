"""The vocabulary is gensim's exactly: words, order, counts, sample_int, cum_table, totals."""

from __future__ import annotations

import random

import gensim
import numpy as np
import pytest
from gensim.utils import RULE_DEFAULT, RULE_DISCARD, RULE_KEEP
from hypothesis import given, settings
from hypothesis import strategies as st

import torchw2v
from torchw2v.vocab import (
    CUM_TABLE_DOMAIN,
    EmptyVocabularyError,
    negative_cum_table,
    subsample_thresholds,
)


def build_both(sentences, trim_rule=None, **settings):
    """Build the vocabulary of ``sentences`` with gensim and with torchw2v, same settings."""
    theirs = gensim.models.Word2Vec(sg=1, workers=1, **settings)
    theirs.build_vocab(sentences, trim_rule=trim_rule)
    ours = torchw2v.Word2Vec(sg=1, device="cpu", engine="torch", **settings)
    ours.build_vocab(sentences, trim_rule=trim_rule)
    return ours, theirs


def trim_rule(word, count, min_count):
    """Keep every word starting with 'c', drop short words, else apply min_count."""
    if word.startswith("c"):
        return RULE_KEEP
    if len(word) <= 2:
        return RULE_DISCARD
    return RULE_DEFAULT


def synthetic_corpus(seed, words=300, tokens=20000):
    """Zipf-like random text with many tied counts and late first occurrences."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(words)]
    weights = [1.0 / (rank + 1) for rank in range(words)]
    stream = rng.choices(vocab, weights=weights, k=tokens)
    sentences, position = [], 0
    while position < len(stream):
        length = rng.randint(0, 25)  # empty sentences included
        sentences.append(stream[position : position + length])
        position += length
    return sentences


WIKI_SETTINGS = {
    "defaults": {},
    "min_count=1": {"min_count": 1},
    "sample=0": {"sample": 0},
    "sample=1e-5": {"sample": 1e-5},
    "sample=5": {"sample": 5},
    "ns_exponent=0.5": {"ns_exponent": 0.5},
    "ns_exponent=-0.5": {"ns_exponent": -0.5},
    "ns_exponent=0": {"ns_exponent": 0.0},
    "max_final_vocab=100": {"max_final_vocab": 100},
    "max_final_vocab=100,min_count=1": {"max_final_vocab": 100, "min_count": 1},
    "max_final_vocab>vocab": {"max_final_vocab": 10**7},
    "max_vocab_size=500": {"max_vocab_size": 500},
    "max_vocab_size=500,min_count=1": {"max_vocab_size": 500, "min_count": 1},
    "sorted_vocab=0": {"sorted_vocab": 0},
    "sorted_vocab=0,min_count=1": {"sorted_vocab": 0, "min_count": 1},
}


@pytest.mark.parametrize("settings", WIKI_SETTINGS.values(), ids=WIKI_SETTINGS.keys())
def test_wiki_vocab_matches_gensim(wiki_head, assert_same_vocab, settings):
    ours, theirs = build_both(wiki_head, **settings)
    assert_same_vocab(ours, theirs)


def test_wiki_settings_change_the_vocabulary(wiki_head):
    """Guard against a comparison that passes because the settings were ignored."""
    default, _ = build_both(wiki_head[:500])
    everything, _ = build_both(wiki_head[:500], min_count=1)
    capped, _ = build_both(wiki_head[:500], max_final_vocab=100)
    pruned, _ = build_both(wiki_head[:500], max_vocab_size=500, min_count=1)
    assert len(everything.wv) > len(default.wv) > len(capped.wv)
    assert len(capped.wv) <= 100
    assert capped.effective_min_count > 5
    assert len(pruned.wv) < len(everything.wv)
    unsorted, _ = build_both(wiki_head[:500], sorted_vocab=0)
    assert unsorted.wv.index_to_key != default.wv.index_to_key
    assert sorted(unsorted.wv.index_to_key) == sorted(default.wv.index_to_key)


@pytest.mark.parametrize("settings", [{}, {"max_vocab_size": 500}, {"min_count": 1}])
def test_wiki_trim_rule_matches_gensim(wiki_head, assert_same_vocab, settings):
    ours, theirs = build_both(wiki_head, trim_rule=trim_rule, **settings)
    assert_same_vocab(ours, theirs)
    words = set(ours.wv.index_to_key)
    assert not any(len(w) <= 2 and not w.startswith("c") for w in words)
    assert any(w.startswith("c") and ours.wv.get_vecattr(w, "count") < 5 for w in words)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "settings",
    [
        {"min_count": 1},
        {"min_count": 3, "sample": 1e-2},
        {"min_count": 1, "sorted_vocab": 0},
        {"min_count": 1, "max_vocab_size": 40},
        {"min_count": 2, "max_vocab_size": 25, "sorted_vocab": 0},
        {"min_count": 1, "max_final_vocab": 50},
        {"min_count": 1, "sample": 20},
        {"min_count": 2, "null_word": 1},
        {"min_count": 1, "null_word": 1, "sorted_vocab": 0, "max_final_vocab": 30},
    ],
    ids=str,
)
def test_synthetic_vocab_matches_gensim(assert_same_vocab, seed, settings):
    ours, theirs = build_both(synthetic_corpus(seed), **settings)
    assert_same_vocab(ours, theirs)


WORDS = [f"w{i}" for i in range(40)] + ["é", "日本"]


@settings(max_examples=40, deadline=None)
@given(
    sentences=st.lists(
        st.lists(st.sampled_from(WORDS), max_size=30) | st.just(["w1"] * 12_000), max_size=40
    ),
    vocab_settings=st.fixed_dictionaries(
        {
            "min_count": st.sampled_from([1, 2, 5]),
            "sample": st.sampled_from([0.0, 1e-3, 0.5, 20.0]),
            "max_final_vocab": st.sampled_from([None, 1, 3, 50]),
            "sorted_vocab": st.sampled_from([0, 1]),
            "null_word": st.sampled_from([0, 1]),
            "max_vocab_size": st.sampled_from([None, 5, 1000]),
            "hs": st.sampled_from([0, 1]),
        }
    ),
    from_file=st.booleans(),
)
def test_random_corpora_and_settings_give_gensims_vocabulary(
    sentences, vocab_settings, from_file, tmp_path_factory, assert_same_vocab
):
    source = {"corpus_iterable": sentences}
    if from_file:  # read as gensim's LineSentence reads it: long lines cut, empty ones skipped
        path = tmp_path_factory.mktemp("vocab") / "corpus.txt"
        path.write_text("".join(" ".join(s) + "\n" for s in sentences), encoding="utf-8")
        source = {"corpus_file": str(path)}
    theirs = gensim.models.Word2Vec(sg=1, workers=1, **vocab_settings)
    theirs.build_vocab(**source)
    ours = torchw2v.Word2Vec(sg=1, workers=1, **vocab_settings)
    if not set(theirs.wv.index_to_key) - {"\0"}:  # gensim goes on with nothing; we say why
        with pytest.raises(EmptyVocabularyError):
            ours.build_vocab(**source)
        return
    ours.build_vocab(**source)
    assert_same_vocab(ours, theirs)
    if vocab_settings["hs"]:
        codes = [[np.asarray(c).tolist() for c in m.wv.expandos["code"]] for m in (ours, theirs)]
        assert codes[0] == codes[1]


def test_synthetic_trim_rule_with_pruning_matches_gensim(assert_same_vocab):
    def rule(word, count, min_count):
        return RULE_KEEP if word.endswith("7") else RULE_DEFAULT

    ours, theirs = build_both(synthetic_corpus(2), trim_rule=rule, min_count=4, max_vocab_size=30)
    assert_same_vocab(ours, theirs)


def test_ties_keep_gensims_order(assert_same_vocab):
    """Equal counts: gensim puts the word seen first last; so must we."""
    sentences = [["b", "a", "c"], [], ["a", "c", "b", "d"], ["d", "e"]]
    ours, theirs = build_both(sentences, min_count=1)
    assert_same_vocab(ours, theirs)
    assert ours.corpus_count == 4
    assert ours.corpus_total_words == 9


def test_pruned_word_restarts_its_count(assert_same_vocab):
    """max_vocab_size forgets rare words; one that comes back is counted from zero.

    With max_vocab_size=2, pruning (keep count >= min_reduce, then min_reduce += 1) runs after
    sentences 1 (keeps all), 2 (forgets x and b), 4 (forgets x again, and c): x, seen 4 times,
    ends with the 1 count of the last sentence.
    """
    sentences = [["x", "a"], ["b"], ["a"], ["x", "x"], ["c", "a"], ["x"]]
    ours, theirs = build_both(sentences, min_count=1, max_vocab_size=2)
    assert_same_vocab(ours, theirs)
    counts = dict(zip(ours.wv.index_to_key, ours.wv.expandos["count"].tolist()))
    assert counts == {"a": 3, "x": 1}
    assert ours.corpus_total_words == 9
    assert ours.corpus_count == 6


def test_cum_table_and_sample_int_are_installed(wiki_head):
    ours, _ = build_both(wiki_head[:500])
    counts = ours.wv.expandos["count"]
    assert np.array_equal(ours.cum_table, negative_cum_table(counts, 0.75))
    assert np.array_equal(ours.wv.expandos["sample_int"], subsample_thresholds(counts, 1e-3))


# ---------------------------------------------------------------- the formulas themselves

COUNTS = np.array([500, 120, 120, 37, 5, 1, 1], dtype=np.int64)


@pytest.mark.parametrize("exponent", [0.75, 0.5, 0.0, -0.5, 1.0])
def test_negative_cum_table_formula(exponent):
    table = negative_cum_table(COUNTS, exponent)
    weights = [float(c) ** exponent for c in COUNTS]
    total = sum(weights)
    running, expected = 0.0, []
    for w in weights:
        running += w
        expected.append(round(running / total * CUM_TABLE_DOMAIN))
    assert table.dtype == np.uint32
    assert table.tolist() == expected
    assert table[-1] == CUM_TABLE_DOMAIN
    assert np.all(np.diff(table.astype(np.int64)) >= 0)


def test_negative_cum_table_draws_follow_unigram_power():
    table = negative_cum_table(COUNTS, 0.75)
    rng = np.random.default_rng(0)
    draws = np.searchsorted(table, rng.integers(0, table[-1], size=400_000), side="left")
    observed = np.bincount(draws, minlength=len(COUNTS)) / draws.size
    expected = COUNTS**0.75 / np.sum(COUNTS**0.75)
    assert np.allclose(observed, expected, atol=0.005)


@pytest.mark.parametrize("exponent", [1e6, 500.0, -1e6])
def test_negative_cum_table_huge_exponent_favours_one_end(exponent):
    # count**exponent overflows a double; the shares are still count**exponent's: all of
    # them to the most frequent words (the rarest, below zero), equal among ties
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        table = negative_cum_table(COUNTS, exponent)
    shares = np.diff(table.astype(np.int64), prepend=0)
    favoured = COUNTS == (COUNTS.max() if exponent > 0 else COUNTS.min())
    assert table[-1] == CUM_TABLE_DOMAIN
    assert np.all(shares[~favoured] == 0)
    assert np.ptp(shares[favoured]) <= 1


def test_negative_cum_table_domain_and_empty():
    assert negative_cum_table(np.array([3, 1]), 1.0, domain=400).tolist() == [300, 400]
    empty = negative_cum_table(np.zeros(0, dtype=np.int64), 0.75)
    assert empty.dtype == np.uint32 and empty.size == 0


@pytest.mark.parametrize("sample", [1e-3, 1e-2, 0.2])
def test_subsample_thresholds_formula(sample):
    thresholds = subsample_thresholds(COUNTS, sample)
    t = sample * COUNTS.sum()
    for count, got in zip(COUNTS, thresholds):
        keep = min((np.sqrt(count / t) + 1) * (t / count), 1.0)
        assert got == np.uint32(keep * (2**32 - 1))
    assert thresholds.dtype == np.uint32
    # rarer words are kept at least as often as frequent ones, the rarest always
    assert np.all(np.diff(thresholds.astype(np.int64)) >= 0)
    assert thresholds[-1] == 2**32 - 1
    assert thresholds[0] < 2**32 - 1


def test_subsample_thresholds_sample_zero_keeps_everything():
    assert np.all(subsample_thresholds(COUNTS, 0) == 2**32 - 1)


def test_subsample_thresholds_count_shorthand():
    """sample >= 1: the threshold is a count, int(sample * (3 + sqrt 5) / 2), not a fraction."""
    sample = 5
    t = int(sample * (3 + np.sqrt(5)) / 2)
    thresholds = subsample_thresholds(COUNTS, sample)
    for count, got in zip(COUNTS, thresholds):
        keep = min((np.sqrt(count / t) + 1) * (t / count), 1.0)
        assert got == np.uint32(keep * (2**32 - 1))
    # a word's threshold depends on its count only, not on the rest of the corpus
    assert subsample_thresholds(np.array([500, 1]), sample)[0] == thresholds[0]
    fraction = subsample_thresholds(COUNTS, 1e-3)[0]
    assert subsample_thresholds(np.array([500, 1]), 1e-3)[0] != fraction
