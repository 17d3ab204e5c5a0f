"""Baselines, discounting and normalisation of the REINFORCE agent (agents/reinforce.py,
`ReinforceConfig.baseline`, `.gamma`, `.normalize`): each token's weight is the advantage R_bt - b_bt of
the discounted return R (Q itself at gamma 0; baseline: batch mean at step t, leave-one-out mean, a
learned value of the prefix, or ScratchGAN's moving average of the batch-mean return), optionally
divided by its std over live positions; the loss stays the paper's sum; padding after an episode's end
stays out of everything; the default (gamma 0, "none", no normalisation) is the paper's update,
untouched."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import trainable

from agents.reinforce import (
    Episodes,
    ReinforceAgent,
    ReinforceConfig,
    discounted_returns,
    moving_average_baseline,
    policy_gradient_loss,
)
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig

V, T = 8, 2
PAD = V
NO_CLIP = 1e9  # the hand formulas compare raw gradients

Q = torch.tensor([[1.0, 0.5], [0.0, 0.25], [0.5, 0.75]])
SEQUENCES = torch.tensor([[1, 5], [3, 2], [6, 0]])
# By hand, all positions live:
ADV_MEAN = torch.tensor([[0.5, 0.0], [-0.5, -0.25], [0.0, 0.25]])  # b_t = (0.5, 0.5)
ADV_LOO = torch.tensor([[0.75, 0.0], [-0.75, -0.375], [0.0, 0.375]])  # b_bt = mean of the other two
# Episode 1 ended at its first token (eos 3): its step 2 is padding, and its Q there is junk that
# must not count. Step 2's baselines then come from episodes 0 and 2 only.
Q_PADDED = torch.tensor([[1.0, 0.5], [0.0, 99.0], [0.5, 0.75]])
SEQUENCES_PADDED = torch.tensor([[1, 5], [3, PAD], [6, 0]])
ADV_MEAN_PADDED = torch.tensor([[0.5, -0.125], [-0.5, 0.0], [0.0, 0.125]])
ADV_LOO_PADDED = torch.tensor([[0.75, -0.25], [-0.75, 0.0], [0.0, 0.25]])


def make_generator(seed: int = 1) -> TokenLSTM:
    return TokenLSTM(TokenLSTMConfig(V, T, 8, 8), rng=torch.Generator().manual_seed(seed))


def make_agent(**config) -> ReinforceAgent:
    return ReinforceAgent(make_generator(), config=ReinforceConfig(**{"grad_clip": NO_CLIP, **config}))


def manual_log_probs(generator: TokenLSTM, sequences: torch.Tensor) -> torch.Tensor:
    """log G(y_t | y_<t) [B, T] by an explicit gather, 0 at padding."""
    live = sequences != PAD
    tokens = sequences.masked_fill(~live, 0)
    logp = F.log_softmax(generator(tokens), dim=-1).gather(2, tokens.unsqueeze(2)).squeeze(2)
    return logp * live


def hand_grads(generator: TokenLSTM, sequences: torch.Tensor, weights: torch.Tensor) -> list[torch.Tensor]:
    """Gradient of -sum_{b,t} log G(y_bt | y_b<t) * weight_bt."""
    loss = -(manual_log_probs(generator, sequences) * weights).sum()
    return [g.detach().clone() for g in torch.autograd.grad(loss, trainable(generator))]


def update_grads(agent: ReinforceAgent, episodes: Episodes) -> list[torch.Tensor]:
    """The gradients the agent's update hands its optimiser."""
    seen: list[list[torch.Tensor]] = []
    handle = agent.optimizer.register_step_pre_hook(
        lambda *args: seen.append([p.grad.detach().clone() for p in trainable(agent.generator)])
    )
    agent.update(episodes)
    handle.remove()
    return seen[0]


def assert_grads_close(actual, expected, **tol) -> None:
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, **tol)


@pytest.mark.parametrize(
    ("baseline", "sequences", "q", "pad_id", "adv"),
    [
        ("none", SEQUENCES, Q, None, Q),
        ("mean", SEQUENCES, Q, None, ADV_MEAN),
        ("loo", SEQUENCES, Q, None, ADV_LOO),
        ("none", SEQUENCES_PADDED, Q_PADDED, PAD, Q_PADDED * (SEQUENCES_PADDED != PAD)),
        ("mean", SEQUENCES_PADDED, Q_PADDED, PAD, ADV_MEAN_PADDED),
        ("loo", SEQUENCES_PADDED, Q_PADDED, PAD, ADV_LOO_PADDED),
    ],
)
def test_gradient_equals_the_hand_computed_one(baseline, sequences, q, pad_id, adv):
    agent = make_agent(baseline=baseline)
    expected = hand_grads(agent.generator, sequences, adv)
    assert_grads_close(update_grads(agent, Episodes(sequences, q, pad_id)), expected)


@pytest.mark.parametrize("padded", [False, True])
def test_default_is_the_paper_update_exactly(padded):
    sequences, q, pad_id = (SEQUENCES_PADDED, Q_PADDED, PAD) if padded else (SEQUENCES, Q, None)
    assert ReinforceConfig().baseline == "none" and ReinforceConfig().normalize is False
    agent, explicit = make_agent(), make_agent(baseline="none", normalize=False)
    log_probs = agent.generator.log_probs(sequences, pad_id=pad_id)
    loss = policy_gradient_loss(log_probs, q)
    expected = torch.autograd.grad(loss, trainable(agent.generator))
    episodes = Episodes(sequences, q, pad_id)
    for a in (agent, explicit):
        for got, want in zip(update_grads(a, episodes), expected, strict=True):
            assert torch.equal(got, want)
    for p, r in zip(agent.generator.parameters(), explicit.generator.parameters(), strict=True):
        assert torch.equal(p, r)


@pytest.mark.parametrize("baseline", ["mean", "loo"])
@pytest.mark.parametrize("padded", [False, True])
def test_batch_baselines_give_no_update_for_a_constant_q(baseline, padded):
    sequences = SEQUENCES_PADDED if padded else SEQUENCES
    agent = make_agent(baseline=baseline)
    before = [p.detach().clone() for p in agent.generator.parameters()]
    grads = update_grads(agent, Episodes(sequences, torch.full((3, T), 0.7), PAD if padded else None))
    for g in grads:
        torch.testing.assert_close(g, torch.zeros_like(g), atol=1e-6, rtol=0)
    for p, b in zip(agent.generator.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), b, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("baseline", "adv"), [("none", Q_PADDED * (SEQUENCES_PADDED != PAD)), ("mean", ADV_MEAN_PADDED),
                          ("loo", ADV_LOO_PADDED)],
)  # fmt: skip
def test_normalize_divides_by_the_std_over_live_positions(baseline, adv):
    live = SEQUENCES_PADDED != PAD
    std = adv[live].std(correction=0)
    agent = make_agent(baseline=baseline, normalize=True)
    expected = hand_grads(agent.generator, SEQUENCES_PADDED, adv / (std + 1e-8))
    assert_grads_close(update_grads(agent, Episodes(SEQUENCES_PADDED, Q_PADDED, PAD)), expected)
    # Scaling Q leaves the normalised update unchanged (up to the 1e-8).
    scaled = make_agent(baseline=baseline, normalize=True)
    scaled_q = Q_PADDED * 10
    assert_grads_close(update_grads(scaled, Episodes(SEQUENCES_PADDED, scaled_q, PAD)), expected)


def manual_prefix_hidden(generator: TokenLSTM, sequences: torch.Tensor) -> torch.Tensor:
    """The hidden state that chooses y_t, by stepping the generator token by token: [B, T, H]."""
    hs = []
    with torch.no_grad():
        _, (h, c) = generator.start(len(sequences))
        for t in range(sequences.shape[1]):
            hs.append(h)
            _, (h, c) = generator.step(sequences[:, t].masked_fill(sequences[:, t] == PAD, 0), (h, c))
    return torch.stack(hs, 1)


def test_value_baseline_gradient_equals_the_hand_computed_one():
    agent = make_agent(baseline="value", value_lr=0.05)
    episodes = Episodes(SEQUENCES_PADDED, Q_PADDED, PAD)
    live = SEQUENCES_PADDED != PAD
    # The head starts at zero: the first update is "none"'s.
    expected = hand_grads(agent.generator, SEQUENCES_PADDED, Q_PADDED * live)
    hidden = manual_prefix_hidden(agent.generator, SEQUENCES_PADDED)
    assert_grads_close(update_grads(agent, episodes), expected)
    # ... and the head took one Adam step on the MSE to Q over live positions.
    head = torch.nn.Linear(agent.generator.config.hidden_dim, 1)
    torch.nn.init.zeros_(head.weight), torch.nn.init.zeros_(head.bias)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    ((head(hidden).squeeze(-1) - Q_PADDED)[live] ** 2).mean().backward()
    optimizer.step()
    assert agent.value is not None
    torch.testing.assert_close(agent.value.linear.weight, head.weight)
    torch.testing.assert_close(agent.value.linear.bias, head.bias)
    # The second update subtracts V(prefix) read before this update's fit, at live positions only.
    hidden = manual_prefix_hidden(agent.generator, SEQUENCES_PADDED)
    with torch.no_grad():
        b = agent.value(hidden)
    expected = hand_grads(agent.generator, SEQUENCES_PADDED, (Q_PADDED - b) * live)
    assert_grads_close(update_grads(agent, episodes), expected)


def test_value_baseline_learns_q():
    agent = make_agent(baseline="value", value_lr=0.05, lr=1e-6)
    episodes = Episodes(SEQUENCES, Q, None)
    agent.update(episodes)
    first = agent.value_loss
    for _ in range(200):
        agent.update(episodes)
    # At step 1 every prefix is [start]: the best V there is the mean Q, 0.5, leaving an MSE of 1/12.
    assert first is not None and agent.value_loss is not None and agent.value_loss < 0.1 < first
    assert agent.value is not None
    hidden = manual_prefix_hidden(agent.generator, SEQUENCES)
    with torch.no_grad():
        assert agent.value(hidden)[:, 0].mean().item() == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"baseline": "median"},
         r"baseline must be one of \('none', 'mean', 'loo', 'value', 'ema'\), got 'median'"),
        ({"baseline": None}, r"baseline must be one of"),
        ({"normalize": 1}, r"normalize must be a bool"),
        ({"value_lr": 0.0}, r"value_lr must be > 0"),
        ({"gamma": 1.5}, r"gamma must lie in \[0, 1\], got 1.5"),
        ({"gamma": -0.1}, r"gamma must lie in \[0, 1\]"),
        ({"baseline_decay": 1.0}, r"baseline_decay must lie in \[0, 1\)"),
        ({"betas": (0.5, 1.0)}, r"betas must be two numbers in \[0, 1\)"),
    ],
)
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReinforceConfig(**kwargs)


# --- discounting and ScratchGAN's moving-average baseline ------------------------------------------
GAMMA = 0.5
# R_bt = r_bt + gamma * R_b,t+1 by hand (T = 2):
RETURNS = torch.tensor([[1.25, 0.5], [0.125, 0.25], [0.875, 0.75]])
# Episode 1 ended after its first token: its junk reward at step 2 counts nowhere.
RETURNS_PADDED = torch.tensor([[1.25, 0.5], [0.0, 0.0], [0.875, 0.75]])


def test_discounted_returns_by_hand():
    live = torch.ones_like(SEQUENCES, dtype=torch.bool)
    torch.testing.assert_close(discounted_returns(Q, live, GAMMA), RETURNS)
    torch.testing.assert_close(discounted_returns(Q_PADDED, SEQUENCES_PADDED != PAD, GAMMA), RETURNS_PADDED)
    torch.testing.assert_close(discounted_returns(Q, live, 0.0), Q)  # gamma 0: each token's own reward
    torch.testing.assert_close(discounted_returns(Q, live, 1.0), torch.stack([Q.sum(1), Q[:, 1]], 1))


def test_gamma_weights_each_token_by_its_discounted_return():
    for sequences, q, pad_id, returns in ((SEQUENCES, Q, None, RETURNS),
                                          (SEQUENCES_PADDED, Q_PADDED, PAD, RETURNS_PADDED)):  # fmt: skip
        agent = make_agent(gamma=GAMMA)
        expected = hand_grads(agent.generator, sequences, returns)
        assert_grads_close(update_grads(agent, Episodes(sequences, q, pad_id)), expected)


def test_moving_average_baseline_by_hand():
    live = torch.ones_like(SEQUENCES, dtype=torch.bool)
    # the mean return is 3.75 / 6 = 0.625
    assert moving_average_baseline(RETURNS, live, 0.0, 0.25) == pytest.approx(0.75 * 0.625)
    second = moving_average_baseline(RETURNS, live, 0.46875, 0.25)
    assert second == pytest.approx(0.25 * 0.46875 + 0.75 * 0.625)
    padded = SEQUENCES_PADDED != PAD  # 5 live positions: (1.25 + 0.5 + 0 + 0.875 + 0.75) / 5 = 0.675
    assert moving_average_baseline(RETURNS_PADDED, padded, 0.0, 0.25) == pytest.approx(0.75 * 0.675)
    assert moving_average_baseline(RETURNS, torch.zeros_like(live), 0.3, 0.25) == 0.3  # nothing live


def test_ema_baseline_moves_then_is_subtracted_from_the_returns():
    """ScratchGAN's order: b <- decay b + (1 - decay) mean(R), then the advantage R - b (the new b)."""
    agent = make_agent(gamma=GAMMA, baseline="ema", baseline_decay=0.25)
    assert agent.ema_baseline == 0.0
    episodes = Episodes(SEQUENCES, Q, None)
    b1 = 0.75 * 0.625
    expected = hand_grads(agent.generator, SEQUENCES, RETURNS - b1)
    assert_grads_close(update_grads(agent, episodes), expected)
    assert agent.ema_baseline == pytest.approx(b1)
    b2 = 0.25 * b1 + 0.75 * 0.625
    expected = hand_grads(agent.generator, SEQUENCES, RETURNS - b2)  # the generator after one step
    assert_grads_close(update_grads(agent, episodes), expected)
    assert agent.ema_baseline == pytest.approx(b2)


def test_ema_baseline_leaves_padding_out():
    agent = make_agent(gamma=GAMMA, baseline="ema", baseline_decay=0.25)
    live = SEQUENCES_PADDED != PAD
    expected = hand_grads(agent.generator, SEQUENCES_PADDED, (RETURNS_PADDED - 0.75 * 0.675) * live)
    assert_grads_close(update_grads(agent, Episodes(SEQUENCES_PADDED, Q_PADDED, PAD)), expected)


def test_ema_baseline_without_discount_centres_the_rewards():
    agent = make_agent(baseline="ema", baseline_decay=0.0)  # decay 0: the batch mean itself
    expected = hand_grads(agent.generator, SEQUENCES, Q - Q.mean())
    assert_grads_close(update_grads(agent, Episodes(SEQUENCES, Q, None)), expected)


def test_adam_betas_reach_the_optimiser():
    agent = make_agent(betas=(0.5, 0.9))
    assert agent.optimizer.param_groups[0]["betas"] == (0.5, 0.9)
    assert make_agent().optimizer.param_groups[0]["betas"] == (0.9, 0.999)  # torch's, the paper's default
