"""A training step's loss through `torch.compile`: fused kernels for the steps whose shapes are static.

A discriminator step at the paper's batch is bound by its many small kernels on a GPU (see
`cuda_graphs`); inductor fuses the element-wise work of the forward and backward passes (the
highway, dropout's masking, the loss, the L2 term, the autocast casts) into a few kernels, and on CUDA the
fused kernels are captured into the step's CUDA graph like any other. The loss is compiled for the
full minibatch only (`dynamic=False`: one specialised program); a ragged last batch runs the plain
loss. Random operators keep torch's own kernels (`fallback_random`), so a compiled step draws the
same dropout masks as a plain one and computes the same numbers up to float rounding.

Compiling takes seconds to a minute at the first step and needs a working backend (a C++ compiler
on a CPU, Triton on CUDA): the first use runs one forward and backward pass as a probe, with the
random state and the gradients put back, and a failure is said once and leaves the plain loss.
"""

from __future__ import annotations

import warnings
from typing import Protocol

import torch
from torch import nn

from seqgan_env.cuda_graphs import LossFn, StartsEmptyWhenCopied


class CompiledLoss(StartsEmptyWhenCopied):
    """A trainer's compiled loss, made at its first use and kept. A copy or a pickle of the trainer
    starts without it: a compiled program belongs to the module it was traced on."""

    def __init__(self) -> None:
        self.fn: LossFn | None = None


class UsesCompile(Protocol):
    """A trainer with a switch for compiling its loss (a backend that fails turns it off) and the
    compiled loss it keeps."""

    compiled: bool
    compiled_loss: CompiledLoss


def compiled_or_plain(
    owner: UsesCompile, what: str, model: nn.Module, loss_fn: LossFn, *examples: torch.Tensor
) -> LossFn:
    """`loss_fn` through `torch.compile` where `owner`'s switch is on (compiled on the first call, the
    `examples` being a full minibatch of the shapes it will see), else `loss_fn` itself. A backend
    that fails the probe turns the switch off, said once: `what` runs the plain loss from then on."""
    if not owner.compiled:
        return loss_fn
    if owner.compiled_loss.fn is None:
        compiled = torch.compile(loss_fn, dynamic=False, options={"fallback_random": True})
        try:
            _probe(model, compiled, examples)
        except Exception as err:  # any failure of the backend: compiling is an optimisation
            first_line = (str(err).strip() or type(err).__name__).splitlines()[0][:300]
            warnings.warn(f"{what} runs without torch.compile: compiling failed ({first_line})", stacklevel=3)
            owner.compiled = False
            return loss_fn
        owner.compiled_loss.fn = compiled
    return owner.compiled_loss.fn


def _probe(model: nn.Module, compiled: LossFn, examples: tuple[torch.Tensor, ...]) -> None:
    """One forward and backward pass of `compiled` in training mode (compiling both), leaving no trace:
    the device's random state and `model`'s gradients are put back."""
    device = examples[0].device
    cuda = device.type == "cuda"
    rng_state = torch.cuda.get_rng_state(device) if cuda else torch.get_rng_state()
    grads = {p: None if p.grad is None else p.grad.clone() for p in model.parameters()}
    training = model.training
    try:
        model.train()
        compiled(*examples).backward()
    finally:
        model.train(training)
        for p, grad in grads.items():
            p.grad = grad
        if cuda:
            torch.cuda.set_rng_state(rng_state, device)
        else:
            torch.set_rng_state(rng_state)
