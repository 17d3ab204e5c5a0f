"""Likelihood metrics of the synthetic benchmark: NLL-oracle (quality) and NLL-test (diversity).

NLL-oracle rewards mode collapse (one likely sequence scores very low), so it is always reported
beside NLL-test, the generator's NLL on held-out real data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from seqgan_env.token_lstm import TokenLSTM


@dataclass(frozen=True)
class Estimate:
    """A mean over sequences and its standard error."""

    mean: float
    stderr: float


@torch.inference_mode()
def sequence_nll(
    model: TokenLSTM,
    sequences: torch.Tensor,
    pad_id: int | None = None,
    temperature: float = 1.0,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Mean per-token negative log-likelihood of each of `sequences` [N, T] under `model`: [N]."""
    out = []
    for begin in range(0, len(sequences), batch_size):
        batch = sequences[begin : begin + batch_size].to(model.device)
        logp = model.log_probs(batch, pad_id=pad_id, temperature=temperature)
        if pad_id is None:
            n_tokens = torch.full_like(batch[:, 0], batch.shape[1])
        else:
            n_tokens = (batch != pad_id).sum(1)
        out.append(-logp.sum(1) / n_tokens.clamp(min=1))
    return torch.cat(out) if out else torch.empty(0)


def mean_nll(
    model: TokenLSTM, sequences: torch.Tensor, pad_id: int | None = None, temperature: float = 1.0
) -> Estimate:
    """Mean per-token NLL of `sequences` under `model`, averaged over sequences, with its standard error."""
    nll = sequence_nll(model, sequences, pad_id, temperature).double()
    if len(nll) == 0:
        raise ValueError("no sequences to score")
    stderr = nll.std().item() / math.sqrt(len(nll)) if len(nll) > 1 else float("nan")
    return Estimate(nll.mean().item(), stderr)


def nll_oracle(
    oracle: TokenLSTM,
    generator: TokenLSTM,
    n_samples: int = 9984,
    rng: torch.Generator | None = None,
    temperature: float = 1.0,
) -> Estimate:
    """NLL-oracle: the oracle's mean per-token NLL of `n_samples` fresh samples of `generator`
    (drawn at `temperature`). Lower is better; the oracle's own samples score its entropy rate."""
    samples = generator.sample(n_samples, rng, temperature=temperature)
    return mean_nll(oracle, samples.to(oracle.device))


def nll_test(
    generator: TokenLSTM, test_data: torch.Tensor, pad_id: int | None = None, temperature: float = 1.0
) -> Estimate:
    """NLL-test: the generator's mean per-token NLL of held-out real sequences (never its training
    data), under the same sampling temperature as NLL-oracle."""
    return mean_nll(generator, test_data, pad_id, temperature)
