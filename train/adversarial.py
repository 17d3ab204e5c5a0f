"""The SeqGAN experiment: data -> MLE pre-training -> discriminator pre-training -> adversarial rounds.

    python train/adversarial.py --preset tiny        # a smoke test: seconds
    python train/adversarial.py                      # the cpu preset on the built-in oracle: 17 min
    python train/adversarial.py --preset paper --oracle target_params_py3.pkl --device cuda
    python train/adversarial.py --resume runs/NAME   # continue a killed run from its last checkpoint
    python train/adversarial.py --init-from runs/PRE # start from a train/pretrain.py run
    python train/adversarial.py --data corpus.txt --level word   # real text (one sequence per line)

The defaults shown below are the cpu preset's; `--preset paper --help` or `--preset tiny --help`
shows that preset's. A run started from another (--init-from) takes its data, oracle, sizes and
preset; an option that contradicts them is an error.

With --data there is no oracle: V comes from the corpus's vocabulary (vocab.json), sequences end with
<eos>, and evaluations report NLL-test, BLEU-2..5 against held-out lines and Self-BLEU-2..5 instead of
NLL-oracle (train/sample.py prints a run's text). `--reward bleu` is PG-BLEU: BLEU against the training
data rewards the generator in place of the discriminator, which is then never trained.

Each adversarial round: the REINFORCE agent samples `batch_size` sequences on SeqGAN-v0 (one vector-env
episode each, Monte Carlo rewards), makes one policy-gradient step, syncs the env's rollout policy, and
the discriminator-updating wrapper retrains the discriminator (`disc_repeats` x {negatives, epochs}).
`--mode constant` (REINFORCE with reward 1) and `--mode mle` (continued MLE) are the controls, at the
same number of generator updates.
"""

from __future__ import annotations

import sys

from seqgan_env.text import CorpusError
from train.cli import fail
from train.config import parse_config
from train.stages import open_experiment, run_experiment, stop_message
from train.stopping import run_stoppable

LABELS = {"nll_oracle": "NLL-oracle", "nll_test": "NLL-test", "bleu4": "BLEU-4", "self_bleu4": "Self-BLEU-4"}


def main(argv: list[str] | None = None) -> int:
    try:  # every check of the user's input happens before anything is written
        cfg = parse_config(argv, __doc__)
        exp = open_experiment(cfg)
    except (ValueError, TypeError, OSError, CorpusError, RuntimeError) as err:
        return fail(err)
    stopped = run_stoppable(lambda: run_experiment(exp), lambda err: stop_message(exp, err, "adversarial.py"))
    if stopped is not None:
        return stopped
    rows = exp.metrics
    start = next((r for r in rows if r["phase"] == "adversarial" and r["step"] == 0), None)
    if start is not None:
        end, minutes = rows[-1], exp.elapsed_s() / 60
        scores = (
            ("bleu4", "self_bleu4", "nll_test") if exp.vocabulary is not None else ("nll_oracle", "nll_test")
        )
        change = ", ".join(f"{LABELS[k]} {start[k]:.3f} -> {end[k]:.3f}" for k in scores)
        real = next((r for r in rows if r["phase"] == "real"), None)
        yardstick = "" if real is None else (
            f"; the real held-out lines: BLEU-4 {real['bleu4']:.3f}, Self-BLEU-4 {real['self_bleu4']:.3f}")
        print(f"{change} after {exp.cfg.rounds} rounds ({minutes:.1f} min){yardstick}; results in "
              f"{exp.run.path}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
