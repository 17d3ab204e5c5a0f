"""Torch devices named by users: parsed and checked once, with a one-line error for a bad name."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device `device` names, checked to exist on this machine: "cpu", "cuda", "cuda:N" (N
    below the number of GPUs) or "mps". Raises ValueError naming the value and what was expected."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
    names = "'cpu', 'cuda', 'cuda:N' or 'mps'"
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {device!r} is not a torch device name; expected {names}") from None
    if parsed.type == "cpu":
        return parsed
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available on this machine (torch "
                             f"{torch.__version__}); use 'cpu'")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"device {device!r}: this machine has {count} CUDA device(s)")
        return parsed
    if parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r}: MPS is not available on this machine; use 'cpu'")
        return parsed
    raise ValueError(f"device {device!r} is not supported; expected {names}")


def rng_device(rng: torch.Generator | None) -> torch.device:
    """Where a random generator draws (the CPU for None, torch's default generator)."""
    return torch.device("cpu") if rng is None else rng.device
