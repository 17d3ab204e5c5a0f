"""An SB3 run from a pre-trained run folder, as train/sb3.py and train/compare.py make it: the checks of
its options against the source's sizes (before anything is written), then the run itself."""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from agents.sb3 import algorithm_class, check_saved_model
from seqgan_env import memory
from seqgan_env.token_lstm import TokenLSTMConfig
from train.allocator import keep_freed_memory
from train.config import Config, parse_filters
from train.run_folder import RunFolder
from train.sb3_config import SB3Config
from train.sb3_run import SB3Run, make_discriminator
from train.sources import load_pretrained


def check_sb3_run(cfg: SB3Config, source: dict[str, Any]) -> None:
    """What `cfg` needs of this machine and of the source run whose settings (config.json) are
    `source`: the algorithm's package, a --load model of the source's sizes (V, T, embedding, LSTM)
    and of --value-arch, --mask-tokens ids below V that leave a token to choose, --disc-filters that
    fit T, and sizes that fit in memory (`check_sb3_memory`).
    Raises ValueError, TypeError, FileNotFoundError or ImportError; writes nothing."""
    algorithm_class(cfg.algo)  # sb3-contrib present where needed
    vocab_size, seq_len = source["vocab_size"], source["seq_len"]
    masked = cfg.masked_tokens()
    bad = [t for t in masked if not 0 <= t < vocab_size]
    if bad:
        raise ValueError(f"--mask-tokens {bad} are not token ids in [0, {vocab_size})")
    if len(set(masked)) == vocab_size:
        raise ValueError(f"--mask-tokens masks every token (all {vocab_size}): leave the policy at least one")
    made = make_discriminator(cfg, vocab_size, seq_len, torch.Generator(device="cpu"))  # --disc-filters: T
    check_sb3_memory(cfg, source, made.config.embed_dim + made.config.n_features)
    if cfg.load is not None:
        space = spaces.Box(0, vocab_size, shape=(seq_len,), dtype=np.int64)
        sizes = TokenLSTMConfig(vocab_size, seq_len, source.get("gen_embed_dim", Config.gen_embed_dim),
                                source.get("gen_hidden_dim", Config.gen_hidden_dim))  # fmt: skip
        check_saved_model(cfg.algo, cfg.load, space, cfg.value_layers(), sizes)


def check_sb3_memory(cfg: SB3Config, source: dict[str, Any], width: int) -> None:
    """Refuse sizes whose largest buffers cannot fit in this machine's memory (seqgan_env.memory, as
    train/sizes.py's `check_memory` does for train/adversarial.py), before anything is allocated; the
    error names the options that set the largest. The estimate counts the rollout buffer (a [T] prefix
    per step of each env, with maskable_ppo a [V] mask, with recurrent_ppo the LSTM states) and a
    minibatch's activations, the value MLP, the envs' Monte Carlo search (SeqGAN-v0's estimate of its
    [n_envs * n_rollouts, V] buffers), the negatives, the evaluation and, with --diagnostics, the
    diagnostics' buffers (`width`: the features per token of a discriminator made here; the source's,
    where larger)."""
    V, T = source["vocab_size"], source["seq_len"]
    E = source.get("gen_embed_dim", Config.gen_embed_dim)
    H = source.get("gen_hidden_dim", Config.gen_hidden_dim)
    rollout = (cfg.n_steps or T) * cfg.n_envs
    minibatch = min(cfg.batch_size or max(rollout // 2, 1), rollout)
    batch = "--batch-size" if 0 < cfg.batch_size < rollout else "--n-steps/--n-envs"
    entry = 8 * T + 32 + 4 * V * (cfg.algo == "maskable_ppo")  # a prefix and 6 numbers; a float mask
    entry += 16 * H * (cfg.algo == "recurrent_ppo")  # the actor's and the critic's LSTM states
    layers = [H, *cfg.value_layers(), 1]
    envs = "--n-envs" if cfg.reward_mode == "dense" else "--n-envs/--n-rollouts"  # as SeqGAN-v0 counts
    searched = cfg.n_rollouts if cfg.reward_mode in ("shaped", "mc") else 0  # the diagnostics' Q
    filters = parse_filters(source.get("disc_filters", "paper"), T)  # the source's discriminator
    width = max(width, source.get("disc_embed_dim", Config.disc_embed_dim) + sum(n for _, n in filters))
    terms: Counter[str] = Counter({  # bytes, by the options that set them
        "--n-steps/--n-envs": 2 * rollout * entry,  # the buffer, and its flattened copy for the updates
        "--value-arch": 16 * sum((a + 1) * b for a, b in itertools.pairwise(layers)),  # with Adam's state
        envs: 4 * V * cfg.n_envs * (1 if cfg.reward_mode == "dense" else 4 * cfg.n_rollouts + 1),
        "--n-negatives": 8 * T * (source.get("n_real", 0) + 2 * cfg.n_negatives),
        "--eval-samples": memory.sampling_bytes(cfg.eval_samples, V, T),
    })  # fmt: skip
    # a minibatch's logits and the two extractors' activations (policy and value), with their gradients
    terms[batch] += 4 * minibatch * (3 * V + 4 * (T + 1) * (E + 5 * H))
    terms["--value-arch"] += 8 * minibatch * sum(layers)
    if cfg.diagnostics:
        terms["--diag-samples"] = memory.activation_bytes(cfg.diag_samples, T, width)
        terms["--diag-q-samples/--n-rollouts" if searched else "--diag-q-samples"] = memory.q_matrix_bytes(
            cfg.diag_q_samples, V, T, searched)  # fmt: skip
    memory.check_memory(terms)


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
