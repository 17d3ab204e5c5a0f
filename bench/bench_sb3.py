"""Benchmark the Stable-Baselines3 adapter: env-steps/s of `SB3VecEnv` over the native vector env
against SB3's `DummyVecEnv` of single SeqGAN-v0 envs, side by side in one run.

Both are SB3 `VecEnv`s (same-step autoreset, `terminal_observation`) on the same models (the same
rollout policy and discriminator objects, read by every env) and the same seeded random actions:
  adapter: SB3VecEnv(SeqGANVectorEnv(B))      one batch of B*N completions and one discriminator call
                                              on B*N sequences per step;
  dummy:   DummyVecEnv([SeqGANEnv] * B)       B envs one after the other, each rolling out N
                                              completions and calling the discriminator on N.
The bare native vector env (no adapter) is timed too, so the adapter's own overhead shows. Every step
is timed separately; the dummy env can be timed on the first --dummy-steps positions of each episode
only (the dearest: the completions are T-t tokens long), and the ratio is then taken over exactly the
same positions of the adapter's episodes. Episodes of the three alternate, so a change in the shared
machine's load hits all alike.

    python bench/bench_sb3.py                                   # paper sizes: V 5000, T 20, N 16, 64 envs
    python bench/bench_sb3.py --num-envs 16 --dummy-steps 5     # quicker
    python bench/bench_sb3.py --num-envs 4 --vocab-size 100 --seq-len 10 --n-rollouts 4   # smoke test
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import common  # noqa: F401  (puts the repository on sys.path)
import gymnasium as gym
import numpy as np
from common import add_common_args, add_size_args, apply_common_args, load_average, print_load, print_machine
from stable_baselines3.common.vec_env import DummyVecEnv

import seqgan_env  # noqa: F401  (registers SeqGAN-v0)
from agents.sb3_vec_env import SB3VecEnv
from seqgan_env.vector_env import SeqGANVectorEnv


def time_episode(
    reset: Callable[[int], object],
    step: Callable[[np.ndarray], tuple],
    actions: np.ndarray,
    n_steps: int,
    seed: int,
) -> tuple[list[float], np.ndarray]:
    """Reset with `seed` (untimed), then time each of the first `n_steps` steps of `actions` [T, B];
    returns the step seconds and the rewards [n_steps, B]."""
    reset(seed)
    times, rewards = [], []
    for t in range(n_steps):
        t0 = time.perf_counter()
        out = step(actions[t])
        times.append(time.perf_counter() - t0)
        rewards.append(np.asarray(out[1], dtype=np.float64))
    return times, np.stack(rewards)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--num-envs", type=int, default=64, help="B: envs in each VecEnv")
    add_size_args(p)
    p.add_argument("--reward-mode", default="mc", help="mc, shaped or terminal")
    p.add_argument("--episodes", type=int, default=2, help="timed episodes of the adapter and the bare env")
    p.add_argument("--dummy-episodes", type=int, default=1, help="timed episodes of the DummyVecEnv")
    p.add_argument("--dummy-steps", type=int, default=None,
                   help="time the DummyVecEnv on the first K steps of each episode only (none: all T)")
    p.add_argument("--bare", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the bare native vector env (--no-bare: skip it)")
    p.add_argument("--seed", type=int, default=0, help="seed of the models, the data and the sampling")
    add_common_args(p)
    args = p.parse_args()
    apply_common_args(args)

    B, V, T = args.num_envs, args.vocab_size, args.seq_len
    k = T if args.dummy_steps is None else max(1, min(args.dummy_steps, T))
    kwargs = {"vocab_size": V, "seq_len": T, "n_rollouts": args.n_rollouts, "reward_mode": args.reward_mode,
              "oracle_seed": None}  # fmt: skip
    print("SB3 VecEnv env-steps/s: SB3VecEnv over the native vector env vs DummyVecEnv of single envs")
    print_machine("at start")

    native = SeqGANVectorEnv(B, **kwargs)  # builds the models (model_seed 0) once
    models = {"rollout_policy": native.rollout_policy, "discriminator": native.discriminator}
    disc = native.discriminator.config
    print(f"sizes: B={B}, V={V}, T={T}, N={args.n_rollouts}, reward mode {args.reward_mode}; discriminator "
          f"embed {disc.embed_dim}, {disc.n_features} features")  # fmt: skip
    adapter = SB3VecEnv(native)
    bare = SeqGANVectorEnv(B, **kwargs, **models) if args.bare else None
    t0 = time.perf_counter()
    dummy = DummyVecEnv([lambda: gym.make("SeqGAN-v0", **kwargs, **models) for _ in range(B)])
    print(f"DummyVecEnv of {B} single envs built in {time.perf_counter() - t0:.2f} s (the models are shared)")

    def vec_reset(env: SB3VecEnv | DummyVecEnv) -> Callable[[int], object]:
        def reset(seed: int) -> object:
            env.seed(seed)
            return env.reset()

        return reset

    runners = {"adapter": (vec_reset(adapter), adapter.step, T), "dummy": (vec_reset(dummy), dummy.step, k)}
    if bare is not None:
        runners["bare"] = (lambda seed: bare.reset(seed=seed), bare.step, T)
    rng = np.random.default_rng(args.seed)
    actions = rng.integers(0, V, size=(max(args.episodes, args.dummy_episodes) + 1, T, B), dtype=np.int64)
    for reset, step, _ in runners.values():  # warm-up: one untimed step each
        time_episode(reset, step, actions[-1], 1, args.seed)

    print_load("before timing")
    times: dict[str, list[list[float]]] = {name: [] for name in runners}
    finals: dict[str, list[np.ndarray]] = {name: [] for name in runners}
    for ep in range(max(args.episodes, args.dummy_episodes)):
        for name, (reset, step, n_steps) in runners.items():
            if ep >= (args.dummy_episodes if name == "dummy" else args.episodes):
                continue
            t, rewards = time_episode(reset, step, actions[ep], n_steps, args.seed + ep)
            times[name].append(t)
            finals[name].append(rewards[-1])
            print(f"  {name} episode {ep + 1}: {n_steps} steps in {sum(t):.2f} s "
                  f"(load {load_average():.2f})", flush=True)  # fmt: skip
    print_load("after timing")

    print()
    med = {name: statistics.median(sum(ep[:k]) for ep in rows) for name, rows in times.items() if rows}
    what = "full episodes" if k == T else f"steps t=1..{k} of {T} (the dearest)"
    print(f"side by side on {what}, {B} envs, the same actions (median over episodes):")
    for name in runners:
        if name in med:
            print(f"  {name:8s} {med[name]:8.3f} s -> {B * k / med[name]:10,.1f} env-steps/s")
    if "dummy" in med:
        print(f"  RATIO adapter / DummyVecEnv env-steps/s: {med['dummy'] / med['adapter']:.2f}x")
    if "bare" in med:
        overhead = 100 * (med["adapter"] / med["bare"] - 1)
        print(f"  adapter overhead over the bare native vector env: {overhead:+.1f}% (its last step of an "
              "episode includes the reset of the finished envs; the bare env resets on its next step)")
    if k == T and args.reward_mode in ("mc", "terminal") and finals["dummy"]:  # r_T = D(y): exact
        diff = np.abs(finals["adapter"][0] - finals["dummy"][0]).max()
        print(f"  check: final-step rewards D(y), adapter vs dummy, max |difference| {diff:.2e}")
    for env in (adapter, dummy, bare):
        if env is not None:
            env.close()


if __name__ == "__main__":
    main()
