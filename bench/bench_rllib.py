"""Benchmark sampling SeqGAN-v0 under Ray RLlib: env steps/s with 0, 1 and 2 env runners against the
native vector env alone, side by side in one run.

All sample B envs for T tokens per round (B*T env steps) with the same models:
  native:      SeqGANVectorEnv(B) stepped with seeded random actions in a plain loop (no policy);
  rllib K=0:   the driver's own env runner (one SeqGANVectorEnv(B)) sampling with the RLModule;
  rllib K=k:   k remote env runners, each SeqGANVectorEnv(B/k), sampling in parallel; the episodes
               travel back to the driver, as in `algo.train()`.
Rounds alternate between the setups, so a change in the shared machine's load hits all alike; the
figures are medians over --repeats rounds. Ray gets one logical CPU per runner (each runner one
torch thread): on a machine with fewer cores than runners they share the cores.

    python bench/bench_rllib.py                                    # cpu preset sizes: V 5000, T 20, N 8, B 64
    python bench/bench_rllib.py --num-envs 16 --repeats 3          # quicker
    python bench/bench_rllib.py --vocab-size 8 --seq-len 4 --n-rollouts 4 --num-envs 8   # smoke test
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)
import numpy as np
import torch
from common import add_common_args, apply_common_args, print_load, print_machine

from seqgan_env.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig
from seqgan_env.vector_env import SeqGANVectorEnv

CPU_FILTERS = ((1, 32), (2, 32), (3, 32), (4, 32), (5, 32), (10, 32), (15, 32), (20, 32))  # the cpu preset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--vocab-size", type=int, default=5000, help="V")
    p.add_argument("--seq-len", type=int, default=20, help="T")
    p.add_argument("--n-rollouts", type=int, default=8, help="N: Monte Carlo completions per prefix")
    p.add_argument("--num-envs", type=int, default=64, help="B: envs in all (split over the runners)")
    p.add_argument("--runners", default="0,1,2", help="numbers of env runners to time")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per setup (median)")
    add_common_args(p)
    args = p.parse_args()
    apply_common_args(args)
    import ray  # the [rllib] extra: imported after the options, so --help works without it

    from agents.rllib import algorithm_config, build_algorithm
    from agents.rllib_env import broadcast
    from agents.rllib_module import module_config

    V, T, B = args.vocab_size, args.seq_len, args.num_envs
    runner_counts = [int(k) for k in args.runners.split(",")]
    gen = TokenLSTM(TokenLSTMConfig(V, T), rng=torch.Generator().manual_seed(0))
    filters = tuple((w, n) for w, n in CPU_FILTERS if w <= T)
    disc = Discriminator(DiscriminatorConfig(V, T, 32, filters), rng=torch.Generator().manual_seed(1))
    models = {"n_rollouts": args.n_rollouts, "reward_mode": "shaped", "discriminator_embed_dim": 32,
              "discriminator_filters": filters, "oracle_seed": None}  # fmt: skip
    env_config = {"vocab_size": V, "seq_len": T, **models}
    print_machine()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                os.environ.get("PYTHONPATH", "")])  # fmt: skip
    ray.init(num_cpus=max(max(runner_counts), 1) * len(runner_counts), include_dashboard=False,
             logging_level="ERROR", log_to_driver=False)  # fmt: skip

    native = SeqGANVectorEnv(num_envs=B, rollout_policy=gen, discriminator=disc, **models)
    rng = np.random.default_rng(0)

    def native_round() -> int:
        native.reset(seed=int(rng.integers(2**31)))
        for _ in range(T):
            native.step(rng.integers(0, V, size=B))
        return B * T

    setups: dict[str, Callable[[], int]] = {"native vector env": native_round}
    algos = []
    for k in runner_counts:
        hyper = {"minibatch_size": B * T}  # only sampling is timed; RLlib's default 128 may exceed B * T
        config = algorithm_config("ppo", env_config, module_config(gen.config, gen), B, k, T, hyper, seed=0)
        algo = build_algorithm(config)
        broadcast(algo, gen, disc)
        algos.append(algo)
        setups[f"rllib, {k} env runners"] = sampler(algo, k, B * T // max(k, 1))
    for fn in setups.values():  # warm-up (first resets, caches)
        fn()
    times: dict[str, list[float]] = {name: [] for name in setups}
    steps: dict[str, int] = {}
    print_load("timing")
    for _ in range(args.repeats):
        for name, fn in setups.items():
            t0 = time.perf_counter()
            steps[name] = fn()
            times[name].append(time.perf_counter() - t0)
    print_load("after timing")
    base = statistics.median(times["native vector env"]) / steps["native vector env"]
    print(f"V {V}, T {T}, N {args.n_rollouts}, B {B}: env steps/s, median of {args.repeats} rounds of B*T "
          "steps")
    for name, ts in times.items():
        rate = steps[name] / statistics.median(ts)
        print(f"  {name:24s} {rate:9.1f} steps/s  (round {statistics.median(ts):.3f} s, min {min(ts):.3f}, "
              f"max {max(ts):.3f}; {rate * base:.2f}x the native env)")
    for algo in algos:
        algo.stop()
    ray.shutdown()


def sampler(algo: object, k: int, per_runner: int) -> Callable[[], int]:
    """One round of sampling: the local runner (k = 0) or the k remote ones in parallel."""
    group = algo.env_runner_group  # type: ignore[attr-defined]

    def local() -> int:
        episodes = algo.env_runner.sample(num_timesteps=per_runner)  # type: ignore[attr-defined]
        return sum(len(e) for e in episodes)

    def remote() -> int:
        found = group.foreach_env_runner(lambda r: sum(len(e) for e in r.sample(num_timesteps=per_runner)),
                                         local_env_runner=False)  # fmt: skip
        return int(sum(found))

    return local if k == 0 else remote


if __name__ == "__main__":
    main()
