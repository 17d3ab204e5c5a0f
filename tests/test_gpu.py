"""Every script and the environment on a CUDA device, at tiny sizes. Skipped without a GPU; run it
where there is one (`python -m pytest tests/test_gpu.py`). The CPU suite checks the same rules without
one (tests/test_devices.py)."""

from __future__ import annotations

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
    "extra", [[], ["--rollout-update", "ema"], ["--mode", "constant"], ["--mode", "mle"]]
)
def test_adversarial_on_cuda(tmp_path: Path, extra: list[str]) -> None:
    script("adversarial", *TINY, *extra, "--out", str(tmp_path), "--name", "run")
    env = gym.make("SeqGAN-v0", checkpoint=str(tmp_path / "run" / "final.pt"), device="cuda")
    env.reset(seed=0)
    env.step(0)


def test_adversarial_resume_on_cuda_is_exact(tmp_path: Path) -> None:
    """Killed mid-round (after a discriminator training) and resumed on the GPU: the same metrics."""
    from test_train_resume import KILLER, metrics_without_time

    script("adversarial", *TINY, "--out", str(tmp_path), "--name", "whole")
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER.format(train=str(ROOT / "train"), root=str(ROOT)))
    killed = subprocess.run([sys.executable, str(killer), "agents.reinforce:ReinforceAgent.collect", "4",
                             *TINY, "--out", str(tmp_path), "--name", "killed"],
                            capture_output=True, cwd=ROOT)  # fmt: skip
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
    script("sb3", "--algo", "ppo", "--pretrain-preset", "tiny", "--pretrain-args", " ".join(TINY[2:-2]),
           "--rounds", "2", "--n-envs", "8", "--eval-every", "1", "--eval-samples", "64",
           "--n-negatives", "32", "--device", "cuda", "--rollout-update", "ema", "--out", str(tmp_path),
           "--name", "sb3")  # fmt: skip
