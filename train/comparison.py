"""The arithmetic, tables and run-folder checks of train/compare.py: each evaluation's distance below
the MLE temperature curve (with its standard error), a run's trajectory and wall time, comparison.csv,
the table of end points (comparison.md), and which run folders may be reused. No models, no training."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.cli import as_flags
from train.run_folder import RunFolder

CURVE = "MLE at temperature"  # the method name of the temperature curve's points
FIELDS = ("method", "rounds", "temperature", "nll_oracle", "nll_oracle_se", "nll_test", "nll_test_se",
          "elapsed_s", "below_curve", "below_curve_se", "outside_curve")  # fmt: skip


@dataclass(frozen=True)
class Distance:
    """How far a point lies below the temperature curve (nats of NLL-oracle; positive: below, better),
    its standard error, and whether its NLL-test lies outside the curve's range (then extrapolated)."""

    value: float
    se: float
    outside: bool


def frontier(curve: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The temperature curve as a function of NLL-test: its points that no other point beats on both
    axes, by increasing NLL-test (so decreasing NLL-oracle). Above temperature 1 NLL-test rises again,
    and those points, worse on both axes than temperature 1, are off this curve."""
    points: list[dict[str, Any]] = []
    for p in sorted(curve, key=lambda p: (p["nll_test"], p["nll_oracle"])):
        if not points or p["nll_oracle"] < points[-1]["nll_oracle"]:
            points.append(p)
    return points


def below_curve(curve: list[dict[str, Any]], point: dict[str, Any]) -> Distance:
    """The curve's NLL-oracle at the point's NLL-test minus the point's NLL-oracle.

    The curve is `frontier(curve)`, linear between neighbouring points; beyond its NLL-test range it
    is extrapolated from the nearest segment (and `outside` is set). With c = (1 - w) y_i + w y_j, w
    the point's place between x_i and x_j and s the segment's slope, the delta method gives
    var = se_y^2 + s^2 se_x^2 + (1 - w)^2 (se_yi^2 + s^2 se_xi^2) + w^2 (se_yj^2 + s^2 se_xj^2),
    the evaluations taken as independent. (NLL-test is measured on the same held-out sequences for
    every point, so its errors are positively correlated and this overstates them a little.) NaN
    where the frontier has fewer than two points."""
    pts = frontier(curve)
    if len(pts) < 2:
        return Distance(math.nan, math.nan, False)
    x = point["nll_test"]
    i = next((k for k in range(len(pts) - 1) if x <= pts[k + 1]["nll_test"]), len(pts) - 2)
    a, b = pts[i], pts[i + 1]
    dx = b["nll_test"] - a["nll_test"]  # > 0 on the frontier
    w = (x - a["nll_test"]) / dx
    slope = (b["nll_oracle"] - a["nll_oracle"]) / dx
    value = (1 - w) * a["nll_oracle"] + w * b["nll_oracle"] - point["nll_oracle"]
    var = sum(
        weight**2 * (p["nll_oracle_se"] ** 2 + slope**2 * p["nll_test_se"] ** 2)
        for weight, p in ((1.0, point), (1 - w, a), (w, b))
    )
    return Distance(value, math.sqrt(var), not pts[0]["nll_test"] <= x <= pts[-1]["nll_test"])


def trajectory(folder: Path, method: str) -> list[dict[str, Any]]:
    """The adversarial-phase evaluations in a run folder's metrics.csv (train/adversarial.py's or
    train/sb3.py's), as rows of the comparison; elapsed_s counts from the round-0 evaluation."""
    with (folder / "metrics.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["phase"] == "adversarial"]
    start = float(rows[0]["elapsed_s"]) if rows else 0.0
    scores = ("nll_oracle", "nll_oracle_se", "nll_test", "nll_test_se")
    return [{"method": method, "rounds": int(r["step"]), "temperature": float(r.get("temperature") or 1.0),
             **{k: float(r[k]) for k in scores}, "elapsed_s": float(r["elapsed_s"]) - start}
            for r in rows]  # fmt: skip


def add_distances(rows: list[dict[str, Any]]) -> None:
    """Each method's row gets its distance below the curve made of the rows of CURVE (which get NaN:
    they are the curve)."""
    curve = [r for r in rows if r["method"] == CURVE]
    for r in rows:
        d = Distance(math.nan, math.nan, False) if r["method"] == CURVE else below_curve(curve, r)
        r.update(below_curve=d.value, below_curve_se=d.se, outside_curve=d.outside)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """comparison.csv: every evaluation of every method, and the curve's points."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def end_points_table(rows: list[dict[str, Any]]) -> str:
    """comparison.md: each method's final evaluation (distance below the curve, wall time of its
    adversarial phase), then the curve's points, as a markdown table."""
    finals: dict[Any, dict[str, Any]] = {}
    for r in rows:  # the last point of each trajectory; every temperature
        finals[(r["method"], r["temperature"]) if r["method"] == CURVE else r["method"]] = r
    on_curve = [id(p) for p in frontier([r for r in rows if r["method"] == CURVE])]
    lines = ["| method | rounds | NLL-oracle | NLL-test | below the temperature curve | wall time |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in sorted(finals.values(), key=lambda r: r["method"] == CURVE):
        if r["method"] == CURVE:
            name, wall = f"{CURVE} {r['temperature']:g}", ""
            below = "(on the curve)" if id(r) in on_curve else "(off it: beaten on both axes)"
        else:
            name, seconds = r["method"], r["elapsed_s"]
            wall = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"
            below = f"{r['below_curve']:.3f} ± {r['below_curve_se']:.3f}"
            below += " †" if r["outside_curve"] else ""
        lines.append(f"| {name} | {r['rounds']} | {r['nll_oracle']:.3f} ± {r['nll_oracle_se']:.3f} | "
                     f"{r['nll_test']:.3f} ± {r['nll_test_se']:.3f} | {below} | {wall} |")  # fmt: skip
    lines += ["", "Below the curve: the curve's NLL-oracle at the point's NLL-test minus the point's "
              "(nats; positive is better), ± one standard error. The curve joins the temperatures no other "
              "beats on both axes; † NLL-test outside its range (extrapolated from its nearest segment). "
              "Wall time: the adversarial phase, round 0 to the last round."]  # fmt: skip
    return "\n".join(lines)


def distances_table(rows: list[dict[str, Any]]) -> str:
    """comparison.md's second table: each method's distance below the curve ± one standard error at
    every evaluation (a row per method, a column per round evaluated by any method)."""
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        if r["method"] != CURVE:
            runs.setdefault(r["method"], {})[r["rounds"]] = r
    rounds = sorted({k for points in runs.values() for k in points})
    lines = ["| below the curve, after round | " + " | ".join(map(str, rounds)) + " |",
             "|---|" + "---|" * len(rounds)]  # fmt: skip
    for method, points in runs.items():
        cells = [f"{points[k]['below_curve']:.3f} ± {points[k]['below_curve_se']:.3f}" if k in points else ""
                 for k in rounds]  # fmt: skip
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class MethodRun:
    """One method's run: its label in the table, run folder, options, and the settings it records."""

    method: str
    label: str
    folder: Path
    argv: list[str]  # train/adversarial.py's options, or train/sb3.py's for ppo
    settings: dict[str, Any]  # its config.json (a finished run is reused only if they match)


def check_finished_run(folder: Path) -> None:
    """A --seqgan-run must be a finished run: config.json, mle.pt, final.pt, and metrics up to its
    last round (an unfinished run would be tabled beside full-length controls)."""
    resume = f"finish it first: python train/adversarial.py --resume {folder}"
    if not (folder / "config.json").is_file():
        raise ValueError(f"--seqgan-run {folder} is not a train/adversarial.py run folder (no config.json)")
    try:
        config = json.loads((folder / "config.json").read_text())
        rounds = config["rounds"]
        with (folder / "metrics.csv").open(newline="") as f:
            steps = [int(r["step"]) for r in csv.DictReader(f) if r.get("phase") == "adversarial"]
    except FileNotFoundError:
        raise ValueError(f"--seqgan-run {folder} is unfinished (no metrics.csv); {resume}") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"--seqgan-run {folder}: unreadable config.json or metrics.csv ({err})") from None
    for name in ("mle", "final"):
        if not (folder / f"{name}.pt").is_file():
            raise ValueError(f"--seqgan-run {folder} is unfinished (no {name}.pt); {resume}")
    if not steps or steps[-1] != rounds:
        done = steps[-1] if steps else "none"
        raise ValueError(f"--seqgan-run {folder} is unfinished: metrics.csv ends at adversarial round {done} "
                         f"of the {rounds} in its config.json; {resume}")  # fmt: skip


def check_pretrained_run(folder: Path) -> dict[str, Any]:
    """A --pretrained run folder holds its config and a finished MLE stage (mle.pt): its config."""
    if not (folder / "config.json").is_file():
        raise ValueError(f"--pretrained {folder} is not a train/pretrain.py run folder (no config.json)")
    if not (folder / "mle.pt").is_file():
        raise ValueError(f"--pretrained {folder} has no mle.pt: finish its pre-training first "
                         f"(python train/pretrain.py --resume {folder})")  # fmt: skip
    try:
        config: dict[str, Any] = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"--pretrained {folder}: unreadable config.json ({err})") from None
    if config.get("data") is not None:
        raise ValueError(f"{folder} is a text run (--data): the comparison needs an oracle's NLL-oracle")
    return config


def check_reusable(run: MethodRun, made: bool, defaults: dict[str, Any]) -> None:
    """A method's run folder may not exist yet, or be a finished run made with the same settings (an
    option its config.json predates counts at its default, from `defaults`)."""
    if not run.folder.exists():
        return
    if made:
        raise ValueError(f"{run.folder} already exists beside the SeqGAN run to make: remove it")
    if not (run.folder / "final.pt").is_file():
        how = "remove it" if run.method == "ppo" else (
            f"resume it (python train/adversarial.py --resume {run.folder}) or remove it")
        raise ValueError(f"{run.folder} exists but is unfinished: {how}")
    saved = RunFolder(run.folder).saved_config()
    ignore = ("init_from", "pretrained")  # where the source is, however it was spelled
    saved = {k: saved.get(k, defaults.get(k)) for k in run.settings if k not in ignore}
    diff = [k for k in saved if saved[k] != run.settings[k]]
    if diff:
        key = diff[0]
        raise ValueError(f"{run.folder} was made with other settings (--{key.replace('_', '-')} "
                         f"{saved[key]!r}, asked {run.settings[key]!r}): remove it to re-run it")


def same_settings(config: dict[str, Any]) -> list[str]:
    """Options that give a method's run every setting of the SeqGAN run (rounds, evaluation, sizes...)."""
    return as_flags({k: v for k, v in config.items() if k not in ("mode", "init_from")})
