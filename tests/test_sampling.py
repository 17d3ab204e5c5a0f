"""sample_categorical draws from exactly softmax(logits / temperature): chi-square goodness of fit."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import CHI2_CRITICAL_1E4, chi2_critical_1e4, chi_square

from seqgan_env.sampling import CDF_BLOCK, cdf_block, inverse_cdf, sample_categorical

N_DRAWS = 200_000
LOGITS = torch.tensor([0.3, -1.2, 2.0, 0.0, 1.1, -0.4, 0.7, -2.5])  # V = 8, all probabilities > 0


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


def test_num_samples_draws_independent_samples_per_row():
    """[B, N] draws: each row's N samples follow its own softmax, and the N columns are independent."""
    other = LOGITS.flip(0)
    n_rows = N_DRAWS // 4
    logits = torch.stack([LOGITS, other]).repeat(n_rows // 2, 1)  # [n_rows, 8], rows alternate
    draws = sample_categorical(logits, torch.Generator().manual_seed(9), num_samples=4)
    assert draws.shape == (n_rows, 4) and draws.dtype == torch.long
    assert_fits(torch.bincount(draws[0::2].flatten(), minlength=8), torch.softmax(LOGITS, -1))
    assert_fits(torch.bincount(draws[1::2].flatten(), minlength=8), torch.softmax(other, -1))
    # Pairs (column 0, column 1) of one row: the joint distribution is the product of the marginals.
    p = torch.softmax(LOGITS, -1)
    pairs = torch.bincount(draws[0::2, 0] * 8 + draws[0::2, 1], minlength=64)
    stat, df = chi_square(pairs, torch.outer(p, p).flatten())
    assert df == 63 and stat < chi2_critical_1e4(df), f"pairs not independent: chi-square {stat:.1f}"


def test_num_samples_must_be_positive():
    with pytest.raises(ValueError, match="num_samples"):
        sample_categorical(LOGITS.unsqueeze(0), num_samples=0)


# --- the two-step search of long rows (block, then the bin inside it) ----------------------------------
def test_a_long_row_is_searched_in_blocks_and_still_matches_softmax():
    """V = 1000 > CDF_BLOCK takes the block-then-bin search; zero-mass bins (every 7th, so some at block
    edges, and the last) are never drawn, and the draws fit the softmax."""
    assert CDF_BLOCK < 1000
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(10)) * 2
    logits[::7] = -math.inf
    logits[-1] = -math.inf
    counts = draw_counts(logits, seed=11, n=400_000)
    probs = torch.softmax(logits, -1)
    assert counts[probs == 0].sum() == 0
    stat, df = chi_square(counts, probs)
    assert stat < chi2_critical_1e4(df), f"chi-square {stat:.1f} with {df} dof"


@pytest.mark.parametrize("block", [1, 3, 5])
def test_blocks_of_any_size_draw_from_the_same_distribution(block):
    """V = 8 in blocks of 1, 3 (a shorter last block) and 5, with a block of zero mass (bins 3-5 at
    block 3) and zero-mass first and last bins: the same distribution as the one-step search."""
    probs = torch.softmax(LOGITS, -1)
    probs[[0, 3, 4, 5, 7]] = 0.0
    u = torch.rand(N_DRAWS, 2, generator=torch.Generator().manual_seed(12))
    draws = inverse_cdf(probs.expand(N_DRAWS, -1), u, block=block)
    assert draws.shape == (N_DRAWS, 2)
    counts = torch.bincount(draws.flatten(), minlength=8)
    assert counts[probs == 0].sum() == 0
    assert_fits(counts, probs / probs.sum())


def test_the_two_searches_pick_the_same_bin_but_for_float_rounding():
    probs = torch.softmax(torch.randn(2000, 5000, generator=torch.Generator().manual_seed(13)) * 3, -1)
    u = torch.rand(2000, 4, generator=torch.Generator().manual_seed(14))
    blocked, whole = inverse_cdf(probs, u), inverse_cdf(probs, u, block=5000)
    assert (blocked == whole).float().mean() > 0.999


@pytest.mark.parametrize(("n_bins", "block"), [(8, 3), (8, 8), (3, 2)])
def test_a_uniform_at_the_top_of_the_range_never_lands_past_the_last_bin_with_mass(n_bins, block):
    """Float rounding can put u * total at the total; the draw is then the last bin with mass, also
    when that bin ends a shorter last block (3 bins in blocks of 2), never a bin past the row."""
    probs = torch.zeros(1, n_bins)
    probs[0, :3] = torch.tensor([0.2, 0.3, 0.5])
    u = torch.tensor([[1.0 - 2**-24, 1.0]])  # 1.0 itself: rounding at its worst
    assert inverse_cdf(probs, u, block=block).tolist() == [[2, 2]]


def test_a_cpu_searches_long_rows_in_blocks_and_a_gpu_in_one_cumulative_sum():
    """`inverse_cdf`'s default block by device: the two-step search where a cumulative sum is a
    sequential pass (a CPU), one parallel scan where each extra operator is a kernel launch (CUDA)."""
    assert cdf_block(torch.device("cpu")) == CDF_BLOCK
    assert cdf_block(torch.device("cuda")) >= 5000 and cdf_block(torch.device("meta")) >= 5000
    probs = torch.softmax(torch.randn(64, 5000, generator=torch.Generator().manual_seed(15)), -1)
    u = torch.rand(64, 3, generator=torch.Generator().manual_seed(16))
    assert torch.equal(inverse_cdf(probs, u), inverse_cdf(probs, u, block=CDF_BLOCK))  # the CPU's default
