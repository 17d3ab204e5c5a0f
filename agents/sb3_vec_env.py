"""Stable-Baselines3's `VecEnv` over the natively batched SeqGAN vector env.

`SeqGANVectorEnv` (alone, or under `DiscriminatorTrainingVectorWrapper`) follows Gymnasium's
NEXT_STEP autoreset: the step after a termination resets that env. Stable-Baselines3 expects the
same-step form: `step_wait` returns the *reset* observation of an env that just finished and puts the
final one in `infos[i]["terminal_observation"]`. The adapter translates by resetting the finished rows
at once (`reset(options={"reset_mask": done})`), so the vector env never runs an autoreset step and
the wrapper below it still sees every finished episode.

It also records what SB3's `Monitor` would (`infos[i]["episode"] = {"r", "l", "t"}`), so
`rollout/ep_rew_mean` is logged without a `VecMonitor`, and it offers `action_masks()` for
MaskablePPO. All B envs are one object: `get_attr`, `set_attr` and `env_method` reach that object
(the outermost vector wrapper that has the name, else the env), and a method runs once for all
indices.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from seqgan_env.vector_env import SeqGANVectorEnv

# A fixed mask over the vocabulary [V], or a function of the prefixes [B, T] giving masks [B, V].
ActionMask = np.ndarray | Callable[[np.ndarray], np.ndarray]


class SB3VecEnv(VecEnv):
    """SB3's `VecEnv` over a `SeqGANVectorEnv` (or a vector wrapper of one); see the module docstring.

    `action_mask`: the tokens MaskablePPO may choose, a bool array [V] or a function of the current
    prefixes [B, T] returning [B, V]; default all tokens (the start token is an ordinary id and the
    padding id V lies outside the action space, so nothing needs masking in the paper's setting).
    """

    def __init__(self, venv: gym.vector.VectorEnv, action_mask: ActionMask | None = None) -> None:
        base = venv.unwrapped
        if not isinstance(base, SeqGANVectorEnv):
            raise TypeError(
                f"SB3VecEnv wraps a SeqGANVectorEnv (or a vector wrapper of one), got {type(base).__name__}"
            )
        if base.metadata.get("autoreset_mode") != AutoresetMode.NEXT_STEP:
            raise ValueError("SB3VecEnv translates NEXT_STEP autoreset; the vector env declares another mode")
        self.venv = venv
        self.base = base
        self.vocab_size = base.vocab_size
        if action_mask is not None and not callable(action_mask):
            action_mask = np.asarray(action_mask, dtype=bool)
            if action_mask.shape != (self.vocab_size,) or not action_mask.any():
                raise ValueError(
                    f"action_mask must be a bool array of shape ({self.vocab_size},) allowing at least one "
                    f"token, got shape {action_mask.shape} with {int(action_mask.sum())} allowed"
                )
        self._action_mask = action_mask
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        B = self.num_envs
        self._obs = np.full((B, base.seq_len), base.pad_id, dtype=np.int64)
        self._actions = np.zeros(B, dtype=np.int64)
        self._returns = np.zeros(B, dtype=np.float64)  # float64 sums of float32 rewards, as Monitor
        self._lengths = np.zeros(B, dtype=np.int64)
        self._t_start = time.time()
        self._started = False
        self.episode_count = 0

    # --- stepping --------------------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        """Reset every env. The native vector env draws all its envs from one RNG, so it takes one
        seed: the seed SB3 assigned to env 0 (`seed(s)` gives env i the seed s + i)."""
        options = next((o for o in self._options if o), None)
        obs, _ = self.venv.reset(seed=self._seeds[0], options=options)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._returns[:] = 0.0
        self._lengths[:] = 0
        self._obs = obs
        self._started = True
        return obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions)
        if actions.size == self.num_envs:  # SB3 may hand Discrete actions as [B, 1]
            actions = actions.reshape(self.num_envs)
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if not self._started:
            raise RuntimeError("step() called before reset()")
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        rewards = np.asarray(rewards, dtype=np.float32)
        dones = np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
        self._returns += rewards
        self._lengths += 1
        info_list = _split_infos(infos, self.num_envs)
        for i, info in enumerate(info_list):
            info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        finished = np.flatnonzero(dones)
        if len(finished):
            now = round(time.time() - self._t_start, 6)
            for i in finished.tolist():
                info_list[i]["terminal_observation"] = obs[i].copy()
                ret, length = round(float(self._returns[i]), 6), int(self._lengths[i])
                info_list[i]["episode"] = {"r": ret, "l": length, "t": now}
            reset_obs, _ = self.venv.reset(options={"reset_mask": dones})
            obs = obs.copy()
            obs[dones] = reset_obs[dones]
            self._returns[dones] = 0.0
            self._lengths[dones] = 0
            self.episode_count += len(finished)
        self._obs = obs
        return obs.copy(), rewards, dones, info_list

    def close(self) -> None:
        self.venv.close()

    # --- MaskablePPO -----------------------------------------------------------------------------
    def action_masks(self) -> np.ndarray:
        """The tokens allowed in each env's current state: bool [B, V]."""
        if self._action_mask is None:
            return np.ones((self.num_envs, self.vocab_size), dtype=bool)
        if callable(self._action_mask):
            masks = np.asarray(self._action_mask(self._obs.copy()), dtype=bool)
            if masks.shape != (self.num_envs, self.vocab_size) or not masks.any(axis=1).all():
                raise ValueError(
                    f"the action_mask function must return bool [{self.num_envs}, {self.vocab_size}] with at "
                    f"least one allowed token per row, got shape {masks.shape}"
                )
            return masks
        return np.broadcast_to(self._action_mask, (self.num_envs, self.vocab_size)).copy()

    # --- the rest of the VecEnv contract ---------------------------------------------------------
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of the one object all envs share, once per index."""
        value = getattr(self._owner(attr_name), attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute on the shared object; all envs share it, so `indices` must name them all."""
        if len(set(self._indices(indices))) != self.num_envs:
            raise ValueError(
                f"the {self.num_envs} envs are one SeqGANVectorEnv: set_attr({attr_name!r}) applies to all "
                "of them, so indices must be None or every index"
            )
        try:
            owner = self._owner(attr_name)
        except AttributeError:
            owner = self.base
        setattr(owner, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call a method of the shared object once and return its result for each index
        (`action_masks` returns each env's own row)."""
        idx = self._indices(indices)
        if method_name == "action_masks":
            masks = self.action_masks()
            return [masks[i] for i in idx]
        result = getattr(self._owner(method_name), method_name)(*method_args, **method_kwargs)
        return [result for _ in idx]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """True for the vector wrappers around the env, and for `Monitor`, whose episode statistics
        the adapter records itself."""
        wrapped = issubclass(wrapper_class, Monitor) or any(
            isinstance(layer, wrapper_class) for layer in self._layers()
        )
        return [wrapped for _ in self._indices(indices)]

    def render(self, mode: str | None = None) -> str | None:  # type: ignore[override]
        """The `"ansi"` render of every env's prefix, one line each (None without a render mode)."""
        texts = self.venv.render()
        return None if texts is None else "\n".join(map(str, texts))

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """As SB3's: env i gets seed + i at the next reset (the native env uses env 0's, see `reset`)."""
        return super().seed(seed)

    # --- helpers ---------------------------------------------------------------------------------
    def _layers(self) -> Iterable[gym.vector.VectorEnv]:
        """The vector env and its wrappers, outermost first."""
        env = self.venv
        while True:
            yield env
            if not isinstance(env, gym.vector.VectorWrapper):
                return
            env = env.env

    def _owner(self, name: str) -> Any:
        """The adapter for `action_masks`, else the outermost layer that defines `name`."""
        if name == "action_masks":
            return self
        for layer in self._layers():
            try:
                inspect.getattr_static(layer, name)
                return layer
            except AttributeError:
                continue
        raise AttributeError(
            f"neither {type(self.venv).__name__} nor the env beneath it has an attribute {name!r}"
        )

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, (int, np.integer)):
            return [int(indices)]
        return [int(i) for i in indices]


def _split_infos(infos: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Gymnasium's batched info dict (`infos[k]` with mask `infos["_k"]`) as one dict per env."""
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}")
        for i in range(num_envs):
            if mask is None or mask[i]:
                item = value[i] if isinstance(value, np.ndarray) and len(value) == num_envs else value
                if isinstance(item, np.ndarray):
                    item = item.copy()
                elif isinstance(item, np.generic):  # a plain float/int/bool, as the single env gives
                    item = item.item()
                out[i][key] = item
    return out
