"""An MLE step of the paper's generator against the three matrix products of its output layer.

An MLE step (`agents.mle.MLETrainer.step`: teacher-forced LSTM, the [B*T, V] output layer, mean
cross-entropy, backward, clipping, fused Adam) at batch 64, T 20, V 5000 is dominated by the output
layer: its forward product [B*T, H] x [H, V], and in the backward the gradients of its input
[B*T, V] x [V, H] and of its weight [V, B*T] x [B*T, H]. Those three products alone are the floor of
a step. Timed side by side, alternating, on the same minibatch:
  - the step as the fp32 default runs it (torch's cross_entropy: log-softmax forward, a zero-filled
    [B*T, V] gradient from the gather's backward, then the log-softmax backward);
  - the step with the fused loss (`seqgan_env.token_lstm.token_nll`: the backward writes
    softmax - one-hot, scaled, over the saved log-softmax, in one pass; no zero fill);
  - the step in bf16 (`--precision bf16`: the output layer under autocast, with the fused loss);
  - the three products alone (fp32), and the loss's forward + backward alone, each way.

    python bench/bench_mle.py --threads 1
    python bench/bench_mle.py --vocab-size 200 --repeats 3   # smoke test
"""

from __future__ import annotations

import argparse
import functools
import statistics

import common  # noqa: F401  (puts the repository on sys.path)
import torch
import torch.nn.functional as F
from common import (
    add_common_args,
    alternating_times,
    apply_common_args,
    matmul_gflops,
    print_load,
    print_machine,
)

from agents.mle import MLETrainer, mle_loss
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig, token_nll


def fused_step(trainer: MLETrainer, sequences: torch.Tensor) -> float:
    """`MLETrainer.step` with the fused loss, in fp32."""
    trainer.generator.train()
    trainer.optimizer.zero_grad(set_to_none=True)
    loss = mle_loss(trainer.generator, sequences, fused=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainer.generator.parameters(), trainer.config.grad_clip)
    trainer.optimizer.step()
    return loss.item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--vocab-size", type=int, default=5000)
    p.add_argument("--seq-len", type=int, default=20)
    p.add_argument("--repeats", type=int, default=20, help="timed calls of each (median)")
    p.add_argument("--bf16-repeats", type=int, default=3, help="timed bf16 steps (slow without bf16 units)")
    add_common_args(p)
    args = p.parse_args()
    apply_common_args(args)
    print(__doc__.split("\n\n")[0])
    print_machine()
    peak = matmul_gflops(args.matmul_size, args.matmul_repeats)
    B, T, V = args.batch, args.seq_len, args.vocab_size
    config = TokenLSTMConfig(V, T)
    H, rows = config.hidden_dim, B * T
    sequences = torch.randint(V, (B, T), generator=torch.Generator().manual_seed(0))
    trainers = {name: MLETrainer(TokenLSTM(config, rng=torch.Generator().manual_seed(1)),
                                 precision="bf16" if name == "bf16" else "fp32")
                for name in ("fp32", "fp32 fused", "bf16")}  # fmt: skip
    steps = {
        "step fp32 (torch cross_entropy)": functools.partial(trainers["fp32"].step, sequences),
        "step fp32, fused loss": functools.partial(fused_step, trainers["fp32 fused"], sequences),
    }
    g = torch.Generator().manual_seed(2)
    h, w, b = torch.randn(rows, H, generator=g), torch.randn(V, H, generator=g), torch.randn(V, generator=g)
    grad = torch.randn(rows, V, generator=g)
    logits = torch.randn(rows, V, generator=g).requires_grad_()
    targets = sequences.reshape(-1)
    parts = {
        "output layer forward [B*T,H]x[H,V]": lambda: F.linear(h, w, b),
        "input gradient [B*T,V]x[V,H]": lambda: grad @ w,
        "weight gradient [V,B*T]x[B*T,H]": lambda: grad.T @ h,
        "loss fwd+bwd, torch cross_entropy": lambda: F.cross_entropy(logits, targets).backward(),
        "loss fwd+bwd, fused token_nll": lambda: token_nll(logits, targets).mean().backward(),
    }
    print_load("before timing")
    times = alternating_times({**steps, **parts}, args.repeats, rewarm=1)
    bf16_step = functools.partial(trainers["bf16"].step, sequences)
    bf16 = alternating_times({"step bf16 (autocast, fused loss)": bf16_step}, args.bf16_repeats, rewarm=1)
    print_load("after timing")
    med = {k: statistics.median(v) for k, v in {**times, **bf16}.items()}
    products = sum(med[k] for k in list(parts)[:3])
    print(f"\nB={B}, T={T}, V={V}, H={H}; median of {args.repeats} alternating calls "
          f"({args.bf16_repeats} for bf16):")
    for name, sec in med.items():
        print(f"  {name:40s} {1e3 * sec:9.2f} ms")
    flops = 3 * 2 * rows * H * V
    gflops = flops / products / 1e9
    print(f"  the three output-layer products: {1e3 * products:.2f} ms = {gflops:.1f} GFLOP/s "
          f"({100 * gflops / peak:.0f}% of the large matmul)")
    for name in list(steps) + list(bf16):
        print(f"  RATIO {name} / the three products: {med[name] / products:.2f}x")
    plain, fused = list(steps)
    loss_ratio = med["loss fwd+bwd, torch cross_entropy"] / med["loss fwd+bwd, fused token_nll"]
    print(f"  SPEED-UP of the fused loss: step {med[plain] / med[fused]:.2f}x, loss alone {loss_ratio:.2f}x")


if __name__ == "__main__":
    main()
