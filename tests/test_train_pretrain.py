"""train/pretrain.py end to end at tiny size: it writes the pre-training (mle.pt, pretrained.pt) and
nothing of the adversarial phase, and train/adversarial.py and train/sb3.py start from it."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

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

    script("adversarial", *TINY, "--init-from", str(pre), "--out", str(tmp_path), "--name", "adv")
    assert phases(tmp_path / "adv")[:2] == phases(pre)  # the pre-training's curve, not redone
    assert phases(tmp_path / "adv")[2:] == [("adversarial", "0"), ("adversarial", "2"), ("adversarial", "4")]
    adv_start = load_checkpoint(tmp_path / "adv" / "final.pt")["data"]["real"]
    assert adv_start.equal(state["data"]["real"])  # the same data

    script("sb3", "--pretrained", str(pre), "--threads", "1", "--rounds", "1", "--n-envs", "8",
           "--eval-samples", "64", "--n-negatives", "32", "--no-progress", "--out", str(tmp_path),
           "--name", "ppo")  # fmt: skip
    assert phases(tmp_path / "ppo") == [*phases(pre), ("adversarial", "0"), ("adversarial", "1")]
