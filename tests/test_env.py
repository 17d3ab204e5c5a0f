"""SeqGAN-v0: the env checkers, episodes, reward modes, seeding, rendering, errors and registration."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import HANG_GUARD, FunctionScorer, TableScorer, tiny_discriminator, tiny_lstm
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import seqgan_env
from seqgan_env import VARIANTS, SeqGANEnv, register_envs

REPO = Path(__file__).resolve().parents[1]
TINY = "SeqGAN-Tiny-v0"
TINY_KWARGS = VARIANTS[TINY]  # V 8, T 4
V, T = TINY_KWARGS["vocab_size"], TINY_KWARGS["seq_len"]


def tiny_env(**kwargs) -> SeqGANEnv:
    return SeqGANEnv(**{**TINY_KWARGS, **kwargs})


def score(env, sequence) -> float:
    """D(y) of one sequence under the env's discriminator."""
    return env.discriminator.score(torch.tensor([sequence]))[0].item()


def run_episode(env, actions, seed=None):
    """(observations, rewards, terminateds, infos) of one episode played with `actions`."""
    obs, info = env.reset(seed=seed)
    observations, rewards, terminateds, infos = [obs], [], [], []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        assert truncated is False
        observations.append(obs)
        rewards.append(reward)
        terminateds.append(terminated)
        infos.append(info)
        if terminated:
            break
    return observations, rewards, terminateds, infos


# --- every registered id -------------------------------------------------------------------------------
@pytest.mark.parametrize("render_mode", [None, "ansi"])
@pytest.mark.parametrize("env_id", list(VARIANTS))
def test_registered_ids_pass_the_env_checkers_without_warnings(env_id, render_mode):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning is a failure
        env = gym.make(env_id, render_mode=render_mode)
        gym_check_env(env.unwrapped)
        sb3_check_env(env)
        env.close()


def test_the_warning_net_catches_checker_warnings():
    """The checks above have power: a checker warning (here: no render_fps declared) fails them."""

    class NoRenderFps(SeqGANEnv):
        metadata = {"render_modes": ["ansi"]}  # noqa: RUF012  (as gymnasium.Env declares it)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="render fps"):
            gym_check_env(NoRenderFps(**TINY_KWARGS, render_mode="ansi"))


@pytest.mark.parametrize("env_id", list(VARIANTS))
def test_registered_spaces_and_episode_end(env_id):
    spec = gym.spec(env_id)
    assert spec.max_episode_steps is None  # never truncated (SPEC 3)
    assert spec.entry_point == "seqgan_env.env:SeqGANEnv"
    assert spec.vector_entry_point == "seqgan_env.vector_env:SeqGANVectorEnv"
    env = gym.make(env_id)
    vocab, length = env.unwrapped.vocab_size, env.unwrapped.seq_len
    assert env.action_space == gym.spaces.Discrete(vocab)
    assert env.observation_space == gym.spaces.Box(0, vocab, shape=(length,), dtype=np.int64)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.int64 and (obs == vocab).all() and info == {}  # empty prefix: all padding


def contains_live_objects(value) -> bool:
    if isinstance(value, dict):
        return any(contains_live_objects(k) or contains_live_objects(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(contains_live_objects(v) for v in value)
    return not isinstance(value, (int, float, str, bool, type(None)))


@pytest.mark.parametrize("env_id", list(VARIANTS))
def test_registered_kwargs_are_plain(env_id):
    kwargs = gym.spec(env_id).kwargs
    assert kwargs == VARIANTS[env_id]
    assert not contains_live_objects(kwargs)  # no torch modules, tensors or generators
    assert copy.deepcopy(kwargs) == kwargs


def test_contains_live_objects_detects_torch_modules():
    assert contains_live_objects({"a": [1, (2, torch.nn.Linear(1, 1))]})
    assert contains_live_objects({"t": torch.zeros(1)})
    assert not contains_live_objects({"a": [1, (2, "x")], "b": None, "c": 0.5})


def test_registering_twice_is_harmless():
    specs = {env_id: gym.spec(env_id) for env_id in VARIANTS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns when an id is overridden
        register_envs()
        register_envs()
    for env_id, spec in specs.items():
        assert gym.spec(env_id) is spec
    assert gym.make(TINY).reset(seed=0)[0].shape == (T,)


def test_make_with_module_prefix_in_a_fresh_process():
    """`gymnasium.make("seqgan_env:SeqGAN-v0")` imports the package itself (nothing imported first)."""
    code = (
        "import sys, gymnasium as gym\n"
        "assert 'seqgan_env' not in sys.modules\n"
        "env = gym.make('seqgan_env:SeqGAN-v0')\n"
        "obs, _ = env.reset(seed=0)\n"
        "obs, reward, terminated, truncated, info = env.step(1)\n"
        "print(type(env.unwrapped).__name__, env.action_space.n, obs.shape, obs[0], 0 <= reward <= 1)\n"
    )
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True, text=True, timeout=HANG_GUARD,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["SeqGANEnv", "5000", "(20,)", "1", "True"]


# --- episodes ----------------------------------------------------------------------------------------
def test_paper_sized_episode():
    env = gym.make("SeqGAN-v0")
    assert (env.unwrapped.vocab_size, env.unwrapped.seq_len, env.unwrapped.n_rollouts) == (5000, 20, 16)
    assert env.unwrapped.reward_mode == "mc"
    env.action_space.seed(0)
    actions = [int(env.action_space.sample()) for _ in range(20)]
    observations, rewards, terminateds, infos = run_episode(env, actions, seed=0)
    assert len(rewards) == 20
    assert terminateds == [False] * 19 + [True]
    assert all(0.0 <= r <= 1.0 for r in rewards)
    assert all(r == info["q"] for r, info in zip(rewards, infos, strict=True))
    assert (observations[-1] == actions).all()
    for t in range(20):  # the prefix grows left-aligned, padded with V
        assert observations[t][:t].tolist() == actions[:t] and (observations[t][t:] == 5000).all()
    assert "sequence" not in infos[-2]
    assert infos[-1]["sequence"].tolist() == actions
    assert rewards[-1] == pytest.approx(score(env.unwrapped, actions), abs=1e-6)


def test_mc_rewards_are_q_and_last_is_discriminator_score():
    env = tiny_env(reward_mode="mc")
    _, rewards, terminateds, infos = run_episode(env, [1, 5, 2, 7], seed=0)
    assert terminateds == [False, False, False, True]
    assert [info["q"] for info in infos] == rewards
    assert all(0.0 <= r <= 1.0 for r in rewards)
    assert rewards[-1] == pytest.approx(score(env, [1, 5, 2, 7]), abs=1e-6)


def test_shaped_rewards_sum_to_the_final_score():
    env = tiny_env(reward_mode="shaped")
    _, rewards, _, infos = run_episode(env, [3, 3, 0, 6], seed=1)
    assert "q" in infos[0] and "q" in infos[-1]
    assert sum(rewards) == pytest.approx(infos[-1]["q"], abs=1e-6)
    q = [0.0] + [info["q"] for info in infos]
    assert rewards == pytest.approx(np.diff(q).tolist(), abs=1e-6)
    assert all(-1.0 <= r <= 1.0 for r in rewards)
    assert infos[-1]["q"] == pytest.approx(score(env, [3, 3, 0, 6]), abs=1e-6)


def test_terminal_rewards_are_zero_until_the_end_and_need_no_search():
    scorer = FunctionScorer(lambda row: 0.25 + 0.05 * row[0])
    env = tiny_env(reward_mode="terminal", scorer=scorer)
    _, rewards, terminateds, infos = run_episode(env, [2, 1, 0, 4], seed=0)
    assert rewards[:-1] == [0.0, 0.0, 0.0]
    assert all("q" not in info for info in infos[:-1])
    assert rewards[-1] == pytest.approx(0.35) and infos[-1]["q"] == pytest.approx(0.35)
    assert terminateds[-1]
    assert len(scorer.calls) == 1 and scorer.calls[0].tolist() == [[2, 1, 0, 4]]  # no Monte Carlo search


def test_scorer_replaces_the_discriminator_in_mc_rewards():
    scorer = FunctionScorer(lambda row: 0.5)
    env = tiny_env(scorer=scorer)
    _, rewards, _, _ = run_episode(env, [1, 2, 3, 4], seed=0)
    assert rewards == pytest.approx([0.5] * 4)
    n = TINY_KWARGS["n_rollouts"]
    assert [len(c) for c in scorer.calls] == [n, n, n, 1]  # N completions per prefix, then D(y) once


def test_eos_ends_the_episode_early():
    env = tiny_env(eos_id=3)
    observations, rewards, terminateds, infos = run_episode(env, [5, 3, 1, 1], seed=0)
    assert terminateds == [False, True]
    assert observations[-1].tolist() == [5, 3, V, V]
    assert infos[-1]["sequence"].tolist() == [5, 3, V, V]
    assert rewards[-1] == pytest.approx(score(env, [5, 3, V, V]), abs=1e-6)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(1)
    obs, _ = env.reset()
    assert (obs == V).all()


def test_rollouts_stop_at_eos():
    scorer = FunctionScorer(lambda row: 0.5)
    env = tiny_env(eos_id=2, scorer=scorer, n_rollouts=64)
    env.reset(seed=0)
    env.step(1)
    (scored,) = scorer.calls
    assert scored.shape == (64, T) and (scored[:, 0] == 1).all()
    for row in scored.tolist():
        if 2 in row[1:]:
            k = row.index(2, 1)
            assert row[k + 1 :] == [V] * (T - k - 1)
    assert (scored == V).any()


def test_rewards_after_the_rollout_policy_changes_equal_a_fresh_envs():
    """The env caches the rollout policy's state per prefix; a change of the policy's weights in place
    (a rollout sync) must not leave it stale: the next rewards are a fresh env's with the new weights."""
    old, new = tiny_lstm(seed=1), tiny_lstm(seed=2)
    kwargs = {"n_rollouts": 16, "scorer": TableScorer(V + 1, T), "discriminator": tiny_discriminator(),
              "oracle_seed": None}  # fmt: skip
    changed = SeqGANEnv(rollout_policy=copy.deepcopy(old), **kwargs)
    fresh = SeqGANEnv(rollout_policy=copy.deepcopy(new), **kwargs)
    changed.reset(seed=0), fresh.reset(seed=0)
    changed.step(1), fresh.step(1)
    with torch.no_grad():
        for beta, theta in zip(changed.rollout_policy.parameters(), new.parameters(), strict=True):
            beta.copy_(theta)  # what agents.reinforce.sync_rollout_policy does
    for action in (2, 5, 0):
        fresh._torch_rng.set_state(changed._torch_rng.get_state())  # the same draws from here on
        _, c_reward, _, _, c_info = changed.step(action)
        _, f_reward, _, _, f_info = fresh.step(action)
        assert c_reward == f_reward and c_info["q"] == f_info["q"]


# --- seeding and copies -------------------------------------------------------------------------------
def test_seeded_determinism():
    actions = [1, 5, 2, 7]
    env = tiny_env()
    first = run_episode(env, actions, seed=3)
    again = run_episode(env, actions, seed=3)
    fresh = run_episode(tiny_env(), actions, seed=3)
    for other in (again, fresh):
        assert all((a == b).all() for a, b in zip(first[0], other[0], strict=True))
        assert first[1] == other[1]
    different = run_episode(env, actions, seed=4)
    assert first[1][:-1] != different[1][:-1]  # the Monte Carlo samples changed
    assert first[1][-1] == different[1][-1]  # D(y) is not random


def test_global_torch_rng_does_not_matter():
    actions = [0, 1, 2, 3]
    torch.manual_seed(0)
    a = run_episode(tiny_env(), actions, seed=5)[1]
    torch.manual_seed(1)
    b = run_episode(tiny_env(), actions, seed=5)[1]
    assert a == b


def test_returned_arrays_are_copies():
    env = tiny_env()
    obs, _ = env.reset(seed=0)
    obs[:] = 0
    obs, *_ = env.step(4)
    assert obs.tolist() == [4, V, V, V]
    obs[:] = 1
    obs, *_ = env.step(6)
    assert obs.tolist() == [4, 6, V, V]
    env.step(1)
    obs, _, _, _, info = env.step(2)
    info["sequence"][:] = 0
    assert obs.tolist() == [4, 6, 1, 2]


# --- rendering -------------------------------------------------------------------------------------------
def test_render_ansi_without_vocabulary():
    env = gym.make(TINY, render_mode="ansi")
    env.reset(seed=0)
    assert env.render() == ""
    env.step(3)
    env.step(0)
    assert env.render() == "3 0"


def test_render_ansi_with_vocabulary():
    vocabulary = ["<s>", "the", "cat", "sat", "on", "a", "mat", "."]
    env = gym.make(TINY, render_mode="ansi", vocabulary=vocabulary)
    env.reset(seed=0)
    for a in (1, 2, 3):
        env.step(a)
    assert env.render() == "the cat sat"


def test_render_mode_none_and_invalid():
    env = tiny_env()
    env.reset(seed=0)
    assert env.render() is None
    with pytest.raises(ValueError, match="human"):
        tiny_env(render_mode="human")
    with pytest.raises(ValueError, match="vocabulary"):
        tiny_env(vocabulary=["a", "b"])


# --- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", [8, -1, 100, np.int64(8)])
def test_action_outside_the_space(action):
    env = tiny_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=rf"{int(action)}.*Discrete\(8\)"):
        env.step(action)
    obs, *_ = env.step(1)  # the failed step changed nothing
    assert obs.tolist() == [1, V, V, V]


@pytest.mark.parametrize("action", [2.0, np.float32(2), np.array([1]), [1], True, "1", None])
def test_action_of_the_wrong_type(action):
    env = tiny_env()
    env.reset(seed=0)
    with pytest.raises(TypeError, match=r"Discrete\(8\)"):
        env.step(action)


@pytest.mark.parametrize("action", [3, np.int64(3), np.int32(3), np.array(3)])
def test_integer_actions_are_accepted(action):
    env = tiny_env()
    env.reset(seed=0)
    obs, *_ = env.step(action)
    assert obs[0] == 3


def test_step_after_termination_or_before_reset():
    env = tiny_env()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    run_episode(env, [0, 0, 0, 0], seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_checkpoint_that_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        gym.make(TINY, checkpoint=str(tmp_path / "nope.pt"))


@pytest.mark.parametrize(
    "content", [b"hello, I am not a checkpoint\n", b"", bytes(range(256)), b"PK\x03\x04not a zip"]
)
def test_file_that_is_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's unpickler comments on garbage bytes
        with pytest.raises(ValueError, match=r"bad\.pt"):
            gym.make(TINY, checkpoint=str(path))


def test_torch_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="format"):
        gym.make(TINY, checkpoint=str(path))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reward_mode": "bogus"}, "bogus"),
        ({"n_rollouts": 0}, "n_rollouts"),
        ({"eos_id": 8}, "eos_id"),
        ({"eos_id": -1}, "eos_id"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_env(**kwargs)


def test_package_exports():
    assert seqgan_env.SeqGANEnv is SeqGANEnv
    assert "SeqGAN-v0" in VARIANTS and VARIANTS["SeqGAN-v0"] == {}
