"""SeqGAN-v0 on RLlib's env runners: the env creator, and how the driver reaches each runner's env.

RLlib syncs only the RLModule to its env runners; SeqGAN's rollout policy and discriminator live inside
each runner's env. The runners build the native `SeqGANVectorEnv` through `make_vector_env`, a
creator registered with Ray (so remote runners import `seqgan_env` themselves; a bare id fails there
with `NameNotFound`), in an `EpisodeRecorder` that keeps the sequences each runner finished. The
module-level functions below run on each runner (Ray pickles them by reference); `broadcast`,
`runner_episodes` and `runner_models` call them from the driver.
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
from torch.nn import Module

from seqgan_env.vector_env import SeqGANVectorEnv

ENV_NAME = "seqgan_env:rllib"  # `make_vector_env` in Ray's registry, which every runner reads
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
    RLlib's env runner expects) in an `EpisodeRecorder`. The models' weights reach the runners through
    `broadcast`; the config holds plain keyword arguments, and at most a fixed `scorer` (the oracle's
    reward, which never changes, so it travels once, pickled with the config)."""
    kwargs = dict(env_config)
    num_envs = int(kwargs.pop("num_envs", 1))
    env = SeqGANVectorEnv(num_envs=num_envs, autoreset_mode=AutoresetMode.NEXT_STEP, **kwargs)
    return EpisodeRecorder(env)


# --- what runs on each env runner -------------------------------------------------------------------
def _recorder(runner: Any) -> EpisodeRecorder | None:
    env = getattr(runner, "env", None)
    while env is not None and not isinstance(env, EpisodeRecorder):
        env = getattr(env, "env", None)
    return env


def load_env_models(
    runner: Any, rollout_policy: StateDict | None = None, discriminator: StateDict | None = None
) -> bool:
    """Give the runner's env these weights (None: that model is unchanged; the env recomputes its
    cached rollout states); False for a runner without an env (the driver's local runner when remote
    ones sample)."""
    recorder = _recorder(runner)
    if recorder is None:
        return False
    env = seqgan_vector_env(recorder)
    if rollout_policy is not None:
        env.rollout_policy.load_state_dict(rollout_policy)
    if discriminator is not None:
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



# --- what the driver calls ------------------------------------------------------------------------------
def broadcast(algo: Algorithm, rollout_policy: Module | None = None, discriminator: Module | None = None
              ) -> int:  # fmt: skip
    """Every healthy env runner's env takes the driver's rollout policy and discriminator weights (only
    those given: a round sends each model once, after it changed); returns how many envs took them."""
    def state(model: Module | None) -> StateDict | None:
        return None if model is None else _cpu_state(model)

    fn = partial(load_env_models, rollout_policy=state(rollout_policy), discriminator=state(discriminator))
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
