"""How informative can a discriminator's reward be? A probe of the discriminator side.

Trains a fresh discriminator of the given sizes and schedule against the FIXED generator of a
pre-trained run (its pretrained.pt or mle.pt), with the run's real training sequences as positives and
a fresh set of the generator's samples as negatives each repeat, as the adversarial rounds do. After
each repeat it measures, on sequences it never trained on:

- `heldout_auc`: ROC AUC of D on the run's held-out real sequences against fresh generated ones (0.5:
  D cannot tell them apart; this is what the reward needs);
- `train_auc`: the same with the training's real sequences: far above `heldout_auc` means D learns
  the training set by heart instead of what makes a sequence real;
- `reward_oracle_spearman`: the rank correlation of D(y) with the oracle's log-likelihood of fresh
  generated sequences: does the reward rank the generator's own samples by quality?

    python train/probe_discriminator.py --pretrained runs/compare_cpu_s0_seqgan --disc-lr 1e-3
    python train/probe_discriminator.py --pretrained runs/NAME --disc-filters paper --disc-embed-dim 64

Writes RUN/metrics.csv (a row per repeat, rewritten after each) into --out/--name.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass

import torch

from seqgan_env.devices import resolve_device
from seqgan_env.diagnostics import discriminator_accuracy_auc, reward_quality_correlation
from seqgan_env.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.finite import NonFiniteError, require_finite
from seqgan_env.token_lstm import TokenLSTM
from train.cli import (
    MAX_LR,
    MAX_SCALE,
    as_flags,
    check_options,
    check_run_options,
    config_parser,
    fail,
    option,
)
from train.config import Config
from train.rng import derive_seed, seeded_rng
from train.run_folder import RunFolder
from train.sources import Pretrained, load_pretrained
from train.stopping import cause, command, run_stoppable

FIELDS = ("repeat", "d_loss", "heldout_auc", "train_auc", "reward_oracle_spearman", "elapsed_s")


@dataclass
class ProbeConfig:
    """Every option of the probe."""

    pretrained: str | None = option("a train/adversarial.py or train/pretrain.py run folder (required)",
                                    default=None)  # fmt: skip
    disc_lr: float = option("the discriminator's Adam learning rate", default=1e-4, above=0,
                            at_most=MAX_LR)
    disc_embed_dim: int = option("embedding size (0: the run's discriminator's)", default=0, at_least=0)
    disc_filters: str = option("filters: 'run' (the run's discriminator's), 'paper', or width:filters pairs",
                               default="run")  # fmt: skip
    disc_dropout: float = option("dropout before the output layer", default=0.25, at_least=0, below=1)
    l2_reg: float = option("L2 weight on the output layer (the reference's 0.2)", default=0.2, at_least=0,
                           at_most=MAX_SCALE)
    repeats: int = option("sets of fresh negatives, each trained on for --epochs", default=10, at_least=1)
    epochs: int = option("epochs over each set of real + negatives", default=1, at_least=1)
    n_negatives: int = option("generated negatives per set", default=4992, at_least=1)
    batch_size: int = option("discriminator minibatch", default=64, at_least=1)
    eval_samples: int = option("held-out real, training real and fresh generated sequences per measurement",
                               default=2000, at_least=2)  # fmt: skip
    seed: int = option("seed of the discriminator's initialisation, its minibatches and the samples",
                       default=0)  # fmt: skip
    device: str = option("torch device", default="cpu")
    threads: int = option("CPU threads for torch (0: torch's default)", default=0, at_least=0)
    out: str = option("folder holding run folders", default="runs")
    name: str | None = option("run folder name", default=None, shown="probe_sSEED_lrLR")

    def validate(self) -> None:
        check_options(self)
        check_run_options(self, paths=("pretrained",))
        if self.pretrained is None:
            raise ValueError("--pretrained RUN is required: the run whose generator the probe trains against")


def discriminator_config(cfg: ProbeConfig, run: DiscriminatorConfig | None, vocab: int, seq_len: int
                         ) -> DiscriminatorConfig:  # fmt: skip
    """The probed discriminator's sizes: the run's where asked for (or where no other is given)."""
    if cfg.disc_filters == "run":
        if run is None:
            raise ValueError("--disc-filters run: the run has no pre-trained discriminator; give the filters")
        filters = run.filters
    else:
        filters = Config(vocab_size=vocab, seq_len=seq_len, disc_filters=cfg.disc_filters).filters()
    embed = cfg.disc_embed_dim or (run.embed_dim if run is not None else 64)
    return DiscriminatorConfig(vocab, seq_len, embed, filters, cfg.disc_dropout, cfg.l2_reg, cfg.disc_lr)


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = ProbeConfig(**vars(config_parser(ProbeConfig, __doc__).parse_args(argv)))
        cfg.validate()
        assert cfg.pretrained is not None
        pre = load_pretrained(cfg.pretrained)
        vocab, seq_len = pre.generator.config.vocab_size, pre.generator.config.seq_len
        d_config = discriminator_config(
            cfg, None if pre.discriminator is None else pre.discriminator.config, vocab, seq_len
        )
        oracle = pre.oracle()
        run = RunFolder(f"{cfg.out}/{cfg.name or f'probe_s{cfg.seed}_lr{cfg.disc_lr:g}'}")
        if run.path.exists():
            raise FileExistsError(f"run folder {run.path} already exists: choose another --name")
        run.create({**dataclasses.asdict(cfg), "discriminator": d_config.to_dict()})
    except (ValueError, TypeError, OSError) as err:
        return fail(err)
    rows: list[dict[str, float]] = []
    stopped = run_stoppable(lambda: probe(cfg, pre, d_config, oracle, run, rows),
                            lambda err: stop_message(err, cfg, run, len(rows)))  # fmt: skip
    run.close()
    if stopped is not None:
        return stopped
    print(f"wrote {run.path / 'metrics.csv'}")
    return 0


def stop_message(err: BaseException, cfg: ProbeConfig, run: RunFolder, done: int) -> str:
    """The one line of a probe that stopped early (train.stopping): why, how far it got, and the
    command that starts it again (a probe does not resume)."""
    if isinstance(err, NonFiniteError):
        return f"{cause(err)}; metrics.csv holds the {done} repeats before it"
    changed = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
               if f.name != "name" and getattr(cfg, f.name) != f.default}  # fmt: skip
    again = command("probe_discriminator.py", *as_flags(changed), "--name", f"{run.path.name}_again")
    return (f"{cause(err)} after {done} of {cfg.repeats} repeats (metrics.csv holds them); a probe does not "
            f"resume: run it again with {again}")  # fmt: skip


def probe(
    cfg: ProbeConfig, pre: Pretrained, d_config: DiscriminatorConfig, oracle: TokenLSTM, run: RunFolder,
    rows: list[dict[str, float]],
) -> None:  # fmt: skip
    """The probe's repeats into `rows` and RUN/metrics.csv; each repeat's loss and discriminator are
    checked finite before its row is written (`NonFiniteError`)."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(derive_seed(cfg.seed, "torch"))  # dropout's generator
    device = resolve_device(cfg.device)
    generator, oracle = pre.generator.to(device), oracle.to(device)
    discriminator = Discriminator(d_config, rng=seeded_rng(derive_seed(cfg.seed, "init"))).to(device)
    optimizer = discriminator.make_optimizer()
    rng = seeded_rng(derive_seed(cfg.seed, "train"), device)
    eval_rng = seeded_rng(derive_seed(cfg.seed, "eval"), device)
    n = cfg.eval_samples
    real, heldout = pre.real.to(device), pre.test[:n].to(device)
    with torch.no_grad():
        fresh = generator.sample(n, eval_rng)  # the same probe set after every repeat
    start = time.monotonic()
    for repeat in range(1, cfg.repeats + 1):
        with torch.no_grad():
            negatives = generator.sample(cfg.n_negatives, rng)
        loss = discriminator.fit(optimizer, real, negatives, cfg.epochs, cfg.batch_size, rng)
        require_finite(f"repeat {repeat}", {"discriminator loss": loss}, discriminator=discriminator)
        _, heldout_auc = discriminator_accuracy_auc(discriminator, heldout, fresh)
        _, train_auc = discriminator_accuracy_auc(discriminator, real[:n], fresh)
        rho = reward_quality_correlation(discriminator, oracle, fresh)
        elapsed = round(time.monotonic() - start, 1)
        rows.append({"repeat": repeat, "d_loss": loss, "heldout_auc": heldout_auc, "train_auc": train_auc,
                     "reward_oracle_spearman": rho, "elapsed_s": elapsed})  # fmt: skip
        run.write_metrics(rows, FIELDS)
        print(" ".join(f"{k} {v:.4g}" for k, v in rows[-1].items()), flush=True)
    run.close()


if __name__ == "__main__":
    sys.exit(main())
