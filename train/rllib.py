"""SeqGAN's adversarial phase on Ray RLlib (new API stack): PPO, APPO or IMPALA with K env runners.

    pip install -e ".[rllib]"
    python train/rllib.py --num-env-runners 2                     # pre-trains in place (cpu preset), then PPO
    python train/rllib.py --algo appo --pretrained runs/NAME      # from a train/adversarial.py run folder
    python train/rllib.py --resume runs/RLLIB_RUN                 # continue a killed run
    python train/rllib.py --ray-address auto --num-env-runners 16 # on a running Ray cluster

Pre-training comes from a run folder (--pretrained) or is made in place, as in train/sb3.py. Each
round (train.stages.run_rounds with agents.rllib.RLlibLearner) is one `algo.train()`: the env
runners sample --n-envs / K envs each for --n-steps tokens, the learner takes the algorithm's
gradient steps and RLlib syncs the RLModule; then the driver's rollout policy follows the policy,
the driver's discriminator trains on the runners' finished episodes topped up with fresh samples
(the same DiscriminatorSchedule as the other learners), and both models reach every runner before
it samples again. The policy is `agents.rllib_module.TokenPrefixRLModule` (embedding + LSTM over the
prefix), warm-started from the MLE generator, and evaluated with the REINFORCE path's code. With
--reward oracle the oracle's likelihood scores sequences on every runner and no discriminator trains
(the upper bound, as in train/sb3.py).

A runner that fails is not restarted and a round that sampled nothing stops the script with an
error. The run folder holds config.json, metrics.csv (its last columns the reward's signal
diagnostics, train/diagnostics.py), tb/ (losses/*, eval/*, signal/*, rollout/ep_rew_mean), latest.pt
(the resume point, every --eval-every rounds: RLlib's state as plain tensors, loaded weights-only),
final.pt, curve.png, signal.png and samples.txt. A resumed run continues at the last checkpoint's round
with the models, optimizers and schedule restored; it does not repeat the killed run's samples bit for
bit (each runner's env and RLlib's own sampling draw from generators this script does not checkpoint).
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from seqgan_env.checkpoint import load_checkpoint
from seqgan_env.text import CorpusError
from train.cli import fail
from train.evaluation import run_summary
from train.rllib_config import RLlibConfig, parse_rllib_config
from train.run_folder import RunFolder
from train.sb3_run import make_discriminator
from train.sources import learner_source, load_pretrained
from train.stages import open_experiment, run_experiment


def check_ray() -> None:
    """A clear error where Ray RLlib is not installed."""
    try:
        import ray.rllib  # noqa: F401
    except ImportError as err:
        raise ImportError(f"train/rllib.py needs Ray RLlib: pip install -e \".[rllib]\" ({err})") from None


def source_folder(cfg: RLlibConfig, run: RunFolder) -> Path:
    """Where the pre-training comes from: --pretrained, else the in-place RUN/pretrain."""
    return Path(cfg.pretrained) if cfg.pretrained is not None else run.path / "pretrain"


def open_run(cfg: RLlibConfig) -> tuple[RunFolder, dict[str, Any] | None, Any]:
    """Check what the run will read, then make (or lock, to resume) the run folder. Returns it, the
    checkpoint to resume from (None: from round 0) and the in-place pre-training to run (or None)."""
    if cfg.resume is not None:
        run = RunFolder(cfg.resume)
        run.lock()
        run.remove_temporaries()
        load_pretrained(source_folder(cfg, run))  # its pre-training finished, and is readable
        latest = run.checkpoint("latest")
        state = load_checkpoint(latest) if latest.is_file() else None
        if state is not None:
            from train.rllib_run import check_run_state

            check_run_state(state, latest)
        return run, state, None
    name = cfg.name or f"rllib_{cfg.algo}_s{cfg.seed}_{datetime.now():%Y%m%d-%H%M%S}"
    run = RunFolder(Path(cfg.out) / name)
    vocab_size, seq_len, pre_cfg = learner_source(cfg.pretrained, cfg, run)
    make_discriminator(cfg, vocab_size, seq_len, torch.Generator(device="cpu"))  # --disc-filters fit T
    if run.path.exists():
        raise FileExistsError(f"run folder {run.path} already exists: pass --resume {run.path} to continue "
                              "it, or choose another --name")  # fmt: skip
    run.create(cfg.settings())
    return run, None, open_experiment(pre_cfg) if pre_cfg is not None else None


def main(argv: list[str] | None = None) -> int:
    t0 = time.monotonic()
    try:  # every check of the user's input happens before anything is written
        cfg = parse_rllib_config(argv, __doc__)
        check_ray()
        run, state, pretrain = open_run(cfg)
    except (
        ValueError, TypeError, FileNotFoundError, FileExistsError, ImportError, CorpusError, RuntimeError
    ) as err:
        return fail(err)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if pretrain is not None:
        run_experiment(pretrain, until="adversarial")
    import ray

    from train.rllib_run import RLlibRun

    if cfg.ray_address is not None:
        ray.init(address=cfg.ray_address, logging_level="ERROR")
    else:
        ray.init(num_cpus=cfg.ray_cpus or max(cfg.num_env_runners, 1), include_dashboard=False,
                 logging_level="ERROR")  # fmt: skip
    try:
        pre = load_pretrained(source_folder(cfg, run))
        rllib_run = RLlibRun(cfg, run, pre, pre.oracle())
        if state is not None:
            try:
                rllib_run.resume(state)
            except ValueError as err:
                return fail(err)
            print(f"resuming {run.path} at round {rllib_run.done}", flush=True)
        else:
            print(f"run folder: {run.path}; pre-trained generator from {pre.source}", flush=True)
            rllib_run.pretrain_discriminator()
        rllib_run.learn()
        rllib_run.finish()
    except (RuntimeError, ray.exceptions.RayError) as err:  # a runner failed or sampled nothing
        first = (str(err).splitlines() or [type(err).__name__])[0]
        print(f"error: {first} (the run folder keeps its last checkpoint)", file=sys.stderr)
        return 1
    finally:
        ray.shutdown()
    print(run_summary(f"rllib {cfg.algo}, {cfg.num_env_runners} env runners", rllib_run.rows, cfg.rounds,
                      "RLlib", rllib_run.elapsed_s(), time.monotonic() - t0, run.path))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
