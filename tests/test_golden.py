"""Fixed-seed numbers of SeqGAN-Tiny-v0 that a refactoring must not change: the models a seed draws,
episodes of the single and the vector env in every reward mode (with and without an end-of-sequence
id), the Monte Carlo rewards `q_values` computes for fixed sequences, and a discriminator fit.

The numbers live in tests/data/golden_tiny.json. Only a change meant to alter them may rewrite it:
    python tests/test_golden.py --write
and its commit says why. Token ids must match exactly, floats to float32 rounding (another BLAS build
may sum in another order).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import seqgan_env  # noqa: F401  (registers the ids)
from seqgan_env.rewards import q_values

GOLDEN = Path(__file__).resolve().parent / "data" / "golden_tiny.json"
TINY = "SeqGAN-Tiny-v0"  # V 8, T 4, N 4
MODES = ("mc", "shaped", "terminal")
EOS_IDS = (None, 1)


def plain(value: Any) -> Any:
    """Arrays, tensors and numpy scalars as JSON's lists and numbers; NaN as None."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()] if value.ndim else plain(value.item())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (np.generic,)):
        return plain(value.item())
    if isinstance(value, float) and value != value:
        return None
    return value


def actions(V: int, eos_id: int | None, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Fixed random token ids, a quarter of them the end-of-sequence id when there is one."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, V, size=shape)
    return np.where(rng.random(shape) < 0.25, eos_id, a) if eos_id is not None else a


def single_episodes(mode: str, eos_id: int | None) -> list[Any]:
    """Two episodes (a seeded reset, then an unseeded one): every observation, reward and info."""
    env = gym.make(TINY, reward_mode=mode, eos_id=eos_id).unwrapped
    steps: list[Any] = []
    for episode, seed in enumerate((3, None)):
        obs, _ = env.reset(seed=seed)
        steps.append(["reset", obs])
        for a in actions(env.vocab_size, eos_id, (env.seq_len,), seed=10 + episode):
            obs, reward, terminated, truncated, info = env.step(int(a))
            steps.append(["step", obs, reward, terminated, truncated, info])
            if terminated:
                break
    return plain(steps)


def vector_steps(mode: str, eos_id: int | None) -> list[Any]:
    """Ten lockstep steps of three envs under NEXT_STEP autoreset."""
    envs = gym.make_vec(TINY, num_envs=3, vectorization_mode="vector_entry_point", reward_mode=mode,
                        eos_id=eos_id)  # fmt: skip
    obs, _ = envs.reset(seed=7)
    steps: list[Any] = [["reset", obs]]
    for a in actions(envs.unwrapped.vocab_size, eos_id, (10, 3), seed=20):
        obs, rewards, terminated, truncated, infos = envs.step(a)
        steps.append(["step", obs, rewards, terminated, truncated, infos])
    return plain(steps)


def models_and_rewards() -> dict[str, Any]:
    """The seeded models' weights (summed per tensor), q_values of fixed sequences, and one fit."""
    env = gym.make(TINY).unwrapped
    weights = {f"{name}.{key}": value.double().sum().item()
               for name, model in (("policy", env.rollout_policy), ("discriminator", env.discriminator),
                                   ("oracle", env.oracle))
               for key, value in model.state_dict().items()}  # fmt: skip
    rng = torch.Generator().manual_seed(11)
    sequences = torch.randint(0, env.vocab_size, (5, env.seq_len), generator=rng)
    q = q_values(env.rollout_policy, env.discriminator, sequences, 6, torch.Generator().manual_seed(12))
    samples = env.oracle.sample(6, torch.Generator().manual_seed(13))
    torch.manual_seed(0)  # the discriminator's dropout draws from the global RNG
    d = env.discriminator
    loss = d.fit(d.make_optimizer(), samples, sequences, 2, 4, torch.Generator().manual_seed(16))
    scores = d.score(sequences)
    return plain({"weights": weights, "q_values": q, "oracle_samples": samples, "fit_loss": loss,
                  "scores_after_fit": scores})  # fmt: skip


EPISODE_CASES = [(kind, mode, eos) for kind in ("single", "vector") for mode in MODES for eos in EOS_IDS]
CASES = [f"{kind} {mode} eos={eos}" for kind, mode, eos in EPISODE_CASES] + ["models and rewards"]


def record() -> dict[str, Any]:
    """Every case's numbers, by name (`CASES`)."""
    run = {"single": single_episodes, "vector": vector_steps}
    cases = {f"{kind} {mode} eos={eos}": run[kind](mode, eos) for kind, mode, eos in EPISODE_CASES}
    cases["models and rewards"] = models_and_rewards()
    return cases


def assert_same(expected: Any, actual: Any, path: str) -> None:
    """Equal structure, equal ints, bools and None; floats within float32 rounding."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and sorted(actual) == sorted(expected), path
        for key in expected:
            assert_same(expected[key], actual[key], f"{path}[{key!r}]")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_same(e, a, f"{path}[{i}]")
    elif isinstance(expected, float) or isinstance(actual, float):
        assert actual == pytest.approx(expected, rel=1e-5, abs=1e-6), path
    else:
        assert type(actual) is type(expected) and actual == expected, path


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return record()


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("case", CASES)
def test_fixed_seed_numbers_are_unchanged(
    recorded: dict[str, Any], golden: dict[str, Any], case: str
) -> None:
    assert_same(golden[case], recorded[case], case)


def test_every_golden_case_is_checked(golden: dict[str, Any]) -> None:
    assert sorted(golden) == sorted(CASES)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: python {sys.argv[0]} --write  (rewrites {GOLDEN})")
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(record(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")
