"""The token LSTM language model: the oracle, the environment's rollout policy and the generator.

embedding -> one LSTM layer -> linear to vocabulary logits. The start token is an
ordinary vocabulary id fed as the first input, so the distribution of y_1 is the output after the
start token, and the state "after the prefix y_1..y_t" is the state after reading [start, y_1..y_t].
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seqgan_env.modes import module_mode
from seqgan_env.precision import autocast
from seqgan_env.sampling import sample_categorical

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [B, H]


@dataclass(frozen=True)
class TokenLSTMConfig:
    """Sizes and initialisation of a token LSTM. The defaults are the paper's generator."""

    vocab_size: int = 5000
    seq_len: int = 20
    embed_dim: int = 32
    hidden_dim: int = 32
    start_token: int = 0
    init_std: float = 0.1  # every parameter ~ N(0, init_std^2); the oracle uses 1.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "embed_dim", "hidden_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"TokenLSTMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.start_token < self.vocab_size:
            raise ValueError(
                f"start_token must be a vocabulary id in [0, {self.vocab_size}), got {self.start_token}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-typed form, safe inside a `weights_only` checkpoint."""
        return asdict(self)


class TokenLSTM(nn.Module):
    """An autoregressive LSTM over token ids with teacher-forced scoring and batched sampling."""

    def __init__(self, config: TokenLSTMConfig, rng: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim)
        self.lstm = nn.LSTM(config.embed_dim, config.hidden_dim, batch_first=True)
        self.output = nn.Linear(config.hidden_dim, config.vocab_size)
        # The reference LSTM has one bias per gate: torch's second bias stays zero and out of training
        # (trained, it would get exactly bias_ih's gradient, move at twice the rate under Adam and count
        # twice in the clip-5 norm).
        self.lstm.bias_hh_l0.requires_grad_(False)
        # "fp32", or "bf16": `complete` (the Monte Carlo search's completions) reads tokens under bf16
        # autocast (seqgan_env/precision.py); not saved with the weights, set by whoever runs the model.
        self.precision = "fp32"
        self.reset_parameters(rng)

    def reset_parameters(self, rng: torch.Generator | None = None) -> None:
        """Every parameter ~ N(0, init_std^2), as the reference code; the recurrent bias is zero (and
        frozen) because the reference LSTM has a single bias per gate (`bias_ih` plays that role).

        The draws are made on the CPU (`rng` is a CPU generator), so a seed gives the same model
        on every device."""
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name == "lstm.bias_hh_l0":
                    param.zero_()
                else:
                    draw = torch.randn(param.shape, generator=rng) * self.config.init_std
                    param.copy_(draw)

    @property
    def device(self) -> torch.device:
        return self.output.weight.device

    def differentiable(self) -> AbstractContextManager[None]:
        """Train mode inside the block (the caller's mode restored after), for gradients taken outside
        a training step: cuDNN keeps what an LSTM's backward needs only in train mode, and refuses
        the backward otherwise. The model has no dropout or normalisation (one LSTM layer, whose
        `dropout` acts between layers only), so train and eval mode compute the same numbers."""
        return module_mode(self, True)

    # --- teacher forcing -------------------------------------------------------------------------
    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """Next-token logits for every position of `sequences` [B, T] (ids < V): [B, T, V].

        Position t holds the logits of y_t given [start, y_1..y_{t-1}].
        """
        embedded = self.embedding(self._shift_right(sequences))
        device = embedded.device.type
        if torch.is_autocast_enabled(device):
            # The recurrence stays fp32 under autocast: its products are small, and CPU autocast would
            # run nn.LSTM through oneDNN's bf16 kernel, which needs AVX-512 and fails elsewhere.
            with torch.autocast(device, enabled=False):
                hidden, _ = self.lstm(embedded)  # [B, T, H]
        else:
            hidden, _ = self.lstm(embedded)
        return self.output(hidden)  # under autocast: the [B, T, V] product in bf16

    def log_probs(
        self,
        sequences: torch.Tensor,
        pad_id: int | None = None,
        temperature: float = 1.0,
        fused: bool = False,
    ) -> torch.Tensor:
        """log G(y_t | y_<t) for each position of `sequences` [B, T] under softmax(logits /
        temperature): [B, T]; 0 at padding positions (`pad_id`). In fp32 whatever the precision of
        the products. `fused`: the gradient through the log-softmax as one pass (`token_nll`), equal
        to cross_entropy's up to float rounding."""
        mask = None
        if pad_id is not None:
            mask = sequences != pad_id
            sequences = sequences.masked_fill(~mask, 0)
        logits = self.forward(sequences)
        if temperature != 1.0:
            logits = logits / temperature
        flat_logits, targets = logits.reshape(-1, logits.shape[-1]).float(), sequences.reshape(-1)
        if fused:
            flat = token_nll(flat_logits, targets)
        else:  # cross_entropy fuses log-softmax and the gather
            flat = F.cross_entropy(flat_logits, targets, reduction="none")
        token_logp = -flat.view(sequences.shape)
        return token_logp if mask is None else token_logp * mask

    def _shift_right(self, sequences: torch.Tensor) -> torch.Tensor:
        start = torch.full_like(sequences[:, :1], self.config.start_token)
        return torch.cat([start, sequences[:, :-1]], dim=1)

    # --- one step at a time ----------------------------------------------------------------------
    def step(self, tokens: torch.Tensor, state: LSTMState | None) -> tuple[torch.Tensor, LSTMState]:
        """Read `tokens` [B] in `state` (None = zero state): next-token logits [B, V] and the new state.

        The same equations as `nn.LSTM` (gate order i, f, g, o), written out so that a cached state
        can be advanced one token at a time.
        """
        weight_ih, weight_hh, bias_ih, bias_hh = self.lstm.all_weights[0]
        gates = self.embedding(tokens) @ weight_ih.T + bias_ih
        gates = gates + bias_hh
        if state is not None:
            gates = gates + state[0] @ weight_hh.T
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(i) * torch.tanh(g)
        if state is not None:
            c = c + torch.sigmoid(f) * state[1]
        h = torch.sigmoid(o) * torch.tanh(c)
        return self.output(h), (h, c)

    def start(self, batch_size: int) -> tuple[torch.Tensor, LSTMState]:
        """Logits of y_1 and the state after reading the start token, for `batch_size` sequences."""
        tokens = torch.full((batch_size,), self.config.start_token, dtype=torch.long, device=self.device)
        return self.step(tokens, None)

    def complete(
        self,
        logits: torch.Tensor,
        state: LSTMState,
        n_tokens: int,
        rng: torch.Generator | None = None,
        temperature: float = 1.0,
        eos_id: int | None = None,
        pad_id: int | None = None,
        n_samples: int = 1,
    ) -> torch.Tensor:
        """Sample `n_tokens` more tokens, `n_samples` independent continuations for each row, starting
        from next-token `logits` [B, V] in `state`: [B*n_samples, n_tokens], row b*n_samples + n the
        n-th continuation of row b. After `eos_id` is drawn a row continues with `pad_id`.

        The first tokens are drawn from the B rows' distributions directly (`num_samples`), so the
        logits are never copied n_samples times; the state is.
        """
        if n_tokens < 1:
            return torch.empty(logits.shape[0] * n_samples, 0, dtype=torch.long, device=logits.device)
        token = sample_categorical(logits, rng, temperature, n_samples).view(-1)  # [B*n_samples]
        if n_samples > 1:
            state = (state[0].repeat_interleave(n_samples, 0), state[1].repeat_interleave(n_samples, 0))
        out = torch.empty(token.shape[0], n_tokens, dtype=torch.long, device=logits.device)
        ended: torch.Tensor | None = None  # the rows that drew eos_id (None: no end-of-sequence)
        fill = 0  # what an ended row continues with: pad_id, else eos_id again
        if eos_id is not None:
            ended = torch.zeros_like(token, dtype=torch.bool)
            fill = eos_id if pad_id is None else pad_id
        for t in range(n_tokens):
            if t > 0:
                token = sample_categorical(logits, rng, temperature)  # in fp32 whatever the logits
            if ended is not None:
                token = token.masked_fill(ended, fill)
                ended = ended | (token == eos_id)
            out[:, t] = token
            if t + 1 < n_tokens:
                # Ended rows read a harmless id; their later samples are overwritten with padding.
                read = token if ended is None else token.masked_fill(ended, 0)
                with autocast(self.precision, logits.device):
                    logits, state = self.step(read, state)
        return out

    @torch.no_grad()  # not inference_mode: samples are training data (MLE, discriminator)
    def sample(
        self,
        n: int,
        rng: torch.Generator | None = None,
        temperature: float = 1.0,
        batch_size: int | None = None,
        eos_id: int | None = None,
        pad_id: int | None = None,
    ) -> torch.Tensor:
        """`n` sequences of length T sampled ancestrally from the start token: [n, T] long, in batches
        of `batch_size` (default: 1024 on the CPU, whose caches it suits; 16,384 on a GPU, where a
        larger batch is fewer launches, e.g. the paper's 9,984 negatives in one)."""
        if batch_size is None:
            batch_size = 1024 if self.device.type == "cpu" else 16384
        chunks = []
        for begin in range(0, n, batch_size):
            size = min(batch_size, n - begin)
            logits, state = self.start(size)
            chunks.append(
                self.complete(logits, state, self.config.seq_len, rng, temperature, eos_id, pad_id)
            )
        if not chunks:
            return torch.empty(0, self.config.seq_len, dtype=torch.long, device=self.device)
        return torch.cat(chunks)

    @torch.inference_mode()
    def prefix_states(self, sequences: torch.Tensor) -> tuple[torch.Tensor, LSTMState]:
        """For every prefix length t = 0..T-1 of `sequences` [B, T]: next-token logits [T, B, V] and
        states ([T, B, H], [T, B, H]) after reading [start, y_1..y_t]."""
        logits, state = self.start(sequences.shape[0])
        all_logits, hs, cs = [logits], [state[0]], [state[1]]
        for t in range(sequences.shape[1] - 1):
            logits, state = self.step(sequences[:, t], state)
            all_logits.append(logits)
            hs.append(state[0])
            cs.append(state[1])
        return torch.stack(all_logits), (torch.stack(hs), torch.stack(cs))


class _TokenNLL(torch.autograd.Function):
    """-log softmax(logits)[target] per row, whose backward is one pass over the [rows, V] gradient:
    softmax - one-hot, scaled per row, written over the saved log-softmax (no zero-filled gradient,
    no new [rows, V] buffer)."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_softmax = torch.log_softmax(logits, dim=-1)
        ctx.save_for_backward(log_softmax, targets)
        return -log_softmax.gather(1, targets[:, None]).squeeze(1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        log_softmax, targets = ctx.saved_tensors
        scale = grad[:, None]
        out = log_softmax.exp_().mul_(scale)  # the saved buffer is not read again
        return out.scatter_add_(1, targets[:, None], -scale), None


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """`F.cross_entropy(logits, targets, reduction="none")` for logits [rows, V] and targets [rows],
    equal up to float rounding, with a backward pass that touches the [rows, V] gradient once."""
    result: torch.Tensor = _TokenNLL.apply(logits, targets)
    return result
