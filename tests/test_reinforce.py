"""SeqGAN's REINFORCE agent (agents/reinforce.py) against SPEC 2.2: the policy-gradient loss is
-sum_{b,t} log G(y_bt | y_b<t) * Q_bt (a sum, each token weighted by its own Q_t), clipped to norm 5,
and the environment's rollout policy is kept in step with the generator (copy, or moving average)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import trainable
from gymnasium.vector import AutoresetMode

import seqgan_env  # noqa: F401  (registers SeqGAN-Tiny-v0)
import seqgan_env.core
from agents.reinforce import Episodes, ReinforceAgent, ReinforceConfig, policy_gradient_loss
from seqgan_env import SeqGANVectorEnv
from seqgan_env.sampling import sample_categorical
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig
from seqgan_env.wrappers import DiscriminatorSchedule, DiscriminatorTrainingVectorWrapper

V, T = 8, 4
PAD_EOS = V  # the padding id of the eos envs below


def make_generator(seed: int = 1) -> TokenLSTM:
    return TokenLSTM(TokenLSTMConfig(V, T, 8, 8), generator=torch.Generator().manual_seed(seed))


def random_episodes(B: int = 5, seed: int = 0) -> Episodes:
    g = torch.Generator().manual_seed(seed)
    sequences = torch.randint(0, V, (B, T), generator=g)
    rewards = torch.rand(B, T, generator=g)
    return Episodes(sequences, rewards)


def manual_token_log_probs(generator: TokenLSTM, sequences: torch.Tensor) -> torch.Tensor:
    """log G(y_t | y_<t) [B, T] from the generator's teacher-forced logits, by an explicit gather."""
    logp = F.log_softmax(generator(sequences), dim=-1)  # [B, T, V]
    return logp.gather(2, sequences.unsqueeze(2)).squeeze(2)


def manual_grads(generator: TokenLSTM, loss: torch.Tensor) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, trainable(generator), retain_graph=True)
    return [g.detach().clone() for g in grads]


def capture_step_grads(agent: ReinforceAgent) -> list[list[torch.Tensor]]:
    """Record the generator's gradients as the optimiser sees them (after clipping), at each step."""
    seen: list[list[torch.Tensor]] = []

    def hook(optimizer, args, kwargs):
        seen.append([p.grad.detach().clone() for p in trainable(agent.generator)])

    agent.optimizer.register_step_pre_hook(hook)
    return seen


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


# --- the loss --------------------------------------------------------------------------------------
def test_policy_gradient_loss_hand_computed_sum():
    log_probs = torch.tensor([[-0.5, -1.0, -2.0], [-0.1, -0.3, -1.5]], requires_grad=True)
    q = torch.tensor([[0.2, 0.4, 0.6], [1.0, 0.5, 0.25]])
    # -( -0.5*0.2 - 1.0*0.4 - 2.0*0.6 - 0.1*1.0 - 0.3*0.5 - 1.5*0.25 )
    #  = 0.1 + 0.4 + 1.2 + 0.1 + 0.15 + 0.375 = 2.325   (a sum; the mean would be 0.3875)
    loss = policy_gradient_loss(log_probs, q)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(2.325, abs=1e-6)
    loss.backward()
    torch.testing.assert_close(log_probs.grad, -q)


def test_update_gradient_weights_each_token_by_its_own_q():
    gen = make_generator()
    agent = ReinforceAgent(gen, config=ReinforceConfig(grad_clip=1e9))  # no clipping: raw gradient
    seen = capture_step_grads(agent)
    episodes = random_episodes()

    # Independent: -sum_{b,t} log G(y_bt|y_b<t) * Q_bt from the generator's own log-softmax.
    logp = manual_token_log_probs(gen, episodes.sequences)
    expected = manual_grads(gen, -(logp * episodes.rewards).sum())
    # The wrong rule (a return summed over later steps) must give a different gradient.
    returns = episodes.rewards.flip(1).cumsum(1).flip(1)
    wrong = manual_grads(gen, -(logp * returns).sum())
    expected_loss = -(logp * episodes.rewards).sum().item()

    loss = agent.update(episodes)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert len(seen) == 1
    for got, want in zip(seen[0], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(flat(seen[0]), flat(wrong), rtol=1e-3, atol=1e-5)


def test_update_loss_is_a_sum_over_the_batch():
    # Doubling the batch (the same episodes twice) doubles the loss and the raw gradient.
    episodes = random_episodes(B=3)
    twice = Episodes(episodes.sequences.repeat(2, 1), episodes.rewards.repeat(2, 1))
    a = ReinforceAgent(make_generator(), config=ReinforceConfig(grad_clip=1e9))
    b = ReinforceAgent(make_generator(), config=ReinforceConfig(grad_clip=1e9))
    ga, gb = capture_step_grads(a), capture_step_grads(b)
    la, lb = a.update(episodes), b.update(twice)
    assert lb == pytest.approx(2 * la, rel=1e-5)
    torch.testing.assert_close(flat(gb[0]), 2 * flat(ga[0]), rtol=1e-4, atol=1e-6)


def test_update_excludes_padding_positions():
    gen = make_generator()
    agent = ReinforceAgent(gen, config=ReinforceConfig(grad_clip=1e9))
    seen = capture_step_grads(agent)
    seqs = torch.tensor([[1, 2, 3, 4], [5, 6, V, V]])  # second row ended after 2 tokens
    q = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.0, 0.0]])
    logp = manual_token_log_probs(gen, torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]]))
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0]])
    expected = manual_grads(gen, -(logp * q * mask).sum())
    agent.update(Episodes(seqs, q), pad_id=V)
    torch.testing.assert_close(flat(seen[0]), flat(expected), rtol=1e-5, atol=1e-6)


def test_constant_reward_control_uses_the_constant():
    gen = make_generator()
    agent = ReinforceAgent(gen, config=ReinforceConfig(grad_clip=1e9, constant_reward=1.0))
    seen = capture_step_grads(agent)
    episodes = random_episodes()
    logp = manual_token_log_probs(gen, episodes.sequences)
    expected = manual_grads(gen, -logp.sum())  # every token weighted by 1, whatever the rewards
    with_q = manual_grads(gen, -(logp * episodes.rewards).sum())
    loss = agent.update(episodes)
    assert loss == pytest.approx(-logp.sum().item(), rel=1e-5)
    torch.testing.assert_close(flat(seen[0]), flat(expected), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(flat(seen[0]), flat(with_q), rtol=1e-3, atol=1e-5)


def test_gradient_norm_is_clipped_to_5():
    gen = make_generator()
    agent = ReinforceAgent(gen)  # default config: clip 5
    assert agent.config.grad_clip == 5.0
    seen = capture_step_grads(agent)
    episodes = random_episodes()
    episodes.rewards *= 1e4  # a huge Q
    logp = manual_token_log_probs(gen, episodes.sequences)
    raw = flat(manual_grads(gen, -(logp * episodes.rewards).sum()))
    assert raw.norm() > 50.0  # clipping must actually bite
    agent.update(episodes)
    clipped = flat(seen[0])
    assert clipped.norm().item() == pytest.approx(5.0, rel=1e-4)
    torch.testing.assert_close(clipped, raw * (5.0 / raw.norm()), rtol=1e-4, atol=1e-6)


def test_small_gradients_are_not_clipped():
    gen = make_generator()
    agent = ReinforceAgent(gen)
    seen = capture_step_grads(agent)
    episodes = random_episodes()
    episodes.rewards *= 1e-3
    logp = manual_token_log_probs(gen, episodes.sequences)
    raw = flat(manual_grads(gen, -(logp * episodes.rewards).sum()))
    assert raw.norm() < 5.0
    agent.update(episodes)
    torch.testing.assert_close(flat(seen[0]), raw, rtol=1e-5, atol=1e-7)


def test_update_takes_one_adam_step_at_lr_001():
    # Adam's first step moves every parameter with a non-zero gradient by lr * sign(-grad), |.| = 0.01.
    gen = make_generator()
    agent = ReinforceAgent(gen)
    seen = capture_step_grads(agent)
    before = flat([p.detach().clone() for p in trainable(gen)])
    agent.update(random_episodes())
    change = flat([p.detach() for p in trainable(gen)]) - before
    grad = flat(seen[0])
    big = grad.abs() > 1e-4
    assert big.sum() > 100
    torch.testing.assert_close(change[big], -0.01 * grad[big].sign(), rtol=1e-2, atol=1e-4)


# --- the rollout policy ------------------------------------------------------------------------------
@pytest.fixture
def tiny_envs():
    envs = gym.make_vec("SeqGAN-Tiny-v0", num_envs=3)
    yield envs
    envs.close()


def params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_rollout_policy_is_copied_after_update(tiny_envs):
    gen = make_generator(seed=5)
    rollout = tiny_envs.unwrapped.rollout_policy
    assert not torch.equal(flat(params(rollout)), flat(params(gen)))
    agent = ReinforceAgent(gen, rollout)
    with torch.no_grad():  # pull them apart again, so that only update's sync can reunite them
        for p in rollout.parameters():
            p.add_(1.0)
    before = params(gen)
    agent.update(random_episodes())
    assert not torch.equal(flat(params(gen)), flat(before))  # the generator moved
    for beta, theta in zip(rollout.parameters(), gen.parameters(), strict=True):
        torch.testing.assert_close(beta, theta, rtol=0, atol=0)
    assert tiny_envs.unwrapped.rollout_policy is rollout


def test_rollout_policy_moving_average_rate_08(tiny_envs):
    gen = make_generator(seed=5)
    rollout = tiny_envs.unwrapped.rollout_policy
    agent = ReinforceAgent(gen, rollout, ReinforceConfig(rollout_update="ema", rollout_rate=0.8))
    with torch.no_grad():
        for i, p in enumerate(rollout.parameters()):
            p.add_(0.3 + 0.1 * i)
    beta_old = params(rollout)
    agent.update(random_episodes())
    theta = params(gen)
    for b_new, b_old, th in zip(params(rollout), beta_old, theta, strict=True):
        torch.testing.assert_close(b_new, 0.8 * b_old + 0.2 * th, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(b_new, 0.2 * b_old + 0.8 * th, rtol=1e-3, atol=1e-4)


def test_default_config_is_the_reference_code():
    c = ReinforceConfig()
    assert (c.lr, c.grad_clip, c.rollout_update, c.rollout_rate, c.constant_reward) == (
        0.01, 5.0, "copy", 0.8, None,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rollout_update": "polyak"},
        {"rollout_update": ""},
        {"rollout_rate": 1.0},
        {"rollout_rate": -0.1},
        {"rollout_rate": 1.5},
        {"lr": 0.0},
        {"grad_clip": 0.0},
        {"grad_clip": -1.0},
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        ReinforceConfig(**kwargs)


# --- collect ---------------------------------------------------------------------------------------
class Recorder(gym.vector.VectorWrapper):
    """Records what the vector env hands out at every step (and the observations apart)."""

    def __init__(self, env):
        super().__init__(env)
        self.steps: list[tuple[np.ndarray, np.ndarray, dict]] = []
        self.observations: list[np.ndarray] = []

    def step(self, actions):
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        self.steps.append((rewards.copy(), terminated.copy(), {k: np.copy(v) for k, v in infos.items()}))
        self.observations.append(obs.copy())
        return obs, rewards, terminated, truncated, infos


def test_collect_returns_the_envs_sequences_and_per_step_rewards(tiny_envs):
    envs = Recorder(tiny_envs)
    rng = torch.Generator().manual_seed(0)
    agent = ReinforceAgent(make_generator(), envs.unwrapped.rollout_policy, rng=rng)
    episodes = agent.collect(envs)
    B = envs.num_envs
    assert episodes.sequences.shape == (B, T) and episodes.rewards.shape == (B, T)
    assert len(envs.steps) == T
    rewards = np.stack([r for r, _, _ in envs.steps], axis=1)  # [B, T]
    np.testing.assert_allclose(episodes.rewards.numpy(), rewards, rtol=0, atol=1e-7)
    for t, (r, terminated, infos) in enumerate(envs.steps):
        assert infos["_q"].all()
        np.testing.assert_allclose(r, infos["q"], rtol=0, atol=1e-7)  # mc mode: r_t = Q_t
        assert terminated.all() == (t == T - 1)
    finished = envs.steps[-1][2]
    assert finished["_sequence"].all()
    np.testing.assert_array_equal(episodes.sequences.numpy(), finished["sequence"])
    assert ((episodes.rewards >= 0) & (episodes.rewards <= 1)).all()


def test_collect_samples_from_the_generator(tiny_envs):
    gen = make_generator()
    with torch.no_grad():  # make token 3 all but certain
        gen.output.bias.zero_()
        gen.output.bias[3] = 50.0
    agent = ReinforceAgent(gen, tiny_envs.unwrapped.rollout_policy)
    episodes = agent.collect(tiny_envs)
    assert (episodes.sequences == 3).all()


# --- collect with an end-of-sequence id: one episode per env, nothing more ------------------------------
EOS, T_EOS = 1, 6


def eos_biased(seed: int) -> TokenLSTM:
    """A token LSTM (V 8, T 6) that picks the end-of-sequence id about a third of the time."""
    model = TokenLSTM(TokenLSTMConfig(V, T_EOS, 8, 8), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        model.output.bias[EOS] += 1.3
    return model


def eos_envs(num_envs: int, **kwargs) -> DiscriminatorTrainingVectorWrapper:
    """The tiny env with T 6 and eos 1, under the discriminator-training wrapper (never training)."""
    venv = SeqGANVectorEnv(
        num_envs, vocab_size=V, seq_len=T_EOS, eos_id=EOS, n_rollouts=4, rollout_policy=eos_biased(2),
        discriminator_embed_dim=8, discriminator_filters=((1, 8), (2, 8)), oracle_seed=None, **kwargs,
    )  # fmt: skip
    real = torch.zeros(4, T_EOS, dtype=torch.long)
    schedule = DiscriminatorSchedule(None, 1, 16, 1, 8)
    return DiscriminatorTrainingVectorWrapper(venv, real, lambda n: real[:1].repeat(n, 1), schedule)


def count_searched_rows(monkeypatch) -> list[int]:
    """The number of prefix rows of every Monte Carlo search the env runs."""
    rows: list[int] = []
    original = seqgan_env.core.monte_carlo_q

    def counting(rollout_policy, scorer, prefixes, *args, **kwargs):
        rows.append(prefixes.shape[0])
        return original(rollout_policy, scorer, prefixes, *args, **kwargs)

    monkeypatch.setattr(seqgan_env.core, "monte_carlo_q", counting)
    return rows


@pytest.mark.parametrize("mode", [None, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED])  # None: the default
def test_collect_with_eos_runs_exactly_one_episode_per_env(monkeypatch, mode):
    B = 16
    wrapper = eos_envs(B) if mode is None else eos_envs(B, autoreset_mode=mode)
    envs = Recorder(wrapper)
    searched = count_searched_rows(monkeypatch)
    agent = ReinforceAgent(eos_biased(1), rng=torch.Generator().manual_seed(0))
    episodes = agent.collect(envs)

    lengths = (episodes.sequences != PAD_EOS).sum(1)
    assert (lengths < T_EOS).sum() >= B // 2 and lengths.max() > 2  # eos ends many episodes, not all at once
    assert wrapper.updater.episodes_seen == B  # the wrapper recorded B negatives, the generator's samples
    recorded = torch.cat(wrapper.updater.finished)
    assert sorted(recorded.tolist()) == sorted(episodes.sequences.tolist())
    assert sum(searched) == int((lengths - 1).sum())  # only live prefixes are searched, never the last

    terminated = np.stack([term for _, term, _ in envs.steps])  # [steps, B]
    assert (terminated.sum(0) == 1).all()  # each env terminated exactly once
    rewards = np.stack([r for r, _, _ in envs.steps], axis=1)  # [B, steps]
    observations = np.stack(envs.observations, axis=1)  # [B, steps, T]
    for b, length in enumerate(lengths.tolist()):
        assert (rewards[b, length:] == 0).all()  # nothing after the end
        assert (observations[b, length - 1 :] == episodes.sequences[b].numpy()).all()  # no new episode
        assert (episodes.rewards[b, length:] == 0).all() and (episodes.rewards[b, :length] > 0).all()
    assert wrapper.unwrapped.metadata["autoreset_mode"] is (mode or AutoresetMode.NEXT_STEP)  # pause over

    agent.collect(envs)  # a second batch: B more, whatever the first left behind
    assert wrapper.updater.episodes_seen == 2 * B


def test_collect_without_eos_is_a_plain_lockstep_run(tiny_envs):
    """Fixed-length episodes end together: the pause changes nothing, and collect's numbers are those
    of stepping the env by hand with the same generator draws."""
    rng_state = torch.Generator().manual_seed(3).get_state()
    agent = ReinforceAgent(make_generator(), rng=torch.Generator().manual_seed(3))
    tiny_envs.reset(seed=5)  # collect's own reset() keeps the env's seeded RNG
    episodes = agent.collect(tiny_envs)
    replay = gym.make_vec("SeqGAN-Tiny-v0", num_envs=3)
    replay.reset(seed=5)
    rng = torch.Generator()
    rng.set_state(rng_state)
    logits, state = agent.generator.start(3)
    rewards = []
    with torch.no_grad():
        for t in range(T):
            actions = sample_categorical(logits, rng)
            _, reward, terminated, _, infos = replay.step(actions.numpy())
            rewards.append(reward)
            logits, state = agent.generator.step(actions, state)
    assert terminated.all()
    np.testing.assert_array_equal(episodes.sequences.numpy(), infos["sequence"])
    np.testing.assert_array_equal(episodes.rewards.numpy(), np.stack(rewards, axis=1))
