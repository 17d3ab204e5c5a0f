"""An optimizer's saved state, read from a file a user hands us, checked before torch takes it.

`torch.optim.Optimizer.load_state_dict` trusts its input: a moment of the wrong shape reaches the fused
Adam kernel, which writes past its buffers (a segmentation fault or worse, not an error), and a
missing or negative moment turns the next step's update into NaN. `load_optimizer_state` checks the
per-parameter state against the parameters it will update (every moment present, floating, finite,
of the parameter's shape; second moments non-negative; the step a finite count) and loads it with
the optimizer's own hyperparameters, which are the run's options, not the file's.
"""

from __future__ import annotations

import math
from typing import Any

import torch

# Hyperparameters that tell Adam and RMSprop apart in an optimizer's saved parameter groups.
_KIND_KEYS = frozenset({"betas", "amsgrad", "alpha", "centered", "momentum"})
# Moments that are running means of squares: negative values make the next step's square root NaN.
_SQUARES = frozenset({"exp_avg_sq", "max_exp_avg_sq", "square_avg"})


def state_keys(optimizer: torch.optim.Optimizer, group: dict[str, Any]) -> frozenset[str] | None:
    """The names a parameter's state holds after a step of `optimizer` with the hyperparameters of
    `group`, for Adam and RMSprop; None for another optimizer (its names are then not checked)."""
    if isinstance(optimizer, torch.optim.Adam):
        amsgrad = {"max_exp_avg_sq"} if group["amsgrad"] else set()
        return frozenset({"step", "exp_avg", "exp_avg_sq"} | amsgrad)
    if isinstance(optimizer, torch.optim.RMSprop):
        return frozenset({"step", "square_avg"} | ({"momentum_buffer"} if group["momentum"] > 0 else set())
                         | ({"grad_avg"} if group["centered"] else set()))  # fmt: skip
    return None


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _group_fits(group: Any, ours: dict[str, Any]) -> bool:
    """A saved parameter group of an optimizer of the same kind (Adam or RMSprop) and size as `ours`."""
    if not isinstance(group, dict) or not isinstance(group.get("params"), list):
        return False
    same_kind = not _KIND_KEYS & (set(group) ^ set(ours))
    return same_kind and len(group["params"]) == len(ours["params"]) and all(map(_is_index, group["params"]))


def _check_entry(entry: Any, param: torch.Tensor, expected: frozenset[str] | None, where: str) -> None:
    """One parameter's saved state: the names `expected` (where known), each moment a finite floating
    tensor of the parameter's shape, the step a finite non-negative number."""
    if not isinstance(entry, dict) or not all(isinstance(k, str) for k in entry):
        raise ValueError(f"{where} is not a dict of named values")
    if expected is not None and set(entry) != expected:
        raise ValueError(f"{where} holds {sorted(entry)}, expected {sorted(expected)}")
    for key, value in entry.items():
        if key == "step":
            count = value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value
            number = isinstance(count, (int, float)) and not isinstance(count, bool)
            if not number or not math.isfinite(count) or count < 0:
                raise ValueError(f"{where}: step is {value!r}, expected a finite count >= 0")
            continue
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ValueError(f"{where}: {key} is {type(value).__name__}, expected a floating-point tensor")
        if value.shape != param.shape:
            raise ValueError(f"{where}: {key} has shape {tuple(value.shape)}, the parameter "
                             f"{tuple(param.shape)}")  # fmt: skip
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{where}: {key} holds NaN or infinite values")
        if key in _SQUARES and bool((value < 0).any()):
            raise ValueError(f"{where}: {key}, a mean of squares, holds negative values")


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: Any, source: str) -> None:
    """The per-parameter state (moments, step counts) of `saved`, an `optimizer.state_dict()` read
    from `source`, into `optimizer`, checked first; a one-line ValueError naming `source` otherwise.
    The hyperparameters (learning rate, betas, ...) stay those `optimizer` was built with."""
    ours = optimizer.state_dict()["param_groups"]
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    state = saved.get("state") if isinstance(saved, dict) else None
    if not isinstance(groups, list) or not isinstance(state, dict) or len(groups) != len(ours) or not all(
        map(_group_fits, groups, ours)
    ):
        kind = type(optimizer).__name__
        raise ValueError(f"{source}: the optimizer state is not that of this run's {kind}")
    kept: dict[int, dict[str, Any]] = {}
    for group, live in zip(groups, optimizer.param_groups, strict=True):
        expected = state_keys(optimizer, live)
        for index, param in zip(group["params"], live["params"], strict=True):
            entry = state.get(index)
            if entry is None or (isinstance(entry, dict) and not entry):  # no step taken yet
                continue
            _check_entry(entry, param, expected, f"{source}: the optimizer's state of parameter {index}")
            kept[index] = entry
    ids = {i for group in groups for i in group["params"]}
    strays = [key for key in state if key not in ids]
    if strays:
        raise ValueError(f"{source}: the optimizer holds state for parameters {strays[:3]} it does not have")
    merged = [{**our, "params": group["params"]} for group, our in zip(groups, ours, strict=True)]
    optimizer.load_state_dict({"state": kept, "param_groups": merged})
