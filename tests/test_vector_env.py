"""SeqGANVectorEnv: the native batched env, NEXT_STEP autoreset, and agreement with the single env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from seqgan_env import SeqGANEnv, SeqGANVectorEnv, VARIANTS

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
