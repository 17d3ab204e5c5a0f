"""The paper's discriminator step and one whole paper round on a GPU, in each precision.

Part 1, the discriminator's training step at batch 64 (the paper's model), median over --d-steps
steps after a warm-up, alternating: plain steps (one launch per kernel) and steps replayed from a CUDA
graph (`seqgan_env/cuda_graphs.py`), in fp32, TF32 (fp32 products on the tensor cores) and bf16
(autocast), with one product per filter and (TF32, bf16) the filters as one product
(`Discriminator.filter_groups`), each against the large matmul of the same precision on the same
device (on a CPU: plain fp32 and bf16, and bf16 as one product), with the kernels a step launches (on
a CPU: the operators it dispatches).
Part 2, one adversarial round of the paper schedule timed end to end (all 5 x 3 x 312 discriminator
steps, not extrapolated), in fp32 and in --precision auto (--round-precisions): the generator step
(64 sequences, their Monte Carlo rewards with N 16, one policy-gradient step; on a GPU also with the
search run eagerly rather than replayed from its CUDA graphs, and its kernels and CUDA runtime calls),
the negatives (5 x 9,984 samples) and the discriminator's training, with the projection of the paper's
whole experiment from it.
Last, with --compile, the bf16 steps with the loss through `torch.compile` (inductor's fused kernels,
in the CUDA graph on a GPU), compiled once and timed as in part 1. The parts come in the order of what
a time limit should keep, each printed as it is measured.

    python bench/bench_gpu.py                       # on the GPU, paper sizes
    python bench/bench_gpu.py --device cpu --tiny   # a smoke test of the same code on the CPU
    python bench/bench_gpu.py --compile --skip-round   # the steps alone, a compiled one among them
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import common  # noqa: F401  (puts the repository on sys.path)
import torch
from common import add_common_args, apply_common_args, dispatched_ops, print_load, print_machine

from agents.reinforce import ReinforceAgent
from seqgan_env.discriminator import (
    Discriminator,
    DiscriminatorConfig,
    count_forward_flops,
    one_product,
    paper_filters,
    per_filter,
)
from seqgan_env.oracle import random_oracle
from seqgan_env.precision import (
    PRECISION_CHOICES,
    cpu_has_bf16_units,
    generator_precision,
    resolve_precision,
)
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig
from seqgan_env.vector_env import SeqGANVectorEnv
from seqgan_env.wrappers import DiscriminatorSchedule, DiscriminatorUpdater

PAPER = {"V": 5000, "T": 20, "B": 64, "N": 16, "n_real": 9984, "repeats": 5, "epochs": 3, "embed": 64}
TINY = {"V": 50, "T": 8, "B": 16, "N": 4, "n_real": 256, "repeats": 2, "epochs": 1, "embed": 8}
ROUNDS, MLE_EPOCHS, D_PRETRAIN = 200, 120, 50
COMPILED = "compiled bf16"  # torch.compile(loss), graphed on CUDA
GROUPED = "one-product"  # the filters' convolutions as one matrix product (Discriminator.filter_groups)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall-clock seconds of `fn()`, the device's queue drained before and after."""
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 5) -> float:
    """TFLOP/s of an n x n x n product of `dtype` on `device` (median of `repeats`)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    return 2 * n**3 / statistics.median(timed(lambda: a @ b, device) for _ in range(repeats)) / 1e12


def d_step_times(
    s: dict[str, int], device: torch.device, steps: int, compiled: bool = False
) -> dict[str, tuple[float, str]]:
    """Median seconds of one training step at batch B for each variant (graphed or not, precision, the
    filters one product per filter or all as one; `compiled`: instead the graphed bf16 steps of a
    `torch.compile`d loss, fused kernels in the graph), each with the kernels a step launches."""
    config = DiscriminatorConfig(s["V"], s["T"], s["embed"], paper_filters(s["T"]))
    rng = torch.Generator().manual_seed(0)
    rows = s["B"] * (steps + 8)  # fit() runs whole epochs: one epoch of `steps` + 8 full batches is timed
    real = torch.randint(s["V"], (rows // 2, s["T"]), generator=rng)
    fake = torch.randint(s["V"], (rows - rows // 2, s["T"]), generator=rng)
    variants: dict[str, tuple[bool, str, bool, bool]] = {}  # name: graphs, precision, grouped, compiled
    cuda = device.type == "cuda"
    if compiled:
        variants[COMPILED] = (cuda, "bf16", False, True)
        variants[f"{COMPILED} {GROUPED}"] = (cuda, "bf16", True, True)
    else:
        for graphs in (False, True) if cuda else (False,):
            kind = "graphed" if graphs else "plain"
            for precision in ("fp32", "tf32", "bf16") if cuda else ("fp32", "bf16"):
                variants[f"{kind} {precision}"] = (graphs, precision, False, False)
        kind = "graphed" if cuda else "plain"
        for precision in ("tf32", "bf16") if cuda else ("bf16",):
            variants[f"{kind} {precision} {GROUPED}"] = (cuda, precision, True, False)
    n_filters = len(config.filters)
    times: dict[str, list[float]] = {name: [] for name in variants}
    kernels: dict[str, str] = {}
    kept: dict[str, Discriminator] = {}  # a compiled variant is compiled once and reused
    for repeat in range(3):  # alternate the variants: a change of the machine's state hits all alike
        for name, (graphs, precision, grouped, compile_loss) in list(variants.items()):
            torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
            torch.backends.cudnn.allow_tf32 = precision == "tf32"
            disc = kept.get(name) or Discriminator(config, rng=torch.Generator().manual_seed(1)).to(device)
            disc.precision = "bf16" if precision == "bf16" else "fp32"
            disc.cuda_graphs = graphs
            disc.filter_groups = one_product(n_filters) if grouped else per_filter(n_filters)
            opt = disc.make_optimizer()
            try:
                if compile_loss and name not in kept:  # `fit` compiles its loss at its first full batch
                    disc.compiled = True
                    kept[name] = disc
                disc.fit(opt, real[: 4 * s["B"]], fake[: 4 * s["B"]], 1, s["B"])  # warm-up (and capture)
                if compile_loss and not disc.compiled:  # fit said why (a warning)
                    raise RuntimeError("torch.compile failed: the step would run uncompiled")
                if name not in kernels:
                    kernels[name] = step_kernels(disc, opt, real[: s["B"]].to(device), device, compile_loss)
                seconds = timed(lambda d=disc, o=opt: d.fit(o, real, fake, 1, s["B"]), device)
            except Exception as err:  # a probe: report it and go on with the other variants
                print(f"  {name}: failed ({type(err).__name__}: {str(err).splitlines()[0][:200]})")
                del variants[name], times[name]
                continue
            times[name].append(seconds / math.ceil(rows / s["B"]))
            print(f"    pass {repeat + 1}, {name}: {1e3 * times[name][-1]:.3f} ms/step", flush=True)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    return {name: (statistics.median(t), kernels[name]) for name, t in times.items()}


def step_kernels(
    disc: Discriminator, opt: torch.optim.Optimizer, x: torch.Tensor, device: torch.device, compiled: bool
) -> str:
    """The kernels one plain training step of `disc` launches (a graphed step replays the same); a
    compiled step's fused kernels are not countable on a CPU."""
    labels = (torch.arange(len(x)) % 2).to(device)
    step = functools.partial(disc.train_step_tensor, opt, x, labels, disc.compiled_loss.fn)
    return "-" if compiled and device.type != "cuda" else kernels_of(step, device)


def kernels_of(fn: Callable[[], Any], device: torch.device) -> str:
    """The kernels one call of `fn` launches: on CUDA the device's kernels and copies as torch.profiler
    records them, on a CPU the aten operators it dispatches, views excluded (each a launch on a GPU)."""
    if device.type != "cuda":
        return f"{dispatched_ops(fn)} ops"
    from torch.profiler import ProfilerActivity, profile

    try:  # a count, not a timing: a profiler that fails here leaves the timings alone
        synchronize(device)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            synchronize(device)
        return f"{sum(e.device_type == torch.autograd.DeviceType.CUDA for e in prof.events())} kernels"
    except Exception as err:
        print(f"    kernels not counted ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
        return "?"


def runtime_calls_of(fn: Callable[[], Any], device: torch.device, top: int = 6) -> str:
    """On CUDA, the CUDA runtime calls one call of `fn` makes, the most frequent first (kernel and
    graph launches, copies, synchronisations: where the host's time goes), as torch.profiler records
    them; "" elsewhere."""
    if device.type != "cuda":
        return ""
    from collections import Counter

    from torch.profiler import ProfilerActivity, profile

    try:  # a count, not a timing
        synchronize(device)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            fn()
            synchronize(device)
        on_host = torch.autograd.DeviceType.CPU
        calls = Counter(e.name for e in prof.events() if e.device_type == on_host and e.name.startswith("cu"))
        return ", ".join(f"{name} {n}" for name, n in calls.most_common(top))
    except Exception as err:
        return f"not counted ({type(err).__name__}: {str(err).splitlines()[0][:120]})"


def time_round(s: dict[str, int], device: torch.device, precision: str) -> tuple[dict[str, float], str]:
    """Seconds of one adversarial round's parts at sizes `s`, all of it run (nothing extrapolated), and
    the kernels of one more generator step (its Monte Carlo search and policy-gradient step)."""
    init = torch.Generator().manual_seed(0)
    rng = torch.Generator(device=device).manual_seed(0)
    real = random_oracle(s["V"], s["T"]).sample(s["n_real"], init).to(device)
    generator = TokenLSTM(TokenLSTMConfig(s["V"], s["T"]), rng=init).to(device)
    config = DiscriminatorConfig(s["V"], s["T"], s["embed"], paper_filters(s["T"]))
    disc = Discriminator(config, rng=init).to(device)
    rollout = TokenLSTM(generator.config).to(device)
    disc.precision = precision
    rollout.precision = generator_precision("auto", precision)  # as --precision auto runs it: fp32
    envs = SeqGANVectorEnv(num_envs=s["B"], n_rollouts=s["N"], oracle_seed=None, rollout_policy=rollout,
                           discriminator=disc, device=str(device))  # fmt: skip
    envs.reset(seed=0)
    agent = ReinforceAgent(generator, rollout, rng=rng)
    schedule = DiscriminatorSchedule(None, s["repeats"], s["n_real"], s["epochs"], s["B"])
    updater = DiscriminatorUpdater(disc, real, lambda k: generator.sample(k, rng), schedule, rng)
    updater.train(1)  # warm-up: first calls, graph capture
    for _ in range(2):  # the search's graphs: each prefix length is captured at its second call
        agent.update(agent.collect(envs))
    negatives = timed(lambda: [generator.sample(s["n_real"], rng) for _ in range(s["repeats"])], device)
    def generator_step() -> None:
        agent.update(agent.collect(envs))

    parts = {
        "generator step": timed(generator_step, device),
        "discriminator training with its negatives": timed(updater.train, device),
    }
    if device.type == "cuda":  # the same step with the Monte Carlo search run eagerly, for comparison
        search = envs._core.search.graphs
        search.cuda_graphs = False
        parts["generator step, search not replayed"] = timed(generator_step, device)
        search.cuda_graphs = True
    parts["of which the negatives"] = negatives
    parts["round"] = parts["generator step"] + parts["discriminator training with its negatives"]
    calls = runtime_calls_of(generator_step, device)
    return parts, kernels_of(generator_step, device) + (f"; CUDA runtime calls: {calls}" if calls else "")


def precision_list(value: str) -> list[str]:
    """`--round-precisions`: names from PRECISION_CHOICES, comma-separated."""
    names = value.split(",")
    if not names or any(name not in PRECISION_CHOICES for name in names):
        raise argparse.ArgumentTypeError(f"expected names from {', '.join(PRECISION_CHOICES)}, got {value!r}")
    return names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke test of the code)")
    p.add_argument("--d-steps", type=int, default=300, help="timed discriminator steps of each variant")
    p.add_argument("--skip-round", action="store_true", help="part 1 only")
    p.add_argument("--round-precisions", type=precision_list, default=["fp32", "auto"],
                   help="the precisions of part 2's rounds, comma-separated (fp32, bf16, auto)")  # fmt: skip
    p.add_argument("--compile", action="store_true",
                   help="also time the bf16 step with its loss through torch.compile (fused kernels; "
                        "graphed on CUDA); compiling takes a minute")  # fmt: skip
    add_common_args(p)
    args = p.parse_args()
    apply_common_args(args)
    device = torch.device(args.device)
    s = TINY if args.tiny else PAPER
    print(__doc__.split("\n\n")[0])
    print_machine()
    print(f"device {device}; sizes {s}")

    config = DiscriminatorConfig(s["V"], s["T"], s["embed"], paper_filters(s["T"]))
    step_flops = 3 * s["B"] * count_forward_flops(config)
    peaks = {"fp32": matmul_tflops(device, torch.float32, args.matmul_size)}
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        peaks["tf32"] = matmul_tflops(device, torch.float32, args.matmul_size)
        torch.backends.cuda.matmul.allow_tf32 = False
    bf16_units = cpu_has_bf16_units() if device.type == "cpu" else resolve_precision("auto", device) == "bf16"
    if bf16_units:  # a CPU without bf16 units would take minutes
        peaks["bf16"] = matmul_tflops(device, torch.bfloat16, args.matmul_size)
    print("large matmul " + ", ".join(f"{k} {v:.1f} TFLOP/s" for k, v in peaks.items()) +
          f" ({args.matmul_size}^3)")  # fmt: skip
    print(f"\ndiscriminator training step, batch {s['B']}: {step_flops / 1e9:.2f} GFLOP (3 x forward); "
          f"median over 3 alternating passes of {args.d_steps} steps")  # fmt: skip
    widest = max(w for w, _ in config.filters)
    print(f"  ({GROUPED}: all {len(config.filters)} convolutions as one matrix product, filters zero-padded "
          f"to width {widest}; else one product per filter. Kernels: those of one plain step, which a "
          f"graph replays)")  # fmt: skip
    measured: dict[str, tuple[float, str]] = {}
    d_steps_round = s["repeats"] * s["epochs"] * math.ceil(2 * s["n_real"] / s["B"])

    def time_steps(compiled: bool) -> None:
        part = d_step_times(s, device, args.d_steps, compiled)
        for name, (sec, kernels) in part.items():
            flops = step_flops / sec / 1e12
            kind = name.split()[1]
            share = f" = {100 * flops / peaks[kind]:5.1f}% of the {kind} matmul" if kind in peaks else ""
            print(f"  {name:26s} {1e3 * sec:8.3f} ms/step  {kernels:>12s}  {flops:7.2f} TFLOP/s{share}",
                  flush=True)  # fmt: skip
        measured.update(part)
        best = min(sec for sec, _ in measured.values())
        print(f"  a round's {d_steps_round} steps at the fastest so far: {d_steps_round * best:.2f} s")

    # In the order of what a time limit should keep: the eager and graphed steps, the rounds, then the
    # compiled steps (compiling takes minutes on a GPU).
    time_steps(compiled=False)
    if not args.skip_round:
        time_rounds(s, device, args.round_precisions)
    if args.compile:
        print("\ncompiled:")
        time_steps(compiled=True)


def time_rounds(s: dict[str, int], device: torch.device, precisions: list[str]) -> None:
    """One paper round in each of `precisions` ("auto" resolved on `device`), with the projection of
    the paper's whole experiment from the last."""
    print_load("before the rounds")
    config = DiscriminatorConfig(s["V"], s["T"], s["embed"], paper_filters(s["T"]))
    groups = Discriminator(config).to(device).filter_groups
    print(f"the rounds run the discriminator as it runs on {device.type} by default: its convolutions as "
          f"{'one product' if len(groups) == 1 else f'{len(groups)} products'}")  # fmt: skip
    resolved = [resolve_precision(p, device) for p in precisions]
    r = 0.0
    for precision in dict.fromkeys(resolved):
        parts, generator_kernels = time_round(s, device, precision)
        print(f"\none paper round ({precision}): " + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items()))
        print(f"  a generator step: {generator_kernels}", flush=True)
        r = parts["round"]
    print(f"\nprojected paper experiment ({resolved[-1]}): {ROUNDS} rounds x {r:.2f} s = "
          f"{ROUNDS * r / 60:.1f} min, plus MLE ({MLE_EPOCHS} epochs) and discriminator pre-training "
          f"({D_PRETRAIN} sets) and the evaluations (measured by the run itself)")  # fmt: skip


if __name__ == "__main__":
    main()
