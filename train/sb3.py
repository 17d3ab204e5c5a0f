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
D(y) and a return-based algorithm optimises what SeqGAN does (SPEC 3); "mc" (r_t = Q_t) would need
gamma 0 for a generic algorithm, "terminal" (D(y) at the end) skips the Monte Carlo search.

The run folder (--out/--name) holds config.json, metrics.csv (a row per evaluation, the source's MLE
rows first), tb/ (losses/* and eval/*; SB3's own logs in a subfolder), model.zip (the SB3 model), final.pt (a
seqgan-env checkpoint: generator, rollout policy, discriminator; loadable by SeqGAN-v0's
checkpoint=), curve.png and samples.txt.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces

from agents.sb3 import algorithm_class, check_saved_model
from seqgan_env.text import CorpusError
from train.cli import fail
from train.config import pretraining_config
from train.run_folder import RunFolder
from train.sb3_config import parse_sb3_config
from train.sb3_run import SB3Run, make_discriminator
from train.sources import load_pretrained, make_oracle, pretrained_checkpoint
from train.stages import open_experiment, run_experiment


def main(argv: list[str] | None = None) -> int:
    t0 = time.monotonic()
    try:  # every check of the user's input happens before anything is written
        cfg = parse_sb3_config(argv, __doc__)
        algorithm_class(cfg.algo)  # sb3-contrib present where needed
        name = cfg.name or f"sb3_{cfg.algo}_s{cfg.seed}_{datetime.now():%Y%m%d-%H%M%S}"
        run = RunFolder(Path(cfg.out) / name)
        if cfg.pretrained is not None:
            _, settings = pretrained_checkpoint(cfg.pretrained)
            vocab_size, seq_len = settings["vocab_size"], settings["seq_len"]
        else:
            pre_cfg = pretraining_config(cfg, run)
            vocab_size, seq_len = pre_cfg.vocab_size, pre_cfg.seq_len
            make_oracle(vocab_size, seq_len, pre_cfg.oracle, pre_cfg.oracle_seed)  # a bad file fails now
        if cfg.load is not None:
            check_saved_model(cfg.algo, cfg.load, spaces.Box(0, vocab_size, shape=(seq_len,), dtype=np.int64))
        bad = [t for t in cfg.masked_tokens() if not 0 <= t < vocab_size]
        if bad:
            raise ValueError(f"--mask-tokens {bad} are not token ids in [0, {vocab_size})")
        make_discriminator(cfg, vocab_size, seq_len, torch.Generator(device="cpu"))  # --disc-filters fit T
        if run.path.exists():
            raise FileExistsError(f"run folder {run.path} already exists: remove it to start again, or "
                                  "choose another --name")  # fmt: skip
        run.create(cfg.settings())
        pretrain = open_experiment(pre_cfg) if cfg.pretrained is None else None  # into RUN/pretrain
    except (
        ValueError, TypeError, FileNotFoundError, FileExistsError, ImportError, CorpusError, RuntimeError
    ) as err:
        return fail(err)
    if cfg.reward_mode == "mc" and cfg.gamma > 0:
        print(f"warning: --reward-mode mc with --gamma {cfg.gamma}: the return then sums Q_t over the "
              "episode (SPEC 3: use --gamma 0 with mc, or the default shaped rewards)", file=sys.stderr)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if pretrain is not None:
        run_experiment(pretrain, until="adversarial")
    pre = load_pretrained(pretrain.run.path if pretrain is not None else str(cfg.pretrained))
    print(f"pre-trained generator from {pre.source}" + ("" if pre.discriminator is not None else
          "; no pre-trained discriminator there: pre-training one here"), flush=True)  # fmt: skip
    sb3_run = SB3Run(cfg, run, pre, pre.oracle())
    sb3_run.pretrain_discriminator()
    sb3_run.learn()
    sb3_run.finish()
    start = next(r for r in sb3_run.rows if r["phase"] == "adversarial")
    end = sb3_run.rows[-1]
    print(f"{cfg.algo}: NLL-oracle {start['nll_oracle']:.3f} -> {end['nll_oracle']:.3f} "
          f"(+-{end['nll_oracle_se']:.3f}), NLL-test {start['nll_test']:.3f} -> {end['nll_test']:.3f} "
          f"after {cfg.rounds} rounds; SB3 stage {sb3_run.elapsed_s() / 60:.1f} min, total "
          f"{(time.monotonic() - t0) / 60:.1f} min; results in {run.path}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
