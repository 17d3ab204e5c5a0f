"""train/adversarial.py end to end on the tiny preset: outputs, resume after a kill, bad input."""

from __future__ import annotations

import csv
import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import HANG_GUARD, killer_command

from seqgan_env import cuda_graphs, sampling
from seqgan_env.checkpoint import load_checkpoint
from seqgan_env.discriminator import Discriminator, one_product
from seqgan_env.env import SeqGANEnv

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train" / "adversarial.py"
# The tiny preset, smaller still: a run takes seconds.
FAST = ["--preset", "tiny", "--threads", "1", "--n-real", "128", "--n-test", "64", "--eval-samples", "128",
        "--n-negatives", "64"]  # fmt: skip


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=HANG_GUARD, cwd=ROOT
    )


def run_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess:
    """The script's main() in this process (no interpreter start-up): for the quick error paths."""
    spec = importlib.util.spec_from_file_location("adversarial_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    code = module.main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def read_metrics(folder: Path) -> list[dict[str, str]]:
    with (folder / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_tiny_run_writes_every_output(tmp_path: Path) -> None:
    result = run_script(*FAST, "--out", str(tmp_path), "--name", "run")
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "run"

    config = json.loads((folder / "config.json").read_text())
    assert config["preset"] == "tiny" and config["rounds"] == 4 and config["mode"] == "seqgan"

    rows = read_metrics(folder)
    phases = [(r["phase"], int(r["step"])) for r in rows]
    assert phases == [("mle", 2), ("mle", 3), ("adversarial", 0), ("adversarial", 2), ("adversarial", 4)]
    for r in rows:
        assert 0 < float(r["nll_oracle"]) < np.log(50) * 3 and float(r["nll_oracle_se"]) > 0
        assert 0 < float(r["nll_test"]) and float(r["nll_test_se"]) > 0
    # 8 MLE steps/epoch, then 1/round
    assert [int(r["generator_updates"]) for r in rows] == [16, 24, 24, 26, 28]

    for name in ("mle", "pretrained", "final", "latest"):
        state = load_checkpoint(folder / f"{name}.pt")
        assert {"generator", "rollout_policy", "discriminator", "metrics"} <= set(state)
    assert load_checkpoint(folder / "final.pt")["stage"] == "done"
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))

    assert list((folder / "tb").glob("events.out.tfevents.*"))
    png = (folder / "curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    samples = (folder / "samples.txt").read_text().splitlines()
    assert len(samples) == 100 and all(len(line.split()) == 8 for line in samples)
    assert all(0 <= int(tok) < 50 for line in samples for tok in line.split())
    assert "NLL-oracle" in result.stdout


def test_final_checkpoint_loads_into_the_env(tmp_path: Path) -> None:
    assert run_script(*FAST, "--rounds", "1", "--out", str(tmp_path), "--name", "r").returncode == 0
    path = tmp_path / "r" / "final.pt"
    env = SeqGANEnv(checkpoint=str(path))
    state = load_checkpoint(path)
    assert env.vocab_size == 50 and env.seq_len == 8
    for name, tensor in env.rollout_policy.state_dict().items():
        assert torch.equal(tensor, state["rollout_policy"]["state_dict"][name])
    for name, tensor in env.discriminator.state_dict().items():
        assert torch.equal(tensor, state["discriminator"]["state_dict"][name])
    env.reset(seed=0)
    _, reward, *_ = env.step(3)
    assert 0.0 <= reward <= 1.0


def test_kill_and_resume_keeps_every_evaluation_once(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    args = [*FAST, "--rounds", "12", "--eval-every", "2", "--out", str(tmp_path), "--name", "run"]
    # Killed between the round-6 evaluation and its checkpoint (the 8th checkpoint write: MLE epochs 2
    # and 3, mle.pt, discriminator set 2, pretrained.pt, rounds 2 and 4, then round 6): metrics.csv
    # already holds a round-6 row that the checkpoint, at round 4, does not, and the resumed run must
    # not write it twice.
    command, env = killer_command(tmp_path, "train.experiment:Experiment.save", 8, args)
    killed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=HANG_GUARD)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    killed_at = load_checkpoint(folder / "latest.pt")
    assert killed_at["stage"] == "adversarial" and killed_at["progress"] == 4
    assert ("adversarial", "6") in [(r["phase"], r["step"]) for r in read_metrics(folder)]

    result = run_script("--resume", str(folder))
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout
    rows = read_metrics(folder)
    keys = [(r["phase"], int(r["step"])) for r in rows]
    assert len(keys) == len(set(keys)), f"duplicate evaluation rows: {keys}"
    assert [s for p, s in keys if p == "adversarial"] == [0, 2, 4, 6, 8, 10, 12]
    assert [s for p, s in keys if p == "mle"] == [2, 3]  # the finished MLE stage was not redone
    final = load_checkpoint(folder / "final.pt")
    assert final["stage"] == "done" and final["generator_updates"] == 24 + 12
    env = SeqGANEnv(checkpoint=str(folder / "final.pt"))
    assert env.reset(seed=0)[0].shape == (8,)


def test_resume_with_a_different_config_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text(json.dumps({"preset": "tiny", "rounds": 4}))
    result = run_in_process(capsys, "--resume", str(tmp_path / "r"), "--rounds", "7")
    assert result.returncode == 2
    assert "different config" in result.stderr and "--rounds" in result.stderr


def test_existing_run_folder_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    result = run_in_process(capsys, *FAST, "--out", str(tmp_path), "--name", "r")
    assert result.returncode == 2 and "already exists" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]


# Each bad option, its one-line error, and nothing written: every case was either a traceback after the
# run folder was made, or accepted silently, before the options were validated in full.
BAD_OPTIONS = [
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--rounds", "-1"], "--rounds must be >= 0"),
    (["--preset", "huge"],
     "argument --preset: invalid choice: 'huge' (choose from 'paper', 'cpu', 'dense', 'tiny')"),
    (["--mode", "gail"], "argument --mode: invalid choice: 'gail' (choose from 'seqgan', 'constant', 'mle')"),
    (["--disc-filters", "3-100"], "--disc-filters"),
    (["--disc-filters", "30:10"], "do not fit sequences of length 8"),
    (["--disc-dropout", "2"], "--disc-dropout must be in [0, 1), got 2.0"),
    (["--disc-dropout", "-0.1"], "--disc-dropout must be in [0, 1)"),
    (["--rollout-update", "foo"], "argument --rollout-update: invalid choice: 'foo'"),
    (["--rollout-rate", "5"], "--rollout-rate must be in [0, 1), got 5.0"),
    (["--pg-lr", "nan"], "--pg-lr must be a finite number, got nan"),
    (["--mle-lr", "inf"], "--mle-lr must be a finite number, got inf"),
    (["--mle-lr", "0"], "--mle-lr must be in (0, 1], got 0"),
    (["--disc-lr=-1e-4"], "--disc-lr must be in (0, 1], got -0.0001"),
    (["--pg-lr", "1e30"], "--pg-lr must be in (0, 1], got 1e+30"),
    (["--mode", "constant", "--constant-reward", "1e38"],
     "--constant-reward must be in [-1e+06, 1e+06], got 1e+38"),
    (["--constant-reward=-1e7"], "--constant-reward must be in [-1e+06, 1e+06], got -1e+07"),
    (["--temperature", "nan"], "--temperature must be a finite number"),
    (["--temperature=-inf"], "--temperature must be a finite number"),
    (["--temperature", "0"], "--temperature must be >= 1e-06, got 0.0"),
    (["--temperature", "1e-40"], "--temperature must be >= 1e-06, got 1e-40"),
    (["--grad-clip", "inf"], "--grad-clip must be a finite number"),
    (["--constant-reward", "nan"], "--constant-reward must be a finite number"),
    (["--test-fraction", "nan"], "--test-fraction must be a finite number"),
    (["--seed", "-1"], "--seed must be in [0, 2**63 - 1], got -1"),
    (["--seed", "99999999999999999999"], "--seed must be in [0, 2**63 - 1]"),
    (["--oracle-seed", "-5"], "--oracle-seed must be in [0, 2**63 - 1]"),
    (["--threads", "-3"], "--threads must be >= 0, got -3"),
    (["--threads", "100000"], "--threads must be in [0, "),
    (["--device", "foo"], "device 'foo' is not a torch device name"),
    (["--device", "cuda:0x"], "is not a torch device name"),
    (["--device", "meta"], "device 'meta' is not supported"),
    (["--name", "../x"], "--name must be a plain folder name"),
    (["--name", "/abs/path"], "--name must be a plain folder name"),
    (["--name", "a/b/c"], "--name must be a plain folder name"),
    (["--name", ".."], "--name must be a plain folder name"),
    (["--name", ""], "--name must not be empty"),
    (["--name", "n" * 300], "--name must be at most 255 bytes (a file system's longest name), got 300"),
    (["--name", "é" * 128], "--name must be at most 255 bytes (a file system's longest name), got 256"),
    (["--init-from", "/nonexistent/run"], "--init-from /nonexistent/run: no such run folder"),
    (["--batch-size", "100000000"], "GiB: lower --batch-size"),
    (["--n-real", "100000000000"], "GiB: lower --n-real/--n-test/--n-negatives"),
    (["--eval-every", "0"], "--eval-every must be >= 1"),
    (["--n-rollouts", "0"], "--n-rollouts must be >= 1"),
    (["--mle-epochs", "-2"], "--mle-epochs must be >= 0"),
    (["--reward", "gan"], "argument --reward: invalid choice: 'gan'"),
    (["--level", "byte"], "argument --level: invalid choice: 'byte'"),
    (["--reward", "bleu", "--mode", "constant"], "--reward bleu rewards the seqgan mode"),
    (["--seq-len", "0"], "--seq-len must be >= 1"),
    (["--vocab-size", "-4"], "--vocab-size must be >= 1"),
    (["--diag-samples", "0"], "--diag-samples must be >= 2, got 0"),
    (["--diag-samples", "nan"], "argument --diag-samples: invalid int value: 'nan'"),
    (["--diag-q-samples=-3"], "--diag-q-samples must be >= 2, got -3"),
    (["--diag-repeats", "1"], "--diag-repeats must be >= 2, got 1"),
    (["--diag-samples", "100000000000"], "GiB: lower --diag-samples"),
    (["--diagnostics=yes"], "argument --diagnostics/--no-diagnostics: ignored explicit argument 'yes'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_OPTIONS)
def test_bad_options_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    result = run_in_process(capsys, *FAST, *args, "--out", str(tmp_path / "runs"))
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr  # one line
    assert not any(tmp_path.iterdir())  # nothing was created


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], device: str
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_in_process(capsys, *FAST, "--device", device, "--out", str(tmp_path / "runs"))
    assert result.returncode == 2 and "CUDA is not available" in result.stderr
    assert not any(tmp_path.iterdir())


def test_resume_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = run_in_process(capsys, "--resume", str(tmp_path / "none"))
    assert missing.returncode == 2 and "not a run folder" in missing.stderr
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    for flag in ("--name", "--out"):  # silently ignored before
        result = run_in_process(capsys, "--resume", str(folder), flag, "elsewhere")
        assert result.returncode == 2 and f"{flag} cannot apply" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_oracle_file_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = run_in_process(
        capsys, *FAST, "--oracle", str(tmp_path / "none.npz"), "--out", str(tmp_path / "o1")
    )
    assert missing.returncode == 2 and "oracle parameter file not found" in missing.stderr
    bad = tmp_path / "bad.npz"
    np.savez(bad, embedding=np.zeros((50, 4), np.float32))
    malformed = run_in_process(capsys, *FAST, "--oracle", str(bad), "--out", str(tmp_path / "o2"))
    assert malformed.returncode == 2 and "lacks oracle arrays" in malformed.stderr
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_help_explains_the_options() -> None:
    result = run_script("--help")
    assert result.returncode == 0
    for option in ("--preset", "--seed", "--oracle", "--device", "--out", "--resume", "--mode", "--rounds"):
        assert option in result.stdout


def test_same_seed_gives_the_same_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Data, initialisation, the env's Monte Carlo sampling and training all follow --seed."""
    for name in ("a", "b"):
        result = run_in_process(capsys, *FAST, "--rounds", "2", "--out", str(tmp_path), "--name", name)
        assert result.returncode == 0, result.stderr
    rows_a, rows_b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    drop = {"elapsed_s"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows_a] == [
        {k: v for k, v in r.items() if k not in drop} for r in rows_b
    ]


def test_a_run_in_the_forms_cuda_takes_on_the_cpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CUDA's forms (the discriminator's filters as one product, sampling by one cumulative sum a row)
    through whole runs on the CPU: the pre-training, then a run started from it (--init-from), whose new
    discriminator first scores (in inference mode: the round-0 evaluation, the rewards), then trains."""
    default = Discriminator.filter_groups

    def cuda_default(self: Discriminator) -> tuple[tuple[int, ...], ...]:
        return default.fget(self) if self._filter_groups is not None else one_product(len(self.convs))

    monkeypatch.setattr(Discriminator, "filter_groups", property(cuda_default, default.fset))
    monkeypatch.setattr(sampling, "cdf_block", lambda device: sys.maxsize)
    first = run_in_process(capsys, *FAST, "--rounds", "0", "--out", str(tmp_path), "--name", "pre")
    assert first.returncode == 0, first.stderr
    second = run_in_process(capsys, *FAST, "--rounds", "2", "--init-from", str(tmp_path / "pre"),
                            "--out", str(tmp_path), "--name", "run")  # fmt: skip
    assert second.returncode == 0, second.stderr
    rows = read_metrics(tmp_path / "run")
    assert [(r["phase"], int(r["step"])) for r in rows][-2:] == [("adversarial", 0), ("adversarial", 2)]
    assert all(np.isfinite(float(r["nll_oracle"])) for r in rows)
    assert 0 < float(rows[-1]["d_loss"]) < 10  # the discriminator trained


def test_a_compiled_run_is_the_plain_run_up_to_float_rounding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--compile: the discriminator's full-batch training steps through torch.compile. The run computes
    what the plain run does up to float rounding (the same dropout masks, the same sampled sequences),
    and config.json records it for a resume."""
    for name, more in (("plain", []), ("compiled", ["--compile"])):
        result = run_in_process(capsys, *FAST, "--rounds", "2", "--out", str(tmp_path), "--name", name, *more)
        assert result.returncode == 0, result.stderr
    assert "--compile: the discriminator's first training step compiles it" in result.stdout
    assert json.loads((tmp_path / "compiled" / "config.json").read_text())["compile"] is True
    plain, compiled = read_metrics(tmp_path / "plain"), read_metrics(tmp_path / "compiled")
    assert [(r["phase"], r["step"]) for r in compiled] == [(r["phase"], r["step"]) for r in plain]
    assert float(compiled[-1]["d_loss"]) != float(plain[-1]["d_loss"])  # it ran other kernels
    for row, plain_row in zip(compiled, plain, strict=True):
        for key, value in plain_row.items():
            if key == "elapsed_s" or value in ("", "nan") or not value[-1].isdigit():
                assert key == "elapsed_s" or row[key] == value, key  # times differ; empties and words do not
            else:
                assert float(row[key]) == pytest.approx(float(value), rel=1e-4, abs=1e-6), key


def test_a_run_with_its_cuda_graphs_stood_in_for_is_the_plain_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    """Every CUDA graph of a run replayed by the CPU's stand-in (tests/conftest.py): MLE's and the
    discriminator's training steps, kept across epochs, sets and rounds, and the Monte Carlo search
    of each prefix length, the env's and the diagnostics'. The run's metrics (the diagnostics' columns
    among them) are the plain run's, bit for bit."""
    args = [*FAST, "--rounds", "3", "--eval-every", "1", "--out", str(tmp_path)]
    assert run_in_process(capsys, *args, "--name", "plain").returncode == 0
    request.getfixturevalue("cuda_graphs_recorded_on_the_cpu")  # from here on, graphs are captured
    captures: list[object] = []
    graphed_step, function = cuda_graphs.GraphedTrainStep.__init__, cuda_graphs.GraphedFunction.__init__

    def counted(original: Any) -> Any:
        def init(self: object, *a: Any, **k: Any) -> None:
            captures.append(type(self).__name__)
            original(self, *a, **k)

        return init

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cuda_graphs.GraphedTrainStep, "__init__", counted(graphed_step))
        patch.setattr(cuda_graphs.GraphedFunction, "__init__", counted(function))
        result = run_in_process(capsys, *args, "--name", "graphed")
    assert result.returncode == 0, result.stderr
    # One step each for MLE and the discriminator (kept across epochs, sets and rounds), and each prefix
    # length's search (T - 1 = 7 at the tiny preset's length 8) twice: the env's, from the second round,
    # and the diagnostics', from the first evaluation's second estimate of Q
    assert captures.count("GraphedTrainStep") == 2 and captures.count("GraphedFunction") == 2 * 7, captures
    drop = {"elapsed_s"}
    rows = [[{k: v for k, v in r.items() if k not in drop} for r in read_metrics(tmp_path / name)]
            for name in ("plain", "graphed")]  # fmt: skip
    assert rows[0] == rows[1]
    adversarial = [r for r in rows[1] if r["phase"] == "adversarial"]
    assert len(adversarial) == 4 and all(r["q_signal_share"] and r["pg_centred_cos"] for r in adversarial)


def test_every_checkpoint_holds_the_rollout_policy_of_its_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pre-training checkpoints record beta = theta (the env built from them searches with the MLE
    generator, not the initial LSTM), and an ema rollout policy starts equal to the MLE generator."""
    args = [*FAST, "--rollout-update", "ema", "--rounds", "1", "--eval-every", "1", "--out", str(tmp_path)]
    assert run_in_process(capsys, *args, "--name", "run").returncode == 0
    folder = tmp_path / "run"
    for name in ("mle", "pretrained"):
        state = load_checkpoint(folder / f"{name}.pt")
        for key, value in state["generator"]["state_dict"].items():
            assert torch.equal(value, state["rollout_policy"]["state_dict"][key]), (name, key)
        env = SeqGANEnv(checkpoint=str(folder / f"{name}.pt"))
        assert torch.equal(
            env.rollout_policy.output.weight, state["generator"]["state_dict"]["output.weight"]
        )
    # One ema round: beta = 0.8 * theta_MLE + 0.2 * theta_1 (an ema from the MLE generator, not from the
    # initial LSTM).
    mle = load_checkpoint(folder / "pretrained.pt")["generator"]["state_dict"]
    final = load_checkpoint(folder / "final.pt")
    for key, beta in final["rollout_policy"]["state_dict"].items():
        expected = 0.8 * mle[key] + 0.2 * final["generator"]["state_dict"][key]
        torch.testing.assert_close(beta, expected, rtol=1e-5, atol=1e-6)


def test_oracle_reward_and_baselines_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--reward oracle (the perfect discriminator: no discriminator is trained) and the REINFORCE
    baseline options run end to end and are recorded in config.json."""
    oracle = run_in_process(capsys, *FAST, "--reward", "oracle", "--rounds", "2", "--out", str(tmp_path),
                            "--name", "oracle")  # fmt: skip
    assert oracle.returncode == 0, oracle.stderr
    folder = tmp_path / "oracle"
    assert not (folder / "pretrained.pt").exists()  # no discriminator pre-training
    mle, final = load_checkpoint(folder / "mle.pt"), load_checkpoint(folder / "final.pt")
    for key, value in final["discriminator"]["state_dict"].items():
        assert torch.equal(value, mle["discriminator"]["state_dict"][key]), key
    assert float(read_metrics(folder)[-1]["pg_loss"]) != 0
    for baseline in ("mean", "loo", "value"):
        args = [*FAST, "--baseline", baseline, "--normalize", "--rounds", "2", "--out", str(tmp_path)]
        assert run_in_process(capsys, *args, "--name", baseline).returncode == 0
        config = json.loads((tmp_path / baseline / "config.json").read_text())
        assert config["baseline"] == baseline and config["normalize"] is True
    bad = run_in_process(capsys, *FAST, "--reward", "oracle", "--mode", "mle", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "--reward oracle rewards the seqgan mode" in bad.stderr
