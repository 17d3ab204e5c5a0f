"""The environment's constructor arguments, and the models they describe.

`SeqGANEnv` and `SeqGANVectorEnv` take the same keyword arguments; this dataclass is the one place
they are declared, validated and turned into models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqgan_env.checkpoint import load_env_models
from seqgan_env.core import REWARD_MODES, SeqGANCore
from seqgan_env.discriminator import (
    Discriminator,
    DiscriminatorConfig,
    SequenceScorer,
    paper_filters,
)
from seqgan_env.oracle import PAPER_SEQ_LEN, PAPER_VOCAB_SIZE, load_oracle, random_oracle
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig


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

    def build(self) -> SeqGANParts:
        """Validate the arguments and make (or load) the models they describe."""
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {self.reward_mode!r}")
        if self.n_rollouts < 1:
            raise ValueError(f"n_rollouts must be >= 1, got {self.n_rollouts}")
        device = torch.device(self.device)
        init = None if self.model_seed is None else torch.Generator().manual_seed(self.model_seed)

        policy, discriminator = self.rollout_policy, self.discriminator
        vocabulary, eos_id = self.vocabulary, self.eos_id
        if self.checkpoint is not None:
            if policy is not None or discriminator is not None:
                raise ValueError("pass either checkpoint= or rollout_policy=/discriminator=, not both")
            policy, discriminator, text_vocabulary = load_env_models(self.checkpoint)
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
            raise ValueError(f"{name}={given} does not match the loaded models' {name}={found.pop()}")
        value = given if given is not None else (found.pop() if found else default)
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
        return value


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
        parts = SeqGANConfig(**kwargs).build()
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
