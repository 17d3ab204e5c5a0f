"""train/pretrain.py end to end at tiny size: it writes the pre-training (mle.pt, pretrained.pt) and
nothing of the adversarial phase, and train/adversarial.py and train/sb3.py start from it."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HANG_GUARD

from seqgan_env.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "tiny", "--threads", "1", "--n-real", "128", "--n-test", "64", "--eval-samples", "128",
        "--n-negatives", "64"]  # fmt: skip


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(ROOT / "train" / f"{name}.py"), *args], capture_output=True,
                            text=True, cwd=ROOT, timeout=HANG_GUARD)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def phases(folder: Path) -> list[tuple[str, str]]:
    with (folder / "metrics.csv").open() as f:
        return [(r["phase"], r["step"]) for r in csv.DictReader(f)]


def test_pretraining_alone_then_each_learner_from_it(tmp_path: Path) -> None:
    out = script("pretrain", *TINY, "--out", str(tmp_path), "--name", "pre").stdout
    pre = tmp_path / "pre"
    assert "pretrained.pt" in out and phases(pre) == [("mle", "2"), ("mle", "3")]
    state = load_checkpoint(pre / "pretrained.pt")
    assert state["stage"] == "adversarial" and not (pre / "final.pt").exists()

    # Without repeating --preset tiny or the sizes: the run takes its source's preset, data and sizes.
    script("adversarial", "--threads", "1", "--no-progress", "--init-from", str(pre), "--out", str(tmp_path),
           "--name", "adv")  # fmt: skip
    config = json.loads((tmp_path / "adv" / "config.json").read_text())
    assert config["preset"] == "tiny" and config["vocab_size"] == 50 and config["n_real"] == 128
    assert phases(tmp_path / "adv")[:2] == phases(pre)  # the pre-training's curve, not redone
    assert phases(tmp_path / "adv")[2:] == [("adversarial", "0"), ("adversarial", "2"), ("adversarial", "4")]
    adv_start = load_checkpoint(tmp_path / "adv" / "final.pt")["data"]["real"]
    assert adv_start.equal(state["data"]["real"])  # the same data

    script("sb3", "--pretrained", str(pre), "--threads", "1", "--rounds", "1", "--n-envs", "8",
           "--eval-samples", "64", "--n-negatives", "32", "--no-progress", "--out", str(tmp_path),
           "--name", "ppo")  # fmt: skip
    assert phases(tmp_path / "ppo") == [*phases(pre), ("adversarial", "0"), ("adversarial", "1")]


@pytest.fixture(scope="module")
def pre(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny pre-training on the built-in oracle of seed 0."""
    out = tmp_path_factory.mktemp("pre")
    script("pretrain", *TINY, "--out", str(out), "--name", "pre")
    return out / "pre"


def main_of(name: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """train/NAME.py's main(argv) in this process (the error paths need no interpreter start-up):
    its exit code and stderr."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "train" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    code = module.main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--oracle-seed", "1"], "--oracle-seed 1 contradicts --init-from {pre}, made with --oracle-seed 0"),
        (["--n-real", "64"], "--n-real 64 contradicts --init-from {pre}, made with --n-real 128"),
        (["--vocab-size", "60"], "--vocab-size 60 contradicts"),
        (["--gen-hidden-dim", "16"], "--gen-hidden-dim 16 contradicts"),
        (["--oracle", "o.npz"], "--oracle o.npz contradicts --init-from {pre}, made with --oracle none"),
    ],
)
def test_a_run_from_another_refuses_other_data_oracle_or_sizes(
    pre: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """The source's data and oracle come with its models: scoring them against another oracle (or
    sizes) would be wrong, so the option that says so is named, in one line, before anything is written."""
    code, err = main_of("adversarial", ["--init-from", str(pre), *argv, "--out", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and message.format(pre=pre) in err, err
    assert not any(tmp_path.iterdir())


def test_sb3_follows_the_same_rule(pre: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """train/sb3.py --pretrained takes the source's oracle and pre-training: a different --oracle, or the
    in-place pre-training's options, are errors naming the option."""
    for argv, message in (
        (["--oracle", "o.npz"], f"--oracle o.npz contradicts --pretrained {pre}, made with --oracle none"),
        (["--pretrain-preset", "tiny"], f"--pretrain-preset applies to the in-place pre-training: "
                                        f"--pretrained {pre} brings its own"),
        (["--pretrain-args", "--mle-epochs 2"], "--pretrain-args applies to the in-place pre-training"),
    ):  # fmt: skip
        code, err = main_of("sb3", ["--pretrained", str(pre), *argv, "--out", str(tmp_path)], capsys)
        assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not any(tmp_path.iterdir())


def test_pretraining_options_are_pretrain_pys() -> None:
    """train/pretrain.py and an in-place pre-training (--pretrain-args) take only what pre-training reads."""
    from train.config import parse_config

    with pytest.raises(ValueError, match="unrecognized arguments: --rounds 3"):
        parse_config(["--preset", "tiny", "--rounds", "3"], pretraining=True)
    assert parse_config(["--preset", "tiny", "--mle-epochs", "2"], pretraining=True).mle_epochs == 2
