"""The environment's keyword arguments, checked once, and the models they describe.

`SeqGANEnv` and `SeqGANVectorEnv` take the same keyword arguments; `SeqGANConfig` is the one place
they are declared and checked (`__post_init__`, each argument on its own) and turned into models
(`build`, which checks how they fit together). The sizes V and T come from one source: the models
given or loaded where there are any, else the arguments, else the paper's.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from seqgan_env import arguments as check
from seqgan_env.arguments import ArgumentTypeError
from seqgan_env.checkpoint import load_env_models
from seqgan_env.core import REWARD_MODES
from seqgan_env.discriminator import Discriminator, DiscriminatorConfig, SequenceScorer, paper_filters
from seqgan_env.memory import check_memory
from seqgan_env.oracle import PAPER_EMBED, PAPER_SEQ_LEN, PAPER_VOCAB_SIZE, load_oracle, random_oracle
from seqgan_env.prefix_discriminator import (
    AnyDiscriminator,
    IncrementalScorer,
    PrefixDiscriminator,
    PrefixDiscriminatorConfig,
)
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig

# Every keyword of SeqGAN-v0 and its check (see seqgan_env.arguments); what a check cannot see alone
# (a size against V or T) `build` checks once the models are known.
_CHECKS: dict[str, check.Check] = {
    "vocab_size": check.optional(check.at_least(1)),
    "seq_len": check.optional(check.at_least(1)),
    "n_rollouts": check.at_least(1),
    "reward_mode": check.one_of(REWARD_MODES),
    "eos_id": check.optional(check.at_least(0)),  # and < V: checked in build()
    "start_token": check.at_least(0),  # and < V: checked by TokenLSTMConfig
    "embed_dim": check.at_least(1),
    "hidden_dim": check.at_least(1),
    "discriminator_embed_dim": check.at_least(1),
    "discriminator_filters": check.optional(check.filter_pairs),  # widths <= T: by DiscriminatorConfig
    "discriminator_hidden_dim": check.at_least(1),
    "discriminator_layer_norm": check.boolean,
    "oracle_seed": check.optional(check.seed),
    "oracle_path": check.optional(check.file_path),
    "checkpoint": check.optional(check.file_path),
    "vocabulary": check.optional(check.token_strings),  # and V tokens: checked in build()
    "device": check.device,
    "model_seed": check.optional(check.seed),
    "rollout_policy": check.optional(check.instance_of(TokenLSTM)),
    "discriminator": check.optional(check.instance_of((Discriminator, PrefixDiscriminator))),
    "scorer": check.optional(check.scorer),
}


@dataclass(frozen=True)
class SeqGANModels:
    """What an environment reads, built by `SeqGANConfig.build`: it never trains them."""

    rollout_policy: TokenLSTM  # its config holds V and T for the environment
    discriminator: AnyDiscriminator  # the paper's CNN, or a prefix discriminator (the dense mode's)
    scorer: SequenceScorer  # what scores complete sequences: the discriminator unless another was given
    oracle: TokenLSTM | None
    vocabulary: list[str] | None
    eos_id: int | None  # the argument's, else that of the checkpoint's text vocabulary


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
    discriminator_hidden_dim: int = 128
    discriminator_layer_norm: bool = True
    oracle_seed: int | None = 0
    oracle_path: str | os.PathLike[str] | None = None
    checkpoint: str | os.PathLike[str] | None = None
    vocabulary: Sequence[str] | None = None
    device: str | torch.device = "cpu"
    model_seed: int | None = 0
    rollout_policy: TokenLSTM | None = None
    discriminator: AnyDiscriminator | None = None
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

    def build(self, num_envs: int = 1) -> SeqGANModels:
        """Make (or load) the models the arguments describe for `num_envs` parallel prefixes, checking
        that they fit together and, before anything is allocated, in this machine's memory."""
        device = torch.device(self.device)
        policy, discriminator = self.rollout_policy, self.discriminator
        vocabulary, eos_id = self.vocabulary, self.eos_id
        if self.checkpoint is not None:
            if policy is not None or discriminator is not None:
                raise ValueError("pass either checkpoint= or rollout_policy=/discriminator=, not both")
            policy, discriminator, text_vocabulary = load_env_models(self.checkpoint)
            if text_vocabulary is not None:  # a run trained on text: its tokens and end-of-sequence
                vocabulary = text_vocabulary.tokens if vocabulary is None else vocabulary
                eos_id = text_vocabulary.eos_id if eos_id is None else eos_id
        V, T = self._sizes(policy, discriminator)
        made = {"policy": policy is None, "discriminator": discriminator is None,
                "oracle": self.oracle_path is None and self.oracle_seed is not None and vocabulary is None}
        check_memory(self._memory_terms(V, T, num_envs, **made))

        # One CPU generator draws the fresh models, the rollout policy first: the same weights on any device.
        init_rng = None
        if self.model_seed is not None:
            init_rng = torch.Generator(device="cpu").manual_seed(self.model_seed)
        if policy is None:
            policy_config = TokenLSTMConfig(V, T, self.embed_dim, self.hidden_dim, self.start_token)
            policy = TokenLSTM(policy_config, rng=init_rng)
        if discriminator is None and self.reward_mode == "dense":  # a prefix discriminator scores each step
            prefix_config = PrefixDiscriminatorConfig(V, T, self.discriminator_embed_dim,
                                                      self.discriminator_hidden_dim,
                                                      self.discriminator_layer_norm)  # fmt: skip
            discriminator = PrefixDiscriminator(prefix_config, rng=init_rng)
        elif discriminator is None:
            filters = paper_filters(T) if self.discriminator_filters is None else self.discriminator_filters
            pairs = tuple((int(width), int(n)) for width, n in filters)
            discriminator_config = DiscriminatorConfig(V, T, self.discriminator_embed_dim, pairs)
            discriminator = Discriminator(discriminator_config, rng=init_rng)
        scorer = discriminator if self.scorer is None else self.scorer
        if self.reward_mode == "dense" and not isinstance(scorer, IncrementalScorer):
            what = "scorer" if self.scorer is not None else "discriminator"
            raise ValueError(f"reward_mode 'dense' scores every prefix: the {what} must be a "
                             f"PrefixDiscriminator (or another IncrementalScorer), got "
                             f"{type(scorer).__name__}")  # fmt: skip
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
            oracle = random_oracle(V, T, seed=self.oracle_seed)
        discriminator = discriminator.to(device).eval()
        return SeqGANModels(
            rollout_policy=policy.to(device).eval(),
            discriminator=discriminator,
            scorer=scorer,
            oracle=None if oracle is None else oracle.to(device),
            vocabulary=None if vocabulary is None else list(vocabulary),
            eos_id=eos_id,
        )

    def _memory_terms(
        self, V: int, T: int, num_envs: int, policy: bool, discriminator: bool, oracle: bool
    ) -> dict[str, float]:
        """Bytes of the largest buffers, by the argument that sets them: the models made here (the
        rollout policy, the discriminator, the random oracle, where each is made), the cached logits
        and the Monte Carlo search's [num_envs * n_rollouts, V] sampling buffers (the dense mode: a
        prefix discriminator's LSTM, and no search)."""
        per_token = (self.embed_dim + self.hidden_dim + 1) * policy + (2 * PAPER_EMBED + 1) * oracle
        per_token += self.discriminator_embed_dim * discriminator
        if self.reward_mode == "dense":
            H = self.discriminator_hidden_dim
            return {
                "vocab_size": 4 * V * per_token,
                "discriminator_hidden_dim": 16 * H * (self.discriminator_embed_dim + H + 2) * discriminator,
                "num_envs": 4 * V * num_envs,
            }
        filters = paper_filters(T) if self.discriminator_filters is None else self.discriminator_filters
        n_filters = sum(int(n) for _, n in filters)
        convolutions = sum(int(n) * int(w) for w, n in filters) * self.discriminator_embed_dim
        convolutions += 2 * n_filters**2  # the highway layer
        return {
            "vocab_size": 4 * V * per_token,
            "discriminator_filters": 4 * convolutions * discriminator,
            "num_envs * n_rollouts": 4 * V * num_envs * (4 * self.n_rollouts + 1),
        }

    def _sizes(self, policy: TokenLSTM | None, discriminator: AnyDiscriminator | None) -> tuple[int, int]:
        """V and T: those of the given (or loaded) models, which must agree with each other and with
        vocab_size/seq_len where these are given (as arguments, or by a registered id's kwargs, e.g.
        SeqGAN-Tiny-v0's V 8, T 4); else the arguments'; else the paper's."""
        models = [model for model in (policy, discriminator) if model is not None]
        sizes = [(model.config.vocab_size, model.config.seq_len) for model in models]
        if not sizes:
            V = PAPER_VOCAB_SIZE if self.vocab_size is None else self.vocab_size
            return V, PAPER_SEQ_LEN if self.seq_len is None else self.seq_len
        from_file = self.checkpoint is not None
        source = f"checkpoint {self.checkpoint}" if from_file else "the given models"
        if len(set(sizes)) > 1:
            (V, T), (dV, dT) = sizes
            raise ValueError(f"{source}: rollout policy (V={V}, T={T}) and discriminator (V={dV}, T={dT}) "
                             f"disagree on sizes")  # fmt: skip
        V, T = sizes[0]
        wrong = [f"{name}={given}" for name, given, size in (("vocab_size", self.vocab_size, V),
                 ("seq_len", self.seq_len, T)) if given is not None and given != size]  # fmt: skip
        if wrong:
            if from_file:
                holds, kwarg, where = "holds models of", "checkpoint", "file"
            else:
                holds, kwarg, where = "have", "rollout_policy", "models"
            raise ValueError(
                f"{source} {holds} V={V}, T={T}, but {' and '.join(wrong)} came from the arguments or the "
                f"registered id's defaults: use gym.make('SeqGAN-v0', {kwarg}=...), which takes every size "
                f"from the {where}, or pass vocab_size={V}, seq_len={T}"
            )
        return V, T
