"""train/compare.py: the distance below the temperature curve on hand examples, and every method end to
end on a tiny SeqGAN run (table, plot, reuse of finished runs, bad options refused before any run)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import HANG_GUARD, case_id

from train.comparison import MethodRun, below_curve, check_reusable, frontier

ROOT = Path(__file__).resolve().parents[1]


def pt(nll_test: float, nll_oracle: float, se_test: float = 0.0, se_oracle: float = 0.0) -> dict[str, Any]:
    """An evaluation at (NLL-test, NLL-oracle), with standard errors."""
    return {"nll_test": nll_test, "nll_oracle": nll_oracle, "nll_test_se": se_test,
            "nll_oracle_se": se_oracle}  # fmt: skip


# The straight line NLL-oracle = 17 - NLL-test through (8, 9) and (9, 8): slope -1.
LINE = [pt(8.0, 9.0), pt(9.0, 8.0)]


def test_a_point_on_a_straight_line_curve_is_at_distance_zero() -> None:
    d = below_curve(LINE, pt(8.5, 8.5))
    assert d.value == pytest.approx(0.0) and d.se == 0.0 and not d.outside


def test_a_point_below_the_curve_is_at_a_positive_distance_and_above_it_negative() -> None:
    assert below_curve(LINE, pt(8.5, 8.4)).value == pytest.approx(0.1)  # curve 8.5, point 0.1 lower
    assert below_curve(LINE, pt(8.25, 8.85)).value == pytest.approx(-0.1)  # curve 8.75


def test_standard_error_propagation_on_hand_examples() -> None:
    # The point's own errors: 0.04 in NLL-oracle, 0.03 in NLL-test times the slope -1:
    # var = 0.04^2 + 0.03^2 = 0.0025, se 0.05.
    assert below_curve(LINE, pt(8.5, 8.4, se_test=0.03, se_oracle=0.04)).se == pytest.approx(0.05)
    # The curve's errors, halfway between its points (weights 1/2): each point adds
    # (1/2)^2 (0.06^2 + (-1)^2 0.08^2) = 0.25 * 0.01.
    curve = [pt(8.0, 9.0, 0.08, 0.06), pt(9.0, 8.0, 0.08, 0.06)]
    assert below_curve(curve, pt(8.5, 8.4)).se == pytest.approx(math.sqrt(2 * 0.25 * 0.01))
    # A quarter of the way along a slope -2 segment, everything with errors: the point 0.01 (oracle) and
    # 0.02 (test, times 2); the first curve point weighs 3/4, the second 1/4, each 0.03 (oracle) and 0.01
    # (test, times 2).
    curve = [pt(8.0, 10.0, 0.01, 0.03), pt(9.0, 8.0, 0.01, 0.03)]
    d = below_curve(curve, pt(8.25, 9.0, 0.02, 0.01))
    each = 0.03**2 + 4 * 0.01**2
    assert d.value == pytest.approx(0.5)
    assert d.se == pytest.approx(math.sqrt(0.01**2 + 4 * 0.02**2 + (0.75**2 + 0.25**2) * each))


def test_beyond_the_curve_the_nearest_segment_is_extrapolated_and_marked() -> None:
    curve = [pt(8.0, 9.0), pt(9.0, 8.0), pt(10.0, 7.5)]  # slopes -1, then -0.5
    right = below_curve(curve, pt(11.0, 6.9))  # the last segment gives 7.0 at 11
    left = below_curve(curve, pt(7.5, 9.5))  # the first gives 9.5 at 7.5
    assert (right.value, right.outside) == (pytest.approx(0.1), True)
    assert (left.value, left.outside) == (pytest.approx(0.0), True)
    inside = below_curve(curve, pt(9.5, 7.7))  # between the second and third points: 7.75
    assert (inside.value, inside.outside) == (pytest.approx(0.05), False)


def test_the_curve_is_the_frontier_of_the_temperatures() -> None:
    # Given in any order; temperature 1.2 (worse than 1.0 on both axes: NLL-test rises again) is off it.
    t08, t10, t12 = pt(9.0, 8.0), pt(8.0, 9.0), pt(8.5, 9.6)
    assert frontier([t12, t08, t10]) == [t10, t08]
    assert below_curve([t12, t08, t10], pt(8.5, 8.4)).value == pytest.approx(0.1)
    assert math.isnan(below_curve([t10], pt(8.5, 8.4)).value)  # one point is no curve
    assert math.isnan(below_curve([t10, t12], pt(8.5, 8.4)).value)  # nor is one left on the frontier


# --- end to end ---------------------------------------------------------------------------------------------
TINY = ["--preset", "tiny", "--threads", "1", "--rounds", "2", "--eval-every", "1", "--eval-samples", "64"]
METHODS = "seqgan,constant,mle,oracle,best,ppo"
BEST = "--baseline mean --normalize"
PPO = "--n-envs 8 --n-negatives 32 --no-progress --no-tensorboard"
LABELS = {"seqgan": "SeqGAN", "constant": "REINFORCE, reward 1", "mle": "continued MLE",
          "oracle": "oracle reward (upper bound)", "best": f"SeqGAN ({BEST})",
          "ppo": f"SB3 ppo ({PPO})"}  # fmt: skip


def compare_argv(folder: Path, temperatures: str = "0.8,1.0,1.2") -> list[str]:
    return ["--seqgan-run", str(folder / "cmp_seqgan"), "--methods", METHODS, f"--best-args={BEST}",
            f"--ppo-args={PPO}", "--temperatures", temperatures, "--extra", "--threads", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SeqGAN run, then train/compare.py with every method: the folder holding the runs."""
    folder = tmp_path_factory.mktemp("compare")
    made = subprocess.run([sys.executable, str(ROOT / "train" / "adversarial.py"), *TINY,
                           "--out", str(folder), "--name", "cmp_seqgan"],
                          capture_output=True, text=True, timeout=HANG_GUARD, cwd=ROOT)  # fmt: skip
    assert made.returncode == 0, made.stderr
    result = subprocess.run([sys.executable, str(ROOT / "train" / "compare.py"), *compare_argv(folder)],
                            capture_output=True, text=True, timeout=HANG_GUARD, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return folder


def test_every_method_is_run_and_tabled(compared: Path) -> None:
    for method in METHODS.split(",")[1:]:  # each from the SeqGAN run's pre-training, named after it
        assert (compared / f"cmp_{method}" / "final.pt").is_file(), method
    folder = compared / "cmp_seqgan"
    rows = list(csv.DictReader((folder / "comparison.csv").open()))
    assert {r["method"] for r in rows} == {*LABELS.values(), "MLE at temperature"}
    for label in LABELS.values():  # rounds 0, 1, 2 of each, every one with a finite distance
        own = [r for r in rows if r["method"] == label]
        assert [int(r["rounds"]) for r in own] == [0, 1, 2], label
        assert all(math.isfinite(float(r["below_curve"])) and float(r["below_curve_se"]) > 0 for r in own)
        assert all(float(r["elapsed_s"]) >= 0 for r in own) and float(own[0]["elapsed_s"]) == 0
    curve = [r for r in rows if r["method"] == "MLE at temperature"]
    assert sorted(float(r["temperature"]) for r in curve) == [0.8, 1.0, 1.2]
    table = (folder / "comparison.md").read_text().splitlines()
    assert table[0] == "| method | rounds | NLL-oracle | NLL-test | below the temperature curve | wall time |"
    first = table[: table.index("")]  # the end points; then the distances at every evaluation
    body = [line for line in first if line.startswith("| ") and not line.startswith("| method")]
    assert len(body) == len(LABELS) + 3  # an end point per method, a row per temperature
    distances = table[table.index("| below the curve, after round | 0 | 1 | 2 |") + 2 :]
    for label in LABELS.values():  # each method's distance ± its standard error at every evaluation
        (line,) = [r for r in distances if r.startswith(f"| {label} |")]
        assert re.fullmatch(r"\| .+ \|( -?[\d.]+ ± [\d.]+ \|){3}", line), line
    for label in LABELS.values():
        (line,) = [r for r in body if r.startswith(f"| {label} |")]
        assert re.search(r"^\| .+ \| 2 \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \| -?[\d.]+ ± [\d.]+( †)? \| "
                         r"[\d.]+ (s|min) \|$", line), line  # fmt: skip
    assert (folder / "comparison.png").read_bytes().startswith(b"\x89PNG")


def test_finished_runs_are_reused(compared: Path) -> None:
    finals = [compared / f"cmp_{m}" / "final.pt" for m in METHODS.split(",")]
    stamps = [f.stat().st_mtime_ns for f in finals]
    script = [sys.executable, str(ROOT / "train" / "compare.py")]
    again = subprocess.run([*script, *compare_argv(compared, "0.9")], capture_output=True, text=True,
                           timeout=HANG_GUARD, cwd=ROOT)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert [f.stat().st_mtime_ns for f in finals] == stamps
    rows = list(csv.DictReader((compared / "cmp_seqgan" / "comparison.csv").open()))
    assert [float(r["temperature"]) for r in rows if r["method"] == "MLE at temperature"] == [0.9]
    assert {r["below_curve"] for r in rows} == {"nan"}  # one temperature is no curve


def load_compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_script", ROOT / "train" / "compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_runs_to_make_are_checked_before_their_source_exists(tmp_path: Path) -> None:
    """Without --seqgan-run every method's run starts from a SeqGAN run that does not exist yet: its
    options parse (each as its script's) and the runs take the preset's settings, before anything is made."""
    _, runs = load_compare().parse_args(["--preset", "tiny", "--out", str(tmp_path), "--methods",
                                         "seqgan,constant,ppo", "--extra", "--threads", "1"])  # fmt: skip
    assert [r.method for r in runs] == ["seqgan", "constant", "ppo"] and not any(tmp_path.iterdir())
    constant = runs[1].settings
    assert constant["mode"] == "constant" and constant["preset"] == "tiny" and constant["vocab_size"] == 50
    assert constant["init_from"] == str(tmp_path / "compare_tiny_s0_seqgan")


BAD_OPTIONS: list[tuple[list[str], str]] = [
    (["--methods", "seqgan,gan"], r"--methods: unknown method 'gan' \(choose from seqgan, constant, "),
    (["--methods", "constant,mle"], r"--methods must include seqgan"),
    (["--methods", "seqgan,best"], r"--methods best needs --best-args, e\.g\. --best-args='--baseline mean"),
    (["--ppo-args=--n-envs 8"], r"--ppo-args given but --methods has no ppo"),
    (["--best-args=--normalize"], r"--best-args given but --methods has no best"),
    (["--methods", "seqgan,best", "--best-args=--baseline median"],
     r"--best-args: argument --baseline: invalid choice: 'median'"),
    (["--methods", "seqgan,best", "--best-args=--name x"], r"--best-args: --name cannot be set here"),
    (["--methods", "seqgan,ppo", "--ppo-args=--n-envs 0"], r"--ppo-args: --n-envs must be >= 1, got 0"),
    (["--methods", "seqgan,ppo", "--ppo-args=--bogus 1"], r"--ppo-args: unrecognized arguments: --bogus 1"),
    (["--methods", "seqgan,ppo", "--ppo-args=--pretrained x"], r"--ppo-args: --pretrained cannot be set"),
    (["--methods", "seqgan,ppo", "--ppo-args=--disc-filters 99:4"], r"--ppo-args: .*99"),
    (["--methods", "seqgan,best", "--best-args=--baseline loo"],
     r"cmp_best was made with other settings \(--baseline 'mean', asked 'loo'\): remove it"),
]  # fmt: skip


@pytest.mark.parametrize(("options", "pattern"), BAD_OPTIONS, ids=case_id)
def test_bad_options_are_refused_before_any_run(
    compared: Path, capsys: pytest.CaptureFixture[str], options: list[str], pattern: str
) -> None:
    before = {p: p.stat().st_mtime_ns for p in compared.rglob("*")}
    with pytest.raises(SystemExit) as exit_:
        load_compare().main(["--seqgan-run", str(compared / "cmp_seqgan"), *options])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and re.search(pattern, err[-1]), err
    assert err[-1].count(": error: ") == 1  # argparse's one line (its usage line above it)
    assert {p: p.stat().st_mtime_ns for p in compared.rglob("*")} == before  # nothing written


def test_an_unfinished_method_run_is_refused(compared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (compared / "cmp_unfinished_seqgan").symlink_to(compared / "cmp_seqgan")
    (compared / "cmp_unfinished_mle").mkdir()  # a run killed before its final checkpoint
    with pytest.raises(SystemExit) as exit_:
        load_compare().main(["--seqgan-run", str(compared / "cmp_unfinished_seqgan"), "--methods",
                             "seqgan,mle"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2
    assert re.search(r"cmp_unfinished_mle exists but is unfinished: resume it \(python train/adversarial\.py "
                     r"--resume .*cmp_unfinished_mle\) or remove it", err), err  # fmt: skip


def test_a_finished_run_is_reused_only_with_the_same_settings(tmp_path: Path) -> None:
    folder = tmp_path / "x_mle"
    folder.mkdir()
    (folder / "final.pt").write_bytes(b"")
    (folder / "config.json").write_text(json.dumps({"rounds": 2, "init_from": "elsewhere"}))
    asked = {"rounds": 2, "baseline": "none", "init_from": "here"}  # where the source is does not count
    check_reusable(MethodRun("mle", "continued MLE", folder, [], asked), False, {"baseline": "none"})
    with pytest.raises(ValueError, match=r"made with other settings \(--baseline 'none', asked 'mean'\)"):
        check_reusable(MethodRun("mle", "", folder, [], {**asked, "baseline": "mean"}), False,
                       {"baseline": "none"})  # a config.json without the option: its default  # fmt: skip
    with pytest.raises(ValueError, match=r"already exists beside the SeqGAN run to make: remove it"):
        check_reusable(MethodRun("mle", "", folder, [], asked), True, {})


def test_a_text_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "text_seqgan"  # finished, as far as its files go, but with no oracle
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"rounds": 0, "data": "corpus.txt"}))
    (run / "metrics.csv").write_text("phase,step\nadversarial,0\n")
    for name in ("mle.pt", "final.pt"):
        (run / name).write_bytes(b"")
    with pytest.raises(SystemExit) as exit_:
        load_compare().main(["--seqgan-run", str(run), "--methods", "seqgan"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2 and "text_seqgan is a text run (--data): the comparison needs" in err, err
