"""The honest comparison: SeqGAN against the controls on one quality-diversity plot (SPEC 2.2).

NLL-oracle alone rewards a sharper (lower-entropy) generator, whatever sharpened it. So SeqGAN is
compared, at the same number of generator updates and from the same pre-trained generator, with
- the MLE generator sampled at temperatures (default 0.7 to 1.3),
- REINFORCE with a constant reward of 1 (`--mode constant`),
- continued MLE (`--mode mle`),
each as points (NLL-test, NLL-oracle): lower-left is better, and SeqGAN's claim holds only where its
points sit below the curve the temperatures and the control trace.

    python train/compare.py --oracle ../shared/benchmarks/paper_oracle/target_params.npz
    python train/compare.py --seqgan-run runs/NAME      # reuse a finished SeqGAN run

Writes comparison.csv, comparison.md (the table) and comparison.png into the SeqGAN run's folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from seqgan_env.checkpoint import load_checkpoint, token_lstm_from_entry
from seqgan_env.text import CorpusError
from train.cli import check_seed
from train.config import PRESETS, parse_config
from train.evaluation import evaluate
from train.plots import plot_comparison
from train.run_folder import RunFolder
from train.sources import make_oracle
from train.stages import open_experiment, run_experiment


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, all checked (exit code 2) before any run starts or anything is written."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seqgan-run", help="a finished train/adversarial.py run folder (default: run one)")
    parser.add_argument("--preset", default="cpu", help="preset of the SeqGAN run to make (default: cpu)")
    parser.add_argument("--oracle", help="oracle parameter file (.npz) for the SeqGAN run to make")
    parser.add_argument("--seed", type=int, default=0, help="seed of the runs (default: 0)")
    parser.add_argument("--out", default="runs", help="folder holding run folders (default: runs)")
    parser.add_argument("--temperatures", default="0.7,0.8,0.9,1.0,1.1,1.2,1.3",
                        help="sampling temperatures of the MLE generator (default: 0.7..1.3)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="further train/adversarial.py options for every run (put last)")
    args = parser.parse_args(argv)
    try:  # every option is checked before any run starts or anything is written
        check_args(args)
    except ValueError as err:
        parser.error(str(err))
    return args


def parse_temperatures(text: str) -> list[float]:
    """The comma-separated --temperatures: finite numbers > 0, at least one."""
    values = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--temperatures must be comma-separated numbers > 0, got {item.strip()!r} "
                             f"in {text!r}") from None  # fmt: skip
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"--temperatures must be finite numbers > 0, got {value} in {text!r}")
        values.append(value)
    return values


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


def check_args(args: argparse.Namespace) -> None:
    """Clear one-line errors (ValueError) for options that would fail later, after minutes of runs."""
    parse_temperatures(args.temperatures)
    check_seed("--seed", args.seed)
    if args.seqgan_run is not None:
        check_finished_run(Path(args.seqgan_run))
    else:
        if args.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {args.preset!r}")
        if args.oracle is not None and not Path(args.oracle).is_file():
            raise ValueError(f"--oracle {args.oracle}: no such file")
        made = Path(args.out) / f"compare_{args.preset}_s{args.seed}_seqgan"
        if made.exists():
            raise ValueError(f"{made} already exists: pass --seqgan-run {made} to reuse it, or remove it")
    if args.extra:
        try:
            parse_config(list(args.extra))
        except (ValueError, FileNotFoundError) as err:
            raise ValueError(f"--extra: {err}") from None


def run_adversarial(args: list[str]) -> None:
    """A train/adversarial.py run with these options, in this process."""
    try:
        exp = open_experiment(parse_config(args))
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, CorpusError, RuntimeError) as err:
        raise SystemExit(f"error: train/adversarial.py {' '.join(args)}: {err}") from None
    run_experiment(exp)


def trajectory(run: RunFolder, method: str) -> list[dict[str, Any]]:
    """The adversarial-phase evaluations of a run, as rows of the comparison."""
    rows = list(csv.DictReader((run.path / "metrics.csv").open()))
    scores = ("nll_oracle", "nll_oracle_se", "nll_test", "nll_test_se", "elapsed_s")
    return [{"method": method, "rounds": int(r["generator_updates"]) - int(rows_start(rows)),
             "temperature": 1.0, **{k: float(r[k]) for k in scores}}
            for r in rows if r["phase"] == "adversarial"]  # fmt: skip


def same_settings(config: dict[str, Any]) -> list[str]:
    """Options that give a control run every setting of the SeqGAN run (rounds, evaluation, sizes...)."""
    skip = {"mode", "init_from"}
    args: list[str] = []
    for key, value in config.items():
        flag = key.replace("_", "-")
        if key in skip or value is None:
            continue
        if isinstance(value, bool):  # --flag / --no-flag
            args.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            args += [f"--{flag}", str(value)]
    return args


def rows_start(rows: list[dict[str, str]]) -> int:
    return next(int(r["generator_updates"]) for r in rows if r["phase"] == "adversarial" and r["step"] == "0")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.seqgan_run is None:
        name = f"compare_{args.preset}_s{args.seed}"
        cmd = [
            "--preset", args.preset, "--seed", str(args.seed), "--out", args.out, "--name", f"{name}_seqgan"
        ]
        run_adversarial(cmd + (["--oracle", args.oracle] if args.oracle else []) + args.extra)
        seqgan = RunFolder(Path(args.out) / f"{name}_seqgan")
    else:
        seqgan = RunFolder(args.seqgan_run)
        # The controls of a run this script made (NAME_seqgan) are NAME_constant and NAME_mle.
        name = seqgan.path.name.removesuffix("_seqgan")
    config = seqgan.saved_config()
    rows = trajectory(seqgan, "SeqGAN")

    # The controls: the same pre-trained generator, the same number of generator updates.
    for mode in ("constant", "mle"):
        control = RunFolder(seqgan.path.parent / f"{name}_{mode}")
        if not (control.path / "final.pt").is_file():
            if control.path.exists():
                raise SystemExit(f"{control.path} exists but is unfinished: resume it or remove it")
            run_adversarial([*same_settings(config), "--mode", mode, "--out", str(control.path.parent),
                             "--name", control.path.name, "--init-from", str(seqgan.path),
                             *args.extra])  # fmt: skip
        rows += trajectory(control, {"constant": "REINFORCE, reward 1", "mle": "continued MLE"}[mode])

    # The MLE generator at several temperatures.
    mle_state = load_checkpoint(seqgan.checkpoint("mle"))
    generator = token_lstm_from_entry(mle_state["generator"])
    oracle = make_oracle(config["vocab_size"], config["seq_len"], config["oracle"], config["oracle_seed"])
    rng = torch.Generator().manual_seed(config["seed"] + 1)
    for temperature in (float(t) for t in args.temperatures.split(",")):
        ev = evaluate(generator, oracle, mle_state["data"]["test"], config["eval_samples"], rng, temperature)
        rows.append({"method": "MLE at temperature", "rounds": 0, "temperature": temperature,
                     "nll_oracle": ev.nll_oracle, "nll_oracle_se": ev.nll_oracle_se, "nll_test": ev.nll_test,
                     "nll_test_se": ev.nll_test_se, "elapsed_s": float("nan")})  # fmt: skip

    write_outputs(rows, seqgan.path, config)
    return 0


def write_outputs(rows: list[dict[str, Any]], folder: Path, config: dict[str, Any]) -> None:
    fields = ("method", "rounds", "temperature", "nll_oracle", "nll_oracle_se", "nll_test", "nll_test_se",
              "elapsed_s")  # fmt: skip
    with (folder / "comparison.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    finals = {}
    for r in rows:  # the last point of each trajectory; every temperature
        key = (r["method"], r["temperature"]) if r["method"] == "MLE at temperature" else r["method"]
        finals[key] = r
    lines = ["| method | rounds | temperature | NLL-oracle | NLL-test |", "|---|---|---|---|---|"]
    for r in finals.values():
        lines.append(f"| {r['method']} | {r['rounds']} | {r['temperature']:.3f} | "
                     f"{r['nll_oracle']:.3f} ± {r['nll_oracle_se']:.3f} | "
                     f"{r['nll_test']:.3f} ± {r['nll_test_se']:.3f} |")
    table = "\n".join(lines)
    (folder / "comparison.md").write_text(table + "\n")
    print(table)

    plot_comparison(rows, folder / "comparison.png",
                    f"quality vs diversity, {config['preset']} preset, {config['rounds']} rounds")
    print(f"wrote {folder / 'comparison.png'}, comparison.md, comparison.csv")


if __name__ == "__main__":
    sys.exit(main())
