"""The checkpoint format: a plain dict of configs and state dicts, loadable with `weights_only=True`.

```
{"format": "seqgan-env", "version": 1,
 "rollout_policy": {"config": TokenLSTMConfig dict, "state_dict": ...},   # optional
 "generator":      {"config": ..., "state_dict": ...},                    # optional
 "discriminator":  {"config": DiscriminatorConfig dict, "state_dict": ...},
 ... anything else a training script records (plain types and tensors only)}
```
The environment takes its rollout policy from "rollout_policy", or from "generator" where the file
has no separate rollout policy (the paper's rollout policy is the generator itself).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from seqgan_env.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.text import Vocabulary
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig

FORMAT = "seqgan-env"
VERSION = 1


def model_entry(model: TokenLSTM | Discriminator) -> dict[str, Any]:
    """The checkpoint entry of a model: its config as plain types and a CPU copy of its weights."""
    return {
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write `payload` (plus format and version) atomically: a crash leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, with clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    # Arbitrary bytes make torch's legacy reader fail in many ways (KeyError and IndexError included).
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError) as err:
        raise ValueError(f"{path} is not a seqgan-env checkpoint (torch.load failed: {err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a seqgan-env checkpoint (no format tag {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path} has checkpoint version {payload.get('version')}, expected {VERSION}")
    return payload


def token_lstm_from_entry(entry: dict[str, Any]) -> TokenLSTM:
    """Rebuild a token LSTM from its checkpoint entry."""
    model = TokenLSTM(TokenLSTMConfig(**entry["config"]))
    model.load_state_dict(entry["state_dict"])
    return model


def discriminator_from_entry(entry: dict[str, Any]) -> Discriminator:
    """Rebuild a discriminator from its checkpoint entry."""
    model = Discriminator(DiscriminatorConfig.from_dict(entry["config"]))
    model.load_state_dict(entry["state_dict"])
    return model.eval()


def load_env_models(path: str | Path) -> tuple[TokenLSTM, Discriminator, Vocabulary | None]:
    """The rollout policy and discriminator an environment needs, from a checkpoint file, and the
    vocabulary of a run trained on text (None for the synthetic benchmark)."""
    payload = load_checkpoint(path)
    policy_key = "rollout_policy" if "rollout_policy" in payload else "generator"
    for key in (policy_key, "discriminator"):
        if key not in payload:
            raise ValueError(f"{path} holds no {key!r} entry; keys present: {sorted(payload)}")
    vocabulary = Vocabulary.from_dict(payload["vocabulary"]) if "vocabulary" in payload else None
    return (
        token_lstm_from_entry(payload[policy_key]),
        discriminator_from_entry(payload["discriminator"]),
        vocabulary,
    )
