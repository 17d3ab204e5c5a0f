"""The scripts' side of the dense reward mode (docs/dense.md): the prefix discriminator their options
describe (train/adversarial.py, train/sb3.py and train/rllib.py share it, so one set of `--disc-*`
options means the same model everywhere), and train/compare.py's dense methods."""

from __future__ import annotations

from typing import Protocol

import torch

from seqgan_env.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.prefix_discriminator import AnyDiscriminator, PrefixDiscriminator, PrefixDiscriminatorConfig
from train.config import Config
from train.presets import PRESETS

# train/compare.py's methods of the dense reward mode and their labels.
DENSE_METHODS = {"dense": "dense rewards (ScratchGAN)",
                 "dense_constant": "REINFORCE, reward 1, dense run's batch"}  # fmt: skip


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


def run_discriminator(cfg: Config, cnn: DiscriminatorConfig, rng: torch.Generator) -> AnyDiscriminator:
    """train/adversarial.py's discriminator: a prefix discriminator of the --disc-* options with
    --reward-mode dense, else the CNN `cnn` (initialised from the CPU generator `rng`), its training
    steps compiled with --compile."""
    if cfg.reward_mode == "dense":
        return make_prefix_discriminator(cfg, cfg.vocab_size, cfg.seq_len, rng)
    discriminator = Discriminator(cnn, rng=rng)
    discriminator.compiled = cfg.compile
    return discriminator


def dense_options(method: str) -> tuple[list[str], list[str]]:
    """A dense method's train/adversarial.py options in train/compare.py: the dense preset's where they
    differ from the cpu preset's (its adversarial phase), to go before --dense-args; and what goes after
    them: for the control, a reward of 1 with no baseline and no discount (a baseline would cancel it)."""
    preset = ["--preset", "dense"]
    for key, value in PRESETS["dense"].items():
        if PRESETS["cpu"].get(key) != value:
            preset += [f"--{key.replace('_', '-')}", str(value)]
    after = ["--mode", "constant", "--baseline", "none", "--gamma", "0"] if method == "dense_constant" else []
    return preset, after
