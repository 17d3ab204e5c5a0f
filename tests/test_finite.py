"""seqgan_env/finite.py: NaN and infinity found in tensors, arrays, modules and nested payloads, named in
one line; and an evaluation never scores a generator with a non-finite weight."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import tiny_lstm

from seqgan_env.bleu import BLEUReference
from seqgan_env.finite import NonFiniteError, nonfinite_names, require_finite
from seqgan_env.oracle import random_oracle
from train.evaluation import evaluate, evaluate_text


def test_nonfinite_names_finds_each_kind_by_its_path() -> None:
    model = tiny_lstm()
    with torch.no_grad():
        model.output.bias[2] = float("-inf")
    payload = {
        "model": model,
        "nested": [{"a": torch.tensor([1.0, math.nan])}, (torch.ones(2), np.array([np.inf]))],
        "fine": torch.zeros(3), "ints": torch.arange(3), "rng": torch.ByteTensor(8), "loss": math.nan,
        "array": np.array([1, 2]), "text": "nan",
    }  # fmt: skip
    assert sorted(nonfinite_names(payload)) == ["model.output.bias", "nested[0].a", "nested[1][1]"]
    assert nonfinite_names({"fine": torch.zeros(3), "model": tiny_lstm()}) == []


def test_check_finite_names_where_and_what() -> None:
    require_finite("round 1", {"loss": 0.5}, generator=tiny_lstm())
    with pytest.raises(NonFiniteError, match=r"^round 2: the policy loss is inf$"):
        require_finite("round 2", {"policy loss": math.inf})
    model = tiny_lstm()
    with torch.no_grad():
        model.embedding.weight[0, 0] = math.nan
        model.output.weight[0, 0] = math.nan
    with pytest.raises(NonFiniteError) as caught:
        require_finite("epoch 3", {"loss": 1.0}, rollout_policy=model)
    assert str(caught.value) == ("epoch 3: the rollout policy holds NaN or infinite values (embedding.weight "
                                 "and 1 more)")  # fmt: skip


def nan_generator() -> torch.nn.Module:
    generator = tiny_lstm()
    with torch.no_grad():
        generator.lstm.weight_ih_l0.fill_(math.nan)
    return generator


def test_evaluation_never_scores_a_generator_with_nan_weights() -> None:
    """Its samples would all be one token, which the oracle scores as a finite (fake-good) NLL."""
    generator = nan_generator()
    oracle = random_oracle(8, 4, seed=0)
    test = oracle.sample(16, torch.Generator().manual_seed(0))
    with pytest.raises(NonFiniteError, match=r"^evaluation: the generator holds NaN or infinite values"):
        evaluate(generator, oracle, test, 32, torch.Generator().manual_seed(1))
    with pytest.raises(NonFiniteError, match=r"^evaluation: the generator holds NaN"):
        evaluate_text(generator, test, BLEUReference([(1, 2, 3)]), 8, torch.Generator().manual_seed(1))
    finite = evaluate(tiny_lstm(), oracle, test, 32, torch.Generator().manual_seed(1))
    assert math.isfinite(finite.nll_oracle) and math.isfinite(finite.nll_test)


def test_a_non_finite_score_is_never_a_result() -> None:
    """An oracle of finite weights so large that its logits overflow (built in memory: a file of such
    weights is refused when read) scores NLL-oracle NaN; the evaluation stops instead of reporting it."""
    oracle = random_oracle(8, 4, seed=0)
    test = oracle.sample(16, torch.Generator().manual_seed(0))
    with torch.no_grad():
        oracle.output.weight.mul_(3e38)
    with pytest.raises(NonFiniteError, match=r"^evaluation: the NLL-oracle is nan$"):
        evaluate(tiny_lstm(), oracle, test, 32, torch.Generator().manual_seed(1))
