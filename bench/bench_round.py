"""One adversarial round of the paper schedule, split into its parts, and the projected paper run.

A paper round: the generator step (64 sequences, Monte Carlo rewards with N=16, one policy-gradient
step), then 5 times {9,984 fresh negatives, 3 epochs of discriminator training over real + negatives}.
Ours (the project's code: cached prefix states, batched completions, inverse-CDF sampling, convolutions
as matrix products of unfolded windows, fused Adam) is timed side by side with the reference code's
structure (prefixes re-read, 16 sequential rollouts, `torch.multinomial`, one discriminator call per
rollout and position, the discriminator's `nn.Conv1d` layers, torch's default Adam). The discriminator
training is timed on `--d-steps` minibatch steps of each, alternating, and extrapolated to the round's
5 x 3 x 312 steps: the output says so. The whole measurement is repeated `--repeats` times; the medians
are reported.

    python bench/bench_round.py --threads 2
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time

import common  # noqa: F401  (puts the repository on sys.path)
import torch
from bench_rewards import reference_q
from common import (
    add_common_args,
    alternating_times,
    apply_common_args,
    matmul_gflops,
    median_time,
    plain_copy,
    print_load,
    print_machine,
)

from agents.mle import MLETrainer
from agents.reinforce import Episodes, ReinforceAgent
from seqgan_env.discriminator import Discriminator, DiscriminatorConfig, count_forward_flops
from seqgan_env.oracle import random_oracle
from seqgan_env.precision import PRECISION_CHOICES, generator_precision, resolve_precision
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig
from seqgan_env.vector_env import SeqGANVectorEnv

# The paper schedule (the reference code's).
B, N, N_REAL, D_REPEATS, D_EPOCHS, ROUNDS, MLE_EPOCHS, D_PRETRAIN = 64, 16, 9984, 5, 3, 200, 120, 50


@torch.no_grad()
def reference_negatives(generator: TokenLSTM, n: int, rng: torch.Generator) -> torch.Tensor:
    """The reference code's sampling: batches of 64, an nn.LSTM step and `torch.multinomial` per token."""
    out = []
    for _ in range(math.ceil(n / B)):
        token = torch.full((B, 1), generator.config.start_token, dtype=torch.long)
        state, pieces = None, []
        for _ in range(generator.config.seq_len):
            hidden, state = generator.lstm(generator.embedding(token), state)
            token = torch.multinomial(torch.softmax(generator.output(hidden[:, -1]), -1), 1, generator=rng)
            pieces.append(token)
        out.append(torch.cat(pieces, 1))
    return torch.cat(out)[:n]


def d_step_times(
    variants: list[tuple[Discriminator, torch.optim.Optimizer]], steps: int, rng: torch.Generator
) -> list[float]:
    """Median seconds of one discriminator training step on a batch of 64, for each (model, optimizer),
    the variants alternating step by step so that the machine's load hits all alike."""
    V, T = variants[0][0].config.vocab_size, variants[0][0].config.seq_len
    x = torch.randint(V, (B, T), generator=rng)
    y = torch.randint(2, (B,), generator=rng)
    fns = {k: functools.partial(disc.train_step, opt, x, y) for k, (disc, opt) in enumerate(variants)}
    alternating_times(fns, turns=2)  # two warm-up steps each
    return [statistics.median(t) for t in alternating_times(fns, turns=steps).values()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--d-steps", type=int, default=20, help="timed discriminator steps of each kind")
    p.add_argument("--mle-steps", type=int, default=10, help="timed MLE steps (for the projection)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                   help="ours: the discriminator's training and scoring, the completions and MLE in fp32 or "
                        "bf16; auto as --preset paper picks it on this machine (the discriminator in bf16 "
                        "where the CPU's bf16 units are faster; the completions and MLE in fp32)")
    p.add_argument("--repeats", type=int, default=3,
                   help="measurements of the round, ours and the reference alternating (median)")
    add_common_args(p)
    args = p.parse_args()
    if args.repeats < 1 or args.d_steps < 1 or args.mle_steps < 1:
        p.error("--repeats, --d-steps and --mle-steps must be >= 1")
    apply_common_args(args)
    precision = resolve_precision(args.precision, "cpu")
    policy_precision = generator_precision(args.precision, precision)
    print(__doc__.split("\n\n")[0])
    print_machine()
    peak = matmul_gflops(args.matmul_size, args.matmul_repeats)
    rng = torch.Generator().manual_seed(0)
    oracle = random_oracle()
    real = oracle.sample(N_REAL, rng)
    generator = TokenLSTM(TokenLSTMConfig(), rng=rng)
    d_config = DiscriminatorConfig()
    steps_per_epoch = math.ceil(2 * N_REAL / B)  # real + as many negatives, batch 64
    d_steps_round = D_REPEATS * D_EPOCHS * steps_per_epoch
    print(f"paper schedule: B={B}, N={N}, V=5000, T=20; per round {D_REPEATS} x {{{N_REAL} negatives, "
          f"{D_EPOCHS} epochs of {steps_per_epoch} steps}} = {d_steps_round} discriminator "
          f"steps")  # fmt: skip

    # Ours.
    envs = SeqGANVectorEnv(num_envs=B, n_rollouts=N, oracle_seed=None,
                           rollout_policy=TokenLSTM(generator.config),
                           discriminator=Discriminator(d_config, rng=rng))  # fmt: skip
    envs.reset(seed=0)
    envs.discriminator.precision, envs.rollout_policy.precision = precision, policy_precision  # ours only
    agent = ReinforceAgent(generator, envs.rollout_policy, rng=rng)
    disc = envs.discriminator
    ref_disc = plain_copy(disc)  # fp32, as the reference code
    d_variants = [(disc, disc.make_optimizer()),
                  (ref_disc, torch.optim.Adam(ref_disc.parameters(), lr=d_config.lr))]  # fmt: skip
    print_load("before timing")
    parts: list[list[tuple[float, float]]] = []  # per repeat: (ours, reference) of each part
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        episodes = agent.collect(envs)
        agent.update(episodes)
        ours_gen = time.perf_counter() - t0
        # The reference code's structure, on the same models.
        ref_disc.load_state_dict(disc.state_dict())
        t0 = time.perf_counter()
        q, _ = reference_q(generator, ref_disc, episodes.sequences, N, rng)
        agent.update(Episodes(episodes.sequences, q))
        ref_gen = time.perf_counter() - t0
        ours_neg, _ = median_time(lambda: generator.sample(N_REAL, rng), 1, warmup=0)
        ref_neg, _ = median_time(lambda: reference_negatives(generator, N_REAL, rng), 1, warmup=0)
        ours_d, ref_d = d_step_times(d_variants, args.d_steps, rng)
        parts.append([(ours_gen, ref_gen), (D_REPEATS * ours_neg, D_REPEATS * ref_neg),
                      (d_steps_round * ours_d, d_steps_round * ref_d)])  # fmt: skip
    print_load("after timing")

    mle = MLETrainer(generator, precision=policy_precision)
    mle_step, _ = median_time(lambda: mle.step(real[:B]), args.mle_steps, warmup=2)

    names = ["generator step (MC rewards + PG)", f"negatives: {D_REPEATS} x {N_REAL} samples",
             f"discriminator: {d_steps_round} steps (extrapolated from {args.d_steps})"]  # fmt: skip
    rows = [(name, statistics.median(p[k][0] for p in parts), statistics.median(p[k][1] for p in parts))
            for k, name in enumerate(names)]  # fmt: skip
    ours_d, ref_d = rows[2][1] / d_steps_round, rows[2][2] / d_steps_round
    ours_neg = rows[1][1] / D_REPEATS
    rounds = [(sum(o for o, _ in p), sum(r for _, r in p)) for p in parts]
    train_flops = 3 * B * count_forward_flops(d_config)
    print(f"\none round of the paper schedule, ours with the discriminator in {precision}, the completions "
          f"and MLE in {policy_precision} (--precision {args.precision}); seconds, "
          f"median of {args.repeats} alternating measurements; discriminator step = 3 x forward = "
          f"{train_flops / 1e9:.2f} GFLOP:")  # fmt: skip
    print(f"  {'part':<52} {'ours':>9} {'reference':>10} {'ratio':>7}")
    for name, ours, ref in rows:
        print(f"  {name:<52} {ours:9.1f} {ref:10.1f} {ref / ours:6.2f}x")
    ours_round = statistics.median(o for o, _ in rounds)
    ref_round = statistics.median(r for _, r in rounds)
    print(f"  {'ROUND':<52} {ours_round:9.1f} {ref_round:10.1f} {ref_round / ours_round:6.2f}x")
    print("  each measurement's round (ours / reference): "
          + ", ".join(f"{o:.1f} / {r:.1f} s" for o, r in rounds))
    print(f"  discriminator step: ours {1e3 * ours_d:.0f} ms = {train_flops / ours_d / 1e9:.1f} GFLOP/s "
          f"({100 * train_flops / ours_d / 1e9 / peak:.0f}% of the fp32 matmul), "
          f"reference {1e3 * ref_d:.0f} ms")  # fmt: skip
    d_flops = d_steps_round * train_flops
    print(f"  the round's discriminator training: {d_steps_round} x {train_flops / 1e9:.2f} = "
          f"{d_flops / 1e12:.1f} TFLOP; at the {peak:.0f} GFLOP/s matmul of this machine it takes "
          f"{d_flops / peak / 1e9:.0f} s at best")  # fmt: skip

    d_pretrain = D_PRETRAIN * (ours_neg + D_EPOCHS * steps_per_epoch * ours_d)
    mle_total = MLE_EPOCHS * math.ceil(N_REAL / B) * mle_step
    total = mle_total + d_pretrain + ROUNDS * ours_round
    print(f"\nprojected paper run on this machine (ours): MLE {MLE_EPOCHS} epochs {mle_total / 3600:.2f} h "
          f"(step {1e3 * mle_step:.0f} ms) + discriminator pre-training {d_pretrain / 3600:.2f} h + "
          f"{ROUNDS} rounds {ROUNDS * ours_round / 3600:.2f} h = {total / 3600:.1f} h")  # fmt: skip


if __name__ == "__main__":
    main()
