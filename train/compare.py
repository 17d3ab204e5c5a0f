"""The honest comparison: SeqGAN against the controls and the bounds on one quality-diversity plane.

NLL-oracle alone rewards a sharper (lower-entropy) generator, whatever sharpened it. So every method
starts from the same pre-trained generator (the SeqGAN run's) and makes the same number of generator
updates, and each evaluation is a point (NLL-test, NLL-oracle): lower-left is better. The MLE generator
sampled at --temperatures traces the curve plain sharpening gives; a method helps only where its points
sit below that curve. --methods (comma-separated; default seqgan,constant,mle,oracle):
  seqgan    SeqGAN as in the paper (required without --pretrained: the others start from its pre-training)
  constant  REINFORCE with a constant reward of 1 (train/adversarial.py --mode constant)
  mle       continued MLE (--mode mle)
  oracle    REINFORCE rewarded by the oracle's own likelihood (--reward oracle): the upper bound
  best      SeqGAN with the options of --best-args, e.g. --best-args='--baseline mean --normalize'
  ppo       SB3 PPO (train/sb3.py --pretrained the SeqGAN run; same rounds and evaluation), with the
            options of --ppo-args if given, e.g. --ppo-args='--n-envs 32'
  dense     ScratchGAN's dense rewards: the dense preset's adversarial phase (docs/dense.md), with the
            options of --dense-args; dense_constant: reward 1 at its batch, optimiser and rounds

    python train/compare.py --oracle ../shared/benchmarks/paper_oracle/target_params.npz
    python train/compare.py --seqgan-run runs/NAME_seqgan --methods seqgan,mle,ppo   # reuse finished runs
    python train/compare.py --pretrained runs/PRE --methods dense,dense_constant     # from train/pretrain.py

Each method's run folder is NAME_<method> beside NAME_seqgan (with --pretrained PRE: PRE_<method>_sSEED
beside PRE); a finished one made with the same settings is reused. Writes into the SeqGAN run's folder (or
PRE, as comparison_sSEED.*) comparison.csv (every evaluation, with its
distance below the temperature curve and that distance's standard error), comparison.md (each method's
end point: NLL-oracle, NLL-test, distance below the curve, wall time of its adversarial phase; the
temperatures) and comparison.png (all on one plane). The curve joins the temperatures that no other
beats on both axes, linearly; beyond its NLL-test range it is extrapolated, and the distance marked †
(train/comparison.py has the arithmetic).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from seqgan_env.checkpoint import load_checkpoint, token_lstm_from_entry
from seqgan_env.finite import NonFiniteError
from train.cli import MIN_TEMPERATURE, as_flags, check_seed, config_parser
from train.compare_runs import DEFAULT_METHODS, METHODS, make_run, method_run, parse_methods, sets_here
from train.comparison import (
    CURVE,
    MethodRun,
    add_distances,
    check_finished_run,
    check_pretrained_run,
    check_reusable,
    distances_table,
    end_points_table,
    trajectory,
    write_csv,
)
from train.config import Config, parse_config
from train.evaluation import evaluate
from train.plots import plot_quality_diversity
from train.presets import PRESETS
from train.run_folder import RunFolder
from train.sb3_config import SB3Config
from train.sources import make_oracle
from train.stages import position
from train.stopping import cause, command, run_stoppable

TEMPERATURES = "0.7,0.8,0.9,1.0,1.1,1.2,1.3"



def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[MethodRun]]:
    """The options and the runs they ask for, all checked (exit code 2) before any run starts or
    anything is written."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seqgan-run", help="a finished train/adversarial.py run folder (default: run one)")
    parser.add_argument("--pretrained", help="a train/pretrain.py run folder every method starts from, "
                        "instead of a SeqGAN run (seqgan is then optional)")  # fmt: skip
    parser.add_argument("--methods", default=DEFAULT_METHODS,
                        help=f"comma-separated, of {', '.join(METHODS)} (default: {DEFAULT_METHODS})")
    parser.add_argument("--best-args", help="train/adversarial.py options of the best method (quote them)")
    parser.add_argument("--ppo-args", help="train/sb3.py options of the ppo method (quote them)")
    parser.add_argument("--dense-args", help="train/adversarial.py options of the dense and dense_constant "
                        "methods, over the dense preset's (quote them)")  # fmt: skip
    parser.add_argument("--preset", default="cpu", help="preset of the SeqGAN run to make (default: cpu)")
    parser.add_argument("--oracle", help="oracle parameter file (.npz) for the SeqGAN run to make")
    parser.add_argument("--seed", type=int, default=0, help="seed of the runs (default: 0); with "
                        "--pretrained, of each method's run from it (run folders PRE_<method>_s<seed>)")
    parser.add_argument("--out", default="runs", help="folder holding run folders (default: runs)")
    parser.add_argument("--temperatures", default=TEMPERATURES,
                        help="sampling temperatures of the MLE generator (default: 0.7..1.3)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="further train/adversarial.py options for every run (put last); its "
                        "--threads and --device also apply to ppo")  # fmt: skip
    args = parser.parse_args(argv)
    try:  # every option is checked before any run starts or anything is written
        runs = check_args(args)
    except ValueError as err:
        parser.error(str(err))
    return args, runs


def parse_temperatures(text: str) -> list[float]:
    """The comma-separated --temperatures: finite numbers >= MIN_TEMPERATURE, at least one."""
    values = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--temperatures must be comma-separated numbers > 0, got {item.strip()!r} "
                             f"in {text!r}") from None  # fmt: skip
        if not math.isfinite(value) or value < MIN_TEMPERATURE:
            raise ValueError(f"--temperatures must be finite, >= {MIN_TEMPERATURE}, got {value} in {text!r}")
        values.append(value)
    return values


def check_args(args: argparse.Namespace) -> list[MethodRun]:
    """Clear one-line errors (ValueError) for options that would fail later, after minutes of runs;
    returns the runs: each method's options parsed by its script's config parser."""
    parse_temperatures(args.temperatures)
    check_seed("--seed", args.seed)
    methods = parse_methods(args)
    try:
        extra = parse_config(list(args.extra))
        sets_here("--extra", vars(config_parser(Config, None).parse_args(list(args.extra))))
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"--extra: {err}") from None
    if args.pretrained is not None:
        if args.seqgan_run is not None:
            raise ValueError("--pretrained and --seqgan-run exclude each other: both name the starting point")
        source = Path(args.pretrained)
        config = {**check_pretrained_run(source), "seed": args.seed}  # each method's run takes --seed
        first = MethodRun("pretrained", "pre-training", source, [], config)
        runs = [first] + [method_run(m, args, source.parent / f"{source.name}_{m}_s{args.seed}", source,
                                     config, extra) for m in methods]  # fmt: skip
        for run in runs[1:]:
            fields = dataclasses.fields(SB3Config if run.method == "ppo" else Config)
            check_reusable(run, False, {f.name: f.default for f in fields})
        return runs
    if args.seqgan_run is not None:
        seqgan = Path(args.seqgan_run)
        check_finished_run(seqgan)
        config = json.loads((seqgan / "config.json").read_text())
        name = seqgan.name.removesuffix("_seqgan")  # the runs of a compare.py SeqGAN run: NAME_<method>
        first = MethodRun("seqgan", "SeqGAN", seqgan, [], config)
    else:
        if args.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {args.preset!r}")
        if args.oracle is not None and not Path(args.oracle).is_file():
            raise ValueError(f"--oracle {args.oracle}: no such file")
        name = f"compare_{args.preset}_s{args.seed}"
        seqgan = Path(args.out) / f"{name}_seqgan"
        if seqgan.exists():
            raise ValueError(f"{seqgan} already exists: pass --seqgan-run {seqgan} to reuse it, or remove it")
        cmd = ["--preset", args.preset, "--seed", str(args.seed), "--out", args.out, "--name", seqgan.name,
               *(["--oracle", args.oracle] if args.oracle else []), *args.extra]  # fmt: skip
        config = json.loads(json.dumps(parse_config(cmd).run_settings()))  # its config.json to be
        first = MethodRun("seqgan", "SeqGAN", seqgan, cmd, config)
    if config.get("data") is not None:
        raise ValueError(f"{seqgan} is a text run (--data): the comparison needs an oracle's NLL-oracle")
    runs = [first] + [method_run(m, args, seqgan.parent / f"{name}_{m}", seqgan, config, extra)
                      for m in methods[1:]]  # fmt: skip
    for run in runs[1:]:
        fields = dataclasses.fields(SB3Config if run.method == "ppo" else Config)
        check_reusable(run, args.seqgan_run is None, {f.name: f.default for f in fields})
    return runs


def temperature_curve(
    seqgan: RunFolder, config: dict[str, Any], temperatures: list[float]
) -> list[dict[str, Any]]:
    """The SeqGAN run's MLE generator evaluated at each temperature: the curve's points."""
    mle_state = load_checkpoint(seqgan.checkpoint("mle"))
    generator = token_lstm_from_entry(mle_state["generator"])
    oracle = make_oracle(config["vocab_size"], config["seq_len"], config["oracle"], config["oracle_seed"])
    rng = torch.Generator().manual_seed(config["seed"] + 1)
    rows = []
    for temperature in temperatures:
        ev = evaluate(generator, oracle, mle_state["data"]["test"], config["eval_samples"], rng, temperature)
        scores = {k: getattr(ev, k) for k in ("nll_oracle", "nll_oracle_se", "nll_test", "nll_test_se")}
        rows.append({"method": CURVE, "rounds": 0, "temperature": temperature, **scores,
                     "elapsed_s": math.nan})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    args, runs = parse_args(argv)
    current: list[tuple[MethodRun, Any]] = []  # the run being made, and its Experiment or SB3Run
    return run_stoppable(lambda: compare(args, runs, current),
                         lambda err: stop_message(err, args, runs, current)) or 0  # fmt: skip


def compare(args: argparse.Namespace, runs: list[MethodRun], current: list[tuple[MethodRun, Any]]) -> None:
    """Make the runs not made yet (recording each in `current` as it starts), then the comparison."""
    rows: list[dict[str, Any]] = []
    for run in runs:  # the SeqGAN run first: every other starts from its pre-training
        if run.argv and not (run.folder / "final.pt").is_file():
            make_run(run, lambda made, run=run: current.append((run, made)))  # type: ignore[misc]
        rows += trajectory(run.folder, run.label)
    current.clear()
    seqgan = RunFolder(runs[0].folder)
    config = seqgan.saved_config()
    rows += temperature_curve(seqgan, config, parse_temperatures(args.temperatures))
    add_distances(rows)

    folder = seqgan.path
    stem = "comparison" if args.pretrained is None else f"comparison_s{args.seed}"  # one per seed there
    write_csv(rows, folder / f"{stem}.csv")
    folders = "".join(f"- {r.label}: {r.folder}\n" for r in runs)
    table = f"{end_points_table(rows)}\n\n{distances_table(rows)}\n\nRun folders:\n{folders}"
    (folder / f"{stem}.md").write_text(table)
    print(table, end="")
    plot_quality_diversity(rows, folder / f"{stem}.png",
                           f"quality vs diversity, {config['preset']} preset, {config['rounds']} rounds")
    print(f"wrote {folder / stem}.png, {stem}.md, {stem}.csv")


def stop_message(
    err: BaseException, args: argparse.Namespace, runs: list[MethodRun], current: list[tuple[MethodRun, Any]]
) -> str:
    """The one line of a comparison that stopped early (train.stopping): why, in which run, and the
    commands that finish it (the run, then this script on the SeqGAN run or the --pretrained one,
    reusing the finished runs)."""
    defaults = {"methods": DEFAULT_METHODS, "temperatures": TEMPERATURES, "best_args": None, "ppo_args": None,
                "dense_args": None}  # fmt: skip
    given = {key: getattr(args, key) for key, default in defaults.items() if getattr(args, key) != default}
    extra = ["--extra", *args.extra] if args.extra else []
    start = ["--seqgan-run", str(runs[0].folder)] if args.pretrained is None else [
        "--pretrained", args.pretrained, "--seed", str(args.seed)]  # fmt: skip
    then = command("compare.py", *start, *as_flags(given), *extra)
    where, first = "", ""
    if current:
        run, made = current[-1]
        sb3 = run.method == "ppo"  # an SB3 run does not resume
        where = f" in the {run.method} run {run.folder} (after " + (
            f"{made.done} of its {made.cfg.rounds} rounds)" if sb3 else f"{position(made)})")
        first = f"remove the unfinished {run.folder} (train/sb3.py runs do not resume), then " if sb3 else (
            f"finish that run with {command('adversarial.py', '--resume', str(run.folder))}, then ")
    if isinstance(err, NonFiniteError):
        return f"{cause(err)}{where}; nothing non-finite was saved"
    return f"{cause(err)}{where}; to go on, {first}run {then}"


if __name__ == "__main__":
    sys.exit(main())
