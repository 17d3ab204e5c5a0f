"""Pre-training alone: MLE, then the discriminator; writes RUN/pretrained.pt (and mle.pt) for the
adversarial phase of any learner to start from.

    python train/pretrain.py --name pre                          # the cpu preset's pre-training
    python train/adversarial.py --init-from runs/pre             # REINFORCE from it
    python train/sb3.py --algo ppo --pretrained runs/pre         # or PPO

Its options are train/adversarial.py's pre-training options; the defaults shown are the preset's
(cpu unless --preset is given before --help). A run started from it takes its data, oracle, sizes and
preset. It resumes the same way (`--resume RUN`).
"""

from __future__ import annotations

import sys

from seqgan_env.text import CorpusError
from train.cli import fail
from train.config import parse_config
from train.stages import open_experiment, run_experiment, stop_message
from train.stopping import run_stoppable


def main(argv: list[str] | None = None) -> int:
    try:
        exp = open_experiment(parse_config(argv, __doc__, pretraining=True))
    except (ValueError, TypeError, OSError, CorpusError, RuntimeError) as err:
        return fail(err)
    stopped = run_stoppable(lambda: run_experiment(exp, until="adversarial"),
                            lambda err: stop_message(exp, err, "pretrain.py"))  # fmt: skip
    if stopped is not None:
        return stopped
    print(f"pre-trained in {exp.elapsed_s() / 60:.1f} min: {exp.run.checkpoint('pretrained')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
