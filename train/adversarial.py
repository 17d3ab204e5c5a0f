"""The SeqGAN experiment: data -> MLE pre-training -> discriminator pre-training -> adversarial rounds.

    python train/adversarial.py                      # the CPU preset on the built-in oracle
    python train/adversarial.py --preset paper --oracle ../shared/benchmarks/paper_oracle/target_params.npz
    python train/adversarial.py --resume runs/NAME   # continue a killed run from its last checkpoint
    python train/adversarial.py --data corpus.txt --level word   # real text (one sequence per line)

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

import copy
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from agents.data import TextData, load_text_data
from agents.experiment import (
    Evaluator,
    RunFolder,
    check_option_types,
    check_run_name,
    config_parser,
    derive_seed,
    option,
    plot_learning_curve,
    seeded_generator,
)
from agents.mle import MLEConfig, MLETrainer
from agents.reinforce import ROLLOUT_UPDATES, ReinforceAgent, ReinforceConfig
from seqgan_env.checkpoint import load_checkpoint, model_entry, save_checkpoint
from seqgan_env.devices import resolve_device
from seqgan_env.discriminator import Discriminator, DiscriminatorConfig, paper_filters
from seqgan_env.oracle import load_oracle, random_oracle
from seqgan_env.scorers import BLEUScorer
from seqgan_env.text import CorpusError, Vocabulary, decode
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig
from seqgan_env.vector_env import SeqGANVectorEnv
from seqgan_env.wrappers import DiscriminatorSchedule, DiscriminatorTrainingVectorWrapper

MODES = ("seqgan", "constant", "mle")
REWARDS = ("discriminator", "bleu")
LEVELS = ("word", "char")
STAGES = ("mle", "discriminator", "adversarial", "done")
RUN_STATE_VERSION = 2  # what a checkpoint of this script holds beyond the env's models (see Experiment.state)
MAX_SEED = 2**63 - 1


@dataclass
class Config:
    """Every option of the experiment; a preset sets many of them, the command line overrides."""

    preset: str = option("paper: the reference code's numbers (a GPU); cpu: a 2-core CPU in < 30 min; "
                       "tiny: a smoke test", default="cpu")
    mode: str = option("seqgan, or a control: constant (REINFORCE with reward 1) or mle (continued MLE)",
                     default="seqgan")
    seed: int = option("seed of data sampling, initialisation and training", default=0)
    oracle: str | None = option("oracle parameter file (.npz, SPEC 2.1); default: a seeded N(0,1) oracle",
                              default=None)
    oracle_seed: int = option("seed of the built-in random oracle", default=0)
    device: str = option("torch device", default="cpu")
    threads: int = option("CPU threads for torch (0: torch's default, one per core)", default=0)
    out: str = option("folder holding run folders", default="runs")
    name: str | None = option("run folder name (default: preset_mode_seed_time)", default=None)
    resume: str | None = option("continue this run folder from its last checkpoint", default=None)
    init_from: str | None = option("start from this run folder's pre-trained models (skips pre-training)",
                                 default=None)
    vocab_size: int = option("vocabulary size V", default=5000)
    seq_len: int = option("sequence length T", default=20)
    n_real: int = option("real (oracle) training sequences", default=9984)
    n_test: int = option("held-out oracle sequences for NLL-test", default=9984)
    gen_embed_dim: int = option("generator embedding size", default=32)
    gen_hidden_dim: int = option("generator LSTM size", default=32)
    batch_size: int = option("MLE minibatch, discriminator minibatch, and sequences per PG step", default=64)
    mle_epochs: int = option("MLE pre-training epochs", default=120)
    mle_lr: float = option("MLE Adam learning rate", default=0.01)
    grad_clip: float = option("global gradient-norm clip of the generator", default=5.0)
    mle_eval_every: int = option("evaluate every this many MLE epochs", default=10)
    disc_embed_dim: int = option("discriminator embedding size", default=64)
    disc_filters: str = option("'paper' or width:filters pairs, e.g. 1:50,2:50,5:50", default="paper")
    disc_dropout: float = option("discriminator dropout while training", default=0.25)
    disc_lr: float = option("discriminator Adam learning rate", default=1e-4)
    disc_pretrain_repeats: int = option("discriminator pre-training: times {fresh negatives, epochs}", default=50)
    disc_epochs: int = option("epochs over each set of real + negatives", default=3)
    n_negatives: int = option("negatives per discriminator training set", default=9984)
    rounds: int = option("adversarial rounds (one generator update each)", default=200)
    n_rollouts: int = option("Monte Carlo completions per prefix (N)", default=16)
    pg_lr: float = option("policy-gradient Adam learning rate", default=0.01)
    disc_repeats: int = option("discriminator trainings {negatives, epochs} per round", default=5)
    rollout_update: str = option("copy (the reference code) or ema", default="copy")
    rollout_rate: float = option("ema rate: beta <- rate*beta + (1-rate)*theta", default=0.8)
    constant_reward: float = option("the reward of --mode constant", default=1.0)
    eval_every: int = option("evaluate and checkpoint every this many rounds", default=5)
    eval_samples: int = option("generator samples for NLL-oracle", default=9984)
    temperature: float = option("sampling temperature of the evaluation", default=1.0)
    data: str | None = option("train on this plain-text corpus (UTF-8, one sequence per line, cut to --seq-len "
                            "tokens) instead of an oracle; V then comes from the corpus", default=None)
    level: str = option("--data tokens: word (whitespace-separated) or char", default="word")
    max_vocab: int | None = option("--data: at most this many ids, <bos> <eos> <unk> included; rarer tokens "
                                 "become <unk>; None: every token of the corpus", default=None)
    test_fraction: float = option("--data: share of the lines held out for NLL-test and BLEU", default=0.1)
    bleu_samples: int = option("--data: generated sentences per evaluation for BLEU-2..5 (each against all "
                             "held-out lines) and Self-BLEU-2..5", default=1000)
    self_bleu_samples: int = option("--data: how many of those Self-BLEU scores (each against all the "
                                  "others)", default=500)
    reward: str = option("what rewards the generator: discriminator (SeqGAN) or bleu (PG-BLEU: BLEU-n against "
                       "the training data; no discriminator is trained)", default="discriminator")
    bleu_n: int = option("n of BLEU-n, the --reward bleu reward (4: standard BLEU)", default=4)

    @property
    def trains_discriminator(self) -> bool:
        """Whether this run pre-trains and trains a discriminator (SeqGAN with its reward)."""
        return self.mode == "seqgan" and self.reward == "discriminator"

    def validate(self) -> None:
        """Clear one-line errors for impossible settings, before anything is written or computed."""
        check_option_types(self)  # first: a preset or config.json may hold anything
        choices = {"preset": tuple(PRESETS), "mode": MODES, "reward": REWARDS, "level": LEVELS,
                   "rollout_update": ROLLOUT_UPDATES}  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, "
                                 f"got {getattr(self, name)!r}")  # fmt: skip
        positive = ("vocab_size", "seq_len", "n_real", "n_test", "gen_embed_dim", "gen_hidden_dim",
                    "batch_size", "mle_eval_every", "disc_embed_dim", "disc_epochs", "n_negatives",
                    "n_rollouts", "eval_every", "eval_samples", "self_bleu_samples", "bleu_n")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("mle_epochs", "disc_pretrain_repeats", "rounds", "disc_repeats", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in ("seed", "oracle_seed"):
            if not 0 <= getattr(self, name) <= MAX_SEED:
                raise ValueError(f"--{name.replace('_', '-')} must be in [0, 2**63 - 1], got {getattr(self, name)}")
        for name in ("mle_lr", "disc_lr", "pg_lr", "grad_clip", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        for name in ("disc_dropout", "rollout_rate"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(self, name)}")
        resolve_device(self.device)
        for name in ("name", "resume", "init_from", "out", "oracle", "data"):
            if getattr(self, name) == "":
                raise ValueError(f"--{name.replace('_', '-')} must not be empty")
        if self.name is not None:
            check_run_name(self.name)
        self.filters()  # parses, and checks widths against seq_len
        if self.reward == "bleu" and self.mode != "seqgan":
            raise ValueError(f"--reward bleu rewards the seqgan mode; --mode {self.mode} has no such reward")
        if self.data is not None:
            if self.oracle is not None:
                raise ValueError("--data and --oracle exclude each other: a text run has no oracle")
            if self.max_vocab is not None and self.max_vocab <= 3:
                raise ValueError(f"--max-vocab must be > 3 (<bos>, <eos>, <unk> count), got {self.max_vocab}")
            if not 0 < self.test_fraction < 1:
                raise ValueError(f"--test-fraction must be in (0, 1), got {self.test_fraction}")
            if self.bleu_samples < 2:
                raise ValueError(f"--bleu-samples must be >= 2 (Self-BLEU compares), got {self.bleu_samples}")
        check_memory(self)

    def filters(self) -> tuple[tuple[int, int], ...]:
        if self.disc_filters == "paper":
            return paper_filters(self.seq_len)
        try:
            pairs = tuple(tuple(int(x) for x in p.split(":")) for p in self.disc_filters.split(","))
        except ValueError:
            pairs = ()
        if not pairs or any(len(p) != 2 for p in pairs):
            raise ValueError(f"--disc-filters must be 'paper' or width:filters pairs, got {self.disc_filters!r}")
        return DiscriminatorConfig(self.vocab_size, self.seq_len, filters=pairs).filters

    def run_settings(self) -> dict[str, Any]:
        """What defines the experiment (everything but where it runs and how it is named)."""
        skip = {"device", "threads", "out", "name", "resume"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}


def check_memory(cfg: Config) -> None:
    """Refuse sizes whose largest buffers cannot fit in this machine's memory (e.g. --batch-size 10**8),
    before anything is allocated. The estimate counts the data, the Monte Carlo search's [B*N, V]
    sampling buffers, an MLE minibatch's [B, T, V] logits and their gradients."""
    V, T = cfg.vocab_size, cfg.seq_len
    terms = {  # bytes, by the option that sets them
        "--n-real/--n-test/--n-negatives": 8 * T * (cfg.n_real + cfg.n_test + 2 * cfg.n_negatives),
        "--batch-size": 4 * 4 * cfg.batch_size * V * (cfg.n_rollouts + T),
        "--eval-samples": 4 * 4 * min(cfg.eval_samples, 1024) * V + 8 * T * cfg.eval_samples,
    }
    total = physical_memory()
    if total is not None and sum(terms.values()) > 0.8 * total:
        biggest = max(terms, key=terms.__getitem__)
        raise ValueError(f"these sizes need about {sum(terms.values()) / 2**30:.1f} GiB, this machine has "
                         f"{total / 2**30:.1f} GiB: lower {biggest} (about {terms[biggest] / 2**30:.1f} GiB)")


def physical_memory() -> int | None:
    """Bytes of RAM on this machine, where the OS says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


# The presets. "paper" is the reference code (SPEC 2.2); "cpu" is what a 2-core CPU finishes in under
# 30 minutes, and every deviation from "paper" is listed in the README.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "cpu": {
        "mle_epochs": 20, "disc_embed_dim": 32, "disc_filters": "1:32,2:32,3:32,4:32,5:32,10:32,15:32,20:32",
        "disc_pretrain_repeats": 10, "disc_epochs": 1, "n_negatives": 4992, "disc_repeats": 1,
        "rounds": 50, "n_rollouts": 8,
    },
    "tiny": {
        "vocab_size": 50, "seq_len": 8, "n_real": 256, "n_test": 128, "batch_size": 16, "mle_epochs": 3,
        "mle_eval_every": 2, "disc_embed_dim": 8, "disc_filters": "1:8,2:8,4:8,8:8", "disc_pretrain_repeats": 2,
        "disc_epochs": 1, "n_negatives": 128, "rounds": 4, "n_rollouts": 4, "disc_repeats": 1,
        "eval_every": 2, "eval_samples": 256,
    },
}  # fmt: skip


def parse_config(argv: list[str] | None = None) -> Config:
    """Preset defaults, then the options given on the command line; a resumed run keeps its own
    config, and any option given that contradicts it is an error."""
    parser = config_parser(Config, __doc__)
    given = vars(parser.parse_args(argv))
    if "resume" in given:
        ignored = [f"--{k}" for k in ("name", "out") if k in given]
        if ignored:
            raise ValueError(f"--resume continues {given['resume']} where it is: {' and '.join(ignored)} "
                             "cannot apply to it")  # fmt: skip
        saved = RunFolder(given["resume"]).saved_config()
        clash = {k: (v, saved[k]) for k, v in given.items() if k in saved and saved[k] != v}
        if clash:
            raise ValueError(
                f"{given['resume']} was made with a different config: "
                + ", ".join(f"--{k.replace('_', '-')} {new!r} (run has {old!r})" for k, (new, old) in clash.items())
            )
        base = saved
    else:
        preset = given.get("preset", Config.preset)
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
        base = PRESETS[preset]
    config = Config(**{**base, **given})
    config.validate()
    if config.data is not None and "vocab_size" in given and "resume" not in given:
        raise ValueError("--vocab-size does not apply with --data: the corpus sets V (cap: --max-vocab)")
    return config


class Experiment:
    """The models, data, optimisers and progress of one run, and its checkpoints.

    Randomness has one generator per purpose, each seeded from --seed (`derive_seed`), so no purpose
    shifts another's numbers: initialisation and data on the CPU (the same models and data on any
    device), training draws on the device (`rng`: MLE and discriminator minibatches, negatives, the
    agent's tokens), the environment's own generator (Monte Carlo completions), and a fresh generator
    for each evaluation. Dropout draws from torch's global generator; the checkpoints hold every state.
    """

    def __init__(
        self, cfg: Config, run: RunFolder, oracle: TokenLSTM | None, text: TextData | None = None
    ) -> None:
        self.cfg = cfg
        self.run = run
        self.device = resolve_device(cfg.device)
        init = seeded_generator(derive_seed(cfg.seed, "init"))  # CPU
        self.rng = seeded_generator(derive_seed(cfg.seed, "train"), self.device)
        # Text runs: sequences end with <eos> and are padded after it; oracle runs have fixed length.
        self.vocabulary: Vocabulary | None = None if text is None else text.vocabulary
        self.eos_id = None if text is None else text.eos_id
        self.pad_id = None if text is None else text.pad_id
        gen_config = TokenLSTMConfig(cfg.vocab_size, cfg.seq_len, cfg.gen_embed_dim, cfg.gen_hidden_dim)
        self.generator = TokenLSTM(gen_config, generator=init).to(self.device)
        self.rollout_policy = copy.deepcopy(self.generator)  # beta = theta until the adversarial phase
        disc_config = DiscriminatorConfig(
            cfg.vocab_size, cfg.seq_len, cfg.disc_embed_dim, cfg.filters(), cfg.disc_dropout, lr=cfg.disc_lr
        )
        self.discriminator = Discriminator(disc_config, generator=init).to(self.device)
        # Real and held-out data: independent oracle samples (NLL-test never sees training data), or
        # the corpus's seeded split.
        if text is None:
            assert oracle is not None
            data_rng = seeded_generator(derive_seed(cfg.seed, "data"))  # CPU
            oracle = oracle.cpu()
            self.real = oracle.sample(cfg.n_real, data_rng)
            self.test = oracle.sample(cfg.n_test, data_rng)
        else:
            self.real, self.test = text.real, text.test
        self.oracle = None if oracle is None else oracle.to(self.device)
        self.evaluator = Evaluator(self.oracle, self.vocabulary, cfg.temperature, cfg.eval_samples,
                                   cfg.bleu_samples, cfg.self_bleu_samples)  # fmt: skip
        mle_config = MLEConfig(cfg.mle_lr, cfg.batch_size, cfg.grad_clip)
        self.mle = MLETrainer(self.generator, mle_config, pad_id=self.pad_id)
        # PG-BLEU: BLEU against the training data scores the sequences in place of the discriminator.
        self.scorer = None if cfg.reward != "bleu" else BLEUScorer(self.real, cfg.bleu_n, self.eos_id,
                                                                   self.pad_id)
        self.envs = DiscriminatorTrainingVectorWrapper(
            SeqGANVectorEnv(
                num_envs=cfg.batch_size, rollout_policy=self.rollout_policy, discriminator=self.discriminator,
                n_rollouts=cfg.n_rollouts, reward_mode="mc" if cfg.mode == "seqgan" else "terminal",
                oracle_seed=None, device=cfg.device, eos_id=self.eos_id, scorer=self.scorer,
                vocabulary=None if self.vocabulary is None else self.vocabulary.tokens,
            ),
            real_data=self.real,
            sampler=lambda n: self.generator.sample(n, self.rng, eos_id=self.eos_id, pad_id=self.pad_id),
            schedule=DiscriminatorSchedule(None, cfg.disc_repeats, cfg.n_negatives, cfg.disc_epochs, cfg.batch_size),
            rng=self.rng,
        )
        self.envs.reset(seed=derive_seed(cfg.seed, "env"))  # seeds the env's own sampler
        self.agent = ReinforceAgent(
            self.generator, self.rollout_policy,
            ReinforceConfig(cfg.pg_lr, cfg.grad_clip, cfg.rollout_update, cfg.rollout_rate,
                            cfg.constant_reward if cfg.mode == "constant" else None),
            rng=self.rng,
        )
        self.stage, self.progress = STAGES[0], 0
        self.generator_updates = 0
        self.metrics: list[dict[str, Any]] = []
        self.elapsed = 0.0
        self._t0 = time.monotonic()

    # --- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit for bit (every random state included)."""
        cuda = self.device.type == "cuda"
        return {
            "config": self.cfg.run_settings(), "run_state_version": RUN_STATE_VERSION,
            "stage": self.stage, "progress": self.progress, "generator_updates": self.generator_updates,
            "generator": model_entry(self.generator), "rollout_policy": model_entry(self.rollout_policy),
            "discriminator": model_entry(self.discriminator),
            "optimizers": {"mle": self.mle.optimizer.state_dict(), "pg": self.agent.optimizer.state_dict()},
            "discriminator_updater": self.envs.updater.state_dict(),
            "rng": {"device": self.device.type, "train": self.rng.get_state(),
                    "env": self.envs.unwrapped._torch_rng.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(self.device) if cuda else None},
            "data": {"real": self.real, "test": self.test},
            "metrics": self.metrics, "elapsed_s": self.elapsed_s(),
            **({} if self.vocabulary is None else {"vocabulary": self.vocabulary.to_dict()}),
        }  # fmt: skip

    def save(self, *names: str) -> None:
        state = self.state()
        for name in names:
            save_checkpoint(self.run.checkpoint(name), state)

    def resume(self, state: dict[str, Any]) -> None:
        """Continue from this run's own checkpoint (`latest.pt`), exactly where it stood."""
        if state.get("run_state_version") != RUN_STATE_VERSION:
            raise ValueError(f"{self.run.path} was written by another version of this script (run state "
                             f"{state.get('run_state_version')}, expected {RUN_STATE_VERSION}): start a new run")
        if state["rng"]["device"] != self.device.type:
            raise ValueError(f"{self.run.path} ran on {state['rng']['device']}; resume it with --device "
                             f"{state['rng']['device']} (random states do not carry across device types)")
        self._load_models(state, with_discriminator=True)
        self.agent.optimizer.load_state_dict(state["optimizers"]["pg"])
        self.envs.updater.load_state_dict(state["discriminator_updater"])
        self.rng.set_state(state["rng"]["train"])
        self.envs.unwrapped._torch_rng.set_state(state["rng"]["env"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.metrics = state["metrics"]
        self.stage, self.progress = state["stage"], state["progress"]
        self.elapsed = state["elapsed_s"]

    def init_from(self, state: dict[str, Any]) -> None:
        """Start from another run's pre-training (--init-from): its generator and data, and its
        pre-trained discriminator where it has one of this run's shape; this run does the rest."""
        has_d = state["stage"] in ("adversarial", "done") and (
            state["discriminator"]["config"] == self.discriminator.config.to_dict()
        )
        self._load_models(state, with_discriminator=has_d)
        if has_d:
            self.envs.updater.optimizer.load_state_dict(state["discriminator_updater"]["optimizer"])
        self.agent.start_rollout_policy()  # the adversarial phase starts with beta = theta
        self.metrics = [r for r in state["metrics"] if r["phase"] == "mle"]
        has_d = has_d or not self.cfg.trains_discriminator
        self.stage, self.progress = ("adversarial" if has_d else "discriminator"), 0

    def _load_models(self, state: dict[str, Any], with_discriminator: bool) -> None:
        """The models (configs checked by `check_compatible` before anything was written), the MLE
        optimiser, the data and the generator-update count of a checkpoint."""
        models = [("generator", self.generator), ("rollout_policy", self.rollout_policy)]
        if with_discriminator:
            models.append(("discriminator", self.discriminator))
        for key, model in models:
            model.load_state_dict(state[key]["state_dict"])
        self.mle.optimizer.load_state_dict(state["optimizers"]["mle"])
        if self.scorer is not None and not torch.equal(self.real, state["data"]["real"]):
            self.scorer.set_references(state["data"]["real"])
        self.real, self.test = state["data"]["real"], state["data"]["test"]
        self.envs.updater.real_data = self.real
        self.generator_updates = state["generator_updates"]

    def elapsed_s(self) -> float:
        return self.elapsed + time.monotonic() - self._t0

    # --- evaluation ------------------------------------------------------------------------------
    def evaluate(self, phase: str, step: int, **losses: float) -> dict[str, Any]:
        # A generator of its own per evaluation: evaluating never moves the training's random numbers,
        # and the same point of a run gets the same samples whatever --eval-every is.
        rng = seeded_generator(derive_seed(self.cfg.seed, "eval", phase, step), self.device)
        scores = self.evaluator(self.generator, self.test, rng)
        row = {"phase": phase, "step": step, "generator_updates": self.generator_updates,
               **scores, "temperature": self.cfg.temperature,
               "d_loss": losses.get("d_loss", float("nan")), "pg_loss": losses.get("pg_loss", float("nan")),
               "elapsed_s": round(self.elapsed_s(), 1)}  # fmt: skip
        self.metrics.append(row)
        self.run.write_metrics(self.metrics, self.evaluator.fields)
        self.run.log_scalars(
            {**{f"eval/{k}": v for k, v in scores.items() if not k.endswith("_se")},
             "losses/discriminator": row["d_loss"], "losses/pg": row["pg_loss"]},
            self.generator_updates,
        )
        return row

    def postfix(self, row: dict[str, Any]) -> dict[str, str]:
        """The progress bar's summary of an evaluation."""
        return {k: f"{row[k]:.3f}" for k in self.evaluator.summary}

    # --- stages ----------------------------------------------------------------------------------
    def run_mle(self) -> None:
        cfg = self.cfg
        steps_per_epoch = -(-len(self.real) // cfg.batch_size)
        with tqdm(total=cfg.mle_epochs, initial=self.progress, desc="MLE pre-training", unit="epoch") as bar:
            while self.progress < cfg.mle_epochs:
                loss = self.mle.epoch(self.real, self.rng)
                self.agent.start_rollout_policy()  # every checkpoint records the rollout policy beta = theta
                self.progress += 1
                self.generator_updates += steps_per_epoch
                self.run.log_scalars({"losses/mle": loss}, self.generator_updates)
                if self.progress % cfg.mle_eval_every == 0 or self.progress == cfg.mle_epochs:
                    row = self.evaluate("mle", self.progress)
                    bar.set_postfix(self.postfix(row))
                    self.save("latest")
                bar.update(1)
        self.stage, self.progress = "discriminator", 0
        self.save("mle", "latest")

    def run_discriminator_pretraining(self) -> None:
        cfg = self.cfg
        with tqdm(total=cfg.disc_pretrain_repeats, initial=self.progress, desc="discriminator pre-training",
                  unit="set") as bar:  # fmt: skip
            while self.progress < cfg.disc_pretrain_repeats:
                loss = self.envs.updater.train(repeats=1)
                self.progress += 1
                self.run.log_scalars({"losses/discriminator_pretrain": loss}, self.progress)
                bar.set_postfix(d_loss=f"{loss:.4f}")
                bar.update(1)
                if self.progress % cfg.eval_every == 0:
                    self.save("latest")
        self.stage, self.progress = "adversarial", 0
        self.save("pretrained", "latest")

    def run_adversarial(self) -> None:
        cfg = self.cfg
        if self.progress == 0:
            self.agent.start_rollout_policy()
            self.evaluate("adversarial", 0)  # the starting point: the pre-trained generator
        d_loss = pg_loss = float("nan")
        with tqdm(total=cfg.rounds, initial=self.progress, desc=f"adversarial ({cfg.mode})", unit="round") as bar:
            while self.progress < cfg.rounds:
                if cfg.mode == "mle":
                    pick = torch.randint(len(self.real), (cfg.batch_size,), generator=self.rng, device=self.device)
                    pg_loss = self.mle.step(self.real[pick.cpu()])
                else:
                    episodes = self.agent.collect(self.envs)
                    pg_loss = self.agent.update(episodes, pad_id=self.pad_id)
                    if cfg.trains_discriminator and cfg.disc_repeats > 0:
                        d_loss = self.envs.train_discriminator()
                self.progress += 1
                self.generator_updates += 1
                self.run.log_scalars({"losses/pg": pg_loss, "losses/discriminator": d_loss}, self.generator_updates)
                if self.progress % cfg.eval_every == 0 or self.progress == cfg.rounds:
                    row = self.evaluate("adversarial", self.progress, d_loss=d_loss, pg_loss=pg_loss)
                    bar.set_postfix(self.postfix(row))
                    self.save("latest")
                bar.update(1)
        self.stage = "done"
        self.save("final", "latest")

    def finish(self) -> None:
        self.run.write_metrics(self.metrics, self.evaluator.fields)
        cfg = self.cfg
        data = "" if cfg.data is None else f"{Path(cfg.data).name}, "
        reward = "" if cfg.reward == "discriminator" else f", reward {cfg.reward}"
        plot_learning_curve(self.metrics, self.run.path / "curve.png",
                            f"{data}{cfg.preset} preset, mode {cfg.mode}{reward}, seed {cfg.seed}")
        rng = seeded_generator(derive_seed(cfg.seed, "samples"), self.device)
        samples = self.generator.sample(100, rng, eos_id=self.eos_id, pad_id=self.pad_id).cpu()
        vocab = self.vocabulary
        self.run.write_samples(samples, None if vocab is None else lambda row: decode(row.tolist(), vocab))
        self.run.close()


def make_oracle(cfg: Config) -> TokenLSTM:
    """The paper's oracle from its file, or the built-in seeded random one; checked against the config."""
    if cfg.oracle is None:
        return random_oracle(cfg.vocab_size, cfg.seq_len, cfg.oracle_seed)
    oracle = load_oracle(cfg.oracle, cfg.seq_len)
    if oracle.config.vocab_size != cfg.vocab_size:
        raise ValueError(f"oracle {cfg.oracle} has vocabulary {oracle.config.vocab_size}, the config "
                         f"{cfg.vocab_size}: pass --vocab-size {oracle.config.vocab_size}")
    return oracle


def init_from_checkpoint(cfg: Config, vocabulary: Vocabulary | None) -> dict[str, Any]:
    """The checkpoint --init-from names (the run's pretrained.pt, else its mle.pt), checked against
    this run's sizes and vocabulary before anything is written."""
    assert cfg.init_from is not None
    source = RunFolder(cfg.init_from)
    if not source.path.is_dir():
        raise FileNotFoundError(f"--init-from {cfg.init_from}: no such run folder")
    path = source.checkpoint("pretrained")
    if not path.is_file():
        path = source.checkpoint("mle")
    if not path.is_file():
        raise FileNotFoundError(f"--init-from {cfg.init_from} holds no pre-training (neither pretrained.pt nor "
                                "mle.pt): let its MLE stage finish first")  # fmt: skip
    state = load_checkpoint(path)
    check_compatible(cfg, state, path, vocabulary)
    return state


def check_compatible(cfg: Config, state: dict[str, Any], path: Path, vocabulary: Vocabulary | None) -> None:
    """A checkpoint of this script whose generator has this run's shape and whose data has its
    vocabulary (text) or none (oracle)."""
    if state.get("run_state_version") != RUN_STATE_VERSION or "generator" not in state:
        raise ValueError(f"{path} was not written by this version of train/adversarial.py (run state "
                         f"{state.get('run_state_version')}, expected {RUN_STATE_VERSION})")  # fmt: skip
    ours = None if vocabulary is None else vocabulary.to_dict()
    if state.get("vocabulary") != ours:
        source = "an oracle" if "vocabulary" not in state else "a text corpus"
        raise ValueError(f"{path} was trained on {source} with another vocabulary than this run's")
    want = TokenLSTMConfig(cfg.vocab_size, cfg.seq_len, cfg.gen_embed_dim, cfg.gen_hidden_dim).to_dict()
    if state["generator"]["config"] != want:
        raise ValueError(f"{path}: its generator was made with {state['generator']['config']}, this run "
                         f"needs {want}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    try:  # every check of the user's input happens before anything is written
        cfg = parse_config(argv)
        oracle = make_oracle(cfg) if cfg.data is None else None
        text = None if cfg.data is None else load_text_data(
            cfg.data, cfg.level, cfg.seq_len, cfg.max_vocab, cfg.test_fraction, cfg.seed,
            expected_vocabulary=None if cfg.resume is None else Path(cfg.resume) / "vocab.json",
        )
        if text is not None:  # V comes from the corpus (config.json records it)
            cfg = dataclasses.replace(cfg, vocab_size=text.vocabulary.size)
            cfg.validate()  # the sizes that depend on V (memory)
        vocabulary = None if text is None else text.vocabulary
        run = RunFolder(cfg.resume) if cfg.resume else RunFolder(Path(cfg.out) / (cfg.name or default_name(cfg)))
        latest = run.checkpoint("latest")
        start: dict[str, Any] | None = None
        if cfg.resume:
            run.lock()
            run.remove_temporaries()  # what a kill during a write left
            if latest.is_file():
                start = load_checkpoint(latest)
                check_compatible(cfg, start, latest, vocabulary)
        if start is None and cfg.init_from:  # a new run, or one killed before its first checkpoint
            start = init_from_checkpoint(cfg, vocabulary)
        if not cfg.resume:
            run.create({**cfg.run_settings()})
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, CorpusError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch.manual_seed(derive_seed(cfg.seed, "torch"))  # dropout's generator (restored on resume)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if text is not None and not (run.path / "vocab.json").is_file():
        text.vocabulary.save(run.path / "vocab.json")
    exp = Experiment(cfg, run, oracle, text)
    if cfg.resume and latest.is_file():
        assert start is not None
        exp.resume(start)
        print(f"resuming {run.path} at stage {exp.stage}, {exp.progress} done")
        run.tensorboard(purge_step=exp.generator_updates + 1)
    else:
        if start is not None:
            exp.init_from(start)
        print(f"{'restarting' if cfg.resume else 'run folder:'} {run.path}")
    if exp.stage == "mle":
        exp.run_mle()
    if exp.stage == "discriminator":
        if cfg.trains_discriminator:
            exp.run_discriminator_pretraining()
        else:  # the controls and PG-BLEU never consult a discriminator
            exp.stage, exp.progress = "adversarial", 0
    if exp.stage == "adversarial":
        exp.run_adversarial()
    exp.finish()
    start_row = next((r for r in exp.metrics if r["phase"] == "adversarial" and r["step"] == 0), None)
    end = exp.metrics[-1]
    if start_row is not None and text is not None:
        print(f"BLEU-4 {start_row['bleu4']:.3f} -> {end['bleu4']:.3f}, Self-BLEU-4 {start_row['self_bleu4']:.3f} "
              f"-> {end['self_bleu4']:.3f}, NLL-test {start_row['nll_test']:.3f} -> {end['nll_test']:.3f} after "
              f"{cfg.rounds} rounds ({exp.elapsed_s() / 60:.1f} min); results in {run.path}")
    elif start_row is not None:
        print(f"NLL-oracle {start_row['nll_oracle']:.3f} -> {end['nll_oracle']:.3f} (+-{end['nll_oracle_se']:.3f}), "
              f"NLL-test {start_row['nll_test']:.3f} -> {end['nll_test']:.3f} after {cfg.rounds} rounds "
              f"({exp.elapsed_s() / 60:.1f} min); results in {run.path}")
    return 0


def default_name(cfg: Config) -> str:
    return f"{cfg.preset}_{cfg.mode}_s{cfg.seed}_{datetime.now():%Y%m%d-%H%M%S}"


if __name__ == "__main__":
    sys.exit(main())
