"""SeqGANVectorEnv: B SeqGAN-v0 episodes stepped in lockstep, their Monte Carlo rewards in one batch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from seqgan_env.core import StepResult, check_actions
from seqgan_env.env import SeqGANBase, render_prefix


def parse_autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    """`mode` as an `AutoresetMode` (the enum, or its value such as "NextStep"), or a clear error."""
    if isinstance(mode, AutoresetMode):
        return mode
    try:
        return AutoresetMode(mode)
    except ValueError:
        values = [m.value for m in AutoresetMode]
        message = f"autoreset_mode must be an AutoresetMode or one of {values}, got {mode!r}"
        raise ValueError(message) from None


class SeqGANVectorEnv(SeqGANBase, VectorEnv):
    """B copies of the SeqGAN-v0 MDP (see `SeqGANEnv` for the spec) sharing one rollout policy and
    one discriminator; one step scores all B*N completions in one discriminator call.

    `infos["q"]` / `infos["_q"]` hold Q_t where computed and `infos["sequence"]` / `infos["_sequence"]`
    the sequences that finished in this step, in every autoreset mode. Takes `num_envs`,
    `autoreset_mode` and the keyword arguments of `SeqGANEnv`.

    `autoreset_mode` (`gymnasium.vector.AutoresetMode` or its value; declared per instance in
    `metadata["autoreset_mode"]` and `self.autoreset_mode`), as Gymnasium's own vector envs:
    - `NEXT_STEP` (default): the step after an episode terminates resets that env (its action is
      ignored, reward 0, `terminated` False).
    - `SAME_STEP`: an env that terminates is reset in the same step; the step returns its reset
      observation, the final one in `infos["final_obs"]` (an object array, `infos["_final_obs"]` its
      mask) and the final step's info in `infos["final_info"]` (`{"q", "_q", "sequence",
      "_sequence"}`, `infos["_final_info"]` its mask).
    - `DISABLED`: a finished env stays finished until `reset(options={"reset_mask": mask})` (or a full
      `reset()`). Stepping it is allowed, since all B envs step together, and does nothing: its action
      is ignored, no token, no Monte Carlo search, reward 0, `terminated` False, the observation still
      the finished sequence. (Gymnasium's own vector envs refuse such a step; a batched env cannot.)

    `with env.autoreset_paused():` runs a block under `DISABLED` semantics whatever the mode, and
    restores the mode after: how an agent collects exactly one episode per env
    (`agents.reinforce.ReinforceAgent.collect`), so that no episode starts that the agent did not ask
    for. An env that finished in the block and is not reset by then restarts at the next step as
    under `NEXT_STEP` (action ignored, reward 0), in `SAME_STEP` mode too.
    """

    # Not a ClassVar: VectorEnv declares `metadata` an instance variable, and __init__ copies it per instance.
    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}  # noqa: RUF012

    def __init__(
        self,
        num_envs: int = 1,
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        **kwargs: Any,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        mode = parse_autoreset_mode(autoreset_mode)
        self.num_envs = num_envs
        self.render_mode = render_mode
        self._build(num_envs, kwargs)
        self.metadata = dict(type(self).metadata)  # per instance: the mode is this env's
        self._set_autoreset_mode(mode)
        self.single_action_space = spaces.Discrete(self.vocab_size)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.single_observation_space = spaces.Box(0, self.vocab_size, shape=(self.seq_len,), dtype=np.int64)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._started = False

    def _set_autoreset_mode(self, mode: AutoresetMode) -> None:
        self.autoreset_mode = mode
        self.metadata["autoreset_mode"] = mode

    @contextmanager
    def autoreset_paused(self) -> Iterator[None]:
        """Run the block under `DISABLED` autoreset (finished envs wait, their actions ignored, until
        reset), then restore the mode; see the class docstring."""
        mode = self.autoreset_mode
        self._set_autoreset_mode(AutoresetMode.DISABLED)
        try:
            yield
        finally:
            self._set_autoreset_mode(mode)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all envs, or those in `options["reset_mask"]` (bool [B])."""
        rows = np.ones(self.num_envs, dtype=bool)
        if options is not None and "reset_mask" in options:
            rows = np.asarray(options["reset_mask"], dtype=bool)
            if rows.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {rows.shape}")
        super().reset(seed=seed)
        self._seed_torch_rng(seed, self.np_random)
        self._core.reset(rows)
        self._started = True
        return self._core.observations(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = check_actions(actions, self.num_envs, self.vocab_size)
        if not self._started:
            raise RuntimeError("step() called before reset()")
        finished = self._core.done.copy()  # envs whose episode ended before this step
        if self.autoreset_mode != AutoresetMode.DISABLED:
            self._core.reset(finished)  # NEXT_STEP's autoreset step (SAME_STEP: only after a pause)
        result = self._core.step(actions, ~finished, self._torch_rng)
        observations = self._core.observations()
        infos = self._step_infos(result, observations)
        if self.autoreset_mode == AutoresetMode.SAME_STEP and result.terminated.any():
            infos.update(self._final_infos(result, observations, infos))
            self._core.reset(result.terminated)
            observations = self._core.observations()
        truncated = np.zeros(self.num_envs, dtype=bool)
        return observations, result.rewards, result.terminated, truncated, infos

    def _step_infos(self, result: StepResult, observations: np.ndarray) -> dict[str, Any]:
        """Q_t where computed and the sequences that finished, batched with Gymnasium's masks."""
        infos: dict[str, Any] = {}
        if result.q_computed.any():
            infos["q"], infos["_q"] = np.nan_to_num(result.q), result.q_computed
        if result.terminated.any():
            infos["sequence"] = np.where(result.terminated[:, None], observations, self.pad_id)
            infos["_sequence"] = result.terminated.copy()
        return infos

    def _final_infos(
        self, result: StepResult, observations: np.ndarray, infos: dict[str, Any]
    ) -> dict[str, Any]:
        """SAME_STEP's `final_obs` and `final_info` of the envs that terminated (as `SyncVectorEnv`)."""
        done = result.terminated
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i in np.flatnonzero(done):
            final_obs[i] = observations[i].copy()
        final_info = {
            "q": np.where(done, infos["q"], 0.0).astype(np.float32),
            "_q": done & infos["_q"],
            "sequence": infos["sequence"].copy(),
            "_sequence": done.copy(),
        }
        return {"final_obs": final_obs, "_final_obs": done.copy(), "final_info": final_info,
                "_final_info": done.copy()}  # fmt: skip

    def render(self) -> tuple[str, ...] | None:
        if self.render_mode != "ansi":
            return None
        return tuple(render_prefix(row, self.pad_id, self.vocabulary) for row in self._core.observations())
