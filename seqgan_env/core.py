"""The SeqGAN MDP's transition and reward logic, batched: one implementation for both env classes.

`SeqGANEnv` runs it with one row, `SeqGANVectorEnv` with B rows, so the two cannot drift apart.

The rollout policy's next-token logits and LSTM state are cached per prefix (computed at reset,
advanced one token per step). Whoever trains the policy changes its weights in place (a copy or a
moving average of the generator's, `load_state_dict`), so before it reads the cache the core compares
the parameters' in-place version counters and storage with those the cache was computed with, and on
a change recomputes the cache of every live prefix from its tokens: the rewards are then those of a
freshly built env with the new weights. The check is one tuple of (version, pointer) pairs per reset
and step, a few microseconds. Writes that bypass the version counters (through `.data`, or a fused
optimizer's kernels on the rollout policy itself) are not seen.

In the dense reward mode there is no search and no rollout state: the prefix discriminator's state
(`seqgan_env.prefix_discriminator.IncrementalScorer`) is cached per prefix instead, advanced one
token per step, and recomputed from the live prefixes whenever its `weights_key()` changes (its
training steps count, so its own fused optimiser's writes are seen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seqgan_env.discriminator import SequenceScorer
from seqgan_env.prefix_discriminator import IncrementalScorer, dense_rewards
from seqgan_env.rewards import MonteCarloSearch
from seqgan_env.token_lstm import TokenLSTM

REWARD_MODES = ("mc", "shaped", "terminal", "dense")
ROLLOUT_MODES = ("mc", "shaped")  # the modes that search completions with the rollout policy


@dataclass
class StepResult:
    """What one batched transition produced for the rows that acted."""

    rewards: np.ndarray  # [B] float32 (0 where a row did not act)
    terminated: np.ndarray  # [B] bool
    q: np.ndarray  # [B] float32, NaN where Q was not computed
    q_computed: np.ndarray  # [B] bool


class SeqGANCore:
    """B prefixes under construction, the rollout policy's cached state for each, and their last Q.

    V and T are the rollout policy's. The arguments come checked (`seqgan_env.config.SeqGANConfig`).
    """

    def __init__(
        self,
        num_envs: int,
        rollout_policy: TokenLSTM,
        scorer: SequenceScorer,
        n_rollouts: int,
        reward_mode: str,
        eos_id: int | None,
    ) -> None:
        self.rollout_policy = rollout_policy
        self.scorer = scorer
        self.n_rollouts = n_rollouts
        self.reward_mode = reward_mode
        self.eos_id = eos_id
        self.vocab_size = rollout_policy.config.vocab_size
        self.seq_len = rollout_policy.config.seq_len
        self.pad_id = self.vocab_size
        device = rollout_policy.device
        B, T, H = num_envs, self.seq_len, rollout_policy.config.hidden_dim
        self.tokens = torch.full((B, T), self.pad_id, dtype=torch.long, device=device)  # [B, T]
        self.length = np.zeros(B, dtype=np.int64)
        self.done = np.ones(B, dtype=bool)  # no live prefix until a row is reset
        self.q_prev = np.zeros(B, dtype=np.float32)
        self.logits = torch.zeros(B, self.vocab_size, device=device)  # next-token logits [B, V]
        self.h = torch.zeros(B, H, device=device)
        self.c = torch.zeros(B, H, device=device)
        self.search = MonteCarloSearch(rollout_policy, n_rollouts, eos_id, self.pad_id)
        self._params = tuple(rollout_policy.parameters())
        self._cached_with = self._policy_key()  # the weights the cached logits/states come from
        self.prefix_scorer: IncrementalScorer | None = None
        if reward_mode == "dense":  # the prefix discriminator's state per row, and its weights' key
            assert isinstance(scorer, IncrementalScorer), "dense rewards need an IncrementalScorer"
            self.prefix_scorer = scorer
            self.d_h, self.d_c = scorer.start(B)
            self._scorer_key = scorer.weights_key()

    def _policy_key(self) -> tuple[tuple[int, int], ...]:
        """What identifies the rollout policy's current weights: each parameter's in-place version
        counter (bumped by copy_, add_, load_state_dict, optimizers' foreach steps) and storage."""
        return tuple((p._version, p.data_ptr()) for p in self._params)

    def _refresh_cache(self, skip: np.ndarray | None = None) -> None:
        """If the rollout policy's weights changed since the cache was computed, recompute the cached
        logits and state of every live row (but those in `skip`, bool [B]) from its prefix. In dense
        mode, the same for the prefix discriminator's cached states."""
        if self.prefix_scorer is not None:
            self._refresh_scorer_cache(skip)
        if self.reward_mode not in ROLLOUT_MODES:  # no rollout state cached
            return
        key = self._policy_key()
        if key == self._cached_with:
            return
        self._cached_with = key
        rows = np.flatnonzero(~self.done if skip is None else ~self.done & ~skip)
        if len(rows) == 0:
            return
        idx = torch.as_tensor(rows, device=self.tokens.device)
        longest = int(self.length[rows].max())
        tokens = self.tokens[idx, : longest + 1]  # prefix_states reads all but the last column
        tokens = tokens.masked_fill(tokens == self.pad_id, 0)  # padding after a row's prefix: never kept
        logits, (h, c) = self.rollout_policy.prefix_states(tokens)  # [longest + 1, n, .]
        at = torch.as_tensor(self.length[rows], device=self.tokens.device)
        row = torch.arange(len(rows), device=self.tokens.device)
        self.logits[idx], self.h[idx], self.c[idx] = logits[at, row], h[at, row], c[at, row]

    def _refresh_scorer_cache(self, skip: np.ndarray | None) -> None:
        """The dense mode's counterpart: if the prefix discriminator's weights changed, re-read every
        live prefix (but those in `skip`) and cache its state after the prefix's last token."""
        assert self.prefix_scorer is not None
        key = self.prefix_scorer.weights_key()
        if key == self._scorer_key:
            return
        self._scorer_key = key
        rows = np.flatnonzero(~self.done if skip is None else ~self.done & ~skip)
        rows = rows[self.length[rows] > 0]  # an empty prefix's state is the start state
        for t in np.unique(self.length[rows]):  # one pass per prefix length (one in lockstep)
            sel = rows[self.length[rows] == t]
            idx = torch.as_tensor(sel, device=self.tokens.device)
            state = self.prefix_scorer.start(len(sel))
            for k in range(int(t)):
                _, state = self.prefix_scorer.advance(self.tokens[idx, k], state)
            self.d_h[idx], self.d_c[idx] = state

    @torch.inference_mode()
    def reset(self, rows: np.ndarray) -> None:
        """Start empty prefixes in the rows where `rows` (bool [B]) is set."""
        idx = torch.as_tensor(np.flatnonzero(rows), device=self.tokens.device)
        if len(idx) == 0:
            return
        self._refresh_cache(skip=rows)  # the other live rows, if the weights changed
        self.tokens[idx] = self.pad_id
        self.length[rows] = 0
        self.done[rows] = False
        self.q_prev[rows] = 0.0
        if self.reward_mode in ROLLOUT_MODES:  # terminal and dense rewards never roll out
            logits, (h, c) = self.rollout_policy.start(len(idx))
            self.logits[idx], self.h[idx], self.c[idx] = logits, h, c
        if self.prefix_scorer is not None:
            self.d_h[idx], self.d_c[idx] = self.prefix_scorer.start(len(idx))

    def observations(self) -> np.ndarray:
        """A copy of the prefixes, padded with V: [B, T] int64."""
        return self.tokens.cpu().numpy().astype(np.int64, copy=True)

    @torch.inference_mode()
    def step(self, actions: np.ndarray, rows: np.ndarray, rng: torch.Generator) -> StepResult:
        """Append `actions[b]` to prefix b for every row b in `rows` (bool [B]) and compute rewards."""
        B = len(rows)
        result = StepResult(
            rewards=np.zeros(B, dtype=np.float32),
            terminated=np.zeros(B, dtype=bool),
            q=np.full(B, np.nan, dtype=np.float32),
            q_computed=np.zeros(B, dtype=bool),
        )
        act = np.flatnonzero(rows)
        if len(act) == 0:
            return result
        assert not self.done[act].any(), "stepping a finished prefix"
        self._refresh_cache()
        idx = torch.as_tensor(act, device=self.tokens.device)
        a = torch.as_tensor(actions[act], dtype=torch.long, device=self.tokens.device)
        self.tokens[idx, torch.as_tensor(self.length[act], device=self.tokens.device)] = a
        self.length[act] += 1
        ended = self.length[act] >= self.seq_len
        if self.eos_id is not None:
            ended |= actions[act] == self.eos_id
        result.terminated[act] = ended
        self.done[act] = ended
        if self.prefix_scorer is not None:  # dense: every prefix scored by advancing its cached state
            logits, (h, c) = self.prefix_scorer.advance(a, (self.d_h[idx], self.d_c[idx]))
            self.d_h[idx], self.d_c[idx] = h, c
            result.q[act] = torch.sigmoid(logits).cpu().numpy()
            result.q_computed[act] = True
            result.rewards[act] = dense_rewards(logits).cpu().numpy()
            return result

        # Finished sequences: Q_T = D(y), scored once (not N times).
        fin = act[ended]
        if len(fin):
            result.q[fin] = self.scorer.score(self.tokens[torch.as_tensor(fin)]).cpu().numpy()
            result.q_computed[fin] = True
        # Unfinished prefixes: advance the cached rollout state by the new token, then search.
        cont = act[~ended]
        if len(cont) and self.reward_mode in ROLLOUT_MODES:
            ci = torch.as_tensor(cont, device=self.tokens.device)
            new_token = a[torch.as_tensor(~ended, device=a.device)]
            logits, (h, c) = self.rollout_policy.step(new_token, (self.h[ci], self.c[ci]))
            self.logits[ci], self.h[ci], self.c[ci] = logits, h, c
            for t in np.unique(self.length[cont]):  # one batch per prefix length (one in lockstep)
                sel = cont[self.length[cont] == t]
                si = torch.as_tensor(sel, device=self.tokens.device)
                state = (self.h[si], self.c[si])
                q = self.search(self.scorer, self.tokens[si, :t], self.logits[si], state, rng)
                result.q[sel] = q.cpu().numpy()
                result.q_computed[sel] = True

        if self.reward_mode == "mc":
            result.rewards[act] = result.q[act]
        elif self.reward_mode == "shaped":
            result.rewards[act] = result.q[act] - self.q_prev[act]
        else:  # terminal
            result.rewards[fin] = result.q[fin]
        self.q_prev[act] = np.where(result.q_computed[act], result.q[act], self.q_prev[act])
        return result


def check_action(action: object, vocab_size: int) -> int:
    """The token id of a single env's `action`, or a clear error naming the action and the space."""
    if isinstance(action, np.ndarray) and action.ndim == 0 and np.issubdtype(action.dtype, np.integer):
        action = int(action)  # what Stable-Baselines3's predict() returns for one observation
    if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
        raise TypeError(
            f"action {action!r} of type {type(action).__name__} is not an integer token id; "
            f"expected an int in Discrete({vocab_size})"
        )
    if not 0 <= int(action) < vocab_size:
        raise ValueError(f"action {action!r} is outside the action space Discrete({vocab_size})")
    return int(action)


def check_actions(actions: object, num_envs: int, vocab_size: int) -> np.ndarray:
    """A vector env's actions as int64 [B], or a clear error naming them and the space."""
    arr = np.asarray(actions)
    if arr.shape != (num_envs,) or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"actions must be an integer array of shape ({num_envs},) in MultiDiscrete([{vocab_size}] * "
            f"{num_envs}), got {arr.dtype} array of shape {arr.shape}"
        )
    bad = (arr < 0) | (arr >= vocab_size)
    if bad.any():
        raise ValueError(
            f"actions {arr[bad].tolist()} (envs {np.flatnonzero(bad).tolist()}) are outside the action "
            f"space Discrete({vocab_size})"
        )
    return arr.astype(np.int64)
