"""The presets of the SeqGAN experiment (train/adversarial.py's --preset), and what `--help` shows of an
option's default under them.

A preset sets many options and the command line overrides them. "paper" is the reference code's
schedule; "cpu" is what a 2-core CPU finishes in under 30 minutes, and every deviation from "paper" is
listed in the README; "dense" is the cpu preset's pre-training, then ScratchGAN's dense rewards
(docs/dense.md); "tiny" is a smoke test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from train.cli import default_text

CPU_PRESET: dict[str, Any] = {
    "mle_epochs": 20, "disc_embed_dim": 32, "disc_filters": "1:32,2:32,3:32,4:32,5:32,10:32,15:32,20:32",
    "disc_pretrain_repeats": 10, "disc_epochs": 1, "n_negatives": 4992, "disc_repeats": 1,
    "rounds": 50, "n_rollouts": 8,
}  # fmt: skip
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"precision": "auto"},
    "cpu": CPU_PRESET,
    # ScratchGAN's recipe on the cpu preset's pre-training: a prefix discriminator's dense rewards,
    # discounted returns with a moving-average baseline, Adam beta1 0.5, one discriminator step per
    # generator step on the generator's own batch against as many real sequences.
    "dense": {
        **CPU_PRESET, "reward_mode": "dense", "pg_batch_size": 512, "disc_batch_size": 1024,
        "n_negatives": 512, "disc_epochs": 1, "disc_repeats": 1, "disc_pretrain_repeats": 200,
        "disc_embed_dim": 64, "disc_lr": 1e-3, "gamma": 0.23, "baseline": "ema", "pg_lr": 1e-3,
        "pg_beta1": 0.5, "rounds": 200, "eval_every": 25, "diag_q_samples": 512,
    },
    "tiny": {
        "vocab_size": 50, "seq_len": 8, "n_real": 256, "n_test": 128, "batch_size": 16, "mle_epochs": 3,
        "mle_eval_every": 2, "disc_embed_dim": 8, "disc_filters": "1:8,2:8,4:8,8:8",
        "disc_pretrain_repeats": 2, "disc_epochs": 1, "n_negatives": 128, "rounds": 4, "n_rollouts": 4,
        "disc_repeats": 1, "eval_every": 2, "eval_samples": 256,
    },
}  # fmt: skip


def help_defaults(preset: str, defaults: Mapping[str, Any]) -> dict[str, str]:
    """`--help`'s default of each option a preset sets: its value under `preset`, then the others'
    (`defaults`: each option's value where a preset leaves it)."""
    shown = {}
    for name in sorted(set().union(*PRESETS.values())):
        value = {p: default_text(PRESETS[p].get(name, defaults[name])) for p in PRESETS}
        others = ", ".join(f"{p} {v}" for p, v in value.items() if p != preset)
        shown[name] = f"{value[preset]} with --preset {preset}; {others}"
    return shown


def preset_named(argv: list[str], default: str) -> str:
    """The preset an argument list names (so `--preset tiny --help` shows tiny's values), else `default`."""
    for i, arg in enumerate(argv):
        value = arg.removeprefix("--preset=") if arg.startswith("--preset=") else (
            argv[i + 1] if arg == "--preset" and i + 1 < len(argv) else None)
        if value in PRESETS:
            return value
    return default
