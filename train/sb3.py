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

import sys
import time
from datetime import datetime
from pathlib import Path

from seqgan_env.text import CorpusError
from train.cli import fail
from train.evaluation import run_summary
from train.run_folder import RunFolder
from train.sb3_config import parse_sb3_config
from train.sb3_job import check_sb3_run, train_sb3
from train.sources import learner_source
from train.stages import open_experiment, run_experiment


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
        pretrain = open_experiment(pre_cfg) if pre_cfg is not None else None  # into RUN/pretrain
    except (
        ValueError, TypeError, FileNotFoundError, FileExistsError, ImportError, CorpusError, RuntimeError
    ) as err:
        return fail(err)
    if cfg.reward_mode == "mc" and cfg.gamma > 0:
        print(f"warning: --reward-mode mc with --gamma {cfg.gamma}: the return then sums Q_t over the "
              "episode (use --gamma 0 with mc, or the default shaped rewards)", file=sys.stderr)
    if pretrain is not None:
        run_experiment(pretrain, until="adversarial")
    sb3_run = train_sb3(cfg, run, pretrain.run.path if pretrain is not None else str(cfg.pretrained))
    print(run_summary(cfg.algo, sb3_run.rows, cfg.rounds, "SB3", sb3_run.elapsed_s(), time.monotonic() - t0,
                      run.path))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
