"""Categorical sampling by inverse CDF: the same distribution as `torch.multinomial`, much faster.

`torch.multinomial` on a [1024, 5000] batch spends most of its time in generic bookkeeping; a softmax,
a cumulative sum and one `searchsorted` with a single uniform per row draw from the same categorical
distribution (P(i) = cdf[i] - cdf[i-1]) in a fraction of the time on a CPU.
"""

from __future__ import annotations

import torch


def sample_categorical(
    logits: torch.Tensor,
    rng: torch.Generator | None = None,
    temperature: float = 1.0,
    num_samples: int | None = None,
) -> torch.Tensor:
    """Draw one index per row of `logits` ([B, V]) from softmax(logits / temperature): [B] long; or
    `num_samples` independent indices per row: [B, num_samples] (one softmax and cumsum per row)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if num_samples is not None and num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if temperature != 1.0:
        logits = logits / temperature
    cdf = torch.softmax(logits.float(), dim=-1).cumsum_(dim=-1)  # [B, V]
    # Uniforms scaled by the row's total, so float rounding of the cumsum cannot push a draw past the
    # last bin; right=True skips zero-probability bins exactly.
    u = torch.rand(cdf.shape[0], num_samples or 1, generator=rng, device=cdf.device, dtype=cdf.dtype)
    u = u * cdf[:, -1:]
    index = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[1] - 1)
    return index if num_samples is not None else index.squeeze(1)
