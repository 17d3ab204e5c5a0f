"""SeqGAN's REINFORCE agent: the generator as a policy on SeqGAN-v0, as the reference code trains it.

Each adversarial round samples a batch of sequences (one vector-env episode per sequence), takes
the environment's per-step rewards Q_t, and makes one policy-gradient step on
`-sum_{b,t} log G(y_bt | y_b<t) * Q_bt` (a sum, each token weighted by its own Q_t: no return, no
baseline, no discount), clipped to norm 5, with an Adam of its own. The environment's rollout policy
is then brought in step with the generator: a copy (the reference code in effect) or an
exponential moving average.

Options beyond the paper (`ReinforceConfig.baseline`, `ReinforceConfig.normalize`; off by default):
a baseline b subtracted from Q at each step, so each token is weighted by the advantage Q_bt - b_bt
(the batch mean at step t, the leave-one-out mean, a learned value of the prefix, or ScratchGAN's
moving average of the batch-mean return), and a division of the advantages by their standard
deviation. Both only reduce the variance of the gradient estimate; positions after an episode's end
stay out of the baselines, the statistics and the loss.

ScratchGAN's recipe (the env's dense rewards, r_t = 2 sigmoid(D_t) - 1) weights each token by a
discounted return instead of its own reward: `ReinforceConfig.gamma` > 0 replaces Q_t by
R_t = sum_{k >= t} gamma^(k-t) r_k before any baseline (gamma 0, the default, is the paper's own
weighting: R_t = r_t). Adam's betas are an option too (ScratchGAN: beta1 0.5).
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
BASELINES = ("none", "mean", "loo", "value", "ema")
NORMALIZE_EPS = 1e-8


@dataclass(frozen=True)
class ReinforceConfig:
    """Policy-gradient settings; the defaults are the reference code's."""

    lr: float = 0.01
    grad_clip: float = 5.0
    rollout_update: str = "copy"
    rollout_rate: float = 0.8  # "ema": beta <- rate * beta + (1 - rate) * theta
    constant_reward: float | None = None  # the control: every token weighted by this, not Q_t
    baseline: str = "none"  # "none" (the paper), "mean", "loo" (leave-one-out), "value" (learned), "ema"
    normalize: bool = False  # divide the advantages by their std over live positions (+1e-8)
    value_lr: float = 0.01  # the value baseline's own Adam
    gamma: float = 0.0  # weight token t by R_t = sum_{k>=t} gamma^(k-t) r_k; 0: by r_t (the paper)
    baseline_decay: float = 0.08  # "ema": b <- decay * b + (1 - decay) * mean(R) (ScratchGAN's 0.08)
    betas: tuple[float, float] = (0.9, 0.999)  # the policy-gradient Adam's (ScratchGAN: beta1 0.5)

    def __post_init__(self) -> None:
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, got {self.baseline!r}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {self.gamma}")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must lie in [0, 1), got {self.baseline_decay}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if not isinstance(self.normalize, bool):
            raise ValueError(f"normalize must be a bool, got {self.normalize!r}")
        if not self.value_lr > 0:
            raise ValueError(f"value_lr must be > 0, got {self.value_lr}")
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


def live_positions(sequences: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """True [B, T] where a step of an episode was taken (not padding after its end)."""
    if pad_id is None:
        return torch.ones_like(sequences, dtype=torch.bool)
    return sequences != pad_id


def discounted_returns(rewards: torch.Tensor, live: torch.Tensor, gamma: float) -> torch.Tensor:
    """R_bt = sum_{k >= t} gamma^(k-t) r_bk over the live positions of each episode (0 elsewhere): [B, T].
    gamma 0 gives the rewards themselves, gamma 1 the undiscounted reward-to-go."""
    rewards = rewards.masked_fill(~live, 0.0)
    returns = torch.zeros_like(rewards)
    following = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        following = rewards[:, t] + gamma * following
        returns[:, t] = following
    return returns.masked_fill(~live, 0.0)


def moving_average_baseline(
    returns: torch.Tensor, live: torch.Tensor, previous: float, decay: float
) -> float:
    """ScratchGAN's baseline after this batch: decay * previous + (1 - decay) * the mean return over the
    live positions (`previous` where none is live). The advantage is R - (the new value)."""
    values = returns[live]
    if values.numel() == 0:
        return previous
    return decay * previous + (1.0 - decay) * values.double().mean().item()


def batch_baseline(q_values: torch.Tensor, live: torch.Tensor, leave_one_out: bool = False) -> torch.Tensor:
    """b_bt from the other episodes' Q at the same step t, over the episodes alive at t: [B, T].

    The batch mean: b_t = mean_{b' alive at t} Q_b't (it includes b's own Q, so the advantage is
    (n_t - 1) / n_t times leave-one-out's). Leave-one-out: b_bt = mean_{b' != b alive at t} Q_b't, which
    does not depend on episode b's own action, so the gradient stays unbiased; where b is the only
    episode alive at t there are no others and b_bt = 0 (no baseline). 0 at dead positions.
    """
    # Shifted by a live Q of each step (its max), so that a constant Q gives b == Q exactly.
    ref = q_values.masked_fill(~live, float("-inf")).amax(0, keepdim=True)  # [1, T]
    count = live.sum(0, keepdim=True).to(q_values.dtype)
    ref = torch.where(count > 0, ref, torch.zeros_like(ref))
    shifted = (q_values - ref).masked_fill(~live, 0.0)
    total = shifted.sum(0, keepdim=True)
    if leave_one_out:
        others = count - 1
        b = torch.where(others > 0, ref + (total - shifted) / others.clamp(min=1), torch.zeros_like(shifted))
    else:
        b = (ref + total / count.clamp(min=1)).expand_as(shifted)
    return b.masked_fill(~live, 0.0)


def advantage_weights(
    q_values: torch.Tensor, live: torch.Tensor, baseline: torch.Tensor | None, normalize: bool
) -> torch.Tensor:
    """(Q - b) at live positions (0 elsewhere), divided by its std over the live positions (+1e-8,
    the population std) when `normalize`."""
    adv = q_values if baseline is None else q_values - baseline
    adv = adv.masked_fill(~live, 0.0)
    if normalize:
        values = adv[live]
        std = values.std(correction=0) if values.numel() > 0 else adv.new_zeros(())
        adv = adv / (std + NORMALIZE_EPS)
    return adv


class ValueBaseline(torch.nn.Module):
    """V(prefix): a linear layer on the generator's LSTM hidden state after reading [start, y_<t]
    (detached: the value never moves the policy), fitted by MSE to Q with its own Adam. Starts at
    zero, so its first baseline is "none"'s."""

    def __init__(self, hidden_dim: int, lr: float) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(hidden_dim, 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """V for each prefix state [B, T, H]: [B, T]."""
        return self.linear(hidden).squeeze(-1)

    def fit(self, hidden: torch.Tensor, q_values: torch.Tensor, live: torch.Tensor) -> float:
        """One Adam step on the mean squared error to Q over the live positions; returns the loss."""
        self.optimizer.zero_grad(set_to_none=True)
        error = (self(hidden) - q_values)[live]
        loss = (error**2).mean() if error.numel() > 0 else error.sum()
        loss.backward()
        self.optimizer.step()
        return loss.item()


@torch.no_grad()
def prefix_hidden(generator: TokenLSTM, sequences: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """The generator's LSTM hidden state after reading [start, y_1..y_{t-1}] at each position t: the
    state that chooses y_t. [B, T, H], detached."""
    tokens = sequences.masked_fill(~live, 0)
    start = torch.full_like(tokens[:, :1], generator.config.start_token)
    hidden, _ = generator.lstm(generator.embedding(torch.cat([start, tokens[:, :-1]], dim=1)))
    return hidden


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
        self.optimizer = torch.optim.Adam(
            generator.parameters(), lr=config.lr, betas=config.betas, fused=True
        )
        self.value: ValueBaseline | None = None
        if config.baseline == "value":
            self.value = ValueBaseline(generator.config.hidden_dim, config.value_lr).to(generator.device)
        self.value_loss: float | None = None  # the value baseline's last fitting loss
        self.ema_baseline = 0.0  # the "ema" baseline's value (ScratchGAN starts it at 0)
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
        sequences = episodes.sequences.to(device)
        log_probs = self.generator.log_probs(sequences, pad_id=pad_id)
        weights = self.advantages(sequences, q.to(device), pad_id)
        loss = policy_gradient_loss(log_probs, weights)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.generator.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.sync()
        return loss.item()

    def advantages(self, sequences: torch.Tensor, q_values: torch.Tensor, pad_id: int | None) -> torch.Tensor:
        """The weight of each token in the loss: Q itself under the paper's settings (gamma 0, baseline
        "none", no normalisation: untouched), else the advantage (R - b) at live positions of the
        discounted return R (Q where gamma is 0), optionally normalised. The "value" baseline is read
        before, and fitted to this R after, it is used; the "ema" baseline moves first."""
        cfg = self.config
        if cfg.gamma == 0 and cfg.baseline == "none" and not cfg.normalize:
            return q_values
        live = live_positions(sequences, pad_id)
        if cfg.gamma > 0:
            q_values = discounted_returns(q_values, live, cfg.gamma)
        baseline = None
        if cfg.baseline == "ema":
            self.ema_baseline = moving_average_baseline(q_values, live, self.ema_baseline, cfg.baseline_decay)
            baseline = torch.full_like(q_values, self.ema_baseline)
        if cfg.baseline in ("mean", "loo"):
            baseline = batch_baseline(q_values, live, leave_one_out=cfg.baseline == "loo")
        elif cfg.baseline == "value":
            assert self.value is not None
            hidden = prefix_hidden(self.generator, sequences, live)
            with torch.no_grad():
                baseline = self.value(hidden)
            self.value_loss = self.value.fit(hidden, q_values, live)
        return advantage_weights(q_values, live, baseline, cfg.normalize)

    @property
    def weights(self) -> dict[str, torch.nn.Module | None]:
        """The generator and the value baseline (None without one)."""
        return {"generator": self.generator, "value_baseline": self.value}

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
