"""TokenLSTM: the cached one-step path must be the teacher-forced model, token for token."""

from __future__ import annotations

import pytest
import torch
from conftest import PAD, T, V, chi2_critical_1e4, chi_square, tiny_lstm

from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig


def random_sequences(n: int, seed: int = 1, vocab_size: int = V, seq_len: int = T) -> torch.Tensor:
    return torch.randint(0, vocab_size, (n, seq_len), generator=torch.Generator().manual_seed(seed))


def with_recurrent_bias(model: TokenLSTM) -> TokenLSTM:
    """The reference LSTM has no recurrent bias, but a loaded state dict may: `step` must add it too."""
    with torch.no_grad():
        bias = model.lstm.bias_hh_l0
        bias.copy_(torch.randn(bias.shape, generator=torch.Generator().manual_seed(9)))
    return model


@pytest.mark.parametrize("recurrent_bias", [False, True])
def test_step_by_step_equals_teacher_forced_forward(recurrent_bias):
    model = tiny_lstm(init_std=1.0)
    if recurrent_bias:
        with_recurrent_bias(model)
    seqs = random_sequences(6)
    with torch.no_grad():
        forced = model(seqs)  # [B, T, V]: position t is y_t's distribution given [start, y_<t]
        assert forced.shape == (6, T, V)
        logits, state = model.start(6)
        torch.testing.assert_close(logits, forced[:, 0], rtol=1e-5, atol=1e-5)
        for t in range(T - 1):
            logits, state = model.step(seqs[:, t], state)
            torch.testing.assert_close(logits, forced[:, t + 1], rtol=1e-5, atol=1e-5)


def test_state_after_prefix_is_nn_lstm_state_over_start_and_prefix():
    """The rollout state after y_1..y_t is the state after reading [start, y_1..y_t] (start included)."""
    model = with_recurrent_bias(tiny_lstm(init_std=1.0))
    seqs = random_sequences(5, seed=2)
    start = torch.full((5, 1), model.config.start_token)
    with torch.no_grad():
        logits, state = model.start(5)
        for t in range(1, T + 1):
            logits, state = model.step(seqs[:, t - 1], state)
            inputs = torch.cat([start, seqs[:, :t]], dim=1)  # [start, y_1..y_t]
            _, (h_n, c_n) = model.lstm(model.embedding(inputs))
            torch.testing.assert_close(state[0], h_n[0], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(state[1], c_n[0], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(logits, model.output(h_n[0]), rtol=1e-5, atol=1e-5)
        # Skipping the start token (a known pitfall of other ports) gives a different state.
        _, (h_skip, _) = model.lstm(model.embedding(seqs))
        assert not torch.allclose(state[0], h_skip[0], atol=1e-3)


def test_prefix_states_match_step():
    model = tiny_lstm(init_std=1.0)
    seqs = random_sequences(3, seed=3)
    all_logits, (hs, cs) = model.prefix_states(seqs)
    assert all_logits.shape == (T, 3, V) and hs.shape == cs.shape == (T, 3, model.config.hidden_dim)
    with torch.no_grad():
        logits, state = model.start(3)
        for t in range(T):
            torch.testing.assert_close(all_logits[t], logits)
            torch.testing.assert_close(hs[t], state[0])
            torch.testing.assert_close(cs[t], state[1])
            logits, state = model.step(seqs[:, t], state)


def test_log_probs_gathers_the_tokens_log_softmax():
    model = tiny_lstm(init_std=1.0)
    seqs = random_sequences(4, seed=4)
    with torch.no_grad():
        lp = model.log_probs(seqs)
        assert lp.shape == (4, T)
        expected = torch.empty(4, T)
        logits, state = model.start(4)
        for t in range(T):
            expected[:, t] = torch.log_softmax(logits, -1)[torch.arange(4), seqs[:, t]]
            logits, state = model.step(seqs[:, t], state)
    torch.testing.assert_close(lp, expected, rtol=1e-5, atol=1e-5)
    assert (lp < 0).all()


def test_log_probs_masks_padding():
    model = tiny_lstm(init_std=1.0)
    seqs = random_sequences(3, seed=5)
    padded = seqs.clone()
    padded[0, 2:] = PAD  # ended after 2 tokens
    padded[1, 1:] = PAD  # ended after 1 token
    with torch.no_grad():
        full = model.log_probs(seqs)
        masked = model.log_probs(padded, pad_id=PAD)
    assert (masked[0, 2:] == 0).all() and (masked[1, 1:] == 0).all()
    # Positions before the padding are scored exactly as without it (padding only follows them).
    torch.testing.assert_close(masked[0, :2], full[0, :2])
    torch.testing.assert_close(masked[1, :1], full[1, :1])
    torch.testing.assert_close(masked[2], full[2])
    assert (masked[2] != 0).all()


def test_sample_shapes_range_and_seeding():
    model = tiny_lstm()
    out = model.sample(10, rng=torch.Generator().manual_seed(0), batch_size=4)  # 3 chunks: 4, 4, 2
    assert out.shape == (10, T) and out.dtype == torch.long
    assert out.min() >= 0 and out.max() < V
    again = model.sample(10, rng=torch.Generator().manual_seed(0), batch_size=4)
    assert torch.equal(out, again)
    other = model.sample(10, rng=torch.Generator().manual_seed(1), batch_size=4)
    assert not torch.equal(out, other)
    assert model.sample(0).shape == (0, T)


def test_sample_follows_the_model():
    """The first token's empirical distribution is the model's softmax after the start token."""
    model = tiny_lstm(init_std=1.0)
    n = 20000
    out = model.sample(n, rng=torch.Generator().manual_seed(0))
    with torch.no_grad():
        p = torch.softmax(model.start(1)[0][0], -1)
    freq = torch.bincount(out[:, 0], minlength=V).float() / n
    assert torch.allclose(freq, p, atol=4 * (0.25 / n) ** 0.5)


def test_sample_temperature():
    model = tiny_lstm(init_std=1.0)
    # Near zero temperature: ancestral sampling becomes greedy decoding.
    cold = model.sample(5, rng=torch.Generator().manual_seed(0), temperature=1e-4)
    with torch.no_grad():
        logits, state = model.start(1)
        greedy = []
        for _ in range(T):
            token = logits.argmax(-1)
            greedy.append(int(token))
            logits, state = model.step(token, state)
    assert (cold == torch.tensor(greedy)).all()
    # High temperature flattens the first token's distribution towards uniform.
    n = 20000
    hot = model.sample(n, rng=torch.Generator().manual_seed(0), temperature=1000.0)
    freq = torch.bincount(hot[:, 0], minlength=V).float() / n
    assert torch.allclose(freq, torch.full((V,), 1 / V), atol=0.015)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(2, temperature=0.0)


def eos_model(eos: int) -> TokenLSTM:
    """A model that picks `eos` about half the time at every step, so rows end at different steps."""
    model = tiny_lstm(init_std=0.1)
    with torch.no_grad():
        model.output.bias.zero_()
        model.output.bias[eos] = 2.0  # e^2 / (e^2 + 7) ~ 0.51
    return model


def test_complete_stops_at_eos_and_pads():
    eos = 3
    model = eos_model(eos)
    with torch.no_grad():
        logits, state = model.start(400)
        out = model.complete(logits, state, T, torch.Generator().manual_seed(0), eos_id=eos, pad_id=PAD)
    assert out.shape == (400, T)
    ended_at = []
    for row in out.tolist():
        if eos in row:
            k = row.index(eos)
            assert row[k + 1 :] == [PAD] * (T - k - 1), row  # padding after eos, nothing else
            assert PAD not in row[:k]
            ended_at.append(k)
        else:
            assert PAD not in row
    # The case under test happens: rows end at every position, and some rows never end.
    assert set(ended_at) == set(range(T))
    assert len(ended_at) < 400
    # Without a pad id, a row continues with eos.
    with torch.no_grad():
        logits, state = model.start(50)
        out = model.complete(logits, state, T, torch.Generator().manual_seed(0), eos_id=eos)
    for row in out.tolist():
        if eos in row:
            assert all(t == eos for t in row[row.index(eos) :])


def test_sample_pads_after_eos_across_batches():
    """What the discriminator gets as negatives of a text run: padding after eos, in every chunk."""
    eos = 3
    rng = torch.Generator().manual_seed(0)
    samples = eos_model(eos).sample(300, rng, batch_size=128, eos_id=eos, pad_id=PAD)
    assert samples.shape == (300, T)
    ended = 0
    for row in samples.tolist():
        k = row.index(eos) if eos in row else T - 1
        assert row[k + 1 :] == [PAD] * (T - k - 1) and PAD not in row[: k + 1], row
        ended += eos in row
    assert 0 < ended < 300


def test_complete_without_eos_matches_seeded_sample():
    model = tiny_lstm()
    with torch.no_grad():
        logits, state = model.start(7)
        out = model.complete(logits, state, T, torch.Generator().manual_seed(3))
    assert torch.equal(out, model.sample(7, rng=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocab_size": 0}, "vocab_size"),
        ({"seq_len": 0}, "seq_len"),
        ({"embed_dim": 0}, "embed_dim"),
        ({"hidden_dim": -1}, "hidden_dim"),
        ({"vocab_size": 8, "start_token": 8}, "start_token"),
        ({"vocab_size": 8, "start_token": -1}, "start_token"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TokenLSTMConfig(**kwargs)


def test_config_round_trip_and_seeded_init():
    config = TokenLSTMConfig(vocab_size=V, seq_len=T, embed_dim=6, hidden_dim=5, start_token=2, init_std=0.3)
    assert TokenLSTMConfig(**config.to_dict()) == config
    a = TokenLSTM(config, rng=torch.Generator().manual_seed(0))
    b = TokenLSTM(config, rng=torch.Generator().manual_seed(0))
    c = TokenLSTM(config, rng=torch.Generator().manual_seed(1))
    states = (a.state_dict().items(), b.state_dict().values(), c.state_dict().values())
    for (name, pa), pb, pc in zip(*states, strict=True):
        assert torch.equal(pa, pb), name
        if name == "lstm.bias_hh_l0":
            assert (pa == 0).all()  # the reference LSTM has one bias per gate
        else:
            assert not torch.equal(pa, pc), name


def test_complete_n_samples_continues_each_row_from_its_own_state():
    """complete(n_samples=N) [B*N, k]: rows b*N .. b*N+N-1 are independent continuations of row b,
    drawn from the exact joint distribution of the next two tokens in row b's state."""
    model = tiny_lstm(init_std=1.0)
    n = 40_000
    with torch.no_grad():
        logits, state = model.start(2)
        logits, state = model.step(torch.tensor([1, 5]), state)  # two different prefixes: [1] and [5]
        out = model.complete(logits, state, 2, torch.Generator().manual_seed(0), n_samples=n)
        assert out.shape == (2 * n, 2)
        counts = [torch.bincount(rows[:, 0] * V + rows[:, 1], minlength=V * V) for rows in out.split(n)]
        for b in range(2):
            stat, df = chi_square(counts[b], joint_of(model, logits, state, b))
            assert stat < chi2_critical_1e4(df), f"prefix {b}: chi-square {stat:.1f} with {df} dof"
        # ... and the check has power: prefix 1's continuations do not fit prefix 0's distribution.
        stat, df = chi_square(counts[1], joint_of(model, logits, state, 0))
        assert stat > 10 * chi2_critical_1e4(df)


def joint_of(
    model: TokenLSTM, logits: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], b: int
) -> torch.Tensor:
    """P(y1, y2) of row b's next two tokens given its next-token `logits` and `state`: [V*V]."""
    p1 = torch.softmax(logits[b], -1)
    row_state = (state[0][b : b + 1].expand(V, -1), state[1][b : b + 1].expand(V, -1))
    return (p1[:, None] * torch.softmax(model.step(torch.arange(V), row_state)[0], -1)).flatten()


def test_complete_n_samples_stops_at_eos():
    eos = 3
    model = eos_model(eos)
    with torch.no_grad():
        logits, state = model.start(3)
        rng = torch.Generator().manual_seed(1)
        out = model.complete(logits, state, T, rng, eos_id=eos, pad_id=PAD, n_samples=50)
    assert out.shape == (150, T)
    ended = 0
    for row in out.tolist():
        k = row.index(eos) if eos in row else T - 1
        assert row[k + 1 :] == [PAD] * (T - k - 1) and PAD not in row[: k + 1], row
        ended += row[0] == eos
    assert 0 < ended < 150  # the first token (drawn from the B rows directly) ends rows too


def test_bf16_completions_follow_the_fp32_distribution():
    """complete() reading its tokens under bf16 autocast: the continuations still fit the exact fp32
    joint distribution by chi-square (bf16 moves the logits by about 1%, invisible at this sample size),
    and the check keeps its power."""
    model = tiny_lstm(init_std=1.0)
    n = 40_000
    with torch.no_grad():
        logits, state = model.start(2)
        logits, state = model.step(torch.tensor([1, 5]), state)
        model.precision = "bf16"
        out = model.complete(logits, state, 2, torch.Generator().manual_seed(0), n_samples=n)
        model.precision = "fp32"
        counts = [torch.bincount(rows[:, 0] * V + rows[:, 1], minlength=V * V) for rows in out.split(n)]
        for b in range(2):
            stat, df = chi_square(counts[b], joint_of(model, logits, state, b))
            assert stat < chi2_critical_1e4(df), f"prefix {b}: chi-square {stat:.1f} with {df} dof"
        stat, df = chi_square(counts[1], joint_of(model, logits, state, 0))
        assert stat > 10 * chi2_critical_1e4(df)
