"""The discriminator-updating wrapper: how SeqGAN's adversarial rounds run under any algorithm.

It watches finished episodes and, every `every_episodes` episodes or when asked
(`train_discriminator()`), retrains the environment's discriminator `repeats` times on the real
sequences against as many negatives: the episodes finished since the last training, topped up with
fresh samples from the `sampler` it was given (e.g. the agent's generator). The paper's schedule is,
after every generator step, 5 times { 9,984 fresh negatives, 3 epochs }; ScratchGAN's (the dense
reward mode's) is one minibatch step per generator step on the generator's own batch against as many
real sequences: `repeats=1, n_negatives=B, epochs=1, batch_size=2B`.

Any discriminator that owns its training meets the wrapper's needs (`TrainableDiscriminator`): the
paper's CNN (`seqgan_env.discriminator`) and the prefix discriminator
(`seqgan_env.prefix_discriminator`) both do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, SupportsFloat, runtime_checkable

import gymnasium as gym
import numpy as np
import torch

from seqgan_env.checkpoint import check_sequences
from seqgan_env.devices import rng_device
from seqgan_env.optim_state import load_optimizer_state

Sampler = Callable[[int], torch.Tensor]  # n -> [n, T] generated sequences


@runtime_checkable
class TrainableDiscriminator(Protocol):
    """What the wrapper asks of a discriminator: it owns its optimiser and its training on real (label
    1) against generated (label 0) sequences, and scores sequences."""

    def make_optimizer(self) -> torch.optim.Optimizer: ...

    def fit(
        self, optimizer: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor, epochs: int = ...,
        batch_size: int = ..., rng: torch.Generator | None = None,
    ) -> float: ...  # fmt: skip

    def score(self, sequences: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class DiscriminatorSchedule:
    """When and how much the discriminator trains."""

    every_episodes: int | None = None  # None: only on demand
    repeats: int = 5  # fresh sets of negatives per training
    n_negatives: int = 9984
    epochs: int = 3
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.every_episodes is not None and self.every_episodes < 1:
            raise ValueError(f"every_episodes must be >= 1 or None, got {self.every_episodes}")
        for name in ("repeats", "n_negatives", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class DiscriminatorUpdater:
    """The schedule's state and the training itself, shared by the single and the vector wrapper."""

    def __init__(
        self,
        discriminator: TrainableDiscriminator,
        real_data: torch.Tensor,
        sampler: Sampler,
        schedule: DiscriminatorSchedule,
        rng: torch.Generator | None = None,
    ) -> None:
        if real_data.ndim != 2 or len(real_data) == 0:
            shape = tuple(real_data.shape)
            raise ValueError(f"real_data must be a non-empty [N, T] tensor, got shape {shape}")
        self.discriminator = discriminator
        self.real_data = real_data
        self.sampler = sampler
        self.schedule = schedule
        self.rng = rng
        self.optimizer = discriminator.make_optimizer()
        self.finished: list[torch.Tensor] = []  # episodes since the last training
        self.episodes_seen = 0
        self.since_training = 0  # episodes since the last scheduled training
        self.trainings = 0
        self.last_loss = float("nan")
        self.last_real: torch.Tensor | None = None  # the real sequences of the last training set

    def observe(self, sequences: torch.Tensor) -> None:
        """Record finished episodes [k, T]; train when the schedule says so."""
        if len(sequences) == 0:
            return
        self.finished.append(sequences.cpu())
        self.episodes_seen += len(sequences)
        self.since_training += len(sequences)
        if sum(len(s) for s in self.finished) > self.schedule.n_negatives:  # only the newest serve
            self.finished = [torch.cat(self.finished)[-self.schedule.n_negatives :]]
        every = self.schedule.every_episodes
        while every is not None and self.since_training >= every:  # one training per `every` episodes
            self.since_training -= every
            self.train()

    def train(self, repeats: int | None = None) -> float:
        """`repeats` (default: the schedule's) times: fresh negatives (recorded episodes first), then
        `epochs` of training. Returns the mean loss."""
        s = self.schedule
        episodes = torch.cat(self.finished)[-s.n_negatives :] if self.finished else None
        self.finished = []
        losses = []
        for _ in range(s.repeats if repeats is None else repeats):
            parts = [] if episodes is None else [episodes]
            missing = s.n_negatives - (0 if episodes is None else len(episodes))
            if missing > 0:
                parts.append(self.sampler(missing).cpu())
            episodes = None  # recorded episodes serve the first repeat only
            negatives = torch.cat(parts)
            real = self.last_real = self._real(len(negatives))
            loss = self.discriminator.fit(self.optimizer, real, negatives, s.epochs, s.batch_size, self.rng)
            losses.append(loss)
        self.trainings += 1
        self.last_loss = sum(losses) / len(losses)
        return self.last_loss

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue the schedule exactly: the optimiser, the episodes
        recorded since the last training and the counters (plain types and tensors only)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "finished": torch.cat(self.finished) if self.finished else None,
            "episodes_seen": self.episodes_seen, "since_training": self.since_training,
            "trainings": self.trainings, "last_loss": self.last_loss,
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any], source: str = "the updater's state") -> None:
        """Continue from a `state_dict()` read from `source` (a checkpoint), every entry checked
        first: a one-line ValueError naming `source` otherwise."""
        if not isinstance(state, dict):
            raise ValueError(f"{source}: a {type(state).__name__}, expected the updater's state (a dict)")
        counts: dict[str, Any] = {k: state.get(k) for k in ("episodes_seen", "since_training", "trainings")}
        for key, count in counts.items():
            if type(count) is not int or count < 0:
                raise ValueError(f"{source}: {key} is {str(count)[:40]}, expected a count >= 0")
        last_loss = state.get("last_loss")  # NaN before the first training
        if isinstance(last_loss, bool) or not isinstance(last_loss, (int, float)):
            raise ValueError(f"{source}: last_loss is {str(last_loss)[:40]}, expected a number")
        finished = state.get("finished")
        if finished is not None:
            config = getattr(self.discriminator, "config", None)  # the project's discriminators embed 0..V
            vocab = getattr(config, "vocab_size", torch.iinfo(torch.int64).max - 1)
            check_sequences(finished, vocab, self.real_data.shape[1], f"{source}: finished episodes", True)
        load_optimizer_state(self.optimizer, state.get("optimizer"), source)
        self.finished = [] if finished is None else [finished]
        self.episodes_seen, self.since_training = counts["episodes_seen"], counts["since_training"]
        self.trainings, self.last_loss = counts["trainings"], float(last_loss)

    def _real(self, n: int) -> torch.Tensor:
        """All real sequences when there are at most `n`, else a random `n` of them."""
        if len(self.real_data) <= n:
            return self.real_data
        order = torch.randperm(len(self.real_data), generator=self.rng, device=rng_device(self.rng))
        return self.real_data[order[:n].to(self.real_data.device)]


def _discriminator_of(env: gym.Env | gym.vector.VectorEnv) -> TrainableDiscriminator:
    """The discriminator of the SeqGAN env beneath `env`'s wrappers, or a clear error."""
    discriminator = getattr(env.unwrapped, "discriminator", None)
    if not isinstance(discriminator, TrainableDiscriminator):
        raise TypeError(f"the discriminator-training wrappers wrap a SeqGAN env (SeqGANEnv or "
                        f"SeqGANVectorEnv), got {type(env.unwrapped).__name__}, which has no "
                        f"Discriminator")  # fmt: skip
    return discriminator


class DiscriminatorTrainingWrapper(gym.Wrapper):
    """Trains a single SeqGAN env's discriminator on its finished episodes (see module docstring)."""

    def __init__(
        self,
        env: gym.Env,
        real_data: torch.Tensor,
        sampler: Sampler,
        schedule: DiscriminatorSchedule = DiscriminatorSchedule(),
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__(env)
        self.updater = DiscriminatorUpdater(_discriminator_of(env), real_data, sampler, schedule, rng)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            self.updater.observe(torch.as_tensor(info["sequence"]).unsqueeze(0))
        return obs, reward, terminated, truncated, info

    def train_discriminator(self) -> float:
        """Train now, whatever the schedule; returns the mean loss."""
        return self.updater.train()


class DiscriminatorTrainingVectorWrapper(gym.vector.VectorWrapper):
    """The vector form: records the `infos["sequence"]` of every env that terminated."""

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        real_data: torch.Tensor,
        sampler: Sampler,
        schedule: DiscriminatorSchedule = DiscriminatorSchedule(),
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__(env)
        self.updater = DiscriminatorUpdater(_discriminator_of(env), real_data, sampler, schedule, rng)

    def step(self, actions: np.ndarray) -> tuple[Any, Any, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        if terminated.any():
            self.updater.observe(torch.as_tensor(infos["sequence"][terminated]))
        return obs, rewards, terminated, truncated, infos

    def train_discriminator(self) -> float:
        """Train now, whatever the schedule; returns the mean loss."""
        return self.updater.train()
