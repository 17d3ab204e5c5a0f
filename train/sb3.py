"""SeqGAN's adversarial phase with a Stable-Baselines3 algorithm (PPO, A2C, MaskablePPO, RecurrentPPO).

    python train/sb3.py --algo ppo                               # pre-trains in place (cpu preset), then PPO
    python train/sb3.py --algo ppo --pretrained runs/NAME        # from a train/adversarial.py run folder
    python train/sb3.py --algo a2c --pretrained runs/NAME --load runs/SB3/model.zip   # continue a model

Pre-training comes from a train/pretrain.py or train/adversarial.py run folder (`--pretrained`: its
pretrained.pt, i.e. MLE + discriminator pre-training, else its mle.pt), or is made in place, in this
process, with train/pretrain.py's stages (--pretrain-preset, --pretrain-args) into RUN/pretrain.
Where the source has no pre-trained discriminator (mle.pt only, or --disc-pretrain-repeats 0), one of
this script's --disc-* sizes is pre-trained here.

Each round (train.stages.run_rounds, the REINFORCE path's loop, with agents.sb3.SB3Learner): one
SB3 update of the policy (a rollout of --n-steps tokens in each of --n-envs envs of SeqGAN-v0, then
the algorithm's gradient steps), the env's rollout policy synced to the policy, and the discriminator
retrained by the same DiscriminatorTrainingVectorWrapper as the REINFORCE agent's. The policy starts
as the MLE generator (the warm start: equal next-token distributions), and is evaluated with the
REINFORCE path's code (train.evaluation.evaluate: NLL-oracle, NLL-test).

Rewards default to "shaped" with gamma 1: r_t = Q_t - Q_{t-1}, so an episode's return is exactly
D(y) and a return-based algorithm optimises what SeqGAN does; "mc" (r_t = Q_t) would need
gamma 0 for a generic algorithm, "terminal" (D(y) at the end) skips the Monte Carlo search.

The run folder (--out/--name) holds config.json, metrics.csv (a row per evaluation, the source's MLE
rows first; its last columns are the reward's signal diagnostics, train/diagnostics.py), tb/ (losses/*,
eval/* and signal/*; SB3's own logs in a subfolder), model.zip (the SB3 model), final.pt (a
seqgan-env checkpoint: generator, rollout policy, discriminator; loadable by SeqGAN-v0's
checkpoint=), curve.png, signal.png and samples.txt.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from datetime import datetime
from pathlib import Path

from seqgan_env.finite import NonFiniteError
from seqgan_env.text import CorpusError
from train.cli import as_flags, fail
from train.evaluation import run_summary
from train.experiment import Experiment
from train.run_folder import RunFolder
from train.sb3_config import SB3Config, parse_sb3_config
from train.sb3_job import check_sb3_run, train_sb3
from train.sb3_run import SB3Run
from train.sources import learner_source
from train.stages import open_experiment, position, run_experiment
from train.stopping import cause, command, run_stoppable


def main(argv: list[str] | None = None) -> int:
    t0 = time.monotonic()
    try:  # every check of the user's input happens before anything is written
        cfg = parse_sb3_config(argv, __doc__)
        name = cfg.name or f"sb3_{cfg.algo}_s{cfg.seed}_{datetime.now():%Y%m%d-%H%M%S}"
        run = RunFolder(Path(cfg.out) / name)
        _, _, pre_cfg = learner_source(cfg.pretrained, cfg, run)
        if pre_cfg is not None:
            source = pre_cfg.run_settings()
        else:
            source = RunFolder(str(cfg.pretrained)).saved_config()
        check_sb3_run(cfg, source)
        if run.path.exists():
            raise FileExistsError(f"run folder {run.path} already exists: remove it to start again, or "
                                  "choose another --name")  # fmt: skip
        run.create(cfg.settings())
        try:
            pretrain = open_experiment(pre_cfg) if pre_cfg is not None else None  # into RUN/pretrain
        except BaseException:
            run.discard()
            raise
    except (ValueError, TypeError, OSError, ImportError, CorpusError, RuntimeError) as err:
        return fail(err)
    if cfg.reward_mode == "mc" and cfg.gamma > 0:
        print(f"warning: --reward-mode mc with --gamma {cfg.gamma}: the return then sums Q_t over the "
              "episode (use --gamma 0 with mc, or the default shaped rewards)", file=sys.stderr)
    source_path = pretrain.run.path if pretrain is not None else Path(str(cfg.pretrained))
    runs: list[SB3Run] = []

    def train() -> None:
        if pretrain is not None:
            run_experiment(pretrain, until="adversarial")
        train_sb3(cfg, run, source_path, started=runs.append)

    stopped = run_stoppable(train, lambda err: stop_message(err, cfg, run, source_path, pretrain, runs))
    if stopped is not None:
        return stopped
    print(run_summary(cfg.algo, runs[0].rows, cfg.rounds, "SB3", runs[0].elapsed_s(), time.monotonic() - t0,
                      run.path))  # fmt: skip
    return 0


def stop_message(
    err: BaseException, cfg: SB3Config, run: RunFolder, source: Path, pretrain: Experiment | None,
    runs: list[SB3Run],
) -> str:  # fmt: skip
    """The one line of a run that stopped early (train.stopping): why, how far it got, and how to
    start it again, from the same pre-training (an SB3 run does not resume)."""
    if isinstance(err, NonFiniteError):
        return f"{cause(err)}; nothing non-finite was saved"
    skip = ("pretrained", "pretrain_preset", "pretrain_args", "oracle", "out", "name")
    defaults = SB3Config()
    changed = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
               if f.name not in skip and getattr(cfg, f.name) != getattr(defaults, f.name)}  # fmt: skip
    again = command("sb3.py", *as_flags(changed), "--pretrained", str(source), "--out", str(run.path.parent),
                    "--name", f"{run.path.name}_again")  # fmt: skip
    if not runs and pretrain is not None and pretrain.stage not in ("adversarial", "done"):
        finish = command("pretrain.py", "--resume", str(pretrain.run.path))
        return (f"{cause(err)} after {position(pretrain)} of the pre-training in {pretrain.run.path}; "
                f"train/sb3.py does not resume a run: finish the pre-training with {finish}, then start the "
                f"SB3 phase from it with {again}")  # fmt: skip
    where = f" after {runs[0].done} of {cfg.rounds} rounds" if runs else ""
    kept = f" (model.zip holds round {runs[0].saved}'s policy)" if runs and runs[0].saved is not None else ""
    return (f"{cause(err)}{where}; train/sb3.py does not resume a run{kept}: start it again from the same "
            f"pre-training with {again}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
