"""SeqGAN's adversarial rounds under Stable-Baselines3 (PPO, A2C, MaskablePPO, RecurrentPPO).

The pieces: `SB3VecEnv` (agents/sb3_vec_env.py) puts the vector env, wrapped by the same
`DiscriminatorTrainingVectorWrapper` as the REINFORCE agent's, behind SB3's `VecEnv`; the policy is
the generator itself (agents/sb3_policy.py: `make_model` warm-starts it from the MLE generator,
`generator_from_policy` reads it back). One SB3 update (a rollout of `n_steps` per env, then the
algorithm's gradient steps) plays the part of the paper's policy-gradient step, and
`AdversarialRoundCallback` does what follows it in each round of the paper:
- the rollout policy: `"copy"` sets the env's rollout policy to the SB3 policy (beta = theta, the
  paper's setting, through the reverse warm-start mapping), `"ema"` moves it towards it, `"fixed"`
  keeps the MLE generator;
- the discriminator: `train_discriminator()` of the wrapper (negatives: the finished episodes, topped
  up with fresh samples of the current policy, `PolicySampler`);
- every `eval_every` rounds, a hook that evaluates the policy's generator (the script uses
  `agents.experiment.evaluate`, the REINFORCE path's NLL-oracle/NLL-test code).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

from agents.reinforce import sync_rollout_policy
from agents.sb3_policy import (
    ALGORITHMS,
    LastTokenExtractor,
    TokenPrefixExtractor,
    algorithm_class,
    check_saved_model,
    generator_from_policy,
    load_model,
    make_model,
    policy_kwargs,
    warm_start,
)
from agents.sb3_vec_env import SB3VecEnv
from seqgan_env.token_lstm import TokenLSTM
from seqgan_env.wrappers import DiscriminatorTrainingVectorWrapper

__all__ = [
    "ALGORITHMS",
    "AdversarialRoundCallback",
    "LastTokenExtractor",
    "PolicySampler",
    "ProgressCallback",
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

# (round, the policy as a TokenLSTM, losses of the round) -> scalars to log under "eval/".
EvaluateHook = Callable[[int, TokenLSTM, dict[str, float]], dict[str, float]]


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


class AdversarialRoundCallback(BaseCallback):
    """After every SB3 update: rollout-policy update, discriminator training, evaluation (see the
    module docstring). Also once at the start: the rollout sync and the round-0 evaluation."""

    def __init__(
        self,
        rollout_policy: TokenLSTM | None = None,
        envs: DiscriminatorTrainingVectorWrapper | None = None,
        rollout_update: str = "copy",
        rollout_rate: float = 0.8,
        evaluate: EvaluateHook | None = None,
        eval_every: int = 10,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if rollout_update not in ROLLOUT_UPDATES:
            raise ValueError(f"rollout_update must be one of {ROLLOUT_UPDATES}, got {rollout_update!r}")
        if eval_every < 1:
            raise ValueError(f"eval_every must be >= 1, got {eval_every}")
        self.rollout_policy = rollout_policy
        self.envs = envs
        self.rollout_update = rollout_update
        self.rollout_rate = rollout_rate
        self.evaluate_hook = evaluate
        self.eval_every = eval_every
        self.rounds = 0  # SB3 updates completed
        self.last_eval_round = -1
        self.last_eval: dict[str, float] = {}
        self.d_loss = float("nan")
        self._updated = False  # a rollout ended, so an update followed it

    def _on_training_start(self) -> None:
        if self.rollout_update == "copy":
            self.sync()
        if self.rounds == 0:
            self._evaluate()

    def _on_rollout_start(self) -> None:
        if self._updated:
            self._end_round()

    def _on_rollout_end(self) -> None:
        self._updated = True

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if self._updated:
            self._end_round()
        if self.last_eval_round != self.rounds:
            self._evaluate()
        self.logger.dump(self.num_timesteps)

    def sync(self) -> None:
        """Bring the env's rollout policy in step with the SB3 policy (per `rollout_update`)."""
        if self.rollout_policy is None or self.rollout_update == "fixed":
            return
        rate = self.rollout_rate if self.rollout_update == "ema" else None
        sync_rollout_policy(self.rollout_policy, generator_from_policy(self.model.policy), rate)

    def _end_round(self) -> None:
        self._updated = False
        self.rounds += 1
        self.sync()
        if self.envs is not None:
            self.d_loss = self.envs.train_discriminator()
            self.logger.record("seqgan/discriminator_loss", self.d_loss)
        self.logger.record("seqgan/rounds", self.rounds)
        if self.rounds % self.eval_every == 0:
            self._evaluate()

    def _evaluate(self) -> None:
        self.last_eval_round = self.rounds
        if self.evaluate_hook is None:
            return
        values = self.logger.name_to_value
        pg_loss = next((values[k] for k in PG_LOSS_KEYS if k in values), float("nan"))
        losses = {"d_loss": self.d_loss, "pg_loss": float(pg_loss)}
        self.last_eval = self.evaluate_hook(self.rounds, generator_from_policy(self.model.policy), losses)
        for key, value in self.last_eval.items():
            self.logger.record(f"eval/{key}", value)
        self.logger.dump(self.num_timesteps)  # at the timestep evaluated, not at the next rollout's end


class ProgressCallback(BaseCallback):
    """A tqdm progress bar over environment steps (SB3's own `progress_bar=True` needs `rich`), with
    the latest evaluation of an `AdversarialRoundCallback` as its postfix."""

    def __init__(self, rounds: AdversarialRoundCallback | None = None, desc: str = "SB3 training") -> None:
        super().__init__()
        self.rounds = rounds
        self.desc = desc
        self.bar: tqdm | None = None
        self._shown: dict[str, float] | None = None

    def _on_training_start(self) -> None:
        total = self.locals["total_timesteps"] - self.model.num_timesteps
        self.bar = tqdm(total=total, desc=self.desc, unit="step", unit_scale=True)

    def _on_step(self) -> bool:
        assert self.bar is not None
        self.bar.update(self.training_env.num_envs)
        if self.rounds is not None and self.rounds.last_eval and self.rounds.last_eval is not self._shown:
            self._shown = self.rounds.last_eval
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in self._shown.items()}, refresh=False)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()
