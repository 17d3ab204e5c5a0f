"""A run that meets a non-finite number or a refused write stops with one line and exit code 1, and
leaves nothing non-finite and no temporary file behind (train/stopping.py); `signals_held` lets a
write finish before a signal stops the run. The NaN and the full disk arrive at a state the run
reaches (the N-th call of a function: conftest.run_injected), with valid options."""

from __future__ import annotations

import csv
import io
import math
import os
import re
import signal
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import run_injected
from test_signals import FAST, commands, metrics_without_time, run_commands, run_script

from seqgan_env.checkpoint import load_checkpoint
from seqgan_env.finite import nonfinite_names
from train.stopping import Interrupted, restore_signal_handlers, signals_held, stop_on_signals


def assert_nothing_non_finite_saved(folder: Path) -> None:
    """Every checkpoint in `folder` loads and holds finite tensors only; no temporary file is left;
    every score in metrics.csv is finite."""
    for path in folder.glob("*.pt"):
        assert nonfinite_names(load_checkpoint(path)) == [], path
    assert not list(folder.glob("*.tmp"))
    if (folder / "metrics.csv").is_file():
        with (folder / "metrics.csv").open() as f:
            for row in csv.DictReader(f):
                assert all(math.isfinite(float(row[k])) for k in ("nll_oracle", "nll_test")), row


NAN_STOPS = [
    ("agents.mle:MLETrainer.epoch", 2, "nanloss", [],
     r"MLE pre-training, epoch 2: the MLE loss is nan; nothing non-finite was saved \(it has no "
     r"checkpoint\)"),
    ("agents.mle:MLETrainer.epoch", 3, "nan:generator", [],
     r"MLE pre-training, epoch 3: the generator holds NaN or infinite values \(embedding\.weight\); nothing "
     r"non-finite was saved \(its last checkpoint is at 2 of 3 MLE epochs\)"),
    ("seqgan_env.wrappers:DiscriminatorUpdater.train", 2, "nan:discriminator", [],
     r"discriminator pre-training, set 2: the discriminator holds NaN or infinite values"),
    ("agents.reinforce:ReinforceAgent.update", 3, "nan:generator", [],
     r"adversarial round 3: the policy holds NaN or infinite values \(generator\.embedding\.weight\); "
     r"nothing non-finite was saved \(its last checkpoint is at 2 of 6 adversarial rounds\)"),
    ("seqgan_env.wrappers:DiscriminatorUpdater.train", 5, "nanloss", [],  # round 2's training
     r"adversarial round 2: the discriminator loss is nan"),
    ("agents.reinforce:ReinforceAgent.update", 1, "nan:generator", ["--mode", "constant"],
     r"adversarial round 1: the policy holds NaN"),
    ("agents.mle:ContinuedMLE.update", 2, "nan:trainer.generator", ["--mode", "mle"],
     r"adversarial round 2: the policy holds NaN"),
]  # fmt: skip


@pytest.mark.parametrize(("where", "call", "action", "options", "pattern"), NAN_STOPS,
                         ids=[f"{w.split(':')[1]}-{a}-{o}" for w, _, a, o, _ in NAN_STOPS])  # fmt: skip
def test_a_non_finite_number_stops_the_run_before_it_is_saved(
    tmp_path: Path, where: str, call: int, action: str, options: list[str], pattern: str
) -> None:
    result = run_injected(tmp_path, "adversarial", where, call, action,
                          [*FAST, *options, "--out", str(tmp_path), "--name", "run"])  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(f"error: {pattern}.*", line), line
    assert_nothing_non_finite_saved(tmp_path / "run")
    assert not (tmp_path / "run" / "final.pt").exists()


def test_sb3_stops_at_a_non_finite_policy_before_saving_it(tmp_path: Path) -> None:
    args = ["--algo", "ppo", "--pretrain-preset", "tiny", "--pretrain-args", " ".join(FAST[2:12]),
            "--threads", "1", "--rounds", "3", "--n-envs", "8", "--eval-every", "1", "--eval-samples", "128",
            "--n-negatives", "64", "--no-progress", "--out", str(tmp_path), "--name", "run"]  # fmt: skip
    result = run_injected(tmp_path, "sb3", "agents.sb3:SB3Learner.update", 2, "nan:model.policy", args)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: adversarial round 2: the policy holds NaN or infinite values"), line
    assert line.endswith("; nothing non-finite was saved"), line
    folder = tmp_path / "run"
    assert not (folder / "final.pt").exists()
    with zipfile.ZipFile(folder / "model.zip") as archive:  # round 1's policy
        assert nonfinite_names(torch.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)) == []
    assert_nothing_non_finite_saved(folder)


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    assert run_script("adversarial", [*FAST, "--out", str(out), "--name", "run"]).returncode == 0
    return out / "run"


def test_a_full_disk_stops_the_run_and_it_resumes_exactly(tmp_path: Path, whole: Path) -> None:
    """The disk fills while round 4's checkpoint is written (torch.save's 9th call: MLE epochs 2 and 3,
    mle.pt and latest.pt, set 2, pretrained.pt and latest.pt, round 2, round 4): one line naming the
    file, the temporary file gone, round 2's checkpoint intact; once there is space, the command given
    resumes the run to the uninterrupted run's numbers."""
    folder = tmp_path / "run"
    result = run_injected(tmp_path, "adversarial", "torch:save", 9, "enospc",
                          [*FAST, "--out", str(tmp_path), "--name", "run"])  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line == (f"error: No space left on device: {folder}/latest.pt after 4 of 6 adversarial rounds; "
                    "it resumes from its checkpoint at 2 of 6 adversarial rounds with: python "
                    f"train/adversarial.py --resume {folder}")  # fmt: skip
    assert not list(folder.glob("*.tmp")) and load_checkpoint(folder / "latest.pt")["progress"] == 2
    assert len(commands(line)) == 1
    run_commands(line)
    assert metrics_without_time(folder / "metrics.csv") == metrics_without_time(whole / "metrics.csv")


@pytest.fixture
def sigint(request: pytest.FixtureRequest) -> object:
    """SIGINT's handler set to the parameter for the test (the runner's own may be SIG_IGN, as in a
    shell's background job), and put back after it."""
    before = signal.signal(signal.SIGINT, request.param)
    yield request.param
    signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("sigint", [signal.default_int_handler], indirect=True)
def test_a_signal_waits_for_a_held_write_and_then_stops(sigint: object) -> None:
    done = []
    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals():
        with pytest.raises(Interrupted) as caught:
            with signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                done.append("written")  # the block goes on to its end
        assert done == ["written"] and caught.value.exit_code == 143 and caught.value.name == "SIGTERM"
        with pytest.raises(Interrupted) as caught:
            os.kill(os.getpid(), signal.SIGINT)
            done.append("not reached")
        assert done == ["written"] and caught.value.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is before  # restored


@pytest.mark.parametrize("sigint", [signal.SIG_IGN], indirect=True)
def test_a_signal_the_process_ignores_stays_ignored(sigint: object) -> None:
    """A run started with SIGINT ignored (`cmd &` in a script, `nohup`) is not stopped by it, as Python
    leaves it; SIGTERM still stops it, also after a library took the handlers and they were taken back."""
    with stop_on_signals():
        os.kill(os.getpid(), signal.SIGINT)  # ignored: nothing is raised
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as `ray.init` replaces them
        restore_signal_handlers()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        with pytest.raises(Interrupted) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
        assert caught.value.name == "SIGTERM"
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
