"""SeqGANVectorEnv: B SeqGAN-v0 episodes stepped in lockstep, their Monte Carlo rewards in one batch."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from gymnasium import spaces
from seqgan_env.config import SeqGANModels
from seqgan_env.core import check_actions
from seqgan_env.env import render_prefix


class SeqGANVectorEnv(SeqGANModels, VectorEnv):
    """B copies of the SeqGAN-v0 MDP (see `SeqGANEnv` for the spec) sharing one rollout policy and
    one discriminator; one step scores all B*N completions in one discriminator call.

    Autoreset is `NEXT_STEP`: the step after an episode terminates resets that env (its action is
    ignored, reward 0, `terminated` False). `infos["q"]` / `infos["_q"]` hold Q_t where computed and
    `infos["sequence"]` / `infos["_sequence"]` the finished sequences. Takes `num_envs` and the
    keyword arguments of `SeqGANEnv`.
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **kwargs: Any) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.num_envs = num_envs
        self.render_mode = render_mode
        self._build(num_envs, kwargs)
        self.single_action_space = spaces.Discrete(self.vocab_size)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.single_observation_space = spaces.Box(0, self.vocab_size, shape=(self.seq_len,), dtype=np.int64)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._started = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all envs, or those in `options["reset_mask"]` (bool [B])."""
        super().reset(seed=seed)
        if seed is not None or not self._started:
            self._seed_torch_rng(self.np_random)
        rows = np.ones(self.num_envs, dtype=bool)
        if options is not None and "reset_mask" in options:
            rows = np.asarray(options["reset_mask"], dtype=bool)
            if rows.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {rows.shape}")
        self._core.reset(rows)
        self._autoreset[rows] = False
        self._started = True
        return self._core.observations(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = check_actions(actions, self.num_envs, self.vocab_size)
        if not self._started:
            raise RuntimeError("step() called before reset()")
        resetting = self._autoreset.copy()
        self._core.reset(resetting)
        result = self._core.step(actions, ~resetting, self._torch_rng)
        self._autoreset = result.terminated.copy()
        observations = self._core.observations()
        infos: dict[str, Any] = {}
        if result.q_computed.any():
            infos["q"], infos["_q"] = np.nan_to_num(result.q), result.q_computed
        if result.terminated.any():
            infos["sequence"] = np.where(result.terminated[:, None], observations, self.pad_id)
            infos["_sequence"] = result.terminated.copy()
        truncated = np.zeros(self.num_envs, dtype=bool)
        return observations, result.rewards, result.terminated, truncated, infos

    def render(self) -> tuple[str, ...] | None:
        if self.render_mode != "ansi":
            return None
        return tuple(render_prefix(row, self.pad_id, self.vocabulary) for row in self._core.observations())
