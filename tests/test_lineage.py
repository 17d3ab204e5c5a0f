"""train/lineage.py: a run started from another takes its preset, data, oracle and sizes; an option that
contradicts them is an error naming it (end to end: tests/test_train_pretrain.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from train.config import parse_config
from train.lineage import check_source, same_setting, source_base, source_settings
from train.presets import PRESETS


def source(tmp_path: Path, **settings: object) -> Path:
    folder = tmp_path / "pre"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(settings))
    return folder


def test_the_source_sets_the_preset_and_its_sizes_over_it(tmp_path: Path) -> None:
    folder = source(tmp_path, preset="tiny", vocab_size=50, n_real=128, oracle_seed=3, mle_epochs=2, rounds=9)
    base = source_base({"init_from": str(folder)}, PRESETS, "cpu")
    assert base["preset"] == "tiny" and base["n_negatives"] == PRESETS["tiny"]["n_negatives"]
    assert (base["n_real"], base["oracle_seed"], base["mle_epochs"]) == (128, 3, 2)
    assert base["rounds"] == PRESETS["tiny"]["rounds"]  # the rounds' schedule: the preset's, not the source's
    other = source_base({"init_from": str(folder), "preset": "cpu"}, PRESETS, "cpu")
    assert other["preset"] == "cpu" and other["n_real"] == 128 and other["rounds"] == PRESETS["cpu"]["rounds"]
    config = parse_config(["--init-from", str(folder), "--rounds", "1"])
    assert (config.preset, config.vocab_size, config.n_real, config.rounds) == ("tiny", 50, 128, 1)


def test_the_source_sets_its_prefix_discriminators_settings(tmp_path: Path) -> None:
    folder = source(tmp_path, preset="dense", disc_hidden_dim=32, disc_layer_norm=False, disc_beta1=0.7)
    config = parse_config(["--init-from", str(folder)])
    assert (config.reward_mode, config.disc_hidden_dim, config.disc_layer_norm, config.disc_beta1) == (
        "dense", 32, False, 0.7)
    assert parse_config(["--init-from", str(folder), "--disc-hidden-dim", "16"]).disc_hidden_dim == 16


def test_a_contradiction_names_the_option(tmp_path: Path) -> None:
    folder = source(tmp_path, preset="tiny", oracle_seed=0, seq_len=8)
    with pytest.raises(ValueError, match=r"^--oracle-seed 1 contradicts --init-from .*, made with --ora"):
        source_base({"init_from": str(folder), "oracle_seed": 1}, PRESETS, "cpu")
    with pytest.raises(ValueError, match="--seq-len 20 contradicts"):
        parse_config(["--init-from", str(folder), "--seq-len", "20"])
    check_source({"seq_len": 8, "rounds": 3}, {"seq_len": 8, "rounds": 9}, "here")  # equal, or not bound
    bad = source(tmp_path / "b", preset="huge")
    with pytest.raises(ValueError, match="names no known preset"):
        source_base({"init_from": str(bad)}, PRESETS, "cpu")


def test_a_path_is_the_same_setting_when_it_is_the_same_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "oracle.npz").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert same_setting("oracle", "oracle.npz", str(tmp_path / "oracle.npz"))
    assert not same_setting("oracle", "oracle.npz", "other.npz")
    assert not same_setting("oracle_seed", 0, 1) and same_setting("oracle", None, None)


def test_a_source_that_does_not_exist_yet_brings_nothing(tmp_path: Path) -> None:
    """train/compare.py checks the runs it will start from a SeqGAN run it has not made yet."""
    assert source_settings("--init-from", str(tmp_path / "later")) == {}
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        source_settings("--init-from", str(tmp_path))
