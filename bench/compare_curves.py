"""NLL-oracle curves of groups of runs against a baseline group: does a setting move the curve?

Each group is a label and its run folders, one per seed, in the same seed order in every group:

    python bench/compare_curves.py fp32=runs/f0,runs/f1,runs/f2 auto=runs/a0,runs/a1,runs/a2

The first group is the baseline. At every evaluation (phase, step) the script prints the baseline's
mean NLL-oracle over its runs and, for each other group, the difference of the means in nats and in
standard errors of that difference from the seeds' spread (Welch: sqrt(s_a^2/n_a + s_b^2/n_b)), then
each seed's difference in standard errors of the two evaluations (the runs' own nll_oracle_se). The
seeds' spread is the yardstick for a setting: one run's curve moves by several evaluation standard
errors from any change at all, since training is chaotic.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from pathlib import Path

Curve = dict[tuple[str, int], tuple[float, float]]  # (phase, step) -> (NLL-oracle, its standard error)


def read_curve(folder: Path) -> Curve:
    """A run folder's NLL-oracle at each evaluation, with its standard error (non-finite rows left out)."""
    path = folder / "metrics.csv"
    if not path.is_file():
        raise ValueError(f"{folder}: no metrics.csv (not a run folder)")
    curve: Curve = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                value, se = float(row["nll_oracle"]), float(row["nll_oracle_se"])
            except (KeyError, TypeError, ValueError):
                continue
            if math.isfinite(value) and math.isfinite(se):
                curve[(row["phase"], int(row["step"]))] = (value, se)
    if not curve:
        raise ValueError(f"{folder}/metrics.csv: no finite NLL-oracle (a run without an oracle?)")
    return curve


def parse_group(text: str) -> tuple[str, list[Path]]:
    """LABEL=RUN,RUN,... as its label and folders."""
    label, sep, runs = text.partition("=")
    folders = [Path(r) for r in runs.split(",") if r]
    if not sep or not label or not folders:
        raise ValueError(f"a group is LABEL=RUN,RUN,... (got {text!r})")
    return label, folders


def welch_z(a: list[float], b: list[float]) -> float:
    """(mean(b) - mean(a)) over the standard error of that difference from the two samples' spreads."""
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    diff = statistics.fmean(b) - statistics.fmean(a)
    return diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))


def compare(groups: list[tuple[str, list[Curve]]], digits: int = 4) -> dict[str, float]:
    """Print the table (see the module); return each other group's largest |z| of the mean difference."""
    (base_label, base), others = groups[0], groups[1:]
    keys = sorted(set.intersection(*(set(c) for _, curves in groups for c in curves)),
                  key=lambda k: (k[0] != "mle", k[1]))  # fmt: skip
    print(f"NLL-oracle at each evaluation: {base_label} mean over {len(base)} runs; per group the difference "
          f"of the means, nats (z from the seeds' spread); per seed z of the two evaluations")
    worst = {label: 0.0 for label, _ in others}
    for key in keys:
        base_values = [c[key][0] for c in base]
        line = f"  {key[0]:<12} {key[1]:>4}  {base_label} {statistics.fmean(base_values):.{digits}f}"
        for label, curves in others:
            values = [c[key][0] for c in curves]
            z = welch_z(base_values, values) if min(len(values), len(base_values)) >= 2 else math.nan
            worst[label] = max(worst[label], abs(z)) if math.isfinite(z) else worst[label]
            per_seed = " ".join(
                f"{(o[key][0] - b[key][0]) / math.hypot(o[key][1], b[key][1]):+.1f}"
                for b, o in zip(base, curves, strict=False)
            )
            diff = statistics.fmean(values) - statistics.fmean(base_values)
            line += f" | {label} {diff:+.{digits}f} (z {z:+.1f}; seeds {per_seed})"
        print(line)
    for label, z in worst.items():
        print(f"  LARGEST |z| of the mean difference, {label} against {base_label}: {z:.2f} over {len(keys)} "
              f"evaluations")
    return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--digits", type=int, default=4, choices=range(1, 9),
                   help="decimals of the printed means and differences (nats)")
    p.add_argument("groups", nargs="+", metavar="LABEL=RUN,RUN,...",
                   help="a label and its run folders, one per seed; the first is the baseline")
    args = p.parse_args(argv)
    try:
        groups = [parse_group(g) for g in args.groups]
        if len(groups) < 2:
            raise ValueError("give a baseline group and at least one other")
        curves = [(label, [read_curve(f) for f in folders]) for label, folders in groups]
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    compare(curves, args.digits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
