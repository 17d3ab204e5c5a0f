"""Monte Carlo rewards against the exact expectation, by enumerating every completion (V 3, T 3).

Q_t = E[D(y_1..y_t + completion)] with the completion drawn by the rollout policy continuing after
[start, y_1..y_t]. The exact value uses the policy's teacher-forced probabilities (nn.LSTM over the
whole sequence), a different code path from the cached one-step state the Monte Carlo search uses.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import FunctionScorer, TableScorer, tiny_discriminator

from seqgan_env import SeqGANEnv, SeqGANVectorEnv
from seqgan_env.rewards import monte_carlo_q, q_values
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig

V3, T3 = 3, 3
N = 4000  # rollouts: standard error of a Q estimate <= 0.5 / sqrt(4000) ~ 0.008
N_SE = 5  # tolerance in standard errors (fixed seeds: the test is deterministic)


@pytest.fixture
def policy() -> TokenLSTM:
    config = TokenLSTMConfig(V3, T3, embed_dim=4, hidden_dim=5, start_token=1, init_std=1.0)
    return TokenLSTM(config, rng=torch.Generator().manual_seed(0)).eval()


@pytest.fixture
def scorer() -> TableScorer:
    return TableScorer(V3, T3, seed=1)


def completions_of(prefix: list[int], eos_id: int | None = None, pad_id: int | None = None) -> list:
    """Every possible complete sequence starting with `prefix` (after eos only padding follows)."""
    out = set()
    for tail in itertools.product(range(V3), repeat=T3 - len(prefix)):
        tail = list(tail)
        if eos_id is not None and eos_id in tail:
            k = tail.index(eos_id)
            tail = tail[: k + 1] + [pad_id] * (len(tail) - k - 1)
        out.add(tuple(prefix + tail))
    return [list(s) for s in sorted(out)]


def exact_q(policy: TokenLSTM, score, prefix: list[int], eos_id=None, pad_id=None) -> tuple[float, float]:
    """E[score] over the rollout policy's completions of `prefix`, and the standard deviation of score."""
    seqs = torch.tensor(completions_of(prefix, eos_id, pad_id))
    with torch.no_grad():
        log_p = policy.log_probs(seqs, pad_id=pad_id)[:, len(prefix) :].sum(dim=1)  # log P(completion)
    p = log_p.double().exp()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-5)
    values = torch.tensor([score(s.tolist()) for s in seqs], dtype=torch.float64)
    mean = (p * values).sum().item()
    var = (p * values**2).sum().item() - mean**2
    return mean, max(var, 0.0) ** 0.5


def rollout_inputs(policy: TokenLSTM, prefixes: torch.Tensor):
    """The rollout policy's next-token logits and state after [start, prefix] for each row."""
    with torch.no_grad():
        logits, state = policy.start(len(prefixes))
        for t in range(prefixes.shape[1]):
            logits, state = policy.step(prefixes[:, t], state)
    return logits, state


def assert_q_close(estimate: float, exact: float, sd: float, n: int = N) -> None:
    assert abs(estimate - exact) <= N_SE * sd / n**0.5 + 1e-6, (estimate, exact, sd)


@pytest.mark.parametrize("t", [1, 2])
def test_monte_carlo_q_matches_exact_expectation(policy, scorer, t):
    prefixes = torch.tensor(list(itertools.product(range(V3), repeat=t)))  # all prefixes of length t
    logits, state = rollout_inputs(policy, prefixes)
    q = monte_carlo_q(policy, scorer, prefixes, logits, state, N, torch.Generator().manual_seed(t))
    assert q.shape == (len(prefixes),)
    assert len(scorer.calls) == 1 and scorer.calls[0].shape == (len(prefixes) * N, T3)  # one batched call
    for b, prefix in enumerate(prefixes.tolist()):
        assert_q_close(q[b].item(), *exact_q(policy, scorer.value, prefix))


def test_the_exact_check_has_power(policy, scorer):
    """A search with the wrong completion distribution (uniform here) would fail the check above."""
    gaps = []
    for prefix in [[a] for a in range(V3)] + [[a, b] for a in range(V3) for b in range(V3)]:
        exact, sd = exact_q(policy, scorer.value, prefix)
        uniform = np.mean([scorer.value(s) for s in completions_of(prefix)])
        gaps.append(abs(uniform - exact) / (N_SE * max(sd, 1e-3) / N**0.5))
    assert max(gaps) > 3


def test_q_values_matches_exact_and_q_T_is_the_score(policy, scorer):
    sequences = torch.tensor(list(itertools.product(range(V3), repeat=T3)))  # all 27 sequences
    q = q_values(policy, scorer, sequences, 2000, torch.Generator().manual_seed(0))
    assert q.shape == (27, T3)
    for b, seq in enumerate(sequences.tolist()):
        for t in (1, 2):
            assert_q_close(q[b, t - 1].item(), *exact_q(policy, scorer.value, seq[:t]), n=2000)
        assert q[b, T3 - 1].item() == scorer.value(seq)  # Q_T = D(y), exactly


def test_q_values_last_column_is_discriminator_score():
    policy = TokenLSTM(TokenLSTMConfig(8, 4, 6, 5), rng=torch.Generator().manual_seed(0))
    d = tiny_discriminator(dropout=0.5).train()  # scoring must still be deterministic (eval mode)
    seqs = torch.randint(0, 8, (5, 4), generator=torch.Generator().manual_seed(1))
    q = q_values(policy, d, seqs, 3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(q[:, -1], d.score(seqs))
    assert ((q >= 0) & (q <= 1)).all()
    assert d.training  # the env's reads leave the trainer's mode alone


def prefix_value(row: list[int]) -> float:
    """A score that depends on the first two tokens only: the completion does not matter."""
    return 0.1 * row[0] + 0.03 * row[1] + 0.01


def test_completions_are_grouped_back_to_their_prefixes(policy):
    prefixes = torch.tensor([[2, 1], [0, 0], [1, 2], [2, 2], [0, 1]])  # mixed order, all different
    scorer = FunctionScorer(prefix_value)
    n = 7
    logits, state = rollout_inputs(policy, prefixes)
    q = monte_carlo_q(policy, scorer, prefixes, logits, state, n, torch.Generator().manual_seed(0))
    expected = torch.tensor([prefix_value(p) for p in prefixes.tolist()])
    torch.testing.assert_close(q, expected)
    # Row b*N + n of the scored batch is the n-th completion of prefix b.
    (scored,) = scorer.calls
    assert scored.shape == (5 * n, T3)
    assert torch.equal(scored[:, :2], prefixes.repeat_interleave(n, dim=0))


def test_q_values_grouping_with_a_prefix_dependent_score(policy):
    sequences = torch.tensor([[2, 1, 0], [0, 0, 2], [1, 2, 1], [0, 2, 2]])
    scorer = FunctionScorer(lambda row: 0.2 * row[0] + 0.05 * row[1] + 0.02 * row[2])
    q = q_values(policy, scorer, sequences, 6, torch.Generator().manual_seed(0))
    # Whatever the completions, Q_2 lies in the prefix's part + [0, 0.02 * 2] and Q_1 in its part
    # + [0, 0.05 * 2 + 0.02 * 2]: completions regrouped with another prefix would leave these bands.
    for b, seq in enumerate(sequences.tolist()):
        low = 0.2 * seq[0] + 0.05 * seq[1]
        assert low - 1e-6 <= q[b, 1].item() <= low + 0.04 + 1e-6
        assert 0.2 * seq[0] - 1e-6 <= q[b, 0].item() <= 0.2 * seq[0] + 0.14 + 1e-6
        assert q[b, 2].item() == pytest.approx(0.2 * seq[0] + 0.05 * seq[1] + 0.02 * seq[2])


def test_monte_carlo_q_with_eos_matches_exact(policy):
    eos, pad = 2, V3
    scorer = TableScorer(V3 + 1, T3, seed=2)  # values for padded sequences too
    prefixes = torch.tensor([[0], [1]])  # prefixes without eos (the episode would have ended)
    logits, state = rollout_inputs(policy, prefixes)
    q = monte_carlo_q(policy, scorer, prefixes, logits, state, N, torch.Generator().manual_seed(0), eos, pad)
    (scored,) = scorer.calls
    for row in scored.tolist():  # after eos, only padding
        if eos in row:
            k = row.index(eos)
            assert row[k + 1 :] == [pad] * (T3 - k - 1)
    assert (scored == pad).any()
    for b, prefix in enumerate(prefixes.tolist()):
        assert_q_close(q[b].item(), *exact_q(policy, scorer.value, prefix, eos, pad))


# --- the environments hand out these same Q values ---------------------------------------------------
def env_kwargs(policy, scorer, **extra):
    return dict(
        vocab_size=V3, seq_len=T3, n_rollouts=N, rollout_policy=policy, scorer=scorer,
        discriminator_embed_dim=4, discriminator_filters=((1, 2), (3, 2)), oracle_seed=None, **extra,
    )  # fmt: skip


def test_env_rewards_are_the_exact_q(policy, scorer):
    env = SeqGANEnv(**env_kwargs(policy, scorer))
    env.reset(seed=0)
    actions = [2, 0, 1]
    for t, action in enumerate(actions, start=1):
        _, reward, terminated, _, info = env.step(action)
        assert reward == info["q"]
        if t < T3:
            assert_q_close(reward, *exact_q(policy, scorer.value, actions[:t]))
        else:
            assert terminated and reward == pytest.approx(scorer.value(actions))


def test_shaped_env_rewards_are_differences_of_exact_q(policy, scorer):
    env = SeqGANEnv(**env_kwargs(policy, scorer, reward_mode="shaped"))
    env.reset(seed=0)
    actions, previous, total = [1, 1, 0], 0.0, 0.0
    for t, action in enumerate(actions, start=1):
        _, reward, _, _, info = env.step(action)
        assert reward == pytest.approx(info["q"] - previous, abs=1e-6)
        if t < T3:
            assert_q_close(info["q"], *exact_q(policy, scorer.value, actions[:t]))
        previous, total = info["q"], total + reward
    assert total == pytest.approx(scorer.value(actions), abs=1e-5)


def test_vector_env_rewards_are_the_exact_q_out_of_lockstep(policy, scorer):
    """Rows at different prefix lengths in one step (after a partial reset) each get their own Q."""
    env = SeqGANVectorEnv(num_envs=3, **env_kwargs(policy, scorer))
    env.reset(seed=0)
    first = np.array([2, 0, 1])
    _, rewards, _, _, infos = env.step(first)
    for b in range(3):
        assert_q_close(rewards[b], *exact_q(policy, scorer.value, [int(first[b])]))
    env.reset(options={"reset_mask": np.array([True, False, False])})
    second = np.array([1, 2, 0])
    obs, rewards, terminated, _, infos = env.step(second)
    prefixes = [[1], [0, 2], [1, 0]]  # row 0 restarted; rows 1, 2 continued
    assert obs[:, :2].tolist() == [[1, V3], [0, 2], [1, 0]]
    assert infos["_q"].all() and not terminated.any()
    for b, prefix in enumerate(prefixes):
        assert rewards[b] == infos["q"][b]
        assert_q_close(rewards[b], *exact_q(policy, scorer.value, prefix))


BF16_Q_BIAS = 0.01  # what bf16 products may move an exact Q (scores spread over [0, 1])


def test_bf16_monte_carlo_q_matches_the_fp32_exact_expectation_within_the_stated_tolerance(policy):
    """The discriminator's scoring and the rollout policy's completions in bf16: Q within N_SE standard
    errors plus BF16_Q_BIAS of the exact fp32 expectation."""
    from seqgan_env.discriminator import Discriminator, DiscriminatorConfig

    config = DiscriminatorConfig(V3, T3, embed_dim=4, filters=((1, 3), (2, 3), (3, 3)), dropout=0.0)
    disc = Discriminator(config, rng=torch.Generator().manual_seed(2)).eval()

    def score(sequence: list[int]) -> float:
        return disc.score(torch.tensor([sequence])).item()  # fp32

    prefixes_1_2 = [p for t in (1, 2) for p in itertools.product(range(V3), repeat=t)]
    exact = {p: exact_q(policy, score, list(p)) for p in prefixes_1_2}
    disc.precision = policy.precision = "bf16"
    for t in (1, 2):
        prefixes = torch.tensor(list(itertools.product(range(V3), repeat=t)))
        logits, state = rollout_inputs(policy, prefixes)
        q = monte_carlo_q(policy, disc, prefixes, logits, state, N, torch.Generator().manual_seed(t))
        for b, prefix in enumerate(prefixes.tolist()):
            mean, sd = exact[tuple(prefix)]
            assert abs(q[b].item() - mean) <= N_SE * sd / N**0.5 + BF16_Q_BIAS, (prefix, q[b].item(), mean)


# --- the search replayed from CUDA graphs (stood in for on the CPU) ----------------------------------
def search_inputs(policy: TokenLSTM, t: int, seed: int, batch: int = 5):
    """Prefixes [batch, t] of the tiny sizes, with the rollout policy's logits and state after them."""
    prefixes = torch.randint(0, V3, (batch, t), generator=torch.Generator().manual_seed(seed))
    return prefixes, *rollout_inputs(policy, prefixes)


def graphed_and_eager_searches(search, policy, disc, rounds: int, seed: int = 0, between=None, **eos):
    """The Q of `rounds` rounds of prefixes (every prefix length), from `search` (a MonteCarloSearch
    over `policy`) and from `monte_carlo_q`, each with its own generator seeded alike; `between(r)`
    runs after each round (the models' training). Asserts both generators end in the same state."""
    graphed_rng, eager_rng = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    graphed, eager = [], []
    for r in range(rounds):
        for t in range(1, T3):
            prefixes, logits, state = search_inputs(policy, t, seed=100 * r + t)
            graphed.append(search(disc, prefixes, logits, state, graphed_rng))
            eager.append(monte_carlo_q(policy, disc, prefixes, logits, state, 3, eager_rng, **eos))
        if between is not None:
            between(r)
    assert torch.equal(graphed_rng.get_state(), eager_rng.get_state())
    return torch.stack(graphed), torch.stack(eager)


def test_a_replayed_search_gives_the_eager_q_while_the_models_train_in_place(
    policy, cuda_graphs_recorded_on_the_cpu
):
    """Each prefix length is captured at its second call and replayed from then on: the replays read
    the new prefixes, logits and states, the weights as the optimizers and `load_state_dict` leave
    them in place, and draw the same random numbers as the eager search."""
    from seqgan_env.rewards import MonteCarloSearch

    disc = tiny_discriminator(vocab_size=V3, seq_len=T3, filters=((1, 2), (2, 3), (3, 2)))
    optimizer = disc.make_optimizer()
    search = MonteCarloSearch(policy, n_rollouts=3)
    trained = TokenLSTM(policy.config, rng=torch.Generator().manual_seed(9))

    def train(r: int) -> None:
        real = torch.randint(0, V3, (8, T3), generator=torch.Generator().manual_seed(r))
        disc.train_step(optimizer, torch.cat([real, real.flip(1)]), torch.tensor([1] * 8 + [0] * 8))
        trained.output.bias.data.add_(0.5)
        policy.load_state_dict(trained.state_dict())  # in place: the rollout policy's weights change

    graphed, eager = graphed_and_eager_searches(search, policy, disc, rounds=4, between=train)
    assert torch.equal(graphed, eager)
    assert len(search.graphs) == T3 - 1
    replays = sum(g.graph.replays for g in search.graphs._graphs.values())
    assert replays == 3 * (T3 - 1)  # rounds 2 to 4: round 1 runs eagerly, round 2 captures and replays
    assert not torch.equal(graphed[: T3 - 1], graphed[-(T3 - 1) :])  # the rounds' Q differ


def test_new_weight_tensors_or_a_new_precision_make_the_search_capture_again(
    policy, cuda_graphs_recorded_on_the_cpu
):
    """A graph reads the tensors it was captured with and runs the precision it was captured in:
    weights assigned as new tensors or a change of precision drop the graphs (a replay would score
    with what is gone)."""
    from seqgan_env.rewards import MonteCarloSearch

    disc = tiny_discriminator(vocab_size=V3, seq_len=T3, filters=((1, 2), (3, 2)))
    other = tiny_discriminator(seed=4, vocab_size=V3, seq_len=T3, filters=((1, 2), (3, 2)))
    search = MonteCarloSearch(policy, n_rollouts=3)
    changes = [
        lambda: disc.load_state_dict(other.state_dict(), assign=True),  # new tensors
        lambda: setattr(disc, "precision", "bf16"),
        lambda: policy.load_state_dict(TokenLSTM(policy.config).state_dict(), assign=True),
    ]

    def change(r: int) -> None:
        if r % 2 == 1:  # each change after a round that replayed
            changes[r // 2]()

    graphed, eager = graphed_and_eager_searches(search, policy, disc, rounds=7, between=change)
    assert torch.equal(graphed, eager)


def test_a_search_with_an_end_of_sequence_replays_as_it_runs_eagerly(policy, cuda_graphs_recorded_on_the_cpu):
    from seqgan_env.rewards import MonteCarloSearch

    disc = tiny_discriminator(vocab_size=V3 + 1, seq_len=T3, filters=((1, 2), (2, 2)))
    search = MonteCarloSearch(policy, n_rollouts=3, eos_id=2, pad_id=V3)
    graphed, eager = graphed_and_eager_searches(search, policy, disc, rounds=3, eos_id=2, pad_id=V3)
    assert torch.equal(graphed, eager) and len(search.graphs) == T3 - 1


def test_scorers_other_than_a_module_search_eagerly(policy, scorer, cuda_graphs_recorded_on_the_cpu):
    """BLEU and the oracle read values back as they score: their searches are never captured."""
    from seqgan_env.rewards import MonteCarloSearch

    search = MonteCarloSearch(policy, n_rollouts=3)
    graphed, eager = graphed_and_eager_searches(search, policy, scorer, rounds=3)
    assert torch.equal(graphed, eager) and len(search.graphs) == 0


def test_a_scorer_that_cannot_be_captured_is_said_once_and_searched_eagerly(
    policy, cuda_graphs_recorded_on_the_cpu
):
    from seqgan_env.rewards import MonteCarloSearch

    class ReadsBack(torch.nn.Module):  # a module whose scoring waits for the device
        def __init__(self) -> None:
            super().__init__()
            self.disc = tiny_discriminator(vocab_size=V3, seq_len=T3, filters=((1, 2), (3, 2)))

        def score(self, sequences: torch.Tensor) -> torch.Tensor:
            scores = self.disc.score(sequences)
            return scores if scores.max().item() <= 1 else scores.clamp(max=1)

    search = MonteCarloSearch(policy, n_rollouts=3)
    with pytest.warns(UserWarning, match="the Monte Carlo search runs without CUDA graphs: capture failed"):
        graphed, eager = graphed_and_eager_searches(search, policy, ReadsBack(), rounds=3)
    assert torch.equal(graphed, eager)
    assert not search.graphs.cuda_graphs and len(search.graphs) == 0


def test_the_environment_hands_out_the_same_rewards_with_its_search_replayed(
    policy, cuda_graphs_recorded_on_the_cpu
):
    """Two vector envs alike but for the graphs (one's switched off): the same rewards, episode after
    episode, with the discriminator trained in place in between."""
    from seqgan_env.discriminator import Discriminator, DiscriminatorConfig

    config = DiscriminatorConfig(V3, T3, embed_dim=4, filters=((1, 2), (3, 2)), dropout=0.0)  # the two alike
    envs, discs = [], []
    for graphs in (True, False):
        disc = Discriminator(config, rng=torch.Generator().manual_seed(3))
        kwargs = env_kwargs(policy, None, discriminator=disc)
        kwargs["n_rollouts"] = 3
        env = SeqGANVectorEnv(num_envs=4, **kwargs)
        env.unwrapped._core.search.graphs.cuda_graphs = graphs
        env.reset(seed=0)
        envs.append(env)
        discs.append((disc, disc.make_optimizer()))
    actions = np.random.default_rng(0)
    for episode in range(4):
        for _ in range(T3):
            a = actions.integers(0, V3, size=4)
            (_, r0, *_), (_, r1, *_) = (env.step(a) for env in envs)
            assert np.array_equal(r0, r1)
        for disc, optimizer in discs:
            real = torch.randint(0, V3, (8, T3), generator=torch.Generator().manual_seed(episode))
            disc.train_step(optimizer, torch.cat([real, real.flip(1)]), torch.tensor([1] * 8 + [0] * 8))
        for env in envs:
            env.step(np.zeros(4, dtype=np.int64))  # NEXT_STEP: the finished episodes restart
    assert len(envs[0].unwrapped._core.search.graphs) == T3 - 1
    assert len(envs[1].unwrapped._core.search.graphs) == 0


def test_q_values_through_a_replayed_search_are_the_eager_ones(policy, cuda_graphs_recorded_on_the_cpu):
    """The diagnostics' Q matrices, each prefix length replayed from the search's graphs from the
    second matrix on, whatever generator each call brings."""
    from seqgan_env.rewards import MonteCarloSearch

    disc = tiny_discriminator(vocab_size=V3, seq_len=T3, filters=((1, 2), (3, 2)))
    search = MonteCarloSearch(policy, n_rollouts=3)
    sequences = torch.randint(0, V3, (6, T3), generator=torch.Generator().manual_seed(0))
    for seed in range(3):  # a generator of its own for each, as each evaluation's diagnostics
        graphed = q_values(policy, disc, sequences, 3, torch.Generator().manual_seed(seed), search)
        assert torch.equal(graphed, q_values(policy, disc, sequences, 3, torch.Generator().manual_seed(seed)))
    assert len(search.graphs) == T3 - 1
    for wrong in (MonteCarloSearch(policy, n_rollouts=4), MonteCarloSearch(policy, 3, eos_id=2, pad_id=V3),
                  MonteCarloSearch(TokenLSTM(policy.config), n_rollouts=3)):  # fmt: skip
        with pytest.raises(ValueError, match="q_values needs a search of the same rollout policy"):
            q_values(policy, disc, sequences, 3, search=wrong)
