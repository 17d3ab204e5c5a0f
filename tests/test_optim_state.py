"""`load_optimizer_state`: a saved optimizer state is checked against the parameters before torch takes
it (torch's own `load_state_dict` passes a moment of any shape to the fused Adam kernel, which then
writes past its buffers), and the hyperparameters stay the optimizer's own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from seqgan_env.optim_state import load_optimizer_state


def stepped(kind: type[torch.optim.Optimizer] = torch.optim.Adam, **options: Any) -> torch.optim.Optimizer:
    """An optimizer over two parameters after one step (so that it has state)."""
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(4))]
    optimizer = kind(params, lr=0.1, **options)
    sum((p**2).sum() for p in params).backward()  # type: ignore[union-attr]
    optimizer.step()
    return optimizer


def fresh(kind: type[torch.optim.Optimizer] = torch.optim.Adam, **options: Any) -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(3, 4)), torch.nn.Parameter(torch.zeros(4))]
    return kind(params, lr=0.01, **options)


@pytest.mark.parametrize("kind", [torch.optim.Adam, torch.optim.RMSprop])
def test_a_valid_state_loads_as_torch_would_and_keeps_our_hyperparameters(
    kind: type[torch.optim.Optimizer],
) -> None:
    saved = stepped(kind).state_dict()
    ours = fresh(kind)
    load_optimizer_state(ours, saved, "file")
    for index, entry in saved["state"].items():
        for key, value in entry.items():
            assert torch.equal(ours.state_dict()["state"][index][key], value), key
    assert ours.param_groups[0]["lr"] == 0.01  # the run's option, not the file's 0.1


def moments(saved: dict[str, Any], key: str, value: Callable[[Any], Any]) -> None:
    for entry in saved["state"].values():
        entry[key] = value(entry[key])


CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("moment of another shape", lambda s: moments(s, "exp_avg", lambda _: torch.zeros(2, 2)),
     r"file: the optimizer's state of parameter 0: exp_avg has shape \(2, 2\), the parameter \(3, 4\)"),
    ("0-d moment", lambda s: moments(s, "exp_avg", lambda _: torch.tensor(1.0)), r"exp_avg has shape \(\)"),
    ("integer moment", lambda s: moments(s, "exp_avg", lambda m: m.long()),
     r"exp_avg is Tensor, expected a floating-point tensor"),
    ("NaN moment", lambda s: moments(s, "exp_avg", lambda m: m * float("nan")), r"exp_avg holds NaN"),
    ("negative second moment", lambda s: moments(s, "exp_avg_sq", lambda m: -m - 1),
     r"exp_avg_sq, a mean of squares, holds negative values"),
    ("step NaN", lambda s: moments(s, "step", lambda _: torch.tensor(float("nan"))), r"step is tensor\(na"),
    ("step negative", lambda s: moments(s, "step", lambda _: -3), r"step is -3, expected a finite count"),
    ("step a vector", lambda s: moments(s, "step", lambda _: torch.ones(7)), r"step is tensor"),
    ("a moment missing", lambda s: [e.pop("exp_avg_sq") for e in s["state"].values()],
     r"holds \['exp_avg', 'step'\], expected \['exp_avg', 'exp_avg_sq', 'step'\]"),
    ("an entry not a dict", lambda s: s["state"].update({0: 5}), r"parameter 0 is not a dict of named"),
    ("state of a stray parameter", lambda s: s["state"].update({"0": s["state"][0]}),
     r"holds state for parameters \['0'\] it does not have"),
    ("another optimizer", lambda s: s.update(stepped(torch.optim.RMSprop).state_dict()),
     r"file: the optimizer state is not that of this run's Adam"),
    ("groups missing", lambda s: s.pop("param_groups"), r"not that of this run's Adam"),
    ("another number of parameters", lambda s: s["param_groups"][0]["params"].pop(), r"not that of this"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_damaged_state_is_refused_and_nothing_loaded(
    edit: Callable[[dict[str, Any]], None], pattern: str
) -> None:
    saved = stepped().state_dict()
    edit(saved)
    ours = fresh()
    with pytest.raises(ValueError, match=pattern):
        load_optimizer_state(ours, saved, "file")
    assert ours.state_dict()["state"] == {}


def test_a_state_saved_before_any_step_loads() -> None:
    ours = fresh()
    load_optimizer_state(ours, fresh().state_dict(), "file")
    assert ours.state_dict()["state"] == {}
