"""The SeqGAN experiment's options (one dataclass: `--help` is its fields) and their parsing.

A preset (train/presets.py) sets many options; the command line overrides them; a resumed run keeps
its own config, and a run started from another (--init-from) keeps that run's data, oracle and sizes.
Every option is checked (`Config.validate`) before anything is written or computed.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any, Literal

from seqgan_env.discriminator import DiscriminatorConfig, paper_filters
from train.cli import (
    MAX_LR,
    MAX_SCALE,
    MIN_TEMPERATURE,
    check_options,
    check_run_options,
    check_seed,
    config_parser,
    option,
)
from train.diagnostics import DIAG_Q_SAMPLES_HELP, DIAG_REPEATS_HELP, DIAG_SAMPLES_HELP, DIAGNOSTICS_HELP
from train.lineage import source_base
from train.presets import PRESETS, help_defaults, preset_named
from train.run_folder import RunFolder
from train.sizes import check_memory


@dataclass
class Config:
    """Every option of the experiment; a preset sets many of them, the command line overrides."""

    preset: Literal["paper", "cpu", "dense", "tiny"] = option(
        "paper: the reference code's numbers (a GPU); cpu: a 2-core CPU in < 30 min; dense: the cpu preset's "
        "pre-training, then ScratchGAN's dense rewards (docs/dense.md); tiny: a smoke test", default="cpu")
    mode: Literal["seqgan", "constant", "mle"] = option(
        "seqgan, or a control: constant (REINFORCE with reward 1) or mle (continued MLE)", default="seqgan")
    seed: int = option("seed of data sampling, initialisation and training", default=0)
    oracle: str | None = option("the paper's oracle parameter file (.npz, or the reference code's .pkl)",
                              default=None, shown="the built-in seeded N(0,1) oracle")
    oracle_seed: int = option("seed of the built-in random oracle", default=0)
    device: str = option("torch device", default="cpu")
    threads: int = option("CPU threads for torch (0: torch's default, one per core)", default=0, at_least=0)
    precision: Literal["fp32", "bf16", "auto"] = option(
        "products of the discriminator's training and scoring, the Monte Carlo completions and MLE: fp32, "
        "bf16 (autocast; weights, optimizer state and losses stay fp32) or auto (the discriminator in bf16 "
        "where the hardware has bf16 units and they are faster: CUDA tensor cores, a CPU's AMX tiles or "
        "AVX-512 bf16 where its bf16 products measure at least 1.25x as fast as fp32 ones; the completions "
        "and MLE in fp32)", default="fp32")
    compile: bool = option(
        "the discriminator's training steps through torch.compile: fused kernels (on a GPU inside the step's "
        "CUDA graph), the same numbers up to float rounding; compiling takes up to a minute at the start, "
        "and on a CPU the steps run slower", default=False)
    out: str = option("folder holding run folders", default="runs")
    name: str | None = option("run folder name", default=None, shown="PRESET_MODE_sSEED_TIME")
    resume: str | None = option("continue this run folder from its last checkpoint", default=None)
    init_from: str | None = option(
        "start from this run folder's pre-trained models (skips pre-training); its data, oracle and sizes "
        "come with them", default=None)
    vocab_size: int = option("vocabulary size V", default=5000, at_least=1)
    seq_len: int = option("sequence length T", default=20, at_least=1)
    n_real: int = option("real (oracle) training sequences", default=9984, at_least=1)
    n_test: int = option("held-out oracle sequences for NLL-test", default=9984, at_least=1)
    gen_embed_dim: int = option("generator embedding size", default=32, at_least=1)
    gen_hidden_dim: int = option("generator LSTM size", default=32, at_least=1)
    batch_size: int = option(
        "MLE minibatch, discriminator minibatch, and sequences per PG step", default=64, at_least=1)
    mle_epochs: int = option("MLE pre-training epochs", default=120, at_least=0)
    mle_lr: float = option("MLE Adam learning rate", default=0.01, above=0, at_most=MAX_LR)
    grad_clip: float = option("global gradient-norm clip of the generator", default=5.0, above=0)
    mle_eval_every: int = option("evaluate every this many MLE epochs", default=10, at_least=1)
    disc_embed_dim: int = option("discriminator embedding size", default=64, at_least=1)
    disc_filters: str = option("'paper' or width:filters pairs, e.g. 1:50,2:50,5:50", default="paper")
    disc_dropout: float = option("discriminator dropout while training", default=0.25, at_least=0, below=1)
    disc_lr: float = option("discriminator Adam learning rate", default=1e-4, above=0, at_most=MAX_LR)
    disc_pretrain_repeats: int = option(
        "discriminator pre-training: times {fresh negatives, epochs}", default=50, at_least=0)
    disc_epochs: int = option("epochs over each set of real + negatives", default=3, at_least=1)
    n_negatives: int = option("negatives per discriminator training set", default=9984, at_least=1)
    rounds: int = option("adversarial rounds (one generator update each)", default=200, at_least=0)
    n_rollouts: int = option("Monte Carlo completions per prefix (N)", default=16, at_least=1)
    pg_lr: float = option("policy-gradient Adam learning rate", default=0.01, above=0, at_most=MAX_LR)
    disc_repeats: int = option("discriminator trainings {negatives, epochs} per round", default=5, at_least=0)
    rollout_update: Literal["copy", "ema"] = option("copy (the reference code) or ema", default="copy")
    rollout_rate: float = option(
        "ema rate: beta <- rate*beta + (1-rate)*theta", default=0.8, at_least=0, below=1)
    constant_reward: float = option("the reward of --mode constant", default=1.0, at_least=-MAX_SCALE,
                                    at_most=MAX_SCALE)
    baseline: Literal["none", "mean", "loo", "value", "ema"] = option(
        "REINFORCE baseline subtracted from Q_t: none (the paper), mean (the batch's at each step), loo "
        "(leave-one-out), value (a learned value of the prefix) or ema (a moving average of the batch-mean "
        "return, ScratchGAN's)", default="none")
    normalize: bool = option("divide REINFORCE's advantages by their standard deviation", default=False)
    reward_mode: Literal["mc", "dense"] = option(
        "mc: the paper's Monte Carlo rewards, the CNN scoring finished sequences; dense: a prefix "
        "discriminator's reward 2 sigmoid(D_t) - 1 at every step, no search (ScratchGAN)", default="mc")
    pg_batch_size: int = option("sequences per policy-gradient step (0: --batch-size)", default=0, at_least=0)
    pg_beta1: float = option("policy-gradient Adam's beta1", default=0.9, at_least=0, below=1)
    pg_beta2: float = option("policy-gradient Adam's beta2", default=0.999, at_least=0, below=1)
    gamma: float = option("discount of the returns REINFORCE weights tokens by (0: each token by its own "
                          "reward, the paper's weighting)", default=0.0, at_least=0, at_most=1)
    baseline_decay: float = option("--baseline ema: b <- decay*b + (1-decay)*(the batch's mean return)",
                                   default=0.08, at_least=0, below=1)
    disc_batch_size: int = option("discriminator minibatch (0: --batch-size)", default=0, at_least=0)
    disc_hidden_dim: int = option("--reward-mode dense: the prefix discriminator's LSTM size", default=128,
                                  at_least=1)
    disc_layer_norm: bool = option("--reward-mode dense: layer norm on the prefix discriminator's gates",
                                   default=True)
    disc_embed_dropout: float = option("--reward-mode dense: dropout on the prefix discriminator's embedding "
                                       "matrix", default=0.1, at_least=0, below=1)
    disc_l2: float = option("--reward-mode dense: L2 weight on every prefix-discriminator weight",
                            default=1e-6, at_least=0, at_most=MAX_SCALE)
    disc_beta1: float = option("--reward-mode dense: the prefix discriminator's Adam beta1", default=0.5,
                               at_least=0, below=1)
    disc_beta2: float = option("--reward-mode dense: the prefix discriminator's Adam beta2", default=0.999,
                               at_least=0, below=1)
    eval_every: int = option("evaluate and checkpoint every this many rounds (and checkpoint discriminator "
                             "pre-training every this many sets)", default=5, at_least=1)  # fmt: skip
    eval_samples: int = option("generator samples for NLL-oracle", default=9984, at_least=1)
    temperature: float = option("sampling temperature of the evaluation", default=1.0,
                                at_least=MIN_TEMPERATURE)
    diagnostics: bool = option(DIAGNOSTICS_HELP, default=True)
    diag_samples: int = option(DIAG_SAMPLES_HELP, default=1000, at_least=2)
    diag_q_samples: int = option(DIAG_Q_SAMPLES_HELP, default=64, at_least=2)
    diag_repeats: int = option(DIAG_REPEATS_HELP, default=2, at_least=2)
    data: str | None = option(
        "train on this plain-text corpus (UTF-8, one sequence per line, cut to --seq-len tokens) instead of "
        "an oracle; V then comes from the corpus", default=None)
    level: Literal["word", "char"] = option(
        "--data tokens: word (whitespace-separated) or char", default="word")
    max_vocab: int | None = option("--data: at most this many ids, <bos> <eos> <unk> included; rarer tokens "
                                 "become <unk>", default=None, shown="every token of the corpus")
    test_fraction: float = option("--data: share of the lines held out for NLL-test and BLEU", default=0.1)
    bleu_samples: int = option("--data: generated sentences per evaluation for BLEU-2..5 (each against all "
                             "held-out lines) and Self-BLEU-2..5", default=1000)
    self_bleu_samples: int = option("--data: how many of those Self-BLEU scores (each against all the "
                                  "others)", default=500, at_least=1)
    reward: Literal["discriminator", "bleu", "oracle"] = option(
        "what rewards the generator: discriminator (SeqGAN), bleu (PG-BLEU: BLEU-n against the training "
        "data) or oracle (the oracle's own likelihood: a perfect discriminator, the upper bound); with bleu "
        "and oracle no discriminator is trained", default="discriminator")
    bleu_n: int = option("n of BLEU-n, the --reward bleu reward (4: standard BLEU)", default=4, at_least=1)
    progress: bool = option("show progress bars", default=True)

    @property
    def trains_discriminator(self) -> bool:
        """Whether this run pre-trains and trains a discriminator (SeqGAN with its reward)."""
        return self.mode == "seqgan" and self.reward == "discriminator"

    def validate(self) -> None:
        """Clear one-line errors for impossible settings, before anything is written or computed."""
        check_options(self)  # types, choices and ranges first: a preset or config.json may hold anything
        check_run_options(self, paths=("resume", "init_from", "oracle", "data"))
        check_seed("--oracle-seed", self.oracle_seed)
        self.filters()  # parses, and checks widths against seq_len
        if self.reward != "discriminator" and self.mode != "seqgan":
            raise ValueError(f"--reward {self.reward} rewards the seqgan mode; --mode {self.mode} has no "
                             "such reward")  # fmt: skip
        if self.reward_mode == "dense" and self.reward != "discriminator":
            raise ValueError(f"--reward-mode dense rewards with a prefix discriminator; --reward "
                             f"{self.reward} scores finished sequences only: use --reward-mode mc")
        if self.reward == "oracle" and self.data is not None:
            raise ValueError("--reward oracle needs the synthetic benchmark's oracle: a --data run has none")
        if self.data is not None and self.oracle is not None:
            raise ValueError("--data and --oracle exclude each other: a text run has no oracle")
        # The --data options are checked without --data too: config.json records them either way.
        if self.max_vocab is not None and self.max_vocab <= 3:
            raise ValueError(f"--max-vocab must be > 3 (<bos>, <eos>, <unk> count), got {self.max_vocab}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"--test-fraction must be in (0, 1), got {self.test_fraction}")
        if self.bleu_samples < 2:
            raise ValueError(f"--bleu-samples must be >= 2 (Self-BLEU compares), got {self.bleu_samples}")
        if self.reward == "bleu" and self.bleu_n > self.seq_len:
            raise ValueError(f"--bleu-n must be at most --seq-len ({self.seq_len}): a sequence has no longer "
                             f"n-grams, got {self.bleu_n}")  # fmt: skip
        check_memory(self)

    def filters(self) -> tuple[tuple[int, int], ...]:
        """--disc-filters as (width, count) pairs, checked against --seq-len."""
        return parse_filters(self.disc_filters, self.seq_len)

    @property
    def pg_batch(self) -> int:
        """Sequences per policy-gradient step (one episode of each env)."""
        return self.pg_batch_size or self.batch_size

    @property
    def disc_batch(self) -> int:
        """The discriminator's minibatch."""
        return self.disc_batch_size or self.batch_size

    def run_settings(self) -> dict[str, Any]:
        """What defines the experiment (everything but where it runs and how it is named)."""
        skip = {"device", "threads", "compile", "out", "name", "resume", "progress"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}

    def recorded_settings(self) -> dict[str, Any]:
        """config.json: the run settings, and how the run computes: its device, its thread count and
        whether it compiles (which change the floats' rounding). A resumed run keeps them unless told
        otherwise."""
        runtime = {"device": self.device, "threads": self.threads, "compile": self.compile}
        return {**self.run_settings(), **runtime}


def parse_filters(
    text: str, seq_len: int, words: tuple[str, ...] = ("paper",)
) -> tuple[tuple[int, int], ...]:
    """--disc-filters: 'paper' (the paper's filters that fit `seq_len`) or width:filters pairs, each
    width in [1, seq_len] and each count >= 1. `words`: the words the option takes (other than pairs)
    where a script takes more than 'paper', for the error to list them; the caller handles those."""
    if text == "paper":
        return paper_filters(seq_len)
    pairs: list[tuple[int, int]] = []
    for pair in text.split(","):
        try:
            width, n = pair.split(":")
            pairs.append((int(width), int(n)))
        except ValueError:
            named = ", ".join(f"'{w}'" for w in words)
            raise ValueError(f"--disc-filters must be {named} or width:filters pairs, got {text!r}") from None
    try:
        return DiscriminatorConfig(seq_len=seq_len, filters=tuple(pairs)).filters
    except ValueError as err:
        raise ValueError(f"--disc-filters: {err}") from None


# The options only the adversarial phase reads: train/pretrain.py (and --pretrain-args) has no flag for
# them; its config.json records the preset's values.
ADVERSARIAL_ONLY = (
    "mode", "init_from", "rounds", "n_rollouts", "pg_lr", "disc_repeats", "rollout_update", "rollout_rate",
    "constant_reward", "baseline", "normalize", "diagnostics", "diag_samples", "diag_q_samples",
    "diag_repeats", "reward", "bleu_n", "pg_batch_size", "pg_beta1", "pg_beta2", "gamma", "baseline_decay",
)  # fmt: skip
PRETRAINING_OPTIONS = tuple(f.name for f in dataclasses.fields(Config) if f.name not in ADVERSARIAL_ONLY)

RUNTIME = ("device", "threads", "compile")  # recorded in config.json; a resumed run may change them


def parse_config(
    argv: list[str] | None = None, description: str | None = None, pretraining: bool = False
) -> Config:
    """Preset defaults, then the options given on the command line; a resumed run keeps its own
    config, and any option given that contradicts it is an error; a run started from another
    (--init-from) takes its data, oracle and sizes (`SOURCE_BOUND`, `SOURCE_DEFAULTS`) and, unless
    --preset is given, its preset. `pretraining`: only the options pre-training reads are flags."""
    argv = sys.argv[1:] if argv is None else argv
    defaults = {f.name: f.default for f in dataclasses.fields(Config)}
    parser = config_parser(Config, description, help_defaults(preset_named(argv, Config.preset), defaults),
                           PRETRAINING_OPTIONS if pretraining else None)  # fmt: skip
    given = vars(parser.parse_args(argv))
    if "resume" in given:
        ignored = [f"--{k}" for k in ("name", "out") if k in given]
        if ignored:
            raise ValueError(f"--resume continues {given['resume']} where it is: {' and '.join(ignored)} "
                             "cannot apply to it")  # fmt: skip
        fields = [f.name for f in dataclasses.fields(Config)]
        saved = RunFolder(given["resume"]).resumable_config(fields, "train/adversarial.py")
        clash = {k: (v, saved[k]) for k, v in given.items()
                 if k in saved and saved[k] != v and k not in RUNTIME}  # fmt: skip
        if clash:
            raise ValueError(
                f"{given['resume']} was made with a different config: "
                + ", ".join(
                    f"--{k.replace('_', '-')} {new!r} (run has {old!r})" for k, (new, old) in clash.items()
                )
            )
        base = saved
    elif "init_from" in given:
        base = source_base(given, PRESETS, Config.preset)
    else:
        base = PRESETS[given.get("preset", Config.preset)]
    config = Config(**{**base, **given})
    config.validate()
    if config.data is not None and "vocab_size" in given and "resume" not in given:
        raise ValueError("--vocab-size does not apply with --data: the corpus sets V (cap: --max-vocab)")
    return config


