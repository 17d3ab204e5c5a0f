"""seqgan_env/compiled.py on the CPU: a compiled discriminator step against the plain one, a backend
that fails, copies."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from conftest import tiny_discriminator

from seqgan_env.discriminator import Discriminator, FilterGroups, one_product, per_filter


def data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` real and `n` fake tiny sequences (V 8, T 4)."""
    g = torch.Generator().manual_seed(2)
    return torch.randint(0, 8, (n, 4), generator=g), torch.randint(0, 8, (n, 4), generator=g)


def fitted(
    compiled: bool, fits: int = 2, groups: FilterGroups | None = None
) -> tuple[list[float], Discriminator, torch.Tensor]:
    """A tiny discriminator after `fits` calls of `fit` (2 epochs each of 76 rows: four full batches of
    16 and a ragged one of 12): its losses, itself, and the next draw of torch's default generator
    (dropout's). `groups`: the filters' products (None: the device's default)."""
    torch.manual_seed(5)
    disc = tiny_discriminator(seed=1)
    disc.compiled, disc.filter_groups = compiled, groups
    optimizer = disc.make_optimizer()
    real, fake = data(38)
    rng = torch.Generator().manual_seed(3)
    losses = [disc.fit(optimizer, real, fake, epochs=2, batch_size=16, rng=rng) for _ in range(fits)]
    return losses, disc, torch.rand(4)


@pytest.mark.parametrize("groups", [per_filter(4), one_product(4)], ids=["per filter", "one product"])
def test_a_compiled_fit_computes_the_plain_fit_up_to_float_rounding(groups):
    """The full batches through the compiled loss, the ragged last one through the plain loss: the same
    losses and weights up to float rounding, and the same dropout masks (torch's generator ends in the
    same state: compiled dropout draws from it as the plain one does); with the filters one product
    each (the CPU's form) or all as one (CUDA's)."""
    plain_losses, plain, plain_next = fitted(compiled=False, groups=groups)
    losses, disc, next_draw = fitted(compiled=True, groups=groups)
    assert disc.compiled and disc.compiled_loss.fn is not None  # it did compile, and kept it
    assert losses == pytest.approx(plain_losses, rel=1e-5)
    for p, q in zip(disc.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert torch.equal(next_draw, plain_next)


def test_copies_and_pickles_start_without_the_compiled_loss():
    """A compiled program belongs to the module it was traced on: a copy compiles its own."""
    _, disc, _ = fitted(compiled=True, fits=1)
    assert disc.compiled_loss.fn is not None
    for other in (copy.deepcopy(disc), pickle.loads(pickle.dumps(disc))):
        assert other.compiled and other.compiled_loss.fn is None
        torch.testing.assert_close(other.state_dict(), disc.state_dict())


class BackwardFails(torch.autograd.Function):
    """The identity whose backward fails, as a backend's lazily compiled backward pass can."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward compile failed")


@pytest.mark.parametrize("fails", ["compiling", "in the backward pass"])
def test_a_backend_that_fails_is_said_once_and_leaves_the_plain_fit_bit_for_bit(monkeypatch, fails):
    """A backend that cannot compile (no C++ compiler, no Triton): the probe warns once, turns the switch
    off and leaves no trace, not even the dropout draws of a forward pass that ran before the backward
    failed, so that the run is the plain run bit for bit."""
    attempts = []

    def broken_compile(fn, **kwargs):
        attempts.append(kwargs)
        if fails == "compiling":
            def run(*inputs):
                raise RuntimeError("BackendCompilerFailed: no compiler")
        else:
            def run(*inputs):
                return BackwardFails.apply(fn(*inputs))  # dropout draws, then a failing backward
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    plain_losses, plain, plain_next = fitted(compiled=False)
    said = "discriminator training runs without torch.compile: compiling failed"
    with pytest.warns(UserWarning, match=said):
        losses, disc, next_draw = fitted(compiled=True)
    assert not disc.compiled and disc.compiled_loss.fn is None and len(attempts) == 1
    assert attempts[0] == {"dynamic": False, "options": {"fallback_random": True}}
    assert losses == plain_losses and torch.equal(next_draw, plain_next)
    for p, q in zip(disc.parameters(), plain.parameters(), strict=True):
        assert torch.equal(p, q) and torch.equal(p.grad, q.grad)
