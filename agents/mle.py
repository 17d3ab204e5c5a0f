"""Maximum-likelihood pre-training of the generator, as the reference code: teacher forcing, Adam, clipped."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agents.learner import sync_rollout_policy
from seqgan_env import cuda_graphs
from seqgan_env.cuda_graphs import CapturedStep, GraphedTrainStep, capture_or_none
from seqgan_env.devices import rng_device
from seqgan_env.precision import autocast
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


def mle_loss(
    generator: TokenLSTM, sequences: torch.Tensor, pad_id: int | None = None, fused: bool = False
) -> torch.Tensor:
    """Mean per-token cross-entropy of `sequences` [B, T] (padding excluded); `fused`: its gradient
    through the log-softmax in one pass (`seqgan_env.token_lstm.token_nll`)."""
    logp = generator.log_probs(sequences, pad_id=pad_id, fused=fused)
    n_tokens = sequences.numel() if pad_id is None else (sequences != pad_id).sum().clamp(min=1)
    return -logp.sum() / n_tokens


class MLETrainer:
    """Epochs of MLE over a fixed data set, with its own Adam (kept across epochs, and in checkpoints).

    `precision` "bf16" runs the generator's products under bf16 autocast and takes the output layer's
    gradient in one fused pass; the loss, its reduction, the weights and Adam's state stay fp32.
    "fp32" is the plain path (torch's cross-entropy), bit for bit."""

    def __init__(
        self,
        generator: TokenLSTM,
        config: MLEConfig = MLEConfig(),
        pad_id: int | None = None,
        precision: str = "fp32",
    ) -> None:
        self.generator = generator
        self.config = config
        self.pad_id = pad_id
        self.precision = precision
        # On CUDA Adam keeps its step count on the device (`capturable`), so that `epoch` can replay
        # its full minibatches from a CUDA graph (seqgan_env/cuda_graphs.py; False: plain steps).
        capturable = cuda_graphs.captures_on(generator.device)
        params = generator.parameters()
        self.optimizer = torch.optim.Adam(params, lr=config.lr, fused=True, capturable=capturable)
        self.cuda_graphs = True
        self.captured = CapturedStep()  # the step's graph, kept across epochs

    def step(self, sequences: torch.Tensor) -> float:
        """One clipped Adam step on a minibatch; returns its loss."""
        return self.step_tensor(sequences).item()

    def step_tensor(self, sequences: torch.Tensor) -> torch.Tensor:
        """`step` returning the loss as a 0-d tensor on the generator's device (no host
        synchronisation: a GPU runs the next step's launches without waiting)."""
        self.generator.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(sequences.to(self.generator.device))
        loss.backward()
        self._clip()
        self.optimizer.step()
        return loss.detach()

    def _loss(self, sequences: torch.Tensor) -> torch.Tensor:
        with autocast(self.precision, self.generator.device):
            return mle_loss(self.generator, sequences, self.pad_id, fused=self.precision != "fp32")

    def _clip(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.generator.parameters(), self.config.grad_clip)

    def epoch(self, data: torch.Tensor, rng: torch.Generator | None = None) -> float:
        """One shuffled pass over `data` [N, T]; returns the mean minibatch loss (read back once). The
        data are copied to the generator's device once, not per minibatch; on CUDA the full minibatches
        replay one captured step (`GraphedTrainStep`, kept for the next epochs)."""
        data = data.to(self.generator.device)
        order = torch.randperm(len(data), generator=rng, device=rng_device(rng)).to(data.device)
        size = self.config.batch_size
        graphed = self._graphed_step(data[order[:size]])
        losses = []
        for i in range(0, len(data), size):
            batch = data[order[i : i + size]]
            losses.append(graphed(batch) if graphed is not None and len(batch) == size
                          else self.step_tensor(batch))  # fmt: skip
        values = torch.stack(losses).tolist() if losses else []
        return sum(values) / max(len(values), 1)

    def _graphed_step(self, example: torch.Tensor) -> GraphedTrainStep | None:
        """The captured step for `epoch`'s full minibatches, where CUDA graphs apply; else None."""
        if len(example) != self.config.batch_size:
            return None
        return capture_or_none(self, "MLE", self.generator, self.optimizer, self._loss, example,
                               before_step=self._clip,
                               settings=(self.precision, self.pad_id, self.config))  # fmt: skip


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
