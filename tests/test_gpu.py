"""Every script and the environment on a CUDA device, at tiny sizes, the signal diagnostics on (the
default): train/adversarial.py in every mode, reward, baseline and precision, resume, the text run and
sample, pretrain and the discriminator probe, compare, SB3 (each algorithm; train/rllib.py runs on
the CPU only); and the CUDA-only code: the diagnostics' gradient through cuDNN's LSTM, the
discriminator's steps and the Monte Carlo search replayed from CUDA graphs. Skipped without a GPU; run
it where there is one (`python -m pytest tests/test_gpu.py`, or bench/gpu_check.sh). The CPU suite
checks the same rules without one (tests/test_devices.py; tests/conftest.py refuses an LSTM backward in
eval mode as cuDNN does, and stands in for CUDA graphs)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import HANG_GUARD
from gymnasium.utils.env_checker import check_env

import seqgan_env  # noqa: F401  (registers the ids)
from agents.mle import MLEConfig, MLETrainer
from seqgan_env.diagnostics import policy_gradient_split
from seqgan_env.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.rewards import MonteCarloSearch, monte_carlo_q
from seqgan_env.sampling import inverse_cdf
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "tiny", "--threads", "1", "--n-real", "128", "--n-test", "64", "--eval-samples", "128",
        "--n-negatives", "64", "--device", "cuda"]  # fmt: skip


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(ROOT / "train" / f"{name}.py"), *args], capture_output=True,
                            text=True, cwd=ROOT, timeout=HANG_GUARD)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_env_on_cuda() -> None:
    env = gym.make("SeqGAN-Tiny-v0", device="cuda")
    check_env(env.unwrapped)
    assert env.unwrapped.rollout_policy.device.type == "cuda"
    _obs, _ = env.reset(seed=0)
    for _ in range(4):
        _obs, reward, terminated, _, _info = env.step(env.action_space.sample())
    assert terminated and 0 <= reward <= 1
    envs = gym.make_vec("SeqGAN-Tiny-v0", num_envs=8, device="cuda", eos_id=1)
    envs.reset(seed=0)
    for _ in range(5):
        _, rewards, _, _, _ = envs.step(envs.action_space.sample())
        assert np.isfinite(rewards).all()


@pytest.mark.parametrize(
    "extra",
    [[], ["--rollout-update", "ema"], ["--mode", "constant"], ["--mode", "mle"], ["--reward", "oracle"],
     ["--reward", "bleu"], ["--baseline", "value"], ["--baseline", "mean", "--normalize"],
     ["--precision", "bf16"], ["--precision", "auto"], ["--precision", "auto", "--compile"]],
)  # fmt: skip
def test_adversarial_on_cuda(tmp_path: Path, extra: list[str]) -> None:
    script("adversarial", *TINY, *extra, "--out", str(tmp_path), "--name", "run")
    env = gym.make("SeqGAN-v0", checkpoint=str(tmp_path / "run" / "final.pt"), device="cuda")
    env.reset(seed=0)
    env.step(0)


def test_adversarial_resume_on_cuda_is_exact(tmp_path: Path) -> None:
    """Killed mid-round (after a discriminator training) and resumed on the GPU: the same metrics."""
    from conftest import killer_command
    from test_train_resume import metrics_without_time

    script("adversarial", *TINY, "--out", str(tmp_path), "--name", "whole")
    command, env = killer_command(tmp_path, "agents.reinforce:ReinforceAgent.collect", 4,
                                  [*TINY, "--out", str(tmp_path), "--name", "killed"])  # fmt: skip
    killed = subprocess.run(command, capture_output=True, cwd=ROOT, env=env)
    assert killed.returncode == -9
    script("adversarial", "--resume", str(tmp_path / "killed"), "--device", "cuda")
    assert metrics_without_time(tmp_path / "killed") == metrics_without_time(tmp_path / "whole")


def test_text_run_on_cuda(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    corpus.write_text("\n".join(" ".join(rng.choice(words, rng.integers(2, 9))) for _ in range(200)) + "\n")
    script("adversarial", *TINY, "--data", str(corpus), "--bleu-samples", "16", "--self-bleu-samples", "8",
           "--out", str(tmp_path), "--name", "text")  # fmt: skip
    script("sample", str(tmp_path / "text"), "-n", "3", "--seed", "0", "--device", "cuda")


def test_compare_and_sb3_on_cuda(tmp_path: Path) -> None:
    script("compare", "--preset", "tiny", "--out", str(tmp_path), "--temperatures", "0.9,1.0",
           "--extra", *TINY[2:])  # fmt: skip
    script("sb3", "--algo", "ppo", "--pretrain-preset", "tiny", "--pretrain-args", " ".join(TINY[4:-2]),
           "--threads", "1", "--rounds", "2", "--n-envs", "8", "--eval-every", "1", "--eval-samples", "64",
           "--n-negatives", "32", "--device", "cuda", "--rollout-update", "ema", "--out", str(tmp_path),
           "--name", "sb3")  # fmt: skip


def test_the_policy_gradient_split_of_a_generator_in_eval_mode_on_cudnn() -> None:
    """cuDNN refuses an LSTM backward in eval mode: the split takes its gradients in train mode."""
    generator = TokenLSTM(TokenLSTMConfig(12, 5), rng=torch.Generator().manual_seed(0)).cuda().eval()
    sequences = generator.sample(16, torch.Generator(device="cuda").manual_seed(1))
    q = torch.rand(16, 5, generator=torch.Generator().manual_seed(2))
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # fp32 products, as on the CPU
        split = policy_gradient_split(generator, sequences, q.cuda())
    assert not generator.training and split["split_error"] < 1e-5 * split["norm"]
    on_cpu = policy_gradient_split(generator.cpu(), sequences.cpu(), q)  # the same numbers as on the CPU
    torch.testing.assert_close(split["g"].cpu(), on_cpu["g"], rtol=1e-4, atol=1e-6)


def assert_graphed_follows_plain(results: list, precision: str) -> None:
    """`results`: (losses, weights) of the plain run, then of the graphed one: the same up to kernel
    rounding."""
    (plain_loss, plain_weights), (graphed_loss, graphed_weights) = results
    assert graphed_loss == pytest.approx(plain_loss, rel=1e-3 if precision == "bf16" else 1e-5)
    for a, b in zip(plain_weights, graphed_weights, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    ("groups", "compiled"), [(None, False), (((0,), (1,), (2,)), False), (None, True)],
    ids=["one product", "per filter", "one product compiled"],
)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_graphed_discriminator_fit_follows_the_plain_fit(
    precision: str, groups: tuple | None, compiled: bool
) -> None:
    """The full batches replayed from a CUDA graph train as plain steps do: the same losses (the same
    dropout stream: the warm-up's random numbers are given back) and weights, up to kernel rounding;
    with the filters as one product (CUDA's default) or one product each, and (--compile) with the
    loss through torch.compile, Triton's fused kernels captured in the graph, its dropout masks
    torch's own."""
    config = DiscriminatorConfig(30, 10, 16, ((1, 8), (3, 8), (10, 8)))
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randint(30, (100, 10), generator=g), torch.randint(30, (100, 10), generator=g)
    results = []
    for graphs in (False, True):
        disc = Discriminator(config, rng=torch.Generator().manual_seed(1)).cuda()
        disc.precision, disc.cuda_graphs, disc.filter_groups = precision, graphs, groups
        disc.compiled = compiled and graphs
        opt = disc.make_optimizer()
        torch.cuda.manual_seed(2)
        loss = disc.fit(opt, real, fake, 2, 16, torch.Generator(device="cuda").manual_seed(3))
        assert disc.cuda_graphs == graphs  # the capture worked (no fallback to plain steps)
        assert disc.compiled == (compiled and graphs)  # so did compiling
        results.append((loss, [p.detach().clone() for p in disc.parameters()]))
    assert_graphed_follows_plain(results, precision)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_graphed_mle_epochs_follow_plain_ones(precision: str) -> None:
    """MLE's full minibatches replayed from a CUDA graph (the LSTM, the output layer, the gradient clip,
    Adam) train as plain steps do: the same losses and weights, up to kernel rounding."""
    data = torch.randint(40, (200, 10), generator=torch.Generator().manual_seed(0))
    results = []
    for graphs in (False, True):
        generator = TokenLSTM(TokenLSTMConfig(40, 10), rng=torch.Generator().manual_seed(1)).cuda()
        trainer = MLETrainer(generator, MLEConfig(batch_size=32), precision=precision)
        trainer.cuda_graphs = graphs
        losses = [trainer.epoch(data, torch.Generator(device="cuda").manual_seed(e)) for e in range(3)]
        assert trainer.cuda_graphs == graphs  # the capture worked (no fallback to plain steps)
        results.append((losses, [p.detach().clone() for p in generator.parameters()]))
    assert_graphed_follows_plain(results, precision)


def test_sampling_on_cuda_picks_the_cpu_s_bins_but_for_float_rounding() -> None:
    """On CUDA a row takes one cumulative sum (`cdf_block`), on the CPU the two-step search: for the
    same uniforms they pick the same bins but where float rounding puts u at a bin's edge."""
    probs = torch.softmax(torch.randn(2000, 5000, generator=torch.Generator().manual_seed(13)) * 3, -1)
    u = torch.rand(2000, 4, generator=torch.Generator().manual_seed(14))
    on_cuda = inverse_cdf(probs.cuda(), u.cuda()).cpu()
    assert (on_cuda == inverse_cdf(probs, u)).float().mean() > 0.999


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_replayed_monte_carlo_search_follows_the_eager_one(precision: str) -> None:
    """Each prefix length's search replayed from a CUDA graph gives the eager search's Q, round after
    round with the discriminator trained in place in between and a new generator each round, and
    leaves each generator where the eager draws do."""
    V, T, N, B = 30, 8, 16, 64
    policy = TokenLSTM(TokenLSTMConfig(V, T), rng=torch.Generator().manual_seed(0)).cuda()
    config = DiscriminatorConfig(V, T, 16, ((1, 8), (3, 8), (8, 8)))
    disc = Discriminator(config, rng=torch.Generator().manual_seed(1)).cuda()
    disc.precision = policy.precision = precision
    optimizer, search = disc.make_optimizer(), MonteCarloSearch(policy, n_rollouts=N)
    data = torch.Generator().manual_seed(3)
    labels = torch.tensor([1] * B + [0] * B, device="cuda")
    graphed, eager, kept = [], [], []
    for r in range(4):  # a new generator each round: the graphs draw from their own, set to its state
        rngs = [torch.Generator(device="cuda").manual_seed(r) for _ in range(2)]
        for t in range(1, T):
            prefixes = torch.randint(V, (B, t), generator=data).cuda()
            with torch.no_grad():
                logits, state = policy.start(B)
                for k in range(t):
                    logits, state = policy.step(prefixes[:, k], state)
            graphed.append(search(disc, prefixes, logits, state, rngs[0]))
            eager.append(monte_carlo_q(policy, disc, prefixes, logits, state, N, rngs[1]))
        real = torch.randint(V, (B, T), generator=data).cuda()
        disc.train_step(optimizer, torch.cat([real, real.flip(1)]), labels)
        assert torch.equal(rngs[0].get_state(), rngs[1].get_state())
        kept.append({id(g) for g in search.graphs._graphs.values()})
    assert search.graphs.cuda_graphs and len(search.graphs) == T - 1  # captured, no fallback
    assert kept[1] == kept[2] == kept[3]  # captured in round 2, kept for the next generators
    torch.testing.assert_close(torch.stack(graphed), torch.stack(eager), rtol=1e-5, atol=1e-6)


def test_the_discriminator_on_cuda_takes_its_filters_as_one_product_with_the_cpu_s_values() -> None:
    config = DiscriminatorConfig(30, 10, 16, ((1, 8), (3, 8), (10, 8)))
    disc = Discriminator(config, rng=torch.Generator().manual_seed(1))
    seqs = torch.randint(31, (64, 10), generator=torch.Generator().manual_seed(2))
    on_cpu = disc.score(seqs)
    disc.cuda()
    assert disc.filter_groups == ((0, 1, 2),)  # fp32 products (torch's matmuls take TF32 only when asked)
    torch.testing.assert_close(disc.score(seqs.cuda()).cpu(), on_cpu, rtol=1e-4, atol=1e-5)


def test_pretrain_probe_and_the_other_sb3_algorithms_on_cuda(tmp_path: Path) -> None:
    script("pretrain", *TINY, "--out", str(tmp_path), "--name", "pre")
    script("probe_discriminator", "--pretrained", str(tmp_path / "pre"), "--repeats", "1",
           "--n-negatives", "64", "--eval-samples", "64", "--device", "cuda", "--out", str(tmp_path),
           "--name", "probe")  # fmt: skip
    algos = ["a2c"]
    try:
        import sb3_contrib  # noqa: F401

        algos += ["maskable_ppo", "recurrent_ppo"]
    except ImportError:
        pass
    for algo in algos:
        script("sb3", "--algo", algo, "--pretrained", str(tmp_path / "pre"), "--rounds", "1", "--n-envs", "8",
               "--eval-samples", "64", "--n-negatives", "32", "--device", "cuda", "--no-progress",
               "--out", str(tmp_path), "--name", algo)  # fmt: skip


def test_the_gpu_benchmark_runs_at_tiny_size_on_cuda(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_gpu.py"), "--tiny", "--d-steps", "4",
                             "--matmul-size", "512", "--save", str(tmp_path / "b")],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "graphed bf16" in result.stdout and "one paper round" in result.stdout
    for variant in ("graphed bf16", "graphed bf16 one-product"):  # each timed, its kernels counted
        assert re.search(re.escape(variant) + r" +[0-9.]+ ms/step +\d+ kernels", result.stdout), variant
