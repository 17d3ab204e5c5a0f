"""SeqGAN's REINFORCE agent: the generator as a policy on SeqGAN-v0 (SPEC 2.2).

Each adversarial round samples a batch of sequences (one vector-env episode per sequence), takes
the environment's per-step rewards Q_t, and makes one policy-gradient step on
`-sum_{b,t} log G(y_bt | y_b<t) * Q_bt` (a sum, each token weighted by its own Q_t: no return, no
baseline, no discount), clipped to norm 5, with an Adam of its own. The environment's rollout policy
is then brought in step with the generator: a copy (the reference code in effect) or an
exponential moving average.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from agents.learner import sync_rollout_policy
from seqgan_env.sampling import sample_categorical
from seqgan_env.token_lstm import TokenLSTM
from seqgan_env.vector_env import SeqGANVectorEnv

ROLLOUT_UPDATES = ("copy", "ema")


@dataclass(frozen=True)
class ReinforceConfig:
    """Policy-gradient settings; the defaults are the reference code's."""

    lr: float = 0.01
    grad_clip: float = 5.0
    rollout_update: str = "copy"
    rollout_rate: float = 0.8  # "ema": beta <- rate * beta + (1 - rate) * theta
    constant_reward: float | None = None  # the control: every token weighted by this, not Q_t

    def __post_init__(self) -> None:
        if self.rollout_update not in ROLLOUT_UPDATES:
            raise ValueError(f"rollout_update must be one of {ROLLOUT_UPDATES}, got {self.rollout_update!r}")
        if not 0.0 <= self.rollout_rate < 1.0:
            raise ValueError(f"rollout_rate must be in [0, 1), got {self.rollout_rate}")
        if self.lr <= 0 or self.grad_clip <= 0:
            raise ValueError(f"lr and grad_clip must be > 0, got {self.lr}, {self.grad_clip}")


@dataclass
class Episodes:
    """A batch of finished episodes: the sequences [B, T] (padded with `pad_id` after an
    end-of-sequence; None where episodes have fixed length) and the reward of every step [B, T] (0
    after the end)."""

    sequences: torch.Tensor
    rewards: torch.Tensor
    pad_id: int | None = None


def policy_gradient_loss(log_probs: torch.Tensor, q_values: torch.Tensor) -> torch.Tensor:
    """-sum_{b,t} log G(y_bt | y_b<t) * Q_bt: a sum over the batch, as the reference code."""
    return -(log_probs * q_values).sum()


class ReinforceAgent:
    """The generator policy, its policy-gradient step, and the rollout-policy sync."""

    def __init__(
        self,
        generator: TokenLSTM,
        rollout_policy: TokenLSTM | None = None,
        config: ReinforceConfig = ReinforceConfig(),
        rng: torch.Generator | None = None,
    ) -> None:
        if rng is not None and rng.device.type != generator.device.type:
            raise ValueError(f"the agent's random generator is on {rng.device}, the generator on "
                             f"{generator.device}: make it with torch.Generator(device=...)")  # fmt: skip
        self.generator = generator
        self.rollout_policy = rollout_policy
        self.config = config
        self.rng = rng
        # A fresh Adam, separate from the MLE optimiser, as in the reference code.
        self.optimizer = torch.optim.Adam(generator.parameters(), lr=config.lr, fused=True)
        self.start_rollout_policy()

    @torch.no_grad()  # not inference_mode: the sequences feed the policy-gradient step
    def collect(self, envs: gym.vector.VectorEnv) -> Episodes:
        """Run exactly one episode in each of the vector env's B envs (a `SeqGANVectorEnv`, or a vector
        wrapper of one), the generator choosing the tokens.

        Autoreset is paused meanwhile (`SeqGANVectorEnv.autoreset_paused`): an env whose episode
        ended early (end-of-sequence) ignores the generator's further tokens, so no episode starts
        that is not a sample of the generator, nothing searches its prefixes, and a wrapper below
        sees exactly B finished episodes."""
        base = envs.unwrapped
        if not isinstance(base, SeqGANVectorEnv):
            what = type(base).__name__
            raise TypeError(f"collect runs a SeqGANVectorEnv (or a vector wrapper of one), got {what}")
        B, T, pad_id = envs.num_envs, base.seq_len, base.pad_id
        self.generator.eval()
        sequences = torch.full((B, T), pad_id, dtype=torch.long)
        rewards = torch.zeros(B, T)
        done = np.zeros(B, dtype=bool)
        with base.autoreset_paused():
            envs.reset()
            logits, state = self.generator.start(B)
            for t in range(T):
                actions = sample_categorical(logits, self.rng)
                _, reward, terminated, _, infos = envs.step(actions.cpu().numpy())
                live = torch.as_tensor(~done)
                rewards[live, t] = torch.as_tensor(reward, dtype=torch.float32)[live]
                ended = terminated & ~done
                if ended.any():
                    sequences[torch.as_tensor(ended)] = torch.as_tensor(infos["sequence"][ended])
                done |= terminated
                if done.all():
                    break
                logits, state = self.generator.step(actions, state)
        return Episodes(sequences, rewards, pad_id if base.eos_id is not None else None)

    def update(self, episodes: Episodes, pad_id: int | None = None) -> float:
        """One policy-gradient step on `episodes` (positions holding `pad_id`, by default the episodes'
        own, are left out), then the rollout-policy sync; returns the loss."""
        pad_id = episodes.pad_id if pad_id is None else pad_id
        q = episodes.rewards
        if self.config.constant_reward is not None:
            q = torch.full_like(q, self.config.constant_reward)
        self.generator.train()
        self.optimizer.zero_grad(set_to_none=True)
        device = self.generator.device
        log_probs = self.generator.log_probs(episodes.sequences.to(device), pad_id=pad_id)
        loss = policy_gradient_loss(log_probs, q.to(device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.generator.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.sync()
        return loss.item()

    def start_rollout_policy(self) -> None:
        """Set the rollout policy equal to the generator (beta = theta), whatever the update rule: where
        the adversarial phase starts, and what every checkpoint before it records."""
        if self.rollout_policy is not None:
            sync_rollout_policy(self.rollout_policy, self.generator)

    def sync(self) -> None:
        """Bring the environment's rollout policy in step with the generator."""
        if self.rollout_policy is not None:
            rate = self.config.rollout_rate if self.config.rollout_update == "ema" else None
            sync_rollout_policy(self.rollout_policy, self.generator, rate)
