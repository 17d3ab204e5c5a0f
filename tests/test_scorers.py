"""OracleScorer (seqgan_env/scorers.py): the oracle's own verdict as a sequence score in [0, 1], exactly
monotone decreasing in the oracle's per-token NLL, reading sequences up to their end, usable as the
environment's `scorer=` (the upper bound of the adversarial signal)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import seqgan_env  # noqa: F401  (registers the ids)
from seqgan_env.metrics import sequence_nll
from seqgan_env.oracle import random_oracle
from seqgan_env.scorers import OracleScorer
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig

V, T = 8, 4
PAD = V


@pytest.fixture(scope="module")
def oracle() -> TokenLSTM:
    return random_oracle(V, T, seed=0, embed_dim=8, hidden_dim=8)


def random_sequences(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (n, T), generator=torch.Generator().manual_seed(seed))


def test_score_is_exactly_monotone_decreasing_in_the_oracle_nll(oracle):
    scorer = OracleScorer(oracle)
    sequences = torch.unique(random_sequences(400), dim=0)
    nll = sequence_nll(oracle, sequences).double()
    score = scorer.score(sequences).double()
    order = torch.argsort(nll)
    assert (score[order].diff() <= 0).all()  # never reverses the NLL order
    # Spearman rank correlation with -NLL is exactly 1 (no ties among these NLLs or scores).
    assert len(torch.unique(nll)) == len(nll) and len(torch.unique(score)) == len(score)
    ranks_score = torch.argsort(torch.argsort(score)).double()
    ranks_neg_nll = torch.argsort(torch.argsort(-nll)).double()
    rho = torch.corrcoef(torch.stack([ranks_score, ranks_neg_nll]))[0, 1].item()
    assert rho == pytest.approx(1.0, abs=1e-12)


def test_score_is_the_stated_logistic_in_zero_one(oracle):
    scorer = OracleScorer(oracle, centre=2.0, width=0.5)
    sequences = random_sequences(64, seed=1)
    score = scorer.score(sequences)
    assert score.dtype == torch.float32 and score.shape == (64,) and score.device == sequences.device
    assert ((score >= 0) & (score <= 1)).all()
    expected = torch.sigmoid((2.0 - sequence_nll(oracle, sequences).double()) / 0.5).float()
    torch.testing.assert_close(score, expected)


def test_defaults_put_oracle_samples_high_and_uniform_sequences_low(oracle):
    scorer = OracleScorer(oracle)
    assert scorer.reference_nll < scorer.centre < scorer.uniform_nll
    own = oracle.sample(2000, torch.Generator().manual_seed(5))
    assert scorer.score(own).mean() > scorer.score(random_sequences(2000, seed=5)).mean() + 0.3
    # The reference points map to 0.9 and 0.1 exactly.
    points = torch.tensor([scorer.reference_nll, scorer.uniform_nll])
    at = torch.sigmoid((scorer.centre - points) / scorer.width)
    torch.testing.assert_close(at, torch.tensor([0.9, 0.1], dtype=at.dtype))


def test_references_set_the_reference_point(oracle):
    references = oracle.sample(50, torch.Generator().manual_seed(2))
    scorer = OracleScorer(oracle, references=references)
    assert scorer.reference_nll == pytest.approx(sequence_nll(oracle, references).double().mean().item())


def test_padding_and_positions_after_eos_are_ignored(oracle):
    eos = 3
    scorer = OracleScorer(oracle, centre=2.0, width=0.5, eos_id=eos, pad_id=PAD)
    short = torch.tensor([[1, 5, eos, PAD]])
    # After the end, anything (padding, more tokens, even an id outside the vocabulary) is ignored.
    variants = torch.tensor([[1, 5, eos, PAD], [1, 5, eos, 0], [1, 5, eos, eos], [1, 5, eos, 7]])
    scores = scorer.score(variants)
    assert torch.equal(scores, scores[:1].expand(4))
    expected_nll = sequence_nll(oracle, short, pad_id=PAD)
    torch.testing.assert_close(scorer.nll(short), expected_nll)
    # Padding only (no eos): the mean runs over the real tokens.
    padded = OracleScorer(oracle, centre=2.0, width=0.5, pad_id=PAD)
    torch.testing.assert_close(padded.nll(torch.tensor([[1, 5, PAD, PAD]])),
                               sequence_nll(oracle, torch.tensor([[1, 5, 0, 0]])[:, :2]))


def test_works_as_the_environments_scorer_with_monte_carlo_rewards():
    reference = gym.make("SeqGAN-Tiny-v0").unwrapped
    env_oracle = reference.oracle
    reference.close()
    scorer = OracleScorer(env_oracle)
    envs = gym.make_vec("SeqGAN-Tiny-v0", num_envs=4, scorer=scorer, reward_mode="mc")
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(T):
        _, reward, terminated, _, infos = envs.step(rng.integers(0, V, size=4))
        assert ((reward >= 0) & (reward <= 1)).all()
    assert terminated.all()
    finished = torch.as_tensor(infos["sequence"])
    torch.testing.assert_close(torch.as_tensor(reward, dtype=torch.float32), scorer.score(finished))
    envs.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"width": 0.0}, ValueError, r"width must be > 0"),
        ({"width": -1.0}, ValueError, r"width must be > 0"),
        ({"centre": float("nan")}, ValueError, r"centre must be a finite number"),
        ({"centre": "2"}, ValueError, r"centre must be a finite number"),
        ({"eos_id": V}, ValueError, r"eos_id must be a vocabulary id"),
        ({"eos_id": 3, "pad_id": 3}, ValueError, r"pad_id and eos_id must differ"),
        ({"n_samples": 1}, ValueError, r"n_samples must be an int >= 2"),
        ({"references": torch.empty(0, T, dtype=torch.long)}, ValueError, r"references must be a non-empty"),
    ],
)
def test_bad_arguments_are_refused(oracle, kwargs, error, match):
    with pytest.raises(error, match=match):
        OracleScorer(oracle, **kwargs)


def test_bad_oracle_and_bad_sequences_are_refused(oracle):
    with pytest.raises(TypeError, match=r"oracle must be a TokenLSTM"):
        OracleScorer("oracle")  # type: ignore[arg-type]
    scorer = OracleScorer(oracle, centre=2.0, width=0.5)
    with pytest.raises(ValueError, match=r"outside the oracle's vocabulary"):
        scorer.score(torch.tensor([[1, 2, PAD, PAD]]))  # padding, but no pad_id given
    with pytest.raises(ValueError, match=r"\[B, T\] integer tensor"):
        scorer.score(torch.zeros(2, T))
    with pytest.raises(ValueError, match=r"\[B, T\] integer tensor"):
        scorer.score(torch.zeros(T, dtype=torch.long))


def test_any_token_lstm_can_be_the_oracle():
    model = TokenLSTM(TokenLSTMConfig(V, T, 8, 8, init_std=1.0), rng=torch.Generator().manual_seed(3))
    scorer = OracleScorer(model.eval())
    assert torch.isfinite(scorer.score(random_sequences(8))).all()
