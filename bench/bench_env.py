"""Benchmark SeqGAN-v0 stepping: the native vector env against Gymnasium's sync vector env of single envs.

Both run the same seeded random actions on identical models (every env is built with model_seed 0),
side by side in one run:
  native: gymnasium.make_vec("SeqGAN-v0", num_envs=B)   one batch of B*N completions per step,
          one discriminator call on B*N sequences;
  sync:   gymnasium.make_vec("SeqGAN-v0", num_envs=B, vectorization_mode="sync")   B single envs,
          each rolling out N completions and calling the discriminator on N sequences.
Every step is timed separately (reset() is not timed). A step's cost depends on its position t: the
completions are T-t tokens long, so the first steps are the dearest. The sync env can be timed on the
first --sync-steps steps of each episode only; the ratio is then taken over exactly the same
positions of the native env's episodes. The FLOPs of the reward computation are counted per position
(formulas printed) and set against the machine's large-matmul GFLOP/s.

    python bench/bench_env.py                                  # paper sizes, 64 envs
    python bench/bench_env.py --episodes 1 --sync-steps 5      # quicker: sync on steps 1-5 only
    python bench/bench_env.py --num-envs 8 --vocab-size 500 --episodes 1 --sync-steps 3  # smoke test
"""

from __future__ import annotations

import argparse
import statistics
import time

import common  # noqa: F401  (puts the repository on sys.path)
import gymnasium as gym
import numpy as np
import torch
from common import (
    add_common_args,
    add_size_args,
    apply_common_args,
    load_average,
    matmul_gflops,
    print_load,
    print_machine,
)

import seqgan_env  # noqa: F401  (registers SeqGAN-v0)
from seqgan_env.discriminator import (
    DiscriminatorConfig,
    count_completion_flops,
    count_forward_flops,
)


def step_flops(
    t: int, B: int, N: int, T: int, lstm: int, out: int, disc: DiscriminatorConfig
) -> dict[str, int]:
    """FLOPs of the reward computation of one vector step that makes the prefixes t tokens long.

    t < T: advance the cached rollout state of B prefixes by the new token (B cells + B output
    layers), sample N completions of T-t tokens for each (the first token is drawn from the cached
    logits, so T-t-1 cells + output layers per completion), score the B*N sequences (the windows
    inside each prefix once: `count_completion_flops`).
    t = T: score the B finished sequences once.
    """
    if t < T:
        return {
            "advance": B * (lstm + out),
            "completions": B * N * (T - t - 1) * (lstm + out),
            "discriminator": B * count_completion_flops(disc, t, N),
        }
    return {"advance": 0, "completions": 0, "discriminator": B * count_forward_flops(disc)}


def run_episodes(
    env, actions: np.ndarray, n_steps: int, seed: int, label: str, first: int = 0, total: int | None = None
) -> tuple[list[list[float]], list]:
    """Reset and step `env` for each episode in `actions` [E, T, B], timing each of the first
    `n_steps` steps; returns the step seconds [E][n_steps] and the rewards [E][n_steps] arrays."""
    all_times, all_rewards = [], []
    for ep in range(actions.shape[0]):
        env.reset(seed=seed + ep)
        times, rewards = [], []
        for t in range(n_steps):
            t0 = time.perf_counter()
            _, reward, _, _, _ = env.step(actions[ep, t])
            times.append(time.perf_counter() - t0)
            rewards.append(np.asarray(reward, dtype=np.float64).copy())
        all_times.append(times)
        all_rewards.append(rewards)
        print(
            f"  {label} episode {first + ep + 1}/{total or actions.shape[0]}: {n_steps} steps in "
            f"{sum(times):.2f} s "
            f"(load {load_average():.2f})",
            flush=True,
        )
    return all_times, all_rewards


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--num-envs", type=int, default=64, help="B: envs in each vector env")
    add_size_args(p)
    p.add_argument("--episodes", type=int, default=3, help="timed native episodes (median reported)")
    p.add_argument("--sync-episodes", type=int, default=1, help="timed sync episodes (0: skip sync)")
    p.add_argument(
        "--sync-steps", type=int, default=None,
        help="time the sync env on the first K steps of each episode only (none: all T)",
    )
    p.add_argument("--warmup-steps", type=int, default=1, help="untimed steps of each env before timing")
    add_common_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the models, the data and the sampling")
    args = p.parse_args()
    apply_common_args(args)

    B, V, T, N = args.num_envs, args.vocab_size, args.seq_len, args.n_rollouts
    k = T if args.sync_steps is None else max(1, min(args.sync_steps, T))
    sync_episodes = min(args.sync_episodes, args.episodes)
    kwargs = {"vocab_size": V, "seq_len": T, "n_rollouts": N}

    print("SeqGAN-v0 env-steps/s: native vector env vs sync vector env of single envs")
    print_machine("at start")
    gflops_mm = matmul_gflops(args.matmul_size, args.matmul_repeats)

    t0 = time.perf_counter()
    native = gym.make_vec("SeqGAN-v0", num_envs=B, **kwargs)
    t_native_build = time.perf_counter() - t0
    inner = native.unwrapped if hasattr(native, "unwrapped") else native
    pol, disc = inner.rollout_policy.config, inner.discriminator.config
    E, H = pol.embed_dim, pol.hidden_dim
    lstm = 2 * (E + H) * 4 * H
    out = 2 * H * V
    dflops = count_forward_flops(disc)
    print(
        f"sizes: B={B} envs, V={V}, T={T}, N={N}; rollout policy E={E}, H={H}; discriminator embed "
        f"{disc.embed_dim}, filters {list(disc.filters)} ({disc.n_features} features)"
    )
    print(f"native env: {type(inner).__name__}, built in {t_native_build:.2f} s")
    print("FLOP counts (2 FLOPs per multiply-add; embedding lookups, softmax/cumsum/sampling not counted):")
    print(f"  LSTM cell per token   2*(E+H)*4H = 2*({E}+{H})*4*{H} = {lstm:,}")
    print(f"  output layer per token 2*H*V = 2*{H}*{V} = {out:,}")
    print(f"  discriminator forward per sequence (count_forward_flops) = {dflops:,}")
    print(
        "  per step t<T: advance B*(cell+out) + completions B*N*(T-t-1)*(cell+out) + disc "
        "B*count_completion_flops(t, N) (each prefix's windows once, the rest N times); step t=T: disc B*fwd"
    )
    per_t = [step_flops(t, B, N, T, lstm, out, disc) for t in range(1, T + 1)]
    flops_t = [sum(f.values()) for f in per_t]
    tot = {key: sum(f[key] for f in per_t) for key in per_t[0]}
    print(
        f"  one vector step of each position t=1..{T}, summed: {sum(flops_t) / 1e9:.2f} GFLOP "
        f"(advance {tot['advance'] / 1e9:.3f}, completions {tot['completions'] / 1e9:.2f}, "
        f"discriminator {tot['discriminator'] / 1e9:.2f})"
    )

    rng = np.random.default_rng(args.seed)
    actions = rng.integers(0, V, size=(args.episodes, T, B), dtype=np.int64)
    warm_actions = rng.integers(0, V, size=(1, max(args.warmup_steps, 1), B), dtype=np.int64)
    print(f"actions: uniform random token ids, numpy seed {args.seed}, the same for both envs; timed: each "
          f"env.step() call (reset() not timed); GFLOP/s = counted reward FLOPs / step time (the step's "
          f"bookkeeping included)")

    sync = None
    if sync_episodes > 0:
        t0 = time.perf_counter()
        sync = gym.make_vec("SeqGAN-v0", num_envs=B, vectorization_mode="sync", **kwargs)
        built = time.perf_counter() - t0
        print(f"sync env: {type(sync).__name__} of {B} x SeqGANEnv, built in {built:.2f} s")
    if args.warmup_steps > 0:
        run_episodes(native, warm_actions, args.warmup_steps, args.seed + 10_000, "native warm-up")
        if sync is not None:
            run_episodes(sync, warm_actions, args.warmup_steps, args.seed + 10_000, "sync warm-up")

    # Native and sync episodes alternate, so a change in the machine's load hits both alike.
    print_load("before timing")
    nat_times, nat_rewards, sync_times, sync_rewards = [], [], [], []
    for ep in range(args.episodes):
        episode = actions[ep : ep + 1]
        times, rewards = run_episodes(native, episode, T, args.seed + ep, "native", ep, args.episodes)
        nat_times += times
        nat_rewards += rewards
        if ep < sync_episodes:
            times, rewards = run_episodes(sync, episode, k, args.seed + ep, "sync", ep, sync_episodes)
            sync_times += times
            sync_rewards += rewards
    print_load("after timing")
    native.close()
    if sync is not None:
        sync.close()

    # --- results ---------------------------------------------------------------------------------
    def med(rows: list[list[float]], t: int) -> float:
        return statistics.median(r[t] for r in rows)

    nat_ep = [sum(r) for r in nat_times]
    nat_med = statistics.median(nat_ep)
    print()
    print(f"native: full episodes (T={T} steps of {B} envs), median over {len(nat_ep)}: {nat_med:.3f} s "
          f"(min {min(nat_ep):.3f}, max {max(nat_ep):.3f}) -> {B * T / nat_med:,.1f} env-steps/s, "
          f"reward computation {sum(flops_t) / nat_med / 1e9:.1f} GFLOP/s")
    header = f"{'t':>3} {'GFLOP':>8} {'native ms':>10} {'GFLOP/s':>8}"
    if sync_times:
        header += f" {'sync ms':>10} {'GFLOP/s':>8} {'sync/native':>11}"
    print(f"per step position t (median over episodes; t = prefix length after the step):\n{header}")
    for t in range(T):
        nm = med(nat_times, t)
        line = f"{t + 1:>3} {flops_t[t] / 1e9:>8.3f} {1e3 * nm:>10.1f} {flops_t[t] / nm / 1e9:>8.1f}"
        if sync_times and t < k:
            sm = med(sync_times, t)
            line += f" {1e3 * sm:>10.1f} {flops_t[t] / sm / 1e9:>8.1f} {sm / nm:>10.2f}x"
        print(line)

    if sync_times:
        nat_k = [sum(r[:k]) for r in nat_times]
        sync_k = [sum(r) for r in sync_times]
        nk, sk = statistics.median(nat_k), statistics.median(sync_k)
        fk = sum(flops_t[:k])
        what = f"steps t=1..{k} of each episode"
        what += " (the full episode)" if k == T else f" of {T} (the dearest ones)"
        print()
        print(f"side by side on the same {what}, {B} envs, same actions:")
        print(f"  native vector env: median {nk:.3f} s over {len(nat_k)} episodes -> "
              f"{B * k / nk:,.1f} env-steps/s, {fk / nk / 1e9:.1f} GFLOP/s")
        print(f"  sync vector env:   median {sk:.3f} s over {len(sync_k)} episodes -> "
              f"{B * k / sk:,.1f} env-steps/s, {fk / sk / 1e9:.1f} GFLOP/s")
        paired = [sum(sync_times[e]) / sum(nat_times[e][:k]) for e in range(len(sync_times))]
        print(f"  RATIO native / sync env-steps/s: {sk / nk:.2f}x (ratio of the medians); per episode, "
              f"sync and native timed one after the other: {', '.join(f'{r:.2f}x' for r in paired)}"
              f" (median {statistics.median(paired):.2f}x)")
        if k < T:
            est = sk * nat_med / nk
            print(f"  (sync full episode NOT timed; scaled by the native env's per-position profile it "
                  f"would be about {est:.1f} s = {B * T / est:,.1f} env-steps/s: an estimate, not a "
                  f"measurement)")
        # Same models, same actions: Q_T = D(y) is deterministic, so the final rewards must agree;
        # the Monte Carlo rewards of earlier steps agree only in distribution (different RNG streams).
        ne = len(sync_times)
        nq = np.mean([np.mean(nat_rewards[e][:k]) for e in range(ne)])
        sq = np.mean([np.mean(sync_rewards[e][:k]) for e in range(ne)])
        print(f"  check: mean reward over the timed steps: native {nq:.5f}, sync {sq:.5f} "
              f"(Monte Carlo, different random streams)")
        if k == T:
            diff = max(np.abs(nat_rewards[e][T - 1] - sync_rewards[e][T - 1]).max() for e in range(ne))
            print(f"  check: final reward D(y) native vs sync, max |difference| {diff:.2e} "
                  f"({'MATCH' if diff < 1e-5 else 'MISMATCH'})")
    print()
    native_gflops = sum(flops_t) / nat_med / 1e9
    print(f"machine large-matmul fp32: {gflops_mm:.1f} GFLOP/s; native reward computation over full "
          f"episodes: {native_gflops:.1f} GFLOP/s = {100 * native_gflops / gflops_mm:.0f}% of it")
    print(f"torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
