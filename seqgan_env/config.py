"""The environment's constructor arguments, and the models they describe.

`SeqGANEnv` and `SeqGANVectorEnv` take the same keyword arguments; this dataclass is the one place
they are declared, validated and turned into models.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqgan_env.checkpoint import load_env_models
from seqgan_env.core import REWARD_MODES, SeqGANCore
from seqgan_env.devices import resolve_device
from seqgan_env.discriminator import (
    Discriminator,
    DiscriminatorConfig,
    SequenceScorer,
    paper_filters,
)
from seqgan_env.oracle import PAPER_SEQ_LEN, PAPER_VOCAB_SIZE, load_oracle, random_oracle
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig

# gymnasium.make re-raises a TypeError from an environment's constructor as
# type(err)(f"{err} was raised from the environment creator for ID with kwargs ({kwargs})"): every
# keyword's repr appended (a torch module's spans many lines).
_GYMNASIUM_SUFFIX = " was raised from the environment creator for "


class ArgumentTypeError(TypeError):
    """A constructor argument of the wrong type. Its message stays the one line it was raised with,
    also when `gymnasium.make` re-raises it with every keyword argument's repr appended."""

    def __init__(self, message: str) -> None:
        super().__init__(message.split(_GYMNASIUM_SUFFIX, 1)[0])


def _show(value: Any) -> str:
    """A value for an error message: its repr, shortened, and its type."""
    text = repr(value)
    if len(text) > 60 or "\n" in text:
        text = text.replace("\n", " ")[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _is_int(value: Any) -> bool:
    """A real integer: Python or numpy, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int(name: str, value: Any, low: int | None = None, high: int | None = None, what: str = "") -> int:
    """`value` as a Python int in [low, high), else a one-line error naming `name`."""
    expected = what or ("an int" + (f" >= {low}" if low is not None and high is None else "")
                        + (f" in [{low}, {high})" if low is not None and high is not None else ""))
    if not _is_int(value):
        raise ArgumentTypeError(f"{name} must be {expected}, got {_show(value)}")
    if (low is not None and value < low) or (high is not None and value >= high):
        raise ValueError(f"{name} must be {expected}, got {int(value)}")
    return int(value)


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """`check`, letting None through."""
    return lambda name, value: None if value is None else check(name, value)


def _at_least(low: int) -> Callable[[str, Any], int]:
    return lambda name, value: _int(name, value, low)


def _seed(name: str, value: Any) -> int:
    """A torch seed: an int in [-2**63, 2**64) (what `torch.Generator.manual_seed` accepts)."""
    return _int(name, value, -(2**63), 2**64, "an int seed in [-2**63, 2**64)")


def _reward_mode(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be one of {REWARD_MODES}, got {_show(value)}")
    if value not in REWARD_MODES:
        raise ValueError(f"{name} must be one of {REWARD_MODES}, got {value!r}")
    return value


def _filters(name: str, value: Any) -> tuple[tuple[int, int], ...]:
    """(width, n_filters) pairs of positive ints, at least one."""
    expected = "a non-empty sequence of (width, n_filters) pairs of ints >= 1"
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ArgumentTypeError(f"{name} must be {expected}, got {_show(value)}")
    if len(value) == 0:
        raise ValueError(f"{name} must be {expected}, got an empty {type(value).__name__}")
    pairs = []
    for pair in value:
        if isinstance(pair, (str, bytes)) or not isinstance(pair, (Sequence, np.ndarray)):
            raise ArgumentTypeError(f"{name} must be {expected}, got the element {_show(pair)}")
        if len(pair) != 2:
            raise ValueError(f"{name} must be {expected}, got the element {_show(pair)}")
        if not all(_is_int(x) for x in pair):
            raise ArgumentTypeError(f"{name} must be {expected}, got the pair {_show(pair)}")
        if not all(x >= 1 for x in pair):
            raise ValueError(f"{name} must be {expected}, got the pair {tuple(int(x) for x in pair)}")
        pairs.append((int(pair[0]), int(pair[1])))
    return tuple(pairs)


def _path(name: str, value: Any) -> str | os.PathLike[str]:
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentTypeError(f"{name} must be a file path (str or os.PathLike), got {_show(value)}")
    if os.fspath(value) == "":
        raise ValueError(f"{name} must be a file path, got an empty string")
    return value


def _vocabulary(name: str, value: Any) -> Sequence[str]:
    expected = "a sequence of token strings (one per id)"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ArgumentTypeError(f"{name} must be {expected}, got {_show(value)}")
    for i, token in enumerate(value):
        if not isinstance(token, str):
            raise ArgumentTypeError(f"{name} must be {expected}, got {_show(token)} at index {i}")
    return value


def _device(name: str, value: Any) -> torch.device:
    """A torch device of a kind this machine has (`resolve_device`)."""
    if not isinstance(value, (str, torch.device)):
        raise ArgumentTypeError(f"{name} must be a torch device string such as 'cpu' or 'cuda:0', got {_show(value)}")
    return resolve_device(value)


def _instance(cls: type) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if not isinstance(value, cls):
            raise ArgumentTypeError(f"{name} must be a {cls.__name__} (or None), got {_show(value)}")
        return value

    return check


def _scorer(name: str, value: Any) -> SequenceScorer:
    if not callable(getattr(value, "score", None)):
        raise ArgumentTypeError(f"{name} must be an object with a callable score(sequences) method, "
                                f"got {_show(value)}")  # fmt: skip
    return value


# Every keyword of SeqGAN-v0 and its check (None passes where the argument is optional); the checks
# raise a one-line TypeError (ArgumentTypeError) or ValueError naming the argument, the value and
# what was expected, and return the value normalised (numpy ints become ints).
_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "vocab_size": _optional(_at_least(1)),
    "seq_len": _optional(_at_least(1)),
    "n_rollouts": _at_least(1),
    "reward_mode": _reward_mode,
    "eos_id": _optional(_at_least(0)),  # and < V: checked in build(), where V is known
    "start_token": _at_least(0),  # and < V: checked by TokenLSTMConfig
    "embed_dim": _at_least(1),
    "hidden_dim": _at_least(1),
    "discriminator_embed_dim": _at_least(1),
    "discriminator_filters": _optional(_filters),  # widths <= T: checked by DiscriminatorConfig
    "oracle_seed": _optional(_seed),
    "oracle_path": _optional(_path),
    "checkpoint": _optional(_path),
    "vocabulary": _optional(_vocabulary),  # and V tokens: checked in build()
    "device": _device,
    "model_seed": _optional(_seed),
    "rollout_policy": _optional(_instance(TokenLSTM)),
    "discriminator": _optional(_instance(Discriminator)),
    "scorer": _optional(_scorer),
}


@dataclass
class SeqGANConfig:
    """Keyword arguments of SeqGAN-v0 (documented in `SeqGANEnv`'s docstring, "Arguments")."""

    vocab_size: int | None = None
    seq_len: int | None = None
    n_rollouts: int = 16
    reward_mode: str = "mc"
    eos_id: int | None = None
    start_token: int = 0
    embed_dim: int = 32
    hidden_dim: int = 32
    discriminator_embed_dim: int = 64
    discriminator_filters: Sequence[Sequence[int]] | None = None
    oracle_seed: int | None = 0
    oracle_path: str | None = None
    checkpoint: str | None = None
    vocabulary: Sequence[str] | None = None
    device: str = "cpu"
    model_seed: int | None = 0
    rollout_policy: TokenLSTM | None = None
    discriminator: Discriminator | None = None
    scorer: SequenceScorer | None = None

    def __post_init__(self) -> None:
        """Check every argument on its own (types and ranges); `build` checks how they fit together."""
        for f in fields(self):
            setattr(self, f.name, _CHECKS[f.name](f.name, getattr(self, f.name)))

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> SeqGANConfig:
        """The config of an environment's keyword arguments; an unknown keyword is a one-line error."""
        unknown = [key for key in kwargs if key not in _CHECKS]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), _CHECKS, n=1)
            hint = f"did you mean {close[0]}?" if close else "see SeqGANEnv's docstring, Arguments"
            raise ArgumentTypeError(f"unknown argument {unknown[0]!r} for SeqGAN-v0 ({hint})")
        return cls(**kwargs)

    def build(self) -> SeqGANParts:
        """Make (or load) the models the arguments describe, checking that they fit together."""
        device = torch.device(self.device)
        init = None if self.model_seed is None else torch.Generator(device="cpu").manual_seed(self.model_seed)

        policy, discriminator = self.rollout_policy, self.discriminator
        vocabulary, eos_id = self.vocabulary, self.eos_id
        if self.checkpoint is not None:
            if policy is not None or discriminator is not None:
                raise ValueError("pass either checkpoint= or rollout_policy=/discriminator=, not both")
            policy, discriminator, text_vocabulary = load_env_models(self.checkpoint)
            self._check_checkpoint_sizes(policy, discriminator)
            if text_vocabulary is not None:  # a run trained on text: its tokens and end-of-sequence
                vocabulary = text_vocabulary.tokens if vocabulary is None else vocabulary
                eos_id = text_vocabulary.eos_id if eos_id is None else eos_id
        V = self._size("vocab_size", PAPER_VOCAB_SIZE, policy, discriminator)
        T = self._size("seq_len", PAPER_SEQ_LEN, policy, discriminator)
        if policy is None:
            policy = TokenLSTM(
                TokenLSTMConfig(V, T, self.embed_dim, self.hidden_dim, self.start_token), generator=init
            )
        if discriminator is None:
            filters = paper_filters(T) if self.discriminator_filters is None else self.discriminator_filters
            config = DiscriminatorConfig(V, T, self.discriminator_embed_dim, tuple(map(tuple, filters)))
            discriminator = Discriminator(config, generator=init)
        if eos_id is not None and not 0 <= eos_id < V:
            raise ValueError(f"eos_id must be a vocabulary id in [0, {V}), got {eos_id}")
        if vocabulary is not None and len(vocabulary) != V:
            raise ValueError(f"vocabulary has {len(vocabulary)} tokens, the model has {V}")

        oracle = None
        if self.oracle_path is not None:
            oracle = load_oracle(Path(self.oracle_path), seq_len=T)
            if oracle.config.vocab_size != V:
                raise ValueError(
                    f"oracle file {self.oracle_path} has vocabulary {oracle.config.vocab_size}, "
                    f"the environment {V}"
                )
        elif self.oracle_seed is not None and vocabulary is None:  # text has no oracle
            oracle = random_oracle(V, T, seed=self.oracle_seed).to(device)
        return SeqGANParts(
            rollout_policy=policy.to(device).eval(),
            discriminator=discriminator.to(device).eval(),
            scorer=self.scorer,
            n_rollouts=self.n_rollouts,
            reward_mode=self.reward_mode,
            eos_id=eos_id,
            oracle=None if oracle is None else oracle.to(device),
            vocabulary=None if vocabulary is None else list(vocabulary),
        )

    def _size(
        self, name: str, default: int, policy: TokenLSTM | None, discriminator: Discriminator | None
    ) -> int:
        """A size given as an argument, else read from the given models, else the paper's; the models
        and the argument must agree."""
        given = getattr(self, name)
        found = {getattr(m.config, name) for m in (policy, discriminator) if m is not None}
        if len(found) > 1:
            raise ValueError(f"rollout policy and discriminator disagree on {name}: {sorted(found)}")
        if given is not None and found and given not in found:
            raise ValueError(f"{name}={given} does not match the given models' {name}={found.pop()}: "
                             f"pass models of that size, or leave {name} out")  # fmt: skip
        return given if given is not None else (found.pop() if found else default)

    def _check_checkpoint_sizes(self, policy: TokenLSTM, discriminator: Discriminator) -> None:
        """The checkpoint's models must agree with each other and with vocab_size/seq_len where given
        (as arguments, or by a registered id's kwargs, e.g. SeqGAN-Tiny-v0's V 8, T 4)."""
        V, T = policy.config.vocab_size, policy.config.seq_len
        d_sizes = (discriminator.config.vocab_size, discriminator.config.seq_len)
        if d_sizes != (V, T):
            raise ValueError(f"checkpoint {self.checkpoint}: its rollout policy (V={V}, T={T}) and discriminator "
                             f"(V={d_sizes[0]}, T={d_sizes[1]}) disagree on sizes")  # fmt: skip
        wrong = [f"{name}={given}" for name, given, size in (("vocab_size", self.vocab_size, V),
                 ("seq_len", self.seq_len, T)) if given is not None and given != size]  # fmt: skip
        if wrong:
            raise ValueError(
                f"checkpoint {self.checkpoint} holds models of V={V}, T={T}, but {' and '.join(wrong)} came from "
                f"the arguments or the registered id's defaults: use gym.make('SeqGAN-v0', checkpoint=...), which "
                f"takes every size from the file, or pass vocab_size={V}, seq_len={T}"
            )


@dataclass
class SeqGANParts:
    """The models an environment reads: it never trains them."""

    rollout_policy: TokenLSTM
    discriminator: Discriminator
    scorer: SequenceScorer | None
    n_rollouts: int
    reward_mode: str
    eos_id: int | None
    oracle: TokenLSTM | None
    vocabulary: list[str] | None


class SeqGANModels:
    """What both environment classes hold: the models, the batched MDP, and the env's torch RNG."""

    def _build(self, num_envs: int, kwargs: dict[str, Any]) -> None:
        parts = SeqGANConfig.from_kwargs(kwargs).build()
        self.rollout_policy = parts.rollout_policy
        self.discriminator = parts.discriminator
        self.oracle = parts.oracle
        self.vocabulary = parts.vocabulary
        # What scores complete sequences: the discriminator unless another scorer was plugged in.
        scorer = parts.discriminator if parts.scorer is None else parts.scorer
        self._core = SeqGANCore(
            num_envs, parts.rollout_policy, scorer, parts.n_rollouts, parts.reward_mode, parts.eos_id
        )
        self.vocab_size, self.seq_len = self._core.vocab_size, self._core.seq_len
        self.pad_id, self.eos_id = self._core.pad_id, parts.eos_id
        self.n_rollouts, self.reward_mode = parts.n_rollouts, parts.reward_mode
        # Every sample the environment draws comes from this generator, seeded from np_random.
        self._torch_rng = torch.Generator(device=self.rollout_policy.device)

    def _seed_torch_rng(self, np_random: np.random.Generator) -> None:
        self._torch_rng.manual_seed(int(np_random.integers(2**63 - 1)))
