"""Numeric precision of the heavy products: fp32, or bf16 autocast where the hardware multiplies bf16 faster.

`--precision fp32|bf16|auto` of the scripts lands here. Under "bf16" the models' matrix products
(the discriminator's convolutions, highway and output layer; the token LSTM's cell and output layer)
run under `torch.autocast(dtype=torch.bfloat16)`; the parameters (master weights), the optimizers'
state, the losses and their reductions, softmax and sampling stay fp32. Under "fp32" nothing is
wrapped: the code path is the plain fp32 one, bit for bit.

"auto" picks bf16 only where the hardware multiplies bf16 natively and faster: on a CUDA device with
bf16 tensor cores (compute capability 8.0 and later), or on a CPU with AMX tile units or AVX-512 bf16
dot-product instructions that oneDNN uses whose bf16 products also measure at least `BF16_MARGIN`
times as fast as fp32 ones (`cpu_bf16_speedup`, timed once per process). The instructions alone do
not settle it: AMD EPYC Zen 4 and Zen 5 multiply 2 to 4.5 times faster in bf16, an Intel Xeon
(family 6, model 207, without AMX tiles) about 0.6 times as fast (docs/performance.md). Everywhere
else it picks fp32: CPUs without bf16 instructions (AVX2, AVX-512 without bf16) emulate bf16
products far slower than fp32 ones (on an AVX2 CPU about 1 GFLOP/s against 40-80 in fp32). Where
"auto" picks bf16 it puts the discriminator's training and scoring in bf16 and keeps the generator's
side (completions, MLE) in fp32 (`generator_precision`); "bf16" puts both in bf16.
"""

from __future__ import annotations

import functools
import statistics
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch

Precision = Literal["fp32", "bf16"]
PRECISION_CHOICES = ("fp32", "bf16", "auto")
BF16_MARGIN = 1.25  # how much faster a CPU's bf16 products must measure for "auto" to pick bf16


def cpu_bf16_units() -> dict[str, bool]:
    """What this CPU offers bf16 products, as torch reports it: AMX tiles, AVX-512 bf16 instructions,
    and whether oneDNN runs bf16 kernels at all."""

    def ask(name: str) -> bool:
        probe = getattr(torch.cpu, name, None)
        try:
            return bool(probe()) if probe is not None else False
        except RuntimeError:
            return False

    mkldnn = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    return {
        "amx_tile": ask("_is_amx_tile_supported"),
        "avx512_bf16": ask("_is_avx512_bf16_supported"),
        "onednn_bf16": bool(mkldnn()) if mkldnn is not None else False,
    }


def cuda_bf16_tensor_cores(device: torch.device) -> bool:
    """Whether the CUDA `device` has bf16 tensor cores (compute capability 8.0 or later)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def resolve_precision(name: str, device: str | torch.device) -> Precision:
    """The precision `name` ("fp32", "bf16" or "auto") means on `device`; a one-line error otherwise."""
    if name not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {name!r}")
    if name != "auto":
        return "bf16" if name == "bf16" else "fp32"
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if cuda_bf16_tensor_cores(device) else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_bf16_units() and cpu_bf16_speedup() >= BF16_MARGIN else "fp32"
    return "fp32"


def generator_precision(requested: str, resolved: Precision) -> Precision:
    """The token LSTM's precision (the Monte Carlo completions and MLE) when a run asked for `requested`
    and it resolved to `resolved`: bf16 only when asked for by name. `auto` keeps the generator's side
    in fp32: its products are thin at the paper's sizes (hidden size 32), and bf16 everywhere moved the
    cpu preset's NLL-oracle curve further from fp32's than the discriminator alone in bf16 did
    (docs/performance.md)."""
    return resolved if requested == "bf16" else "fp32"


def cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bf16 natively (AMX tiles, or AVX-512 bf16 that oneDNN runs)."""
    units = cpu_bf16_units()
    return units["amx_tile"] or (units["avx512_bf16"] and units["onednn_bf16"])


@functools.cache
def cpu_bf16_speedup() -> float:
    """How many times faster this CPU multiplies in bf16 than in fp32, at the current thread count: the
    ratio of the medians of 5 alternating timings of a [1024, 640] x [640, 200] product (the size of a
    discriminator convolution's at batch 64), tens of milliseconds in all; measured once per process."""
    own = torch.Generator().manual_seed(0)  # a generator of its own: the run's random streams stay untouched
    a, b = torch.randn(1024, 640, generator=own), torch.randn(640, 200, generator=own)
    pairs = {torch.float32: (a, b), torch.bfloat16: (a.bfloat16(), b.bfloat16())}
    seconds: dict[torch.dtype, list[float]] = {dtype: [] for dtype in pairs}
    for repeat in range(6):  # the first pass warms up (oneDNN builds its kernels)
        for dtype, (x, y) in pairs.items():
            start = time.perf_counter()
            torch.mm(x, y)
            if repeat:
                seconds[dtype].append(time.perf_counter() - start)
    return statistics.median(seconds[torch.float32]) / statistics.median(seconds[torch.bfloat16])


def autocast(precision: str, device: torch.device) -> AbstractContextManager[object]:
    """bf16 autocast on `device` for "bf16"; nothing at all (the plain fp32 path) for "fp32"."""
    if precision == "fp32":
        return nullcontext()
    if precision != "bf16":
        raise ValueError(f"precision must be 'fp32' or 'bf16' here (resolve 'auto' first), got {precision!r}")
    # No cast cache: each weight is cast once per call anyway, and CUDA graph capture forbids it.
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=False)
