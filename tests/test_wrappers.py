"""The discriminator-updating wrappers (seqgan_env/wrappers.py) against SPEC 4: they watch finished
episodes and, every k episodes or on demand, train the environment's discriminator `repeats` times on
real sequences against as many negatives (the finished episodes first, topped up by the sampler)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import seqgan_env  # noqa: F401  (registers SeqGAN-Tiny-v0)
from seqgan_env.discriminator import Discriminator
from seqgan_env.wrappers import (
    DiscriminatorSchedule,
    DiscriminatorTrainingVectorWrapper,
    DiscriminatorTrainingWrapper,
    DiscriminatorUpdater,
)

V, T = 8, 4
PAD_ID = V
FAKE_TOKEN = 7  # what the sampler stub emits; episodes below use tokens 0..6


class SamplerStub:
    """Records each n it is asked for and returns n known sequences (all FAKE_TOKEN)."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def __call__(self, n: int) -> torch.Tensor:
        self.asked.append(n)
        return torch.full((n, T), FAKE_TOKEN, dtype=torch.long)


@pytest.fixture
def fits(monkeypatch):
    """Every Discriminator.fit call (real training still runs): (real, fake, epochs, batch_size, loss)."""
    calls: list[dict] = []
    original = Discriminator.fit

    def recording_fit(self, optimizer, real, fake, epochs=3, batch_size=64, rng=None):
        loss = original(self, optimizer, real, fake, epochs, batch_size, rng)
        calls.append(
            {"disc": self, "real": real.clone(), "fake": fake.clone(), "epochs": epochs,
             "batch_size": batch_size, "loss": loss}
        )  # fmt: skip
        return loss

    monkeypatch.setattr(Discriminator, "fit", recording_fit)
    return calls


def all_sequences() -> torch.Tensor:
    return torch.cartesian_prod(*[torch.arange(V)] * T)  # [V^T, T], all distinct


def distinct_real(n: int, seed: int = 0) -> torch.Tensor:
    everything = all_sequences()
    return everything[torch.randperm(len(everything), generator=torch.Generator().manual_seed(seed))[:n]]


def episode_tokens(e: int) -> list[int]:
    """The actions of episode e: distinct per episode, never FAKE_TOKEN."""
    return [(e + 2 * t) % 7 for t in range(T)]


def run_single(env: gym.Env, n_episodes: int, first: int = 0) -> list[list[int]]:
    """Play episodes first..first+n-1 with known tokens; returns the finished sequences it saw."""
    seen = []
    for e in range(first, first + n_episodes):
        env.reset(seed=e)
        for t, a in enumerate(episode_tokens(e)):
            _, _, terminated, truncated, info = env.step(a)
            assert not truncated
            assert terminated == (t == T - 1)
        seen.append(info["sequence"].tolist())
    return seen


def single_wrapper(schedule, real=None, sampler=None, **make_kwargs):
    env = gym.make("SeqGAN-Tiny-v0", reward_mode="terminal", **make_kwargs)
    real = distinct_real(32) if real is None else real
    sampler = SamplerStub() if sampler is None else sampler
    return DiscriminatorTrainingWrapper(env, real, sampler, schedule, rng=torch.Generator().manual_seed(0))


def vector_wrapper(num_envs, schedule, real=None, sampler=None):
    envs = gym.make_vec("SeqGAN-Tiny-v0", num_envs=num_envs, reward_mode="terminal")
    real = distinct_real(32) if real is None else real
    sampler = SamplerStub() if sampler is None else sampler
    rng = torch.Generator().manual_seed(0)
    return DiscriminatorTrainingVectorWrapper(envs, real, sampler, schedule, rng=rng)


def tiny_schedule(**kwargs) -> DiscriminatorSchedule:
    return DiscriminatorSchedule(**{"repeats": 2, "n_negatives": 8, "epochs": 1, "batch_size": 8, **kwargs})


def count_trainings(updater: DiscriminatorUpdater, monkeypatch) -> list[int]:
    """episodes_seen at each call of the updater's train()."""
    at: list[int] = []
    original = updater.train

    def train():
        at.append(updater.episodes_seen)
        return original()

    monkeypatch.setattr(updater, "train", train)
    return at


# --- the training itself ---------------------------------------------------------------------------
def test_training_lowers_the_discriminator_loss_on_separable_data(fits):
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 4, (64, T), generator=g)  # tokens 0..3

    def sampler(n):
        return torch.randint(4, 8, (n, T), generator=g)  # tokens 4..7

    wrapper = single_wrapper(
        DiscriminatorSchedule(repeats=4, n_negatives=64, epochs=3, batch_size=16), real, sampler
    )
    disc = wrapper.env.unwrapped.discriminator
    assert wrapper.updater.discriminator is disc  # it trains the env's own discriminator
    real_test = torch.randint(0, 4, (128, T), generator=g)
    fake_test = torch.randint(4, 8, (128, T), generator=g)
    test = torch.cat([real_test, fake_test])
    labels = torch.cat([torch.ones(128), torch.zeros(128)]).long()

    def eval_loss():
        disc.eval()
        with torch.no_grad():
            return disc.loss(test, labels).item()

    def margin():
        return (disc.score(real_test).mean() - disc.score(fake_test).mean()).item()

    before, margin_before = eval_loss(), margin()
    loss = wrapper.train_discriminator()
    after, margin_after = eval_loss(), margin()
    assert after < before - 0.02
    assert margin_after > margin_before + 0.02
    assert len(fits) == 4 and all(c["disc"] is disc for c in fits)
    assert loss == pytest.approx(sum(c["loss"] for c in fits) / 4)
    assert wrapper.updater.last_loss == loss
    assert not disc.training  # left in eval mode for the env's rewards


# --- the schedule ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("every", "n_episodes"), [(1, 4), (3, 9), (3, 11), (4, 8)])
def test_single_wrapper_trains_every_k_episodes(fits, monkeypatch, every, n_episodes):
    schedule = tiny_schedule(every_episodes=every, repeats=2)
    wrapper = single_wrapper(schedule)
    at = count_trainings(wrapper.updater, monkeypatch)
    run_single(wrapper, n_episodes)
    assert at == [every * (i + 1) for i in range(n_episodes // every)]
    assert wrapper.updater.trainings == n_episodes // every
    assert len(fits) == 2 * (n_episodes // every)  # `repeats` fits per training
    assert all(c["epochs"] == 1 and c["batch_size"] == 8 for c in fits)


@pytest.mark.parametrize(("num_envs", "every", "n_steps"), [(2, 2, 12), (2, 4, 25), (3, 6, 20), (4, 4, 10)])
def test_vector_wrapper_trains_every_k_episodes(fits, monkeypatch, num_envs, every, n_steps):
    wrapper = vector_wrapper(num_envs, tiny_schedule(every_episodes=every, repeats=3))
    at = count_trainings(wrapper.updater, monkeypatch)
    wrapper.reset(seed=0)
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(n_steps):  # stepping straight through the NEXT_STEP autoresets
        _, _, terminated, _, _ = wrapper.step(rng.integers(0, 7, num_envs))
        finished += int(terminated.sum())
    assert finished >= every  # the schedule had something to do
    assert wrapper.updater.episodes_seen == finished
    assert at == [every * (i + 1) for i in range(finished // every)]
    assert len(fits) == 3 * (finished // every)


def test_on_demand_only_when_every_episodes_is_none(fits, monkeypatch):
    wrapper = single_wrapper(tiny_schedule(every_episodes=None, repeats=3))
    run_single(wrapper, 10)
    assert fits == [] and wrapper.updater.trainings == 0
    loss = wrapper.train_discriminator()
    assert len(fits) == 3 and wrapper.updater.trainings == 1
    assert loss == pytest.approx(sum(c["loss"] for c in fits) / 3)

    vec = vector_wrapper(2, tiny_schedule(every_episodes=None, repeats=3))
    vec.reset(seed=0)
    for _ in range(3 * (T + 1)):
        vec.step(np.ones(2, dtype=np.int64))
    assert vec.updater.episodes_seen == 6
    assert len(fits) == 3 and vec.updater.trainings == 0
    vec.train_discriminator()
    assert len(fits) == 6 and vec.updater.trainings == 1


def test_schedule_counts_episodes_even_when_every_exceeds_n_negatives(fits, monkeypatch):
    wrapper = single_wrapper(tiny_schedule(every_episodes=5, n_negatives=2, repeats=1))
    at = count_trainings(wrapper.updater, monkeypatch)
    run_single(wrapper, 20)
    assert at == [5, 10, 15, 20]


# --- the negatives and the real data ---------------------------------------------------------------
def test_negatives_are_the_finished_episodes_then_sampler_output(fits):
    sampler = SamplerStub()
    real = distinct_real(50)
    wrapper = single_wrapper(tiny_schedule(every_episodes=None, n_negatives=10, repeats=2), real, sampler)
    episodes = run_single(wrapper, 3)
    assert episodes == [episode_tokens(e) for e in range(3)]
    wrapper.train_discriminator()

    assert sampler.asked == [7, 10]  # topped up to 10, then 10 fresh ones for the second repeat
    first, second = fits[0]["fake"], fits[1]["fake"]
    assert first.tolist() == episodes + [[FAKE_TOKEN] * T] * 7
    assert second.tolist() == [[FAKE_TOKEN] * T] * 10
    real_rows = {tuple(r) for r in real.tolist()}
    for call in fits:
        assert len(call["real"]) == 10  # real data subsampled to the negatives' count
        rows = [tuple(r) for r in call["real"].tolist()]
        assert len(set(rows)) == 10 and set(rows) <= real_rows  # without replacement, from the data

    # The recorded episodes were used up: the next training is all sampler output.
    wrapper.train_discriminator()
    assert sampler.asked == [7, 10, 10, 10]
    assert fits[2]["fake"].tolist() == [[FAKE_TOKEN] * T] * 10


def test_only_the_newest_episodes_serve_when_there_are_more_than_n_negatives(fits):
    sampler = SamplerStub()
    wrapper = single_wrapper(tiny_schedule(every_episodes=None, n_negatives=4, repeats=2), sampler=sampler)
    episodes = run_single(wrapper, 7)
    wrapper.train_discriminator()
    assert fits[0]["fake"].tolist() == episodes[-4:]
    assert sampler.asked == [4]  # nothing to top up in the first repeat


def test_scheduled_training_uses_the_episodes_of_its_period(fits):
    sampler = SamplerStub()
    wrapper = single_wrapper(tiny_schedule(every_episodes=2, n_negatives=5, repeats=1), sampler=sampler)
    episodes = run_single(wrapper, 4)
    assert [c["fake"].tolist() for c in fits] == [
        episodes[0:2] + [[FAKE_TOKEN] * T] * 3,
        episodes[2:4] + [[FAKE_TOKEN] * T] * 3,
    ]
    assert sampler.asked == [3, 3]


def test_vector_wrapper_records_the_finished_sequences(fits):
    sampler = SamplerStub()
    wrapper = vector_wrapper(3, tiny_schedule(every_episodes=None, n_negatives=8, repeats=1), sampler=sampler)
    wrapper.reset(seed=0)
    actions = np.array([[0, 1, 2], [3, 4, 5], [6, 0, 1], [2, 3, 4]])  # [T, B]
    for t in range(T):
        _, _, terminated, _, infos = wrapper.step(actions[t])
    assert terminated.all()
    np.testing.assert_array_equal(infos["sequence"], actions.T)
    wrapper.step(actions[0])  # the autoreset step: no new episode
    wrapper.train_discriminator()
    assert fits[0]["fake"].tolist() == actions.T.tolist() + [[FAKE_TOKEN] * T] * 5
    assert sampler.asked == [5]


def test_all_real_data_is_used_when_there_is_less_than_negatives(fits):
    real = distinct_real(5)
    wrapper = single_wrapper(tiny_schedule(every_episodes=None, n_negatives=10, repeats=1), real)
    wrapper.train_discriminator()
    assert fits[0]["real"].tolist() == real.tolist()
    assert len(fits[0]["fake"]) == 10


# --- validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"every_episodes": 0},
        {"every_episodes": -3},
        {"repeats": 0},
        {"n_negatives": 0},
        {"epochs": 0},
        {"batch_size": 0},
    ],
)
def test_schedule_validation(kwargs):
    with pytest.raises(ValueError):
        DiscriminatorSchedule(**kwargs)


def test_paper_schedule_defaults():
    s = DiscriminatorSchedule()
    assert (s.repeats, s.n_negatives, s.epochs, s.batch_size) == (5, 9984, 3, 64)


@pytest.mark.parametrize("real", [torch.empty(0, T, dtype=torch.long), torch.arange(T)])
def test_empty_or_malformed_real_data_raises(real):
    env = gym.make("SeqGAN-Tiny-v0", reward_mode="terminal")
    with pytest.raises(ValueError):
        DiscriminatorTrainingWrapper(env, real, SamplerStub(), tiny_schedule())
    envs = gym.make_vec("SeqGAN-Tiny-v0", num_envs=2, reward_mode="terminal")
    with pytest.raises(ValueError):
        DiscriminatorTrainingVectorWrapper(envs, real, SamplerStub(), tiny_schedule())


def test_an_env_without_a_discriminator_is_refused():
    cartpole = gym.make("CartPole-v1")
    with pytest.raises(TypeError, match=r"wrap a SeqGAN env .*got CartPoleEnv, which has no Discriminator"):
        DiscriminatorTrainingWrapper(cartpole, distinct_real(4), SamplerStub(), tiny_schedule())


def test_vector_step_finishing_several_periods_trains_once_per_period(fits, monkeypatch):
    """4 envs finishing together with every_episodes=2: two trainings, none lost."""
    vec = DiscriminatorTrainingVectorWrapper(
        gym.make_vec("SeqGAN-Tiny-v0", num_envs=4),
        distinct_real(20),
        SamplerStub(),
        tiny_schedule(every_episodes=2, repeats=1),
    )
    vec.reset(seed=0)
    for _ in range(T):
        vec.step(np.ones(4, dtype=np.int64))
    assert vec.updater.episodes_seen == 4
    assert vec.updater.trainings == 2 and len(fits) == 2


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_vector_wrapper_records_each_episode_once_in_every_autoreset_mode(mode):
    """Whatever the env's autoreset mode, the wrapper records each finished episode once: the final
    observation (SAME_STEP: `infos["final_obs"]`) of every env that terminated."""
    envs = gym.make_vec("SeqGAN-Tiny-v0", num_envs=3, reward_mode="terminal", eos_id=3, autoreset_mode=mode)
    schedule = tiny_schedule(n_negatives=1000)  # keeps every episode
    wrapper = DiscriminatorTrainingVectorWrapper(envs, distinct_real(32), SamplerStub(), schedule)
    wrapper.reset(seed=0)
    rng = np.random.default_rng(0)
    finished: list[list[int]] = []
    for _ in range(30):
        actions = np.where(rng.random(3) < 0.3, 3, rng.integers(0, V, size=3))
        obs, _, terminated, _, infos = wrapper.step(actions)
        if terminated.any():
            same_step = mode == AutoresetMode.SAME_STEP
            finished += (np.stack(infos["final_obs"][terminated]) if same_step else obs[terminated]).tolist()
        if mode == AutoresetMode.DISABLED and terminated.any():
            wrapper.reset(options={"reset_mask": terminated})
    assert len(finished) >= 10 and any(PAD_ID in f for f in finished)  # some ended at eos
    assert wrapper.updater.episodes_seen == len(finished)
    assert torch.cat(wrapper.updater.finished).tolist() == finished


def test_vector_wrapper_under_disabled_autoreset_records_nothing_twice():
    envs = gym.make_vec("SeqGAN-Tiny-v0", num_envs=2, reward_mode="terminal", eos_id=3,
                        autoreset_mode="Disabled")  # fmt: skip
    wrapper = DiscriminatorTrainingVectorWrapper(envs, distinct_real(32), SamplerStub(), tiny_schedule())
    wrapper.reset(seed=0)
    for actions in ([3, 1], [1, 1], [1, 1], [1, 1], [1, 1], [1, 1]):  # env 0 ends at once, env 1 at T
        wrapper.step(np.array(actions))
    assert torch.cat(wrapper.updater.finished).tolist() == [[3, PAD_ID, PAD_ID, PAD_ID], [1, 1, 1, 1]]
