"""SeqGAN's adversarial phase with a Stable-Baselines3 algorithm (PPO, A2C, MaskablePPO, RecurrentPPO).

    python train/sb3.py --algo ppo                               # pre-trains in place (cpu preset), then PPO
    python train/sb3.py --algo ppo --pretrained runs/NAME        # from a train/adversarial.py run folder
    python train/sb3.py --algo a2c --pretrained runs/NAME --load runs/SB3/model.zip   # continue a model

Pre-training comes from a train/adversarial.py run folder (`--pretrained`: its pretrained.pt, i.e.
MLE + discriminator pre-training, else its mle.pt), or is made in place by running
`train/adversarial.py --preset PRESET --rounds 0` into RUN/pretrain. Where the source has no
pre-trained discriminator (mle.pt only, or --disc-pretrain-repeats 0), one of this script's
--disc-* sizes is pre-trained here.

Each round: one SB3 update of the policy (a rollout of --n-steps tokens in each of --n-envs envs of
SeqGAN-v0, then the algorithm's gradient steps), the env's rollout policy synced to the policy,
and the discriminator retrained by the same DiscriminatorTrainingVectorWrapper as the REINFORCE
agent's. The policy starts as the MLE generator (the warm start: equal next-token distributions),
and is evaluated with the REINFORCE path's code (agents.experiment.evaluate: NLL-oracle, NLL-test).

Rewards default to "shaped" with gamma 1: r_t = Q_t - Q_{t-1}, so an episode's return is exactly
D(y) and a return-based algorithm optimises what SeqGAN does (SPEC 3); "mc" (r_t = Q_t) would need
gamma 0 for a generic algorithm, "terminal" (D(y) at the end) skips the Monte Carlo search.

The run folder (--out/--name) holds config.json, metrics.csv (a row per evaluation, the source's MLE
rows first), tb/ (SB3's TensorBoard logs, eval/* included), model.zip (the SB3 model), final.pt (a
seqgan-env checkpoint: generator, rollout policy, discriminator; loadable by SeqGAN-v0's
checkpoint=), curve.png and samples.txt.
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import adversarial
from agents.experiment import (
    RunFolder,
    check_option_types,
    check_run_name,
    config_parser,
    derive_seed,
    evaluate,
    option,
    plot_learning_curve,
    seeded_generator,
)
from agents.sb3 import (
    ALGORITHMS,
    AdversarialRoundCallback,
    PolicySampler,
    ProgressCallback,
    SB3VecEnv,
    algorithm_class,
    check_saved_model,
    generator_from_policy,
    load_model,
    make_model,
)
from seqgan_env.checkpoint import (
    discriminator_from_entry,
    load_checkpoint,
    model_entry,
    save_checkpoint,
    token_lstm_from_entry,
)
from seqgan_env.core import REWARD_MODES
from seqgan_env.devices import resolve_device
from seqgan_env.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.oracle import load_oracle, random_oracle
from seqgan_env.token_lstm import TokenLSTM
from seqgan_env.vector_env import SeqGANVectorEnv
from seqgan_env.wrappers import DiscriminatorSchedule, DiscriminatorTrainingVectorWrapper

REPO_ROOT = Path(__file__).resolve().parents[1]
ROLLOUT_UPDATES = ("copy", "ema", "fixed")
CPU_FILTERS: str = adversarial.PRESETS["cpu"]["disc_filters"]  # one place for the cpu preset


@dataclass
class Config:
    """Every option of the script (the defaults finish on a 2-core CPU in under 30 minutes)."""

    algo: str = option(f"the SB3 algorithm: {', '.join(ALGORITHMS)}", default="ppo")
    pretrained: str | None = option("a train/adversarial.py run folder to start from (its pretrained.pt, else "
                                  "mle.pt); default: pre-train in place", default=None)  # fmt: skip
    pretrain_preset: str = option("preset of the in-place pre-training (train/adversarial.py --preset X "
                                "--rounds 0), when --pretrained is not given", default="cpu")  # fmt: skip
    pretrain_args: str = option("more options for the in-place pre-training, e.g. "
                              "--pretrain-args='--mle-epochs 20'", default="")  # fmt: skip
    oracle: str | None = option("oracle parameter file (.npz) for the in-place pre-training; default: the "
                              "built-in seeded random oracle", default=None)  # fmt: skip
    load: str | None = option("continue this saved SB3 model (.zip, same --algo) instead of warm-starting "
                            "from the generator", default=None)  # fmt: skip
    warm_start: bool = option("start from a fresh policy of the generator's shape instead of the pre-trained "
                            "generator (the warm start, default)", default=True)  # fmt: skip
    seed: int = option("seed of SB3, the env, sampling and the evaluation", default=0)
    device: str = option("torch device of the models", default="cpu")
    threads: int = option("CPU threads for torch (0: torch's default, one per core)", default=0)
    out: str = option("folder holding run folders", default="runs")
    name: str | None = option("run folder name (default: sb3_ALGO_sSEED_time)", default=None)
    rounds: int = option("SB3 updates (rollout + gradient steps), each followed by the rollout sync and the "
                       "discriminator training", default=40)  # fmt: skip
    n_envs: int = option("parallel envs (sequences per rollout step); the paper's batch is 64", default=64)
    n_steps: int = option("rollout length per env per update (0: T, one episode per env)", default=0)
    batch_size: int = option("PPO minibatch (0: half the rollout); ignored by A2C", default=0)
    n_epochs: int = option("PPO epochs over each rollout; ignored by A2C", default=4)
    learning_rate: float = option("the policy's learning rate (Adam; A2C: RMSprop)", default=1e-3)
    gamma: float = option("discount; 1 with shaped rewards (the return is D(y))", default=1.0)
    gae_lambda: float = option("GAE lambda", default=0.95)
    clip_range: float = option("PPO clip range; ignored by A2C", default=0.2)
    ent_coef: float = option("entropy bonus coefficient", default=0.0)
    vf_coef: float = option("value loss coefficient", default=0.5)
    max_grad_norm: float = option("gradient-norm clip of the policy", default=0.5)
    value_arch: str = option("hidden sizes of the value MLP, comma-separated ('' for none)", default="64")
    reward_mode: str = option("shaped (r_t = Q_t - Q_{t-1}), mc (r_t = Q_t: needs --gamma 0) or terminal",
                            default="shaped")  # fmt: skip
    n_rollouts: int = option("Monte Carlo completions per prefix (N)", default=8)
    rollout_update: str = option("the env's rollout policy: copy (= the SB3 policy, the paper), ema, or "
                               "fixed (stays the pre-trained generator)", default="copy")  # fmt: skip
    rollout_rate: float = option("ema rate: beta <- rate*beta + (1-rate)*theta", default=0.8)
    mask_tokens: str = option("maskable_ppo: comma-separated token ids the policy may never choose (the "
                            "evaluation, the rollout policy and the negatives use the unmasked distribution)",
                            default="")  # fmt: skip
    disc_repeats: int = option("discriminator trainings {negatives, epochs} per round (0: a fixed D)",
                             default=1)  # fmt: skip
    disc_epochs: int = option("epochs over each set of real + negatives", default=1)
    n_negatives: int = option("negatives per discriminator training set", default=4992)
    disc_pretrain_repeats: int = option("discriminator pre-training here, where the source has none: times "
                                      "{negatives, epochs}", default=10)  # fmt: skip
    disc_embed_dim: int = option("embedding size of a discriminator made here", default=32)
    disc_filters: str = option("filters of a discriminator made here: 'auto' (the cpu preset's that fit T: "
                             f"{CPU_FILTERS}), 'paper', or width:filters pairs", default="auto")  # fmt: skip
    eval_every: int = option("evaluate (and save model.zip) every this many rounds", default=10)
    eval_samples: int = option("generator samples for NLL-oracle", default=9984)
    temperature: float = option("sampling temperature of the evaluation", default=1.0)
    tensorboard: bool = option("write no TensorBoard logs (default: under RUN/tb)", default=True)
    progress: bool = option("show no progress bars", default=True)

    def validate(self) -> None:
        """Clear errors for impossible settings, before anything is written."""
        check_option_types(self)
        if self.algo not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algo!r}; choose from {', '.join(ALGORITHMS)}")
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(
                f"unknown reward mode {self.reward_mode!r}; choose from {', '.join(REWARD_MODES)}"
            )
        if self.rollout_update not in ROLLOUT_UPDATES:
            raise ValueError(
                f"--rollout-update must be one of {', '.join(ROLLOUT_UPDATES)}, got {self.rollout_update!r}"
            )
        for name in ("rounds", "n_envs", "n_epochs", "n_rollouts", "disc_epochs", "n_negatives",
                     "disc_embed_dim", "eval_every", "eval_samples"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("n_steps", "batch_size", "threads", "disc_repeats", "disc_pretrain_repeats"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in ("learning_rate", "temperature", "max_grad_norm", "clip_range"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        for name in ("ent_coef", "vf_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.rollout_rate < 1:
            raise ValueError(f"--rollout-rate must be in [0, 1), got {self.rollout_rate}")
        if not 0 <= self.seed <= 2**63 - 1:
            raise ValueError(f"--seed must be in [0, 2**63 - 1], got {self.seed}")
        resolve_device(self.device)
        for name in ("name", "pretrained", "load", "oracle", "out"):
            if getattr(self, name) == "":
                raise ValueError(f"--{name.replace('_', '-')} must not be empty")
        if self.name is not None:
            check_run_name(self.name)
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError(
                f"--gamma and --gae-lambda must lie in [0, 1], got {self.gamma}, {self.gae_lambda}"
            )
        if self.mask_tokens and self.algo != "maskable_ppo":
            raise ValueError("--mask-tokens needs --algo maskable_ppo")
        self.masked_tokens()
        self.value_layers()

    def masked_tokens(self) -> list[int]:
        try:
            return [int(t) for t in self.mask_tokens.split(",") if t.strip()]
        except ValueError:
            raise ValueError(
                f"--mask-tokens must be comma-separated token ids, got {self.mask_tokens!r}"
            ) from None

    def value_layers(self) -> tuple[int, ...]:
        try:
            layers = tuple(int(n) for n in self.value_arch.split(",") if n.strip())
        except ValueError:
            layers = (0,)
        if any(n < 1 for n in layers):
            raise ValueError(f"--value-arch must be comma-separated sizes >= 1, got {self.value_arch!r}")
        return layers

    def settings(self) -> dict[str, Any]:
        """What defines the run (everything but where it runs and how it is named)."""
        skip = {"device", "threads", "out", "name", "progress"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}


def parse_config(argv: list[str] | None = None) -> Config:
    parser = config_parser(Config, __doc__)
    config = Config(**vars(parser.parse_args(argv)))
    config.validate()
    return config


# --- the pre-trained models ------------------------------------------------------------------------
@dataclass
class Pretrained:
    """What a train/adversarial.py run folder provides."""

    source: Path  # the checkpoint used
    settings: dict[str, Any]  # the source run's config.json
    generator: TokenLSTM
    discriminator: Discriminator | None  # None: the source has no pre-trained one
    discriminator_optimizer: dict[str, Any] | None
    real: torch.Tensor
    test: torch.Tensor
    mle_rows: list[dict[str, Any]]


def pretrained_checkpoint(folder: str | Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint of a run folder's pre-training (pretrained.pt where its discriminator was
    pre-trained, else mle.pt) and the run's config; clear errors for anything else."""
    run = RunFolder(folder)
    if not run.path.is_dir():
        raise FileNotFoundError(f"--pretrained {folder}: no such folder")
    settings = run.saved_config()
    pretrained, mle = run.checkpoint("pretrained"), run.checkpoint("mle")
    if pretrained.is_file() and settings.get("disc_pretrain_repeats", 1) > 0:
        return pretrained, settings
    if mle.is_file():
        return mle, settings
    if pretrained.is_file():
        return pretrained, settings
    raise FileNotFoundError(
        f"--pretrained {folder} holds no pre-training (neither pretrained.pt nor mle.pt): let "
        "train/adversarial.py finish its MLE stage there, or make one with train/adversarial.py --rounds 0"
    )


def load_pretrained(folder: str | Path) -> Pretrained:
    path, settings = pretrained_checkpoint(folder)
    state = load_checkpoint(path)
    has_d = state.get("stage") in ("adversarial", "done") and settings.get("disc_pretrain_repeats", 1) > 0
    return Pretrained(
        source=path,
        settings=settings,
        generator=token_lstm_from_entry(state["generator"]).eval(),
        discriminator=discriminator_from_entry(state["discriminator"]) if has_d else None,
        discriminator_optimizer=state["discriminator_updater"]["optimizer"] if has_d else None,
        real=state["data"]["real"],
        test=state["data"]["test"],
        mle_rows=[r for r in state.get("metrics", []) if r["phase"] == "mle"],
    )


def source_oracle(settings: dict[str, Any], folder: Path) -> TokenLSTM:
    """The source run's oracle: its parameter file (a relative path is tried from the working
    directory, the repository root and the run folder) or its seeded random oracle."""
    V, T = settings["vocab_size"], settings["seq_len"]
    if settings.get("oracle") is None:
        return random_oracle(V, T, settings.get("oracle_seed", 0))
    given = Path(settings["oracle"])
    for candidate in (given, REPO_ROOT / given, folder / given):
        if candidate.is_file():
            return load_oracle(candidate, T)
    raise FileNotFoundError(f"the oracle file {given} of run {folder} was not found (tried the working "
                            f"directory, {REPO_ROOT} and the run folder)")  # fmt: skip


def pretrain_in_place(cfg: Config, run: RunFolder) -> Path:
    """Run train/adversarial.py's pre-training stages (--rounds 0) into RUN/pretrain; its folder."""
    cmd = [sys.executable, str(Path(__file__).with_name("adversarial.py")), "--preset", cfg.pretrain_preset,
           "--rounds", "0", "--seed", str(cfg.seed), "--device", cfg.device, "--out", str(run.path),
           "--name", "pretrain", "--threads", str(cfg.threads)]  # fmt: skip
    if cfg.oracle is not None:
        cmd += ["--oracle", cfg.oracle]
    cmd += shlex.split(cfg.pretrain_args)
    print("pre-training in place:", " ".join(shlex.quote(c) for c in cmd), flush=True)
    result = subprocess.run(cmd)
    if result.returncode != 0:
        raise RuntimeError(f"in-place pre-training failed (exit code {result.returncode})")
    return run.path / "pretrain"


def preset_sizes(cfg: Config) -> tuple[int, int]:
    """V and T the in-place pre-training will have (checks the preset and its options early)."""
    argv = ["--preset", cfg.pretrain_preset, *shlex.split(cfg.pretrain_args)]
    if cfg.oracle is not None:
        argv += ["--oracle", cfg.oracle]
    pre = adversarial.parse_config(argv)
    if cfg.oracle is not None:
        adversarial.make_oracle(pre)  # a missing or mismatched oracle file fails now, not in the subprocess
    return pre.vocab_size, pre.seq_len


def make_discriminator(cfg: Config, vocab_size: int, seq_len: int, rng: torch.Generator) -> Discriminator:
    """A fresh discriminator of this script's --disc-* sizes (for a source without a pre-trained one)."""
    filters = cfg.disc_filters
    if filters == "auto":
        filters = ",".join(p for p in CPU_FILTERS.split(",") if int(p.split(":")[0]) <= seq_len)
    sizes = adversarial.Config(vocab_size=vocab_size, seq_len=seq_len, disc_filters=filters)
    config = DiscriminatorConfig(vocab_size, seq_len, cfg.disc_embed_dim, sizes.filters())
    return Discriminator(config, generator=rng)


# --- the run ---------------------------------------------------------------------------------------
class SB3Run:
    """The env, the SB3 model and the bookkeeping of one run."""

    def __init__(self, cfg: Config, run: RunFolder, pre: Pretrained, oracle: TokenLSTM) -> None:
        self.cfg, self.run, self.pre = cfg, run, pre
        self.device = resolve_device(cfg.device)
        self.oracle = oracle.to(self.device)
        # One generator per purpose, each on the device it samples on: negatives and discriminator
        # minibatches (`rng`); a fresh one per evaluation; a fresh discriminator's initialisation (CPU).
        self.rng = seeded_generator(derive_seed(cfg.seed, "train"), self.device)
        gen = pre.generator.to(self.device)
        V, T = gen.config.vocab_size, gen.config.seq_len
        self.rollout_policy = TokenLSTM(gen.config).to(self.device)
        self.rollout_policy.load_state_dict(gen.state_dict())
        init = seeded_generator(derive_seed(cfg.seed, "init"))
        self.discriminator = (pre.discriminator or make_discriminator(cfg, V, T, init)).to(self.device)
        self.d_pretrained = pre.discriminator is not None
        self.sampler = PolicySampler(self.rng)
        schedule = DiscriminatorSchedule(None, max(cfg.disc_repeats, 1), cfg.n_negatives, cfg.disc_epochs)
        self.envs = DiscriminatorTrainingVectorWrapper(
            SeqGANVectorEnv(num_envs=cfg.n_envs, rollout_policy=self.rollout_policy,
                            discriminator=self.discriminator, n_rollouts=cfg.n_rollouts,
                            reward_mode=cfg.reward_mode, oracle_seed=None, device=cfg.device),
            real_data=pre.real, sampler=self.sampler, schedule=schedule, rng=self.rng,
        )  # fmt: skip
        if pre.discriminator_optimizer is not None:
            self.envs.updater.optimizer.load_state_dict(pre.discriminator_optimizer)
        mask = None
        if cfg.mask_tokens:
            mask = np.ones(V, dtype=bool)
            mask[cfg.masked_tokens()] = False  # ids checked in main()
        self.vec_env = SB3VecEnv(self.envs, action_mask=mask)
        self.n_steps = cfg.n_steps or T
        self.model = self._model()
        self.sampler.bind(self.model)
        self.rows: list[dict[str, Any]] = list(pre.mle_rows)
        self._t0 = time.monotonic()

    def _model(self) -> Any:
        cfg = self.cfg
        if cfg.load is not None:
            return load_model(cfg.algo, cfg.load, self.vec_env, device=cfg.device)
        rollout = self.n_steps * cfg.n_envs
        hyper: dict[str, Any] = dict(
            n_steps=self.n_steps, learning_rate=cfg.learning_rate, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda,
            ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm, seed=cfg.seed,
            device=cfg.device, verbose=0,
            tensorboard_log=str(self.run.path / "tb") if cfg.tensorboard else None,
        )  # fmt: skip
        if cfg.algo != "a2c":
            hyper.update(batch_size=cfg.batch_size or max(rollout // 2, 1), n_epochs=cfg.n_epochs,
                         clip_range=cfg.clip_range)  # fmt: skip
        gen = self.pre.generator
        return make_model(cfg.algo, self.vec_env, gen if cfg.warm_start else None, gen.config,
                          self.cfg.value_layers(), **hyper)  # fmt: skip

    def elapsed_s(self) -> float:
        return time.monotonic() - self._t0

    def pretrain_discriminator(self) -> None:
        """Where the source had no pre-trained discriminator: --disc-pretrain-repeats sets of fresh
        negatives from the (warm-started) policy, as train/adversarial.py's stage."""
        repeats = self.cfg.disc_pretrain_repeats
        if self.d_pretrained or repeats == 0:
            return
        bar = tqdm(range(repeats), desc="discriminator pre-training", unit="set",
                   disable=not self.cfg.progress)  # fmt: skip
        for _ in bar:
            bar.set_postfix(d_loss=f"{self.envs.updater.train(repeats=1):.4f}")

    def evaluate(self, rounds: int, generator: TokenLSTM, losses: dict[str, float]) -> dict[str, float]:
        """The REINFORCE path's evaluation of the policy's generator; a metrics row; model.zip."""
        cfg = self.cfg
        rng = seeded_generator(derive_seed(cfg.seed, "eval", rounds), self.device)  # never the training's
        ev = evaluate(generator.to(self.device), self.oracle, self.pre.test, cfg.eval_samples, rng,
                      cfg.temperature)  # fmt: skip
        self.rows.append({
            "phase": "adversarial", "step": rounds, "generator_updates": int(self.model._n_updates),
            **dataclasses.asdict(ev), "temperature": cfg.temperature, "d_loss": losses["d_loss"],
            "pg_loss": losses["pg_loss"], "elapsed_s": round(self.elapsed_s(), 1),
        })  # fmt: skip
        self.run.write_metrics(self.rows)
        self.model.save(self.run.path / "model.zip")
        return {"nll_oracle": ev.nll_oracle, "nll_test": ev.nll_test}

    def learn(self) -> None:
        cfg = self.cfg
        rounds_cb = AdversarialRoundCallback(
            self.rollout_policy, self.envs if cfg.disc_repeats > 0 else None, cfg.rollout_update,
            cfg.rollout_rate, self.evaluate, cfg.eval_every,
        )  # fmt: skip
        callbacks = [rounds_cb]
        if cfg.progress:
            callbacks.append(ProgressCallback(rounds_cb, f"{cfg.algo} rounds"))
        total = cfg.rounds * cfg.n_envs * self.n_steps
        self.model.learn(total, callback=callbacks, tb_log_name=cfg.algo,
                         reset_num_timesteps=cfg.load is None)  # fmt: skip

    def finish(self) -> TokenLSTM:
        """model.zip, final.pt, metrics.csv, curve.png, samples.txt; returns the final generator."""
        generator = generator_from_policy(self.model.policy)
        self.model.save(self.run.path / "model.zip")
        save_checkpoint(self.run.checkpoint("final"), {
            "config": self.cfg.settings(), "stage": "done", "algo": self.cfg.algo,
            "pretrained_from": str(self.pre.source), "generator": model_entry(generator),
            "rollout_policy": model_entry(self.rollout_policy),
            "discriminator": model_entry(self.discriminator),
            "data": {"real": self.pre.real, "test": self.pre.test}, "metrics": self.rows,
            "elapsed_s": self.elapsed_s(),
        })  # fmt: skip
        self.run.write_metrics(self.rows)
        title = f"SB3 {self.cfg.algo} from {self.pre.source.parent.name}, seed {self.cfg.seed}"
        plot_learning_curve(self.rows, self.run.path / "curve.png", title)
        self.run.write_samples(generator.sample(100, seeded_generator(derive_seed(self.cfg.seed, "samples"),
                                                                      self.device)))  # fmt: skip
        self.run.close()
        self.vec_env.close()
        return generator


def main(argv: list[str] | None = None) -> int:
    t0 = time.monotonic()
    try:  # every check of the user's input happens before anything is written
        cfg = parse_config(argv)
        algorithm_class(cfg.algo)  # sb3-contrib present where needed
        if cfg.pretrained is not None:
            _, settings = pretrained_checkpoint(cfg.pretrained)
            vocab_size, seq_len = settings["vocab_size"], settings["seq_len"]
        else:
            vocab_size, seq_len = preset_sizes(cfg)
        if cfg.load is not None:
            from gymnasium import spaces

            check_saved_model(cfg.algo, cfg.load, spaces.Box(0, vocab_size, shape=(seq_len,), dtype=np.int64))
        bad = [t for t in cfg.masked_tokens() if not 0 <= t < vocab_size]
        if bad:
            raise ValueError(f"--mask-tokens {bad} are not token ids in [0, {vocab_size})")
        make_discriminator(cfg, vocab_size, seq_len, torch.Generator())  # --disc-filters fit T
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if cfg.reward_mode == "mc" and cfg.gamma > 0:
        print(f"warning: --reward-mode mc with --gamma {cfg.gamma}: the return then sums Q_t over the "
              "episode (SPEC 3: use --gamma 0 with mc, or the default shaped rewards)", file=sys.stderr)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    name = cfg.name or f"sb3_{cfg.algo}_s{cfg.seed}_{datetime.now():%Y%m%d-%H%M%S}"
    run = RunFolder(Path(cfg.out) / name)
    try:
        run.create(cfg.settings())
    except FileExistsError as err:
        print(f"error: {err}".replace("pass --resume", "remove it to start again"), file=sys.stderr)
        return 2
    print(f"run folder: {run.path}", flush=True)
    try:
        source = Path(cfg.pretrained) if cfg.pretrained is not None else pretrain_in_place(cfg, run)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    pre = load_pretrained(source)
    oracle = source_oracle(pre.settings, source)
    print(f"pre-trained generator from {pre.source}" + ("" if pre.discriminator is not None else
          "; no pre-trained discriminator there: pre-training one here"), flush=True)  # fmt: skip
    sb3_run = SB3Run(cfg, run, pre, oracle)
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
