"""Benchmark the Monte Carlo rewards Q [B, T]: seqgan_env.rewards.q_values against the reference code's loop.

Ours (`seqgan_env.rewards.q_values`): the rollout policy's state after every prefix is computed once
(`prefix_states`); for each position t, the N completions of all B prefixes are sampled as one batch
of B*N rows by inverse-CDF sampling (the first token straight from the B prefixes' distributions) and
scored by one discriminator call that convolves the windows inside each shared prefix once
(`Discriminator.score_completions`).
Baseline (written here, the structure of the reference code's `rollout.get_reward`): for each rollout
i < N and each position t = 1..T: re-run the rollout policy's LSTM over [start, y_1..y_t] from the zero
state (teacher forcing), sample y_t+1..y_T one token at a time with `torch.multinomial`, and call the
discriminator on the B completed sequences; at t = T it scores the given sequences (once per rollout,
as the reference code does). Under torch.no_grad(), discriminator in eval mode, with the same weights
computing its convolutions by its `nn.Conv1d` layers (the plain form; in inference about as fast as
our unfolded windows, which pay off in training).
Both run on the same models and the same B sequences (sampled from the rollout policy), alternating,
so that a change of the machine's load hits both alike.

    python bench/bench_rewards.py                       # paper sizes: B 64, T 20, N 16, V 5000
    python bench/bench_rewards.py --repeats 1 --batch 8 --vocab-size 500   # smoke test
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import common  # noqa: F401  (puts the repository on sys.path)
import torch
from common import (
    add_common_args,
    add_size_args,
    alternating_times,
    apply_common_args,
    dispatched_ops,
    load_average,
    matmul_gflops,
    plain_copy,
    print_load,
    print_machine,
)

from seqgan_env import rewards, sampling
from seqgan_env.discriminator import (
    Discriminator,
    DiscriminatorConfig,
    count_completion_flops,
    count_forward_flops,
    paper_filters,
)
from seqgan_env.precision import PRECISION_CHOICES, generator_precision, resolve_precision
from seqgan_env.rewards import q_values
from seqgan_env.sampling import CDF_BLOCK, cdf_block, inverse_cdf
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig


@torch.no_grad()
def reference_q(
    policy: TokenLSTM, disc: Discriminator, sequences: torch.Tensor, n_rollouts: int, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference code's Monte Carlo search, plainly: returns Q [B, T] and the scores [N, B, T]."""
    disc.eval()
    B, T = sequences.shape
    start = torch.full((B, 1), policy.config.start_token, dtype=torch.long)
    inputs = torch.cat([start, sequences], dim=1)  # [B, T+1]: start, y_1..y_T
    scores = torch.empty(n_rollouts, B, T)
    for i in range(n_rollouts):
        for t in range(1, T + 1):
            if t < T:
                # Teacher-force [start, y_1..y_t] (t+1 inputs) from the zero state.
                hidden, (h, c) = policy.lstm(policy.embedding(inputs[:, : t + 1]))
                logits = policy.output(hidden[:, -1])  # next-token logits, for y_t+1 only
                pieces = [sequences[:, :t]]
                for s in range(t, T):
                    token = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=rng)  # [B, 1]
                    pieces.append(token)
                    if s + 1 < T:
                        hidden, (h, c) = policy.lstm(policy.embedding(token), (h, c))
                        logits = policy.output(hidden[:, -1])
                completed = torch.cat(pieces, dim=1)
            else:
                completed = sequences
            scores[i, :, t - 1] = torch.softmax(disc(completed), dim=-1)[:, 1]
    return scores.mean(dim=0), scores


def time_sampling(rows: int, n_bins: int, seed: int, turns: int = 30) -> None:
    """One completion token's draw for `rows` rows of `n_bins` logits: the softmax, then the search of
    the row in blocks (`inverse_cdf`, what the completions use) against one cumulative sum of the whole
    row, alternating; medians."""
    logits = 3 * torch.randn(rows, n_bins, generator=torch.Generator().manual_seed(seed))
    u = torch.rand(rows, 1, generator=torch.Generator().manual_seed(seed + 1))

    def draw(block: int) -> Callable[[], torch.Tensor]:
        return lambda: inverse_cdf(torch.softmax(logits, dim=-1), u, block=block)

    fns = {
        "softmax alone": lambda: torch.softmax(logits, dim=-1),
        f"softmax + search in blocks of {CDF_BLOCK}": draw(CDF_BLOCK),
        "softmax + one cumsum of the row": draw(n_bins),
    }
    times = {name: statistics.median(t) for name, t in alternating_times(fns, turns, rewarm=1).items()}
    print(f"\none draw per row from [{rows}, {n_bins}] logits (sample_categorical's work), median of {turns} "
          f"alternating calls, with the operators each dispatches (a kernel launch each on a GPU):")
    for name, sec in times.items():
        print(f"  {name:40s} {dispatched_ops(fns[name]):3d} operators {1e3 * sec:7.2f} ms")
    blocked, whole = list(times.values())[1:]
    print(f"  RATIO one cumsum / in blocks: {whole / blocked:.2f}x a draw")


def q_operators(
    policy: TokenLSTM, disc: Discriminator, sequences: torch.Tensor, n_rollouts: int, seed: int
) -> None:
    """The operators one Q matrix dispatches, and those of its T-1 Monte Carlo searches: with the CPU's
    search in blocks and with a GPU's one cumulative sum per row. On CUDA each search is one launch of
    its CUDA graph (`seqgan_env.rewards.MonteCarloSearch`)."""
    search = rewards.monte_carlo_q
    in_searches = [0]

    def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
        out: list[torch.Tensor] = []
        in_searches[0] += dispatched_ops(lambda: out.append(search(*args, **kwargs)))
        return out[0]

    print("\noperators of one Q matrix (a kernel launch each on a GPU, views excluded):")
    blocks = {f"CPU, search in blocks of {CDF_BLOCK}": CDF_BLOCK, "GPU, one cumsum a row": sys.maxsize}
    for name, block in blocks.items():
        in_searches[0] = 0
        rewards.monte_carlo_q = counted  # type: ignore[assignment]
        sampling.cdf_block = lambda device, block=block: block  # type: ignore[misc]
        try:
            rng = torch.Generator().manual_seed(seed)
            total = dispatched_ops(lambda rng=rng: q_values(policy, disc, sequences, n_rollouts, rng))
        finally:
            rewards.monte_carlo_q, sampling.cdf_block = search, cdf_block
        searches = sequences.shape[1] - 1
        print(f"  {name:36s} {total:6,d}, of which its {searches} searches {in_searches[0]:6,d}")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--batch", type=int, default=64, help="B: sequences")
    add_size_args(p)
    p.add_argument("--repeats", type=int, default=3, help="timed calls of each (median reported)")
    add_common_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the models, the data and the sampling")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32",
                   help="ours: the discriminator's scoring and the completions in fp32 or bf16 autocast; "
                        "auto as --preset paper picks it here (the completions in fp32)")  # fmt: skip
    args = p.parse_args()
    apply_common_args(args)
    precision = resolve_precision(args.precision, "cpu")
    policy_precision = generator_precision(args.precision, precision)
    B, V, T, N = args.batch, args.vocab_size, args.seq_len, args.n_rollouts

    print("Monte Carlo rewards Q [B, T]: seqgan_env.rewards.q_values vs the reference code's loop structure")
    print_machine("at start")
    gflops_mm = matmul_gflops(args.matmul_size, args.matmul_repeats)

    init_rng = torch.Generator().manual_seed(args.seed)
    policy = TokenLSTM(TokenLSTMConfig(V, T), rng=init_rng).eval()
    disc = Discriminator(DiscriminatorConfig(V, T, filters=paper_filters(T)), rng=init_rng).eval()
    plain_disc = plain_copy(disc)  # the baseline's: the same weights in nn.Conv1d layers
    disc.precision, policy.precision = precision, policy_precision  # ours only; the baseline stays fp32
    sequences = policy.sample(B, rng=torch.Generator().manual_seed(args.seed + 1))
    E, H = policy.config.embed_dim, policy.config.hidden_dim
    dc = disc.config

    # --- FLOP counts (2 per multiply-add; embeddings, softmax, cumsum, sampling not counted) -------
    cell = 2 * (E + H) * 4 * H
    cell0 = 2 * E * 4 * H  # the start token read from the zero state: no recurrent product
    out = 2 * H * V
    fwd = count_forward_flops(dc)
    ours_prefix = B * (cell0 + out) + (T - 1) * B * (cell + out)
    ours_compl = sum(B * N * (T - t - 1) * (cell + out) for t in range(1, T))
    # Discriminator in ours (score_completions): windows inside the prefix once per prefix,
    # the windows reaching into the completion, the highway and the output layer for all B*N rows.
    ours_disc = sum(B * count_completion_flops(dc, t, N) for t in range(1, T)) + B * fwd
    ours = ours_prefix + ours_compl + ours_disc
    base_lstm = sum(N * B * T * cell for t in range(1, T))  # t+1 prefix cells + T-t-1 completion cells
    base_out = sum(N * B * (T - t) * out for t in range(1, T))  # 1 prefix output + T-t-1 completion
    base_disc = N * T * B * fwd
    base = base_lstm + base_out + base_disc
    print(f"sizes: B={B}, V={V}, T={T}, N={N}; rollout policy E={E}, H={H}; discriminator embed "
          f"{dc.embed_dim}, filters {list(dc.filters)} ({dc.n_features} features)")
    print("FLOP counts (2 FLOPs per multiply-add; embedding lookups, softmax, cumsum, sampling not counted):")
    print(f"  LSTM cell per token 2*(E+H)*4H = 2*({E}+{H})*4*{H} = {cell:,} (start token from the zero "
          f"state in ours: 2*E*4H = {cell0:,})")
    print(f"  output layer per token 2*H*V = 2*{H}*{V} = {out:,}")
    print(f"  discriminator forward per sequence (count_forward_flops) = {fwd:,}")
    whole = ((T - 1) * B * N * fwd + B * fwd) / 1e9
    print(f"  ours: prefix states B*(2E*4H+out) + (T-1)*B*(cell+out) = {ours_prefix / 1e9:.3f} GFLOP; "
          f"completions sum_t=1..T-1 B*N*(T-t-1)*(cell+out) = {ours_compl / 1e9:.3f} GFLOP; discriminator "
          f"sum_t=1..T-1 B*count_completion_flops(t, N) + B*fwd = {ours_disc / 1e9:.2f} GFLOP (a prefix's "
          f"windows of width w starting at 0..t-w once, its other windows, highway and output N times; "
          f"scoring whole sequences would be (T-1)*B*N*fwd + B*fwd = {whole:.2f} GFLOP); "
          f"total {ours / 1e9:.2f} GFLOP")
    print(f"  baseline: LSTM sum_t=1..T-1 N*B*((t+1) + (T-t-1))*cell = N*B*(T-1)*T*cell = "
          f"{base_lstm / 1e9:.3f} GFLOP; output sum_t N*B*(T-t)*out = {base_out / 1e9:.3f} GFLOP; "
          f"discriminator N*T*B*fwd = {base_disc / 1e9:.2f} GFLOP; total {base / 1e9:.2f} GFLOP "
          f"({base / ours:.2f}x ours: prefixes re-read, the first completion token's logits recomputed, "
          f"D(y) scored once per rollout, every window of the shared prefix convolved once per rollout)")

    # --- warm-up: first calls of each shape (oneDNN primitives, allocator) -------------------------
    with torch.inference_mode():
        disc.score(sequences.repeat_interleave(N, dim=0))
        disc.score(sequences)
    with torch.no_grad():
        plain_disc(sequences)
        torch.multinomial(torch.softmax(policy(sequences)[:, 0], -1), 1)

    print_load("before timing")
    t_ours, t_base, q_ours, q_base, s_base = [], [], [], [], []
    for r in range(args.repeats):
        rng = torch.Generator().manual_seed(args.seed + 100 + r)
        t0 = time.perf_counter()
        q = q_values(policy, disc, sequences, N, rng=rng)
        t_ours.append(time.perf_counter() - t0)
        q_ours.append(q)
        rng = torch.Generator().manual_seed(args.seed + 200 + r)
        t0 = time.perf_counter()
        q, scores = reference_q(policy, plain_disc, sequences, N, rng)
        t_base.append(time.perf_counter() - t0)
        q_base.append(q)
        s_base.append(scores)
        print(f"  repeat {r + 1}/{args.repeats}: ours {t_ours[-1]:.3f} s, baseline {t_base[-1]:.3f} s "
              f"(load {load_average():.2f})", flush=True)
    print_load("after timing")

    mo, mb = statistics.median(t_ours), statistics.median(t_base)
    print()
    print(f"Q matrix [{B}, {T}] with N={N}, median over {args.repeats} repeats:")
    print(f"  ours (q_values, {precision} scoring, {policy_precision} completions): {mo:8.3f} s  "
          f"(min {min(t_ours):.3f}, "
          f"max {max(t_ours):.3f})  "
          f"{ours / mo / 1e9:7.1f} GFLOP/s of its {ours / 1e9:.2f} GFLOP")
    print(f"  baseline (reference): {mb:8.3f} s  (min {min(t_base):.3f}, max {max(t_base):.3f})  "
          f"{base / mb / 1e9:7.1f} GFLOP/s of its {base / 1e9:.2f} GFLOP")
    paired = [b / o for o, b in zip(t_ours, t_base, strict=True)]
    print(f"  SPEED-UP baseline / ours: {mb / mo:.2f}x (ratio of the medians); per repeat: "
          f"{', '.join(f'{x:.2f}x' for x in paired)}")
    print(f"  machine large-matmul fp32: {gflops_mm:.1f} GFLOP/s; ours reaches "
          f"{100 * ours / mo / 1e9 / gflops_mm:.0f}% of it, the baseline "
          f"{100 * base / mb / 1e9 / gflops_mm:.0f}%")

    time_sampling(B * N, V, args.seed)
    q_operators(policy, disc, sequences, N, args.seed)

    # --- do both estimate the same Q? ----------------------------------------------------------------
    # Each repeat is an independent estimate; pool them: Q from N*R completions per entry each.
    R = args.repeats
    qo = torch.stack(q_ours).mean(0).double()
    qb = torch.stack(q_base).mean(0).double()
    scores = torch.cat(s_base).double()  # [R*N, B, T]
    se = scores.std(dim=0, unbiased=True) / math.sqrt(R * N)  # standard error of one estimate
    diff = (qo - qb)[:, : T - 1]
    var_d = 2 * se[:, : T - 1].square()  # variance of the difference of two independent estimates
    # E[diff^2] = var_d for two unbiased estimates, whatever the (skewed) distribution of the scores,
    # and the sample variance is unbiased: so sum(diff^2) / sum(var_d) should be about 1.
    mse_ratio = (diff.square().sum() / var_d.sum()).item()
    # Its sampling noise if the differences were normal (var(diff^2) = 2 var_d^2); heavier tails: more.
    mse_ratio_se = (2 * var_d.square().sum()).sqrt().item() / var_d.sum().item()
    z_pos = diff.sum(0) / var_d.sum(0).sqrt()  # per position t, summed over the B sequences
    bias_z = (diff.sum() / var_d.sum().sqrt()).item()
    final = (qo[:, T - 1] - qb[:, T - 1]).abs().max().item()
    print()
    print(f"same Q? both pooled over {R} repeat(s) = {R * N} completions per entry; Monte Carlo standard "
          f"error (SE) from the baseline's per-completion scores:")
    print(f"  Q (baseline) range [{qb.min().item():.4f}, {qb.max().item():.4f}], std over entries "
          f"{qb.std().item():.4f}; mean SE of one estimate {se[:, : T - 1].mean().item():.5f}")
    print(f"  t<T: mean |Q_ours - Q_baseline| = {diff.abs().mean().item():.5f} over {diff.numel()} entries; "
          f"its RMS {diff.square().mean().sqrt().item():.5f} vs the RMS expected from the SEs "
          f"sqrt(mean(2 SE^2)) = {var_d.mean().sqrt().item():.5f}: mean-square ratio {mse_ratio:.3f} +- "
          f"{mse_ratio_se:.3f} (about 1 if both estimate the same Q)")
    rms = z_pos.square().mean().sqrt().item()
    print(f"  t<T: per position, sum over sequences of the difference / its SE: RMS {rms:.2f}, "
          f"max |z| {z_pos.abs().max().item():.2f} over {T - 1} positions; overall bias z = {bias_z:.2f}")
    print(f"  t=T (deterministic D(y)): max |difference| = {final:.2e}")
    tol = max(4 * mse_ratio_se, 0.25)
    final_tol = 1e-5 if precision == "fp32" else 1e-2  # bf16 products move D(y) by up to ~0.01
    same = abs(mse_ratio - 1) < tol and abs(bias_z) < 4 and z_pos.abs().max().item() < 4.5
    same = same and final < final_tol
    verdict = "CONSISTENT: both estimate the same Q" if same else "INCONSISTENT: the two estimates disagree"
    print(f"  {verdict} (criteria: |mean-square ratio - 1| < {tol:.2f}, |bias z| < 4, "
          f"max per-position |z| < 4.5, D(y) equal to {final_tol:g})")

if __name__ == "__main__":
    main()
