"""Saved SB3 models read without unpickling (agents/sb3_files.py): a model of each algorithm comes back
exactly (weights, optimizer state, counters), and a zip whose cloudpickled entries would run code loads
without running it. Tiny sizes (V 8, T 4): the file runs in seconds."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import poisoned_zip, tiny_lstm
from stable_baselines3 import PPO

from agents.sb3 import SB3VecEnv, algorithm_class, load_model, make_model
from agents.sb3_files import check_saved_model, read_saved_model
from seqgan_env import VARIANTS, SeqGANVectorEnv
from seqgan_env.token_lstm import TokenLSTMConfig

SMALL = {"ppo": {"n_steps": 4, "batch_size": 8, "n_epochs": 1}, "a2c": {"n_steps": 4},
         "maskable_ppo": {"n_steps": 4, "batch_size": 8, "n_epochs": 1},
         "recurrent_ppo": {"n_steps": 4, "batch_size": 8, "n_epochs": 1}}  # fmt: skip


def tiny_env(num_envs: int = 2) -> SB3VecEnv:
    return SB3VecEnv(SeqGANVectorEnv(num_envs, **{**VARIANTS["SeqGAN-Tiny-v0"], "reward_mode": "shaped"}))


def saved_model(path: Path, algo: str = "ppo", train: bool = True) -> Path:
    """A tiny model of `algo` saved at `path`, trained for one update (its optimizer has state)."""
    model = make_model(algo, tiny_env(), tiny_lstm(seed=3), seed=0, **SMALL[algo])
    if train:
        model.learn(total_timesteps=8)
    model.save(path)
    return path


@pytest.mark.parametrize("algo", list(SMALL))
def test_a_saved_model_comes_back_exactly(tmp_path, algo):
    """Weights, the optimizer's per-parameter state and the counters equal those SB3's own load gives."""
    path = saved_model(tmp_path / "model.zip", algo)
    ours = load_model(algo, path, tiny_env(num_envs=2), seed=0, **SMALL[algo])
    theirs = algorithm_class(algo).load(path, env=tiny_env(num_envs=2))
    expected = theirs.policy.state_dict()
    for name, tensor in ours.policy.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    mine, sb3 = ours.policy.optimizer.state_dict(), theirs.policy.optimizer.state_dict()
    assert mine["state"].keys() == sb3["state"].keys() and mine["state"]
    for index, state in mine["state"].items():
        for key, value in state.items():
            assert torch.equal(value, sb3["state"][index][key]), (index, key)
    assert (ours.num_timesteps, ours._n_updates) == (theirs.num_timesteps, theirs._n_updates) != (0, 0)
    assert not ours.policy.lstm_actor.bias_hh_l0.requires_grad if algo == "recurrent_ppo" else True


def test_the_run_sets_the_hyperparameters(tmp_path):
    """The file gives weights and optimizer state; the learning rate and the rest are the caller's."""
    path = saved_model(tmp_path / "model.zip")
    model = load_model("ppo", path, tiny_env(), learning_rate=0.05, n_steps=4, batch_size=8, n_epochs=3)
    assert model.policy.optimizer.param_groups[0]["lr"] == 0.05 and model.n_epochs == 3
    assert model.clip_range(1.0) == 0.2 and model.lr_schedule(0.5) == 0.05
    model.learn(total_timesteps=8, reset_num_timesteps=False)  # and it trains on


def test_poisoned_entries_never_run(tmp_path):
    """A zip whose every cloudpickled entry would create a marker loads, and the marker never appears;
    SB3's own load of the same file does create it (the test has power)."""
    marker = tmp_path / "marker"
    evil = poisoned_zip(saved_model(tmp_path / "model.zip"), tmp_path / "evil.zip", marker)
    model = load_model("ppo", evil, tiny_env(), **SMALL["ppo"])
    assert read_saved_model(evil).algo == "ppo" and model.num_timesteps > 0
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # its .pth weights-only, after the data's payload ran
        PPO.load(evil, env=tiny_env())
    assert marker.exists()


def test_another_algorithms_model_is_refused(tmp_path):
    path = saved_model(tmp_path / "ppo.zip", train=False)
    with pytest.raises(ValueError, match=r"ppo\.zip was saved by ppo, not a policy of --algo a2c: pass"):
        load_model("a2c", path, tiny_env())
    a2c = saved_model(tmp_path / "a2c.zip", "a2c")
    with pytest.raises(ValueError, match=r"saved by a2c, not a policy of --algo maskable_ppo"):
        load_model("maskable_ppo", a2c, tiny_env())
    with zipfile.ZipFile(a2c) as archive:
        rmsprop = archive.read("policy.optimizer.pth")
    mixed = poisoned_zip(path, tmp_path / "mixed.zip", tmp_path / "marker",
                         lambda name, data: rmsprop if name == "policy.optimizer.pth" else data)  # fmt: skip
    with pytest.raises(ValueError, match=r"mixed\.zip: the optimizer state is not that of this run's"):
        load_model("ppo", mixed, tiny_env(), **SMALL["ppo"])  # PPO's policy with A2C's RMSprop state


def test_sizes_the_run_needs(tmp_path):
    path = saved_model(tmp_path / "model.zip", train=False)
    with pytest.raises(ValueError, match=r"has a value MLP of --value-arch '64', this run '32,32'"):
        load_model("ppo", path, tiny_env(), value_arch=(32, 32))
    with pytest.raises(ValueError, match=r"embedding 6, LSTM 5 and start token 0; the generator has 7, 5, 0"):
        load_model("ppo", path, tiny_env(), config=TokenLSTMConfig(8, 4, 7, 5))


def rewritten(source: Path, target: Path, member: str, edit: Any) -> Path:
    """A copy of the saved model whose `member` (.pth) is loaded, passed through `edit` and saved back."""
    def change(name: str, data: bytes) -> bytes:
        if name != member:
            return data
        value = torch.load(io.BytesIO(data), weights_only=True)
        edit(value)
        buffer = io.BytesIO()
        torch.save(value, buffer)
        return buffer.getvalue()

    return poisoned_zip(source, target, target.with_suffix(".marker"), change)


def each_moment(optimizer: dict[str, Any], key: str, value: Any) -> None:
    for entry in optimizer["state"].values():
        entry[key] = value(entry[key])


LOADABLE_CASES: list[tuple[str, str, Any, str]] = [
    ("0-d moment", "policy.optimizer.pth", lambda o: each_moment(o, "exp_avg", lambda _: torch.tensor(1.0)),
     r"exp_avg has shape \(\), the parameter"),
    ("negative moment", "policy.optimizer.pth", lambda o: each_moment(o, "exp_avg_sq", lambda m: -m - 1),
     r"exp_avg_sq, a mean of squares, holds negative values"),
    ("step not a count", "policy.optimizer.pth", lambda o: each_moment(o, "step", lambda _: "x"),
     r"step is 'x', expected a finite count"),
    ("state under names", "policy.optimizer.pth",
     lambda o: o.update(state={str(k): v for k, v in o["state"].items()}),
     r"the optimizer holds state for parameters \['0', '1', '2'\] it does not have"),
    ("an unexpected weight", "policy.pth", lambda p: p.update(zzz=torch.zeros(1)), r"unexpected \['zzz'\]"),
]  # fmt: skip


@pytest.mark.parametrize(("member", "edit", "pattern"), [c[1:] for c in LOADABLE_CASES],
                         ids=[c[0] for c in LOADABLE_CASES])  # fmt: skip
def test_check_saved_model_refuses_what_load_model_would(tmp_path, member, edit, pattern):
    """Everything `load_model` checks, checked without an environment: a run refuses the file before it
    writes or trains anything (a 0-d moment was a RuntimeError in the first update; moments of another
    shape reached the fused Adam kernel)."""
    bad = rewritten(saved_model(tmp_path / "model.zip"), tmp_path / "bad.zip", member, edit)
    space = tiny_env().observation_space
    with pytest.raises(ValueError, match=pattern):
        check_saved_model("ppo", bad, space)
    with pytest.raises(ValueError, match=pattern):
        load_model("ppo", bad, tiny_env(), **SMALL["ppo"])
    assert check_saved_model("ppo", tmp_path / "model.zip", space).algo == "ppo"


def test_a_counter_beyond_any_run_is_refused(tmp_path):
    """num_timesteps = 10**40 reached tensorboard's writer, which refused it mid-run."""
    def change(name: str, data: bytes) -> bytes:
        if name != "data":
            return data
        return json.dumps({**json.loads(data), "num_timesteps": 10**40}).encode()

    bad = poisoned_zip(saved_model(tmp_path / "model.zip"), tmp_path / "bad.zip", tmp_path / "marker", change)
    with pytest.raises(ValueError, match=r"bad\.zip: num_timesteps is 1000000000000000000000000000000000"):
        read_saved_model(bad)
