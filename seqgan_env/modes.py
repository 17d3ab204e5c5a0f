"""A module's train/eval mode for the span of a block, the caller's mode restored after it: scoring
runs without dropout whatever mode training left a model in, and gradients taken outside a training
step get the train mode cuDNN's LSTM backward needs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def module_mode(module: nn.Module, training: bool) -> Iterator[None]:
    """`module` in train mode (`training` true) or eval mode inside the block; its mode before the
    block restored after it, also when the block raises."""
    was_training = module.training
    module.train(training)
    try:
        yield
    finally:
        module.train(was_training)
