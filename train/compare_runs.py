"""The runs of train/compare.py's methods: --methods parsed, each method's run built from the starting
run's settings with its options checked by its script's own parser, and each run made in this process."""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seqgan_env.text import CorpusError
from train.cli import config_parser
from train.comparison import MethodRun, same_settings
from train.config import Config, parse_config
from train.dense import DENSE_METHODS, dense_options
from train.run_folder import RunFolder
from train.sb3_config import SB3Config, parse_sb3_config
from train.sb3_job import check_sb3_run, train_sb3
from train.stages import open_experiment, run_experiment

METHODS = ("seqgan", "constant", "mle", "oracle", "best", "ppo", "dense", "dense_constant")
DEFAULT_METHODS = "seqgan,constant,mle,oracle"
SET_HERE = ("out", "name", "init_from", "resume", "pretrained")  # what --best-args/--ppo-args cannot set


def parse_methods(args: argparse.Namespace) -> list[str]:
    """--methods as a list in the order given (seqgan first), and their --best-args / --ppo-args."""
    methods = list(dict.fromkeys(m.strip() for m in args.methods.split(",")))
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"--methods: unknown method {unknown[0]!r} (choose from {', '.join(METHODS)})")
    if "seqgan" not in methods and args.pretrained is None:
        raise ValueError("--methods must include seqgan: its run holds the pre-training every method "
                         "starts from (or give --pretrained)")
    if "best" in methods and args.best_args is None:
        raise ValueError("--methods best needs --best-args, e.g. --best-args='--baseline mean --normalize'")
    for method in ("best", "ppo"):
        if getattr(args, f"{method}_args") is not None and method not in methods:
            raise ValueError(f"--{method}-args given but --methods has no {method}")
    if args.dense_args is not None and not {"dense", "dense_constant"} & set(methods):
        raise ValueError("--dense-args given but --methods has neither dense nor dense_constant")
    if args.pretrained is not None:
        return methods
    return ["seqgan", *(m for m in methods if m != "seqgan")]


def method_run(
    method: str, args: argparse.Namespace, folder: Path, seqgan: Path, config: dict[str, Any], extra: Config
) -> MethodRun:
    """A method's run from the SeqGAN run's settings, its options checked by its script's parser."""
    flag = {"best": "--best-args", "ppo": "--ppo-args", "dense": "--dense-args",
            "dense_constant": "--dense-args"}.get(method, f"--methods {method}")  # fmt: skip
    own = shlex.split({"best": args.best_args, "ppo": args.ppo_args, "dense": args.dense_args,
                       "dense_constant": args.dense_args}.get(method) or "")  # fmt: skip
    where = ["--out", str(folder.parent), "--name", folder.name]
    try:
        if method == "ppo":
            argv = ["--pretrained", str(seqgan), "--threads", str(extra.threads), "--device", extra.device]
            for key in ("seed", "rounds", "eval_every", "eval_samples", "temperature"):  # as the SeqGAN run's
                argv += [f"--{key.replace('_', '-')}", str(config[key])]
            argv += [*where, *own]
            sets_here(flag, vars(config_parser(SB3Config, None).parse_args(own)))
            cfg = parse_sb3_config(argv)
            check_sb3_run(cfg, config)
            label = f"SB3 {cfg.algo}" + (f" ({' '.join(own)})" if own else "")
            return MethodRun(method, label, folder, argv, json.loads(json.dumps(cfg.settings())))
        sets_here(flag, vars(config_parser(Config, None).parse_args(own)))
        control = {"constant": ["--mode", "constant"], "mle": ["--mode", "mle"],
                   "oracle": ["--reward", "oracle"]}.get(method, [])  # fmt: skip
        argv = [*same_settings(config), *control, *where, "--init-from", str(seqgan), *args.extra, *own]
        if method in DENSE_METHODS:
            preset, after = dense_options(method)
            argv = [*same_settings(config), *preset, *where, "--init-from", str(seqgan), *args.extra, *own,
                    *after]  # fmt: skip
        settings = parse_config(argv).run_settings()
    except (ValueError, TypeError, KeyError, FileNotFoundError, ImportError) as err:
        raise ValueError(f"{flag}: {err}") from None
    labels = {"constant": "REINFORCE, reward 1", "mle": "continued MLE", "seqgan": "SeqGAN",
              "oracle": "oracle reward (upper bound)", "best": f"SeqGAN ({' '.join(own)})", **DENSE_METHODS}
    if method == "dense" and own:
        labels[method] += f" ({' '.join(own)})"
    return MethodRun(method, labels[method], folder, argv, json.loads(json.dumps(settings)))


def sets_here(flag: str, given: dict[str, Any]) -> None:
    """--best-args and --ppo-args may not set what this script sets (where the run goes, its source)."""
    clash = [f"--{k.replace('_', '-')}" for k in given if k in SET_HERE]
    if clash:
        raise ValueError(f"{' '.join(clash)} cannot be set here: compare.py sets it")


def make_run(run: MethodRun, started: Callable[[Any], None]) -> None:
    """A method's run, in this process (train/adversarial.py's stages, or train/sb3.py's for ppo);
    `started` receives its Experiment (or SB3Run) once built."""
    script = "train/sb3.py" if run.method == "ppo" else "train/adversarial.py"
    try:
        if run.method == "ppo":
            cfg = parse_sb3_config(run.argv)
            folder = RunFolder(run.folder)
            folder.create(cfg.settings())
        else:
            exp = open_experiment(parse_config(run.argv))
    except (ValueError, TypeError, OSError, CorpusError, RuntimeError) as err:
        raise SystemExit(f"error: {script} {' '.join(run.argv)}: {err}") from None
    if run.method == "ppo":
        train_sb3(cfg, folder, run.argv[run.argv.index("--pretrained") + 1], started=started)
    else:
        started(exp)
        run_experiment(exp)
