"""Benchmark seqgan_env.bleu against nltk's per-sentence loop (the Texygen way).

Random seeded sentences (Zipf-like word frequencies) are scored with BLEU-n against a
reference set, by ``BLEUReference`` and by nltk ``sentence_bleu`` (method1) in a loop.
nltk re-counts every reference for every hypothesis, so by default it is timed on a
subset of hypotheses and its full-set time is extrapolated linearly (it is linear in
the number of hypotheses); the two values are compared on that same subset.

    python bench/bench_bleu.py                     # 2,000 hyps vs 10,000 refs, BLEU-4
    python bench/bench_bleu.py --nltk-hypotheses 0 # run nltk on ALL hypotheses
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from common import add_common_args, apply_common_args, print_machine

from seqgan_env.bleu import BLEUReference, self_bleu


def random_sentences(rng: np.random.Generator, count: int, vocab: int, min_len: int,
                     max_len: int, zipf_s: float) -> list[list[str]]:
    """``count`` sentences of word tokens drawn with p(rank r) ~ r^-s, lengths uniform."""
    probs = 1.0 / np.arange(1, vocab + 1) ** zipf_s
    probs /= probs.sum()
    lengths = rng.integers(min_len, max_len + 1, size=count)
    ids = rng.choice(vocab, size=int(lengths.sum()), p=probs)
    words = [f"w{i}" for i in range(vocab)]
    out, pos = [], 0
    for length in lengths:
        out.append([words[i] for i in ids[pos:pos + length]])
        pos += length
    return out


def nltk_mean_bleu(hypotheses: list[list[str]], references: list[list[str]], n: int) -> float:
    """The Texygen loop: nltk sentence_bleu of each hypothesis vs all references, mean."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu  # the [test] extra

    weights = (1 / n,) * n
    smooth = SmoothingFunction().method1
    scores = [sentence_bleu(references, h, weights, smoothing_function=smooth)
              for h in hypotheses]
    return sum(scores) / len(scores)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--hypotheses", type=int, default=2000, help="generated sentences")
    p.add_argument("--references", type=int, default=10000, help="reference sentences")
    p.add_argument("--n", type=int, default=4, help="BLEU order")
    p.add_argument("--vocab", type=int, default=5000, help="vocabulary size")
    p.add_argument("--min-len", type=int, default=10, help="shortest sentence, in words")
    p.add_argument("--max-len", type=int, default=30, help="longest sentence, in words")
    p.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of word frequencies")
    p.add_argument("--nltk-hypotheses", type=int, default=40,
                   help="time nltk on this many hypotheses and extrapolate; 0 = all")
    p.add_argument("--self-bleu", action="store_true",
                   help="also time Self-BLEU-n of the hypotheses (ours only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sentences")
    add_common_args(p)
    args = p.parse_args()
    apply_common_args(args)
    print_machine()

    rng = np.random.default_rng(args.seed)
    refs = random_sentences(rng, args.references, args.vocab, args.min_len, args.max_len,
                            args.zipf)
    hyps = random_sentences(rng, args.hypotheses, args.vocab, args.min_len, args.max_len,
                            args.zipf)
    k = args.hypotheses if args.nltk_hypotheses <= 0 else min(args.nltk_hypotheses,
                                                               args.hypotheses)
    print(f"BLEU-{args.n}: {args.hypotheses} hypotheses vs {args.references} references, "
          f"vocab {args.vocab} (Zipf s={args.zipf}), lengths {args.min_len}-{args.max_len}, "
          f"seed {args.seed}")

    t0 = time.perf_counter()
    ref = BLEUReference(refs, max_n=args.n)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours_all = ref.corpus_mean_bleu(hyps, args.n)
    t_score = time.perf_counter() - t0
    ours_time = t_build + t_score
    ours_subset = ref.corpus_mean_bleu(hyps[:k], args.n)

    t0 = time.perf_counter()
    nltk_subset = nltk_mean_bleu(hyps[:k], refs, args.n)
    t_nltk_subset = time.perf_counter() - t0
    nltk_time = t_nltk_subset * args.hypotheses / k
    extrapolated = k < args.hypotheses

    print(f"ours : {ours_time:9.3f} s  (build references {t_build:.3f} s + score "
          f"{t_score:.3f} s = {1e6 * t_score / args.hypotheses:.1f} us/hypothesis)")
    if extrapolated:
        print(f"nltk : {nltk_time:9.3f} s  EXTRAPOLATED from {t_nltk_subset:.3f} s on the "
              f"first {k} hypotheses (x {args.hypotheses / k:.1f})")
    else:
        print(f"nltk : {nltk_time:9.3f} s  (measured on all {k} hypotheses)")
    print(f"speed-up (nltk / ours, whole set incl. build): {nltk_time / ours_time:,.0f}x; "
          f"per hypothesis once built (reward use): {nltk_time / t_score:,.0f}x")
    print(f"BLEU-{args.n} on the {k} hypotheses nltk scored: ours {ours_subset!r}  "
          f"nltk {nltk_subset!r}")
    rel = abs(ours_subset - nltk_subset) / max(abs(nltk_subset), 1e-300)
    match = math.isclose(ours_subset, nltk_subset, rel_tol=1e-12, abs_tol=1e-15)
    print(f"relative difference {rel:.2e}: {'MATCH' if match else 'MISMATCH'}")
    print(f"BLEU-{args.n} of all {args.hypotheses} hypotheses (ours): {ours_all!r}")

    if args.self_bleu:
        t0 = time.perf_counter()
        value = self_bleu(hyps, args.n)
        print(f"Self-BLEU-{args.n} of {args.hypotheses} hypotheses (ours, no subsampling): "
              f"{value!r} in {time.perf_counter() - t0:.3f} s")
    if not match:
        sys.exit(1)


if __name__ == "__main__":
    main()
