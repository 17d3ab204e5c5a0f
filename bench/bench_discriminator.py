"""Benchmark the paper discriminator: one training step against the machine's matmul, and inference.

Training: `Discriminator.train_step` on a minibatch of random sequences (half labelled real), with
`Discriminator.make_optimizer()` (Adam, fused=True) and, side by side in the same run on identical
copies of the model: the same model computing its convolutions with the `nn.Conv1d` layers' own
forward (oneDNN kernels) instead of unfolded windows and one matrix product; torch's default Adam
(on CPU the single-tensor for-loop implementation: torch uses foreach by default only on CUDA-like
devices); and `Adam(foreach=True)`. The variants and a large reference matmul alternate in blocks of
a few steps, so a change of the machine's load hits all alike, and the fraction of the matmul's
GFLOP/s is taken from medians measured in the same loop. FLOPs of a training step are counted as 3x
the forward FLOPs (forward + backward of about twice the forward; the optimizer's element-wise update
and the embedding gradient not counted).
Inference: `Discriminator.score` (eval mode, inference mode) on a large batch.

    python bench/bench_discriminator.py                        # paper discriminator, batch 64
    python bench/bench_discriminator.py --repeats 3 --vocab-size 500 --score-batch 128   # smoke test
"""

from __future__ import annotations

import argparse
import copy
import functools
import statistics
from typing import Any

import common  # noqa: F401  (puts the repository on sys.path)
import torch
from common import (
    add_common_args,
    add_size_args,
    alternating_times,
    apply_common_args,
    dispatched_ops,
    fmt_times,
    grouped_copy,
    matmul_gflops,
    median_time,
    plain_copy,
    print_load,
    print_machine,
    reference_matmul,
)

from seqgan_env.discriminator import (
    Discriminator,
    DiscriminatorConfig,
    count_forward_flops,
    paper_filters,
)
from seqgan_env.precision import cpu_has_bf16_units

# The fewer, larger products tried: (widest / narrowest filter width in a group, the highway's two
# products as one, name).
GROUPINGS = ((1.0, True, "highway's two products as one"),
             (2.0, False, "filters grouped, widest <= 2x narrowest"),
             (5.0, True, "grouped <= 5x, highway as one"),
             (20.0, True, "all filters one product, highway one"))  # fmt: skip


def print_profile(model: Discriminator, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    """Where `model`'s training steps spend their time: torch.profiler's self time per operator (and,
    for the copies, per shape), per step, over `steps` steps after a warm-up."""
    from torch.profiler import ProfilerActivity, profile

    optimizer = model.make_optimizer()
    for _ in range(5):
        model.train_step(optimizer, x, y)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            model.train_step(optimizer, x, y)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e3 / steps
    print(f"\nprofile of ours in {model.precision}, {steps} steps (the profiler's own cost included): "
          f"{total:.1f} ms a step")  # fmt: skip
    copies = [e for e in prof.key_averages(group_by_input_shape=True) if e.key == "aten::copy_"]
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]
    rows = [(e.key, e) for e in top] + [(f"aten::copy_ of {e.input_shapes[0]}", e)
                                        for e in sorted(copies, key=lambda e: -e.self_cpu_time_total)[:3]]
    for name, e in rows:
        ms = e.self_cpu_time_total / 1e3 / steps
        print(f"  {name:44s} {ms:7.2f} ms a step  ({e.count // steps} calls)")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--batch", type=int, default=64, help="training minibatch")
    p.add_argument("--score-batch", type=int, default=1024, help="sequences scored in one inference call")
    add_size_args(p, n_rollouts=False)
    p.add_argument("--repeats", type=int, default=30, help="timed training steps of each variant")
    p.add_argument("--block", type=int, default=5, help="consecutive steps of one variant before the next")
    p.add_argument("--score-repeats", type=int, default=10, help="timed inference calls")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    add_common_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the models, the data and the sampling")
    p.add_argument("--bf16-repeats", type=int, default=None,
                   help="timed bf16 training steps of each (0: none; by default 15 on a CPU with bf16 units, "
                        "3 on one without, where bf16 is emulated and slow)")  # fmt: skip
    p.add_argument("--profile", type=int, default=0,
                   help="profile this many training steps of ours in fp32 and in bf16 (torch.profiler) and "
                        "print where each step's time goes (0: no profile)")  # fmt: skip
    p.add_argument("--bf16-matmul-size", type=int, default=512, help="n of the bf16 reference matmul")
    args = p.parse_args()
    apply_common_args(args)
    if args.bf16_repeats is None:
        args.bf16_repeats = 15 if cpu_has_bf16_units() else 3

    print("Discriminator: training step (fused vs default Adam) and inference")
    print_machine("at start")
    gflops_mm = matmul_gflops(args.matmul_size, args.matmul_repeats)

    V, T = args.vocab_size, args.seq_len
    config = DiscriminatorConfig(V, T, filters=paper_filters(T))
    rng = torch.Generator().manual_seed(args.seed)
    disc = Discriminator(config, rng=rng)
    fwd = count_forward_flops(config)
    conv = sum((T - w + 1) * w * config.embed_dim * n for w, n in config.filters)
    d = config.n_features
    n_params = sum(p.numel() for p in disc.parameters())
    print(f"discriminator: V={V}, T={T}, embed {config.embed_dim}, filters {list(config.filters)}, "
          f"{d} features, {n_params:,} parameters")
    print(f"forward FLOPs per sequence (count_forward_flops, 2 per multiply-add) = 2*(conv + 2*d*d + 2*d) "
          f"with conv = sum_(w,n) (T-w+1)*w*E*n = {conv:,}, d = {d}: {fwd:,}")
    train_flops = 3 * args.batch * fwd
    print(f"training step FLOPs = 3 x forward (convention: backward ~ 2x forward) = 3*{args.batch}*{fwd:,} "
          f"= {train_flops / 1e9:.3f} GFLOP")

    x = torch.randint(0, V, (args.batch, T), generator=rng)
    y = torch.arange(args.batch) % 2  # half real, half fake

    variants = {}
    m = copy.deepcopy(disc)
    variants["ours: unfolded windows, Adam fused=True"] = (m, m.make_optimizer())
    m = plain_copy(disc)
    variants["nn.Conv1d layers, Adam fused=True"] = (m, m.make_optimizer())
    m = copy.deepcopy(disc)
    opt = torch.optim.Adam(m.parameters(), lr=config.lr)
    variants["unfolded, torch.optim.Adam() defaults"] = (m, opt)
    m = copy.deepcopy(disc)
    foreach = torch.optim.Adam(m.parameters(), lr=config.lr, foreach=True)
    variants["unfolded, Adam(foreach=True)"] = (m, foreach)
    for ratio, fuse, name in GROUPINGS:
        m = grouped_copy(disc, ratio, fuse)
        variants[f"{name} ({len(m.filter_groups)} conv products)"] = (m, m.make_optimizer())
    defaults = opt.defaults
    print(f"torch.optim.Adam() defaults here: fused={defaults['fused']}, foreach={defaults['foreach']} "
          f"(None = chosen per device at the first step: for CPU tensors, the single-tensor for-loop)")

    for model, opt in variants.values():
        for _ in range(args.warmup):
            model.train_step(opt, x, y)
    # Operators a step dispatches (views excluded): each a kernel launch on a GPU.
    ops = {name: dispatched_ops(functools.partial(m.train_step, o, x, y))
           for name, (m, o) in variants.items()}
    n_mm = args.matmul_size
    steps = {name: functools.partial(model.train_step, opt, x, y) for name, (model, opt) in variants.items()}
    print_load("before timing")
    # Alternate the variants and the reference matmul in blocks of `--block` steps; the first step of
    # a block re-warms the caches after the other variants ran (a training run steps one model over
    # and over) and is not timed.
    times = alternating_times({**steps, "matmul": reference_matmul(n_mm)}, -(-args.repeats // args.block),
                              args.block, rewarm=1)  # fmt: skip
    gflops_mm_paired = 2 * n_mm**3 / statistics.median(times.pop("matmul")) / 1e9

    # The optimizer update alone (after one backward; its gradients reused every call).
    for model, opt in variants.values():
        opt.zero_grad(set_to_none=True)
        model.train()
        model.loss(x, y).backward()
    opt_times = alternating_times({name: opt.step for name, (_, opt) in variants.items()}, args.repeats)
    print_load("after training timing")

    print()
    print(f"training step, batch {args.batch}, {len(times[next(iter(times))])} timed steps each in blocks of "
          f"{args.block}, alternating with a {n_mm}x{n_mm} matmul (median {gflops_mm_paired:.1f} GFLOP/s "
          f"in the same loop):")
    ours_name = next(iter(variants))
    ours_med = statistics.median(times[ours_name])
    for name in variants:
        med = statistics.median(times[name])
        g = train_flops / med / 1e9
        print(f"  {name:40s} {1e3 * med:8.2f} ms/step  {g:6.1f} GFLOP/s = "
              f"{100 * g / gflops_mm_paired:4.1f}% of matmul  ({fmt_times(times[name], 'ms')}); "
              f"optimizer.step() alone "
              f"{1e3 * statistics.median(opt_times[name]):.2f} ms; {ops[name]} operators a step")
    for name in list(variants)[1:]:
        opt_ratio = statistics.median(opt_times[name]) / statistics.median(opt_times[ours_name])
        print(f"  RATIO {name} / ours: {statistics.median(times[name]) / ours_med:.2f}x per training step, "
              f"{opt_ratio:.2f}x per optimizer.step()")
    if args.bf16_repeats > 0:  # under bf16 autocast: ours and the groupings, a bf16 matmul alongside
        bf16_models = {"ours": copy.deepcopy(disc)}
        for ratio, fuse, name in GROUPINGS:
            m = grouped_copy(disc, ratio, fuse)
            bf16_models[f"{name} ({len(m.filter_groups)} conv products)"] = m
        bf16_steps: dict[str, Any] = {}
        for name, m in bf16_models.items():
            m.precision = "bf16"
            bf16_steps[name] = functools.partial(m.train_step, m.make_optimizer(), x, y)
            for _ in range(args.warmup):
                bf16_steps[name]()
        a = torch.randn(args.bf16_matmul_size, args.bf16_matmul_size, dtype=torch.bfloat16)
        bf16_times = alternating_times({**bf16_steps, "fp32": steps[ours_name], "matmul": lambda: a @ a},
                                       args.bf16_repeats, rewarm=1)  # fmt: skip
        bf16_mm = 2 * args.bf16_matmul_size**3 / statistics.median(bf16_times["matmul"]) / 1e9
        med_fp32 = statistics.median(bf16_times["fp32"])
        n_bf16 = len(bf16_times['fp32'])
        print(f"  bf16 (--precision bf16), {n_bf16} steps each alternating with ours in fp32 "
              f"({1e3 * med_fp32:.2f} ms) and a {args.bf16_matmul_size}^3 bf16 matmul ({bf16_mm:.1f} "
              f"GFLOP/s):")  # fmt: skip
        for name in bf16_models:
            med = statistics.median(bf16_times[name])
            g = train_flops / med / 1e9
            print(f"    {name:40s} {1e3 * med:8.2f} ms/step  {g:6.1f} GFLOP/s = {100 * g / bf16_mm:5.1f}% of "
                  f"the bf16 matmul; RATIO to ours in fp32 {med / med_fp32:.2f}x")  # fmt: skip
    g = train_flops / ours_med / 1e9
    print(f"  OURS: {g:.1f} GFLOP/s = {100 * g / gflops_mm_paired:.1f}% of the matmul measured alongside "
          f"({gflops_mm_paired:.1f} GFLOP/s), {100 * g / gflops_mm:.1f}% of the one measured before "
          f"({gflops_mm:.1f} GFLOP/s)")

    if args.profile > 0:
        for precision in ("fp32", "bf16"):
            m = copy.deepcopy(disc)
            m.precision = precision
            print_profile(m, x, y, args.profile)

    # --- inference -------------------------------------------------------------------------------
    xs = torch.randint(0, V, (args.score_batch, T), generator=rng)
    disc.eval()
    med, ts = median_time(lambda: disc.score(xs), args.score_repeats, args.warmup)
    sflops = args.score_batch * fwd
    g = sflops / med / 1e9
    print()
    print(f"inference score() on {args.score_batch} sequences: {args.score_batch}*{fwd:,} = "
          f"{sflops / 1e9:.2f} GFLOP; {1e3 * med:.1f} ms ({fmt_times(ts, 'ms')}) -> {g:.1f} GFLOP/s = "
          f"{100 * g / gflops_mm_paired:.0f}% of matmul")
    print(f"machine large-matmul fp32: {gflops_mm:.1f} GFLOP/s before timing, {gflops_mm_paired:.1f} GFLOP/s "
          f"alongside the training steps")
    print_load("at end")


if __name__ == "__main__":
    main()
