"""The dense reward mode through the scripts at tiny size: train/adversarial.py (end to end, the dense
diagnostics, an exact resume), train/sb3.py, train/compare.py's dense methods, the dense preset, and
the options' checks. (train/rllib.py's dense run is in tests/test_rllib.py, which needs Ray.)"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train_resume import kill_and_resume, metrics_without_time, run_in_process

from seqgan_env.checkpoint import load_checkpoint
from seqgan_env.env import SeqGANEnv
from seqgan_env.prefix_discriminator import PrefixDiscriminator
from train.config import parse_config
from train.diagnostics import DENSE_SIGNAL_FIELDS, SIGNAL_FIELDS
from train.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--preset", "tiny", "--threads", "1", "--n-real", "128", "--n-test", "64", "--eval-samples", "128",
        "--n-negatives", "64"]  # fmt: skip
DENSE = ["--reward-mode", "dense", "--baseline", "ema", "--gamma", "0.23", "--pg-beta1", "0.5",
         "--disc-lr", "1e-3", "--disc-batch-size", "32", "--disc-hidden-dim", "16",
         "--disc-pretrain-repeats", "3"]  # fmt: skip


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train" / f"{name}.py"), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=900)  # fmt: skip


def rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_a_tiny_dense_run_end_to_end(tmp_path: Path) -> None:
    result = script("adversarial", *FAST, *DENSE, "--out", str(tmp_path), "--name", "d")
    assert result.returncode == 0, result.stderr[-2000:]
    folder = tmp_path / "d"
    adversarial = [r for r in rows(folder) if r["phase"] == "adversarial"]
    assert [int(r["step"]) for r in adversarial] == [0, 2, 4]
    for r in adversarial:  # the dense diagnostics; no Monte Carlo columns
        assert -1 <= float(r["dense_oracle_spearman"]) <= 1 and 0 <= float(r["d_auc"]) <= 1
        assert r["q_signal_share"] == r["q_oracle_spearman"] == "" and float(r["pg_centred_norm"]) > 0
    final = load_checkpoint(folder / "final.pt")
    assert final["discriminator"]["kind"] == "prefix_discriminator"
    assert final["config"]["reward_mode"] == "dense" and final["ema_baseline"] != 0.0
    pretrained = load_checkpoint(folder / "pretrained.pt")
    assert any(not torch.equal(v, final["discriminator"]["state_dict"][k])  # trained in the rounds
               for k, v in pretrained["discriminator"]["state_dict"].items())  # fmt: skip
    env = SeqGANEnv(checkpoint=folder / "final.pt", reward_mode="dense", oracle_seed=None)
    assert isinstance(env.discriminator, PrefixDiscriminator)
    env.reset(seed=0)
    assert -1 <= env.step(0)[1] <= 1


def test_a_killed_dense_run_resumes_bit_for_bit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The moving-average baseline and the prefix discriminator are part of the run's state."""
    args = [*FAST, *DENSE, "--rounds", "4"]
    assert run_in_process(capsys, *args, "--out", str(tmp_path / "whole"), "--name", "run") == 0
    folder = kill_and_resume(tmp_path, capsys, "agents.reinforce:ReinforceAgent.collect", 4, args)
    assert metrics_without_time(folder) == metrics_without_time(tmp_path / "whole" / "run")


def test_the_dense_preset_keeps_the_cpu_presets_pre_training() -> None:
    dense, cpu = parse_config(["--preset", "dense"]), parse_config(["--preset", "cpu"])
    for key in ("mle_epochs", "batch_size", "n_real", "mle_lr", "gen_hidden_dim"):
        assert getattr(dense, key) == getattr(cpu, key), key
    assert dense.reward_mode == "dense" and dense.baseline == "ema" and dense.gamma == 0.23
    assert dense.pg_batch == 512 and dense.disc_batch == 1024 and dense.pg_beta1 == 0.5
    assert PRESETS["dense"]["n_negatives"] == dense.pg_batch  # the discriminator sees the round's batch


@pytest.mark.parametrize(("args", "message"), [
    (["--reward-mode", "dense", "--reward", "oracle"],
     "--reward-mode dense rewards with a prefix discriminator"),
    (["--gamma", "1.5"], "--gamma must be in [0, 1], got 1.5"),
    (["--disc-l2", "inf"], "--disc-l2 must be a finite number"),
    (["--disc-l2", "1e7"], "--disc-l2 must be in [0, 1e+06], got 1e+07"),
    (["--baseline-decay", "1"], "--baseline-decay must be in [0, 1)"),
    (["--pg-beta1", "1"], "--pg-beta1 must be in [0, 1)"),
    (["--pg-batch-size", "-1"], "--pg-batch-size must be >= 0"),
    (["--disc-embed-dropout", "nan"], "--disc-embed-dropout must be a finite number"),
])  # fmt: skip
def test_bad_dense_options_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run_in_process(capsys, *FAST, *args, "--out", str(tmp_path / "o")) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("diagnostics", "biggest"), [("--diagnostics", "--diag-q-samples"),
                                                       ("--no-diagnostics", "--batch-size")])  # fmt: skip
def test_the_memory_check_counts_no_search_where_the_rounds_make_none(diagnostics: str, biggest: str) -> None:
    """A dense run searches no completions, neither in its rounds nor in its diagnostics."""
    huge = ["--preset", "tiny", "--n-rollouts", str(10**9), diagnostics]
    assert parse_config([*huge, "--reward-mode", "dense"]).n_rollouts == 10**9
    with pytest.raises(ValueError, match=f"GiB: lower {biggest} "):
        parse_config(huge)  # the Monte Carlo mode searches 10**9 completions per prefix


def test_a_tiny_dense_sb3_run(tmp_path: Path) -> None:
    pretrain = " ".join(FAST[2:])
    result = script("sb3", "--algo", "ppo", "--pretrain-preset", "tiny", "--pretrain-args", pretrain,
                    "--threads", "1", "--rounds", "2", "--n-envs", "8", "--eval-every", "1", "--eval-samples",
                    "128", "--n-negatives", "64", "--no-progress", "--reward-mode", "dense",
                    "--gamma", "0.23", "--disc-hidden-dim", "16", "--out", str(tmp_path),
                    "--name", "s")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    adversarial = [r for r in rows(tmp_path / "s") if r["phase"] == "adversarial"]
    assert [int(r["step"]) for r in adversarial] == [0, 1, 2]
    assert all(r["dense_oracle_spearman"] != "" for r in adversarial)
    final = load_checkpoint(tmp_path / "s" / "final.pt")
    assert final["discriminator"]["kind"] == "prefix_discriminator"
    assert final["discriminator"]["config"]["hidden_dim"] == 16
    pretrained = load_checkpoint(tmp_path / "s" / "pretrain" / "pretrained.pt")
    assert "kind" not in pretrained["discriminator"]  # the source's CNN: a prefix one was made and trained


def test_compare_puts_dense_and_its_constant_control_on_the_plane(tmp_path: Path) -> None:
    result = script("pretrain", *FAST, "--out", str(tmp_path), "--name", "pre")
    assert result.returncode == 0, result.stderr[-2000:]
    dense_args = ("--pg-batch-size 16 --disc-batch-size 32 --n-negatives 16 --rounds 4 --eval-every 2 "
                  "--disc-pretrain-repeats 3 --diag-q-samples 16 --disc-hidden-dim 16")  # fmt: skip
    result = script("compare", "--pretrained", str(tmp_path / "pre"), "--methods", "dense,dense_constant",
                    "--dense-args", dense_args, "--temperatures", "0.8,0.9,1.0", "--extra", "--threads", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    dense = json.loads((tmp_path / "pre_dense_s0" / "config.json").read_text())
    control = json.loads((tmp_path / "pre_dense_constant_s0" / "config.json").read_text())
    assert dense["reward_mode"] == "dense" and dense["mode"] == "seqgan" and dense["pg_batch_size"] == 16
    assert control["mode"] == "constant" and control["baseline"] == "none" and control["gamma"] == 0
    for key in ("pg_batch_size", "pg_lr", "pg_beta1", "rounds", "eval_every"):  # the same batch and schedule
        assert control[key] == dense[key], key
    with (tmp_path / "pre" / "comparison_s0.csv").open() as f:
        table = list(csv.DictReader(f))
    methods = {r["method"] for r in table}
    labels = {"dense rewards (ScratchGAN) (" + dense_args + ")", "REINFORCE, reward 1, dense run's batch"}
    assert labels <= methods
    for r in table:
        if r["method"] != "MLE at temperature":
            assert float(r["below_curve_se"]) > 0
    md = (tmp_path / "pre" / "comparison_s0.md").read_text()
    assert "| below the curve, after round | 0 | 2 | 4 |" in md


def test_the_signal_columns_of_a_dense_run_extend_the_others() -> None:
    assert not set(DENSE_SIGNAL_FIELDS) & set(SIGNAL_FIELDS)
