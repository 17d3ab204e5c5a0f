"""One random generator per purpose of a run, each seeded from the run's seed."""

from __future__ import annotations

import numpy as np
import torch


def derive_seed(seed: int, *purpose: str | int) -> int:
    """A seed for one purpose of a run (`"train"`, `("eval", "mle", 10)`, ...), independent of every
    other purpose's: drawing more or fewer numbers for one never shifts another's stream."""
    words = [seed, *(int.from_bytes(p.encode(), "little") if isinstance(p, str) else p for p in purpose)]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> 1)


def seeded_rng(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch random generator on `device` (where it will sample), seeded with `seed`."""
    return torch.Generator(device=device).manual_seed(seed)
