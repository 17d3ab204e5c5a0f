"""SeqGANVectorEnv: the native batched env, its autoreset modes, agreement with the single env, and its\nrollout-policy cache following the policy's weights."""

from __future__ import annotations

import copy
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import FunctionScorer, TableScorer, tiny_discriminator, tiny_lstm
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import seqgan_env.core
from seqgan_env import VARIANTS, SeqGANEnv, SeqGANVectorEnv

TINY = "SeqGAN-Tiny-v0"
TINY_KWARGS = VARIANTS[TINY]
V, T = TINY_KWARGS["vocab_size"], TINY_KWARGS["seq_len"]
PAD = V


def tiny_vec(num_envs: int, **kwargs) -> SeqGANVectorEnv:
    return SeqGANVectorEnv(num_envs, **{**TINY_KWARGS, **kwargs})


def test_make_vec_returns_the_native_vector_env():
    env = gym.make_vec("SeqGAN-v0", num_envs=4)
    assert isinstance(env, SeqGANVectorEnv) and not isinstance(env, SyncVectorEnv)
    assert env.num_envs == 4
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert env.single_action_space == gym.spaces.Discrete(5000)
    assert env.action_space == gym.spaces.MultiDiscrete([5000] * 4)
    assert env.single_observation_space == gym.spaces.Box(0, 5000, shape=(20,), dtype=np.int64)
    assert env.observation_space.shape == (4, 20)
    obs, infos = env.reset(seed=0)
    assert obs.shape == (4, 20) and (obs == 5000).all() and infos == {}
    obs, rewards, terminated, truncated, infos = env.step(np.arange(4))
    assert obs[:, 0].tolist() == [0, 1, 2, 3]
    assert rewards.shape == (4,) and ((rewards >= 0) & (rewards <= 1)).all()
    assert not terminated.any() and not truncated.any()


def test_make_vec_at_64_envs_is_native():
    env = gym.make_vec("SeqGAN-v0", num_envs=64)
    assert type(env) is SeqGANVectorEnv and env.num_envs == 64


def test_make_vec_tiny_passes_kwargs():
    env = gym.make_vec(TINY, num_envs=2, reward_mode="terminal")
    assert isinstance(env, SeqGANVectorEnv) and env.reward_mode == "terminal" and env.vocab_size == V


EPISODES = [[1, 5, 2, 7], [3], [6, 0, 3], [2, 2, 2, 2]]  # eos_id 3 ends episodes 2 and 3 early


@pytest.mark.parametrize("reward_mode", ["mc", "shaped", "terminal"])
def test_single_env_and_one_env_vector_env_agree(reward_mode):
    kwargs = {**TINY_KWARGS, "eos_id": 3, "reward_mode": reward_mode}
    single, vector = SeqGANEnv(**kwargs), SeqGANVectorEnv(1, **kwargs)
    s_obs, _ = single.reset(seed=7)
    v_obs, _ = vector.reset(seed=7)
    np.testing.assert_array_equal(v_obs[0], s_obs)
    for episode, actions in enumerate(EPISODES):
        if episode > 0:
            s_obs, _ = single.reset()
            # NEXT_STEP autoreset: the step after termination resets; its action is ignored, reward 0.
            v_obs, v_reward, v_term, v_trunc, v_infos = vector.step(np.array([5]))
            np.testing.assert_array_equal(v_obs[0], s_obs)
            assert v_reward[0] == 0.0 and not v_term[0] and not v_trunc[0]
            assert "_q" not in v_infos and "sequence" not in v_infos
        for action in actions:
            s_obs, s_reward, s_term, _, s_info = single.step(action)
            v_obs, v_reward, v_term, _, v_infos = vector.step(np.array([action]))
            np.testing.assert_array_equal(v_obs[0], s_obs)
            assert v_reward[0] == np.float32(s_reward)
            assert bool(v_term[0]) == s_term
            assert ("q" in s_info) == bool(v_infos.get("_q", [False])[0])
            if "q" in s_info:
                assert v_infos["q"][0] == np.float32(s_info["q"])
        assert s_term
        np.testing.assert_array_equal(v_infos["sequence"][0], s_info["sequence"])


def test_autoreset_with_episodes_ending_at_different_times():
    env = tiny_vec(3, eos_id=3)
    obs, _ = env.reset(seed=0)

    # Step 1: env 0 picks eos and ends.
    obs, rewards, terminated, truncated, infos = env.step(np.array([3, 1, 1]))
    assert terminated.tolist() == [True, False, False] and not truncated.any()
    assert infos["_sequence"].tolist() == [True, False, False]
    assert infos["sequence"][0].tolist() == [3, PAD, PAD, PAD]
    assert (infos["sequence"][1:] == PAD).all()
    assert infos["_q"].all() and (rewards == infos["q"]).all()

    # Step 2: env 0 resets (its action ignored, reward 0); env 1 picks eos; env 2 goes on.
    obs, rewards, terminated, _, infos = env.step(np.array([5, 3, 2]))
    assert obs.tolist() == [[PAD] * 4, [1, 3, PAD, PAD], [1, 2, PAD, PAD]]
    assert terminated.tolist() == [False, True, False]
    assert rewards[0] == 0.0 and infos["_q"].tolist() == [False, True, True]
    assert infos["q"][0] == 0.0  # masked entries hold 0, not NaN
    assert infos["_sequence"].tolist() == [False, True, False]
    assert infos["sequence"][1].tolist() == [1, 3, PAD, PAD]

    # Step 3: env 0 starts its second episode, env 1 resets.
    obs, rewards, terminated, _, infos = env.step(np.array([4, 0, 0]))
    assert obs.tolist() == [[4, PAD, PAD, PAD], [PAD] * 4, [1, 2, 0, PAD]]
    assert not terminated.any() and "sequence" not in infos
    assert rewards[1] == 0.0 and infos["_q"].tolist() == [True, False, True]

    # Step 4: env 2 reaches length T.
    obs, rewards, terminated, _, infos = env.step(np.array([4, 0, 6]))
    assert obs.tolist() == [[4, 4, PAD, PAD], [0, PAD, PAD, PAD], [1, 2, 0, 6]]
    assert terminated.tolist() == [False, False, True]
    assert infos["sequence"][2].tolist() == [1, 2, 0, 6]
    assert infos["q"][2] == pytest.approx(env.discriminator.score(torch.tensor([[1, 2, 0, 6]]))[0].item())

    # Step 5: env 2 resets.
    obs, rewards, terminated, _, infos = env.step(np.array([1, 1, 1]))
    assert obs[2].tolist() == [PAD] * 4 and rewards[2] == 0.0 and not terminated.any()
    assert obs[:2, :3].tolist() == [[4, 4, 1], [0, 1, PAD]]


def test_terminal_mode_q_mask():
    env = tiny_vec(2, reward_mode="terminal")
    env.reset(seed=0)
    for step in range(T):
        _, rewards, terminated, _, infos = env.step(np.array([1, 2]))
        if step < T - 1:
            assert (rewards == 0).all() and "_q" not in infos
    assert terminated.all() and infos["_q"].all() and (rewards == infos["q"]).all()


def test_seeded_determinism():
    env = tiny_vec(3)
    runs = []
    for seed in (1, 1, 2):
        env.reset(seed=seed)
        runs.append([env.step(np.array([a, a + 1, a + 2]))[1] for a in range(T)])
    assert all((a == b).all() for a, b in zip(runs[0], runs[1]))
    assert any((a != b).any() for a, b in zip(runs[0][:-1], runs[2][:-1]))


# --- action validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize("actions", [np.array([1, 2]), np.array([1.0, 2.0, 3.0]), 1, np.array([[1, 2, 3]])])
def test_actions_of_the_wrong_shape_or_type(actions):
    env = tiny_vec(3)
    env.reset(seed=0)
    with pytest.raises(TypeError, match=r"\(3,\)"):
        env.step(actions)


@pytest.mark.parametrize(("actions", "bad"), [([0, 8, 1], r"\[8\].*envs \[1\]"), ([-1, 0, 9], r"\[-1, 9\]")])
def test_actions_outside_the_space(actions, bad):
    env = tiny_vec(3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=bad + r".*Discrete\(8\)"):
        env.step(np.array(actions))
    obs, *_ = env.step([1, 2, 3])  # a plain list of ints is fine, and the failed step changed nothing
    assert obs[:, 0].tolist() == [1, 2, 3] and (obs[:, 1:] == PAD).all()


def test_step_before_reset_and_bad_construction():
    with pytest.raises(RuntimeError, match="reset"):
        tiny_vec(2).step(np.array([0, 0]))
    with pytest.raises(ValueError, match="num_envs"):
        tiny_vec(0)
    with pytest.raises(ValueError, match="bogus"):
        tiny_vec(2, reward_mode="bogus")


# --- reset_mask --------------------------------------------------------------------------------------------
def test_reset_mask():
    env = tiny_vec(3)
    env.reset(seed=0)
    env.step(np.array([1, 2, 3]))
    env.step(np.array([4, 5, 6]))
    obs, infos = env.reset(options={"reset_mask": np.array([True, False, True])})
    assert obs.tolist() == [[PAD] * 4, [2, 5, PAD, PAD], [PAD] * 4] and infos == {}
    obs, rewards, terminated, _, infos = env.step(np.array([7, 7, 7]))
    assert obs.tolist() == [[7, PAD, PAD, PAD], [2, 5, 7, PAD], [7, PAD, PAD, PAD]]
    assert infos["_q"].all() and not terminated.any()
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.array([True, False])})


def test_reset_mask_cancels_a_pending_autoreset():
    env = tiny_vec(2, eos_id=3)
    env.reset(seed=0)
    _, _, terminated, _, _ = env.step(np.array([3, 1]))
    assert terminated.tolist() == [True, False]
    env.reset(options={"reset_mask": np.array([True, False])})
    obs, rewards, terminated, _, infos = env.step(np.array([6, 2]))
    assert obs[:, :2].tolist() == [[6, PAD], [1, 2]]  # env 0 acted instead of resetting again
    assert infos["_q"].tolist() == [True, True]


def test_render_ansi():
    env = tiny_vec(2, render_mode="ansi", vocabulary=list("abcdefgh"))
    env.reset(seed=0)
    env.step(np.array([0, 7]))
    env.step(np.array([1, 6]))
    assert env.render() == ("a b", "h g")
    assert tiny_vec(1).render() is None


# --- autoreset modes ---------------------------------------------------------------------------------------
def count_searched_rows(monkeypatch) -> list[int]:
    """The number of prefix rows of every Monte Carlo search the core runs."""
    rows: list[int] = []
    original = seqgan_env.core.monte_carlo_q

    def counting(rollout_policy, scorer, prefixes, *args, **kwargs):
        rows.append(prefixes.shape[0])
        return original(rollout_policy, scorer, prefixes, *args, **kwargs)

    monkeypatch.setattr(seqgan_env.core, "monte_carlo_q", counting)
    return rows


def test_autoreset_mode_argument():
    assert tiny_vec(2).metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    for mode in AutoresetMode:
        for arg in (mode, mode.value):
            env = tiny_vec(2, autoreset_mode=arg)
            assert env.metadata["autoreset_mode"] is mode and env.autoreset_mode is mode
            assert env.metadata["render_modes"] == ["ansi"]
    assert SeqGANVectorEnv.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP  # per instance, not the class
    with pytest.raises(ValueError, match=r"autoreset_mode must be .*'SameStep'.*got 'same_steps'"):
        tiny_vec(2, autoreset_mode="same_steps")


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, "Disabled", AutoresetMode.NEXT_STEP])
def test_make_vec_passes_autoreset_mode(mode):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # make_vec warns about a missing or mistyped autoreset_mode
        env = gym.make_vec(TINY, num_envs=4, autoreset_mode=mode)
    assert type(env) is SeqGANVectorEnv and env.num_envs == 4
    assert env.metadata["autoreset_mode"] is AutoresetMode(mode)


def first_token_score(row: list[int]) -> float:
    """A deterministic score: every Q_t is exact, whatever the completions (and whatever the RNG)."""
    return (row[0] + 1) / (V + 1)


def assert_infos_equal(ours: dict, theirs: dict) -> None:
    """Gymnasium's batched infos: the same keys and masks, the same values where masked."""
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        if key.startswith("_"):
            np.testing.assert_array_equal(ours[key], value, err_msg=key)
        elif isinstance(value, dict):
            assert_infos_equal(ours[key], value)
        else:
            mask = theirs[f"_{key}"]
            for i in np.flatnonzero(mask):
                np.testing.assert_array_equal(np.asarray(ours[key][i]), np.asarray(value[i]), err_msg=key)


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_autoreset_modes_match_gymnasiums_sync_vector_env(mode):
    B = 3
    kwargs = {**TINY_KWARGS, "eos_id": 3, "oracle_seed": None}
    ours = SeqGANVectorEnv(B, autoreset_mode=mode, scorer=FunctionScorer(first_token_score), **kwargs)
    theirs = SyncVectorEnv(
        [lambda: SeqGANEnv(scorer=FunctionScorer(first_token_score), **kwargs) for _ in range(B)],
        autoreset_mode=mode,
    )
    assert ours.metadata["autoreset_mode"] == theirs.metadata["autoreset_mode"] == mode
    np.testing.assert_array_equal(ours.reset(seed=0)[0], theirs.reset(seed=0)[0])
    rng = np.random.default_rng(0)
    actions = np.where(rng.random((40, B)) < 0.25, 3, rng.integers(0, V, size=(40, B)))  # eos often
    n_done = 0
    for step_actions in actions:
        o_obs, o_rew, o_term, o_trunc, o_infos = ours.step(step_actions)
        t_obs, t_rew, t_term, t_trunc, t_infos = theirs.step(step_actions)
        np.testing.assert_array_equal(o_obs, t_obs)
        np.testing.assert_array_equal(o_rew, t_rew.astype(np.float32))
        np.testing.assert_array_equal(o_term, t_term)
        np.testing.assert_array_equal(o_trunc, t_trunc)
        n_done += int(o_term.sum())
        if mode == AutoresetMode.SAME_STEP:
            # Gymnasium moves a finished env's step info under final_info; ours also keeps it on top.
            assert_infos_equal({k: v for k, v in o_infos.items() if k.endswith("final_obs")},
                               {k: v for k, v in t_infos.items() if k.endswith("final_obs")})  # fmt: skip
            if t_term.any():
                assert_infos_equal(o_infos["final_info"], t_infos["final_info"])
                np.testing.assert_array_equal(o_infos["_final_info"], t_infos["_final_info"])
                np.testing.assert_array_equal(o_infos["sequence"][o_term], o_infos["final_info"]["sequence"][o_term])
                assert "sequence" not in t_infos
            if "_q" in t_infos:
                np.testing.assert_array_equal(o_infos["_q"] & ~o_term, t_infos["_q"])
                np.testing.assert_array_equal(o_infos["q"][t_infos["_q"]], t_infos["q"][t_infos["_q"]])
        else:
            assert_infos_equal(o_infos, t_infos)
        if mode == AutoresetMode.DISABLED and t_term.any():  # Gymnasium's DISABLED: the user resets
            np.testing.assert_array_equal(
                ours.reset(options={"reset_mask": t_term})[0], theirs.reset(options={"reset_mask": t_term})[0]
            )
    assert n_done >= 2 * B


def test_same_step_resets_a_finished_env_in_the_step():
    env = tiny_vec(3, eos_id=3, autoreset_mode="SameStep")
    env.reset(seed=0)
    obs, rewards, terminated, _, infos = env.step(np.array([3, 1, 1]))
    assert terminated.tolist() == [True, False, False]
    assert obs.tolist() == [[PAD] * 4, [1, PAD, PAD, PAD], [1, PAD, PAD, PAD]]  # env 0 already reset
    assert infos["_final_obs"].tolist() == [True, False, False] and infos["final_obs"].dtype == object
    assert infos["final_obs"][0].tolist() == [3, PAD, PAD, PAD] and infos["final_obs"][1] is None
    final = infos["final_info"]
    assert infos["_final_info"].tolist() == [True, False, False]
    assert final["_sequence"].tolist() == [True, False, False] and final["_q"].tolist() == [True, False, False]
    assert final["sequence"][0].tolist() == [3, PAD, PAD, PAD]
    assert final["q"][0] == rewards[0] == pytest.approx(env.discriminator.score(torch.tensor([[3, 8, 8, 8]]))[0])
    # The next step is env 0's first step of a new episode: no step is lost to the autoreset.
    obs, rewards, terminated, _, infos = env.step(np.array([4, 2, 2]))
    assert obs[:, :2].tolist() == [[4, PAD], [1, 2], [1, 2]]
    assert infos["_q"].all() and not terminated.any() and "final_obs" not in infos


def test_disabled_ignores_a_finished_env_until_reset_mask(monkeypatch):
    env = tiny_vec(3, eos_id=3, autoreset_mode=AutoresetMode.DISABLED)
    searched = count_searched_rows(monkeypatch)
    env.reset(seed=0)
    _, _, terminated, _, _ = env.step(np.array([3, 1, 1]))
    assert terminated.tolist() == [True, False, False] and searched == [2]

    # Env 0 is finished: its action is ignored (no token, no search, reward 0, not terminated again).
    obs, rewards, terminated, _, infos = env.step(np.array([5, 3, 2]))
    assert obs.tolist() == [[3, PAD, PAD, PAD], [1, 3, PAD, PAD], [1, 2, PAD, PAD]]
    assert rewards[0] == 0.0 and terminated.tolist() == [False, True, False]
    assert infos["_q"].tolist() == [False, True, True] and infos["_sequence"].tolist() == [False, True, False]
    assert searched == [2, 1]  # env 2 only: env 1 finished (scored once, not searched)
    obs, rewards, terminated, _, infos = env.step(np.array([5, 5, 0]))
    assert obs[:2].tolist() == [[3, PAD, PAD, PAD], [1, 3, PAD, PAD]] and (rewards[:2] == 0).all()
    assert not terminated.any() and infos["_q"].tolist() == [False, False, True] and searched == [2, 1, 1]

    obs, _ = env.reset(options={"reset_mask": np.array([True, False, False])})
    assert obs[0].tolist() == [PAD] * 4 and obs[1].tolist() == [1, 3, PAD, PAD]
    obs, rewards, terminated, _, infos = env.step(np.array([6, 6, 6]))
    assert obs.tolist() == [[6, PAD, PAD, PAD], [1, 3, PAD, PAD], [1, 2, 0, 6]]
    assert terminated.tolist() == [False, False, True] and rewards[1] == 0.0
    assert infos["_q"].tolist() == [True, False, True]


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_autoreset_paused(mode):
    env = tiny_vec(2, eos_id=3, autoreset_mode=mode)
    env.reset(seed=0)
    with env.autoreset_paused():
        assert env.metadata["autoreset_mode"] is env.autoreset_mode is AutoresetMode.DISABLED
        _, _, terminated, _, _ = env.step(np.array([3, 1]))
        assert terminated.tolist() == [True, False]
        obs, rewards, terminated, _, infos = env.step(np.array([5, 2]))
        assert obs.tolist() == [[3, PAD, PAD, PAD], [1, 2, PAD, PAD]]  # no reset, no new episode
        assert rewards[0] == 0.0 and not terminated.any() and infos["_q"].tolist() == [False, True]
    assert env.metadata["autoreset_mode"] is env.autoreset_mode is mode
    # Env 0, finished in the pause, restarts at the next step (its action ignored), as in NEXT_STEP.
    obs, rewards, terminated, _, infos = env.step(np.array([6, 4]))
    assert obs.tolist() == [[PAD] * 4, [1, 2, 4, PAD]] and rewards[0] == 0.0
    assert infos["_q"].tolist() == [False, True]
    obs, *_ = env.step(np.array([6, 4]))
    assert obs[0].tolist() == [6, PAD, PAD, PAD]
    with pytest.raises(KeyError), env.autoreset_paused():
        raise KeyError("the mode is restored whatever happens in the block")
    assert env.metadata["autoreset_mode"] is mode


# --- the rollout policy's cached states follow its weights ----------------------------------------------
def stale_cache_envs(num_envs: int, old: torch.nn.Module, new: torch.nn.Module) -> tuple:
    """Two vector envs that differ only in their rollout policy (copies of `old` and `new`); the
    scorer is a table of random values, so that any change of a completion changes Q."""
    kwargs = {"n_rollouts": 16, "eos_id": 3, "scorer": TableScorer(V + 1, T), "oracle_seed": None,
              "discriminator": tiny_discriminator()}  # fmt: skip
    return (SeqGANVectorEnv(num_envs, rollout_policy=copy.deepcopy(old), **kwargs),
            SeqGANVectorEnv(num_envs, rollout_policy=copy.deepcopy(new), **kwargs))  # fmt: skip


def test_rewards_after_the_rollout_policy_changes_equal_a_fresh_envs():
    old, new = tiny_lstm(seed=1), tiny_lstm(seed=2)
    changed, fresh = stale_cache_envs(3, old, new)
    changed.reset(seed=0), fresh.reset(seed=0)
    changed.step(np.array([3, 1, 1])), fresh.step(np.array([3, 1, 1]))  # env 0 ends; 1 and 2 go on
    changed.rollout_policy.load_state_dict(new.state_dict())  # in place, as a rollout sync does
    for actions in ([5, 2, 2], [4, 0, 6], [1, 5, 1]):  # env 0 restarts, env 1 ends, env 2 ends ...
        fresh._torch_rng.set_state(changed._torch_rng.get_state())  # the same draws from here on
        _, c_rewards, _, _, c_infos = changed.step(np.array(actions))
        _, f_rewards, _, _, f_infos = fresh.step(np.array(actions))
        np.testing.assert_array_equal(c_rewards, f_rewards)
        np.testing.assert_array_equal(c_infos["q"], f_infos["q"])
        live = torch.as_tensor(~changed._core.done)
        for name in ("logits", "h", "c"):
            assert torch.equal(getattr(changed._core, name)[live], getattr(fresh._core, name)[live]), name


def test_the_cache_is_recomputed_only_when_the_weights_change(monkeypatch):
    env = tiny_vec(2)
    calls: list[int] = []
    original = env.rollout_policy.prefix_states
    monkeypatch.setattr(env.rollout_policy, "prefix_states", lambda s: calls.append(len(s)) or original(s))
    env.reset(seed=0)
    for _ in range(3):
        env.step(np.array([1, 2]))
    assert calls == []  # unchanged weights: the hot path only compares the version counters
    with torch.no_grad():
        env.rollout_policy.output.bias.add_(0.5)
    env.step(np.array([1, 2]))  # recomputes the two live prefixes of length 3, then ends them
    env.step(np.array([1, 2]))  # NEXT_STEP's reset: start states with the new weights
    env.step(np.array([1, 2]))
    assert calls == [2]
