"""Shared helpers of the benchmarks: timing, the machine's matmul throughput, and a machine banner.

Every benchmark prints `machine_banner()` and the 1-minute load average before it times anything:
the project's machines have 2 cores and are shared, and torch's OpenMP threads slow down badly
when another process holds a core, so a reader needs to know whether the machine was busy.

    python bench/common.py            # the banner and the large-matmul GFLOP/s of this machine
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

# Make `import seqgan_env` work when a script is run as `python bench/NAME.py` from anywhere.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


from seqgan_env.discriminator import Discriminator  # noqa: E402


class Conv1dDiscriminator(Discriminator):
    """The same model computing each convolution with its `nn.Conv1d` layer (oneDNN's kernels): the
    plain PyTorch form of the reference code's convolutions, the baselines' discriminator."""

    @staticmethod
    def _windows(x: torch.Tensor, conv: torch.nn.Conv1d) -> torch.Tensor:
        return conv(x.transpose(1, 2)).transpose(1, 2)  # [B, T-w+1, n], as Discriminator._windows


def plain_copy(disc: Discriminator) -> Conv1dDiscriminator:
    """A `Conv1dDiscriminator` with the weights and mode of `disc`."""
    plain = Conv1dDiscriminator(disc.config)
    plain.load_state_dict(disc.state_dict())
    return plain.train(disc.training)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's description elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def machine_banner() -> str:
    """Cores, torch threads, torch/python versions and the CPU model, in one line."""
    return (
        f"machine: {os.cpu_count()} cores ({cpu_model()}), torch {torch.__version__} with "
        f"{torch.get_num_threads()} intra-op threads, python {platform.python_version()}"
    )


def print_machine(note: str = "before timing") -> None:
    print(machine_banner())
    print_load(note)


def print_load(note: str) -> None:
    load = load_average()
    cores = os.cpu_count() or 1
    busy = ""
    if load > 0.5 * cores:
        busy = " (BUSY: other processes compete for the cores, timings are pessimistic"
        if torch.get_num_threads() > 1:
            busy += f"; {torch.get_num_threads()} OpenMP threads stall when a core is taken: try --threads 1"
        busy += ")"
    print(f"load average (1 min) {note}: {load:.2f} on {cores} cores{busy}")


def median_time(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall-clock seconds of `fn()` over `repeats` calls after `warmup` untimed ones,
    and the list of all timed seconds."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def alternating_times(
    fns: dict[str, Callable[[], Any]], turns: int, block: int = 1, rewarm: int = 0
) -> dict[str, list[float]]:
    """Wall-clock seconds of each timed call of each function in `fns`, run in turns: in every turn
    each function runs `rewarm` untimed calls (its caches, after the others ran) and then `block`
    timed ones. Alternating puts a change of the machine's load on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(turns):
        for name, fn in fns.items():
            for _ in range(rewarm):
                fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return times


def reference_matmul(n: int) -> Callable[[], torch.Tensor]:
    """One fp32 `torch.mm` of two seeded n x n matrices (2 n^3 FLOPs: 2 per multiply-add), the
    machine's reference throughput."""
    rng = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=rng)
    b = torch.randn(n, n, generator=rng)
    out = torch.empty(n, n)
    return lambda: torch.mm(a, b, out=out)


def matmul_gflops(n: int = 2048, repeats: int = 5, warmup: int = 1, verbose: bool = True) -> float:
    """The machine's large fp32 `torch.mm` throughput: GFLOP/s of `reference_matmul(n)`, median over
    `repeats` calls."""
    median, times = median_time(reference_matmul(n), repeats, warmup)
    flops = 2 * n**3
    gflops = flops / median / 1e9
    if verbose:
        print(
            f"large matmul: torch.mm fp32 {n}x{n} @ {n}x{n}: 2*n^3 = 2*{n}^3 = {flops / 1e9:.2f} GFLOP; "
            f"median {1e3 * median:.1f} ms over {repeats} (min {1e3 * min(times):.1f}, "
            f"max {1e3 * max(times):.1f}) -> {gflops:.1f} GFLOP/s"
        )
    return gflops


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Options every benchmark takes: torch threads and the size of the reference matmul."""
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (none: torch's choice, one per core)")
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the reference n x n matmul")
    parser.add_argument("--matmul-repeats", type=int, default=5, help="timed reference matmuls (median)")


def add_size_args(parser: argparse.ArgumentParser, n_rollouts: bool = True) -> None:
    """The paper sizes as options: V, T (the paper's filters that fit T are used) and N."""
    parser.add_argument("--vocab-size", type=int, default=5000, help="V")
    parser.add_argument("--seq-len", type=int, default=20, help="T (the paper filters that fit T are used)")
    if n_rollouts:
        parser.add_argument("--n-rollouts", type=int, default=16,
                            help="N: Monte Carlo completions per prefix")  # fmt: skip


def apply_common_args(args: argparse.Namespace) -> None:
    if args.threads is not None:
        torch.set_num_threads(args.threads)


def fmt_times(times: list[float], unit: str = "s") -> str:
    """`min / median / max` of a list of seconds, in s or ms."""
    scale = 1e3 if unit == "ms" else 1.0
    return (
        f"min {scale * min(times):.3f} / median {scale * statistics.median(times):.3f} / "
        f"max {scale * max(times):.3f} {unit} over {len(times)}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description="Print the machine and its large-matmul fp32 GFLOP/s.")
    add_common_args(p)
    args = p.parse_args()
    apply_common_args(args)
    print_machine()
    matmul_gflops(args.matmul_size, args.matmul_repeats)


if __name__ == "__main__":
    main()
