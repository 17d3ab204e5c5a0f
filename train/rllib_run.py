"""An RLlib run of the adversarial phase: the algorithm, the driver's models, evaluation, checkpoints.

The driver holds the reference rollout policy and discriminator (and the discriminator's schedule);
`agents.rllib.RLlibLearner` keeps every env runner's copies equal to them. The checkpoint, `latest.pt`
(written every --eval-every rounds), holds RLlib's state as plain tensors and numbers
(`agents.rllib.algorithm_state`: the RLModule, the optimizer, the counters; RLlib's own checkpoint
folder is pickles, which restoring would run), the driver's models, the schedule's state, the random
generators and the metrics rows; `--resume` restores them all and broadcasts the models before the
runners sample again.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS

from agents.rllib import (
    RLlibLearner,
    algorithm_config,
    algorithm_state,
    build_algorithm,
    restore_algorithm_state,
)
from agents.rllib_module import module_config
from seqgan_env.checkpoint import load_weights, model_entry, save_checkpoint
from seqgan_env.discriminator import SequenceScorer
from seqgan_env.finite import require_finite
from seqgan_env.optim_state import load_optimizer_state
from seqgan_env.prefix_discriminator import PrefixDiscriminatorConfig
from seqgan_env.scorers import OracleScorer
from seqgan_env.token_lstm import TokenLSTM
from seqgan_env.vector_env import SeqGANVectorEnv
from seqgan_env.wrappers import DiscriminatorSchedule, DiscriminatorUpdater
from train.diagnostics import has_signal
from train.evaluation import evaluate_policy_round, metric_fields
from train.plots import plot_learning_curve, plot_signal
from train.rllib_config import RLlibConfig
from train.rng import derive_seed, seeded_rng
from train.run_folder import RunFolder
from train.sb3_run import learner_discriminator
from train.sources import Pretrained
from train.stages import pretrain_discriminator_set, run_rounds
from train.stopping import signals_held

RUN_STATE_VERSION = 2  # 1: RLlib's state in a checkpoint folder of pickles beside latest.pt


class RLlibRun:
    """The algorithm, the driver's models and the bookkeeping of one run."""

    def __init__(self, cfg: RLlibConfig, run: RunFolder, pre: Pretrained, oracle: TokenLSTM) -> None:
        self.cfg, self.run, self.pre, self.oracle = cfg, run, pre, oracle
        self.rng = seeded_rng(derive_seed(cfg.seed, "train"))  # negatives, discriminator minibatches
        gen = pre.generator
        V, T = gen.config.vocab_size, gen.config.seq_len
        self.rollout_policy = TokenLSTM(gen.config)
        self.rollout_policy.load_state_dict(gen.state_dict())
        self.discriminator, self.d_pretrained = learner_discriminator(
            cfg, pre, V, T, seeded_rng(derive_seed(cfg.seed, "init"))
        )
        # --reward oracle: the oracle's likelihood scores sequences on every runner (fixed, so it travels
        # once, in the env config) and no discriminator trains
        oracle_reward = OracleScorer(oracle) if cfg.reward == "oracle" else None
        self.scorer: SequenceScorer = self.discriminator if oracle_reward is None else oracle_reward
        self.trains_discriminator = oracle_reward is None and cfg.disc_repeats > 0
        d = self.discriminator.config
        sizes = ({"discriminator_hidden_dim": d.hidden_dim, "discriminator_layer_norm": d.layer_norm}
                 if isinstance(d, PrefixDiscriminatorConfig) else {"discriminator_filters": d.filters})
        self.env_config: dict[str, Any] = {
            "vocab_size": V, "seq_len": T, "n_rollouts": cfg.n_rollouts, "reward_mode": cfg.reward_mode,
            "embed_dim": gen.config.embed_dim, "hidden_dim": gen.config.hidden_dim,
            "start_token": gen.config.start_token, "discriminator_embed_dim": d.embed_dim, **sizes,
            "oracle_seed": None, "scorer": oracle_reward,
        }  # fmt: skip
        # The driver's env: the reference the runners' envs must equal (same models, same kwargs).
        models: dict[str, Any] = {"rollout_policy": self.rollout_policy, "discriminator": self.discriminator}
        self.local_env = SeqGANVectorEnv(num_envs=1, **self.env_config, **models)
        self.n_steps = cfg.n_steps or T
        model = module_config(gen.config, gen if cfg.warm_start else None, cfg.value_layers())
        episodes = cfg.n_envs * max(self.n_steps // T, 1)  # ending in a round (exact when n_steps = T)
        hyper = cfg.hyperparameters(cfg.n_envs * self.n_steps, episodes)
        config = algorithm_config(cfg.algo, self.env_config, model, cfg.n_envs, cfg.num_env_runners,
                                  self.n_steps, hyper, cfg.seed)  # fmt: skip
        self.algo = build_algorithm(config)
        schedule = DiscriminatorSchedule(None, max(cfg.disc_repeats, 1), cfg.n_negatives, cfg.disc_epochs,
                                         cfg.disc_batch_size)  # fmt: skip
        self.updater = DiscriminatorUpdater(self.discriminator, pre.real, self._sample, schedule, self.rng)
        if self.d_pretrained and pre.discriminator_optimizer is not None:
            load_optimizer_state(self.updater.optimizer, pre.discriminator_optimizer, str(pre.source))
        self.learner = RLlibLearner(self.algo, self.rollout_policy, self.updater, cfg.rollout_update,
                                    cfg.rollout_rate)  # fmt: skip
        self.rows: list[dict[str, Any]] = list(pre.mle_rows)
        self.done = 0  # rounds finished
        self.saved: int | None = None  # the round of the last checkpoint (latest.pt)
        self.elapsed = 0.0
        self._t0 = time.monotonic()

    def _sample(self, n: int) -> torch.Tensor:
        return self.learner.sample(n, self.rng)

    def elapsed_s(self) -> float:
        return self.elapsed + time.monotonic() - self._t0

    def pretrain_discriminator(self) -> None:
        """Where the source had no pre-trained discriminator: --disc-pretrain-repeats sets of fresh
        negatives from the (warm-started) policy."""
        if not self.d_pretrained and self.cfg.reward == "discriminator":  # a fixed D (--disc-repeats 0) too
            for set_ in range(1, self.cfg.disc_pretrain_repeats + 1):
                pretrain_discriminator_set(self.updater, set_)

    def evaluate(self, round_: int, losses: dict[str, float]) -> dict[str, str]:
        """The policy's evaluation (train.evaluation.evaluate_policy_round)."""
        return evaluate_policy_round(self.cfg, round_, self.learner.generator, self.rollout_policy,
                                     self.scorer, self.pre, self.oracle, round_, losses, self.elapsed_s(),
                                     self.rows, self.run)  # fmt: skip

    def learn(self) -> None:
        """Rounds done+1 .. --rounds (train.stages.run_rounds), checkpointing every --eval-every."""
        cfg = self.cfg
        if self.done == 0:
            self.learner.start_rollout_policy()
            self.evaluate(0, {"d_loss": float("nan"), "pg_loss": float("nan")})
        else:
            self.learner.broadcast()  # restored models reach every runner before it samples

        def on_round(round_: int, losses: dict[str, float]) -> dict[str, str] | None:
            self.done = round_
            stats = self.learner.last_result.get(ENV_RUNNER_RESULTS, {})
            self.run.log_scalars({"losses/pg": losses["pg_loss"], "losses/discriminator": losses["d_loss"],
                                  "rollout/ep_rew_mean": stats.get("episode_return_mean", float("nan"))},
                                 round_)  # fmt: skip
            if round_ % cfg.eval_every == 0 or round_ == cfg.rounds:
                summary = self.evaluate(round_, losses)
                self.save()
                return summary
            return None

        d_training = self.learner.train_discriminator if self.trains_discriminator else None
        run_rounds(self.learner, self.local_env, cfg.rounds, self.done, d_training, on_round,
                   f"rllib {cfg.algo} rounds", cfg.progress)  # fmt: skip

    def save(self) -> None:
        """latest.pt, atomically: the resume point. The learner's weights are checked finite first
        (`NonFiniteError`), and a signal waits for the end of the write."""
        require_finite(f"adversarial round {self.done}, before writing its checkpoint",
                       learner=self.algo.learner_group.get_weights())  # fmt: skip
        with signals_held():
            save_checkpoint(self.run.checkpoint("latest"), self.state())
            self.saved = self.done

    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs, as plain types and tensors (loadable weights-only)."""
        return {
            "run_state_version": RUN_STATE_VERSION, "config": self.cfg.settings(), "algo": self.cfg.algo,
            "stage": "adversarial" if self.done < self.cfg.rounds else "done", "progress": self.done,
            "rllib": algorithm_state(self.algo), "pretrained_from": str(self.pre.source),
            "generator": model_entry(self.learner.generator),
            "rollout_policy": model_entry(self.rollout_policy),
            "discriminator": model_entry(self.discriminator),
            "discriminator_updater": self.updater.state_dict(),
            "rng": {"train": self.rng.get_state(), "torch": torch.get_rng_state()},
            "data": {"real": self.pre.real, "test": self.pre.test}, "metrics": self.rows,
            "elapsed_s": self.elapsed_s(),
        }  # fmt: skip

    def resume(self, state: dict[str, Any]) -> None:
        """Continue from `latest.pt` (`check_run_state` first): RLlib's state (module, optimizer,
        counters) and the driver's. A state that does not fit this run is a one-line ValueError."""
        try:
            restore_algorithm_state(self.algo, state["rllib"])
            latest = str(self.run.checkpoint("latest"))
            load_weights(self.rollout_policy, state["rollout_policy"]["state_dict"], latest)
            load_weights(self.discriminator, state["discriminator"]["state_dict"], latest)
            self.updater.load_state_dict(state["discriminator_updater"], latest)
            self.rng.set_state(state["rng"]["train"])
            torch.set_rng_state(state["rng"]["torch"])
            self.rows, self.done = list(state["metrics"]), int(state["progress"])
            self.elapsed = float(state["elapsed_s"])
            self.saved = self.done
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as err:
            reason = (str(err).strip().splitlines() or [""])[0][:150]
            raise ValueError(f"{self.run.checkpoint('latest')} does not fit this run ({type(err).__name__}: "
                             f"{reason})") from None  # fmt: skip
        self.learner.iterations = self.done
        self.learner.invalidate()

    def finish(self) -> TokenLSTM:
        """final.pt, metrics.csv, curve.png, samples.txt; returns the final generator."""
        generator = self.learner.generator
        save_checkpoint(self.run.checkpoint("final"), {**self.state(), "stage": "done"})
        self.run.write_metrics(self.rows, metric_fields(self.cfg.reward_mode == "dense"))
        title = f"RLlib {self.cfg.algo}, {self.cfg.num_env_runners} env runners, seed {self.cfg.seed}"
        plot_learning_curve(self.rows, self.run.path / "curve.png", title)
        if has_signal(self.rows):
            plot_signal(self.rows, self.run.path / "signal.png", f"the reward's signal: {title}")
        self.run.write_samples(generator.sample(100, seeded_rng(derive_seed(self.cfg.seed, "samples"))))
        self.run.close()
        self.algo.stop()
        return generator


def check_run_state(state: dict[str, Any], path: Any) -> None:
    """A resume point this version of train/rllib.py reads (see RUN_STATE_VERSION)."""
    version = state.get("run_state_version")
    if version != RUN_STATE_VERSION:
        raise ValueError(f"{path} was written by another version of train/rllib.py (run state version "
                         f"{version!r}, this one reads {RUN_STATE_VERSION}): start it again")  # fmt: skip
