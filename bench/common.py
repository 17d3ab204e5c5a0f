"""Shared helpers of the benchmarks: timing, the machine's matmul throughput, and a machine banner.

Every benchmark prints `machine_banner()` (CPU model, the vector instruction set torch's kernels use,
the CPU's bf16 units, torch version and threads, the GPU if one is used) and the 1-minute load average
before it times anything: the project's machines have 2 cores and are shared, and torch's OpenMP
threads slow down badly when another process holds a core, so a reader needs to know whether the
machine was busy. Everything a benchmark prints is also saved (`--save`, by default
bench/results/NAME.txt), with the machine's description as JSON beside it (NAME.json).

    python bench/common.py            # the banner and the large-matmul GFLOP/s of this machine
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import torch

# Make `import seqgan_env` work when a script is run as `python bench/NAME.py` from anywhere.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


from seqgan_env.discriminator import Discriminator, group_filters, per_filter  # noqa: E402
from seqgan_env.precision import (  # noqa: E402
    cpu_bf16_speedup,
    cpu_bf16_units,
    cpu_has_bf16_units,
    resolve_precision,
)
from train.allocator import keep_freed_memory  # noqa: E402

# Whether `apply_common_args` set the scripts' allocator setting (None: not asked).
ALLOCATOR: dict[str, bool | None] = {"kept": None}
MALLOC_NOTE = {True: "; malloc keeps freed memory (train/allocator.py)",
               False: "; malloc: glibc's own thresholds", None: ""}  # fmt: skip


class Conv1dDiscriminator(Discriminator):
    """The same model computing each convolution with its `nn.Conv1d` layer (oneDNN's kernels): the
    plain PyTorch form of the reference code's convolutions, the baselines' discriminator."""

    @staticmethod
    def _windows(x: torch.Tensor, conv: torch.nn.Conv1d) -> torch.Tensor:
        return conv(x.transpose(1, 2)).transpose(1, 2)  # [B, T-w+1, n], as Discriminator._windows


class FusedHighwayDiscriminator(Discriminator):
    """The same model with the highway's transform and gate as one [d, 2d] product."""

    def _head(self, pooled: list[torch.Tensor]) -> torch.Tensor:
        h = torch.relu(torch.cat(pooled, dim=1))
        weight = torch.cat([self.highway_transform.weight, self.highway_gate.weight])
        bias = torch.cat([self.highway_transform.bias, self.highway_gate.bias])
        transform, gate = torch.nn.functional.linear(h, weight, bias).chunk(2, dim=1)
        gate = torch.sigmoid(gate)
        h = gate * torch.relu(transform) + (1.0 - gate) * h
        return self.output(self.dropout(h))


def grouped_copy(disc: Discriminator, max_width_ratio: float, fuse_highway: bool = False) -> Discriminator:
    """A copy of `disc` (weights, mode, precision) with its filters grouped into fewer, larger products
    (`group_filters`; 1: one per filter as the paper's widths all differ), and with `fuse_highway` the
    highway's two products as one."""
    grouped = (FusedHighwayDiscriminator if fuse_highway else Discriminator)(disc.config)
    grouped.load_state_dict(disc.state_dict())
    grouped.precision = disc.precision
    grouped.filter_groups = group_filters(disc.config.filters, max_width_ratio)
    return grouped.train(disc.training)


def dispatched_ops(fn: Callable[[], Any]) -> int:
    """The aten operators one call of `fn` dispatches, views excluded: what a GPU launches a kernel
    for (a CUDA graph replays them, torch.compile fuses them), counted the same on any machine."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            if func.namespace == "aten" and not func.is_view and func.__name__ != "_unsafe_view.default":
                Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


def plain_copy(disc: Discriminator) -> Conv1dDiscriminator:
    """A `Conv1dDiscriminator` with the weights and mode of `disc`, each filter its own layer on any
    device (not CUDA's one product)."""
    plain = Conv1dDiscriminator(disc.config)
    plain.load_state_dict(disc.state_dict())
    plain.filter_groups = per_filter(len(disc.config.filters))
    return plain.train(disc.training)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo with its family and model numbers (a VM may show only
    "AMD EPYC": the numbers tell its generations apart), or the platform's description elsewhere."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not key.strip():
                    break  # the first CPU's block ends
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or platform.machine() or "unknown"
    numbers = [f"{k} {fields[k]}" for k in ("cpu family", "model") if k in fields]
    return fields["model name"] + (f" ({', '.join(numbers)})" if numbers else "")


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def machine_info() -> dict[str, Any]:
    """The machine a figure was measured on: CPU model and cores, the vector ISA torch's CPU kernels
    dispatch to (`torch.backends.cpu.get_cpu_capability()`), the CPU's bf16 units (AMX tiles, AVX-512
    bf16, oneDNN bf16) and, where it has some, how much faster it multiplies in bf16 than in fp32, what
    `--precision auto` picks on the CPU, torch/python versions, torch threads,
    and the CUDA device where one is present."""
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        **{f"cpu_{k}": v for k, v in cpu_bf16_units().items()},
        "cpu_bf16_speedup": round(cpu_bf16_speedup(), 2) if cpu_has_bf16_units() else None,
        "auto_precision_cpu": resolve_precision("auto", "cpu"),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "malloc_keeps_freed_memory": ALLOCATOR["kept"],
        "python": platform.python_version(),
        "cuda_device": None,
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        info["auto_precision_cuda"] = resolve_precision("auto", "cuda")
    return info


def machine_banner() -> str:
    """The machine in two lines: cores, CPU model and its vector ISA and bf16 units; torch, threads."""
    m = machine_info()
    units = ", ".join(k for k in ("amx_tile", "avx512_bf16", "onednn_bf16") if m[f"cpu_{k}"]) or "none"
    if m["cpu_bf16_speedup"] is not None:
        units += f", bf16 products {m['cpu_bf16_speedup']:.2f}x as fast as fp32"
    gpu = "" if m["cuda_device"] is None else f"; GPU {m['cuda_device']} (sm {m['cuda_capability']})"
    return (
        f"machine: {m['cores']} cores ({m['cpu_model']}), torch CPU kernels {m['cpu_capability']}, bf16 "
        f"units: {units} (--precision auto on CPU: {m['auto_precision_cpu']}){gpu}\n"
        f"torch {m['torch']} with {m['torch_threads']} intra-op threads, python {m['python']}"
        + MALLOC_NOTE[m["malloc_keeps_freed_memory"]]
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
    parser.add_argument("--save", default=f"bench/results/{Path(sys.argv[0]).stem}",
                        help="save the output to SAVE.txt and the machine to SAVE.json, a path relative to "
                             "the repository ('' saves nothing)")  # fmt: skip


def add_size_args(parser: argparse.ArgumentParser, n_rollouts: bool = True) -> None:
    """The paper sizes as options: V, T (the paper's filters that fit T are used) and N."""
    parser.add_argument("--vocab-size", type=int, default=5000, help="V")
    parser.add_argument("--seq-len", type=int, default=20, help="T (the paper filters that fit T are used)")
    if n_rollouts:
        parser.add_argument("--n-rollouts", type=int, default=16,
                            help="N: Monte Carlo completions per prefix")  # fmt: skip


def apply_common_args(args: argparse.Namespace) -> None:
    """Set torch's threads and the scripts' allocator setting (train/allocator.py), then save everything
    printed from here on (see `save_output`)."""
    ALLOCATOR["kept"] = keep_freed_memory()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.save:
        save_output(Path(REPO_ROOT) / args.save)


class _Tee:
    """stdout that also writes to a file."""

    def __init__(self, stream: TextIO, file: TextIO) -> None:
        self.stream, self.file = stream, file

    def write(self, text: str) -> int:
        self.file.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.file.flush()
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def save_output(stem: Path) -> None:
    """Copy everything printed to `stem`.txt and write the command and `machine_info()` to `stem`.json
    (at exit, so the thread count is the one the benchmark ran with)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    text = open(stem.with_suffix(".txt"), "w", encoding="utf-8")
    tee = sys.stdout = _Tee(sys.stdout, text)
    command = " ".join(["python", os.path.relpath(sys.argv[0], REPO_ROOT), *sys.argv[1:]])
    started = time.strftime("%Y-%m-%d %H:%M:%S %z")

    def finish() -> None:
        record = {"command": command, "started": started, "machine": machine_info(),
                  "output": str(stem.with_suffix(".txt"))}  # fmt: skip
        stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
        tee.flush()
        sys.stdout = tee.stream
        text.close()

    atexit.register(finish)
    # A time limit's SIGTERM (`timeout`) ends the run as an exit, so that what was printed is saved.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


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
