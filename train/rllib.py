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

import contextlib
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from seqgan_env.checkpoint import load_checkpoint
from seqgan_env.finite import NonFiniteError
from seqgan_env.text import CorpusError
from train.allocator import keep_freed_memory
from train.cli import fail
from train.evaluation import run_summary
from train.experiment import Experiment
from train.reproducibility import thread_note
from train.rllib_config import RLlibConfig, parse_rllib_config
from train.run_folder import RunFolder
from train.sb3_run import make_discriminator
from train.sources import learner_source, load_pretrained
from train.stages import open_experiment, position, run_experiment
from train.stopping import cause, command, restore_signal_handlers, run_stoppable


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
        try:
            run.remove_temporaries()
            load_pretrained(source_folder(cfg, run))  # its pre-training finished, and is readable
            latest = run.checkpoint("latest")
            state = load_checkpoint(latest) if latest.is_file() else None
            if state is not None:
                from train.rllib_run import check_run_state

                check_run_state(state, latest)
        except BaseException:
            run.close()
            raise
        return run, state, None
    name = cfg.name or f"rllib_{cfg.algo}_s{cfg.seed}_{datetime.now():%Y%m%d-%H%M%S}"
    run = RunFolder(Path(cfg.out) / name)
    vocab_size, seq_len, pre_cfg = learner_source(cfg.pretrained, cfg, run)
    make_discriminator(cfg, vocab_size, seq_len, torch.Generator(device="cpu"))  # --disc-filters fit T
    if run.path.exists():
        raise FileExistsError(f"run folder {run.path} already exists: pass --resume {run.path} to continue "
                              "it, or choose another --name")  # fmt: skip
    # The driver's thread count changes its floats' rounding: config.json records it for --resume.
    run.create({**cfg.settings(), "threads": cfg.threads or torch.get_num_threads()})
    try:
        return run, None, open_experiment(pre_cfg) if pre_cfg is not None else None
    except BaseException:
        run.discard()
        raise


def main(argv: list[str] | None = None) -> int:
    t0 = time.monotonic()
    try:  # every check of the user's input happens before anything is written
        cfg = parse_rllib_config(argv, __doc__)
        check_ray()
        run, state, pretrain = open_run(cfg)
    except (ValueError, TypeError, OSError, ImportError, CorpusError, RuntimeError) as err:
        return fail(err)
    keep_freed_memory()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    runs: list[Any] = []  # the RLlibRun, once built
    failures: list[str] = []  # a runner that failed, a round that sampled nothing
    refused: list[str] = []  # a resume point that does not fit the run

    def train() -> None:
        if pretrain is not None:
            run_experiment(pretrain, until="adversarial")
        import ray

        from train.rllib_run import RLlibRun

        if cfg.ray_address is not None:
            ray.init(address=cfg.ray_address, logging_level="ERROR")
        else:
            ray.init(num_cpus=cfg.ray_cpus or max(cfg.num_env_runners, 1), include_dashboard=False,
                     logging_level="ERROR")  # fmt: skip
        restore_signal_handlers()  # ray.init's own exits without a word
        try:
            pre = load_pretrained(source_folder(cfg, run))
            runs.append(RLlibRun(cfg, run, pre, pre.oracle()))
            if state is not None:
                try:
                    runs[0].resume(state)
                except ValueError as err:  # a resume point that does not fit this run
                    refused.append(str(err))
                    return
                note = thread_note(run.saved_config().get("threads"), cfg.threads)
                print(f"resuming {run.path} at round {runs[0].done}{note}", flush=True)
            else:
                print(f"run folder: {run.path}; pre-trained generator from {pre.source}", flush=True)
                runs[0].pretrain_discriminator()
            runs[0].learn()
            runs[0].finish()
        except NonFiniteError:
            raise
        except (RuntimeError, ray.exceptions.RayError) as err:  # a runner failed or sampled nothing
            failures.append((str(err).splitlines() or [type(err).__name__])[0])
        finally:
            with contextlib.suppress(OSError):
                run.close()
            ray.shutdown()

    stopped = run_stoppable(train, lambda err: stop_message(err, run, pretrain, runs[0] if runs else None))
    if stopped is not None:
        return stopped
    if refused:
        return fail(refused[0])
    if failures:
        print(f"error: {failures[0]} (the run folder keeps its last checkpoint)", file=sys.stderr)
        return 1
    print(run_summary(f"rllib {cfg.algo}, {cfg.num_env_runners} env runners", runs[0].rows, cfg.rounds,
                      "RLlib", runs[0].elapsed_s(), time.monotonic() - t0, run.path))  # fmt: skip
    return 0


def stop_message(err: BaseException, run: RunFolder, pretrain: Experiment | None, rllib_run: Any) -> str:
    """The one line of a run that stopped early (train.stopping): why, how far it got, and the
    command that continues it."""
    saved = None if rllib_run is None else rllib_run.saved
    if isinstance(err, NonFiniteError):
        kept = "it has no checkpoint" if saved is None else f"its last checkpoint is at round {saved}"
        return f"{cause(err)}; nothing non-finite was saved ({kept})"
    resume = command("rllib.py", "--resume", str(run.path))
    if rllib_run is None and pretrain is not None and pretrain.stage not in ("adversarial", "done"):
        finish = command("pretrain.py", "--resume", str(pretrain.run.path))
        return (f"{cause(err)} after {position(pretrain)} of the pre-training in {pretrain.run.path}; "
                f"finish it with {finish}, then continue the run with {resume}")  # fmt: skip
    where = "" if rllib_run is None else f" after {rllib_run.done} of {rllib_run.cfg.rounds} rounds"
    kept = "no checkpoint yet, it starts again" if saved is None else f"it resumes from round {saved}"
    return f"{cause(err)}{where}; {kept} with: {resume}"


if __name__ == "__main__":
    sys.exit(main())
