"""The scripts' allocator setting (train/allocator.py) against glibc's own thresholds, side by side.

Each measurement is a fresh process that times `--steps` training steps of the paper discriminator
(batch 64) after a warm-up and counts the page faults they take; processes with the setting and with
SEQGAN_KEEP_FREED_MEMORY=0 (glibc's own thresholds) alternate `--repeats` times, in fp32 and in bf16,
so that a change of the machine's load hits both alike. The setting is per process, so it cannot
alternate inside one.

    python bench/bench_allocator.py --threads 2
    python bench/bench_allocator.py --threads 1 --repeats 1 --steps 3 --vocab-size 500   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys

import common  # noqa: F401  (puts the repository on sys.path)
import torch
from common import (
    ALLOCATOR,
    REPO_ROOT,
    add_common_args,
    apply_common_args,
    median_time,
    print_load,
    print_machine,
)

from seqgan_env.discriminator import Discriminator, DiscriminatorConfig, paper_filters


def one_measurement(vocab_size: int, precision: str, steps: int) -> dict[str, float]:
    """Median seconds of a training step and page faults a step, in this process."""
    config = DiscriminatorConfig(vocab_size, 20, filters=paper_filters(20))
    disc = Discriminator(config, rng=torch.Generator().manual_seed(0))
    disc.precision = precision
    optimizer = disc.make_optimizer()
    x = torch.randint(vocab_size, (64, 20), generator=torch.Generator().manual_seed(1))
    y = torch.arange(64) % 2
    for _ in range(5):  # the heap grows to what a step needs
        disc.train_step(optimizer, x, y)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step_s, _ = median_time(lambda: disc.train_step(optimizer, x, y), steps, warmup=0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return {"step_s": step_s, "faults": faults / steps}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--repeats", type=int, default=4, help="processes of each kind, alternating")
    p.add_argument("--steps", type=int, default=40, help="timed training steps in each process")
    p.add_argument("--vocab-size", type=int, default=5000, help="V")
    p.add_argument("--one", choices=("fp32", "bf16"), default=None, help=argparse.SUPPRESS)  # a child
    add_common_args(p)
    args = p.parse_args()
    if args.repeats < 1 or args.steps < 1 or args.vocab_size < 1:
        p.error("--repeats, --steps and --vocab-size must be >= 1")
    apply_common_args(args)  # the threads, and the allocator setting unless SEQGAN_KEEP_FREED_MEMORY=0
    if args.one is not None:  # a child process: one measurement, as JSON
        measured = one_measurement(args.vocab_size, args.one, args.steps)
        print(json.dumps({"kept": ALLOCATOR["kept"], **measured}))
        return
    print(__doc__.split("\n\n")[0])
    print_machine()
    child = [sys.executable, os.path.abspath(__file__), "--save", "", "--steps", str(args.steps),
             "--vocab-size", str(args.vocab_size)]  # fmt: skip
    if args.threads is not None:
        child += ["--threads", str(args.threads)]
    results: dict[tuple[str, bool], list[dict[str, float]]] = {}
    for _ in range(args.repeats):
        for precision in ("fp32", "bf16"):
            for keep in (True, False):
                env = {**os.environ, "SEQGAN_KEEP_FREED_MEMORY": "1" if keep else "0"}
                out = subprocess.run([*child, "--one", precision], capture_output=True, text=True, env=env,
                                     cwd=REPO_ROOT, check=True).stdout  # fmt: skip
                measured = json.loads(out.strip().splitlines()[-1])
                results.setdefault((precision, bool(measured["kept"])), []).append(measured)
    print_load("after timing")
    print(f"\ndiscriminator training step, batch 64, V={args.vocab_size}: median of {args.steps} steps per "
          f"process, {args.repeats} processes of each kind alternating")  # fmt: skip
    for precision in ("fp32", "bf16"):
        kept, own = results.get((precision, True), []), results.get((precision, False), [])
        for name, rows in (("setting kept", kept), ("glibc's own", own)):
            if rows:
                ms = [1e3 * r["step_s"] for r in rows]
                print(f"  {precision} {name:13s} {statistics.median(ms):7.2f} ms a step (per process: "
                      f"{', '.join(f'{m:.1f}' for m in ms)}); "
                      f"{statistics.median(r['faults'] for r in rows):7.0f} page faults a step")  # fmt: skip
        if kept and own:
            ratio = statistics.median(r["step_s"] for r in own) / statistics.median(r["step_s"] for r in kept)
            print(f"  {precision} RATIO glibc's own / setting kept: {ratio:.2f}x a step")


if __name__ == "__main__":
    main()
