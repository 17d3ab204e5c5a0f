"""train/rllib.py's options (no Ray needed): SB3's names and defaults, checks, RLlib's settings."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest

from train.rllib_config import RLlibConfig, parse_rllib_config
from train.sb3_config import SB3Config

REPO = Path(__file__).resolve().parents[1]


def test_the_policy_gradient_options_are_sb3s_names_and_defaults():
    sb3 = {f.name: f for f in dataclasses.fields(SB3Config)}
    shared = [f for f in dataclasses.fields(RLlibConfig) if f.name in sb3]
    names = {"learning_rate", "n_epochs", "batch_size", "clip_range", "gae_lambda", "gamma", "ent_coef",
             "vf_coef", "max_grad_norm", "n_envs", "n_steps", "rounds", "n_rollouts", "reward", "diagnostics",
             "diag_samples", "diag_q_samples", "diag_repeats"}  # fmt: skip
    assert names <= {f.name for f in shared}
    for field in shared:
        if field.name not in ("algo", "name", "eval_every", "device", "threads"):
            assert field.default == sb3[field.name].default, field.name


def test_hyperparameters_map_to_rllibs_names():
    cfg = parse_rllib_config(["--learning-rate", "0.002", "--n-epochs", "3", "--clip-range", "0.1"])
    hyper = cfg.hyperparameters(rollout=1280, episodes=64)
    assert hyper["lr"] == 0.002 and hyper["num_epochs"] == 3 and hyper["clip_param"] == 0.1
    assert hyper["minibatch_size"] == 672  # SB3's 640 of 1280 rows: RLlib's batch has 64 more (masked)
    assert hyper["use_kl_loss"] is False
    assert math.isinf(hyper["vf_clip_param"])  # SB3's PPO clips no value
    assert "clip_param" not in parse_rllib_config(["--algo", "impala"]).hyperparameters(1280)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--num-env-runners", "3"], "must be a multiple of --num-env-runners"),
        (["--learning-rate", "nan"], "--learning-rate must be a finite number"),
        (["--learning-rate", "inf"], "--learning-rate must be a finite number"),
        (["--algo", "dqn"], "invalid choice"),
        (["--num-env-runners", "-1"], "--num-env-runners must be >= 0"),
        (["--gamma", "1.5"], "--gamma and --gae-lambda must lie in [0, 1]"),
        (["--name", "../x"], "--name must be a plain folder name"),
        (["--device", "cuda"], "invalid choice"),
        (["--value-arch", "64,x"], "--value-arch must be comma-separated sizes"),
        (["--reward", "bleu"], "invalid choice"),
        (["--diag-samples", "1"], "--diag-samples must be >= 2"),
    ],
)
def test_bad_options_are_one_line_errors(argv, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_rllib_config(argv)


def test_resume_refuses_options_that_contradict_the_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    settings = RLlibConfig(rounds=7).settings()
    (run / "config.json").write_text(__import__("json").dumps(settings))
    assert parse_rllib_config(["--resume", str(run), "--threads", "1"]).rounds == 7
    with pytest.raises(ValueError, match=r"--rounds 9 \(run has 7\)"):
        parse_rllib_config(["--resume", str(run), "--rounds", "9"])


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed here")
def test_the_script_says_how_to_install_ray_where_it_is_missing(tmp_path):
    script = str(REPO / "train" / "rllib.py")
    out = subprocess.run([sys.executable, script, "--out", str(tmp_path / "runs")], capture_output=True,
                         text=True, cwd=tmp_path, env={"PYTHONPATH": str(REPO)})  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert 'pip install -e ".[rllib]"' in out.stderr
    assert not (tmp_path / "runs").exists()


def test_a_pretrained_source_brings_its_own_pretraining_and_oracle(tmp_path: Path):
    """As train/sb3.py: with --pretrained the in-place pre-training's options are errors, and so is an
    --oracle other than the source's."""
    with pytest.raises(ValueError, match="--pretrain-preset applies to the in-place pre-training"):
        parse_rllib_config(["--pretrained", "runs/pre", "--pretrain-preset", "tiny"])
    source = tmp_path / "pre"
    source.mkdir()
    (source / "config.json").write_text('{"oracle": null, "vocab_size": 50, "seq_len": 8}')
    with pytest.raises(ValueError, match=r"--oracle o\.npz contradicts --pretrained"):
        parse_rllib_config(["--pretrained", str(source), "--oracle", "o.npz"])
    assert parse_rllib_config(["--pretrained", str(source)]).oracle is None
