"""SIGTERM and SIGINT stop every long-running script cleanly: one line saying where the run stopped
and the command that continues it, exit code 128 + the signal, no traceback; the command given then
finishes the run with the numbers of a run that was never interrupted (every metrics.csv column but
elapsed time). The signal arrives at a state the run reaches (the N-th call of a function, sent by the
process itself: conftest.run_injected), never after a delay. train/rllib.py's stop is tested in
tests/test_rllib.py, which CI runs where Ray is installed."""

from __future__ import annotations

import csv
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HANG_GUARD, ROOT, run_injected

PRE_FAST = ["--preset", "tiny", "--threads", "1", "--n-real", "128", "--n-test", "64",
            "--eval-samples", "128", "--n-negatives", "64", "--disc-pretrain-repeats", "3"]  # fmt: skip
FAST = [*PRE_FAST, "--rounds", "6"]  # train/pretrain.py takes only the pre-training's options


def metrics_without_time(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(f)]


def run_script(script: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "train" / f"{script}.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=HANG_GUARD)


def stopped_line(result: subprocess.CompletedProcess[str], signal_name: str) -> str:
    """The stop's one line (the last of stderr), after checking the exit code and that nothing else
    was said about it (no traceback)."""
    assert result.returncode == 128 + getattr(signal, signal_name), result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "KeyboardInterrupt" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"stopped by {signal_name} "), line
    return line


def commands(line: str) -> list[list[str]]:
    """The commands a stop line gives, in order, as argument lists run by this interpreter."""
    found = re.findall(r"(python \S+\.py.*?)(?:, then |$)", line)
    assert found, line
    return [[sys.executable, *shlex.split(text)[1:]] for text in found]


def run_commands(line: str) -> None:
    for command in commands(line):
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=HANG_GUARD)
        assert result.returncode == 0, (command, result.stderr[-3000:])


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted train/adversarial.py run (FAST) and, beside it, a train/pretrain.py one."""
    out = tmp_path_factory.mktemp("whole")
    assert run_script("adversarial", [*FAST, "--out", str(out), "--name", "run"]).returncode == 0
    assert run_script("pretrain", [*PRE_FAST, "--out", str(out), "--name", "pre"]).returncode == 0
    return out


ADVERSARIAL_STOPS = [
    ("SIGTERM", "agents.reinforce:ReinforceAgent.collect", 4, "after 3 of 6 adversarial rounds",
     "at 2 of 6 adversarial rounds"),
    ("SIGINT", "agents.mle:MLETrainer.epoch", 3, "after 2 of 3 MLE epochs", "at 2 of 3 MLE epochs"),
    ("SIGTERM", "seqgan_env.wrappers:DiscriminatorUpdater.train", 2,
     "after 1 of 3 discriminator pre-training sets", "at 0 of 3 discriminator pre-training sets"),
    # Inside the write of round 4's checkpoint (the 9th: MLE epochs 2 and 3, mle.pt and latest.pt, set 2,
    # pretrained.pt and latest.pt, round 2): the write finishes, then the run stops.
    ("SIGINT", "train.experiment:save_checkpoint", 9, "after 4 of 6 adversarial rounds",
     "at 4 of 6 adversarial rounds"),
]  # fmt: skip


@pytest.mark.parametrize(("signal_name", "where", "call", "stopped_at", "checkpoint"), ADVERSARIAL_STOPS)
def test_adversarial_stops_with_one_line_and_resumes_exactly(
    tmp_path: Path, whole: Path, signal_name: str, where: str, call: int, stopped_at: str, checkpoint: str
) -> None:
    folder = tmp_path / "run"
    result = run_injected(tmp_path, "adversarial", where, call, signal_name,
                          [*FAST, "--out", str(tmp_path), "--name", "run"])  # fmt: skip
    line = stopped_line(result, signal_name)
    assert line == (f"stopped by {signal_name} {stopped_at}; it resumes from its checkpoint {checkpoint} "
                    f"with: python train/adversarial.py --resume {folder}")  # fmt: skip
    assert not list(folder.glob("*.tmp"))
    run_commands(line)
    assert metrics_without_time(folder / "metrics.csv") == metrics_without_time(whole / "run" / "metrics.csv")


def test_pretrain_stops_with_one_line_and_resumes_exactly(tmp_path: Path, whole: Path) -> None:
    folder = tmp_path / "pre"
    result = run_injected(tmp_path, "pretrain", "seqgan_env.wrappers:DiscriminatorUpdater.train", 3,
                          "SIGTERM", [*PRE_FAST, "--out", str(tmp_path), "--name", "pre"])  # fmt: skip
    line = stopped_line(result, "SIGTERM")
    assert line.endswith(f"it resumes from its checkpoint at 2 of 3 discriminator pre-training sets with: "
                         f"python train/pretrain.py --resume {folder}")  # fmt: skip
    run_commands(line)
    assert metrics_without_time(folder / "metrics.csv") == metrics_without_time(whole / "pre" / "metrics.csv")
    assert (folder / "pretrained.pt").is_file()


SB3 = ["--algo", "ppo", "--pretrain-preset", "tiny", "--pretrain-args", " ".join(FAST[2:12]),
       "--threads", "1", "--rounds", "3", "--n-envs", "8", "--eval-every", "2", "--eval-samples", "128",
       "--n-negatives", "64", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def whole_sb3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole_sb3")
    assert run_script("sb3", [*SB3, "--out", str(out), "--name", "run"]).returncode == 0
    return out / "run"


@pytest.mark.parametrize(
    ("signal_name", "where", "call", "said"),
    [("SIGTERM", "agents.sb3:SB3Learner.collect", 3,
      "after 2 of 3 rounds; train/sb3.py does not resume a run (model.zip holds round 2's policy): start it "
      "again from the same pre-training with python train/sb3.py"),
     ("SIGINT", "agents.mle:MLETrainer.epoch", 2,
      "after 1 of 3 MLE epochs of the pre-training in {run}/pretrain; train/sb3.py does not resume a run: "
      "finish the pre-training with python train/pretrain.py --resume {run}/pretrain, then start the SB3 "
      "phase from it with python train/sb3.py")],
)  # fmt: skip
def test_sb3_stops_with_one_line_and_the_command_that_starts_it_again(
    tmp_path: Path, whole_sb3: Path, signal_name: str, where: str, call: int, said: str
) -> None:
    """An SB3 run does not resume; the command given starts it again from the same pre-training and
    gets the uninterrupted run's numbers."""
    folder = tmp_path / "run"
    result = run_injected(tmp_path, "sb3", where, call, signal_name,
                          [*SB3, "--out", str(tmp_path), "--name", "run"])  # fmt: skip
    line = stopped_line(result, signal_name)
    assert said.format(run=folder) in line, line
    run_commands(line)
    again = tmp_path / "run_again" / "metrics.csv"
    assert metrics_without_time(again) == metrics_without_time(whole_sb3 / "metrics.csv")


def test_compare_stops_with_one_line_and_the_commands_that_finish_it(tmp_path: Path) -> None:
    """Stopped in its second method's run: the commands given finish that run, then the comparison,
    which equals the uninterrupted one's."""
    args = ["--preset", "tiny", "--methods", "seqgan,constant", "--temperatures", "0.9,1.0",
            "--extra", *FAST[2:], "--rounds", "2", "--eval-every", "1"]  # fmt: skip
    whole = tmp_path / "whole"
    assert run_script("compare", [*args[:6], "--out", str(whole), *args[6:]]).returncode == 0
    out = tmp_path / "runs"
    # ReinforceAgent.collect's 4th call: the constant run's 2nd round (the SeqGAN run has 2)
    result = run_injected(tmp_path, "compare", "agents.reinforce:ReinforceAgent.collect", 4, "SIGTERM",
                          [*args[:6], "--out", str(out), *args[6:]])  # fmt: skip
    line = stopped_line(result, "SIGTERM")
    constant = out / "compare_tiny_s0_constant"
    assert f"in the constant run {constant} (after 1 of 2 adversarial rounds)" in line, line
    assert [c[1:4] for c in commands(line)] == [
        ["train/adversarial.py", "--resume", str(constant)],
        ["train/compare.py", "--seqgan-run", str(out / "compare_tiny_s0_seqgan")],
    ]
    run_commands(line)

    def table(folder: Path) -> list[dict[str, str]]:
        return metrics_without_time(folder / "compare_tiny_s0_seqgan" / "comparison.csv")

    assert table(out) == table(whole)


def test_probe_stops_with_one_line_and_the_command_that_runs_it_again(tmp_path: Path, whole: Path) -> None:
    args = ["--pretrained", str(whole / "pre"), "--repeats", "3", "--n-negatives", "64",
            "--eval-samples", "64", "--threads", "1"]  # fmt: skip
    whole_probe = run_script("probe_discriminator", [*args, "--out", str(tmp_path), "--name", "whole"])
    assert whole_probe.returncode == 0, whole_probe.stderr
    result = run_injected(tmp_path, "probe_discriminator", "seqgan_env.discriminator:Discriminator.fit", 2,
                          "SIGTERM", [*args, "--out", str(tmp_path), "--name", "probe"])  # fmt: skip
    line = stopped_line(result, "SIGTERM")
    assert "after 1 of 3 repeats (metrics.csv holds them); a probe does not resume: run it again with" in line
    assert len(metrics_without_time(tmp_path / "probe" / "metrics.csv")) == 1
    run_commands(line)
    again = metrics_without_time(tmp_path / "probe_again" / "metrics.csv")
    assert again == metrics_without_time(tmp_path / "whole" / "metrics.csv")


def test_sample_stops_with_one_line(tmp_path: Path, whole: Path) -> None:
    """SIGINT while train/sample.py prints its second chunk: the first 1024 lines are out, then the line."""
    result = run_injected(tmp_path, "sample", "seqgan_env.token_lstm:TokenLSTM.sample", 2, "SIGINT",
                          [str(whole / "run"), "-n", "2100", "--seed", "0"])  # fmt: skip
    assert stopped_line(result, "SIGINT") == "stopped by SIGINT after 1024 of 2100 sequences"
    assert len(result.stdout.splitlines()) == 1024
