"""Diagnostics of the adversarial signal: does the discriminator's reward carry usable information?

SeqGAN's claim rests on the reward D(y) (and its Monte Carlo estimates Q_t) telling the generator
something a constant reward would not (REINFORCE with reward 1 already lowers NLL-oracle by
sharpening the generator). These pure functions measure that, over tensors and the project's models:

- `discriminator_accuracy_auc`: can D separate held-out real sequences from fresh generated ones?
- `reward_quality_correlation`: does D rank generated sequences like the oracle (the ground truth of
  quality on the synthetic benchmark)?
- `q_signal_noise`: how much of Q_t's spread between sequences is signal, how much Monte Carlo noise?
- `policy_gradient_split`: how much of the policy gradient is the constant-reward part (the
  sharpening control) and how much comes from reward differences between tokens?
- `dense_reward_correlation`: in the dense reward mode, does the reward of each step rank the tokens
  like the oracle's likelihood of that token?
- `spearman`: the rank correlation used by the above (numpy only; scipy is not a dependency).

None of them trains or mutates a model: scores are taken in inference mode, and gradients are returned
by `torch.autograd.grad` without touching the parameters' `.grad`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from seqgan_env.discriminator import SequenceScorer
from seqgan_env.metrics import sequence_nll
from seqgan_env.prefix_discriminator import IncrementalScorer, dense_rewards
from seqgan_env.rewards import MonteCarloSearch, q_values
from seqgan_env.token_lstm import TokenLSTM

__all__ = [
    "average_ranks",
    "dense_reward_correlation",
    "discriminator_accuracy_auc",
    "policy_gradient_split",
    "q_signal_noise",
    "reward_quality_correlation",
    "spearman",
]


def _as_float64(x: torch.Tensor | np.ndarray | Any) -> np.ndarray:
    """A 1-D float64 numpy copy of `x` (a tensor on any device, an array or a sequence)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of the values of `x`, tied values sharing the mean of the ranks they span."""
    _, inverse, counts = np.unique(np.asarray(x, dtype=np.float64), return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # 0-based position of each distinct value's first copy
    return (first + (counts + 1) / 2.0)[inverse.reshape(-1)]


def discriminator_accuracy_auc(
    scorer: SequenceScorer, real: torch.Tensor, fake: torch.Tensor
) -> tuple[float, float]:
    """Accuracy at threshold 0.5 and ROC AUC of `scorer` on held-out `real` [N, T] against freshly
    generated `fake` [M, T] sequences.

    Accuracy counts a real sequence right when its score is > 0.5 and a fake one when it is <= 0.5 (the
    two-class argmax, ties going to "fake"). AUC is the Mann-Whitney U statistic over N*M pairs,
    P(score(real) > score(fake)) + 1/2 P(equal): 1 for a perfect separator, 0 for an inverted one, 0.5
    when D cannot tell them apart. AUC says whether D's scores *rank* real above fake at all, which the
    reward needs; accuracy alone hides a D that ranks well but is badly calibrated (or the reverse).
    """
    with torch.inference_mode():
        real_scores = _as_float64(scorer.score(real))
        fake_scores = _as_float64(scorer.score(fake))
    n, m = len(real_scores), len(fake_scores)
    if n == 0 or m == 0:
        raise ValueError(f"need real and fake sequences, got {n} real and {m} fake")
    accuracy = (np.sum(real_scores > 0.5) + np.sum(fake_scores <= 0.5)) / (n + m)
    ranks = average_ranks(np.concatenate([real_scores, fake_scores]))
    u = ranks[:n].sum() - n * (n + 1) / 2.0  # pairs (real, fake) with real ahead, ties counted half
    return float(accuracy), float(u / (n * m))


def spearman(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """Spearman rank correlation of `x` and `y` (same length), ties given their average rank.

    It measures whether two quantities order items the same way, whatever their scales: the
    question for a reward, since policy gradient with a baseline only uses the reward's ordering and
    spacing, not its level. Returns NaN when either input is constant (or has fewer than 2 values):
    the correlation is undefined there, and a constant reward carries no ranking information.
    Raises ValueError on different lengths or non-finite values.
    """
    a, b = _as_float64(x), _as_float64(y)
    if a.shape != b.shape:
        raise ValueError(f"spearman needs inputs of equal length, got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("spearman needs finite inputs")
    if len(a) < 2:
        return float("nan")
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float(np.dot(ra, ra)) * float(np.dot(rb, rb)))
    if denominator == 0.0:
        return float("nan")
    return float(np.clip(np.dot(ra, rb) / denominator, -1.0, 1.0))


def reward_quality_correlation(
    scorer: SequenceScorer, oracle: TokenLSTM, sequences: torch.Tensor, pad_id: int | None = None
) -> float:
    """Spearman correlation of D(y) with the oracle's log-likelihood (minus its mean per-token NLL)
    of the same generated `sequences` [B, T].

    On the synthetic benchmark the oracle is the ground truth of quality, so this says whether the
    reward points toward better sequences (near 1), is blind to quality (near 0) or points away from it
    (negative). NaN when the scorer (or the oracle) is constant over `sequences` (see `spearman`).
    """
    with torch.inference_mode():
        scores = scorer.score(sequences)
    log_likelihood = -sequence_nll(oracle, sequences, pad_id=pad_id)
    return spearman(scores, log_likelihood)


def dense_reward_correlation(
    scorer: IncrementalScorer, oracle: TokenLSTM, sequences: torch.Tensor, pad_id: int | None = None
) -> dict[str, Any]:
    """The dense reward r_t = 2 sigmoid(D_t) - 1 of each step of `sequences` [B, T] against the oracle's
    log-likelihood of that step's token, log O(y_t | y_<t).

    Returned: `rewards` [B, T] (0 after an end), `per_step` [T] (float64), the Spearman correlation at
    each step over the sequences alive there (NaN where either side is constant or fewer than 2 are
    alive), and `mean`, their mean over the defined steps (NaN if none). Near 1: each step's reward
    ranks that step's token like the ground truth of quality does; near 0: blind to it.
    """
    with torch.inference_mode():
        rewards = dense_rewards(scorer.prefix_logits(sequences))
        token_ll = oracle.log_probs(sequences.to(oracle.device), pad_id=pad_id)  # [B, T]
    live = torch.ones_like(sequences, dtype=torch.bool) if pad_id is None else sequences != pad_id
    rewards = rewards.masked_fill(~live, 0.0)
    per_step = np.full(sequences.shape[1], np.nan)
    for t in range(sequences.shape[1]):
        rows = live[:, t]
        if int(rows.sum()) >= 2:
            per_step[t] = spearman(rewards[rows, t], token_ll[rows.to(token_ll.device), t])
    defined = per_step[~np.isnan(per_step)]
    return {"rewards": rewards, "per_step": per_step,
            "mean": float(defined.mean()) if len(defined) else math.nan}  # fmt: skip


def q_signal_noise(
    rollout_policy: TokenLSTM,
    scorer: SequenceScorer,
    sequences: torch.Tensor,
    n_rollouts: int,
    rng: torch.Generator | None = None,
    repeats: int = 2,
    oracle: TokenLSTM | None = None,
    search: MonteCarloSearch | None = None,
) -> dict[str, Any]:
    """How much of the Monte Carlo reward Q_t's variance is signal between sequences, how much noise.

    Q [B, T] of the fixed-length `sequences` [B, T] (no EOS) is computed `repeats` (>= 2) times by
    `rewards.q_values`, each time with independent completions drawn from `rng`. Per step t (arrays of
    length T, float64):

    - `noise`: the Monte Carlo variance, the mean over sequences of the unbiased variance of Q_bt
      across repeats;
    - `total`: the variance across sequences (unbiased) of a single Q estimate, averaged over the
      repeats (each repeat is one single estimate; averaging only reduces the spread of the estimate);
    - `signal` = max(total - noise, 0): the variance of the true Q_t between sequences;
    - `signal_fraction` per step: signal / total (0 where total is 0).

    Overall: `signal_fraction` = sum_t signal / sum_t total, and `signal_fraction_mc` the same over the
    Monte Carlo steps t < T only (Q_T = D(y) has no Monte Carlo noise and would flatter the total);
    both 0 when there is no variance at all (a constant scorer carries no signal). With a learner that
    weights each token by Q_t, the noise part is what the Monte Carlo search adds to REINFORCE's own
    variance; a small signal fraction says N rollouts are too few for the spread D produces.

    With `oracle`, `oracle_correlation` [T] is the Spearman correlation, per step, of Q_t (mean over
    repeats) with the oracle's log-likelihood (minus mean per-token NLL) of the complete sequences:
    does the reward of a prefix already point toward the better finished sequence? (NaN at steps where
    Q_t is constant, see `spearman`.) `q` holds the stacked estimates [repeats, B, T]. `search`: the
    `MonteCarloSearch` that estimates them (`rewards.q_values`; its CUDA graphs kept across calls).
    """
    if repeats < 2:
        raise ValueError(f"q_signal_noise needs repeats >= 2 to measure the Monte Carlo noise, got {repeats}")
    if len(sequences) < 2:
        raise ValueError(f"q_signal_noise needs at least 2 sequences, got {len(sequences)}")
    q = torch.stack(
        [q_values(rollout_policy, scorer, sequences, n_rollouts, rng, search) for _ in range(repeats)]
    )  # [R, B, T]
    qd = q.detach().to("cpu", torch.float64).numpy()
    noise = qd.var(axis=0, ddof=1).mean(axis=0)  # [T]
    total = qd.var(axis=1, ddof=1).mean(axis=0)  # [T]
    signal = np.maximum(total - noise, 0.0)

    def fraction(s: np.ndarray, t: np.ndarray) -> float:
        return float(s.sum() / t.sum()) if t.sum() > 0 else 0.0

    step_fraction = np.divide(signal, total, out=np.zeros_like(signal), where=total > 0)
    result: dict[str, Any] = {
        "noise": noise,
        "total": total,
        "signal": signal,
        "step_signal_fraction": step_fraction,
        "signal_fraction": fraction(signal, total),
        "signal_fraction_mc": fraction(signal[:-1], total[:-1]),
        "q": q,
    }
    if oracle is not None:
        log_likelihood = -sequence_nll(oracle, sequences)
        q_mean = q.mean(dim=0)
        result["oracle_correlation"] = np.array(
            [spearman(q_mean[:, t], log_likelihood) for t in range(q.shape[2])]
        )
    return result


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """cos(a, b), NaN when either vector is zero."""
    na, nb = a.norm().item(), b.norm().item()
    if na == 0.0 or nb == 0.0:
        return float("nan")
    return float(torch.dot(a, b).item() / (na * nb))


def policy_gradient_split(
    generator: TokenLSTM, sequences: torch.Tensor, q: torch.Tensor, pad_id: int | None = None
) -> dict[str, Any]:
    """The policy gradient of the paper's loss, split into its constant-reward and its centred part.

    g = grad of -sum_{b,t} log G(y_bt | y_b<t) * Q_bt over the generator's trainable parameters
    (positions holding `pad_id` left out). With m = the mean of Q over the live positions:

    - `g_const`: the gradient with Q replaced by m, i.e. what a constant reward would give: it only
      raises the likelihood of whatever was sampled (sharpening, the constant-reward control);
    - `g_centred`: the gradient with Q replaced by Q - m: the part that comes from the reward telling
      tokens apart, the only part that can carry the discriminator's information.

    Returned: `g`, `g_const`, `g_centred` (flat float64 vectors, g = g_const + g_centred exactly, by
    construction), their norms (`norm`, `norm_const`, `norm_centred`), `cos_const` = cos(g, g_const),
    `cos_centred` = cos(g, g_centred) (NaN where a part is zero, e.g. `cos_centred` for a constant Q,
    whose `g_centred` is exactly 0), `q_mean` = m, and `split_error`: the norm of the difference between
    g and the gradient of the uncentred loss computed directly (float rounding only). The parameters'
    `.grad` are left untouched, and so is the generator's mode (the gradients are taken in train mode,
    which computes the same numbers: see `TokenLSTM.differentiable`). Gradients are unclipped (the
    training step clips the sum at 5).
    """
    if q.shape != sequences.shape:
        raise ValueError(f"q {tuple(q.shape)} must have the shape of sequences {tuple(sequences.shape)}")
    params = [p for p in generator.parameters() if p.requires_grad]
    device = generator.device
    sequences, q = sequences.to(device), q.detach().to(device, torch.float32)
    live = torch.ones_like(sequences, dtype=torch.bool) if pad_id is None else sequences != pad_id
    if not live.any():
        raise ValueError("no live (non-padding) positions")
    live_q = q[live]
    # min + mean(q - min) is the mean, and exactly the common value when all live Q are equal, so that
    # a constant reward gives a centred reward of exactly 0 (a plain mean may round away from it).
    low = live_q.min()
    q_mean = low + (live_q - low).mean()
    centred = torch.where(live, q - q_mean, torch.zeros_like(q))

    def gradient(weights: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad(), generator.differentiable():  # cuDNN: backward in train mode only
            log_probs = generator.log_probs(sequences, pad_id=pad_id)  # 0 at padding
            loss = -(log_probs * weights).sum()
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        flat = [
            (torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads, strict=True)
        ]
        return torch.cat(flat).to(torch.float64)

    g_const = gradient(torch.where(live, q_mean.expand_as(q), torch.zeros_like(q)))
    g_centred = gradient(centred)
    g = g_const + g_centred
    g_direct = gradient(torch.where(live, q, torch.zeros_like(q)))
    return {
        "g": g,
        "g_const": g_const,
        "g_centred": g_centred,
        "norm": g.norm().item(),
        "norm_const": g_const.norm().item(),
        "norm_centred": g_centred.norm().item(),
        "cos_const": _cosine(g, g_const),
        "cos_centred": _cosine(g, g_centred),
        "q_mean": q_mean.item(),
        "split_error": (g - g_direct).norm().item(),
    }
