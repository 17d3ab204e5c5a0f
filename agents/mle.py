"""Maximum-likelihood pre-training of the generator (SPEC 2.2): teacher forcing, Adam, clipped."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agents.learner import sync_rollout_policy
from seqgan_env.devices import rng_device
from seqgan_env.token_lstm import TokenLSTM


@dataclass(frozen=True)
class MLEConfig:
    """The reference code's MLE settings."""

    lr: float = 0.01
    batch_size: int = 64
    grad_clip: float = 5.0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.batch_size < 1 or self.grad_clip <= 0:
            raise ValueError(f"MLEConfig needs lr > 0, batch_size >= 1, grad_clip > 0; got {self}")


def mle_loss(generator: TokenLSTM, sequences: torch.Tensor, pad_id: int | None = None) -> torch.Tensor:
    """Mean per-token cross-entropy of `sequences` [B, T] (padding excluded)."""
    logp = generator.log_probs(sequences, pad_id=pad_id)
    n_tokens = sequences.numel() if pad_id is None else (sequences != pad_id).sum().clamp(min=1)
    return -logp.sum() / n_tokens


class MLETrainer:
    """Epochs of MLE over a fixed data set, with its own Adam (kept across epochs, and in checkpoints)."""

    def __init__(self, generator: TokenLSTM, config: MLEConfig = MLEConfig(), pad_id: int | None = None):
        self.generator = generator
        self.config = config
        self.pad_id = pad_id
        self.optimizer = torch.optim.Adam(generator.parameters(), lr=config.lr, fused=True)

    def step(self, sequences: torch.Tensor) -> float:
        """One clipped Adam step on a minibatch; returns its loss."""
        self.generator.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = mle_loss(self.generator, sequences.to(self.generator.device), self.pad_id)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.generator.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return loss.item()

    def epoch(self, data: torch.Tensor, rng: torch.Generator | None = None) -> float:
        """One shuffled pass over `data` [N, T]; returns the mean minibatch loss."""
        order = torch.randperm(len(data), generator=rng, device=rng_device(rng)).to(data.device)
        size = self.config.batch_size
        losses = [self.step(data[order[i : i + size]]) for i in range(0, len(data), size)]
        return sum(losses) / max(len(losses), 1)


class ContinuedMLE:
    """The continued-MLE control as a `Learner`: each round one MLE step on a random minibatch of the
    real data, where SeqGAN would take its policy-gradient step (the environment is not consulted)."""

    def __init__(
        self,
        trainer: MLETrainer,
        data: torch.Tensor,
        rng: torch.Generator | None = None,
        rollout_policy: TokenLSTM | None = None,
    ) -> None:
        self.trainer, self.data, self.rng, self.rollout_policy = trainer, data, rng, rollout_policy

    @property
    def generator(self) -> TokenLSTM:
        return self.trainer.generator

    @property
    def weights(self) -> TokenLSTM:
        return self.trainer.generator

    def start_rollout_policy(self) -> None:
        """beta = theta (the rollout policy is never consulted by this control, but checkpoints hold it)."""
        if self.rollout_policy is not None:
            sync_rollout_policy(self.rollout_policy, self.generator)

    def collect(self, envs: object = None) -> torch.Tensor:
        """A minibatch [batch_size, T] of the real data, drawn with replacement."""
        pick = torch.randint(len(self.data), (self.trainer.config.batch_size,), generator=self.rng,
                             device=rng_device(self.rng))  # fmt: skip
        return self.data[pick.to(self.data.device)]

    def update(self, batch: torch.Tensor) -> float:
        """One MLE step on the minibatch; returns its loss."""
        return self.trainer.step(batch)

    def sync(self) -> None:
        """Nothing follows the generator here: the control's rollout policy is never consulted."""
