"""The training scripts' numbers, pinned: the same seed gives the same metrics.csv (every column but
elapsed time) as the recorded runs in tests/data/golden/, for train/adversarial.py's seqgan, constant
and mle modes and for train/sb3.py. A refactoring of train/ must leave them unchanged.

Float results depend on the CPU's vector instructions and torch's version, so the comparison runs
where they match the recording (tests/data/golden/meta.json) and is skipped elsewhere. After a change
that is meant to change the numbers, re-record them: `python tests/test_train_behaviour.py --write`.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import HANG_GUARD

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


def machine() -> dict[str, str]:
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}


def run_metrics(name: str, out: Path) -> list[dict[str, str]]:
    """Run one recorded configuration into `out`; its metrics rows without elapsed time."""
    script, *args = RUNS[name]
    result = subprocess.run([sys.executable, str(ROOT / "train" / script), *args, "--out", str(out),
                             "--name", name],
                            capture_output=True, text=True, cwd=ROOT, timeout=HANG_GUARD)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    with (out / name / "metrics.csv").open() as f:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(f)]


def golden(name: str) -> list[dict[str, str]]:
    with (GOLDEN / f"{name}.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", list(RUNS))
def test_metrics_equal_the_recorded_runs(tmp_path: Path, name: str) -> None:
    recorded = json.loads((GOLDEN / "meta.json").read_text())
    if recorded != machine():
        pytest.skip(f"recorded on {recorded}, this machine is {machine()}: floats may differ")
    assert run_metrics(name, tmp_path) == golden(name)


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
