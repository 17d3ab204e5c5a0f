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

import dataclasses
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from agents.data import TextData, load_text_data
from agents.experiment import Evaluator, RunFolder, config_parser, option, plot_learning_curve
from agents.mle import MLEConfig, MLETrainer
from agents.reinforce import ReinforceAgent, ReinforceConfig
from seqgan_env.checkpoint import load_checkpoint, model_entry, save_checkpoint
from seqgan_env.discriminator import Discriminator, DiscriminatorConfig, paper_filters
from seqgan_env.oracle import load_oracle, random_oracle
from seqgan_env.scorers import BLEUScorer
from seqgan_env.text import Vocabulary, decode
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig
from seqgan_env.vector_env import SeqGANVectorEnv
from seqgan_env.wrappers import DiscriminatorSchedule, DiscriminatorTrainingVectorWrapper

MODES = ("seqgan", "constant", "mle")
REWARDS = ("discriminator", "bleu")
LEVELS = ("word", "char")
STAGES = ("mle", "discriminator", "adversarial", "done")


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
        """Clear errors for impossible settings."""
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose from {sorted(PRESETS)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose from {MODES}")
        positive = ("vocab_size", "seq_len", "n_real", "n_test", "gen_embed_dim", "gen_hidden_dim",
                    "batch_size", "mle_eval_every", "disc_embed_dim", "disc_epochs", "n_negatives",
                    "n_rollouts", "eval_every", "eval_samples", "self_bleu_samples", "bleu_n")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("mle_epochs", "disc_pretrain_repeats", "rounds", "disc_repeats"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in ("mle_lr", "disc_lr", "pg_lr", "grad_clip", "temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        self.filters()  # parses, and checks widths against seq_len
        if self.reward not in REWARDS:
            raise ValueError(f"unknown reward {self.reward!r}; choose from {REWARDS}")
        if self.reward == "bleu" and self.mode != "seqgan":
            raise ValueError(f"--reward bleu rewards the seqgan mode; --mode {self.mode} has no such reward")
        if self.level not in LEVELS:
            raise ValueError(f"--level must be one of {LEVELS}, got {self.level!r}")
        if self.data is not None:
            if self.oracle is not None:
                raise ValueError("--data and --oracle exclude each other: a text run has no oracle")
            if self.max_vocab is not None and self.max_vocab <= 3:
                raise ValueError(f"--max-vocab must be > 3 (<bos>, <eos>, <unk> count), got {self.max_vocab}")
            if not 0 < self.test_fraction < 1:
                raise ValueError(f"--test-fraction must be in (0, 1), got {self.test_fraction}")
            if self.bleu_samples < 2:
                raise ValueError(f"--bleu-samples must be >= 2 (Self-BLEU compares), got {self.bleu_samples}")

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
    """The models, data, optimisers and progress of one run, and its checkpoints."""

    def __init__(
        self, cfg: Config, run: RunFolder, oracle: TokenLSTM | None, text: TextData | None = None
    ) -> None:
        self.cfg = cfg
        self.run = run
        self.device = torch.device(cfg.device)
        self.rng = torch.Generator().manual_seed(cfg.seed)
        self.oracle = None if oracle is None else oracle.to(self.device)
        # Text runs: sequences end with <eos> and are padded after it; oracle runs have fixed length.
        self.vocabulary: Vocabulary | None = None if text is None else text.vocabulary
        self.eos_id = None if text is None else text.eos_id
        self.pad_id = None if text is None else text.pad_id
        gen_config = TokenLSTMConfig(cfg.vocab_size, cfg.seq_len, cfg.gen_embed_dim, cfg.gen_hidden_dim)
        self.generator = TokenLSTM(gen_config, generator=self.rng).to(self.device)
        self.rollout_policy = TokenLSTM(gen_config).to(self.device)
        disc_config = DiscriminatorConfig(
            cfg.vocab_size, cfg.seq_len, cfg.disc_embed_dim, cfg.filters(), cfg.disc_dropout, lr=cfg.disc_lr
        )
        self.discriminator = Discriminator(disc_config, generator=self.rng).to(self.device)
        # Real and held-out data: independent oracle samples (NLL-test never sees training data), or
        # the corpus's seeded split.
        if text is None:
            self.real = self.oracle.sample(cfg.n_real, self.rng).cpu()
            self.test = self.oracle.sample(cfg.n_test, self.rng).cpu()
        else:
            self.real, self.test = text.real, text.test
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
        self.envs.reset(seed=cfg.seed)  # seeds the env's own sampler: the rounds are reproducible
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
        return {
            "config": self.cfg.run_settings(),
            "stage": self.stage, "progress": self.progress, "generator_updates": self.generator_updates,
            "generator": model_entry(self.generator), "rollout_policy": model_entry(self.rollout_policy),
            "discriminator": model_entry(self.discriminator),
            "optimizers": {"mle": self.mle.optimizer.state_dict(), "pg": self.agent.optimizer.state_dict(),
                           "discriminator": self.envs.updater.optimizer.state_dict()},
            "rng": {"train": self.rng.get_state(), "env": self.envs.unwrapped._torch_rng.get_state()},
            "data": {"real": self.real, "test": self.test},
            "metrics": self.metrics, "elapsed_s": self.elapsed_s(),
            **({} if self.vocabulary is None else {"vocabulary": self.vocabulary.to_dict()}),
        }  # fmt: skip

    def save(self, *names: str) -> None:
        state = self.state()
        for name in names:
            save_checkpoint(self.run.checkpoint(name), state)

    def load(self, path: Path, models_only: bool = False) -> None:
        """Resume from a checkpoint, or (`models_only`, for --init-from) take its pre-trained generator,
        and its pre-trained discriminator where it has one of this run's shape."""
        state = load_checkpoint(path)
        ours = None if self.vocabulary is None else self.vocabulary.to_dict()
        if state.get("vocabulary") != ours:
            source = "an oracle" if "vocabulary" not in state else "a text corpus"
            raise ValueError(f"{path} was trained on {source} with another vocabulary than this run's")
        models = [("generator", self.generator), ("rollout_policy", self.rollout_policy)]
        pretrained_d = state["stage"] in ("adversarial", "done")
        if not models_only or (pretrained_d and state["discriminator"]["config"] == self.discriminator.config.to_dict()):
            models.append(("discriminator", self.discriminator))
            self.envs.updater.optimizer.load_state_dict(state["optimizers"]["discriminator"])
        for key, model in models:
            if state[key]["config"] != model.config.to_dict():
                raise ValueError(f"{path}: the {key} was made with {state[key]['config']}, "
                                 f"this run needs {model.config.to_dict()}")
            model.load_state_dict(state[key]["state_dict"])
        self.mle.optimizer.load_state_dict(state["optimizers"]["mle"])
        if self.scorer is not None and not torch.equal(self.real, state["data"]["real"]):
            self.scorer.set_references(state["data"]["real"])
        self.real, self.test = state["data"]["real"], state["data"]["test"]
        self.envs.updater.real_data = self.real
        self.generator_updates = state["generator_updates"]
        if models_only:  # the pre-trained models and their MLE curve; this run does the rest itself
            self.metrics = [r for r in state["metrics"] if r["phase"] == "mle"]
            has_d = len(models) == 3 or not self.cfg.trains_discriminator
            self.stage, self.progress = ("adversarial" if has_d else "discriminator"), 0
            return
        self.metrics = state["metrics"]
        self.agent.optimizer.load_state_dict(state["optimizers"]["pg"])
        self.rng.set_state(state["rng"]["train"])
        self.envs.unwrapped._torch_rng.set_state(state["rng"]["env"])
        self.stage, self.progress = state["stage"], state["progress"]
        self.elapsed = state["elapsed_s"]

    def elapsed_s(self) -> float:
        return self.elapsed + time.monotonic() - self._t0

    # --- evaluation ------------------------------------------------------------------------------
    def evaluate(self, phase: str, step: int, **losses: float) -> dict[str, Any]:
        scores = self.evaluator(self.generator, self.test, self.rng)
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
            self.agent.sync()
            self.evaluate("adversarial", 0)  # the starting point: the pre-trained generator
        d_loss = pg_loss = float("nan")
        with tqdm(total=cfg.rounds, initial=self.progress, desc=f"adversarial ({cfg.mode})", unit="round") as bar:
            while self.progress < cfg.rounds:
                if cfg.mode == "mle":
                    batch = self.real[torch.randint(len(self.real), (cfg.batch_size,), generator=self.rng)]
                    pg_loss = self.mle.step(batch)
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
        samples = self.generator.sample(100, self.rng, eos_id=self.eos_id, pad_id=self.pad_id).cpu()
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
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch.manual_seed(cfg.seed)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.resume:
        run = RunFolder(cfg.resume)
        latest = run.checkpoint("latest")
        exp = Experiment(cfg, run, oracle, text)
        if latest.is_file():
            exp.load(latest)
        print(f"resuming {run.path} at stage {exp.stage}, {exp.progress} done")
        run.tensorboard(purge_step=exp.generator_updates + 1)
    else:
        name = cfg.name or f"{cfg.preset}_{cfg.mode}_s{cfg.seed}_{datetime.now():%Y%m%d-%H%M%S}"
        run = RunFolder(Path(cfg.out) / name)
        try:
            run.create({**cfg.run_settings()})
        except FileExistsError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if text is not None:
            text.vocabulary.save(run.path / "vocab.json")
        exp = Experiment(cfg, run, oracle, text)
        if cfg.init_from:
            source = RunFolder(cfg.init_from)
            path = source.checkpoint("pretrained")
            if not path.is_file():
                path = source.checkpoint("mle")
            exp.load(path, models_only=True)
        print(f"run folder: {run.path}")
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
    start = next((r for r in exp.metrics if r["phase"] == "adversarial" and r["step"] == 0), None)
    end = exp.metrics[-1]
    if start is not None and text is not None:
        print(f"BLEU-4 {start['bleu4']:.3f} -> {end['bleu4']:.3f}, Self-BLEU-4 {start['self_bleu4']:.3f} -> "
              f"{end['self_bleu4']:.3f}, NLL-test {start['nll_test']:.3f} -> {end['nll_test']:.3f} after "
              f"{cfg.rounds} rounds ({exp.elapsed_s() / 60:.1f} min); results in {run.path}")
    elif start is not None:
        print(f"NLL-oracle {start['nll_oracle']:.3f} -> {end['nll_oracle']:.3f} (+-{end['nll_oracle_se']:.3f}), "
              f"NLL-test {start['nll_test']:.3f} -> {end['nll_test']:.3f} after {cfg.rounds} rounds "
              f"({exp.elapsed_s() / 60:.1f} min); results in {run.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
