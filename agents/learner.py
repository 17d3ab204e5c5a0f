"""The learner protocol: what the adversarial rounds ask of an algorithm.

One adversarial round is: the learner collects what it learns from (episodes of SeqGAN-v0, or data),
takes its gradient step(s) on it, and brings the environment's rollout policy in step with its new
policy (beta = theta, or a moving average); then the discriminator retrains. `train/stages.py` runs
the rounds for any learner: SeqGAN's REINFORCE agent (`agents.reinforce.ReinforceAgent`, also the
constant-reward control), continued MLE (`agents.mle.ContinuedMLE`, the other control) and a
Stable-Baselines3 algorithm (`agents.sb3.SB3Learner`). A new algorithm is one class that has these
methods.
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import torch

from seqgan_env.token_lstm import TokenLSTM


class Learner(Protocol):
    """An algorithm that trains the generator in SeqGAN's adversarial rounds."""

    @property
    def generator(self) -> TokenLSTM:
        """The current policy as a token LSTM: what is evaluated and what samples negatives."""
        ...

    @property
    def weights(self) -> Any:
        """What the learner trains (modules, state dicts or arrays), read without side effects: what
        the rounds check for NaN and infinity after each update."""
        ...

    def start_rollout_policy(self) -> None:
        """The adversarial phase begins: the env's rollout policy becomes the policy (beta = theta)."""
        ...

    def collect(self, envs: gym.vector.VectorEnv) -> Any:
        """One round's experience (e.g. a batch of episodes, one per env)."""
        ...

    def update(self, batch: Any) -> float:
        """The round's gradient step(s) on `batch`, then `sync()`; returns the policy loss."""
        ...

    def sync(self) -> None:
        """Bring the env's rollout policy in step with the policy (copy or moving average)."""
        ...


@torch.no_grad()
def sync_rollout_policy(rollout_policy: TokenLSTM, generator: TokenLSTM, rate: float | None = None) -> None:
    """Set the rollout policy to the generator (`rate` None) or move it towards it:
    beta <- rate * beta + (1 - rate) * theta."""
    for beta, theta in zip(rollout_policy.parameters(), generator.parameters(), strict=True):
        if rate is None:
            beta.copy_(theta)
        else:
            beta.mul_(rate).add_(theta, alpha=1.0 - rate)
