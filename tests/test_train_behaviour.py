"""The training scripts' numbers, pinned: the same seed gives the same metrics.csv (every column but
elapsed time) as the recorded runs in tests/data/golden/, for train/adversarial.py's seqgan, constant
and mle modes and for train/sb3.py. A refactoring of train/ must leave them unchanged.

Float results depend in their last digits on the CPU's vector instructions (tests/data/golden/meta.json
names the recording's), so numbers are compared within a tolerance that float noise stays under and a
real change exceeds, on every machine. Measured against the AVX2 recording: another CPU kind moves the
numbers by about 1e-8, and torch with no vector instructions at all (ATEN_CPU_CAPABILITY=default) by at
most 2e-7 relative, 8e-6 absolute in a rank correlation; a learning rate 1% off, the discriminator's
(the smallest effect measured), moves the discriminator's loss by 9e-5 relative, the policy loss by
3e-4 and the rank correlations by 2e-4 absolute. After a change that is meant to change the numbers,
re-record them: `python tests/test_train_behaviour.py --write`.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import HANG_GUARD

from train.experiment import machine

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden"
TINY = ["--preset", "tiny", "--threads", "1", "--n-real", "128", "--n-test", "64", "--eval-samples", "128",
        "--n-negatives", "64"]  # fmt: skip
RUNS: dict[str, list[str]] = {
    "seqgan": ["adversarial.py", *TINY, "--mode", "seqgan"],
    "constant": ["adversarial.py", *TINY, "--mode", "constant"],
    "mle": ["adversarial.py", *TINY, "--mode", "mle"],
    "sb3_ppo": ["sb3.py", "--algo", "ppo", "--pretrain-preset", "tiny", "--pretrain-args", " ".join(TINY[2:]),
                "--threads", "1", "--rounds", "2", "--n-envs", "8", "--eval-every", "1",
                "--eval-samples", "128", "--n-negatives", "64", "--no-progress"],
}  # fmt: skip


def run_metrics(name: str, out: Path, more: list[str] | None = None) -> list[dict[str, str]]:
    """Run one recorded configuration (with options `more`) into `out`; its metrics rows without
    elapsed time."""
    script, *args = RUNS[name]
    args += more or []
    result = subprocess.run([sys.executable, str(ROOT / "train" / script), *args, "--out", str(out),
                             "--name", name],
                            capture_output=True, text=True, cwd=ROOT, timeout=HANG_GUARD)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    with (out / name / "metrics.csv").open() as f:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(f)]


def golden(name: str) -> list[dict[str, str]]:
    with (GOLDEN / f"{name}.csv").open() as f:
        return list(csv.DictReader(f))


RTOL, ATOL = 1e-5, 1e-5  # |x - recorded| <= ATOL + RTOL * |recorded|
RANK_ATOL = 1e-4  # rank statistics (Spearman, AUC): float noise can reorder two near-equal samples
RANK_COLUMNS = ("reward_oracle_spearman", "q_oracle_spearman", "d_auc")


def differences(rows: list[dict[str, str]], recorded: list[dict[str, str]]) -> list[str]:
    """The cells of `rows` beyond float noise of `recorded`'s: text exactly, numbers within the
    tolerance (NaN equals NaN), and the same rows and columns."""
    if [list(r) for r in rows] != [list(r) for r in recorded]:
        return [f"rows or columns differ: {[list(r) for r in rows]} vs {[list(r) for r in recorded]}"]
    found = []
    for i, (row, want) in enumerate(zip(rows, recorded, strict=True)):
        for key, value in want.items():
            try:
                x, y = float(row[key]), float(value)
            except ValueError:
                if row[key] != value:
                    found.append(f"row {i} {key}: {row[key]!r}, recorded {value!r}")
                continue
            atol = RANK_ATOL if key in RANK_COLUMNS else ATOL
            same = (math.isnan(x) and math.isnan(y)) or abs(x - y) <= atol + RTOL * abs(y)
            if not same:
                found.append(f"row {i} {key}: {row[key]}, recorded {value}")
    return found


@pytest.mark.parametrize("name", list(RUNS))
def test_metrics_equal_the_recorded_runs(tmp_path: Path, name: str) -> None:
    assert differences(run_metrics(name, tmp_path), golden(name)) == []


def test_the_comparison_tells_a_real_change_from_float_noise(tmp_path: Path) -> None:
    """The discriminator's learning rate 1% off (the option of smallest effect measured) fails the
    comparison; every number of the recording moved by 1e-7 relative (the noise of torch with no vector
    instructions) passes it."""
    recorded = golden("seqgan")
    changed = run_metrics("seqgan", tmp_path, ["--disc-lr", "0.000101"])
    assert any("d_loss" in cell for cell in differences(changed, recorded))

    def moved(text: str) -> str:
        try:
            return repr(float(text) * (1 + 1e-7))
        except ValueError:
            return text

    assert differences([{k: moved(v) for k, v in row.items()} for row in recorded], recorded) == []


def write() -> None:
    """Record every configuration's metrics (and this machine's description) in tests/data/golden/."""
    GOLDEN.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in RUNS:
            rows = run_metrics(name, Path(tmp))
            with (GOLDEN / f"{name}.csv").open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
            print(f"wrote {GOLDEN / name}.csv ({len(rows)} rows)")
    (GOLDEN / "meta.json").write_text(json.dumps(machine(), indent=2) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_train_behaviour.py --write   (re-record tests/data/golden/)")
    write()
