"""Registration of the SeqGAN environment ids (idempotent; runs on `import seqgan_env`)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

# Plain keyword arguments only: gymnasium deep-copies registered kwargs on every make().
VARIANTS: dict[str, dict[str, Any]] = {
    # The paper's sizes: V 5000, T 20, N 16, the paper's generator and discriminator.
    "SeqGAN-v0": {},
    # For quick experiments: V 100, T 10, a small discriminator.
    "SeqGAN-Small-v0": {
        "vocab_size": 100, "seq_len": 10, "n_rollouts": 8, "discriminator_embed_dim": 16,
        "discriminator_filters": ((1, 32), (2, 32), (3, 32), (4, 32), (5, 32), (10, 32)),
    },
    # ScratchGAN's dense rewards at the paper's sizes: a prefix discriminator scores every step, no
    # Monte Carlo search (reward r_t = 2 sigmoid(D_t) - 1).
    "SeqGAN-Dense-v0": {"reward_mode": "dense"},
    # For tests and smoke runs: V 8, T 4.
    "SeqGAN-Tiny-v0": {
        "vocab_size": 8, "seq_len": 4, "n_rollouts": 4, "embed_dim": 8, "hidden_dim": 8,
        "discriminator_embed_dim": 8, "discriminator_filters": ((1, 8), (2, 8), (3, 8), (4, 8)),
    },
}  # fmt: skip


def register_envs() -> None:
    """Register every id in `VARIANTS` with its single and vector entry points, once."""
    for env_id, kwargs in VARIANTS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="seqgan_env.env:SeqGANEnv",
            vector_entry_point="seqgan_env.vector_env:SeqGANVectorEnv",
            kwargs=kwargs,
        )
