"""The adversarial signal at each evaluation: `seqgan_env.diagnostics` applied to the reward a
run's environment really hands out, as metrics.csv columns, TensorBoard scalars (`signal/...`) and
signal.png. One implementation for train/adversarial.py and train/sb3.py.

The diagnostics draw from a generator of their own (`derive_seed(seed, "diagnostics", round)`, on the
run's device) and only read the models, so a run trains bit for bit the same with or without them.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch

from seqgan_env.diagnostics import (
    dense_reward_correlation,
    discriminator_accuracy_auc,
    policy_gradient_split,
    q_signal_noise,
    reward_quality_correlation,
)
from seqgan_env.discriminator import SequenceScorer
from seqgan_env.modes import module_mode
from seqgan_env.prefix_discriminator import IncrementalScorer, dense_rewards
from seqgan_env.rewards import MonteCarloSearch
from seqgan_env.token_lstm import TokenLSTM
from train.rng import derive_seed, seeded_rng

# The columns, in metrics.csv's order (README section 4 describes each).
SIGNAL_FIELDS = (
    "d_accuracy", "d_auc", "reward_oracle_spearman", "q_oracle_spearman", "q_signal_share",
    "pg_constant_norm", "pg_centred_norm", "pg_centred_cos",
)  # fmt: skip
# The dense reward mode's own column, after those (docs/dense.md): metrics.csv of a dense run only.
DENSE_SIGNAL_FIELDS = ("dense_oracle_spearman",)

# The options' help, shared by both scripts' configs.
DIAGNOSTICS_HELP = ("measure the reward's signal at each adversarial evaluation (metrics.csv's d_*, "
                    "*_spearman, q_* and pg_* columns, signal/* in TensorBoard, signal.png)")
DIAG_SAMPLES_HELP = "diagnostics: generated (and at most as many held-out) sequences for d_* and *_spearman"
DIAG_Q_SAMPLES_HELP = "diagnostics: generated sequences whose Q_t is estimated for q_* and pg_*"
DIAG_REPEATS_HELP = "diagnostics: independent Monte Carlo estimates of each Q_t (their spread is the noise)"


class SignalSettings(Protocol):
    """What the diagnostics read from a script's config (train.config.Config, train.sb3_config.SB3Config)."""

    seed: int
    diagnostics: bool
    diag_samples: int
    diag_q_samples: int
    diag_repeats: int
    n_rollouts: int


def measure_signal(
    cfg: SignalSettings,
    round_: int,
    generator: TokenLSTM,
    rollout_policy: TokenLSTM,
    scorer: SequenceScorer | None,
    real: torch.Tensor,
    oracle: TokenLSTM | None,
    eos_id: int | None = None,
    pad_id: int | None = None,
    monte_carlo: bool = True,
    dense: bool = False,
    search: MonteCarloSearch | None = None,
) -> dict[str, float]:
    """The diagnostics of `scorer` (the env's reward; None: a control without one) at adversarial round
    `round_`, by column name; {} (empty cells) with --no-diagnostics or no scorer.

    - `d_accuracy`, `d_auc`: the scorer on the first --diag-samples held-out `real` sequences against
      as many fresh samples of `generator` (temperature 1, as in training);
    - `reward_oracle_spearman`: rank correlation of the scorer's value with the `oracle`'s
      log-likelihood over --diag-samples fresh samples (oracle runs only);
    - on the first --diag-q-samples of them, Q [B, T] estimated --diag-repeats times by the env's Monte
      Carlo search (`rollout_policy`, --n-rollouts): `q_signal_share`, the share of Q_t's variance
      between sequences that is signal, not Monte Carlo noise (steps t < T); `q_oracle_spearman`, Q_t's
      rank correlation with the oracle's log-likelihood of the finished sequences, averaged over
      t < T (oracle runs); and the paper's policy gradient for one Q estimate split into the part a
      constant reward (Q's mean) gives, `pg_constant_norm`, and the centred part, `pg_centred_norm`,
      with `pg_centred_cos` = cos(whole gradient, centred part). Only where the env's reward is this
      Monte Carlo Q_t of fixed-length sequences: text runs (`eos_id`) and terminal rewards
      (`monte_carlo` False) leave these empty.
    - `dense` (the env's dense rewards from a prefix discriminator `scorer`): instead of the Monte
      Carlo columns, `dense_oracle_spearman`, the rank correlation of each step's reward with the
      oracle's log-likelihood of that step's token, averaged over steps, over --diag-q-samples fresh
      samples (oracle runs); and the policy-gradient split with those per-step rewards as Q.
    """
    if not cfg.diagnostics or scorer is None:
        return {}
    rng = seeded_rng(derive_seed(cfg.seed, "diagnostics", round_), generator.device)
    with module_mode(generator, False):
        n = max(cfg.diag_samples, cfg.diag_q_samples)
        fake = generator.sample(n, rng, eos_id=eos_id, pad_id=pad_id)
        held_out = real[: cfg.diag_samples].to(generator.device)  # balanced classes: as many fakes
        accuracy, auc = discriminator_accuracy_auc(scorer, held_out, fake[: len(held_out)])
        row = {"d_accuracy": accuracy, "d_auc": auc}
        if oracle is not None:
            row["reward_oracle_spearman"] = reward_quality_correlation(
                scorer, oracle, fake[: cfg.diag_samples], pad_id=pad_id
            )
        if dense:
            assert isinstance(scorer, IncrementalScorer), "dense diagnostics need a prefix discriminator"
            row.update(_dense(scorer, generator, fake[: cfg.diag_q_samples], oracle, pad_id))
        elif eos_id is None and monte_carlo:
            row.update(_q_and_gradient(cfg, generator, rollout_policy, scorer, fake[: cfg.diag_q_samples],
                                       rng, oracle, search))  # fmt: skip
    return row


def _q_and_gradient(
    cfg: SignalSettings,
    generator: TokenLSTM,
    rollout_policy: TokenLSTM,
    scorer: SequenceScorer,
    sequences: torch.Tensor,
    rng: torch.Generator,
    oracle: TokenLSTM | None,
    search: MonteCarloSearch | None,
) -> dict[str, float]:
    """Q_t's signal share (and rank correlation with the oracle), and the policy-gradient split."""
    noise = q_signal_noise(rollout_policy, scorer, sequences, cfg.n_rollouts, rng, cfg.diag_repeats, oracle,
                           search)  # fmt: skip
    row = {"q_signal_share": noise["signal_fraction_mc"]}
    if oracle is not None:
        steps = noise["oracle_correlation"][:-1]  # t < T: Q_T = D(y) is reward_oracle_spearman's
        defined = steps[~np.isnan(steps)]
        row["q_oracle_spearman"] = float(defined.mean()) if len(defined) else math.nan
    split = policy_gradient_split(generator, sequences, noise["q"][0])  # one estimate, as a training step
    row.update(pg_constant_norm=split["norm_const"], pg_centred_norm=split["norm_centred"],
               pg_centred_cos=split["cos_centred"])  # fmt: skip
    return row


def _dense(
    scorer: IncrementalScorer, generator: TokenLSTM, sequences: torch.Tensor, oracle: TokenLSTM | None,
    pad_id: int | None,
) -> dict[str, float]:
    """The dense reward's rank correlation with the oracle's per-token likelihood (oracle runs), and the
    policy-gradient split with the per-step rewards as Q."""
    rewards = dense_rewards(scorer.prefix_logits(sequences))
    row: dict[str, float] = {}
    if oracle is not None:
        row["dense_oracle_spearman"] = dense_reward_correlation(scorer, oracle, sequences, pad_id)["mean"]
    split = policy_gradient_split(generator, sequences, rewards, pad_id=pad_id)
    row.update(pg_constant_norm=split["norm_const"], pg_centred_norm=split["norm_centred"],
               pg_centred_cos=split["cos_centred"])  # fmt: skip
    return row


def signal_scalars(row: dict[str, float]) -> dict[str, float]:
    """The diagnostics of a metrics row as TensorBoard scalars, `signal/NAME` (none where absent)."""
    return {f"signal/{k}": row[k] for k in (*SIGNAL_FIELDS, *DENSE_SIGNAL_FIELDS) if k in row}


def has_signal(rows: list[dict[str, float | str | int]]) -> bool:
    """Whether any row holds a diagnostic (signal.png is drawn only then)."""
    return any(k in r for r in rows for k in SIGNAL_FIELDS)
