"""The adversarial-signal diagnostics, each on a case whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import PAD, FunctionScorer, T, V, tiny_discriminator, tiny_lstm

from seqgan_env.diagnostics import (
    average_ranks,
    discriminator_accuracy_auc,
    policy_gradient_split,
    q_signal_noise,
    reward_quality_correlation,
    spearman,
)
from seqgan_env.metrics import sequence_nll


class OracleLikelihoodScorer:
    """D(y) = exp(-mean per-token NLL of y under the oracle): a reward that ranks exactly like quality."""

    def __init__(self, oracle, pad_id: int | None = None) -> None:
        self.oracle, self.pad_id = oracle, pad_id

    def score(self, sequences: torch.Tensor) -> torch.Tensor:
        return torch.exp(-sequence_nll(self.oracle, sequences, pad_id=self.pad_id))


class ConstantScorer:
    def __init__(self, value: float = 0.3) -> None:
        self.value = value

    def score(self, sequences: torch.Tensor) -> torch.Tensor:
        return torch.full((len(sequences),), self.value)


def first_token_scorer() -> FunctionScorer:
    """Depends on y_1 only, so every completion of a prefix scores the same: no Monte Carlo noise."""
    return FunctionScorer(lambda row: (row[0] + 1) / (V + 1))


def samples(model, n: int, seed: int) -> torch.Tensor:
    return model.sample(n, torch.Generator().manual_seed(seed))


# --- spearman ------------------------------------------------------------------------------------
def test_average_ranks_share_the_mean_rank_of_ties():
    assert average_ranks(np.array([10.0, 20.0, 20.0, 5.0])).tolist() == [2.0, 3.5, 3.5, 1.0]


def test_spearman_matches_a_hand_example_with_ties():
    # ranks x = [1, 2.5, 2.5, 4], y = [1, 3, 2, 4]: centred dot 4.5, squared norms 4.5 and 5
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5), abs=1e-12)
    assert spearman(torch.tensor([1.0, 2.0, 2.0, 3.0]), np.array([1, 3, 2, 4])) == pytest.approx(
        3 / math.sqrt(10)
    )


def test_spearman_is_1_for_a_monotone_map_and_minus_1_for_a_reversal():
    x = torch.tensor([0.3, -1.0, 2.0, 0.5, 0.5])
    assert spearman(x, torch.exp(x)) == pytest.approx(1.0, abs=1e-12)
    assert spearman(x, -(x**3)) == pytest.approx(-1.0, abs=1e-12)


def test_spearman_is_nan_for_constant_input_and_rejects_bad_input():
    assert math.isnan(spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert math.isnan(spearman([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]))
    assert math.isnan(spearman([1.0], [2.0]))
    with pytest.raises(ValueError, match="equal length"):
        spearman([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="finite"):
        spearman([1.0, float("nan")], [1.0, 2.0])


# --- accuracy and AUC ----------------------------------------------------------------------------
def split_by_first_token(sequences: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    low = sequences[:, 0] < V // 2
    return sequences[low], sequences[~low]


def test_a_perfect_separator_has_auc_1_and_accuracy_1_and_an_inverted_one_auc_0():
    real, fake = split_by_first_token(samples(tiny_lstm(), 64, 1))
    assert len(real) > 0 and len(fake) > 0
    separator = FunctionScorer(lambda row: 0.9 if row[0] < V // 2 else 0.1)
    assert discriminator_accuracy_auc(separator, real, fake) == (1.0, 1.0)
    assert discriminator_accuracy_auc(separator, fake, real) == (0.0, 0.0)


def test_identical_score_distributions_give_auc_one_half_with_ties():
    seqs = samples(tiny_lstm(), 20, 2)
    accuracy, auc = discriminator_accuracy_auc(ConstantScorer(0.5), seqs[:8], seqs[8:])
    assert auc == 0.5
    assert accuracy == pytest.approx(12 / 20)  # 0.5 is not > 0.5: every real wrong, every fake right


def test_auc_counts_tied_pairs_half():
    real = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    fake = torch.tensor([[1, 2, 2, 2], [2, 2, 2, 2]])
    by_first = {0: 0.9, 1: 0.5, 2: 0.1}
    scorer = FunctionScorer(lambda row: by_first[row[0]])
    # pairs (0.9, 0.5) 1, (0.9, 0.1) 1, (0.5, 0.5) 1/2, (0.5, 0.1) 1
    accuracy, auc = discriminator_accuracy_auc(scorer, real, fake)
    assert auc == 3.5 / 4
    assert accuracy == 3 / 4


def test_accuracy_auc_runs_on_the_discriminator():
    accuracy, auc = discriminator_accuracy_auc(
        tiny_discriminator(), samples(tiny_lstm(0), 16, 3), samples(tiny_lstm(1), 16, 4)
    )
    assert 0.0 <= accuracy <= 1.0 and 0.0 <= auc <= 1.0


# --- reward quality --------------------------------------------------------------------------------
def test_a_scorer_equal_to_the_oracle_likelihood_ranks_with_correlation_1():
    oracle, generator = tiny_lstm(7, init_std=1.0), tiny_lstm(0)
    seqs = samples(generator, 64, 5)
    assert reward_quality_correlation(OracleLikelihoodScorer(oracle), oracle, seqs) == pytest.approx(
        1.0, abs=1e-12
    )


def test_a_constant_scorer_has_no_rank_correlation_with_quality():
    oracle = tiny_lstm(7, init_std=1.0)
    assert math.isnan(reward_quality_correlation(ConstantScorer(), oracle, samples(tiny_lstm(0), 32, 6)))


def test_reward_quality_correlation_leaves_padding_out_of_the_oracle_likelihood():
    oracle = tiny_lstm(7, init_std=1.0)
    seqs = samples(tiny_lstm(0), 16, 7)
    seqs[::2, -1] = PAD
    scorer = OracleLikelihoodScorer(oracle, pad_id=PAD)
    assert reward_quality_correlation(scorer, oracle, seqs, pad_id=PAD) == pytest.approx(1.0, abs=1e-12)


# --- Monte Carlo signal and noise ------------------------------------------------------------------
def test_a_scorer_that_ignores_the_completion_has_zero_monte_carlo_noise():
    policy = tiny_lstm(0)
    seqs = samples(policy, 24, 8)
    result = q_signal_noise(
        policy, first_token_scorer(), seqs, 4, torch.Generator().manual_seed(0), repeats=3
    )
    assert result["q"].shape == (3, 24, T)
    assert np.all(result["noise"] == 0.0)
    assert np.all(result["total"] > 0.0)
    assert np.array_equal(result["signal"], result["total"])
    assert result["signal_fraction"] == 1.0 and result["signal_fraction_mc"] == 1.0
    assert "oracle_correlation" not in result


def test_a_constant_scorer_has_zero_signal():
    policy, oracle = tiny_lstm(0), tiny_lstm(7, init_std=1.0)
    seqs = samples(policy, 16, 9)
    result = q_signal_noise(
        policy, ConstantScorer(), seqs, 4, torch.Generator().manual_seed(0), oracle=oracle
    )
    assert np.all(result["signal"] == 0.0) and np.all(result["noise"] == 0.0)
    assert result["signal_fraction"] == 0.0 and result["signal_fraction_mc"] == 0.0
    assert np.all(np.isnan(result["oracle_correlation"]))


def test_a_scorer_reading_the_completion_has_noise_before_the_last_step_only():
    policy, oracle = tiny_lstm(0), tiny_lstm(7, init_std=1.0)
    seqs = samples(policy, 32, 10)
    result = q_signal_noise(
        policy, OracleLikelihoodScorer(oracle), seqs, 2, torch.Generator().manual_seed(0), oracle=oracle
    )
    assert np.all(result["noise"][:-1] > 0.0)
    assert result["noise"][-1] == 0.0  # Q_T = D(y) is exact
    assert np.all(result["signal"] <= result["total"])
    assert 0.0 < result["signal_fraction_mc"] <= result["signal_fraction"] <= 1.0
    assert result["oracle_correlation"].shape == (T,)
    assert result["oracle_correlation"][-1] == pytest.approx(1.0, abs=1e-12)  # D(y) ranks like the oracle


def test_q_signal_noise_needs_two_repeats():
    policy = tiny_lstm(0)
    with pytest.raises(ValueError, match="repeats"):
        q_signal_noise(policy, ConstantScorer(), samples(policy, 4, 0), 2, repeats=1)


# --- policy-gradient split -------------------------------------------------------------------------
def direct_gradient(generator, sequences, q, pad_id=None) -> torch.Tensor:
    """The gradient of the paper's loss by plain backward, for comparison."""
    generator.zero_grad(set_to_none=True)
    with generator.differentiable():
        (-(generator.log_probs(sequences, pad_id=pad_id) * q).sum()).backward()
    params = [p for p in generator.parameters() if p.requires_grad]
    grad = torch.cat([p.grad.reshape(-1) for p in params]).double()
    generator.zero_grad(set_to_none=True)
    return grad


def test_the_split_sums_exactly_to_the_full_gradient():
    generator = tiny_lstm(0)
    seqs = samples(generator, 16, 11)
    q = torch.rand(seqs.shape, generator=torch.Generator().manual_seed(1))
    result = policy_gradient_split(generator, seqs, q)
    assert torch.equal(result["g"], result["g_const"] + result["g_centred"])
    assert torch.allclose(result["g"], direct_gradient(generator, seqs, q), atol=1e-5)
    assert result["split_error"] < 1e-5
    assert result["q_mean"] == pytest.approx(q.mean().item())
    assert result["norm_centred"] > 0.0 and result["norm_const"] > 0.0
    assert -1.0 <= result["cos_const"] <= 1.0 and -1.0 <= result["cos_centred"] <= 1.0
    assert all(p.grad is None for p in generator.parameters())  # parameters' grads untouched


def test_a_constant_reward_has_an_exactly_zero_centred_gradient():
    generator = tiny_lstm(0)
    seqs = samples(generator, 16, 12)
    q = torch.full(seqs.shape, 0.1)  # 0.1 is not exactly representable: a plain mean could round off it
    result = policy_gradient_split(generator, seqs, q)
    assert torch.count_nonzero(result["g_centred"]) == 0
    assert result["norm_centred"] == 0.0
    assert torch.equal(result["g"], result["g_const"])
    assert result["cos_const"] == pytest.approx(1.0)
    assert math.isnan(result["cos_centred"])
    assert result["q_mean"] == pytest.approx(0.1)


def test_the_split_leaves_padding_out():
    generator = tiny_lstm(0)
    seqs = samples(generator, 8, 13)
    seqs[:4, -1] = PAD
    q = torch.full(seqs.shape, 0.5)
    q[:4, -1] = 100.0  # rewards at padding positions must not count, not even in the mean
    result = policy_gradient_split(generator, seqs, q, pad_id=PAD)
    assert result["q_mean"] == 0.5
    assert torch.count_nonzero(result["g_centred"]) == 0
    assert torch.allclose(result["g"], direct_gradient(generator, seqs, q, pad_id=PAD), atol=1e-5)


def test_an_lstm_backward_in_eval_mode_fails_in_the_suite_as_on_cudnn():
    """The suite's guard (tests/conftest.py) refuses what cuDNN refuses, so the test below can fail."""
    lstm = torch.nn.LSTM(3, 4, batch_first=True).eval()
    out, _ = lstm(torch.randn(2, 5, 3))
    with pytest.raises(RuntimeError, match="cudnn RNN backward can only be called in training mode"):
        out.sum().backward()


def test_the_split_of_a_generator_in_eval_mode_is_taken_in_train_mode_with_the_same_numbers():
    generator = tiny_lstm(0)
    seqs = samples(generator, 16, 11)
    q = torch.rand(seqs.shape, generator=torch.Generator().manual_seed(1))
    generator.train()
    trained = policy_gradient_split(generator, seqs, q)
    generator.eval()  # as the evaluation leaves it
    evaluated = policy_gradient_split(generator, seqs, q)
    assert not generator.training  # the caller's mode restored
    assert torch.equal(trained["g"], evaluated["g"])
