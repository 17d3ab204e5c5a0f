"""train/adversarial.py resumes bit for bit: a run SIGKILLed anywhere (MLE, discriminator
pre-training, mid-round after the discriminator has trained, inside a checkpoint write) and resumed
writes the same metrics.csv as the run that was never interrupted, in every column but elapsed time.
Also: evaluation never moves training's random numbers, --init-from survives an early kill, and a
run folder is held by one process at a time."""

from __future__ import annotations

import csv
import gc
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HANG_GUARD, killer_command

from train.run_folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train" / "adversarial.py"
FAST = ["--preset", "tiny", "--threads", "1", "--n-real", "128", "--n-test", "64", "--eval-samples", "128",
        "--n-negatives", "64", "--disc-pretrain-repeats", "3", "--rounds", "6"]  # fmt: skip


def run_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> int:
    spec = importlib.util.spec_from_file_location("adversarial_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    code = module.main(list(args))
    err = capsys.readouterr().err
    assert code == 0 or err.startswith("error:"), err
    print(err, file=sys.stderr)
    return code


def metrics_without_time(folder: Path) -> list[dict[str, str]]:
    with (folder / "metrics.csv").open() as f:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    out = tmp_path_factory.mktemp("whole")
    code = subprocess.run([sys.executable, str(SCRIPT), *FAST, "--out", str(out), "--name", "run"],
                          capture_output=True, text=True, cwd=ROOT, timeout=HANG_GUARD).returncode
    assert code == 0
    return metrics_without_time(out / "run")


@pytest.mark.parametrize(
    ("where", "call"),
    [
        ("agents.mle:MLETrainer.epoch", 3),  # MLE epoch 3; the last checkpoint is at epoch 2
        ("seqgan_env.wrappers:DiscriminatorUpdater.train", 3),  # the third pre-training set
        ("agents.reinforce:ReinforceAgent.collect", 4),  # round 4, after round 3's discriminator training
        ("torch:save", 8),  # inside the write of latest.pt at round 4 (its metrics row already written)
    ],
)
def test_a_killed_run_resumes_bit_for_bit(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    uninterrupted: list[dict[str, str]],
    where: str,
    call: int,
) -> None:
    folder = kill_and_resume(tmp_path, capsys, where, call, FAST)
    assert metrics_without_time(folder) == uninterrupted


def kill_and_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, call: int, args: list[str]
) -> Path:
    """Run the script with `args` into tmp_path/run, SIGKILLed at the `call`-th call of `where`, then
    resume it in this process; the run folder."""
    command, env = killer_command(tmp_path, where, call, [*args, "--out", str(tmp_path), "--name", "run"])
    killed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=HANG_GUARD)
    assert killed.returncode == -9, killed.stderr  # SIGKILL
    folder = tmp_path / "run"
    if where == "torch:save":
        assert list(folder.glob(".latest.pt.*.tmp"))  # what the kill left behind
    assert run_in_process(capsys, "--resume", str(folder)) == 0
    assert not list(folder.glob("*.tmp"))
    return folder


def test_a_learned_value_baseline_resumes_bit_for_bit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The value baseline's head and its optimiser are part of the run's state."""
    args = [*FAST, "--baseline", "value", "--normalize", "--rounds", "4"]
    assert run_in_process(capsys, *args, "--out", str(tmp_path / "whole"), "--name", "run") == 0
    folder = kill_and_resume(tmp_path, capsys, "agents.reinforce:ReinforceAgent.collect", 4, args)
    assert metrics_without_time(folder) == metrics_without_time(tmp_path / "whole" / "run")


def test_evaluation_never_changes_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--eval-every 2 and --eval-every 4 train the same model: round 4 scores the same."""
    rows = {}
    for every in (2, 4):
        args = [
            *FAST, "--rounds", "4", "--eval-every", str(every), "--out", str(tmp_path), "--name", f"e{every}"
        ]
        assert run_in_process(capsys, *args) == 0
        rows[every] = {(r["phase"], r["step"]): r for r in metrics_without_time(tmp_path / f"e{every}")}
    assert ("adversarial", "2") in rows[2] and ("adversarial", "2") not in rows[4]
    for key in (("adversarial", "0"), ("adversarial", "4")):
        assert rows[2][key] == rows[4][key]


def test_init_from_survives_a_kill_before_the_first_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_in_process(capsys, *FAST, "--rounds", "0", "--out", str(tmp_path), "--name", "pre") == 0
    args = [*FAST, "--rounds", "2", "--mode", "constant", "--init-from", str(tmp_path / "pre"),
            "--out", str(tmp_path)]  # fmt: skip
    assert run_in_process(capsys, *args, "--name", "whole") == 0

    from agents.reinforce import ReinforceAgent

    def crash(*_: object, **__: object) -> None:
        raise KeyboardInterrupt  # killed in round 1: no latest.pt yet

    monkeypatch.setattr(ReinforceAgent, "collect", crash)
    with pytest.raises(KeyboardInterrupt):
        run_in_process(capsys, *args, "--name", "killed")
    gc.collect()  # the crashed run's objects, its folder lock among them (a killed process frees it)
    assert not (tmp_path / "killed" / "latest.pt").exists()
    monkeypatch.undo()
    assert run_in_process(capsys, "--resume", str(tmp_path / "killed")) == 0
    resumed = metrics_without_time(tmp_path / "killed")
    assert resumed == metrics_without_time(tmp_path / "whole")
    assert [r["phase"] for r in resumed][:2] == ["mle", "mle"]  # the source's MLE, not redone


def test_a_run_folder_is_held_by_one_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_in_process(capsys, *FAST, "--rounds", "0", "--out", str(tmp_path), "--name", "run") == 0
    holder = RunFolder(tmp_path / "run")
    holder.lock()  # another process's hold (flock conflicts across open files, in one process too)
    try:
        spec = importlib.util.spec_from_file_location("adversarial_script", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        before = sorted(p.name for p in (tmp_path / "run").iterdir())
        assert module.main(["--resume", str(tmp_path / "run")]) == 2
        assert "in use by another process" in capsys.readouterr().err
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before
    finally:
        holder.close()
    assert run_in_process(capsys, "--resume", str(tmp_path / "run")) == 0


def test_a_resumed_run_keeps_the_thread_count_it_recorded(tmp_path: Path) -> None:
    """The thread count can change how float sums split (on some CPUs the diagnostics' gradient norms
    differ between 1 and 2 threads), so config.json records it and --resume continues on it, whatever the
    resuming process's default (OMP_NUM_THREADS=1 here): torch runs on the recorded 2 threads and gives
    the uninterrupted run's numbers. An explicit --threads overrides it, and the resume line says so."""
    from conftest import HANG_GUARD, run_injected

    args = [*FAST[:2], "--threads", "2", *FAST[4:-4], "--disc-pretrain-repeats", "1", "--rounds", "4"]
    whole = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(tmp_path), "--name", "whole"],
                           capture_output=True, text=True, cwd=ROOT, timeout=HANG_GUARD)  # fmt: skip
    assert whole.returncode == 0, whole.stderr
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The resumed script run with its torch thread count printed as the process exits.
    reporting = ("import atexit, runpy, sys, torch; atexit.register(lambda: print('torch threads at exit', "
                 "torch.get_num_threads())); sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], "
                 "run_name='__main__')")  # fmt: skip
    for name, more, said, threads in [
        ("kept", [], "on 2 threads as recorded", 2),
        ("overridden", ["--threads", "1"], "on 1 threads as --threads asks (the run recorded 2: its numbers "
                                           "will differ from an uninterrupted run's)", 1),
    ]:  # fmt: skip
        killed = run_injected(tmp_path, "adversarial", "agents.reinforce:ReinforceAgent.collect", 3,
                              "SIGKILL", [*args, "--out", str(tmp_path), "--name", name])  # fmt: skip
        assert killed.returncode == -9, killed.stderr
        command = [sys.executable, "-c", reporting, str(SCRIPT), "--resume", str(tmp_path / name), *more]
        resumed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=one_thread,
                                 timeout=HANG_GUARD)
        assert resumed.returncode == 0, resumed.stderr
        assert f"resuming {tmp_path / name} at stage adversarial, 2 done, {said}" in resumed.stdout
        assert f"torch threads at exit {threads}\n" in resumed.stdout
    assert metrics_without_time(tmp_path / "kept") == metrics_without_time(tmp_path / "whole")


def test_a_resumed_auto_run_keeps_the_precision_it_began_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The checkpoint records the precision `--precision auto` chose; a resume on a machine that would
    choose the other one (here: the record flipped) goes on in the recorded one for the discriminator,
    and the generator's side (completions, MLE) in fp32, what `auto` gives it."""
    import torch

    from seqgan_env.checkpoint import load_checkpoint, save_checkpoint
    from seqgan_env.precision import resolve_precision
    from train.config import parse_config
    from train.stages import open_experiment

    args = [*FAST[:-1], "1", "--disc-pretrain-repeats", "1", "--mle-epochs", "1", "--precision", "auto"]
    assert run_in_process(capsys, *args, "--out", str(tmp_path), "--name", "run") == 0
    latest = RunFolder(tmp_path / "run").checkpoint("latest")
    state = load_checkpoint(latest)
    here = resolve_precision("auto", "cpu")
    assert state["precision"] == here
    for recorded in ("fp32", "bf16"):
        save_checkpoint(latest, {**state, "precision": recorded})
        exp = open_experiment(parse_config(["--resume", str(tmp_path / "run")]))
        try:
            assert [exp.precision, exp.discriminator.precision] == [recorded] * 2
            assert [exp.rollout_policy.precision, exp.mle.precision] == ["fp32"] * 2
            said = "precision: bf16 for the discriminator, fp32 for the generator's completions and MLE"
            assert (said in capsys.readouterr().out) == (recorded == "bf16")
        finally:
            exp.run.close()
        torch.set_num_threads(1)


def test_a_resumed_run_keeps_its_recorded_compile_unless_told_otherwise(tmp_path: Path) -> None:
    """--compile is recorded in config.json like the device and the thread count: a resume keeps it, an
    explicit --no-compile overrides it (not a config clash), and the resume line says the numbers will
    then differ in the last digits."""
    import dataclasses
    import json

    from train.config import Config, parse_config
    from train.reproducibility import compile_note

    recorded = dataclasses.replace(Config(preset="tiny"), compile=True).recorded_settings()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(recorded))
    assert parse_config(["--resume", str(tmp_path / "run")]).compile is True
    assert parse_config(["--resume", str(tmp_path / "run"), "--no-compile"]).compile is False
    assert compile_note(True, True) == compile_note(None, False) == ""
    said = compile_note(True, False)
    assert said == (", without --compile as asked (the run recorded --compile: its numbers will differ "
                    "from an uninterrupted run's in the last digits)")
