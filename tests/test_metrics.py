"""NLL-oracle and NLL-test (seqgan_env/metrics.py) against SPEC 2.1 and 2.2: per-token NLL means
computed by hand, the oracle's own samples scoring its entropy rate, a standard error of std/sqrt(n),
and the temperature trade-off (lower temperature: better NLL-oracle, worse NLL-test)."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from seqgan_env.metrics import Estimate, mean_nll, nll_oracle, nll_test, sequence_nll
from seqgan_env.oracle import random_oracle
from seqgan_env.token_lstm import TokenLSTM

V, T = 8, 4
PAD = V


@pytest.fixture(scope="module")
def oracle() -> TokenLSTM:
    return random_oracle(V, T, seed=3)


@torch.no_grad()
def hand_nll(model: TokenLSTM, tokens: list[int], temperature: float = 1.0) -> float:
    """Mean over the tokens of -log softmax(logits / temperature)[y_t], stepping from the start token."""
    logits, state = model.start(1)
    total = 0.0
    for y in tokens:
        p = torch.softmax(logits[0].double() / temperature, dim=0)
        total -= math.log(p[y].item())
        logits, state = model.step(torch.tensor([y]), state)
    return total / len(tokens)


@torch.no_grad()
def entropy_per_sequence(model: TokenLSTM, sequences: torch.Tensor) -> torch.Tensor:
    """Mean over t of the entropy of the model's next-token distribution along each sequence: [N].
    Its expectation over the model's own samples equals the expected NLL of those samples."""
    logits, _ = model.prefix_states(sequences)  # [T, N, V]
    logp = torch.log_softmax(logits.double(), dim=-1)
    return -(logp.exp() * logp).sum(-1).mean(0)


def test_sequence_nll_hand_computed(oracle):
    seqs = torch.tensor([[1, 2, 3, 4], [0, 0, 7, 5], [6, 6, 6, 6]])
    expected = torch.tensor([hand_nll(oracle, row.tolist()) for row in seqs], dtype=torch.float64)
    got = sequence_nll(oracle, seqs)
    assert got.shape == (3,)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)
    # A batch split into several chunks gives the same numbers.
    torch.testing.assert_close(sequence_nll(oracle, seqs, batch_size=2), got)


def test_sequence_nll_with_temperature_hand_computed(oracle):
    seqs = torch.tensor([[1, 2, 3, 4], [0, 0, 7, 5]])
    expected = torch.tensor(
        [hand_nll(oracle, row.tolist(), temperature=0.5) for row in seqs], dtype=torch.float64
    )
    got = sequence_nll(oracle, seqs, temperature=0.5)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, sequence_nll(oracle, seqs), rtol=1e-3)


def test_sequence_nll_excludes_padding(oracle):
    seqs = torch.tensor([[1, 2, 3, 4], [5, 6, PAD, PAD], [7, PAD, PAD, PAD]])
    rows = [[1, 2, 3, 4], [5, 6], [7]]
    # Each row divided by its own number of tokens.
    expected = torch.tensor([hand_nll(oracle, r) for r in rows], dtype=torch.float64)
    got = sequence_nll(oracle, seqs, pad_id=PAD)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_mean_nll_mean_and_stderr_by_hand(oracle):
    seqs = torch.tensor([[1, 2, 3, 4], [5, 6, PAD, PAD], [7, PAD, PAD, PAD], [0, 1, 0, 1]])
    per_seq = [hand_nll(oracle, [y for y in row.tolist() if y != PAD]) for row in seqs]
    est = mean_nll(oracle, seqs, pad_id=PAD)
    assert isinstance(est, Estimate)
    assert est.mean == pytest.approx(statistics.fmean(per_seq), rel=1e-5)
    assert est.stderr == pytest.approx(statistics.stdev(per_seq) / math.sqrt(len(per_seq)), rel=1e-4)


def test_nll_test_is_mean_nll_of_the_test_data_under_the_generator(oracle):
    gen = random_oracle(V, T, seed=11)
    data = torch.tensor([[1, 2, 3, 4], [5, 6, PAD, PAD], [0, 0, 0, 0]])
    per_seq = [hand_nll(gen, [y for y in row.tolist() if y != PAD], temperature=0.7) for row in data]
    est = nll_test(gen, data, pad_id=PAD, temperature=0.7)
    assert est.mean == pytest.approx(statistics.fmean(per_seq), rel=1e-5)


def test_mean_nll_of_nothing_raises(oracle):
    with pytest.raises(ValueError):
        mean_nll(oracle, torch.empty(0, T, dtype=torch.long))


def test_nll_oracle_of_the_oracles_own_samples_is_its_entropy(oracle):
    n = 4000
    est = nll_oracle(oracle, oracle, n_samples=n, rng=torch.Generator().manual_seed(0))
    # An independent estimate of the entropy rate: the exact next-token entropies along other samples.
    other = oracle.sample(n, torch.Generator().manual_seed(1))
    h = entropy_per_sequence(oracle, other)
    h_mean, h_se = h.mean().item(), h.std().item() / math.sqrt(n)
    assert abs(est.mean - h_mean) < 4 * math.hypot(est.stderr, h_se)
    assert est.mean < math.log(V) - 0.3  # an N(0, 1) oracle is far from uniform
    # stderr = std / sqrt(n): the spread of per-sequence NLL of fresh samples, over sqrt(n).
    std = sequence_nll(oracle, other).double().std().item()
    assert est.stderr == pytest.approx(std / math.sqrt(n), rel=0.1)


def test_nll_oracle_scores_the_generators_samples_not_the_oracles(oracle):
    uniform = random_oracle(V, T, seed=5)
    with torch.no_grad():  # a generator that samples uniformly at random
        for p in uniform.parameters():
            p.zero_()
    rng = torch.Generator().manual_seed(0)
    est = nll_oracle(oracle, uniform, n_samples=4000, rng=rng)
    own = nll_oracle(oracle, oracle, n_samples=4000, rng=torch.Generator().manual_seed(0))
    # Uniform tokens score the oracle's cross-entropy against uniform: sum over all sequences / V^T.
    everything = torch.cartesian_prod(*[torch.arange(V)] * T)  # all 4096 sequences
    exact = sequence_nll(oracle, everything).double().mean().item()
    assert est.mean == pytest.approx(exact, abs=4 * est.stderr)
    assert est.mean > own.mean + 0.5


def test_lower_temperature_trades_diversity_for_quality(oracle):
    n = 4000
    at = {
        tau: nll_oracle(oracle, oracle, n_samples=n, rng=torch.Generator().manual_seed(2), temperature=tau)
        for tau in (0.5, 1.0)
    }
    # NLL-oracle: sharper samples are more likely under the oracle.
    assert at[0.5].mean < at[1.0].mean - 5 * math.hypot(at[0.5].stderr, at[1.0].stderr)
    # NLL-test: held-out oracle samples are less likely under the sharpened model.
    test_data = oracle.sample(n, torch.Generator().manual_seed(3))
    t05 = nll_test(oracle, test_data, temperature=0.5)
    t10 = nll_test(oracle, test_data, temperature=1.0)
    assert t05.mean > t10.mean + 0.05
    # At temperature 1 the oracle's NLL-test is its entropy rate again.
    assert t10.mean == pytest.approx(at[1.0].mean, abs=4 * math.hypot(t10.stderr, at[1.0].stderr))
