"""The checkpoints of train/adversarial.py as run states: their version, and the checks a checkpoint
read to resume a run or to start one from another (--init-from) passes before anything is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqgan_env.checkpoint import load_checkpoint
from seqgan_env.text import Vocabulary
from seqgan_env.token_lstm import TokenLSTMConfig
from train.config import Config
from train.run_folder import RunFolder

RUN_STATE_VERSION = 2  # what a checkpoint of this script holds beyond the env's models (Experiment.state)


def init_from_checkpoint(cfg: Config, vocabulary: Vocabulary | None) -> dict[str, Any]:
    """The checkpoint --init-from names (the run's pretrained.pt, else its mle.pt), checked against
    this run's sizes and vocabulary before anything is written."""
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
    return state


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
    if state["generator"]["config"] != want:
        raise ValueError(f"{path}: its generator was made with {state['generator']['config']}, this run "
                         f"needs {want}")  # fmt: skip
