"""NaN and infinity never pass as results: finding them in losses, models and checkpoint payloads.

A training step that overflows (a huge reward scale, a learning rate that blows the weights up) turns
the weights into NaN, and a model of NaN weights still samples: every draw the same token, which an
oracle can score as a fake-good NLL. So the training scripts check the losses and weights at the
points where they already wait for the device (the end of an epoch, a round, a set of negatives) and
before every checkpoint and evaluation, and stop with `NonFiniteError` instead of going on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch


class NonFiniteError(RuntimeError):
    """A loss, gradient or weight that is NaN or infinite: nothing computed from it is saved or scored."""


Path = tuple[Any, ...]  # the keys (of mappings) and `Index`es (of lists) that lead to a tensor in a payload


class Index(int):
    """A position in a list or tuple of a payload, told apart from a mapping's int key in its path."""


def _floating(payload: Any, path: Path = ()) -> Iterator[tuple[Path, torch.Tensor | np.ndarray]]:
    """(path, tensor or array) for every floating-point tensor or array in `payload`: a tensor, an
    array, a module (its state dict) or nested dicts, lists and tuples of them."""
    if isinstance(payload, torch.nn.Module):
        payload = payload.state_dict()
    if isinstance(payload, torch.Tensor):
        if payload.is_floating_point() or payload.is_complex():
            yield path, payload
    elif isinstance(payload, np.ndarray):
        if np.issubdtype(payload.dtype, np.inexact):
            yield path, payload
    elif isinstance(payload, Mapping):
        for key, value in payload.items():
            yield from _floating(value, (*path, key))
    elif isinstance(payload, (list, tuple)):
        for i, value in enumerate(payload):
            yield from _floating(value, (*path, Index(i)))


def nonfinite_tensors(payload: Any) -> list[tuple[Path, torch.Tensor | np.ndarray]]:
    """(path, tensor) of every floating-point tensor or array in `payload` (see `_floating`) that holds
    a NaN or an infinity. The tensors of a device are checked together: one wait for that device,
    whatever their number."""
    by_device: dict[torch.device, list[tuple[Path, torch.Tensor]]] = {}
    bad: list[tuple[Path, torch.Tensor | np.ndarray]] = []
    for path, value in _floating(payload):
        if isinstance(value, np.ndarray):
            if not np.isfinite(value).all():
                bad.append((path, value))
        else:
            by_device.setdefault(value.device, []).append((path, value))
    for tensors in by_device.values():
        flags = torch.stack([torch.isfinite(t.detach()).all() for _, t in tensors]).tolist()
        bad += [item for item, ok in zip(tensors, flags, strict=True) if not ok]
    return bad


def nonfinite_names(payload: Any) -> list[str]:
    """The names (`generator.state_dict.lstm.weight_hh_l0`, `nested[1].a`) of `nonfinite_tensors(payload)`."""
    return ["".join(f"[{key}]" if isinstance(key, Index) else f".{key}" for key in path).lstrip(".")
            for path, _ in nonfinite_tensors(payload)]  # fmt: skip


def require_finite(where: str, losses: Mapping[str, float] | None = None, **weights: Any) -> None:
    """Raise `NonFiniteError` ("`where`: ...", one line) if a loss of `losses` (by name) is NaN or
    infinite, or a tensor of a keyword argument (a model, a state dict, a checkpoint payload) is."""
    for label, value in (losses or {}).items():
        if not math.isfinite(value):
            raise NonFiniteError(f"{where}: the {label} is {value}")
    for label, payload in weights.items():
        bad = nonfinite_names(payload)
        if bad:
            more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
            raise NonFiniteError(f"{where}: the {label.replace('_', ' ')} holds NaN or infinite values "
                                 f"({bad[0]}{more})")  # fmt: skip
