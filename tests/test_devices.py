"""Devices: names are checked once (`resolve_device`), and every random generator the training scripts
make names the device it samples on. Torch refuses a CPU generator for CUDA sampling, so a generator
made without a device (the CPU) crashes a `--device cuda` run at its first draw; this suite checks the
rule on the CPU, and tests/test_gpu.py runs the scripts on a GPU where there is one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from seqgan_env.devices import resolve_device, rng_device
from train.evaluation import Evaluator

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("name", "error"),
    [("foo", "is not a torch device name"), ("meta", "is not supported"), ("", "is not a torch device name"),
     (3, "must be a string")],
)  # fmt: skip
def test_bad_device_names(name: object, error: str) -> None:
    with pytest.raises((ValueError, TypeError), match=error):
        resolve_device(name)  # type: ignore[arg-type]


def test_cpu_and_missing_cuda() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert rng_device(None) == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


class RecordingGenerator(torch.Generator):
    """torch.Generator that records the device each was made with (None: not named)."""

    made: ClassVar[list[str | None]] = []

    def __new__(cls, device: str | torch.device | None = None) -> RecordingGenerator:
        RecordingGenerator.made.append(None if device is None else str(torch.device(device)))
        return super().__new__(cls, "cpu" if device is None else device)


def load_script(name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "train" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_generator_of_a_run_names_its_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A whole tiny run (MLE, discriminator pre-training, rounds, evaluations): every generator is made
    with an explicit device, and those that draw on the models' device are on the configured one."""
    monkeypatch.setattr(torch, "Generator", RecordingGenerator)
    RecordingGenerator.made.clear()
    script = load_script("adversarial")
    seen: dict[str, torch.device] = {}
    original = Evaluator.__call__

    def evaluate(self: object, generator: object, test_data: object, rng: torch.Generator) -> object:
        seen["eval"] = rng.device
        return original(self, generator, test_data, rng)

    monkeypatch.setattr(Evaluator, "__call__", evaluate)
    args = ["--preset", "tiny", "--threads", "1", "--n-real", "64", "--n-test", "32", "--eval-samples", "64",
            "--n-negatives", "32", "--rounds", "2", "--device", "cpu", "--out", str(tmp_path), "--name", "r"]
    assert script.main(args) == 0, capsys.readouterr().err
    assert RecordingGenerator.made and None not in RecordingGenerator.made, RecordingGenerator.made
    assert seen["eval"] == torch.device("cpu")
