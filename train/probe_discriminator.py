"""How informative can a discriminator's reward be? A probe of the discriminator side.

Trains a fresh discriminator of the given kind, sizes and schedule against the FIXED generator of a
pre-trained run (its pretrained.pt or mle.pt), with the rounds' own schedule object
(`seqgan_env.wrappers.DiscriminatorUpdater`): each repeat is one balanced set, --n-negatives fresh
samples of the generator against as many real sequences drawn at random from the pool of real data,
trained on for --epochs. The pool is the run's real training sequences, or --n-real sequences: the
run's and more drawn from its oracle (the synthetic benchmark can draw any number). After each
repeat it measures, on sequences it never trained on:

- `heldout_auc`: ROC AUC of D on all of the run's held-out real sequences against --eval-samples
  fresh generated ones (0.5: D cannot tell them apart; this is what the reward needs);
- `train_auc`: the same with --eval-samples of the real sequences of the set just trained on: far
  above `heldout_auc` means D learns its training sequences by heart;
- `reward_oracle_spearman`: the rank correlation of D(y) with the oracle's log-likelihood of the fresh
  generated sequences: does the reward rank the generator's own samples by quality?
- `dense_oracle_spearman` (--kind prefix): the rank correlation of each step's dense reward
  2 sigmoid(D_t) - 1 with the oracle's log-likelihood of that step's token, averaged over steps.

    python train/probe_discriminator.py --pretrained runs/compare_cpu_s0_seqgan --disc-lr 1e-3
    python train/probe_discriminator.py --pretrained runs/NAME --disc-filters paper --disc-embed-dim 64
    python train/probe_discriminator.py --pretrained runs/NAME --kind prefix --disc-lr 1e-3 --n-real 99840

Writes RUN/metrics.csv (a row per repeat, rewritten after each) into --out/--name.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch

from seqgan_env import memory
from seqgan_env.devices import resolve_device
from seqgan_env.diagnostics import (
    dense_reward_correlation,
    discriminator_accuracy_auc,
    reward_quality_correlation,
)
from seqgan_env.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.finite import NonFiniteError, require_finite
from seqgan_env.prefix_discriminator import AnyDiscriminator, PrefixDiscriminator, PrefixDiscriminatorConfig
from seqgan_env.token_lstm import TokenLSTM
from seqgan_env.wrappers import DiscriminatorSchedule, DiscriminatorUpdater
from train.allocator import keep_freed_memory
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
from train.config import parse_filters
from train.dense import prefix_config
from train.rng import derive_seed, seeded_rng
from train.run_folder import RunFolder
from train.sizes import discriminator_terms
from train.sources import Pretrained, load_pretrained
from train.stopping import cause, command, run_stoppable

FIELDS = ("repeat", "n_real", "d_loss", "heldout_auc", "train_auc", "reward_oracle_spearman",
          "dense_oracle_spearman", "elapsed_s")  # fmt: skip


@dataclass
class ProbeConfig:
    """Every option of the probe."""

    pretrained: str | None = option("a train/adversarial.py or train/pretrain.py run folder", required=True,
                                    default=None)  # fmt: skip
    kind: Literal["cnn", "prefix"] = option(
        "cnn: the paper's discriminator of finished sequences; prefix: the dense mode's causal LSTM",
        default="cnn")  # fmt: skip
    disc_lr: float = option("the discriminator's Adam learning rate", default=1e-4, above=0,
                            at_most=MAX_LR)
    disc_embed_dim: int = option("embedding size (0: the run's discriminator's; prefix: 64)", default=0,
                                 at_least=0)  # fmt: skip
    disc_filters: str = option("cnn filters: 'run' (the run's discriminator's), 'paper', or width:filters "
                               "pairs", default="run")  # fmt: skip
    disc_dropout: float = option("cnn: dropout before the output layer", default=0.25, at_least=0, below=1)
    l2_reg: float = option("cnn: L2 weight on the output layer (the reference's 0.2)", default=0.2,
                           at_least=0, at_most=MAX_SCALE)  # fmt: skip
    disc_hidden_dim: int = option("prefix: LSTM size", default=128, at_least=1)
    disc_layer_norm: bool = option("prefix: layer norm on the gates", default=True)
    disc_embed_dropout: float = option("prefix: dropout on the embedding matrix", default=0.1, at_least=0,
                                       below=1)  # fmt: skip
    disc_l2: float = option("prefix: L2 weight on every weight", default=1e-6, at_least=0, at_most=MAX_SCALE)
    disc_beta1: float = option("prefix: Adam's beta1", default=0.5, at_least=0, below=1)
    disc_beta2: float = option("prefix: Adam's beta2", default=0.999, at_least=0, below=1)
    n_real: int = option("real sequences in the pool (0: the run's training sequences; more: the run's and "
                         "fresh oracle samples)", default=0, at_least=0)  # fmt: skip
    repeats: int = option("balanced sets, each --n-negatives fresh negatives against as many real "
                          "sequences from the pool, trained on for --epochs", default=10, at_least=1)
    epochs: int = option("epochs over each set of real + negatives", default=1, at_least=1)
    n_negatives: int = option("generated negatives (and real sequences) per set", default=4992, at_least=1)
    batch_size: int = option("discriminator minibatch", default=64, at_least=1)
    eval_samples: int = option("fresh generated sequences per measurement (and training ones for train_auc); "
                               "held-out: all of the run's", default=2000, at_least=2)  # fmt: skip
    seed: int = option("seed of the discriminator's initialisation, its minibatches and the samples",
                       default=0)  # fmt: skip
    device: str = option("torch device", default="cpu")
    threads: int = option("CPU threads for torch (0: torch's default)", default=0, at_least=0)
    out: str = option("folder holding run folders", default="runs")
    name: str | None = option("run folder name", default=None, shown="probe_KIND_sSEED_lrLR")

    def validate(self) -> None:
        check_options(self)
        check_run_options(self, paths=("pretrained",))
        if self.pretrained is None:
            raise ValueError("--pretrained RUN is required: the run whose generator the probe trains against")


def discriminator_config(cfg: ProbeConfig, run: Any, vocab: int, seq_len: int) -> DiscriminatorConfig:
    """The probed CNN's sizes: the run's where asked for (or where no other is given)."""
    run = run if isinstance(run, DiscriminatorConfig) else None  # a prefix discriminator's sizes differ
    if cfg.disc_filters == "run":
        if run is None:
            raise ValueError("--disc-filters run: the run has no pre-trained CNN discriminator; give the "
                             "filters")
        filters = run.filters
    else:
        filters = parse_filters(cfg.disc_filters, seq_len, words=("run", "paper"))
    embed = cfg.disc_embed_dim or (run.embed_dim if run is not None else 64)
    return DiscriminatorConfig(vocab, seq_len, embed, filters, cfg.disc_dropout, cfg.l2_reg, cfg.disc_lr)


def probed_config(cfg: ProbeConfig, pre: Pretrained) -> DiscriminatorConfig | PrefixDiscriminatorConfig:
    """The sizes of the discriminator of --kind the options describe (checked: a ValueError); nothing
    is allocated."""
    vocab, seq_len = pre.generator.config.vocab_size, pre.generator.config.seq_len
    if cfg.kind == "prefix":
        embed = cfg.disc_embed_dim or 64
        return prefix_config(dataclasses.replace(cfg, disc_embed_dim=embed), vocab, seq_len)
    run_config = None if pre.discriminator is None else pre.discriminator.config
    return discriminator_config(cfg, run_config, vocab, seq_len)


def check_probe_memory(cfg: ProbeConfig, config: DiscriminatorConfig | PrefixDiscriminatorConfig) -> None:
    """Refuse sizes whose largest buffers cannot fit in this machine's memory, before anything is
    allocated: the discriminator in training (`discriminator_terms`), the pool of real sequences, a
    set's negatives and the measurements' fresh samples."""
    T = config.seq_len
    terms = {
        **discriminator_terms(config, cfg.batch_size, "--batch-size", also=()),
        "--n-real": 8 * T * cfg.n_real,
        "--n-negatives": 2 * 8 * T * cfg.n_negatives,
        "--eval-samples": 8 * T * cfg.eval_samples,
    }
    memory.check_memory(terms)


def make_discriminator(
    config: DiscriminatorConfig | PrefixDiscriminatorConfig, rng: torch.Generator
) -> AnyDiscriminator:
    """A fresh discriminator of the sizes `config` (from `probed_config`)."""
    if isinstance(config, PrefixDiscriminatorConfig):
        return PrefixDiscriminator(config, rng=rng)
    return Discriminator(config, rng=rng)


def real_pool(pre: Pretrained, oracle: TokenLSTM, n_real: int, seed: int) -> torch.Tensor:
    """The run's real training sequences, topped up to `n_real` with fresh oracle samples (seeded)."""
    if n_real <= len(pre.real):
        return pre.real if n_real == 0 else pre.real[:n_real]
    rng = seeded_rng(derive_seed(seed, "real"))  # CPU
    more = oracle.cpu().sample(n_real - len(pre.real), rng)
    return torch.cat([pre.real, more])


def probe(
    cfg: ProbeConfig, pre: Pretrained, oracle: TokenLSTM, run: RunFolder, rows: list[dict[str, float]]
) -> None:
    """Train a fresh discriminator against the run's fixed generator, set by set, measuring after each
    (the module docstring), into `rows` and RUN/metrics.csv; each set's loss and discriminator are
    checked finite before its row is written (`NonFiniteError`)."""
    keep_freed_memory()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(derive_seed(cfg.seed, "torch"))  # dropout's generator
    device = resolve_device(cfg.device)
    generator, oracle = pre.generator.to(device), oracle.to(device)
    init = seeded_rng(derive_seed(cfg.seed, "init"))
    discriminator = make_discriminator(probed_config(cfg, pre), init).to(device)
    real = real_pool(pre, oracle, cfg.n_real, cfg.seed).to(device)
    rng = seeded_rng(derive_seed(cfg.seed, "train"), device)
    eval_rng = seeded_rng(derive_seed(cfg.seed, "eval"), device)
    with torch.no_grad():
        fresh = generator.sample(cfg.eval_samples, eval_rng)  # the same probe set after every repeat
    heldout = pre.test.to(device)
    schedule = DiscriminatorSchedule(None, 1, cfg.n_negatives, cfg.epochs, cfg.batch_size)
    updater = DiscriminatorUpdater(discriminator, real, lambda n: generator.sample(n, rng), schedule, rng)
    start = time.monotonic()
    for repeat in range(1, cfg.repeats + 1):
        loss = updater.train()
        require_finite(f"repeat {repeat}", {"discriminator loss": loss}, discriminator=discriminator)
        assert updater.last_real is not None
        _, heldout_auc = discriminator_accuracy_auc(discriminator, heldout, fresh)
        _, train_auc = discriminator_accuracy_auc(discriminator, updater.last_real[: cfg.eval_samples], fresh)
        rho = reward_quality_correlation(discriminator, oracle, fresh)
        dense = float("nan")
        if isinstance(discriminator, PrefixDiscriminator):
            dense = dense_reward_correlation(discriminator, oracle, fresh)["mean"]
        rows.append({"repeat": repeat, "n_real": len(real), "d_loss": loss, "heldout_auc": heldout_auc,
                     "train_auc": train_auc, "reward_oracle_spearman": rho, "dense_oracle_spearman": dense,
                     "elapsed_s": round(time.monotonic() - start, 1)})  # fmt: skip
        run.write_metrics(rows, FIELDS)
        print(" ".join(f"{k} {v:.4g}" for k, v in rows[-1].items()), flush=True)


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = ProbeConfig(**vars(config_parser(ProbeConfig, __doc__).parse_args(argv)))
        cfg.validate()
        assert cfg.pretrained is not None
        pre = load_pretrained(cfg.pretrained)
        if pre.settings.get("data") is not None:
            raise ValueError(f"--pretrained {cfg.pretrained} is a text run (--data {pre.settings['data']}): "
                             "the probe measures against the oracle of the synthetic benchmark; a text run "
                             "has none")  # fmt: skip
        d_config = probed_config(cfg, pre)
        check_probe_memory(cfg, d_config)
        oracle = pre.oracle()
        run = RunFolder(f"{cfg.out}/{cfg.name or f'probe_{cfg.kind}_s{cfg.seed}_lr{cfg.disc_lr:g}'}")
        if run.path.exists():
            raise FileExistsError(f"run folder {run.path} already exists: choose another --name")
        run.create({**dataclasses.asdict(cfg), "discriminator": d_config.to_dict()})
    except (ValueError, TypeError, OSError) as err:
        return fail(err)
    rows: list[dict[str, float]] = []
    stopped = run_stoppable(lambda: probe(cfg, pre, oracle, run, rows),
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


if __name__ == "__main__":
    sys.exit(main())
