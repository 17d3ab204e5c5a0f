"""Stable-Baselines3 interop: the VecEnv adapter, the generator-shaped policies and their warm start,
each algorithm, MaskablePPO's masks, and train/sb3.py end to end and on bad input."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import HANG_GUARD, FunctionScorer, poisoned_zip, tiny_discriminator, tiny_lstm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan, VecEnv, VecMonitor
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.sb3 import (
    ALGORITHMS,
    PolicySampler,
    SB3Learner,
    SB3VecEnv,
    generator_from_policy,
    load_model,
    make_model,
    warm_start,
)
from seqgan_env import VARIANTS, SeqGANEnv, SeqGANVectorEnv
from seqgan_env.wrappers import DiscriminatorSchedule, DiscriminatorTrainingVectorWrapper
from train.diagnostics import SIGNAL_FIELDS
from train.stages import run_rounds

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train" / "sb3.py"
TINY = "SeqGAN-Tiny-v0"
V, T = VARIANTS[TINY]["vocab_size"], VARIANTS[TINY]["seq_len"]
PAD = V
# Small PPO-family settings: 4 envs x 8 steps per update.
SMALL = {"ppo": {"n_steps": 8, "batch_size": 16, "n_epochs": 2}, "a2c": {"n_steps": 8},
         "maskable_ppo": {"n_steps": 8, "batch_size": 16, "n_epochs": 2},
         "recurrent_ppo": {"n_steps": 8, "batch_size": 16, "n_epochs": 2}}  # fmt: skip


def tiny_adapter(num_envs: int = 4, reward_mode: str = "shaped", action_mask=None, **kwargs) -> SB3VecEnv:
    venv = SeqGANVectorEnv(num_envs, **{**VARIANTS[TINY], "reward_mode": reward_mode, **kwargs})
    return SB3VecEnv(venv, action_mask=action_mask)


def generator_logits(generator, sequences: torch.Tensor) -> torch.Tensor:
    """The generator's next-token logits after [start, y_1..y_t], t = 0..T-1: [B, T, V]."""
    logits, _ = generator.prefix_states(sequences)
    return logits.transpose(0, 1)


def prefixes(sequences: np.ndarray, t: int) -> np.ndarray:
    """The observations of the prefixes of length t: [B, T] padded with V."""
    obs = np.full_like(sequences, PAD)
    obs[:, :t] = sequences[:, :t]
    return obs


# --- the warm start --------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["ppo", "a2c", "maskable_ppo"])
def test_warm_started_policy_has_the_generators_next_token_distribution(algo):
    generator = tiny_lstm(seed=3)  # embedding 6, hidden 5: a transposed weight would not fit
    model = make_model(algo, tiny_adapter(), generator, **SMALL[algo])
    sequences = torch.randint(0, V, (6, T), generator=torch.Generator().manual_seed(0))
    expected = torch.softmax(generator_logits(generator, sequences), dim=-1)
    for t in range(T):  # the empty prefix included
        obs, _ = model.policy.obs_to_tensor(prefixes(sequences.numpy(), t))
        with torch.no_grad():
            probs = model.policy.get_distribution(obs).distribution.probs
        torch.testing.assert_close(probs, expected[:, t], rtol=1e-5, atol=1e-6)


def test_warm_started_recurrent_policy_has_the_generators_distribution():
    generator = tiny_lstm(seed=4)
    model = make_model("recurrent_ppo", tiny_adapter(), generator, **SMALL["recurrent_ppo"])
    sequences = torch.randint(0, V, (6, T), generator=torch.Generator().manual_seed(1))
    expected = torch.softmax(generator_logits(generator, sequences), dim=-1)
    shape = (1, len(sequences), generator.config.hidden_dim)
    states = (torch.zeros(shape), torch.zeros(shape))
    for t in range(T):  # one token per step, the LSTM state carried as in a rollout
        obs, _ = model.policy.obs_to_tensor(prefixes(sequences.numpy(), t))
        starts = torch.full((len(sequences),), float(t == 0))
        with torch.no_grad():
            dist, states = model.policy.get_distribution(obs, states, starts)
        torch.testing.assert_close(dist.distribution.probs, expected[:, t], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_generator_from_policy_inverts_the_warm_start(algo):
    generator = tiny_lstm(seed=5)
    model = make_model(algo, tiny_adapter(), generator, **SMALL[algo])
    back = generator_from_policy(model.policy)
    assert back.config.to_dict() | {"init_std": 0} == generator.config.to_dict() | {"init_std": 0}
    for (name, a), (_, b) in zip(back.state_dict().items(), generator.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_the_padding_id_embeds_to_zeros_and_the_mapping_checks_shapes():
    model = make_model("ppo", tiny_adapter(), tiny_lstm(), **SMALL["ppo"])
    assert torch.equal(model.policy.pi_features_extractor.embedding.weight[PAD], torch.zeros(6))
    with pytest.raises(ValueError, match="vocabulary"):
        warm_start(model.policy, tiny_lstm(vocab_size=V + 1))
    deep = make_model("ppo", tiny_adapter(), tiny_lstm(), **SMALL["ppo"])
    deep.policy.mlp_extractor.policy_net.append(torch.nn.Identity())
    with pytest.raises(ValueError, match="pi=\\[\\]"):
        warm_start(deep.policy, tiny_lstm())


# --- every algorithm learns --------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ALGORITHMS)
def test_each_algorithm_learns_on_the_adapter(algo):
    generator = tiny_lstm(seed=6)
    env = tiny_adapter(reward_mode="shaped")
    model = make_model(algo, env, generator, seed=0, **SMALL[algo])
    before = generator_from_policy(model.policy).output.weight.clone()
    model.learn(64)
    assert model.num_timesteps == 64
    assert env.episode_count == 64 // T
    after = generator_from_policy(model.policy)
    assert not torch.equal(after.output.weight, before)  # the updates reached the generator's weights
    assert len(model.ep_info_buffer) == 64 // T  # episode statistics reached SB3 (rollout/ep_rew_mean)
    assert all(-1.0 <= info["r"] <= 1.0 and info["l"] == T for info in model.ep_info_buffer)


class RecordActions(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.actions: list[np.ndarray] = []
        self.observations: list[np.ndarray] = []

    def _on_step(self) -> bool:
        self.actions.append(np.asarray(self.locals["actions"]).reshape(-1).copy())
        self.observations.append(np.asarray(self.locals["obs_tensor"]).copy())
        return True


def test_maskable_ppo_never_takes_a_masked_action():
    mask = np.ones(V, dtype=bool)
    mask[[0, 2, 5, 6]] = False
    env = tiny_adapter(action_mask=mask)
    model = make_model("maskable_ppo", env, tiny_lstm(seed=7), seed=0, **SMALL["maskable_ppo"])
    recorder = RecordActions()
    model.learn(256, callback=recorder)
    actions = np.concatenate(recorder.actions)
    assert len(actions) == 256 and mask[actions].all()
    assert set(actions.tolist()) == {1, 3, 4, 7}  # the warm-started policy puts mass on every token


def test_maskable_ppo_follows_a_state_dependent_mask():
    def no_repeats(obs: np.ndarray) -> np.ndarray:
        """Forbid the token just generated (the start token 0 at the start)."""
        masks = np.ones((len(obs), V), dtype=bool)
        lengths = (obs != PAD).sum(1)
        last = np.where(lengths > 0, obs[np.arange(len(obs)), np.maximum(lengths - 1, 0)], 0)
        masks[np.arange(len(obs)), last] = False
        return masks

    env = tiny_adapter(action_mask=no_repeats)
    model = make_model("maskable_ppo", env, tiny_lstm(seed=8), seed=0, **SMALL["maskable_ppo"])
    recorder = RecordActions()
    model.learn(128, callback=recorder)
    for obs, actions in zip(recorder.observations, recorder.actions, strict=True):
        assert no_repeats(obs.astype(np.int64))[np.arange(len(actions)), actions].all()


def test_bad_action_masks():
    with pytest.raises(ValueError, match="shape"):
        tiny_adapter(action_mask=np.ones(V + 1, dtype=bool))
    with pytest.raises(ValueError, match="at least one"):
        tiny_adapter(action_mask=np.zeros(V, dtype=bool))
    with pytest.raises(TypeError, match="SeqGANVectorEnv"):
        SB3VecEnv(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"))


# --- the adapter against DummyVecEnv of single envs -------------------------------------------------
def first_token_score(row: list[int]) -> float:
    """A deterministic score of a complete sequence: Q_t is then exact, whatever the completions."""
    return (row[0] + 1) / (V + 1)


@pytest.mark.parametrize(
    "reward_mode, eos_id, scorer",
    [("terminal", None, None), ("shaped", 3, first_token_score), ("mc", None, first_token_score)],
)
def test_adapter_matches_dummy_vec_env_of_single_envs(reward_mode, eos_id, scorer):
    B = 3
    policy, discriminator = tiny_lstm(seed=9), tiny_discriminator(seed=9)

    def kwargs():
        return {"reward_mode": reward_mode, "eos_id": eos_id, "rollout_policy": policy,
                "discriminator": discriminator, "oracle_seed": None,
                "scorer": None if scorer is None else FunctionScorer(scorer)}  # fmt: skip

    ours = SB3VecEnv(SeqGANVectorEnv(B, **VARIANTS[TINY], **kwargs()))
    theirs = DummyVecEnv([lambda: Monitor(gym.make(TINY, **kwargs())) for _ in range(B)])
    ours.seed(0), theirs.seed(0)
    np.testing.assert_array_equal(ours.reset(), theirs.reset())
    actions = np.random.default_rng(0).integers(0, V, size=(24, B))
    n_done, lengths = 0, []
    for step_actions in actions:
        o_obs, o_rew, o_done, o_infos = ours.step(step_actions)
        d_obs, d_rew, d_done, d_infos = theirs.step(step_actions)
        np.testing.assert_array_equal(o_obs, d_obs)
        np.testing.assert_allclose(o_rew, d_rew, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(o_done, d_done)
        for o, d in zip(o_infos, d_infos, strict=True):
            assert o.keys() == d.keys()
            assert o["TimeLimit.truncated"] is d["TimeLimit.truncated"] is False
            if "terminal_observation" in d:
                n_done += 1
                np.testing.assert_array_equal(o["terminal_observation"], d["terminal_observation"])
                np.testing.assert_array_equal(o["sequence"], d["sequence"])
                assert o["episode"]["l"] == d["episode"]["l"]
                lengths.append(d["episode"]["l"])
                assert o["episode"]["r"] == pytest.approx(d["episode"]["r"], abs=1e-6)
            if "q" in d:
                assert o["q"] == pytest.approx(d["q"], rel=1e-6)
    assert n_done >= 2 * B
    if eos_id is not None:  # episodes of different lengths: envs reset at different steps
        assert min(lengths) < T and max(lengths) == T


# --- the rest of the VecEnv contract -----------------------------------------------------------------
def test_vec_env_contract():
    env = tiny_adapter(num_envs=3, render_mode="ansi")
    assert isinstance(env, VecEnv) and env.num_envs == 3
    assert env.observation_space == gym.spaces.Box(0, V, shape=(T,), dtype=np.int64)
    assert env.action_space == gym.spaces.Discrete(V)
    assert env.seed(5) == [5, 6, 7]
    obs = env.reset()
    assert obs.dtype == np.int64 and obs.shape == (3, T) and (obs == PAD).all()
    env.step(np.array([1, 2, 3]))
    assert env.render() == "1\n2\n3"
    assert env.get_attr("vocab_size") == [V, V, V] and env.get_attr("reward_mode", indices=1) == ["shaped"]
    assert env.get_attr("rollout_policy", [0, 2])[0] is env.base.rollout_policy
    assert env.has_attr("action_masks") and not env.has_attr("no_such_attribute")
    with pytest.raises(AttributeError, match="no_such_attribute"):
        env.get_attr("no_such_attribute")
    env.set_attr("note", "shared")
    assert env.get_attr("note") == ["shared"] * 3 and env.base.note == "shared"
    with pytest.raises(ValueError, match="all of them"):
        env.set_attr("note", "one", indices=[0])
    masks = env.env_method("action_masks", indices=[0, 2])
    assert len(masks) == 2 and masks[0].shape == (V,) and masks[0].all()
    assert env.env_method("render", indices=[1]) == [("1", "2", "3")]
    assert env.env_is_wrapped(Monitor) == [True] * 3  # it records Monitor's episode statistics itself
    assert env.env_is_wrapped(gym.Wrapper) == [False] * 3
    env.close()


def test_vec_env_checks_of_sb3():
    """SB3's NaN checker and VecMonitor run on top of it, and evaluate_policy reads its episodes."""
    env = VecCheckNan(tiny_adapter(num_envs=2), raise_exception=True)
    env.reset()
    for _ in range(2 * T):
        env.step(np.array([1, 2]))
    wrapped = tiny_adapter(num_envs=2, reward_mode="terminal")
    with pytest.warns(UserWarning, match="Monitor"):
        monitored = VecMonitor(wrapped)
    monitored.reset()
    for _ in range(T):
        _, _, dones, infos = monitored.step(np.array([4, 5]))
    assert dones.all() and all(info["episode"]["l"] == T for info in infos)
    model = make_model("ppo", wrapped, tiny_lstm(), **SMALL["ppo"])
    rewards, lengths = evaluate_policy(model, wrapped, n_eval_episodes=4, return_episode_rewards=True)
    assert lengths == [T] * 4 and all(0 <= r <= 1 for r in rewards)


def test_a_quiet_learner_writes_no_log_folder(tmp_path, monkeypatch):
    """Without tensorboard or verbosity the SB3 learner logs nothing, and leaves no folder in the temp dir
    (SB3's own `learn` makes an empty SB3-<date> folder there each time)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    venv = SeqGANVectorEnv(2, **VARIANTS[TINY], rollout_policy=tiny_lstm(seed=11),
                           discriminator=tiny_discriminator())
    model = make_model("ppo", SB3VecEnv(venv), tiny_lstm(), seed=0, **SMALL["ppo"])
    learner = SB3Learner(model, 1, None, "copy")
    learner.collect()
    learner.update()
    learner.close()
    assert learner.iterations == 1 and list(tmp_path.glob("SB3-*")) == []


def test_discriminator_wrapper_under_the_adapter_and_the_sb3_learner():
    """The REINFORCE agent's wrapper records SB3's episodes; in the adversarial loop the SB3 learner
    syncs the rollout policy to the SB3 policy after every update, and the discriminator trains."""
    generator, rollout = tiny_lstm(seed=10), tiny_lstm(seed=11)
    real = torch.randint(0, V, (32, T), generator=torch.Generator().manual_seed(0))
    sampler = PolicySampler(torch.Generator().manual_seed(0))
    venv = SeqGANVectorEnv(4, **VARIANTS[TINY], rollout_policy=rollout, discriminator=tiny_discriminator())
    envs = DiscriminatorTrainingVectorWrapper(venv, real, sampler, DiscriminatorSchedule(None, 1, 16, 1, 8))
    model = make_model("ppo", SB3VecEnv(envs), generator, seed=0, **SMALL["ppo"])
    sampler.bind(model)
    learner = SB3Learner(model, 3, rollout, "copy")
    learner.start_rollout_policy()
    for a, b in zip(rollout.parameters(), generator_from_policy(model.policy).parameters(), strict=True):
        assert torch.equal(a, b)  # beta = theta from the start
    rounds: list[tuple[int, dict[str, float]]] = []
    run_rounds(learner, envs, 3, 0, envs.train_discriminator, lambda r, losses: rounds.append((r, losses)),
               "", progress=False)  # fmt: skip
    learner.close()
    assert [r for r, _ in rounds] == [1, 2, 3] and envs.updater.trainings == 3 and learner.iterations == 3
    assert np.isfinite(rounds[-1][1]["d_loss"]) and np.isfinite(rounds[-1][1]["pg_loss"])
    assert model.num_timesteps == 3 * 4 * 8 and learner.n_updates > 0
    assert envs.updater.episodes_seen == 3 * 4 * 8 // T
    for a, b in zip(rollout.parameters(), generator_from_policy(model.policy).parameters(), strict=True):
        assert torch.equal(a, b)


# --- saving and loading --------------------------------------------------------------------------
def test_save_load_and_another_vocabulary(tmp_path):
    model = make_model("a2c", tiny_adapter(), tiny_lstm(seed=12), **SMALL["a2c"])
    model.save(tmp_path / "model.zip")
    loaded = load_model("a2c", tmp_path / "model.zip", tiny_adapter(num_envs=2))
    before, after = generator_from_policy(model.policy), generator_from_policy(loaded.policy)
    for a, b in zip(after.parameters(), before.parameters(), strict=True):
        assert torch.equal(a, b)
    other = SB3VecEnv(SeqGANVectorEnv(2, **{**VARIANTS[TINY], "vocab_size": V + 2}))
    with pytest.raises(ValueError, match=f"vocabulary {V}.*vocabulary {V + 2}"):
        load_model("a2c", tmp_path / "model.zip", other)
    with pytest.raises(ValueError, match="not a policy of --algo maskable_ppo"):
        load_model("maskable_ppo", tmp_path / "model.zip", tiny_adapter())
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a saved Stable-Baselines3 model"):
        load_model("a2c", tmp_path / "junk.zip", tiny_adapter())
    with pytest.raises(ValueError, match="unknown algorithm 'dqn'"):
        make_model("dqn", tiny_adapter(), tiny_lstm())


# --- train/sb3.py ----------------------------------------------------------------------------------
PRETRAIN_ARGS = "--n-real 128 --n-test 64 --eval-samples 128 --n-negatives 64"
FAST = ["--threads", "1", "--rounds", "2", "--n-envs", "8", "--eval-every", "1", "--eval-samples", "128",
        "--n-negatives", "64", "--no-progress"]  # fmt: skip


def run_in_process(capsys, monkeypatch, *args: str) -> subprocess.CompletedProcess:
    """train/sb3.py's main() in this process: for the quick paths."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # the script imports train/adversarial.py
    spec = importlib.util.spec_from_file_location("sb3_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    code = module.main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A tiny end-to-end run of the script, pre-training in place (tiny preset)."""
    out = tmp_path_factory.mktemp("sb3_runs")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--algo", "ppo", "--pretrain-preset", "tiny",
         "--pretrain-args", PRETRAIN_ARGS, *FAST, "--out", str(out), "--name", "run"],
        capture_output=True, text=True, timeout=HANG_GUARD, cwd=ROOT,
    )  # fmt: skip
    return out / "run", result


def test_script_end_to_end_writes_the_run_folder(e2e_run):
    folder, result = e2e_run
    assert result.returncode == 0, result.stderr
    assert "NLL-oracle" in result.stdout and "NLL-test" in result.stdout
    config = json.loads((folder / "config.json").read_text())
    assert config["algo"] == "ppo" and config["reward_mode"] == "shaped" and config["gamma"] == 1.0
    with (folder / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    steps = [(r["phase"], int(r["step"])) for r in rows if r["phase"] != "mle"]
    assert steps == [("adversarial", i) for i in range(3)]
    assert rows[0]["phase"] == "mle"  # the pre-training's curve comes first
    for r in rows:
        assert 0 < float(r["nll_oracle"]) < 3 * np.log(50) and 0 < float(r["nll_test"])
        # the signal's diagnostics (train/diagnostics.py) at every adversarial evaluation, none in MLE
        values = [r[k] for k in SIGNAL_FIELDS]
        finite = r["phase"] == "adversarial"
        assert all(math.isfinite(float(v)) for v in values) if finite else not any(values)
    assert (folder / "signal.png").read_bytes().startswith(b"\x89PNG")
    events = EventAccumulator(str(folder / "tb"))
    events.Reload()
    assert {f"signal/{k}" for k in SIGNAL_FIELDS} <= set(events.Tags()["scalars"])
    assert (folder / "pretrain" / "pretrained.pt").is_file()
    assert list((folder / "tb").rglob("events.out.tfevents.*"))
    assert (folder / "curve.png").read_bytes().startswith(b"\x89PNG")
    assert len((folder / "samples.txt").read_text().splitlines()) == 100
    env = SeqGANEnv(checkpoint=str(folder / "final.pt"))  # the final models load into SeqGAN-v0
    assert (env.vocab_size, env.seq_len) == (50, 8)


def test_script_continues_a_saved_model_from_a_pretrained_folder(e2e_run, tmp_path, capsys, monkeypatch):
    """--load continues the model's weights and counters (its first evaluation counts on from the saved
    run's last); its cloudpickled entries, made payloads that would create a marker, never run."""
    folder, result = e2e_run
    assert result.returncode == 0, result.stderr
    marker = tmp_path / "marker"
    evil = poisoned_zip(folder / "model.zip", tmp_path / "evil.zip", marker)
    done = run_in_process(capsys, monkeypatch, "--pretrained", str(folder / "pretrain"),
                          "--load", str(evil), *FAST, "--rounds", "1",
                          "--out", str(tmp_path), "--name", "more")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "more" / "model.zip").is_file() and not marker.exists()
    with (folder / "metrics.csv").open() as before, (tmp_path / "more" / "metrics.csv").open() as after:
        last = list(csv.DictReader(before))[-1]
        first = next(r for r in csv.DictReader(after) if r["phase"] == "adversarial")
    assert int(first["generator_updates"]) == int(last["generator_updates"]) > 0


def test_script_oracle_reward_trains_no_discriminator(e2e_run, tmp_path, capsys, monkeypatch):
    folder, result = e2e_run
    assert result.returncode == 0, result.stderr
    done = run_in_process(capsys, monkeypatch, "--pretrained", str(folder / "pretrain"), "--reward", "oracle",
                          *FAST, "--out", str(tmp_path), "--name", "oracle")  # fmt: skip
    assert done.returncode == 0, done.stderr
    final = torch.load(tmp_path / "oracle" / "final.pt", weights_only=False)
    pretrained = torch.load(folder / "pretrain" / "pretrained.pt", weights_only=False)
    assert final["config"]["reward"] == "oracle"
    for name, value in pretrained["discriminator"]["state_dict"].items():  # never trained
        assert torch.equal(final["discriminator"]["state_dict"][name], value), name
    for row in final["metrics"]:  # the reward is the oracle's likelihood: it ranks as the oracle does
        if row["phase"] == "adversarial":
            assert row["reward_oracle_spearman"] == pytest.approx(1.0, abs=1e-9)


def test_script_bad_input(e2e_run, tmp_path, capsys, monkeypatch):
    folder, _ = e2e_run
    out = ["--out", str(tmp_path)]
    bad = run_in_process(capsys, monkeypatch, "--algo", "dqn", *out)
    assert bad.returncode == 2 and "argument --algo: invalid choice: 'dqn'" in bad.stderr
    empty = tmp_path / "empty_run"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    bad = run_in_process(capsys, monkeypatch, "--pretrained", str(empty), *out)
    assert bad.returncode == 2 and "holds no pre-training" in bad.stderr
    bad = run_in_process(capsys, monkeypatch, "--pretrained", str(tmp_path / "nowhere"), *out)
    assert bad.returncode == 2 and "no such folder" in bad.stderr
    other = make_model("ppo", tiny_adapter(), tiny_lstm(), **SMALL["ppo"])  # V 8, T 4: the run has V 50, T 8
    other.save(tmp_path / "v8.zip")
    bad = run_in_process(capsys, monkeypatch, "--pretrained", str(folder / "pretrain"), "--load",
                         str(tmp_path / "v8.zip"), *out)  # fmt: skip
    assert bad.returncode == 2 and "vocabulary 8" in bad.stderr and "vocabulary 50" in bad.stderr
    bad = run_in_process(capsys, monkeypatch, "--mask-tokens", "1,2", *out)
    assert bad.returncode == 2 and "maskable_ppo" in bad.stderr
    assert not any(p.name.startswith("sb3_") for p in tmp_path.iterdir())  # nothing was written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learning-rate", "nan"], "--learning-rate must be a finite number, got nan"),
        (["--gamma", "inf"], "--gamma must be a finite number"),
        (["--clip-range", "nan"], "--clip-range must be a finite number"),
        (["--ent-coef=-1"], "--ent-coef must be in [0, 1e+06], got -1"),
        (["--vf-coef", "1e38"], "--vf-coef must be in [0, 1e+06], got 1e+38"),
        (["--learning-rate", "1e30"], "--learning-rate must be in (0, 1], got 1e+30"),
        (["--temperature", "1e-300"], "--temperature must be >= 1e-06, got 1e-300"),
        (["--rollout-rate", "1.5"], "--rollout-rate must be in [0, 1)"),
        (["--seed", "-1"], "--seed must be in [0, 2**63 - 1]"),
        (["--threads", "-3"], "--threads must be >= 0"),
        (["--device", "foo"], "device 'foo' is not a torch device name"),
        (["--name", "../x"], "--name must be a plain folder name"),
        (["--name", "/abs"], "--name must be a plain folder name"),
        (["--temperature", "nan"], "--temperature must be a finite number"),
        (["--rollout-update", "foo"], "argument --rollout-update: invalid choice: 'foo'"),
        (["--value-arch", "64,x"], "--value-arch must be comma-separated sizes"),
        (["--diag-samples", "0"], "--diag-samples must be >= 2, got 0"),
        (["--diag-q-samples", "nan"], "argument --diag-q-samples: invalid int value: 'nan'"),
        (["--diag-repeats=-1"], "--diag-repeats must be >= 2, got -1"),
    ],
)
def test_script_bad_options(tmp_path, capsys, monkeypatch, args, message):
    bad = run_in_process(capsys, monkeypatch, *args, "--out", str(tmp_path / "runs"))
    assert bad.returncode == 2 and message in bad.stderr, bad.stderr
    assert bad.stderr.count("\n") == 1 and not any(tmp_path.iterdir())


HUGE = str(10**13)
SIZE_CASES = [  # against the in-place tiny pre-training's sizes (V 50, T 8), checked before it runs
    (["--n-envs", "100000000"], "lower --n-steps/--n-envs ("),
    (["--n-rollouts", HUGE, "--no-diagnostics"], "lower --n-envs/--n-rollouts ("),
    (["--n-rollouts", HUGE], "lower --diag-q-samples/--n-rollouts ("),
    (["--n-steps", "9" * 23], "lower --n-steps/--n-envs ("),
    (["--n-envs", "1" + "0" * 400], "lower --n-steps/--n-envs ("),
    (["--value-arch", "9" * 23], "lower --value-arch ("),
    (["--eval-samples", HUGE], "lower --eval-samples ("),
    (["--diag-samples", HUGE], "lower --diag-samples ("),
    (["--diag-q-samples", HUGE], "lower --diag-q-samples/--n-rollouts ("),
    (["--n-negatives", HUGE], "lower --n-negatives ("),
    (["--algo", "maskable_ppo", "--mask-tokens", ",".join(map(str, range(50)))],
     "--mask-tokens masks every token (all 50): leave the policy at least one"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), SIZE_CASES, ids=[" ".join(c[0])[:40] for c in SIZE_CASES])
def test_script_refuses_sizes_that_cannot_run_before_writing(tmp_path, capsys, monkeypatch, args, message):
    """Sizes beyond this machine's memory, and a mask of every token, are one line naming the option
    (exit code 2), before the in-place pre-training or anything else is written."""
    bad = run_in_process(capsys, monkeypatch, "--pretrain-preset", "tiny", *FAST, *args,
                         "--out", str(tmp_path / "runs"))  # fmt: skip
    assert bad.returncode == 2 and message in bad.stderr, bad.stderr[-2000:]
    assert bad.stderr.count("\n") == 1 and not any(tmp_path.iterdir())


PRETRAIN_ARGS_CASES = [
    ("--out x", "--out cannot be given here: the pre-training goes into RUN/pretrain (RUN: --out and "
                "--name)"),
    ("--name foo", "--name cannot be given here: the pre-training goes into RUN/pretrain"),
    ("--preset paper", "--preset cannot be given here: use --pretrain-preset"),
    ("--pres paper", "--preset cannot be given here: use --pretrain-preset"),
    ("--resume R", "--resume cannot be given here: the pre-training starts afresh in RUN/pretrain; to start "
                   "from a finished one, use --pretrained"),
    ("--init-from R", "--init-from cannot be given here: to start from another run's pre-training, use "
                      "--pretrained"),
    ("--seed 3", "--seed cannot be given here: use this script's --seed"),
    ("--threads 2", "--threads cannot be given here: use this script's --threads"),
    ("--device meta", "--device cannot be given here: use this script's --device"),
    ("--progress", "--progress cannot be given here: use this script's --progress or --no-progress"),
]  # fmt: skip


@pytest.mark.parametrize(("pretrain_args", "message"), PRETRAIN_ARGS_CASES,
                         ids=[c[0] for c in PRETRAIN_ARGS_CASES])  # fmt: skip
def test_pretrain_args_may_not_set_what_the_script_sets(tmp_path, capsys, monkeypatch, pretrain_args,
                                                        message):  # fmt: skip
    """--pretrain-args cannot move the in-place pre-training out of RUN/pretrain, start it from elsewhere or
    contradict the script's own options; one line names the option to use instead, nothing is written."""
    monkeypatch.chdir(tmp_path)  # where a relative --out would go
    bad = run_in_process(capsys, monkeypatch, "--pretrain-preset", "tiny", f"--pretrain-args={pretrain_args}",
                         *FAST, "--rounds", "1", "--out", "runs")  # fmt: skip
    assert bad.returncode == 2 and f"--pretrain-args {pretrain_args!r}: {message}" in bad.stderr, bad.stderr
    assert bad.stderr.count("\n") == 1 and not any(tmp_path.iterdir())


def test_pretrain_args_may_repeat_the_scripts_own_values(tmp_path):
    """What the script sets from its own options may be repeated in --pretrain-args with the same value."""
    from train.run_folder import RunFolder
    from train.sb3_config import parse_sb3_config
    from train.sources import pretraining_config

    same = "--threads 1 --seed 0 --no-progress --mle-epochs 2"
    cfg = parse_sb3_config(["--pretrain-preset", "tiny", "--threads", "1", "--no-progress",
                            "--pretrain-args", same])  # fmt: skip
    pre = pretraining_config(cfg, RunFolder(tmp_path / "run"))
    assert (pre.threads, pre.seed, pre.progress, pre.mle_epochs) == (1, 0, False, 2)
    assert (Path(pre.out), pre.name) == (tmp_path / "run", "pretrain")


def test_compare_refuses_ppo_sizes_before_any_run(tmp_path, capsys):
    """train/compare.py checks its ppo run with train/sb3.py's checks (train.sb3_job.check_sb3_run) before
    the SeqGAN run starts: nothing is written."""
    spec = importlib.util.spec_from_file_location("compare_script", ROOT / "train" / "compare.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    with pytest.raises(SystemExit) as exit_:
        compare.main(["--preset", "tiny", "--methods", "seqgan,ppo", "--ppo-args=--n-envs 100000000",
                      "--out", str(tmp_path / "runs")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and "--ppo-args: these sizes need" in err[-1], err
    assert "lower --n-steps/--n-envs (" in err[-1] and not any(tmp_path.iterdir())


def test_script_help_explains_every_option():
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0
    for option in ("--algo", "--pretrained", "--load", "--reward-mode", "--gamma", "--threads",
                   "--no-progress"):  # fmt: skip
        assert option in result.stdout


# --- the rollout policy's cached states under the round callback's sync ------------------------------
class CheckRolloutCache(BaseCallback):
    """After every env step: the env's cached rollout-policy logits and state of each live prefix are
    the rollout policy's current ones for that prefix, as a fresh computation gives them."""

    def __init__(self, venv: SeqGANVectorEnv) -> None:
        super().__init__()
        self.venv = venv
        self.learner: SB3Learner | None = None
        self.checked_after_sync = 0

    def _on_step(self) -> bool:
        core = self.venv._core
        live = np.flatnonzero(~core.done)
        assert len(live) == self.venv.num_envs  # the adapter resets finished envs at once
        tokens = core.tokens[live].masked_fill(core.tokens[live] == PAD, 0)
        logits, (h, c) = self.venv.rollout_policy.prefix_states(tokens)  # [T, B, .]
        at, rows = torch.as_tensor(core.length[live]), torch.arange(len(live))
        for name, expected in (("logits", logits), ("h", h), ("c", c)):
            message = f"stale cached {name} at round {self.learner.iterations}"
            torch.testing.assert_close(getattr(core, name)[live], expected[at, rows], rtol=1e-6, atol=1e-7,
                                       msg=lambda m, message=message: f"{message}: {m}")  # fmt: skip
        self.checked_after_sync += self.learner.iterations >= 1
        return True


def test_cached_rollout_states_follow_the_learners_sync():
    """SB3 resets finished envs before the learner copies the new policy into the rollout policy, so
    episodes start from states cached with the previous weights unless the env notices."""
    # The rollout policy starts as the generator: the sync at the start changes nothing, the rounds' do.
    generator, rollout = tiny_lstm(seed=13), tiny_lstm(seed=13)
    venv = SeqGANVectorEnv(4, **VARIANTS[TINY], reward_mode="shaped", eos_id=3, rollout_policy=rollout,
                           discriminator=tiny_discriminator())  # fmt: skip
    model = make_model("ppo", SB3VecEnv(venv), generator, seed=0, **SMALL["ppo"])
    checker = CheckRolloutCache(venv)
    checker.learner = learner = SB3Learner(model, 3, rollout, "copy", callback=checker)
    learner.start_rollout_policy()
    run_rounds(learner, venv, 3, 0, None, lambda r, losses: None, "", progress=False)
    learner.close()
    assert learner.iterations == 3 and checker.checked_after_sync >= 8
    for a, b in zip(rollout.parameters(), generator_from_policy(model.policy).parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_every_algorithm_runs_as_a_learner(algo):
    """SB3Learner drives each algorithm's own collect/train round by round (MaskablePPO with its masks)."""
    generator, rollout = tiny_lstm(seed=14), tiny_lstm(seed=14)
    venv = SeqGANVectorEnv(4, **VARIANTS[TINY], reward_mode="shaped", rollout_policy=rollout,
                           discriminator=tiny_discriminator())  # fmt: skip
    model = make_model(algo, SB3VecEnv(venv), generator, seed=0, **SMALL[algo])
    learner = SB3Learner(model, 2, rollout, "copy")
    learner.start_rollout_policy()
    run_rounds(learner, venv, 2, 0, None, lambda r, losses: None, "", progress=False)
    learner.close()
    assert learner.iterations == 2 and model.num_timesteps == 2 * 4 * SMALL[algo]["n_steps"]
    assert learner.n_updates > 0
    for a, b in zip(rollout.parameters(), generator_from_policy(model.policy).parameters(), strict=True):
        assert torch.equal(a, b)
