"""SeqGAN's adversarial rounds under Stable-Baselines3 (PPO, A2C, MaskablePPO, RecurrentPPO).

The pieces: `SB3VecEnv` (agents/sb3_vec_env.py) puts the vector env, wrapped by the same
`DiscriminatorTrainingVectorWrapper` as the REINFORCE agent's, behind SB3's `VecEnv`; the policy is
the generator itself (agents/sb3_policy.py: `make_model` warm-starts it from the MLE generator,
`generator_from_policy` reads it back). `SB3Learner` makes an SB3 on-policy algorithm a `Learner`
(agents/learner.py): each round it collects one rollout of `n_steps` per env and takes the
algorithm's gradient steps on it (SB3's own `learn` loop, one iteration at a time), then brings the
env's rollout policy in step: `"copy"` (beta = theta, the paper's setting, through the reverse
warm-start mapping), `"ema"` (a moving average) or `"fixed"` (it stays the MLE generator). The
discriminator's negatives are the finished episodes topped up with fresh samples of the current policy
(`PolicySampler`).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import MaybeCallback

from agents.learner import sync_rollout_policy
from agents.sb3_files import check_saved_model, load_model
from agents.sb3_policy import (
    ALGORITHMS,
    LastTokenExtractor,
    TokenPrefixExtractor,
    algorithm_class,
    generator_from_policy,
    make_model,
    policy_kwargs,
    warm_start,
)
from agents.sb3_vec_env import SB3VecEnv
from seqgan_env.token_lstm import TokenLSTM

__all__ = [
    "ALGORITHMS",
    "LastTokenExtractor",
    "PolicySampler",
    "SB3Learner",
    "SB3VecEnv",
    "TokenPrefixExtractor",
    "algorithm_class",
    "check_saved_model",
    "generator_from_policy",
    "load_model",
    "make_model",
    "policy_kwargs",
    "warm_start",
]

ROLLOUT_UPDATES = ("copy", "ema", "fixed")
# SB3's name of the policy loss (PPO and its variants; A2C).
PG_LOSS_KEYS = ("train/policy_gradient_loss", "train/policy_loss")


class PolicySampler:
    """n -> [n, T] sequences sampled from an SB3 model's current policy: the discriminator's fresh
    negatives. Made before the model (the env needs the sampler, the model the env); `bind` it."""

    def __init__(self, rng: torch.Generator | None = None) -> None:
        self.rng = rng
        self.model: BaseAlgorithm | None = None

    def bind(self, model: BaseAlgorithm) -> None:
        self.model = model

    def __call__(self, n: int) -> torch.Tensor:
        if self.model is None:
            raise RuntimeError("PolicySampler used before bind(model)")
        return generator_from_policy(self.model.policy).sample(n, self.rng)


class SB3Learner:
    """An SB3 on-policy model as a `Learner`, for `rounds` rounds (see the module docstring).

    It runs what `OnPolicyAlgorithm.learn` runs, split at the round boundary: `_setup_learn` once,
    then per round `collect_rollouts` (`collect`) and the progress update, log dump and `train()`
    (`update`); `close()` ends SB3's training. `callback`: SB3 callbacks, called as `learn` calls them.
    """

    def __init__(
        self,
        model: OnPolicyAlgorithm,
        rounds: int,
        rollout_policy: TokenLSTM | None = None,
        rollout_update: str = "copy",
        rollout_rate: float = 0.8,
        tb_log_name: str = "run",
        reset_num_timesteps: bool = True,
        callback: MaybeCallback = None,
    ) -> None:
        if rollout_update not in ROLLOUT_UPDATES:
            raise ValueError(f"rollout_update must be one of {ROLLOUT_UPDATES}, got {rollout_update!r}")
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        self.model, self.rollout_policy = model, rollout_policy
        self.rollout_update, self.rollout_rate = rollout_update, rollout_rate
        if not model._custom_logger and model.tensorboard_log is None and model.verbose == 0:
            # What SB3 would configure here (no output), without the empty folder it makes in the temp dir.
            model.set_logger(Logger(folder=None, output_formats=[]))
        total = rounds * model.n_steps * model.n_envs
        self._total, self._callback = model._setup_learn(
            total, callback, reset_num_timesteps, tb_log_name, False
        )
        self._callback.on_training_start(locals(), globals())
        self.iterations = 0

    @property
    def generator(self) -> TokenLSTM:
        return generator_from_policy(self.model.policy)

    @property
    def weights(self) -> BasePolicy:
        """The SB3 policy (its value network included)."""
        return self.model.policy

    @property
    def n_updates(self) -> int:
        """The algorithm's gradient steps so far."""
        return int(self.model._n_updates)

    def start_rollout_policy(self) -> None:
        """beta = theta, unless the rollout policy stays fixed."""
        if self.rollout_policy is not None and self.rollout_update != "fixed":
            sync_rollout_policy(self.rollout_policy, self.generator)

    def collect(self, envs: Any = None) -> None:
        """One rollout of `n_steps` in each of the model's envs, into its rollout buffer."""
        # MaskablePPO's collect_rollouts takes the masks' switch; the others have no such parameter.
        masking = "use_masking" in inspect.signature(self.model.collect_rollouts).parameters
        kwargs = {"use_masking": True} if masking else {}
        model, env = self.model, self.model.env
        if env is None:  # a model loaded without env=; SB3's own learn() asserts the same
            raise RuntimeError("the SB3 model has no env to collect rollouts from")
        if not model.collect_rollouts(env, self._callback, model.rollout_buffer, model.n_steps, **kwargs):
            raise RuntimeError("SB3 stopped collecting (a callback returned False)")

    def update(self, batch: Any = None) -> float:
        """The algorithm's gradient steps on the collected rollout, then `sync()`; the policy loss."""
        model = self.model
        self.iterations += 1
        model._update_current_progress_remaining(model.num_timesteps, self._total)
        model.dump_logs(self.iterations)
        model.train()
        values = model.logger.name_to_value
        loss = next((values[k] for k in PG_LOSS_KEYS if k in values), float("nan"))
        self.sync()
        return float(loss)

    def sync(self) -> None:
        """Bring the env's rollout policy in step with the SB3 policy (per `rollout_update`)."""
        if self.rollout_policy is None or self.rollout_update == "fixed":
            return
        rate = self.rollout_rate if self.rollout_update == "ema" else None
        sync_rollout_policy(self.rollout_policy, self.generator, rate)

    def close(self) -> None:
        """End SB3's training (its callbacks' training end, the last log dump)."""
        self._callback.on_training_end()
        self.model.logger.dump(self.model.num_timesteps)
