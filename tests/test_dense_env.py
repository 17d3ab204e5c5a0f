"""The env's dense reward mode (reward_mode="dense", SeqGAN-Dense-v0): the incremental reward equals
scoring each prefix from scratch, in the single and the vector env, across a change of the
discriminator's weights and with an end-of-sequence; the discriminator-updating wrapper trains it."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import seqgan_env  # noqa: F401  (registers the ids)
from seqgan_env import SeqGANEnv, SeqGANVectorEnv
from seqgan_env.config import SeqGANConfig
from seqgan_env.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.oracle import random_oracle
from seqgan_env.prefix_discriminator import PrefixDiscriminator, PrefixDiscriminatorConfig, dense_rewards
from seqgan_env.registration import VARIANTS
from seqgan_env.scorers import OracleScorer
from seqgan_env.wrappers import DiscriminatorSchedule, DiscriminatorTrainingVectorWrapper

V, T = 8, 5
KWARGS = {"vocab_size": V, "seq_len": T, "embed_dim": 8, "hidden_dim": 8, "discriminator_embed_dim": 8,
          "discriminator_hidden_dim": 12, "reward_mode": "dense", "oracle_seed": None}  # fmt: skip


def from_scratch(d: PrefixDiscriminator, tokens: np.ndarray) -> np.ndarray:
    """The dense reward of every prefix of `tokens` [B, T] computed by a full pass: [B, T]."""
    return dense_rewards(d.prefix_logits(torch.as_tensor(tokens))).numpy()


def test_the_dense_id_is_registered_and_passes_both_env_checkers() -> None:
    assert VARIANTS["SeqGAN-Dense-v0"] == {"reward_mode": "dense"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make("SeqGAN-Dense-v0")
        assert isinstance(env.unwrapped.discriminator, PrefixDiscriminator)
        gym_check_env(env.unwrapped)
        sb3_check_env(env)


def test_single_env_rewards_equal_scoring_each_prefix_from_scratch() -> None:
    env = SeqGANEnv(**KWARGS)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, V, T)
    rewards, qs = [], []
    for a in actions:
        _, reward, terminated, truncated, info = env.step(int(a))
        rewards.append(reward)
        qs.append(info["q"])
    assert terminated and not truncated
    expected = from_scratch(env.discriminator, actions[None])[0]
    np.testing.assert_allclose(rewards, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(qs, (expected + 1) / 2, rtol=0, atol=1e-6)  # q = sigmoid(D_t)
    assert -1 <= min(rewards) and max(rewards) <= 1


def test_vector_env_rewards_equal_scoring_each_prefix_from_scratch() -> None:
    B = 6
    envs = SeqGANVectorEnv(B, **KWARGS)
    envs.reset(seed=0)
    actions = np.random.default_rng(1).integers(0, V, (T, B))
    rewards = np.stack([envs.step(a)[1] for a in actions], axis=1)  # [B, T]
    np.testing.assert_allclose(rewards, from_scratch(envs.discriminator, actions.T), rtol=0, atol=1e-6)


def test_a_discriminator_trained_mid_episode_gives_a_fresh_envs_rewards() -> None:
    """Its optimiser's fused kernels write the weights without version bumps: the env still sees the
    change (the discriminator counts its steps) and re-reads each live prefix."""
    B = 4
    envs = SeqGANVectorEnv(B, **KWARGS)
    d = envs.discriminator
    envs.reset(seed=0)
    actions = np.random.default_rng(2).integers(0, V, (T, B))
    first = [envs.step(actions[t])[1] for t in range(2)]
    rng = torch.Generator().manual_seed(0)
    real, fake = torch.randint(0, 3, (32, T), generator=rng), torch.randint(3, V, (32, T), generator=rng)
    d.fit(d.make_optimizer(), real, fake, epochs=2, batch_size=16, rng=rng)
    later = [envs.step(actions[t])[1] for t in range(2, T)]
    rewards = np.stack(first + later, axis=1)
    expected = from_scratch(d, actions.T)
    np.testing.assert_allclose(rewards[:, 2:], expected[:, 2:], rtol=0, atol=1e-6)  # the new weights
    assert not np.allclose(rewards[:, :2], expected[:, :2], atol=1e-4)  # the first two: the old ones


def test_load_state_dict_mid_episode_is_seen_too() -> None:
    envs = SeqGANVectorEnv(3, **KWARGS)
    envs.reset(seed=0)
    actions = np.random.default_rng(3).integers(0, V, (T, 3))
    envs.step(actions[0])
    other = PrefixDiscriminator(envs.discriminator.config, rng=torch.Generator().manual_seed(9))
    envs.discriminator.load_state_dict(other.state_dict())
    rewards = np.stack([envs.step(a)[1] for a in actions[1:]], axis=1)
    np.testing.assert_allclose(rewards, from_scratch(other, actions.T)[:, 1:], rtol=0, atol=1e-6)


def test_end_of_sequence_ends_the_episode_and_each_row_keeps_its_own_prefix() -> None:
    envs = SeqGANVectorEnv(2, **KWARGS, eos_id=1)
    envs.reset(seed=0)
    with envs.autoreset_paused():
        _, r0, term0, _, _ = envs.step(np.array([1, 2]))  # row 0 ends at once
        _, r1, term1, _, infos = envs.step(np.array([3, 4]))  # row 0 waits: reward 0, no score
    assert term0.tolist() == [True, False] and r1[0] == 0.0 and not term1[0] and not infos.get("_q")[0]
    expected = from_scratch(envs.discriminator, np.array([[1, 1, 1, 1, 1], [2, 4, 0, 0, 0]]))
    assert r0[0] == pytest.approx(expected[0, 0], abs=1e-6)
    assert r1[1] == pytest.approx(expected[1, 1], abs=1e-6)


def test_dense_needs_a_prefix_discriminator() -> None:
    cnn = Discriminator(DiscriminatorConfig(V, T, 8, ((1, 4), (2, 4))))
    with pytest.raises(ValueError, match="reward_mode 'dense' scores every prefix: the discriminator must"):
        SeqGANEnv(**{**KWARGS, "discriminator": cnn})
    oracle = random_oracle(V, T, seed=0)
    with pytest.raises(ValueError, match="the scorer must be a PrefixDiscriminator"):
        SeqGANEnv(**KWARGS, scorer=OracleScorer(oracle, n_samples=16))
    with pytest.raises(TypeError, match="discriminator_layer_norm must be True or False"):
        SeqGANEnv(**{**KWARGS, "discriminator_layer_norm": 1})


def test_the_other_modes_score_finished_sequences_with_a_prefix_discriminator() -> None:
    d = PrefixDiscriminator(PrefixDiscriminatorConfig(V, T, 8, 12))
    env = SeqGANEnv(**{**KWARGS, "reward_mode": "terminal", "discriminator": d})
    env.reset(seed=0)
    actions = [1, 2, 3, 4, 5]
    for a in actions:
        _, reward, terminated, _, _ = env.step(a)
    assert terminated and reward == pytest.approx(d.score(torch.tensor([actions])).item(), abs=1e-7)


def test_the_wrapper_trains_the_prefix_discriminator_on_the_episodes() -> None:
    B = 8
    envs = SeqGANVectorEnv(B, **KWARGS)
    rng = torch.Generator().manual_seed(0)
    real = torch.randint(0, 3, (64, T), generator=rng)
    wrapped = DiscriminatorTrainingVectorWrapper(
        envs, real, lambda n: torch.randint(0, V, (n, T), generator=rng),
        DiscriminatorSchedule(every_episodes=B, repeats=1, n_negatives=B, epochs=1, batch_size=2 * B),
        rng=rng)
    wrapped.reset(seed=0)
    before = {k: v.clone() for k, v in envs.discriminator.state_dict().items()}
    for _ in range(T):
        wrapped.step(np.random.default_rng(0).integers(0, V, B))
    assert wrapped.updater.trainings == 1 and envs.discriminator.steps == 1
    assert any(not torch.equal(before[k], v) for k, v in envs.discriminator.state_dict().items())


def test_the_memory_check_counts_the_prefix_discriminator_not_a_search() -> None:
    """The dense mode has no Monte Carlo search: its estimate names the prefix discriminator's size."""
    dense = SeqGANConfig(reward_mode="dense", n_rollouts=10**9)._memory_terms(8, 4, 2, True, True, False)
    assert set(dense) == {"vocab_size", "discriminator_hidden_dim", "num_envs"}
    assert dense["num_envs"] == 4 * 8 * 2  # n_rollouts plays no part
    mc = SeqGANConfig(n_rollouts=16)._memory_terms(8, 4, 2, True, True, False)
    assert "num_envs * n_rollouts" in mc and "discriminator_filters" in mc
    with pytest.raises(ValueError, match="lower discriminator_hidden_dim"):
        gym.make("SeqGAN-Dense-v0", vocab_size=8, seq_len=4, discriminator_hidden_dim=10**6)
