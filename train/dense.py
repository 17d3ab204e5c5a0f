"""The scripts' side of the dense reward mode (docs/dense.md): the prefix discriminator their options
describe. train/adversarial.py, train/sb3.py and train/rllib.py share it, so one set of `--disc-*`
options means the same model everywhere."""

from __future__ import annotations

from typing import Protocol

import torch

from seqgan_env.prefix_discriminator import PrefixDiscriminator, PrefixDiscriminatorConfig


class PrefixOptions(Protocol):
    """The options of a script that may make a prefix discriminator."""

    @property
    def disc_embed_dim(self) -> int: ...
    @property
    def disc_hidden_dim(self) -> int: ...
    @property
    def disc_layer_norm(self) -> bool: ...
    @property
    def disc_embed_dropout(self) -> float: ...
    @property
    def disc_l2(self) -> float: ...
    @property
    def disc_lr(self) -> float: ...
    @property
    def disc_beta1(self) -> float: ...
    @property
    def disc_beta2(self) -> float: ...


def prefix_config(cfg: PrefixOptions, vocab_size: int, seq_len: int) -> PrefixDiscriminatorConfig:
    """The prefix discriminator of the options `cfg` for V tokens and length T."""
    return PrefixDiscriminatorConfig(
        vocab_size, seq_len, cfg.disc_embed_dim, cfg.disc_hidden_dim, cfg.disc_layer_norm,
        cfg.disc_embed_dropout, cfg.disc_l2, cfg.disc_lr, cfg.disc_beta1, cfg.disc_beta2,
    )  # fmt: skip


def make_prefix_discriminator(
    cfg: PrefixOptions, vocab_size: int, seq_len: int, rng: torch.Generator | None
) -> PrefixDiscriminator:
    """A fresh prefix discriminator of the options `cfg` (initialised from the CPU generator `rng`)."""
    return PrefixDiscriminator(prefix_config(cfg, vocab_size, seq_len), rng=rng)
