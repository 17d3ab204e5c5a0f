"""Categorical sampling by inverse CDF: the same distribution as `torch.multinomial`, much faster.

`torch.multinomial` on a [1024, 5000] batch spends most of its time in generic bookkeeping; a softmax,
a cumulative sum and one `searchsorted` with a single uniform per row draw from the same categorical
distribution (P(i) = cdf[i] - cdf[i-1]) in a fraction of the time on a CPU.
"""

from __future__ import annotations

import torch


def sample_categorical(
    logits: torch.Tensor, generator: torch.Generator | None = None, temperature: float = 1.0
) -> torch.Tensor:
    """Draw one index per row of `logits` ([B, V]) from softmax(logits / temperature); returns [B] long."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if temperature != 1.0:
        logits = logits / temperature
    cdf = torch.softmax(logits.float(), dim=-1).cumsum_(dim=-1)  # [B, V]
    # One uniform per row, scaled by the row's total so float rounding of the cumsum cannot push the
    # draw past the last bin; right=True skips zero-probability bins exactly.
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device, dtype=cdf.dtype)
    u = u * cdf[:, -1:]
    index = torch.searchsorted(cdf, u, right=True).squeeze(1)
    return index.clamp_(max=cdf.shape[1] - 1)
