"""--precision: what fp32, bf16 and auto mean on each device, and where the scripts take it."""

from __future__ import annotations

import pytest
import torch

from seqgan_env import precision
from seqgan_env.precision import autocast, resolve_precision
from train.config import parse_config


def test_fp32_and_bf16_mean_themselves_anywhere():
    for device in ("cpu", "cuda", "mps"):
        assert resolve_precision("fp32", device) == "fp32"
        assert resolve_precision("bf16", device) == "bf16"


@pytest.mark.parametrize("name", ["fp16", "BF16", "", "auto "])
def test_an_unknown_precision_is_a_one_line_error(name):
    with pytest.raises(ValueError, match=r"precision must be one of fp32, bf16, auto, got"):
        resolve_precision(name, "cpu")


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "onednn_bf16", "expected"),
    [
        (True, True, True, "bf16"),  # AMX tiles
        (True, False, True, "bf16"),
        (False, True, True, "bf16"),  # AVX-512 bf16 dot products, run by oneDNN
        (False, True, False, "fp32"),  # the instructions, but no oneDNN bf16 kernels to use them
        (False, False, True, "fp32"),  # AVX2 or plain AVX-512: bf16 only emulated
        (False, False, False, "fp32"),
    ],
)
def test_auto_on_a_cpu_picks_bf16_only_with_bf16_units(monkeypatch, amx, avx512_bf16, onednn_bf16, expected):
    """Where the bf16 products would measure faster, the units decide; without units nothing is timed."""
    units = {"amx_tile": amx, "avx512_bf16": avx512_bf16, "onednn_bf16": onednn_bf16}
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: units)
    timed = []
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: timed.append(1) or 3.0)
    assert resolve_precision("auto", "cpu") == expected
    assert len(timed) == (expected == "bf16")


@pytest.mark.parametrize(
    ("speedup", "expected"), [(3.0, "bf16"), (1.25, "bf16"), (1.2, "fp32"), (0.6, "fp32")]
)
def test_auto_on_a_cpu_with_bf16_units_picks_bf16_only_where_it_is_faster(monkeypatch, speedup, expected):
    """bf16 units that multiply slower than the fp32 ones (0.6x on an Intel Xeon without AMX tiles, where
    AMD's Zen 4 and 5 are 2 to 4.5 times faster in bf16) leave `auto` in fp32, as does a gain under 1.25x."""
    monkeypatch.setattr(precision, "cpu_bf16_units",
                        lambda: {"amx_tile": False, "avx512_bf16": True, "onednn_bf16": True})  # fmt: skip
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: speedup)
    assert resolve_precision("auto", "cpu") == expected


@pytest.mark.parametrize(("capability", "expected"), [((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "fp32")])
def test_auto_on_cuda_picks_bf16_with_bf16_tensor_cores(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision("auto", "cuda") == expected


def test_measuring_the_bf16_speed_leaves_torch_s_random_state_alone():
    """`auto` may measure while a run is set up, after its seeds: the run's random streams must not move."""
    before = torch.get_rng_state()
    precision.cpu_bf16_speedup.__wrapped__()  # measured again, past the cache
    assert torch.equal(torch.get_rng_state(), before)


def test_this_machine_reports_its_bf16_units_and_measures_its_bf16_speed_once():
    units = precision.cpu_bf16_units()
    assert set(units) == {"amx_tile", "avx512_bf16", "onednn_bf16"}
    speedup = precision.cpu_bf16_speedup()
    assert 0 < speedup < float("inf") and precision.cpu_bf16_speedup() == speedup  # measured once
    assert resolve_precision("auto", "cpu") in ("fp32", "bf16")
    if not precision.cpu_has_bf16_units():
        assert resolve_precision("auto", "cpu") == "fp32"


@pytest.mark.parametrize(
    ("requested", "resolved", "expected"),
    [("auto", "bf16", "fp32"), ("auto", "fp32", "fp32"), ("bf16", "bf16", "bf16"), ("fp32", "fp32", "fp32")],
)
def test_the_generator_runs_in_bf16_only_when_asked_for_by_name(requested, resolved, expected):
    assert precision.generator_precision(requested, resolved) == expected


def test_fp32_wraps_nothing_and_bf16_autocasts_the_products():
    x = torch.randn(4, 8)
    with autocast("fp32", torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
        assert (x @ x.T).dtype == torch.float32
    with autocast("bf16", torch.device("cpu")):
        assert (x @ x.T).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        autocast("auto", torch.device("cpu"))


def test_the_paper_preset_uses_auto_and_the_others_fp32(tmp_path):
    common = ["--out", str(tmp_path)]
    assert parse_config(["--preset", "paper", *common]).precision == "auto"
    assert parse_config(common).precision == "fp32"  # the cpu preset, the default
    assert parse_config(["--preset", "tiny", *common]).precision == "fp32"
    assert parse_config(["--preset", "paper", "--precision", "fp32", *common]).precision == "fp32"
    with pytest.raises(ValueError, match=r"--precision: invalid choice: 'fp16' \(choose from 'fp32', 'bf16'"):
        parse_config(["--precision", "fp16", *common])
