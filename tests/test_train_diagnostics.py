"""The adversarial signal's diagnostics in train/adversarial.py runs (train/diagnostics.py): the columns
of metrics.csv, the signal/* TensorBoard scalars and signal.png, on the tiny preset. train/sb3.py's are
checked with its end-to-end run (tests/test_sb3.py), text runs' in tests/test_text_training.py."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import HANG_GUARD

from seqgan_env.scorers import OracleScorer
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig
from train.diagnostics import SIGNAL_FIELDS, measure_signal
from train.evaluation import METRIC_FIELDS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train" / "adversarial.py"
FAST = ["--preset", "tiny", "--threads", "1", "--n-real", "128", "--n-test", "64", "--eval-samples", "128",
        "--n-negatives", "64", "--diag-samples", "200", "--diag-q-samples", "16"]  # fmt: skip


def run(out: Path, name: str, *args: str) -> list[dict[str, str]]:
    result = subprocess.run([sys.executable, str(SCRIPT), *FAST, *args, "--out", str(out), "--name", name],
                            capture_output=True, text=True, timeout=HANG_GUARD, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    with (out / name / "metrics.csv").open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == list(METRIC_FIELDS)
        return list(reader)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("diagnostics")
    run(out, "on")
    run(out, "off", "--no-diagnostics")
    return out


def read(folder: Path) -> list[dict[str, str]]:
    with (folder / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_every_adversarial_evaluation_has_finite_diagnostics(runs: Path) -> None:
    rows = read(runs / "on")
    adversarial = [r for r in rows if r["phase"] == "adversarial"]
    assert [int(r["step"]) for r in adversarial] == [0, 2, 4]  # round 0 included
    for r in adversarial:
        values = {k: float(r[k]) for k in SIGNAL_FIELDS}
        assert all(math.isfinite(v) for v in values.values()), values
        assert 0 <= values["d_accuracy"] <= 1 and 0 <= values["d_auc"] <= 1
        assert 0 <= values["q_signal_share"] <= 1
        for key in ("reward_oracle_spearman", "q_oracle_spearman", "pg_centred_cos"):
            assert -1 <= values[key] <= 1
        assert values["pg_constant_norm"] > 0 and values["pg_centred_norm"] > 0
    assert len({r["d_auc"] for r in adversarial}) > 1  # measured each time, not one value copied
    for r in rows:
        if r["phase"] == "mle":
            assert all(r[k] == "" for k in SIGNAL_FIELDS)  # no reward in MLE pre-training


def test_diagnostics_never_change_training(runs: Path) -> None:
    """--no-diagnostics: every other column is the same (the diagnostics have their own random
    numbers and only read the models), and the diagnostics' cells are empty."""
    on, off = read(runs / "on"), read(runs / "off")
    assert len(on) == len(off)
    for a, b in zip(on, off, strict=True):
        assert {k: v for k, v in a.items() if k not in (*SIGNAL_FIELDS, "elapsed_s")} == {
            k: v for k, v in b.items() if k not in (*SIGNAL_FIELDS, "elapsed_s")
        }
        assert all(b[k] == "" for k in SIGNAL_FIELDS)
    assert not (runs / "off" / "signal.png").exists()


def test_signal_plot_and_tensorboard(runs: Path) -> None:
    png = (runs / "on" / "signal.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(runs / "on" / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {f"signal/{k}" for k in SIGNAL_FIELDS} <= tags
    auc = [e.value for e in events.Scalars("signal/d_auc")]
    assert auc == pytest.approx([float(r["d_auc"]) for r in read(runs / "on") if r["d_auc"]])


def test_oracle_reward_ranks_like_the_oracle_and_controls_have_none(tmp_path: Path) -> None:
    """A reward equal to the oracle's likelihood ranks generated sequences exactly as the oracle does;
    the constant-reward control has no reward to measure (empty cells, no plot)."""
    oracle = run(tmp_path, "oracle", "--reward", "oracle", "--rounds", "2")
    adversarial = [r for r in oracle if r["phase"] == "adversarial"]
    assert len(adversarial) == 2
    for r in adversarial:
        assert float(r["reward_oracle_spearman"]) == pytest.approx(1.0, abs=1e-9)
        assert math.isfinite(float(r["q_oracle_spearman"])) and math.isfinite(float(r["d_auc"]))
    constant = run(tmp_path, "constant", "--mode", "constant", "--rounds", "2")
    assert all(r[k] == "" for r in constant for k in SIGNAL_FIELDS)
    assert not (tmp_path / "constant" / "signal.png").exists()


class Settings:
    seed, diagnostics, diag_samples, diag_q_samples, diag_repeats, n_rollouts = 0, True, 300, 8, 2, 2


def test_measure_signal_uses_its_own_random_numbers() -> None:
    """The same round gives the same numbers, another round others; torch's global generator (the
    training's dropout) is never drawn from."""
    init = torch.Generator().manual_seed(0)
    generator = TokenLSTM(TokenLSTMConfig(8, 4), rng=init)
    oracle = TokenLSTM(TokenLSTMConfig(8, 4), rng=init)
    scorer = OracleScorer(oracle)
    real = oracle.sample(300, torch.Generator().manual_seed(1))
    state = torch.get_rng_state()
    first = measure_signal(Settings(), 3, generator, generator, scorer, real, oracle)
    assert torch.equal(torch.get_rng_state(), state)
    assert measure_signal(Settings(), 3, generator, generator, scorer, real, oracle) == first
    assert measure_signal(Settings(), 4, generator, generator, scorer, real, oracle) != first
    assert set(first) == set(SIGNAL_FIELDS)
    assert measure_signal(Settings(), 3, generator, generator, None, real, oracle) == {}  # no reward
    terminal = measure_signal(Settings(), 3, generator, generator, scorer, real, oracle, monte_carlo=False)
    assert terminal == {k: first[k] for k in ("d_accuracy", "d_auc", "reward_oracle_spearman")}
