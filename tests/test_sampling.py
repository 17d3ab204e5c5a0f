"""sample_categorical draws from exactly softmax(logits / temperature): chi-square goodness of fit."""

from __future__ import annotations

import math

import pytest
import torch

from seqgan_env.sampling import sample_categorical

N_DRAWS = 200_000
# Upper 1e-4 quantiles of the chi-square distribution by degrees of freedom (scipy.stats.chi2.isf(1e-4, df)).
CHI2_CRITICAL_1E4 = {1: 15.14, 2: 18.42, 3: 21.11, 4: 23.51, 5: 25.74, 6: 27.86, 7: 29.88}

LOGITS = torch.tensor([0.3, -1.2, 2.0, 0.0, 1.1, -0.4, 0.7, -2.5])  # V = 8, all probabilities > 0


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> tuple[float, int]:
    """Pearson's statistic over the categories of non-zero probability, and its degrees of freedom."""
    support = probs > 0
    n = counts.sum().item()
    expected = probs[support].double() * n
    stat = ((counts[support].double() - expected) ** 2 / expected).sum().item()
    return stat, int(support.sum()) - 1


def draw_counts(logits: torch.Tensor, temperature: float = 1.0, seed: int = 0, n: int = N_DRAWS):
    """Counts per category of `n` seeded draws from one row of `logits`: [V]."""
    g = torch.Generator().manual_seed(seed)
    draws = sample_categorical(logits.expand(n, -1), g, temperature)
    assert draws.shape == (n,) and draws.dtype == torch.long
    return torch.bincount(draws, minlength=logits.shape[-1])


def assert_fits(counts: torch.Tensor, probs: torch.Tensor) -> None:
    stat, df = chi_square(counts, probs)
    assert stat < CHI2_CRITICAL_1E4[df], f"chi-square {stat:.1f} with {df} dof; counts {counts.tolist()}"


def test_matches_softmax_distribution():
    counts = draw_counts(LOGITS)
    assert counts.sum() == N_DRAWS
    assert_fits(counts, torch.softmax(LOGITS, -1))


def test_the_chi_square_check_has_power():
    """The test above would catch a slightly wrong distribution (e.g. a temperature of 1.1)."""
    counts = draw_counts(LOGITS)
    stat, df = chi_square(counts, torch.softmax(LOGITS / 1.1, -1))
    assert stat > 10 * CHI2_CRITICAL_1E4[df]


def test_zero_probability_entries_are_never_drawn():
    logits = LOGITS.clone()
    zero = [0, 4, 7]  # first, middle and last bins: the edges of the inverse CDF
    logits[zero] = -math.inf
    counts = draw_counts(logits, seed=1)
    assert counts[zero].sum() == 0
    assert_fits(counts, torch.softmax(logits, -1))


def test_underflowing_probabilities_are_never_drawn():
    """Logits so low that their softmax is exactly 0 in float32 behave like -inf."""
    logits = torch.tensor([0.0, -200.0, 1.0, -200.0, 0.5, -200.0, -0.5, -200.0])
    probs = torch.softmax(logits, -1)
    assert (probs[1::2] == 0).all()
    counts = draw_counts(logits, seed=2)
    assert counts[1::2].sum() == 0
    assert_fits(counts, probs)


@pytest.mark.parametrize("temperature", [0.5, 3.0])
def test_temperature(temperature):
    counts = draw_counts(LOGITS, temperature, seed=3)
    assert_fits(counts, torch.softmax(LOGITS / temperature, -1))
    # ... and not the temperature-1 distribution.
    stat, df = chi_square(counts, torch.softmax(LOGITS, -1))
    assert stat > 10 * CHI2_CRITICAL_1E4[df]


def test_rows_are_sampled_from_their_own_distributions():
    other = LOGITS.flip(0)
    logits = torch.stack([LOGITS, other]).repeat(N_DRAWS // 2, 1)  # rows alternate between the two
    draws = sample_categorical(logits, torch.Generator().manual_seed(4))
    assert_fits(torch.bincount(draws[0::2], minlength=8), torch.softmax(LOGITS, -1))
    assert_fits(torch.bincount(draws[1::2], minlength=8), torch.softmax(other, -1))


def test_extreme_logits_pick_the_only_likely_token():
    logits = torch.tensor([[0.0, 1e4, -1e4, 5.0], [1e30, 0.0, 0.0, 0.0], [-1e4, -1e4, -1e4, -1e4 + 50]])
    draws = sample_categorical(logits.repeat(1000, 1), torch.Generator().manual_seed(5))
    assert (draws.view(1000, 3) == torch.tensor([1, 0, 3])).all()


def test_seeded_reproducibility():
    logits = LOGITS.expand(1000, -1)
    a = sample_categorical(logits, torch.Generator().manual_seed(7))
    b = sample_categorical(logits, torch.Generator().manual_seed(7))
    c = sample_categorical(logits, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_nonpositive_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature"):
        sample_categorical(LOGITS.unsqueeze(0), temperature=temperature)
