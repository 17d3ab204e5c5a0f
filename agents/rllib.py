"""SeqGAN's adversarial rounds on Ray RLlib (new API stack): PPO, APPO, IMPALA with K env runners.

RLlib syncs only the RLModule to its env runners. SeqGAN's other two models, the rollout policy and
the discriminator, live inside each runner's env, so this module keeps them in step itself:

- The env runners build the native `SeqGANVectorEnv` through `make_vector_env`, a creator function
  (so remote runners import `seqgan_env` themselves; a bare id fails there with `NameNotFound`),
  wrapped in an `EpisodeRecorder` that keeps the sequences each runner finished.
- The driver holds the reference models: the rollout policy and the discriminator, and the
  discriminator's training (`DiscriminatorUpdater`, the same schedule object as the REINFORCE and SB3
  learners'). Why the driver: there is one discriminator and one schedule, its training data (the
  runners' episodes plus fresh samples of the policy) meets there anyway, and a learner actor would
  need RLlib's private hooks to train a second network; at the paper's scale its training moves to
  GPUs of its own (README, "Scaling out").
- `RLlibLearner` meets `agents.learner.Learner`: a round is `algo.train()` (the runners sample, the
  learners update, RLlib syncs the RLModule), then the rollout policy follows the new policy and,
  after the discriminator trains, both reach every runner (`broadcast`) before it samples again.

A runner that fails is not restarted (`fault_tolerance(restart_failed_env_runners=False)`): the round
raises instead of carrying on with fewer runners, and a round that sampled nothing is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.algorithms.appo.torch.appo_torch_learner import APPOTorchLearner
from ray.rllib.algorithms.impala.torch.impala_torch_learner import IMPALATorchLearner
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, LEARNER_RESULTS, NUM_ENV_STEPS_SAMPLED
from ray.tune.registry import register_env

from agents.learner import sync_rollout_policy
from agents.rllib_module import TokenPrefixRLModule
from seqgan_env.discriminator import Discriminator
from seqgan_env.token_lstm import TokenLSTM
from seqgan_env.vector_env import SeqGANVectorEnv
from seqgan_env.wrappers import DiscriminatorUpdater

ALGORITHMS = ("ppo", "appo", "impala")
ENV_NAME = "seqgan_env:rllib"  # `make_vector_env` in Ray's registry, which every runner reads
ROLLOUT_UPDATES = ("copy", "ema", "fixed")
StateDict = dict[str, torch.Tensor]


class EpisodeRecorder(gym.vector.VectorWrapper):
    """Keeps the `infos["sequence"]` of every env that terminated, until `pop()`: a runner's share
    of the discriminator's negatives."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        self.finished: list[np.ndarray] = []

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        if np.any(terminated):
            self.finished.append(np.asarray(infos["sequence"])[np.asarray(terminated)])
        return obs, rewards, terminated, truncated, infos

    def pop(self) -> np.ndarray:
        """The sequences [k, T] finished since the last pop."""
        T = seqgan_vector_env(self).seq_len
        out = np.concatenate(self.finished) if self.finished else np.zeros((0, T), dtype=np.int64)
        self.finished = []
        return out


def seqgan_vector_env(env: gym.vector.VectorEnv) -> SeqGANVectorEnv:
    """The `SeqGANVectorEnv` beneath `env`'s wrappers."""
    inner = env.unwrapped
    assert isinstance(inner, SeqGANVectorEnv)  # `make_vector_env` built it
    return inner


def make_vector_env(env_config: Mapping[str, Any]) -> gym.vector.VectorEnv:
    """RLlib's env creator: `SeqGANVectorEnv(num_envs, **env_config)` (NEXT_STEP autoreset, what
    RLlib's env runner expects) in an `EpisodeRecorder`. Plain keyword arguments only: the models'
    weights reach the runners through `broadcast`."""
    kwargs = dict(env_config)
    num_envs = int(kwargs.pop("num_envs", 1))
    env = SeqGANVectorEnv(num_envs=num_envs, autoreset_mode=AutoresetMode.NEXT_STEP, **kwargs)
    return EpisodeRecorder(env)


# --- what runs on each env runner (module-level functions: Ray pickles them by reference) ---------------
def _recorder(runner: Any) -> EpisodeRecorder | None:
    env = getattr(runner, "env", None)
    while env is not None and not isinstance(env, EpisodeRecorder):
        env = getattr(env, "env", None)
    return env


def load_env_models(runner: Any, rollout_policy: StateDict, discriminator: StateDict) -> bool:
    """Give the runner's env these weights (the env recomputes its cached rollout states); False
    for a runner without an env (the driver's local runner when remote ones sample)."""
    recorder = _recorder(runner)
    if recorder is None:
        return False
    env = seqgan_vector_env(recorder)
    env.rollout_policy.load_state_dict(rollout_policy)
    env.discriminator.load_state_dict(discriminator)
    return True


def pop_episodes(runner: Any) -> np.ndarray | None:
    """The sequences the runner's env finished since the last call (None: no env)."""
    recorder = _recorder(runner)
    return None if recorder is None else recorder.pop()


def env_models(runner: Any) -> tuple[StateDict, StateDict] | None:
    """The runner's env's rollout policy and discriminator weights (None: no env)."""
    recorder = _recorder(runner)
    if recorder is None:
        return None
    env = seqgan_vector_env(recorder)
    return _cpu_state(env.rollout_policy), _cpu_state(env.discriminator)


def replay(runner: Any, seed: int, actions: np.ndarray) -> np.ndarray | None:
    """Rewards [T, B] of `actions` [T, B] from `reset(seed=seed)` of the runner's env with its current
    models (None: no env): to check a runner against a local env. Not recorded as episodes; RLlib's
    own flag makes the runner's next `sample()` reset every env."""
    recorder = _recorder(runner)
    if recorder is None:
        return None
    env = seqgan_vector_env(recorder)
    env.reset(seed=seed)
    rewards = np.stack([env.step(np.asarray(a))[1] for a in actions])
    runner._needs_initial_reset = True
    return rewards


def _cpu_state(module: torch.nn.Module) -> StateDict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


class SB3AdamLearner:
    """Adam with eps 1e-5, as every SB3 actor-critic policy (torch's default is 1e-8). With V = 5000
    the gradient of most output rows is far below 1e-8 ... 1e-5 (a token of probability 2e-4 in a batch
    of 640); Adam at eps 1e-8 still moves each such row a full learning-rate step, which moved the
    whole next-token distribution every round and raised NLL-oracle where SB3's PPO lowered it."""

    def configure_optimizers_for_module(self, module_id: str, config: Any = None) -> None:
        learner: Any = self
        params = learner.get_parameters(learner._module[module_id])
        learner.register_optimizer(module_id=module_id, optimizer=torch.optim.Adam(params, eps=1e-5),
                                   params=params, lr_or_lr_schedule=config.lr)  # fmt: skip


class SB3AdamAPPOLearner(SB3AdamLearner, APPOTorchLearner):
    """RLlib's APPO with SB3's Adam."""


class SB3AdamIMPALALearner(SB3AdamLearner, IMPALATorchLearner):
    """RLlib's IMPALA with SB3's Adam."""


class RealStepsPPOLearner(SB3AdamLearner, PPOTorchLearner):
    """RLlib's PPO as SB3's: its Adam (`SB3AdamLearner`), and the advantages standardized per minibatch
    over the real steps only.

    RLlib's PPO with the advantages standardized per minibatch over the real steps only, as SB3's PPO.

    RLlib appends one artificial step to every episode (for the value bootstrap) and standardizes the
    advantages over the whole batch, those steps included, before it masks them out of the loss. On
    SeqGAN their advantage sits far from the real steps' mean, so the real steps' standardized
    advantages had a mean of -0.1 to -0.6 (measured at tiny size): PPO lowered the probability of every
    sampled token, and NLL-oracle rose by 0.17 in 15 rounds where SB3's PPO lowered it by 0.04."""

    def compute_loss_for_module(
        self, *, module_id: str, config: Any, batch: dict[str, Any], fwd_out: Any
    ) -> Any:
        advantages = batch[Postprocessing.ADVANTAGES]
        mask = batch.get(Columns.LOSS_MASK)
        real = advantages if mask is None else advantages[mask]
        if real.numel() > 1:  # SB3's formula
            batch[Postprocessing.ADVANTAGES] = (advantages - real.mean()) / (real.std() + 1e-8)
        return super().compute_loss_for_module(module_id=module_id, config=config, batch=batch,
                                               fwd_out=fwd_out)  # fmt: skip


LEARNERS: dict[str, type] = {"ppo": RealStepsPPOLearner, "appo": SB3AdamAPPOLearner,
                              "impala": SB3AdamIMPALALearner}  # fmt: skip


# --- the algorithm -------------------------------------------------------------------------------------
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


def broadcast(algo: Algorithm, rollout_policy: torch.nn.Module, discriminator: torch.nn.Module) -> int:
    """Every healthy env runner's env takes the driver's rollout policy and discriminator weights;
    returns how many envs took them."""
    fn = partial(load_env_models, rollout_policy=_cpu_state(rollout_policy),
                 discriminator=_cpu_state(discriminator))  # fmt: skip
    return sum(bool(ok) for ok in algo.env_runner_group.foreach_env_runner(fn, local_env_runner=True))


def runner_episodes(algo: Algorithm) -> torch.Tensor:
    """The sequences [k, T] every runner finished since the last call, runner by runner."""
    parts = [p for p in algo.env_runner_group.foreach_env_runner(pop_episodes, local_env_runner=True)
             if p is not None and len(p)]  # fmt: skip
    return torch.as_tensor(np.concatenate(parts)) if parts else torch.zeros(0, 0, dtype=torch.long)


def runner_models(algo: Algorithm) -> list[tuple[StateDict, StateDict]]:
    """Each runner env's (rollout policy, discriminator) weights: to check they equal the driver's."""
    found = algo.env_runner_group.foreach_env_runner(env_models, local_env_runner=True)
    return [f for f in found if f is not None]


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
    def discriminator(self) -> Discriminator:
        return self.updater.discriminator

    @property
    def generator(self) -> TokenLSTM:
        """The learner's current policy as a token LSTM."""
        if self._module_version != self.iterations:
            self._module.set_state(self.algo.learner_group.get_weights()[DEFAULT_MODULE_ID])
            self._module_version = self.iterations
        return self._module.generator().to(self.rollout_policy.device)

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
        self.broadcast()

    def train_discriminator(self) -> float:
        """The schedule's training on the runners' finished episodes (topped up with fresh samples),
        then every runner receives the new discriminator; returns the mean loss."""
        episodes = runner_episodes(self.algo)
        if len(episodes):
            self.updater.observe(episodes)
        loss = self.updater.train()
        self.broadcast()
        return loss

    def broadcast(self) -> int:
        """Every runner's env takes the driver's rollout policy and discriminator; an error if one
        did not (RLlib skips a runner it has marked unhealthy)."""
        reached = broadcast(self.algo, self.rollout_policy, self.discriminator)
        expected = max(self.algo.config.num_env_runners, 1)
        if reached != expected:
            raise RuntimeError(f"the models reached {reached} of {expected} env runners: a runner failed "
                               "(see the Ray worker logs)")  # fmt: skip
        return reached
