"""SeqGAN's adversarial rounds on Ray RLlib (new API stack): PPO, APPO, IMPALA with K env runners.

RLlib syncs only the RLModule to its env runners. SeqGAN's other two models, the rollout policy and
the discriminator, live inside each runner's env, so this module keeps them in step itself:

- The env runners build the native `SeqGANVectorEnv` through `agents.rllib_env.make_vector_env`, a
  creator function (so remote runners import `seqgan_env` themselves; a bare id fails there with
  `NameNotFound`), wrapped in an `EpisodeRecorder` that keeps the sequences each runner finished.
- The driver holds the reference models: the rollout policy and the discriminator, and the
  discriminator's training (`DiscriminatorUpdater`, the same schedule object as the REINFORCE and SB3
  learners'). Why the driver: there is one discriminator and one schedule, its training data (the
  runners' episodes plus fresh samples of the policy) meets there anyway, and a learner actor would
  need RLlib's private hooks to train a second network; at the paper's scale its training moves to
  GPUs of its own (README, "Scaling out").
- `RLlibLearner` meets `agents.learner.Learner`: a round is `algo.train()` (the runners sample, the
  learners update, RLlib syncs the RLModule), then the rollout policy follows the new policy and
  reaches every runner, and so does the discriminator after it trains (`agents.rllib_env.broadcast`,
  each model once a round), before the runners sample again. The learners are RLlib's, matched to
  SB3's (`agents.rllib_learners`).

A runner that fails is not restarted (`fault_tolerance(restart_failed_env_runners=False)`): the round
raises instead of carrying on with fewer runners, and a round that sampled nothing is an error.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, LEARNER_RESULTS, NUM_ENV_STEPS_SAMPLED
from ray.tune.registry import register_env

from agents.learner import sync_rollout_policy
from agents.rllib_env import ENV_NAME, broadcast, make_vector_env, runner_episodes
from agents.rllib_learners import LEARNERS
from agents.rllib_module import TokenPrefixRLModule
from seqgan_env.discriminator import Discriminator
from seqgan_env.prefix_discriminator import AnyDiscriminator, PrefixDiscriminator
from seqgan_env.token_lstm import TokenLSTM
from seqgan_env.wrappers import DiscriminatorUpdater

ALGORITHMS = ("ppo", "appo", "impala")
ROLLOUT_UPDATES = ("copy", "ema", "fixed")


def algorithm_config(
    algo: str,
    env_config: dict[str, Any],
    model_config: dict[str, Any],
    n_envs: int,
    num_env_runners: int,
    rollout_len: int,
    hyperparameters: dict[str, Any],
    seed: int,
) -> AlgorithmConfig:
    """An RLlib config of `algo` on SeqGAN-v0: `n_envs` envs split over the runners (the driver's
    local runner samples when `num_env_runners` is 0), `rollout_len` steps of each per round, the
    `TokenPrefixRLModule`, one local learner, no runner restarts. `hyperparameters` go to
    `config.training` (RLlib's names: lr, gamma, lambda_, clip_param, ...)."""
    if algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algo!r}; choose from {', '.join(ALGORITHMS)}")
    runners = max(num_env_runners, 1)
    if n_envs % runners:
        raise ValueError(f"--n-envs {n_envs} must be a multiple of --num-env-runners {num_env_runners}")
    register_env(ENV_NAME, make_vector_env)
    if algo == "ppo":
        from ray.rllib.algorithms.ppo import PPOConfig as Config
    elif algo == "appo":
        from ray.rllib.algorithms.appo import APPOConfig as Config
    else:
        from ray.rllib.algorithms.impala import IMPALAConfig as Config
    runner_options = {
        "num_env_runners": num_env_runners, "num_envs_per_env_runner": n_envs // runners,
        # the native SeqGANVectorEnv (RLlib's default "sync" would wrap single envs instead)
        "gym_env_vectorize_mode": "vector_entry_point", "rollout_fragment_length": rollout_len,
    }  # fmt: skip
    config = (
        Config()
        .environment(ENV_NAME, env_config=env_config)
        .env_runners(**runner_options)
        .learners(num_learners=0, learner_class=LEARNERS[algo])
        .rl_module(rl_module_spec=RLModuleSpec(module_class=TokenPrefixRLModule, model_config=model_config))
        .training(train_batch_size_per_learner=n_envs * rollout_len, **hyperparameters)
        .fault_tolerance(restart_failed_env_runners=False, ignore_env_runner_failures=False)
        .debugging(seed=seed, log_level="ERROR")
        # A round is one algo.train(): at least one batch sampled (APPO and IMPALA otherwise iterate
        # for 10 s, their first iterations sampling nothing while requests are in flight).
        .reporting(metrics_num_episodes_for_smoothing=n_envs, min_time_s_per_iteration=0,
                   min_sample_timesteps_per_iteration=n_envs * rollout_len)
    )
    return config


def build_algorithm(config: AlgorithmConfig) -> Algorithm:
    """`config.build_algo()`, less the empty folder that Ray's `Trainable` makes in ~/ray_results for
    every algorithm built outside Tune (nothing is written there: the run folder holds the results)."""
    algo = config.build_algo()
    with contextlib.suppress(OSError):  # only an empty folder is removed
        os.rmdir(algo.logdir)
    return algo


class RLlibLearner:
    """An RLlib algorithm as a `Learner` (agents/learner.py); see the module docstring.

    `rollout_policy` and `updater` (its discriminator, schedule and data) are the driver's: the
    reference copies that every runner's env receives after each change.
    """

    def __init__(
        self,
        algo: Algorithm,
        rollout_policy: TokenLSTM,
        updater: DiscriminatorUpdater,
        rollout_update: str = "copy",
        rollout_rate: float = 0.8,
    ) -> None:
        if rollout_update not in ROLLOUT_UPDATES:
            raise ValueError(f"rollout_update must be one of {ROLLOUT_UPDATES}, got {rollout_update!r}")
        self.algo, self.rollout_policy, self.updater = algo, rollout_policy, updater
        self.rollout_update, self.rollout_rate = rollout_update, rollout_rate
        self.iterations = 0
        self.last_result: dict[str, Any] = {}
        spec = algo.config.rl_module_spec
        assert isinstance(spec, RLModuleSpec)
        env = make_vector_env({**algo.config.env_config, "num_envs": 1})  # for the spaces only
        self._module = TokenPrefixRLModule(observation_space=env.single_observation_space,
                                           action_space=env.single_action_space,
                                           model_config=spec.model_config)  # fmt: skip
        env.close()
        self._module_version = -1

    @property
    def discriminator(self) -> AnyDiscriminator:
        discriminator = self.updater.discriminator
        assert isinstance(discriminator, (Discriminator, PrefixDiscriminator))  # built by train/rllib_run.py
        return discriminator

    @property
    def generator(self) -> TokenLSTM:
        """The learner's current policy as a token LSTM."""
        if self._module_version != self.iterations:
            self._module.set_state(self.algo.learner_group.get_weights()[DEFAULT_MODULE_ID])
            self._module_version = self.iterations
        return self._module.generator().to(self.rollout_policy.device)

    @property
    def weights(self) -> dict[str, Any]:
        """The learner's module weights (the value head included), as RLlib reports them."""
        return dict(self.algo.learner_group.get_weights())

    def invalidate(self) -> None:
        """Read the learner's weights afresh at the next `generator` (after a restore)."""
        self._module_version = -1

    def sample(self, n: int, rng: torch.Generator | None = None) -> torch.Tensor:
        """n fresh sequences [n, T] of the current policy: the discriminator's top-up negatives."""
        return self.generator.sample(n, rng)

    def start_rollout_policy(self) -> None:
        """beta = theta (unless fixed), and every runner holds the driver's models."""
        if self.rollout_update != "fixed":
            sync_rollout_policy(self.rollout_policy, self.generator)
        self.broadcast()

    def collect(self, envs: Any = None) -> dict[str, Any]:
        """One `algo.train()`: the runners sample, the learner updates (RLlib cannot split the two)."""
        result = self.algo.train()
        sampled = result.get(ENV_RUNNER_RESULTS, {}).get(NUM_ENV_STEPS_SAMPLED, 0)
        if not sampled:
            raise RuntimeError(f"the env runners sampled nothing in round {self.iterations + 1} (a runner "
                               "failed or timed out): see the Ray worker logs")  # fmt: skip
        self.last_result = result
        return result

    def update(self, batch: dict[str, Any] | None = None) -> float:
        """The gradient steps happened in `collect`; here the round is counted, the policy loss read
        and the rollout policy synced."""
        self.iterations += 1
        stats = (batch or self.last_result).get(LEARNER_RESULTS, {}).get(DEFAULT_MODULE_ID, {})
        self.sync()
        return float(stats.get("policy_loss", stats.get("pi_loss", float("nan"))))  # IMPALA: pi_loss

    def sync(self) -> None:
        """The driver's rollout policy follows the policy (copy or ema); every runner receives it."""
        if self.rollout_update != "fixed":
            rate = self.rollout_rate if self.rollout_update == "ema" else None
            sync_rollout_policy(self.rollout_policy, self.generator, rate)
            self.broadcast(discriminator=False)

    def train_discriminator(self) -> float:
        """The schedule's training on the runners' finished episodes (topped up with fresh samples),
        then every runner receives the new discriminator; returns the mean loss."""
        episodes = runner_episodes(self.algo)
        if len(episodes):
            self.updater.observe(episodes)
        loss = self.updater.train()
        self.broadcast(rollout_policy=False)
        return loss

    def broadcast(self, rollout_policy: bool = True, discriminator: bool = True) -> int:
        """Every runner's env takes the driver's rollout policy and discriminator (those asked for); an
        error if one did not (RLlib skips a runner it has marked unhealthy)."""
        reached = broadcast(self.algo, self.rollout_policy if rollout_policy else None,
                            self.discriminator if discriminator else None)  # fmt: skip
        expected = max(self.algo.config.num_env_runners, 1)
        if reached != expected:
            raise RuntimeError(f"the models reached {reached} of {expected} env runners: a runner failed "
                               "(see the Ray worker logs)")  # fmt: skip
        return reached


# --- the algorithm's state as plain data ---------------------------------------------------------------
def algorithm_state(algo: Algorithm) -> dict[str, Any]:
    """RLlib's state of `algo` (`Algorithm.get_state`: the RLModule's weights, the optimizer, the
    connectors, the counters and metrics) as plain types and tensors, which a checkpoint loads
    weights-only; RLlib's own checkpoint folder is pickles, which loading would run."""
    return _plain(algo.get_state(), "state")


def restore_algorithm_state(algo: Algorithm, state: dict[str, Any]) -> None:
    """`algorithm_state` back into `algo` (its tensors as the numpy arrays RLlib gave)."""
    algo.set_state(_numpy(state))


def _plain(value: Any, where: str) -> Any:
    """`value` with numpy arrays as tensors and numpy scalars as Python numbers; a TypeError names any
    other object (it would need pickling)."""
    if isinstance(value, dict):
        return {key: _plain(item, f"{where}/{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item, f"{where}[{i}]") for i, item in enumerate(value))
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    raise TypeError(f"RLlib's {where} is a {type(value).__name__}: a weights-only checkpoint cannot hold it")


def _numpy(value: Any) -> Any:
    """`_plain` undone: tensors back to numpy arrays."""
    if isinstance(value, dict):
        return {key: _numpy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_numpy(item) for item in value)
    return value.numpy() if isinstance(value, torch.Tensor) else value
