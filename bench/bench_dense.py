"""One adversarial round with dense rewards against one with the paper's Monte Carlo rewards, same batch.

A round is what train/adversarial.py runs: the REINFORCE agent collects B sequences through the vector
env (the rewards), takes its policy-gradient step, and the discriminator-updating wrapper trains the
discriminator. Monte Carlo ("mc", the cpu preset): N completions per prefix scored by the cpu preset's
CNN, then 1 x {4,992 fresh negatives, 1 epoch, minibatch 64}. Dense (the dense preset): the prefix
discriminator's state advanced one token per step, no search, then --dense-d-steps minibatch steps on
the B episodes against B real sequences. Both at the same B and sizes (V 5000, T 20), alternating round
by round; the median of --repeats rounds of each, each part's median, and the ratio.

    python bench/bench_dense.py --threads 1                 # B 64, the cpu preset's batch
    python bench/bench_dense.py --threads 1 --batch 512     # the dense preset's batch
"""

from __future__ import annotations

import argparse
import statistics
import time

import common  # noqa: F401  (puts the repository on sys.path)
import torch
from common import add_common_args, apply_common_args, print_load, print_machine

from agents.reinforce import ReinforceAgent, ReinforceConfig
from seqgan_env.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.oracle import random_oracle
from seqgan_env.prefix_discriminator import PrefixDiscriminator, PrefixDiscriminatorConfig
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig
from seqgan_env.vector_env import SeqGANVectorEnv
from seqgan_env.wrappers import DiscriminatorSchedule, DiscriminatorTrainingVectorWrapper

CPU_FILTERS = ((1, 32), (2, 32), (3, 32), (4, 32), (5, 32), (10, 32), (15, 32), (20, 32))  # the cpu preset's
PARTS = ("rewards", "pg_step", "discriminator")


class Round:
    """One mode's models, env, agent and wrapper; `__call__` runs one round and records its parts' times."""

    def __init__(self, mode: str, args: argparse.Namespace, real: torch.Tensor, seed: int) -> None:
        V, T, B = args.vocab_size, args.seq_len, args.batch
        init = torch.Generator().manual_seed(seed)
        self.rng = torch.Generator().manual_seed(seed + 1)
        self.generator = TokenLSTM(TokenLSTMConfig(V, T), rng=init)
        rollout = TokenLSTM(TokenLSTMConfig(V, T))
        if mode == "mc":
            discriminator: Discriminator | PrefixDiscriminator = Discriminator(
                DiscriminatorConfig(V, T, 32, tuple(p for p in CPU_FILTERS if p[0] <= T)), rng=init)
            schedule = DiscriminatorSchedule(None, 1, args.n_negatives, 1, 64)
        else:
            prefix_config = PrefixDiscriminatorConfig(V, T, 64, args.hidden_dim)
            discriminator = PrefixDiscriminator(prefix_config, rng=init)
            schedule = DiscriminatorSchedule(None, args.dense_d_steps, B, 1, 2 * B)
        env = SeqGANVectorEnv(num_envs=B, rollout_policy=rollout, discriminator=discriminator,
                              n_rollouts=args.n_rollouts, reward_mode=mode, oracle_seed=None)  # fmt: skip
        self.envs = DiscriminatorTrainingVectorWrapper(
            env, real, lambda n: self.generator.sample(n, self.rng), schedule, rng=self.rng
        )
        self.envs.reset(seed=seed)
        self.agent = ReinforceAgent(self.generator, rollout, ReinforceConfig(lr=1e-3), rng=self.rng)
        self.times: dict[str, list[float]] = {part: [] for part in (*PARTS, "round")}

    def __call__(self) -> None:
        t0 = time.perf_counter()
        episodes = self.agent.collect(self.envs)
        t1 = time.perf_counter()
        self.agent.update(episodes)
        t2 = time.perf_counter()
        self.envs.train_discriminator()
        t3 = time.perf_counter()
        for part, seconds in zip((*PARTS, "round"), (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
            self.times[part].append(seconds)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--batch", type=int, default=64, help="B: sequences per round in both modes")
    p.add_argument("--vocab-size", type=int, default=5000, help="V")
    p.add_argument("--seq-len", type=int, default=20, help="T")
    p.add_argument("--n-rollouts", type=int, default=8, help="N of the Monte Carlo mode (the cpu preset's 8)")
    p.add_argument("--n-negatives", type=int, default=4992, help="the Monte Carlo mode's negatives per round")
    p.add_argument("--hidden-dim", type=int, default=128, help="the prefix discriminator's LSTM size")
    p.add_argument("--dense-d-steps", type=int, default=1,
                   help="the dense mode's discriminator steps per round")  # fmt: skip
    p.add_argument("--n-real", type=int, default=9984, help="real sequences (oracle samples)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds of each mode (median)")
    args = p.parse_args(argv)
    apply_common_args(args)
    print_machine()
    oracle = random_oracle(args.vocab_size, args.seq_len, seed=0)
    real = oracle.sample(args.n_real, torch.Generator().manual_seed(0))
    rounds = {mode: Round(mode, args, real, seed=1) for mode in ("mc", "dense")}
    for r in rounds.values():  # warm-up, untimed
        r()
        r.times = {part: [] for part in r.times}
    for _ in range(args.repeats):  # alternating: a change of load hits both alike
        for r in rounds.values():
            r()
    print_load("after timing")
    print(f"B {args.batch}, V {args.vocab_size}, T {args.seq_len}; median of {args.repeats} rounds each, "
          f"alternating")  # fmt: skip
    print(f"| part | Monte Carlo (N {args.n_rollouts}, CNN, 1 x {args.n_negatives} negatives) | dense "
          f"(prefix discriminator, {args.dense_d_steps} step(s) on {args.batch} + {args.batch}) | ratio |")
    print("|---|---|---|---|")
    for part in (*PARTS, "round"):
        mc, dense = (statistics.median(rounds[m].times[part]) for m in ("mc", "dense"))
        print(f"| {part} | {mc:.3f} s | {dense:.3f} s | {mc / dense:.1f}x |")


if __name__ == "__main__":
    main()
