"""train/compare.py end to end on a tiny SeqGAN run: controls, temperatures, table, plot."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_compare_runs_the_controls_and_writes_plot_and_table(tmp_path: Path) -> None:
    tiny = ["--preset", "tiny", "--threads", "1", "--rounds", "2", "--eval-every", "1"]
    made = subprocess.run([sys.executable, str(ROOT / "train" / "adversarial.py"), *tiny,
                           "--out", str(tmp_path), "--name", "cmp_seqgan"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert made.returncode == 0, made.stderr
    compare = [sys.executable, str(ROOT / "train" / "compare.py"),
               "--seqgan-run", str(tmp_path / "cmp_seqgan"),
               "--temperatures", "0.8,1.0", "--extra", "--threads", "1"]  # fmt: skip
    result = subprocess.run(compare, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert result.returncode == 0, result.stderr

    # Same updates, started from the SeqGAN run's models; named as compare.py names its own runs.
    finals = [tmp_path / control / "final.pt" for control in ("cmp_constant", "cmp_mle")]
    assert all(f.is_file() for f in finals)
    folder = tmp_path / "cmp_seqgan"
    rows = list(csv.DictReader((folder / "comparison.csv").open()))
    methods = {r["method"] for r in rows}
    assert methods == {"SeqGAN", "REINFORCE, reward 1", "continued MLE", "MLE at temperature"}
    assert sorted(float(r["temperature"]) for r in rows if r["method"] == "MLE at temperature") == [0.8, 1.0]
    for method in ("SeqGAN", "REINFORCE, reward 1", "continued MLE"):  # rounds 0, 1, 2 of each
        assert [int(r["rounds"]) for r in rows if r["method"] == method] == [0, 1, 2]
    table = (folder / "comparison.md").read_text()
    assert table.startswith("| method |") and "continued MLE" in table
    assert (folder / "comparison.png").read_bytes().startswith(b"\x89PNG")

    # A second comparison (other temperatures) reuses the finished controls instead of re-running them.
    stamps = [f.stat().st_mtime_ns for f in finals]
    compare[compare.index("--temperatures") + 1] = "0.9"
    again = subprocess.run(compare, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert again.returncode == 0, again.stderr
    assert [f.stat().st_mtime_ns for f in finals] == stamps
    rows = list(csv.DictReader((folder / "comparison.csv").open()))
    assert [float(r["temperature"]) for r in rows if r["method"] == "MLE at temperature"] == [0.9]
