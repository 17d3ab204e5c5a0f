"""train/probe_discriminator.py at tiny size: it trains a discriminator against a run's fixed
generator and writes one row of held-out/training AUC and reward-quality correlation per repeat;
bad options are one-line errors with nothing written."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HANG_GUARD

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "tiny", "--threads", "1", "--n-real", "128", "--n-test", "64", "--eval-samples", "128",
        "--n-negatives", "64"]  # fmt: skip
PROBE = ["--repeats", "3", "--n-negatives", "64", "--eval-samples", "64", "--threads", "1"]


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train" / f"{name}.py"), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=HANG_GUARD)  # fmt: skip


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe")
    result = script("pretrain", *TINY, "--out", str(out), "--name", "pre")
    assert result.returncode == 0, result.stderr[-2000:]
    return out / "pre"


def rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_probe_writes_a_row_per_repeat_and_is_seeded(pretrained: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = script("probe_discriminator", "--pretrained", str(pretrained), *PROBE, "--disc-lr", "1e-3",
                        "--out", str(tmp_path), "--name", name)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
    a, b = rows(tmp_path / "a"), rows(tmp_path / "b")
    assert [r["repeat"] for r in a] == ["1", "2", "3"]
    for r in a:
        assert 0 <= float(r["heldout_auc"]) <= 1 and 0 <= float(r["train_auc"]) <= 1
        assert -1 <= float(r["reward_oracle_spearman"]) <= 1 and float(r["d_loss"]) > 0
    drop = ("elapsed_s",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in a] == [
        {k: v for k, v in r.items() if k not in drop} for r in b
    ]  # same seed, same numbers
    assert (tmp_path / "a" / "config.json").is_file()


def test_probe_sizes_from_the_options(pretrained: Path, tmp_path: Path) -> None:
    result = script("probe_discriminator", "--pretrained", str(pretrained), *PROBE, "--repeats", "1",
                    "--disc-filters", "2:5,3:7", "--disc-embed-dim", "6", "--out", str(tmp_path),
                    "--name", "s")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    config = (tmp_path / "s" / "config.json").read_text()
    assert '"embed_dim": 6' in config and "[\n        3,\n        7\n      ]" in config


@pytest.mark.parametrize(("args", "message"), [
    ([], "--pretrained RUN is required"),
    (["--pretrained", "nowhere"], "no such folder"),
    (["--disc-lr", "nan"], "--disc-lr must be a finite number"),
    (["--disc-lr", "0"], "--disc-lr must be in (0, 1], got 0"),
    (["--disc-lr", "1e30"], "--disc-lr must be in (0, 1], got 1e+30"),
    (["--l2-reg", "1e38"], "--l2-reg must be in [0, 1e+06], got 1e+38"),
    (["--repeats", "0"], "--repeats must be >= 1"),
    (["--disc-dropout", "1"], "--disc-dropout must be in [0, 1)"),
    (["--eval-samples", "1"], "--eval-samples must be >= 2"),
    (["--disc-filters", "9:4"], "do not fit"),
    (["--disc-filters", "1:0"], "--disc-filters: filter counts must be >= 1, got [0]"),
    (["--disc-filters", "4:3,2:-1"], "--disc-filters: filter counts must be >= 1, got [-1]"),
    (["--disc-filters", "RUN"], "--disc-filters must be 'run', 'paper' or width:filters pairs, got 'RUN'"),
    (["--disc-embed-dim", str(10**12)], "--disc-embed-dim or --disc-filters (about"),
    (["--kind", "prefix", "--disc-hidden-dim", str(10**7)], "GiB: lower --disc-hidden-dim (about"),
    (["--n-real", str(10**14)], "GiB: lower --n-real (about"),
    (["--device", "foo"], "foo"),
    (["--name", "../x"], "plain folder name"),
])  # fmt: skip
def test_probe_bad_options(pretrained: Path, tmp_path: Path, args: list[str], message: str) -> None:
    base = [] if not args or args[0] == "--pretrained" else ["--pretrained", str(pretrained)]
    result = script("probe_discriminator", *base, *args, "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_probe_refuses_a_text_run(pretrained: Path, tmp_path: Path) -> None:
    """A text run has no oracle: the probe's reward-quality correlation and its extra real sequences
    have none to come from."""
    text = tmp_path / "text"
    shutil.copytree(pretrained, text)
    config = json.loads((text / "config.json").read_text())
    (text / "config.json").write_text(json.dumps({**config, "data": "corpus.txt"}))
    result = script("probe_discriminator", "--pretrained", str(text), *PROBE, "--n-real", "1000",
                    "--out", str(tmp_path / "out"))  # fmt: skip
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "text is a text run (--data corpus.txt): the probe measures against the oracle" in result.stderr
    assert not (tmp_path / "out").exists()


def test_probe_trains_balanced_sets_and_measures_on_every_held_out_sequence(
    pretrained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each set is --n-negatives fresh samples against as many real sequences (the rounds' balanced
    sets, through their own updater), and held-out AUC scores all of the run's held-out sequences."""
    import train.probe_discriminator as probe_script
    from seqgan_env.discriminator import Discriminator

    fits: list[tuple[int, int]] = []
    aucs: list[tuple[int, int]] = []
    fit, auc = Discriminator.fit, probe_script.discriminator_accuracy_auc

    def spy_fit(self, optimizer, real, fake, *args, **kwargs):
        fits.append((len(real), len(fake)))
        return fit(self, optimizer, real, fake, *args, **kwargs)

    def spy_auc(scorer, real, fake):
        aucs.append((len(real), len(fake)))
        return auc(scorer, real, fake)

    monkeypatch.setattr(Discriminator, "fit", spy_fit)
    monkeypatch.setattr(probe_script, "discriminator_accuracy_auc", spy_auc)
    code = probe_script.main(["--pretrained", str(pretrained), "--repeats", "2", "--n-negatives", "32",
                              "--eval-samples", "16", "--threads", "1", "--out", str(tmp_path),
                              "--name", "b"])  # fmt: skip
    assert code == 0
    assert fits == [(32, 32), (32, 32)]  # the run has 128 real sequences: a balanced 32 of them per set
    assert aucs == [(64, 16), (16, 16)] * 2  # held-out: all 64 of the run's; training: 16 of the set's


def test_probe_of_the_prefix_discriminator_with_more_real_data(pretrained: Path, tmp_path: Path) -> None:
    result = script("probe_discriminator", "--pretrained", str(pretrained), *PROBE, "--kind", "prefix",
                    "--disc-hidden-dim", "8", "--disc-lr", "1e-2", "--n-real", "300", "--out", str(tmp_path),
                    "--name", "p")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    found = rows(tmp_path / "p")
    assert [r["repeat"] for r in found] == ["1", "2", "3"] and {r["n_real"] for r in found} == {"300"}
    for r in found:
        assert -1 <= float(r["dense_oracle_spearman"]) <= 1 and 0 <= float(r["heldout_auc"]) <= 1
    config = (tmp_path / "p" / "config.json").read_text()
    assert '"hidden_dim": 8' in config and '"kind": "prefix"' in config
