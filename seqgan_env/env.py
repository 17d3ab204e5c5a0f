"""SeqGAN-v0: sequence generation as an MDP whose reward is a discriminator's verdict."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from seqgan_env.config import SeqGANConfig
from seqgan_env.core import SeqGANCore, check_action


class SeqGANBase:
    """What both environment classes hold: the models `SeqGANConfig` built from the keyword arguments,
    the batched MDP over them (`SeqGANCore`, which also holds the sizes and reward settings), and the
    env's torch RNG."""

    def _build(self, num_envs: int, kwargs: dict[str, Any]) -> None:
        config = SeqGANConfig.from_kwargs(kwargs)
        models = config.build(num_envs)
        self.rollout_policy = models.rollout_policy
        self.discriminator = models.discriminator
        self.oracle = models.oracle
        self.vocabulary = models.vocabulary
        self._core = SeqGANCore(num_envs, models.rollout_policy, models.scorer, config.n_rollouts,
                                config.reward_mode, models.eos_id)  # fmt: skip
        # Every sample the environment draws comes from this torch RNG, seeded from np_random.
        self._torch_rng = torch.Generator(device=self.rollout_policy.device)
        self._torch_rng_seeded = False

    def _seed_torch_rng(self, seed: int | None, np_random: np.random.Generator) -> None:
        """At the first reset, and at every reset given a seed, seed the torch RNG from `np_random`
        (the env's, which `reset(seed=...)` has just seeded): episodes then repeat with the seed."""
        if seed is not None or not self._torch_rng_seeded:
            self._torch_rng.manual_seed(int(np_random.integers(2**63 - 1)))
            self._torch_rng_seeded = True

    @property
    def vocab_size(self) -> int:
        """V, the rollout policy's vocabulary size: the action space is Discrete(V)."""
        return self._core.vocab_size

    @property
    def seq_len(self) -> int:
        """T, the length of a sequence (without an end-of-sequence id, of every episode)."""
        return self._core.seq_len

    @property
    def pad_id(self) -> int:
        """V: the id that pads observations after the prefix."""
        return self._core.pad_id

    @property
    def eos_id(self) -> int | None:
        """The id that ends an episode early, or None."""
        return self._core.eos_id

    @property
    def n_rollouts(self) -> int:
        """N, the Monte Carlo completions per prefix."""
        return self._core.n_rollouts

    @property
    def reward_mode(self) -> str:
        """The reward handed out: "mc", "shaped", "terminal" or "dense" (see `SeqGANEnv`, Rewards)."""
        return self._core.reward_mode


class SeqGANEnv(SeqGANBase, gym.Env[np.ndarray, np.int64]):
    """
    ## Description
    Token-by-token generation of a sequence of length T over a vocabulary of V tokens, as in SeqGAN
    (Yu, Zhang, Wang and Yu, AAAI 2017). The state is the prefix generated so far, the action is the
    next token, and the reward is a discriminator's probability that the *complete* sequence is real,
    estimated for unfinished prefixes by Monte Carlo search with a rollout policy. The environment
    only reads its two models (`rollout_policy`, a token LSTM, and `discriminator`); training them is
    the agent's and the discriminator-updating wrapper's job.

    ## Action Space
    `Discrete(V)`: the next token id. Anything else raises: `ValueError` for an id outside the space,
    `TypeError` for a float, bool or array. Stepping a finished episode without `reset` raises
    `RuntimeError`.

    ## Observation Space
    `Box(low=0, high=V, shape=(T,), dtype=int64)`: the prefix y_1..y_t left-aligned, padded with
    `pad_id = V` (one past the vocabulary). A Box and not MultiDiscrete, because Stable-Baselines3
    one-hot encodes MultiDiscrete (V*T inputs). Returned arrays are copies.

    ## Rewards
    Q_t is the mean over `n_rollouts` completions of D(y_1..y_t + completion), the completions sampled
    by the rollout policy continuing from its state after [start, y_1..y_t]; Q_T = D(y_1..y_T). The
    env caches that state per prefix, but always with the policy's current weights: a change in place
    (a rollout sync, `load_state_dict`) applies from the next step on, to episodes under way too.
    `reward_mode` chooses the reward handed out at step t:
    - `"mc"` (default, the paper): r_t = Q_t. The REINFORCE agent weights each token by r_t itself;
      a generic return-based algorithm needs gamma = 0 with it.
    - `"shaped"`: r_t = Q_t - Q_{t-1}, Q_0 = 0, so an episode's return is exactly D(y)
      (potential-based shaping): the choice for PPO/A2C with gamma = 1.
    - `"terminal"`: 0 until the last step, then D(y); no Monte Carlo search (cheap).
    - `"dense"` (ScratchGAN, de Masson d'Autume et al. 2019): the discriminator is a prefix
      discriminator (`seqgan_env.prefix_discriminator.PrefixDiscriminator`, a causal LSTM with one
      logit D_t per position, D_t reading y_1..y_t only) and r_t = 2 sigmoid(D_t) - 1, in [-1, 1], at
      every step: each prefix is scored directly, with no Monte Carlo search and no rollout policy.
      Its state is cached per prefix and advanced one token per step; when its weights change (it
      trains) the cached states are recomputed from the prefixes, so rewards are a fresh env's. A
      return-based algorithm discounts these rewards with its own gamma (ScratchGAN: 0.23).
    `info["q"]` is Q_t at every step where it was computed (every step, or only the last in
    "terminal" mode; in "dense" mode sigmoid(D_t), the prefix's probability of being real). Rewards
    lie in [0, 1] ("shaped" and "dense": in [-1, 1]).

    ## Starting State
    The empty prefix (all `pad_id`); the rollout policy's state after reading the start token (in
    "dense" mode: the prefix discriminator's state before any token).

    ## Episode End
    `terminated=True` after T tokens, or as soon as `eos_id` is chosen when one is set; the final
    step's `info["sequence"]` holds the finished sequence. Never truncated, and never a
    `max_episode_steps` limit: an algorithm would bootstrap a value after a truncation, which is wrong
    for a sequence that is complete.

    ## Arguments
    `gymnasium.make("SeqGAN-v0", **kwargs)`:
    - `vocab_size` (V, default 5000) and `seq_len` (T, default 20): the paper's sizes, or those of the
      models loaded from `checkpoint` or given as `rollout_policy`/`discriminator` (given too, they
      must match the models').
    - `n_rollouts` (N, default 16): Monte Carlo completions per prefix.
    - `reward_mode`: `"mc"`, `"shaped"`, `"terminal"` or `"dense"` (see Rewards).
    - `eos_id`: an end-of-sequence id that ends the episode (default None: fixed length).
    - `start_token` (0), `embed_dim` (32), `hidden_dim` (32): a fresh rollout policy's sizes.
    - `discriminator_embed_dim` (64), `discriminator_filters` (the paper's (width, filters) pairs that
      fit T): a fresh discriminator's sizes.
    - `discriminator_hidden_dim` (128), `discriminator_layer_norm` (True): a fresh prefix
      discriminator's LSTM size and whether its gates are layer-normed ("dense" mode; its embedding
      size is `discriminator_embed_dim`).
    - `model_seed` (0): seeds the fresh models' initialisation (None: the global torch RNG).
    - `oracle_seed` (0) / `oracle_path`: the synthetic benchmark's oracle held as `env.oracle` (a seeded
      N(0, 1) LSTM, or the paper's parameter file); `oracle_seed=None` for none.
    - `checkpoint`: a file from `seqgan_env.checkpoint.save_checkpoint` (e.g. a trained run) to load
      the rollout policy and discriminator from; a run trained on text also sets `vocabulary` and
      `eos_id` from its vocabulary (unless they are given).
    - `rollout_policy`, `discriminator`: live models to use instead (not for registered kwargs); the
      discriminator is a `Discriminator` (the paper's CNN) or a `PrefixDiscriminator` ("dense" mode
      needs the latter; the other modes score finished sequences with either).
    - `scorer`: another sequence score (an object with `score(sequences) -> [B]` in [0, 1]) to use in
      place of the discriminator in the rewards, e.g. BLEU against the training set (PG-BLEU). One
      that also has `score_completions(prefixes, completions)` (`PrefixScorer`) gets the Monte Carlo
      completions with their shared prefixes, as the discriminator does.
    - `vocabulary`: token strings for the `"ansi"` render; `device`: where the models run;
      `render_mode`: None or `"ansi"` (the prefix as text).

    ## Vectorized environment
    `gymnasium.make_vec("SeqGAN-v0", num_envs=B)` returns `SeqGANVectorEnv`, which computes the Monte
    Carlo rewards of all B prefixes in one batch of B*N completions (in "dense" mode: advances the
    prefix discriminator's state of all B prefixes in one call). Both classes run the same
    transition and reward code (`seqgan_env.core.SeqGANCore`). `autoreset_mode` (`make_vec(...,
    autoreset_mode=...)`, a `gymnasium.vector.AutoresetMode` or its value) is declared in
    `metadata["autoreset_mode"]`:
    - `NEXT_STEP` (default): the step after an env terminates resets it (action ignored, reward 0).
    - `SAME_STEP`: it resets in the terminating step; the final observation and step info are in
      `infos["final_obs"]` and `infos["final_info"]`, as Gymnasium's `SyncVectorEnv` gives them.
    - `DISABLED`: a finished env waits until `reset(options={"reset_mask": ...})`; stepping it does
      nothing (action ignored: no token, no Monte Carlo search, reward 0, not terminated again).
    `with envs.unwrapped.autoreset_paused():` runs a block under `DISABLED` whatever the mode: the
    REINFORCE agent's `collect` so runs exactly one episode per env, and no episode starts that the
    agent did not sample. In every mode `infos["q"]` and `infos["sequence"]` (with their `_` masks)
    describe the step just taken.
    """

    # A plain dict, not a ClassVar: gymnasium.Env declares `metadata` an instance variable.
    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self._build(1, kwargs)
        self.action_space = spaces.Discrete(self.vocab_size)
        self.observation_space = spaces.Box(0, self.vocab_size, shape=(self.seq_len,), dtype=np.int64)
        self._needs_reset = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._seed_torch_rng(seed, self.np_random)
        self._core.reset(np.ones(1, dtype=bool))
        self._needs_reset = False
        return self._core.observations()[0], {}

    def step(self, action: int | np.integer) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        token = check_action(action, self.vocab_size)
        if self._needs_reset:
            raise RuntimeError("step() called on a finished (or never started) episode: call reset() first")
        result = self._core.step(np.array([token]), np.ones(1, dtype=bool), self._torch_rng)
        observation = self._core.observations()[0]
        terminated = bool(result.terminated[0])
        info: dict[str, Any] = {}
        if result.q_computed[0]:
            info["q"] = float(result.q[0])
        if terminated:
            info["sequence"] = observation.copy()
            self._needs_reset = True
        return observation, float(result.rewards[0]), terminated, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return render_prefix(self._core.observations()[0], self.pad_id, self.vocabulary)


def render_prefix(tokens: np.ndarray, pad_id: int, vocabulary: list[str] | None) -> str:
    """A prefix as text: its tokens through the vocabulary when there is one, else ids."""
    ids = [int(t) for t in tokens if t != pad_id]
    return " ".join(vocabulary[i] for i in ids) if vocabulary is not None else " ".join(map(str, ids))
