"""The checkpoints of train/adversarial.py as run states: their version, and the checks a checkpoint
read to resume a run or to start one from another (--init-from) passes before anything is written."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from seqgan_env.checkpoint import check_sequences, load_checkpoint
from seqgan_env.text import Vocabulary
from seqgan_env.token_lstm import TokenLSTMConfig
from train.config import Config
from train.run_folder import RunFolder

RUN_STATE_VERSION = 2  # what a checkpoint of this script holds beyond the env's models (Experiment.state)
STAGES = ("mle", "discriminator", "adversarial", "done")  # a run's stages, in order


def init_from_checkpoint(cfg: Config, vocabulary: Vocabulary | None) -> tuple[Path, dict[str, Any]]:
    """The checkpoint --init-from names (the run's pretrained.pt, else its mle.pt) and what it holds,
    checked against this run's sizes and vocabulary before anything is written."""
    assert cfg.init_from is not None
    source = RunFolder(cfg.init_from)
    if not source.path.is_dir():
        raise FileNotFoundError(f"--init-from {cfg.init_from}: no such run folder")
    path = source.checkpoint("pretrained")
    if not path.is_file():
        path = source.checkpoint("mle")
    if not path.is_file():
        raise FileNotFoundError(f"--init-from {cfg.init_from} holds no pre-training (neither pretrained.pt "
                                "nor mle.pt): let its MLE stage finish first")  # fmt: skip
    state = load_checkpoint(path)
    check_compatible(cfg, state, path, vocabulary)
    return path, state


def check_compatible(cfg: Config, state: dict[str, Any], path: Path, vocabulary: Vocabulary | None) -> None:
    """A checkpoint of this script whose generator has this run's shape and whose data has its
    vocabulary (text) or none (oracle)."""
    if state.get("run_state_version") != RUN_STATE_VERSION or "generator" not in state:
        raise ValueError(f"{path} was not written by this version of train/adversarial.py (run state "
                         f"{state.get('run_state_version')}, expected {RUN_STATE_VERSION})")  # fmt: skip
    ours = None if vocabulary is None else vocabulary.to_dict()
    if state.get("vocabulary") != ours:
        source = "an oracle" if "vocabulary" not in state else "a text corpus"
        raise ValueError(f"{path} was trained on {source} with another vocabulary than this run's")
    want = TokenLSTMConfig(cfg.vocab_size, cfg.seq_len, cfg.gen_embed_dim, cfg.gen_hidden_dim).to_dict()
    generator = state["generator"]
    if not isinstance(generator, dict) or generator.get("config") != want:
        made = generator.get("config") if isinstance(generator, dict) else generator
        raise ValueError(f"{path}: its generator was made with {made}, this run needs {want}")
    check_run_state(state, path, cfg.vocab_size, cfg.seq_len)


def check_run_state(state: dict[str, Any], path: Path, vocab_size: int, seq_len: int) -> None:
    """Every entry of a run state that a resume or --init-from reads, of its type (a one-line
    ValueError naming `path` otherwise), so that a damaged or hand-edited file fails here and not as a
    traceback in the middle of a run. The models' weights and the optimizers' moments are checked
    against the live models as they are loaded. (A later script's --pretrained reads less:
    `train.sources.load_pretrained` checks that.)"""

    def bad(what: str) -> ValueError:
        return ValueError(f"{path}: {what}")

    def require(where: dict[str, Any], key: str, kind: type | tuple[type, ...], name: str) -> Any:
        """`where[key]`, an instance of `kind` (never a bool)."""
        value = where.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise bad(f"{name} is {str(value)[:80]}, expected {getattr(kind, '__name__', 'a number')}")
        return value

    if state.get("stage") not in STAGES:
        raise bad(f"stage {state.get('stage')!r}, expected one of {', '.join(STAGES)}")
    for key in ("progress", "generator_updates"):
        if require(state, key, int, key) < 0:
            raise bad(f"{key} {state[key]}, expected a count >= 0")
    elapsed = require(state, "elapsed_s", (int, float), "elapsed_s")
    if not math.isfinite(elapsed) or elapsed < 0:
        raise bad(f"elapsed_s {elapsed}, expected a finite number of seconds >= 0")
    for key in ("generator", "rollout_policy", "discriminator"):
        require(require(state, key, dict, key), "state_dict", dict, f"{key}'s state_dict")
    optimizers = require(state, "optimizers", dict, "optimizers")
    for key in ("mle", "pg"):
        require(optimizers, key, dict, f"optimizers {key}")
    updater = require(state, "discriminator_updater", dict, "discriminator_updater")
    require(updater, "optimizer", dict, "the discriminator's optimizer")
    if state.get("value_baseline") is not None:
        value = require(state, "value_baseline", dict, "value_baseline")
        for key in ("state_dict", "optimizer"):
            require(value, key, dict, f"value_baseline {key}")
    rng = require(state, "rng", dict, "rng")
    require(rng, "device", str, "rng device")
    for key in ("train", "env", "torch", *(["cuda"] if rng.get("cuda") is not None else [])):
        saved = require(rng, key, torch.Tensor, f"rng {key}")
        if saved.dtype != torch.uint8 or saved.dim() != 1:
            raise bad(f"rng {key} is a {saved.dtype} tensor {tuple(saved.shape)}, expected a random "
                      "generator's state (uint8 [n])")  # fmt: skip
    data = require(state, "data", dict, "data")
    padded = "vocabulary" in state  # a text run's sequences end in padding
    for key in ("real", "test"):
        if len(check_sequences(data.get(key), vocab_size, seq_len, f"{path}: data {key}", padded)) == 0:
            raise bad(f"data {key} holds no sequences")
    ema = state.get("ema_baseline", 0.0)  # absent where no "ema" baseline ran
    if not ((isinstance(ema, torch.Tensor) and ema.numel() == 1) or type(ema) in (int, float)):
        raise bad(f"ema_baseline is {str(ema)[:40]}, expected a number")
    metrics = require(state, "metrics", list, "metrics")
    for row in metrics:
        if not (isinstance(row, dict) and isinstance(row.get("phase"), str) and type(row.get("step")) is int):
            raise bad(f"metrics row {str(row)[:80]}, expected a dict with a phase and a step")
