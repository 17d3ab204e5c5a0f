"""A discriminator that scores every prefix: a causal LSTM with one real/fake logit per position.

ScratchGAN's discriminator (de Masson d'Autume et al., NeurIPS 2019): the logit D_t at position t
reads y_1..y_t only, so one pass over a sequence scores each of its prefixes, and the environment's
dense reward mode advances its state one token per step instead of searching completions. It is
trained with the sequence's label at every position (padding after an end-of-sequence left out),
with ScratchGAN's regularisation as options: layer norm on the LSTM's gates, dropout on the embedding
matrix, and a small L2 on every weight.

Like the paper's CNN (`seqgan_env.discriminator.Discriminator`) it owns its loss and its training step
(`make_optimizer`, `train_step`, `fit`), scores finished sequences (`score`: the probability at the
last position) and is saved as a checkpoint entry of its config and weights.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from seqgan_env.devices import rng_device
from seqgan_env.discriminator import Discriminator
from seqgan_env.modes import module_mode
from seqgan_env.precision import autocast

PrefixState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [B, H]


@runtime_checkable
class IncrementalScorer(Protocol):
    """A scorer of prefixes whose state advances one token at a time: what the dense reward reads.

    `start(B)` is the state before any token, `advance(tokens [B], state)` reads one token per row
    and returns the logit D_t [B] of each prefix and the new state, and `weights_key()` changes
    whenever the weights do (a cached state is then recomputed from its prefix)."""

    def start(self, batch_size: int) -> PrefixState: ...

    def advance(self, tokens: torch.Tensor, state: PrefixState) -> tuple[torch.Tensor, PrefixState]: ...

    def weights_key(self) -> Hashable: ...

    def prefix_logits(self, sequences: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class PrefixDiscriminatorConfig:
    """Sizes and training constants of the prefix discriminator; the defaults are ScratchGAN's, with the
    LSTM narrower (512 there) to fit a CPU."""

    vocab_size: int = 5000
    seq_len: int = 20
    embed_dim: int = 64
    hidden_dim: int = 128
    layer_norm: bool = True  # on the LSTM's gate pre-activations
    embed_dropout: float = 0.1  # dropout on the embedding matrix while training
    l2_reg: float = 1e-6  # times the sum of squares / 2 of every weight
    lr: float = 1e-3
    beta1: float = 0.5  # Adam's betas (ScratchGAN: 0.5 for both networks)
    beta2: float = 0.999

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "embed_dim", "hidden_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"PrefixDiscriminatorConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not isinstance(self.layer_norm, bool):
            raise ValueError(f"layer_norm must be a bool, got {self.layer_norm!r}")
        if not 0.0 <= self.embed_dropout < 1.0:
            raise ValueError(f"embed_dropout must be in [0, 1), got {self.embed_dropout}")
        if not (math.isfinite(self.l2_reg) and self.l2_reg >= 0):
            raise ValueError(f"l2_reg must be a finite number >= 0, got {self.l2_reg}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            raise ValueError(f"beta1 and beta2 must lie in [0, 1), got {self.beta1}, {self.beta2}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-typed form, safe inside a `weights_only` checkpoint."""
        return asdict(self)


class PrefixDiscriminator(nn.Module):
    """Embedding -> LSTM (optionally layer-normed gates) -> one logit per position; 1 is "real".

    Input ids lie in [0, V]; id V is padding (after an end-of-sequence) and embeds to zeros. The
    forward pass and the one-token `advance` run the same cell, so the logits of `forward` at position
    t are those of advancing a fresh state through y_1..y_t (up to float rounding).
    """

    entry_kind = "prefix_discriminator"  # the checkpoint entry's "kind" (the CNN's entries have none)

    def __init__(self, config: PrefixDiscriminatorConfig, rng: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        self.pad_id = config.vocab_size
        E, H = config.embed_dim, config.hidden_dim
        self.embedding = nn.Embedding(config.vocab_size + 1, E, padding_idx=self.pad_id)
        self.input_gates = nn.Linear(E, 4 * H)  # x -> gates i, f, g, o (with the gates' bias)
        self.hidden_gates = nn.Linear(H, 4 * H, bias=False)
        self.gate_norm = nn.LayerNorm(4 * H) if config.layer_norm else None
        self.output = nn.Linear(H, 1)
        self.steps = 0  # optimiser steps taken (fused Adam writes weights without a version bump)
        # "fp32", or "bf16": the products under bf16 autocast (seqgan_env/precision.py), the logits fp32;
        # not saved with the weights, set by whoever runs the model.
        self.precision = "fp32"
        self.reset_parameters(rng)

    def reset_parameters(self, rng: torch.Generator | None = None) -> None:
        """N(0, 1) embeddings (padding row 0), uniform(-1/sqrt(H), 1/sqrt(H)) weights as torch's LSTM,
        zero biases but the forget gate's 1; drawn on the CPU, so a seed gives the same model anywhere."""
        H = self.config.hidden_dim
        bound = 1.0 / math.sqrt(H)
        with torch.no_grad():
            embedding = torch.randn(self.embedding.weight.shape, generator=rng)
            embedding[self.pad_id] = 0.0
            self.embedding.weight.copy_(embedding)
            for layer in (self.input_gates, self.hidden_gates, self.output):
                layer.weight.copy_(torch.empty(layer.weight.shape).uniform_(-bound, bound, generator=rng))
            bias = torch.zeros(4 * H)
            bias[H : 2 * H] = 1.0  # forget gate open at the start
            self.input_gates.bias.copy_(bias)
            self.output.bias.zero_()
            if self.gate_norm is not None:
                self.gate_norm.reset_parameters()

    @property
    def device(self) -> torch.device:
        return self.output.weight.device

    # --- the cell, shared by the full pass and the incremental one ---------------------------------
    def _cell(self, gates_x: torch.Tensor, state: PrefixState) -> PrefixState:
        """One LSTM step from the input's gate pre-activations [B, 4H] and the state: the new state."""
        h, c = state
        gates = gates_x + self.hidden_gates(h)
        if self.gate_norm is not None:
            gates = self.gate_norm(gates)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embedded ids [..., E]; in training, with dropout on the embedding matrix (ScratchGAN's: a
        token keeps its dropped features in every position of the batch)."""
        weight = self.embedding.weight
        if self.training and self.config.embed_dropout > 0:
            weight = F.dropout(weight, self.config.embed_dropout, training=True)
        return F.embedding(tokens, weight, padding_idx=self.pad_id)

    def start(self, batch_size: int) -> PrefixState:
        """The state before any token: zeros ([B, H], [B, H])."""
        zeros = torch.zeros(batch_size, self.config.hidden_dim, device=self.device)
        return zeros, zeros.clone()

    def advance(self, tokens: torch.Tensor, state: PrefixState) -> tuple[torch.Tensor, PrefixState]:
        """Read one token per row, `tokens` [B], in `state`: the logit D_t [B] of each prefix and the new
        state (eval mode's numbers: the caller scores in inference mode, dropout off)."""
        with module_mode(self, False), autocast(self.precision, self.device):
            state = self._cell(self.input_gates(self._embed(tokens)), state)
            return self.output(state[0]).squeeze(-1).float(), state

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """The logit of every prefix of `sequences` [B, T]: [B, T], position t from y_1..y_t only."""
        with autocast(self.precision, self.device):
            gates_x = self.input_gates(self._embed(sequences))  # [B, T, 4H], one product for all steps
            state = self.start(sequences.shape[0])
            hidden = []
            # unbind, not gates_x[:, t]: indexing's backward would fill a [B, T, 4H] gradient per step
            for gates in gates_x.unbind(dim=1):
                state = self._cell(gates, state)
                hidden.append(state[0])
            return self.output(torch.stack(hidden, dim=1)).squeeze(-1).float()

    # --- the loss and the training step ----------------------------------------------------------
    def loss(self, sequences: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean binary cross-entropy of every live position's logit against its sequence's label (1
        real, 0 generated; padding after an end-of-sequence left out), + l2_reg * (sum of squares / 2)
        of every weight (ScratchGAN's)."""
        logits = self.forward(sequences)
        live = sequences != self.pad_id
        targets = labels.to(logits.dtype)[:, None].expand_as(logits)
        ce = F.binary_cross_entropy_with_logits(logits[live], targets[live])
        if self.config.l2_reg == 0:
            return ce
        l2 = sum(p.square().sum() for p in self.parameters())
        return ce + self.config.l2_reg * 0.5 * l2

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam at the configured rate and betas (fused: several times faster per step on CPU)."""
        cfg = self.config
        return torch.optim.Adam(self.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True)

    def train_step(
        self, optimizer: torch.optim.Optimizer, sequences: torch.Tensor, labels: torch.Tensor
    ) -> float:
        """One optimiser step on a minibatch (dropout on); returns the loss before the step."""
        self.train()
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss(sequences, labels)
        loss.backward()
        optimizer.step()
        self.steps += 1
        return loss.item()

    def fit(
        self,
        optimizer: torch.optim.Optimizer,
        real: torch.Tensor,
        fake: torch.Tensor,
        epochs: int = 1,
        batch_size: int = 64,
        rng: torch.Generator | None = None,
    ) -> float:
        """Train on real (label 1) against fake (label 0) sequences for `epochs` shuffled passes in
        minibatches of `batch_size` (the CNN's interface, so the discriminator-updating wrapper trains
        either); returns the mean loss."""
        sequences = torch.cat([real.to(self.device), fake.to(self.device)])
        labels = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))]).to(self.device)
        losses = []
        for _ in range(epochs):
            order = torch.randperm(len(sequences), generator=rng, device=rng_device(rng)).to(self.device)
            for begin in range(0, len(order), batch_size):
                batch = order[begin : begin + batch_size]
                losses.append(self.train_step(optimizer, sequences[batch], labels[batch]))
        self.eval()
        return sum(losses) / max(len(losses), 1)

    # --- scoring ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def prefix_logits(self, sequences: torch.Tensor) -> torch.Tensor:
        """The logit D_t of every prefix of `sequences` [B, T] in eval mode (no dropout): [B, T]."""
        with module_mode(self, False):
            return self.forward(sequences)

    @torch.inference_mode()
    def score(self, sequences: torch.Tensor) -> torch.Tensor:
        """P(real) of each finished sequence of `sequences` [B, T]: the sigmoid of the logit at its last
        position before any padding, in eval mode: [B]."""
        logits = self.prefix_logits(sequences)
        last = ((sequences != self.pad_id).sum(dim=1) - 1).clamp(min=0)
        return torch.sigmoid(logits.gather(1, last[:, None]).squeeze(1))

    def weights_key(self) -> Hashable:
        """What changes whenever the weights do: the optimiser steps taken, and each parameter's in-place
        version counter (bumped by `load_state_dict` and `copy_`) and storage."""
        return self.steps, tuple((p._version, p.data_ptr()) for p in self.parameters())



AnyDiscriminator = Discriminator | PrefixDiscriminator  # what an environment or the wrapper trains


def dense_rewards(logits: torch.Tensor) -> torch.Tensor:
    """ScratchGAN's reward of a prefix from its logit D_t: 2 sigmoid(D_t) - 1, in [-1, 1]."""
    return 2.0 * torch.sigmoid(logits) - 1.0
