"""An SB3 run of the adversarial phase: the env, the SB3 model as a `Learner`, evaluation, outputs.

The policy starts as the pre-trained generator (the warm start: equal next-token distributions) and is
evaluated with the REINFORCE path's code (`train.evaluation.evaluate`: NLL-oracle, NLL-test).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from agents.sb3 import PolicySampler, SB3Learner, SB3VecEnv, generator_from_policy, load_model, make_model
from seqgan_env.checkpoint import model_entry, save_checkpoint
from seqgan_env.devices import resolve_device
from seqgan_env.discriminator import Discriminator, DiscriminatorConfig, SequenceScorer
from seqgan_env.files import write_atomically
from seqgan_env.finite import require_finite
from seqgan_env.optim_state import load_optimizer_state
from seqgan_env.prefix_discriminator import AnyDiscriminator, PrefixDiscriminator
from seqgan_env.rewards import MonteCarloSearch
from seqgan_env.scorers import OracleScorer
from seqgan_env.token_lstm import TokenLSTM
from seqgan_env.vector_env import SeqGANVectorEnv
from seqgan_env.wrappers import DiscriminatorSchedule, DiscriminatorTrainingVectorWrapper
from train.config import Config
from train.dense import PrefixOptions, make_prefix_discriminator
from train.diagnostics import has_signal
from train.evaluation import evaluate_policy_round, metric_fields
from train.plots import plot_learning_curve, plot_signal
from train.rng import derive_seed, seeded_rng
from train.run_folder import RunFolder
from train.sb3_config import CPU_FILTERS, SB3Config
from train.sources import Pretrained
from train.stages import pretrain_discriminator_set, run_rounds
from train.stopping import signals_held


class DiscriminatorOptions(Protocol):
    """The --disc-* sizes of a script that may make its own discriminator (train/sb3.py, train/rllib.py)."""

    @property
    def disc_filters(self) -> str: ...
    @property
    def disc_embed_dim(self) -> int: ...


def make_discriminator(
    cfg: DiscriminatorOptions, vocab_size: int, seq_len: int, rng: torch.Generator
) -> Discriminator:
    """A fresh discriminator of --disc-* sizes (for a source without a pre-trained one)."""
    filters = cfg.disc_filters
    if filters == "auto":
        filters = ",".join(p for p in CPU_FILTERS.split(",") if int(p.split(":")[0]) <= seq_len)
    sizes = Config(vocab_size=vocab_size, seq_len=seq_len, disc_filters=filters)
    config = DiscriminatorConfig(vocab_size, seq_len, cfg.disc_embed_dim, sizes.filters())
    return Discriminator(config, rng=rng)


class LearnerDiscriminatorOptions(DiscriminatorOptions, PrefixOptions, Protocol):
    """What picks an SB3 or RLlib run's discriminator: the reward mode and the --disc-* sizes."""

    @property
    def reward_mode(self) -> str: ...


def learner_discriminator(
    cfg: LearnerDiscriminatorOptions, pre: Pretrained, vocab_size: int, seq_len: int, rng: torch.Generator
) -> tuple[AnyDiscriminator, bool]:
    """An SB3 or RLlib run's discriminator, and whether it is the source's pre-trained one: that one where
    it is of the kind the reward mode needs (a prefix discriminator for --reward-mode dense, the CNN
    otherwise), else a fresh one of the --disc-* sizes (the run then pre-trains it)."""
    dense = cfg.reward_mode == "dense"
    if pre.discriminator is not None and isinstance(pre.discriminator, PrefixDiscriminator) == dense:
        return pre.discriminator, True
    if dense:
        return make_prefix_discriminator(cfg, vocab_size, seq_len, rng), False
    return make_discriminator(cfg, vocab_size, seq_len, rng), False


class SB3Run:
    """The env, the SB3 model and the bookkeeping of one run."""

    def __init__(self, cfg: SB3Config, run: RunFolder, pre: Pretrained, oracle: TokenLSTM) -> None:
        self.cfg, self.run, self.pre = cfg, run, pre
        self.device = resolve_device(cfg.device)
        self.oracle = oracle.to(self.device)
        # One generator per purpose, each on the device it samples on: negatives and discriminator
        # minibatches (`rng`); a fresh one per evaluation; a fresh discriminator's initialisation (CPU).
        self.rng = seeded_rng(derive_seed(cfg.seed, "train"), self.device)
        gen = pre.generator.to(self.device)
        V, T = gen.config.vocab_size, gen.config.seq_len
        self.rollout_policy = TokenLSTM(gen.config).to(self.device)
        self.rollout_policy.load_state_dict(gen.state_dict())
        self.signal_search = MonteCarloSearch(self.rollout_policy, cfg.n_rollouts)  # the diagnostics' Q
        init = seeded_rng(derive_seed(cfg.seed, "init"))
        self.discriminator, self.d_pretrained = learner_discriminator(cfg, pre, V, T, init)
        self.discriminator.to(self.device)
        self.trains_discriminator = cfg.reward == "discriminator" and cfg.disc_repeats > 0
        self.sampler = PolicySampler(self.rng)
        oracle_reward = OracleScorer(self.oracle) if cfg.reward == "oracle" else None
        self.scorer: SequenceScorer = self.discriminator if oracle_reward is None else oracle_reward
        schedule = DiscriminatorSchedule(None, max(cfg.disc_repeats, 1), cfg.n_negatives, cfg.disc_epochs,
                                         cfg.disc_batch_size)  # fmt: skip
        self.envs = DiscriminatorTrainingVectorWrapper(
            SeqGANVectorEnv(num_envs=cfg.n_envs, rollout_policy=self.rollout_policy,
                            discriminator=self.discriminator, n_rollouts=cfg.n_rollouts,
                            reward_mode=cfg.reward_mode, oracle_seed=None, device=cfg.device,
                            scorer=oracle_reward),
            real_data=pre.real, sampler=self.sampler, schedule=schedule, rng=self.rng,
        )  # fmt: skip
        if self.d_pretrained and pre.discriminator_optimizer is not None:
            load_optimizer_state(self.envs.updater.optimizer, pre.discriminator_optimizer, str(pre.source))
        mask = None
        if cfg.mask_tokens:
            mask = np.ones(V, dtype=bool)
            mask[cfg.masked_tokens()] = False  # ids checked by the script
        self.vec_env = SB3VecEnv(self.envs, action_mask=mask)
        self.n_steps = cfg.n_steps or T
        self.model = self._model()
        self.sampler.bind(self.model)
        self.rows: list[dict[str, Any]] = list(pre.mle_rows)
        self.done = 0  # rounds finished
        self.saved: int | None = None  # the round whose policy model.zip holds
        self._t0 = time.monotonic()

    def _model(self) -> Any:
        """The SB3 model: warm-started from the generator, or continued from --load (its weights,
        optimizer state and counters; the hyperparameters are this run's options either way)."""
        cfg = self.cfg
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
        if cfg.load is not None:
            return load_model(cfg.algo, cfg.load, self.vec_env, gen.config, cfg.value_layers(), **hyper)
        return make_model(cfg.algo, self.vec_env, gen if cfg.warm_start else None, gen.config,
                          self.cfg.value_layers(), **hyper)  # fmt: skip

    def elapsed_s(self) -> float:
        return time.monotonic() - self._t0

    def pretrain_discriminator(self) -> None:
        """Where the source had no pre-trained discriminator: --disc-pretrain-repeats sets of fresh
        negatives from the (warm-started) policy, as train/adversarial.py's stage."""
        repeats = self.cfg.disc_pretrain_repeats
        if self.d_pretrained or repeats == 0 or self.cfg.reward != "discriminator":
            return
        bar = tqdm(range(repeats), desc="discriminator pre-training", unit="set",
                   disable=not self.cfg.progress)  # fmt: skip
        for set_ in bar:
            bar.set_postfix(d_loss=f"{pretrain_discriminator_set(self.envs.updater, set_ + 1):.4f}")

    def evaluate(self, round_: int, learner: SB3Learner, losses: dict[str, float]) -> dict[str, str]:
        """The policy's evaluation (train.evaluation.evaluate_policy_round), and model.zip."""
        summary = evaluate_policy_round(self.cfg, round_, learner.generator, self.rollout_policy, self.scorer,
                                        self.pre, self.oracle, learner.n_updates, losses, self.elapsed_s(),
                                        self.rows, self.run, self.signal_search)  # fmt: skip
        self.save_model(round_)
        return summary

    def save_model(self, round_: int) -> None:
        """model.zip, written whole (atomically, a signal held meanwhile), never with a non-finite weight."""
        policy = self.model.policy
        require_finite(f"round {round_}, before writing model.zip", policy=policy,
                       optimizer=policy.optimizer.state_dict())  # fmt: skip
        with signals_held():
            write_atomically(self.run.path / "model.zip", lambda f: self.model.save(f))
            self.saved = round_

    def learn(self) -> None:
        """The adversarial rounds, with the SB3 model as the learner (train.stages.run_rounds)."""
        cfg = self.cfg
        learner = SB3Learner(self.model, cfg.rounds, self.rollout_policy, cfg.rollout_update,
                             cfg.rollout_rate, tb_log_name=cfg.algo,
                             reset_num_timesteps=cfg.load is None)  # fmt: skip
        learner.start_rollout_policy()
        self.evaluate(0, learner, {"d_loss": float("nan"), "pg_loss": float("nan")})

        def on_round(round_: int, losses: dict[str, float]) -> dict[str, str] | None:
            self.done = round_
            self.run.log_scalars({"losses/pg": losses["pg_loss"], "losses/discriminator": losses["d_loss"]},
                                 round_)  # fmt: skip
            if round_ % cfg.eval_every == 0 or round_ == cfg.rounds:
                return self.evaluate(round_, learner, losses)
            return None

        d_training = self.envs.train_discriminator if self.trains_discriminator else None
        run_rounds(
            learner, self.envs, cfg.rounds, 0, d_training, on_round, f"{cfg.algo} rounds", cfg.progress
        )
        learner.close()

    def finish(self) -> TokenLSTM:
        """model.zip, final.pt, metrics.csv, curve.png, samples.txt; returns the final generator."""
        generator = generator_from_policy(self.model.policy)
        self.save_model(self.cfg.rounds)
        save_checkpoint(self.run.checkpoint("final"), {
            "config": self.cfg.settings(), "stage": "done", "algo": self.cfg.algo,
            "pretrained_from": str(self.pre.source), "generator": model_entry(generator),
            "rollout_policy": model_entry(self.rollout_policy),
            "discriminator": model_entry(self.discriminator),
            "data": {"real": self.pre.real, "test": self.pre.test}, "metrics": self.rows,
            "elapsed_s": self.elapsed_s(),
        })  # fmt: skip
        self.run.write_metrics(self.rows, metric_fields(self.cfg.reward_mode == "dense"))
        title = f"SB3 {self.cfg.algo} from {self.pre.source.parent.name}, seed {self.cfg.seed}"
        plot_learning_curve(self.rows, self.run.path / "curve.png", title)
        if has_signal(self.rows):
            plot_signal(self.rows, self.run.path / "signal.png", f"the reward's signal: {title}")
        self.run.write_samples(
            generator.sample(100, seeded_rng(derive_seed(self.cfg.seed, "samples"), self.device))
        )
        self.run.close()
        self.vec_env.close()
        return generator
