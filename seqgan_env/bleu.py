"""Fast BLEU and Self-BLEU with the Texygen definitions, numerically equal to nltk.

Texygen (Zhu et al. 2018), the benchmark used for SeqGAN-style text GANs, scores a
generated set by the mean over hypotheses of::

    nltk.translate.bleu_score.sentence_bleu(
        references=<the WHOLE reference set>, hypothesis=hyp,
        weights=(1/n,) * n, smoothing_function=SmoothingFunction().method1)

and Self-BLEU by scoring each generated sentence against all the *other* generated
sentences the same way. Called like that, nltk re-counts the n-grams of every
reference for every hypothesis (O(|hyps| * |refs|)). Every hypothesis shares the
same reference set, so the only reference-side quantities BLEU needs -- the
maximum count of each n-gram over the references (for clipping) and the reference
length closest to the hypothesis length (for the brevity penalty) -- are computed
once here; scoring a hypothesis then costs O(len(hyp) * n) dict lookups.

Every step mirrors nltk 3.10 ``nltk/translate/bleu_score.py`` (``corpus_bleu``,
``modified_precision``, ``closest_ref_length``, ``brevity_penalty``,
``SmoothingFunction.method1``) so the floats are the same, not just close.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

__all__ = ["BLEUReference", "bleu", "self_bleu"]

Sentence = Sequence[Hashable]
NGram = tuple[Hashable, ...]

# nltk SmoothingFunction(epsilon=0.1).method1: epsilon added to zero numerators.
_EPSILON = 0.1


def _check_order(n: object, max_n: int | None = None, name: str = "n") -> int:
    """Validate an n-gram order (a positive int, at most ``max_n`` when given)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"n-gram order {name} must be an int >= 1, got {n!r}")
    if n < 1:
        raise ValueError(f"n-gram order {name} must be >= 1, got {n}")
    if max_n is not None and n > max_n:
        raise ValueError(
            f"n={n} exceeds max_n={max_n} of this BLEUReference; "
            f"build it with max_n >= {n}"
        )
    return n


def _as_tokens(sentence: Sentence, what: str) -> tuple[Hashable, ...]:
    """Turn one sentence (token sequence, list or 1-D numpy array) into a tuple.

    A bare ``str`` is rejected: nltk would silently score its characters, which is
    almost always a forgotten ``.split()``; pass ``list(text)`` for characters.
    """
    if isinstance(sentence, (str, bytes)):
        raise TypeError(
            f"each {what} must be a sequence of tokens, got a {type(sentence).__name__}; "
            "tokenise it first (e.g. line.split(), or list(line) for characters)"
        )
    tolist = getattr(sentence, "tolist", None)  # numpy -> Python ints (faster hashing)
    if callable(tolist):
        sentence = tolist()
    return tuple(sentence)


def _ngram_counts(tokens: tuple[Hashable, ...], k: int) -> Counter[NGram]:
    """Counts of the k-grams of ``tokens`` as tuples, like nltk's ``Counter(ngrams(s, k))``.

    Empty when ``len(tokens) < k`` (nltk ``modified_precision`` does the same).
    """
    return Counter(zip(*[tokens[i:] for i in range(k)], strict=False))  # ragged: the shortest ends it


def _closest_length(lengths: Sequence[int], hyp_len: int) -> int:
    """Reference length closest to ``hyp_len`` from sorted distinct ``lengths``.

    Same as nltk ``closest_ref_length``: ``min(key=(abs(r - h), r))``, i.e. ties go
    to the shorter reference.
    """
    i = bisect_left(lengths, hyp_len)
    if i < len(lengths) and lengths[i] == hyp_len:
        return hyp_len
    if i == 0:
        return lengths[0]
    if i == len(lengths):
        return lengths[-1]
    below, above = lengths[i - 1], lengths[i]
    return below if hyp_len - below <= above - hyp_len else above


def _closest_length_excluding(lengths: Sequence[int], own: int) -> int:
    """Closest length to ``own`` in sorted distinct ``lengths`` once ``own`` is removed.

    Used by Self-BLEU when the hypothesis is the only sentence of its length.
    """
    i = bisect_left(lengths, own)  # lengths[i] == own
    below = lengths[i - 1] if i > 0 else None
    above = lengths[i + 1] if i + 1 < len(lengths) else None
    if below is None:
        if above is None:
            raise ValueError("no other sentence to compare lengths with")
        return above
    if above is None:
        return below
    return below if own - below <= above - own else above


def _combine(hyp_len: int, numerators: Sequence[int], n: int, closest_ref_len: int) -> float:
    """BLEU-n from clipped n-gram match counts, exactly as nltk ``corpus_bleu`` + method1.

    ``numerators[k-1]`` is the clipped match count of k-grams (nltk
    ``modified_precision`` numerator); orders beyond ``len(numerators)`` count 0.
    """
    # nltk corpus_bleu: "Returns 0 if there's no matching n-grams" (unigram check).
    if not numerators or numerators[0] == 0:
        return 0.0
    weight = 1 / n  # Texygen weights: tuple(1. / n for _ in range(n))
    terms = []
    for k in range(1, n + 1):
        num = numerators[k - 1] if k <= len(numerators) else 0
        # nltk modified_precision: denominator = max(1, number of hypothesis k-grams).
        den = max(1, hyp_len - k + 1)
        if num == 0:
            p = (num + _EPSILON) / den  # nltk method1: float (0 + epsilon) / denominator
        else:
            p = num / den  # == float(Fraction(num, den)): int true division, correctly rounded
        terms.append(weight * math.log(p))
    # nltk brevity_penalty (hyp_len > 0 here, since a unigram matched).
    if hyp_len > closest_ref_len:
        bp = 1.0
    else:
        bp = math.exp(1 - closest_ref_len / hyp_len)
    return bp * math.exp(math.fsum(terms))  # nltk: bp * exp(fsum(w_i * log p_i))


class BLEUReference:
    """A reference set prepared once for fast, repeated Texygen BLEU scoring.

    Holds, for each order k <= ``max_n``, the maximum count of every k-gram over the
    references, and the sorted distinct reference lengths. Use it as the PG-BLEU
    reward (``sentence_bleu`` of a completed sequence against the training set) or
    as an evaluation metric (``corpus_mean_bleu``). Tokens may be any hashable
    (str words, int ids); an int id 3 and a str "3" are different tokens.
    """

    def __init__(self, references: Iterable[Sentence], max_n: int = 5) -> None:
        self.max_n = _check_order(max_n, name="max_n")
        refs = [_as_tokens(r, "reference") for r in references]
        if not refs:
            raise ValueError("reference set is empty; BLEU needs at least one reference")
        self.num_references = len(refs)
        # nltk modified_precision: max_counts[g] = max over references of count(g).
        self._max_counts: list[dict[NGram, int]] = []
        for k in range(1, self.max_n + 1):
            best: dict[NGram, int] = {}
            get = best.get
            for ref in refs:
                for gram, count in _ngram_counts(ref, k).items():
                    if count > get(gram, 0):
                        best[gram] = count
            self._max_counts.append(best)
        self._lengths = sorted({len(r) for r in refs})
        self._closest_cache: dict[int, int] = {}

    def closest_ref_length(self, hyp_len: int) -> int:
        """Reference length closest to ``hyp_len`` (ties -> shorter), cached per length."""
        closest = self._closest_cache.get(hyp_len)
        if closest is None:
            closest = _closest_length(self._lengths, hyp_len)
            self._closest_cache[hyp_len] = closest
        return closest

    def _numerators(self, tokens: tuple[Hashable, ...], n: int) -> list[int]:
        """Clipped match counts for orders 1..n, stopping after the first zero.

        If no k-gram matches, no (k+1)-gram can (its k-gram prefix would occur in the
        same reference), so the remaining orders are 0 and need no counting.
        """
        numerators = []
        for k in range(1, n + 1):
            max_counts = self._max_counts[k - 1]
            num = 0
            for gram, count in _ngram_counts(tokens, k).items():
                ref_count = max_counts.get(gram)
                if ref_count:
                    num += count if count < ref_count else ref_count
            numerators.append(num)
            if num == 0:
                break
        return numerators

    def sentence_bleu(self, hypothesis: Sentence, n: int = 4) -> float:
        """BLEU-n of one hypothesis against the whole reference set (Texygen/nltk value)."""
        _check_order(n, self.max_n)
        tokens = _as_tokens(hypothesis, "hypothesis")
        numerators = self._numerators(tokens, n)
        return _combine(len(tokens), numerators, n, self.closest_ref_length(len(tokens)))

    def corpus_mean_bleu(self, hypotheses: Iterable[Sentence], n: int = 4) -> float:
        """Texygen BLEU-n of a generated set: mean of per-hypothesis ``sentence_bleu``.

        Note this is the Texygen macro-average, not nltk's ``corpus_bleu``.
        """
        _check_order(n, self.max_n)
        scores = [self.sentence_bleu(h, n) for h in hypotheses]
        if not scores:
            raise ValueError("no hypotheses to score; the generated set is empty")
        return sum(scores) / len(scores)  # Texygen: sum(bleu) / len(bleu)


def bleu(hypotheses: Iterable[Sentence], references: Iterable[Sentence], n: int = 4) -> float:
    """Texygen BLEU-n of ``hypotheses`` against the whole ``references`` set.

    One-shot convenience; build a ``BLEUReference`` to score several sets or orders
    against the same references.
    """
    _check_order(n)
    return BLEUReference(references, max_n=n).corpus_mean_bleu(hypotheses, n)


def self_bleu(
    sentences: Iterable[Sentence],
    n: int = 4,
    max_sentences: int | None = None,
    seed: int = 0,
) -> float:
    """Texygen Self-BLEU-n: mean BLEU-n of each sentence against all the others.

    A diversity measure (higher = more mode collapse). Exact, no subsampling by
    default; with ``max_sentences`` only a seeded random subset of at most that many
    sentences is scored as hypotheses, each still against ALL other sentences (as
    Texygen's fast mode scores a prefix of the set).

    For the "max count over the others", each n-gram keeps its top count, how many
    sentences hold it and the largest smaller count: the max over the others is the
    top count unless this sentence is its unique holder, then the runner-up.
    """
    _check_order(n)
    sents = [_as_tokens(s, "sentence") for s in sentences]
    if len(sents) < 2:
        raise ValueError(
            f"Self-BLEU needs at least 2 sentences (each is scored against the others), "
            f"got {len(sents)}"
        )
    if max_sentences is not None and (isinstance(max_sentences, bool) or max_sentences < 1):
        raise ValueError(f"max_sentences must be >= 1 or None, got {max_sentences!r}")

    chosen: Sequence[int] = range(len(sents))
    if max_sentences is not None and max_sentences < len(sents):
        chosen = sorted(random.Random(seed).sample(range(len(sents)), max_sentences))

    # Per order: each sentence's k-gram counts, and per k-gram [top, holders, runner_up].
    per_order: list[tuple[list[Counter[NGram]], dict[NGram, list[int]]]] = []
    for k in range(1, n + 1):
        counts = [_ngram_counts(s, k) for s in sents]
        stats: dict[NGram, list[int]] = {}
        for sentence_counts in counts:
            for gram, c in sentence_counts.items():
                st = stats.get(gram)
                if st is None:
                    stats[gram] = [c, 1, 0]
                elif c > st[0]:
                    st[2] = st[0]  # old top becomes the runner-up
                    st[0], st[1] = c, 1
                elif c == st[0]:
                    st[1] += 1
                elif c > st[2]:
                    st[2] = c
        per_order.append((counts, stats))

    length_counts = Counter(len(s) for s in sents)
    lengths = sorted(length_counts)

    scores = []
    for j in chosen:
        hyp_len = len(sents[j])
        numerators = []
        for counts, stats in per_order:
            num = 0
            for gram, c in counts[j].items():
                top, holders, runner_up = stats[gram]
                other_max = runner_up if (c == top and holders == 1) else top
                num += c if c < other_max else other_max
            numerators.append(num)
            if num == 0:  # higher orders cannot match either (see BLEUReference)
                break
        if length_counts[hyp_len] > 1:
            closest = hyp_len  # another sentence has exactly this length
        else:
            closest = _closest_length_excluding(lengths, hyp_len)
        scores.append(_combine(hyp_len, numerators, n, closest))
    return sum(scores) / len(scores)
