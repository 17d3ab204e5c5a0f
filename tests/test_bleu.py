"""seqgan_env.bleu must reproduce nltk's sentence_bleu (method1) as Texygen calls it."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from seqgan_env.bleu import BLEUReference, bleu, self_bleu

METHOD1 = SmoothingFunction().method1


def nltk_bleu(hypotheses, references, n):
    """Texygen BLEU: mean of nltk sentence_bleu against the whole reference set."""
    w = (1 / n,) * n
    scores = [sentence_bleu(references, h, w, smoothing_function=METHOD1) for h in hypotheses]
    return sum(scores) / len(scores)


def nltk_self_bleu(sentences, n, indices=None):
    """Texygen Self-BLEU: each sentence against all the other sentences."""
    w = (1 / n,) * n
    indices = range(len(sentences)) if indices is None else indices
    scores = [
        sentence_bleu(sentences[:i] + sentences[i + 1:], sentences[i], w,
                      smoothing_function=METHOD1)
        for i in indices
    ]
    return sum(scores) / len(scores)


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


# Small vocabularies force repeated tokens and shared n-grams; lengths 0..9 include
# hypotheses shorter than n (and empty ones).
token = st.one_of(st.integers(0, 4), st.sampled_from(["a", "b", "c"]))
sentence = st.lists(token, min_size=0, max_size=9)
sentence_set = st.lists(sentence, min_size=1, max_size=6)


@settings(max_examples=50, deadline=None)
@given(hyps=sentence_set, refs=sentence_set, n=st.integers(1, 5), dup=st.booleans())
def test_bleu_matches_nltk(hyps, refs, n, dup):
    if dup:  # duplicates in both sets
        hyps, refs = hyps + hyps[:1], refs + refs[:1]
    assert close(bleu(hyps, refs, n), nltk_bleu(hyps, refs, n))
    ref = BLEUReference(refs, max_n=5)
    for h in hyps:
        w = (1 / n,) * n
        assert close(ref.sentence_bleu(h, n),
                     sentence_bleu(refs, h, w, smoothing_function=METHOD1))


@settings(max_examples=50, deadline=None)
@given(sents=st.lists(sentence, min_size=2, max_size=7), n=st.integers(1, 5),
       dup=st.booleans())
def test_self_bleu_matches_nltk(sents, n, dup):
    if dup:  # the unique-holder / runner-up logic matters with duplicated sentences
        sents = [*sents, sents[0], sents[-1]]
    assert close(self_bleu(sents, n), nltk_self_bleu(sents, n))


def test_random_corpus_and_reuse_across_orders():
    rng = random.Random(1)
    words = [f"w{i}" for i in range(30)]
    refs = [[rng.choice(words[: rng.randint(3, 30)]) for _ in range(rng.randint(1, 15))]
            for _ in range(40)]
    hyps = [[rng.choice(words) for _ in range(rng.randint(0, 15))] for _ in range(25)]
    ref = BLEUReference(refs, max_n=5)
    for n in range(2, 6):
        assert close(ref.corpus_mean_bleu(hyps, n), nltk_bleu(hyps, refs, n))
        assert close(self_bleu(hyps, n), nltk_self_bleu(hyps, n))


def test_known_cases():
    refs = [["the", "cat", "sat", "on", "the", "mat"]]
    assert BLEUReference(refs).sentence_bleu(refs[0], 4) == pytest.approx(1.0)
    assert bleu([["dog"]], refs, 2) == 0.0  # no unigram match -> 0 (nltk early return)
    assert bleu([[]], refs, 2) == 0.0  # empty hypothesis
    short = ["the", "cat"]  # shorter than n=4: higher orders smoothed with epsilon
    assert close(bleu([short], refs, 4), nltk_bleu([short], refs, 4))
    rep = ["the"] * 7  # clipped at the max reference count (2)
    assert close(bleu([rep], refs, 1), nltk_bleu([rep], refs, 1))


def test_closest_length_tie_goes_to_shorter():
    refs = [["a"] * 2, ["a"] * 6]
    hyp = ["a"] * 4  # equally far from 2 and 6: nltk uses 2 (no brevity penalty)
    ref = BLEUReference(refs)
    assert ref.closest_ref_length(4) == 2
    assert close(ref.sentence_bleu(hyp, 2), nltk_bleu([hyp], refs, 2))


def test_numpy_ids_and_subsampled_self_bleu():
    rng = np.random.default_rng(0)
    sents = [list(rng.integers(0, 6, size=rng.integers(3, 9))) for _ in range(20)]
    as_int = [[int(t) for t in s] for s in sents]
    ref = BLEUReference(as_int, max_n=4)
    assert close(ref.sentence_bleu(np.asarray(sents[0]), 4),
                 nltk_bleu([as_int[0]], as_int, 4))
    # max_sentences scores a seeded subset of hypotheses, each against ALL others.
    sub = random.Random(3).sample(range(20), 5)
    assert close(self_bleu(as_int, 3, max_sentences=5, seed=3),
                 nltk_self_bleu(as_int, 3, sorted(sub)))
    assert self_bleu(as_int, 3, max_sentences=50) == self_bleu(as_int, 3)


def test_errors():
    with pytest.raises(ValueError, match="reference set is empty"):
        BLEUReference([])
    with pytest.raises(ValueError, match="reference set is empty"):
        bleu([["a"]], [], 2)
    with pytest.raises(ValueError, match=">= 1"):
        bleu([["a"]], [["a"]], 0)
    with pytest.raises(ValueError, match="exceeds max_n=3"):
        BLEUReference([["a"]], max_n=3).sentence_bleu(["a"], 4)
    with pytest.raises(ValueError, match="int"):
        BLEUReference([["a"]]).sentence_bleu(["a"], 2.0)
    with pytest.raises(ValueError, match="max_n"):
        BLEUReference([["a"]], max_n=0)
    with pytest.raises(ValueError, match="empty"):
        BLEUReference([["a"]]).corpus_mean_bleu([], 2)
    with pytest.raises(ValueError, match="at least 2"):
        self_bleu([["a", "b"]], 2)
    with pytest.raises(ValueError, match="max_sentences"):
        self_bleu([["a"], ["b"]], 2, max_sentences=0)
    with pytest.raises(TypeError, match="tokenise"):
        BLEUReference([["a"]]).sentence_bleu("a b", 2)
