"""Checks of the environment's keyword arguments, one per kind of value (`SeqGANConfig` holds the table).

A check takes the argument's name and value and returns the value normalised (numpy ints become ints),
or raises a one-line `ArgumentTypeError` (a `TypeError`) or `ValueError` naming the argument, the value
and what was expected. `optional(check)` lets None through.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from seqgan_env.devices import resolve_device
from seqgan_env.discriminator import SequenceScorer

Check = Callable[[str, Any], Any]

# gymnasium.make re-raises a TypeError from an environment's constructor as
# type(err)(f"{err} was raised from the environment creator for ID with kwargs ({kwargs})"): every
# keyword's repr appended (a torch module's spans many lines).
_GYMNASIUM_SUFFIX = " was raised from the environment creator for "


class ArgumentTypeError(TypeError):
    """A constructor argument of the wrong type. Its message stays the one line it was raised with,
    also when `gymnasium.make` re-raises it with every keyword argument's repr appended."""

    def __init__(self, message: str) -> None:
        super().__init__(message.split(_GYMNASIUM_SUFFIX, 1)[0])


def show(value: Any) -> str:
    """A value for an error message: its repr, shortened, and its type."""
    text = repr(value)
    if len(text) > 60 or "\n" in text:
        text = text.replace("\n", " ")[:57] + "..."
    return f"{text} ({type(value).__name__})"


def is_int(value: Any) -> bool:
    """A real integer: Python or numpy, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def integer(name: str, value: Any, low: int | None = None, high: int | None = None, what: str = "") -> int:
    """`value` as a Python int in [low, high), else a one-line error naming `name`."""
    if what:
        expected = what
    elif low is not None:
        expected = f"an int >= {low}" if high is None else f"an int in [{low}, {high})"
    else:
        expected = "an int"
    if not is_int(value):
        raise ArgumentTypeError(f"{name} must be {expected}, got {show(value)}")
    if (low is not None and value < low) or (high is not None and value >= high):
        raise ValueError(f"{name} must be {expected}, got {int(value)}")
    return int(value)


def optional(check: Check) -> Check:
    """`check`, letting None through."""
    return lambda name, value: None if value is None else check(name, value)


def at_least(low: int) -> Check:
    """An int >= `low`."""
    return lambda name, value: integer(name, value, low)


def seed(name: str, value: Any) -> int:
    """A torch seed: an int in [-2**63, 2**64) (what `torch.Generator.manual_seed` accepts)."""
    return integer(name, value, -(2**63), 2**64, "an int seed in [-2**63, 2**64)")


def one_of(choices: tuple[str, ...]) -> Check:
    """One of the strings `choices`."""

    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ArgumentTypeError(f"{name} must be one of {choices}, got {show(value)}")
        if value not in choices:
            raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        return value

    return check


def filter_pairs(name: str, value: Any) -> tuple[tuple[int, int], ...]:
    """(width, n_filters) pairs of positive ints, at least one."""
    expected = "a non-empty sequence of (width, n_filters) pairs of ints >= 1"
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ArgumentTypeError(f"{name} must be {expected}, got {show(value)}")
    if len(value) == 0:
        raise ValueError(f"{name} must be {expected}, got an empty {type(value).__name__}")
    pairs = []
    for pair in value:
        if isinstance(pair, (str, bytes)) or not isinstance(pair, (Sequence, np.ndarray)):
            raise ArgumentTypeError(f"{name} must be {expected}, got the element {show(pair)}")
        if len(pair) != 2:
            raise ValueError(f"{name} must be {expected}, got the element {show(pair)}")
        if not all(is_int(x) for x in pair):
            raise ArgumentTypeError(f"{name} must be {expected}, got the pair {show(pair)}")
        if not all(x >= 1 for x in pair):
            raise ValueError(f"{name} must be {expected}, got the pair {tuple(int(x) for x in pair)}")
        pairs.append((int(pair[0]), int(pair[1])))
    return tuple(pairs)


def file_path(name: str, value: Any) -> str | os.PathLike[str]:
    """A non-empty str or os.PathLike (whether the file exists is its loader's concern)."""
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentTypeError(f"{name} must be a file path (str or os.PathLike), got {show(value)}")
    if os.fspath(value) == "":
        raise ValueError(f"{name} must be a file path, got an empty string")
    return value


def token_strings(name: str, value: Any) -> Sequence[str]:
    """A sequence of strings, one per token id (not a single string)."""
    expected = "a sequence of token strings (one per id)"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ArgumentTypeError(f"{name} must be {expected}, got {show(value)}")
    for i, token in enumerate(value):
        if not isinstance(token, str):
            raise ArgumentTypeError(f"{name} must be {expected}, got {show(token)} at index {i}")
    return value


def device(name: str, value: Any) -> torch.device:
    """A torch device of a kind this machine has (`resolve_device`)."""
    if not isinstance(value, (str, torch.device)):
        raise ArgumentTypeError(
            f"{name} must be a torch device string such as 'cpu' or 'cuda:0', got {show(value)}"
        )
    return resolve_device(value)


def boolean(name: str, value: Any) -> bool:
    """A bool (Python or numpy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be True or False, got {show(value)}")
    return bool(value)


def instance_of(cls: type | tuple[type, ...]) -> Check:
    """An instance of `cls` (or of one of the classes of a tuple)."""
    names = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))

    def check(name: str, value: Any) -> Any:
        if not isinstance(value, cls):
            raise ArgumentTypeError(f"{name} must be a {names} (or None), got {show(value)}")
        return value

    return check


def scorer(name: str, value: Any) -> SequenceScorer:
    """An object with a callable `score(sequences)` method (`SequenceScorer`)."""
    if not callable(getattr(value, "score", None)):
        raise ArgumentTypeError(f"{name} must be an object with a callable score(sequences) method, "
                                f"got {show(value)}")  # fmt: skip
    return value
