"""An SB3 run from a pre-trained run folder, as train/sb3.py and train/compare.py make it: the checks of
its options against the source's sizes (before anything is written), then the run itself."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from agents.sb3 import algorithm_class, check_saved_model
from seqgan_env.token_lstm import TokenLSTMConfig
from train.allocator import keep_freed_memory
from train.config import Config
from train.run_folder import RunFolder
from train.sb3_config import SB3Config
from train.sb3_run import SB3Run, make_discriminator
from train.sources import load_pretrained


def check_sb3_run(cfg: SB3Config, source: dict[str, Any]) -> None:
    """What `cfg` needs of this machine and of the source run whose settings (config.json) are
    `source`: the algorithm's package, a --load model of the source's sizes (V, T, embedding, LSTM)
    and of --value-arch, --mask-tokens ids below V, --disc-filters that fit T.
    Raises ValueError, TypeError, FileNotFoundError or ImportError; writes nothing."""
    algorithm_class(cfg.algo)  # sb3-contrib present where needed
    vocab_size, seq_len = source["vocab_size"], source["seq_len"]
    if cfg.load is not None:
        space = spaces.Box(0, vocab_size, shape=(seq_len,), dtype=np.int64)
        sizes = TokenLSTMConfig(vocab_size, seq_len, source.get("gen_embed_dim", Config.gen_embed_dim),
                                source.get("gen_hidden_dim", Config.gen_hidden_dim))  # fmt: skip
        check_saved_model(cfg.algo, cfg.load, space, cfg.value_layers(), sizes)
    bad = [t for t in cfg.masked_tokens() if not 0 <= t < vocab_size]
    if bad:
        raise ValueError(f"--mask-tokens {bad} are not token ids in [0, {vocab_size})")
    make_discriminator(cfg, vocab_size, seq_len, torch.Generator(device="cpu"))  # --disc-filters fit T


def train_sb3(
    cfg: SB3Config, run: RunFolder, source: str | Path, started: Callable[[SB3Run], None] | None = None
) -> SB3Run:
    """The SB3 run into `run` (already created) from the pre-training of the run folder `source`:
    discriminator pre-training where the source has none, the rounds, the final outputs. `started`
    receives the run once it is built (to report how far it got, should it stop early); the run
    folder is released however the run ends."""
    keep_freed_memory()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    pre = load_pretrained(source)
    print(f"pre-trained generator from {pre.source}" + ("" if pre.discriminator is not None else
          "; no pre-trained discriminator there: pre-training one here"), flush=True)  # fmt: skip
    try:
        sb3_run = SB3Run(cfg, run, pre, pre.oracle())
        if started is not None:
            started(sb3_run)
        sb3_run.pretrain_discriminator()
        sb3_run.learn()
        sb3_run.finish()
    except BaseException:
        with contextlib.suppress(OSError):
            run.close()
        raise
    return sb3_run
