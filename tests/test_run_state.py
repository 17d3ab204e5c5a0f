"""A run state (a checkpoint of train/adversarial.py) that was damaged or edited by hand is refused with
one line, before anything is written: by a resume, by --init-from and by the later scripts'
--pretrained. Without these checks a moment of the wrong shape reached the fused Adam kernel, which
writes past its buffers (the process died of a segmentation fault), and a missing entry or data out
of the vocabulary was a traceback in the middle of the run."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from test_bad_input import check_message, load_script, run_main, snapshot

from train.sources import load_pretrained

TINY = ["--preset", "tiny", "--threads", "1", "--n-real", "64", "--n-test", "32", "--eval-samples", "64",
        "--n-negatives", "32", "--disc-pretrain-repeats", "1", "--rounds", "1",
        "--no-diagnostics"]  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run (its final.pt holds every entry of a run state)."""
    out = tmp_path_factory.mktemp("runs")
    module = load_script("adversarial")
    assert module.main([*TINY, "--out", str(out), "--name", "run"]) == 0
    return out / "run"


Edit = Callable[[dict[str, Any]], None]


def each_moment(state: dict[str, Any], optimizer: str, key: str, value: Callable[[Any], Any]) -> None:
    """Replace moment `key` of every parameter of `optimizer` ("pg", "mle" or "discriminator")."""
    saved = (state["discriminator_updater"]["optimizer"] if optimizer == "discriminator"
             else state["optimizers"][optimizer])  # fmt: skip
    for entry in saved["state"].values():
        entry[key] = value(entry[key])


EDITS: list[tuple[str, Edit, str]] = [
    ("pg moment of another shape", lambda s: each_moment(s, "pg", "exp_avg", lambda _: torch.zeros(3, 3)),
     r"the optimizer's state of parameter 0: exp_avg has shape \(3, 3\), the parameter \(50, 32\)"),
    ("discriminator moment 0-d",
     lambda s: each_moment(s, "discriminator", "exp_avg", lambda _: torch.tensor(1.0)),
     r"exp_avg has shape \(\), the parameter"),
    ("negative second moment", lambda s: each_moment(s, "mle", "exp_avg_sq", lambda m: -m - 1),
     r"exp_avg_sq, a mean of squares, holds negative values"),
    ("step not a count", lambda s: each_moment(s, "pg", "step", lambda _: "x"),
     r"step is 'x', expected a finite count >= 0"),
    ("moment missing", lambda s: [e.pop("exp_avg") for e in s["optimizers"]["mle"]["state"].values()],
     r"holds \['exp_avg_sq', 'step'\], expected \['exp_avg', 'exp_avg_sq', 'step'\]"),
    ("state of a stray parameter", lambda s: s["optimizers"]["pg"]["state"].update({"7": {}}),
     r"the optimizer holds state for parameters \['7'\] it does not have"),
    ("no rng", lambda s: s.pop("rng"), r"latest\.pt: rng is None, expected dict"),
    ("rng not a generator state", lambda s: s["rng"].update(torch=torch.zeros(5)),
     r"rng torch is a torch\.float32 tensor \(5,\), expected a random generator's state"),
    ("data beyond the vocabulary", lambda s: s["data"]["real"].fill_(10**6),
     r"data real: token ids in \[1000000, 1000000\], expected \[0, 49\]"),
    ("data of another length", lambda s: s["data"].update(test=torch.zeros(4, 3, dtype=torch.long)),
     r"data test: torch\.int64 \(4, 3\), expected int64 token sequences \[N, 8\]"),
    ("data as floats", lambda s: s["data"].update(real=s["data"]["real"].float()),
     r"data real: torch\.float32 .*, expected int64 token sequences"),
    ("no data", lambda s: s["data"].update(real=s["data"]["real"][:0]), r"data real holds no sequences"),
    ("unknown stage", lambda s: s.update(stage="bogus"), r"stage 'bogus', expected one of mle, discrim"),
    ("progress not a count", lambda s: s.update(progress="a"), r"progress is a, expected int"),
    ("negative elapsed time", lambda s: s.update(elapsed_s=-1.0), r"elapsed_s -1\.0, expected a finite"),
    ("metrics rows without a step", lambda s: s["metrics"].append({"phase": "mle"}),
     r"metrics row \{'phase': 'mle'\}, expected a dict with a phase and a step"),
    ("ema baseline not a number", lambda s: s.update(ema_baseline="x"), r"ema_baseline is x, expected a"),
    ("updater counter negative", lambda s: s["discriminator_updater"].update(trainings=-2),
     r"trainings is -2, expected a count >= 0"),
    ("updater episodes beyond the vocabulary",
     lambda s: s["discriminator_updater"].update(finished=torch.full((2, 8), 99)),
     r"finished episodes: token ids in \[99, 99\], expected \[0, 50\]"),
    ("weights of another shape", lambda s: s["rollout_policy"]["state_dict"].update(
        {"output.bias": torch.zeros(3)}), r"entry 'rollout_policy': output\.bias has shape \(3,\)"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "pattern"), [c[1:] for c in EDITS], ids=[c[0] for c in EDITS])
def test_a_resume_refuses_a_damaged_run_state(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    edit: Edit, pattern: str,
) -> None:  # fmt: skip
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    state = torch.load(run / "final.pt", weights_only=True)
    edit(state)
    torch.save(state, run / "latest.pt")
    before = snapshot(tmp_path)
    code, out, err = run_main(load_script("adversarial"), ["--resume", str(run)], capsys)
    assert code == 2, (code, out, err)
    check_message(err.strip().splitlines()[-1], pattern, tmp_path)
    assert snapshot(tmp_path) == before


def test_an_intact_run_state_resumes(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The checks pass what the script itself wrote (a control for the cases above)."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    shutil.copy(run / "final.pt", run / "latest.pt")
    code, out, err = run_main(load_script("adversarial"), ["--resume", str(run)], capsys)
    assert code == 0, (code, out, err)


def test_init_from_refuses_a_damaged_optimizer_and_writes_nothing(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "source"
    shutil.copytree(finished_run, source)
    state = torch.load(source / "pretrained.pt", weights_only=True)
    each_moment(state, "discriminator", "exp_avg_sq", lambda _: torch.zeros(2, 2))
    torch.save(state, source / "pretrained.pt")
    (tmp_path / "out").mkdir()
    argv = [*TINY, "--init-from", str(source), "--out", str(tmp_path / "out")]
    code, out, err = run_main(load_script("adversarial"), argv, capsys)
    assert code == 2, (code, out, err)
    check_message(err.strip().splitlines()[-1], r"pretrained\.pt: the optimizer's state of parameter 0: "
                  r"exp_avg_sq has shape \(2, 2\)", tmp_path)  # fmt: skip
    assert list((tmp_path / "out").iterdir()) == []


def test_a_later_script_refuses_damaged_pretraining(finished_run: Path, tmp_path: Path) -> None:
    """train/sb3.py and train/rllib.py read a run's pre-training through `load_pretrained`."""
    source = tmp_path / "source"
    shutil.copytree(finished_run, source)
    state = torch.load(source / "pretrained.pt", weights_only=True)
    state["data"]["test"] = state["data"]["test"].float()
    torch.save(state, source / "pretrained.pt")
    with pytest.raises(ValueError, match=r"pretrained\.pt: data test: torch\.float32 .* expected int64"):
        load_pretrained(source)
