"""SeqGAN's adversarial rounds on a local Ray (num_cpus=2) with 2 env runners at tiny size.

Skipped where Ray RLlib is not installed (`pip install -e ".[rllib]"`); CI runs it in that install.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")
pytest.importorskip("ray.rllib")

from conftest import HANG_GUARD, SystemMarker, killer_command, run_injected  # noqa: E402
from test_signals import PRE_FAST, metrics_without_time, run_commands, stopped_line  # noqa: E402

from agents.rllib import RLlibLearner, algorithm_config, build_algorithm  # noqa: E402
from agents.rllib_env import make_vector_env, replay, runner_models  # noqa: E402
from agents.rllib_learners import RealStepsPPOLearner  # noqa: E402
from agents.rllib_module import TokenPrefixRLModule, module_config  # noqa: E402
from seqgan_env.checkpoint import save_checkpoint  # noqa: E402
from seqgan_env.discriminator import Discriminator, DiscriminatorConfig  # noqa: E402
from seqgan_env.oracle import random_oracle  # noqa: E402
from seqgan_env.registration import VARIANTS  # noqa: E402
from seqgan_env.scorers import OracleScorer  # noqa: E402
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig  # noqa: E402
from seqgan_env.vector_env import SeqGANVectorEnv  # noqa: E402
from seqgan_env.wrappers import DiscriminatorSchedule, DiscriminatorUpdater  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = dict(VARIANTS["SeqGAN-Tiny-v0"], reward_mode="shaped", oracle_seed=None)  # V 8, T 4, N 4
N_ENVS, RUNNERS = 8, 2


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray whose workers import this checkout (PYTHONPATH, inherited by the raylet)."""
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def tiny_generator(seed: int = 0) -> TokenLSTM:
    return TokenLSTM(TokenLSTMConfig(8, 4, 8, 8), rng=torch.Generator().manual_seed(seed))


def tiny_discriminator(seed: int = 1) -> Discriminator:
    config = DiscriminatorConfig(8, 4, 8, ((1, 8), (2, 8), (3, 8), (4, 8)))
    return Discriminator(config, rng=torch.Generator().manual_seed(seed))


def build(algo: str = "ppo", runners: int = RUNNERS) -> RLlibLearner:
    """An RLlib algorithm with the driver's models and the discriminator's schedule, as train/rllib.py."""
    generator = tiny_generator()
    hyper = {"lr": 1e-3, "gamma": 1.0, "num_epochs": 2, "minibatch_size": 16}
    if algo == "ppo":
        hyper["use_kl_loss"] = False
    config = algorithm_config(algo, TINY, module_config(generator.config, generator), N_ENVS, runners, 4,
                              hyper, seed=0)  # fmt: skip
    rng = torch.Generator().manual_seed(0)
    real = random_oracle(8, 4, seed=0).sample(64, rng)
    box: list[RLlibLearner] = []
    updater = DiscriminatorUpdater(tiny_discriminator(), real, lambda n: box[0].sample(n, rng),
                                   DiscriminatorSchedule(None, 1, 32, 1, 16), rng)  # fmt: skip
    rollout_policy = tiny_generator(seed=5)  # differs from the generator until the first sync
    box.append(RLlibLearner(build_algorithm(config), rollout_policy, updater))
    return box[0]


@pytest.fixture(scope="class")
def learner(local_ray):
    """Shared by the tests of `TestTwoRunners`, and stopped after them: its runners hold Ray's 2 CPUs."""
    learner = build()
    learner.start_rollout_policy()
    yield learner
    learner.algo.stop()


def assert_runners_hold_the_drivers_models(learner: RLlibLearner) -> None:
    found = runner_models(learner.algo)
    assert len(found) == RUNNERS  # remote runners only: the driver's local runner has no env
    for rollout_state, discriminator_state in found:
        for name, value in learner.rollout_policy.state_dict().items():
            assert torch.equal(rollout_state[name], value), name
        for name, value in learner.discriminator.state_dict().items():
            assert torch.equal(discriminator_state[name], value), name


def test_the_module_warm_starts_to_the_generators_distribution():
    generator = tiny_generator()
    env = make_vector_env({**TINY, "num_envs": 1})
    module = TokenPrefixRLModule(observation_space=env.single_observation_space,
                                 action_space=env.single_action_space,
                                 model_config=module_config(generator.config, generator))  # fmt: skip
    prefixes = torch.tensor([[8, 8, 8, 8], [3, 8, 8, 8], [3, 1, 7, 8]])  # padded with V = 8
    logits = module.forward_inference({"obs": prefixes})["action_dist_inputs"]  # [3, V]
    with torch.no_grad():
        inputs = torch.cat([torch.zeros(3, 1, dtype=torch.long), prefixes.clamp(max=7)], dim=1)
        hidden, _ = generator.lstm(generator.embedding(inputs))
        expected = generator.output(hidden[torch.arange(3), torch.tensor([0, 1, 3])])
    torch.testing.assert_close(logits, expected)
    for name, value in module.generator().state_dict().items():
        assert torch.equal(value, generator.state_dict()[name]), name
    values = module.compute_values({"obs": prefixes})
    assert values.shape == (3,)
    hidden, out = module.vf[0], module.vf[-1]  # SB3's orthogonal init: gain sqrt 2, then 1; zero biases
    torch.testing.assert_close(hidden.weight.T @ hidden.weight, 2 * torch.eye(hidden.in_features))
    torch.testing.assert_close(out.weight.norm(), torch.tensor(1.0))
    assert not hidden.bias.any() and not out.bias.any()


def test_ppo_standardizes_advantages_over_the_real_steps_only(monkeypatch):
    """RLlib's artificial end-of-episode steps (loss mask False) are left out of the mean and std."""
    from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner

    seen = {}
    monkeypatch.setattr(PPOTorchLearner, "compute_loss_for_module", lambda self, **kw: seen.update(kw))
    learner = object.__new__(RealStepsPPOLearner)
    advantages, mask = torch.tensor([1.0, 2.0, 4.0, 9.0]), torch.tensor([True, True, True, False])
    learner.compute_loss_for_module(module_id="m", config=None, fwd_out=None,
                                    batch={"advantages": advantages, "loss_mask": mask})  # fmt: skip
    real = seen["batch"]["advantages"][mask]
    torch.testing.assert_close(real, (advantages[:3] - advantages[:3].mean()) / advantages[:3].std())


class TestTwoRunners:
    """PPO, 2 env runners of 4 envs each, at tiny size (V 8, T 4)."""

    def test_rounds_sample_and_every_runner_holds_the_drivers_models_after_each(self, learner):
        assert_runners_hold_the_drivers_models(learner)  # after start_rollout_policy
        for _ in range(2):
            result = learner.collect()
            assert result["env_runners"]["num_env_steps_sampled"] == N_ENVS * 4
            loss = learner.update(result)
            assert np.isfinite(loss)
            for name, value in learner.generator.state_dict().items():  # beta = theta after the sync
                assert torch.equal(learner.rollout_policy.state_dict()[name], value), name
            before = {k: v.clone() for k, v in learner.discriminator.state_dict().items()}
            assert np.isfinite(learner.train_discriminator())
            assert any(not torch.equal(before[k], v) for k, v in learner.discriminator.state_dict().items())
            assert_runners_hold_the_drivers_models(learner)
        assert learner.updater.episodes_seen == 2 * N_ENVS  # every runner's finished episodes reached D

    def test_a_round_sends_each_model_once_after_it_changed(self, learner, monkeypatch):
        """The rollout policy after the policy's update, the discriminator after its training: the
        discriminator (28 MB at the paper's sizes) is not sent with the rollout policy's sync."""
        import agents.rllib

        sent: list[tuple[bool, bool]] = []
        send = agents.rllib.broadcast

        def recorded(algo, rollout_policy=None, discriminator=None):
            sent.append((rollout_policy is not None, discriminator is not None))
            return send(algo, rollout_policy, discriminator)

        monkeypatch.setattr(agents.rllib, "broadcast", recorded)
        learner.update(learner.collect())
        learner.train_discriminator()
        assert sent == [(True, False), (False, True)]
        assert_runners_hold_the_drivers_models(learner)

    def test_building_leaves_no_folder_in_ray_results(self, learner):
        """Ray's Trainable makes an empty ~/ray_results/<date> folder for every algorithm built outside
        Tune; build_algorithm removes it (the logdir was made: it has Ray's date-stamped name)."""
        logdir = Path(learner.algo.logdir)
        assert logdir.parent == Path("~/ray_results").expanduser() and not logdir.exists()

    def test_runner_rewards_equal_the_local_envs_for_the_same_weights(self, learner):
        actions = np.random.default_rng(0).integers(0, 8, size=(4, N_ENVS // RUNNERS))  # [T, envs per runner]
        remote = learner.algo.env_runner_group.foreach_env_runner(
            lambda runner: replay(runner, seed=7, actions=actions), local_env_runner=False
        )
        kwargs = {k: v for k, v in TINY.items() if k not in ("vocab_size", "seq_len")}
        local = SeqGANVectorEnv(num_envs=N_ENVS // RUNNERS, rollout_policy=learner.rollout_policy,
                                discriminator=learner.discriminator, **kwargs)  # fmt: skip
        local.reset(seed=7)
        expected = np.stack([local.step(a)[1] for a in actions])  # [T, envs]
        assert len(remote) == RUNNERS
        for rewards in remote:
            np.testing.assert_allclose(rewards, expected, rtol=1e-6, atol=1e-7)
        assert np.abs(expected).sum() > 0


def test_a_failing_runner_fails_the_round(local_ray):
    learner = build()
    learner.start_rollout_policy()

    def break_scorer(runner):
        env = getattr(runner, "env", None)
        if env is not None:
            env.unwrapped._core.scorer = None  # the next reward computation raises

    runners = learner.algo.env_runner_group
    runners.foreach_env_runner(break_scorer, remote_worker_ids=[1], local_env_runner=False)
    try:
        with pytest.raises(Exception, match=r"(?s)NoneType|sampled nothing|failed|died"):
            learner.collect()
    finally:
        learner.algo.stop()


@pytest.mark.parametrize("algo", ["appo", "impala"])
def test_the_asynchronous_algorithms_run_rounds(local_ray, algo):
    learner = build(algo)
    try:
        learner.start_rollout_policy()
        for _ in range(2):
            learner.update(learner.collect())
            learner.train_discriminator()
        assert_runners_hold_the_drivers_models(learner)
    finally:
        learner.algo.stop()




def run_script(args: list[str], tmp_path: Path, command: list[str] | None = None,
               env: dict[str, str] | None = None) -> subprocess.Popen:
    """train/rllib.py with `args` (or `command`, a wrapper of it), output merged into stdout."""
    env = {**(env or os.environ), "PYTHONPATH": str(REPO)}
    command = command or [sys.executable, str(REPO / "train" / "rllib.py"), *args]
    return subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


TINY_RUN = ["--pretrain-preset", "tiny", "--n-envs", "8", "--n-negatives", "64", "--eval-samples", "128",
            "--disc-pretrain-repeats", "1", "--threads", "1", "--no-progress", "--ray-cpus", "2"]  # fmt: skip


def test_script_interrupted_then_resumed_completes_every_round(tmp_path):
    """Ctrl-C after a checkpoint, then --resume: the run ends at --rounds with each evaluation once,
    continuing from the checkpoint's round with its models restored. The interrupt reaches the script
    in round 3 (the child sends itself SIGINT as round 3's `algo.train()` starts, after round 2's
    checkpoint), whatever the machine's speed."""
    run = tmp_path / "runs" / "r"
    args = [*TINY_RUN, "--rounds", "8", "--eval-every", "2", "--out", str(tmp_path / "runs"), "--name", "r"]
    command, env = killer_command(tmp_path, "agents.rllib:RLlibLearner.collect", 3, args, script="rllib",
                                  signal_name="SIGINT")  # fmt: skip
    proc = run_script(args, tmp_path, command, env)
    out, _ = proc.communicate(timeout=HANG_GUARD)
    assert proc.returncode != 0 and (run / "latest.pt").is_file(), out
    saved = torch.load(run / "latest.pt", weights_only=True)  # RLlib's state in it as plain tensors
    assert 2 <= saved["progress"] < 8 and saved["progress"] % 2 == 0, out
    assert "learner_group" in saved["rllib"] and not list(run.glob("rllib-*"))  # no folder of pickles

    # A resume point of the earlier format (RLlib's state in a folder of pickles): refused before Ray starts.
    latest = (run / "latest.pt").read_bytes()
    save_checkpoint(run / "latest.pt", {**saved, "run_state_version": 1, "rllib": "rllib-2"})
    out, _ = run_script(["--resume", str(run)], tmp_path).communicate(timeout=HANG_GUARD)
    expected = (f"error: {run / 'latest.pt'} was written by another version of train/rllib.py (run state "
                "version 1, this one reads 2): start it again")  # fmt: skip
    assert out.strip().splitlines()[-1] == expected, out
    (run / "latest.pt").write_bytes(latest)

    # An RLlib checkpoint folder of pickles whose loading would create a marker: never read.
    marker = tmp_path / "marker"
    planted = run / f"rllib-{saved['progress']}"
    for name in ("algorithm_state.pkl", "class_and_ctor_args.pkl", "learner_group/state.pkl",
                 "learner_group/learner/rl_module/default_policy/module_state.pkl"):  # fmt: skip
        (planted / name).parent.mkdir(parents=True, exist_ok=True)
        (planted / name).write_bytes(pickle.dumps(SystemMarker(marker)))
    proc = run_script(["--resume", str(run), "--no-progress"], tmp_path)
    out, _ = proc.communicate(timeout=HANG_GUARD)
    assert proc.returncode == 0, out
    assert not marker.exists()
    assert f"resuming {run} at round {saved['progress']}" in out
    final = torch.load(run / "final.pt", weights_only=False)
    steps = [r["step"] for r in final["metrics"] if r["phase"] == "adversarial"]
    assert steps == list(range(0, 9, 2))  # every evaluation once, in order
    assert final["progress"] == 8
    lines = (run / "metrics.csv").read_text().splitlines()
    assert len(lines) == 1 + len(final["metrics"])


def test_rllib_stops_with_one_line_and_resumes(tmp_path: Path) -> None:
    """The Ray driver: SIGTERM in round 3 (checkpoint at round 2) stops it with the line and 143, Ray
    shut down; the resume command given finishes every round, each evaluation once."""
    args = ["--pretrain-preset", "tiny", "--pretrain-args", " ".join(PRE_FAST[2:12]), "--n-envs", "8",
            "--n-negatives", "64", "--eval-samples", "128", "--disc-pretrain-repeats", "1", "--threads", "1",
            "--no-progress", "--ray-cpus", "2", "--rounds", "4", "--eval-every", "2"]  # fmt: skip
    folder = tmp_path / "run"
    result = run_injected(tmp_path, "rllib", "agents.rllib:RLlibLearner.collect", 3, "SIGTERM",
                          [*args, "--out", str(tmp_path), "--name", "run"])  # fmt: skip
    line = stopped_line(result, "SIGTERM")
    assert line.endswith(f"after 2 of 4 rounds; it resumes from round 2 with: python train/rllib.py --resume "
                         f"{folder}"), line  # fmt: skip
    run_commands(line)
    steps = [r["step"] for r in metrics_without_time(folder / "metrics.csv") if r["phase"] == "adversarial"]
    assert steps == ["0", "2", "4"]


def test_script_oracle_reward_scores_on_every_runner_and_trains_no_discriminator(tmp_path):
    """--reward oracle: the runners' rewards are the oracle's likelihood (the diagnostics, which read the
    env's scorer, rank sequences exactly as the oracle does), and the discriminator never trains."""
    args = [*TINY_RUN, "--reward", "oracle", "--rounds", "2", "--eval-every", "1",
            "--out", str(tmp_path / "runs"), "--name", "o"]  # fmt: skip
    out, _ = run_script(args, tmp_path).communicate(timeout=HANG_GUARD)
    final = torch.load(tmp_path / "runs" / "o" / "final.pt", weights_only=False)
    assert final["config"]["reward"] == "oracle", out
    pretrained = torch.load(tmp_path / "runs" / "o" / "pretrain" / "pretrained.pt", weights_only=False)
    for name, value in pretrained["discriminator"]["state_dict"].items():  # never trained
        assert torch.equal(final["discriminator"]["state_dict"][name], value), name
    rows = [r for r in final["metrics"] if r["phase"] == "adversarial"]
    assert [r["step"] for r in rows] == [0, 1, 2]
    for row in rows:
        assert row["reward_oracle_spearman"] == pytest.approx(1.0, abs=1e-9)
        assert 0 < row["q_signal_share"] <= 1
    assert (tmp_path / "runs" / "o" / "signal.png").is_file()


def test_script_dense_rewards_train_a_prefix_discriminator_every_runner_holds(tmp_path):
    """--reward-mode dense: a prefix discriminator is made (the source's is the CNN), pre-trained, trained
    each round and broadcast; its per-step rewards reach PPO and the dense diagnostics are written."""
    args = [*TINY_RUN, "--reward-mode", "dense", "--gamma", "0.23", "--disc-hidden-dim", "16",
            "--rounds", "2", "--eval-every", "1", "--out", str(tmp_path / "runs"), "--name", "d"]  # fmt: skip
    out, _ = run_script(args, tmp_path).communicate(timeout=600)
    final = torch.load(tmp_path / "runs" / "d" / "final.pt", weights_only=False)
    assert final["discriminator"]["kind"] == "prefix_discriminator", out[-3000:]
    assert final["discriminator"]["config"]["hidden_dim"] == 16
    rows = [r for r in final["metrics"] if r["phase"] == "adversarial"]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert all(-1 <= r["dense_oracle_spearman"] <= 1 for r in rows)
    header = (tmp_path / "runs" / "d" / "metrics.csv").read_text().splitlines()[0]
    assert header.endswith(",dense_oracle_spearman")


def test_runners_score_with_the_oracle_given_in_the_env_config(local_ray):
    """A fixed scorer in the env config reaches every runner: with terminal rewards, each runner's
    reward for a sequence is the oracle scorer's value of it (and 0 before the end)."""
    scorer = OracleScorer(random_oracle(8, 4, seed=3), n_samples=64)
    generator = tiny_generator()
    env_config = {**TINY, "reward_mode": "terminal", "scorer": scorer}
    hyper = {"lr": 1e-3, "use_kl_loss": False, "minibatch_size": 16}
    config = algorithm_config("ppo", env_config, module_config(generator.config, generator), N_ENVS, RUNNERS,
                              4, hyper, seed=0)  # fmt: skip
    algo = build_algorithm(config)
    try:
        actions = np.random.default_rng(0).integers(0, 8, size=(4, N_ENVS // RUNNERS))  # [T, envs per runner]
        found = algo.env_runner_group.foreach_env_runner(partial(replay, seed=11, actions=actions),
                                                         local_env_runner=False)  # fmt: skip
        expected = scorer.score(torch.as_tensor(actions.T)).numpy()
        assert len(found) == RUNNERS
        for rewards in found:
            assert not rewards[:-1].any()
            np.testing.assert_allclose(rewards[-1], expected, rtol=1e-6)
    finally:
        algo.stop()


# Runs train/rllib.py in a child that SIGKILLs one of its env runners as round 2 starts (the second
# `RLlibLearner.collect`), once that runner's process is gone: a node lost mid-run, at a state the run
# reaches rather than after a delay.
RUNNER_KILLER = """
import os, signal, sys, time
sys.path[:0] = [{train!r}, {root!r}]
from pathlib import Path
from agents.rllib import RLlibLearner

original, calls = RLlibLearner.collect, [0]

def killing(self, *args, **kwargs):
    calls[0] += 1
    if calls[0] == 2:
        pids = self.algo.env_runner_group.foreach_env_runner(os.getpid, local_env_runner=False)
        assert len(pids) == 2, pids
        os.kill(pids[0], signal.SIGKILL)
        stat = Path(f"/proc/{{pids[0]}}/stat")
        while stat.is_file() and stat.read_text().rsplit(")", 1)[-1].split()[0] not in ("Z", "X"):
            time.sleep(0.01)  # until the kernel has ended it (a state, not a delay)
    return original(self, *args, **kwargs)

RLlibLearner.collect = killing
import rllib
sys.exit(rllib.main(sys.argv[1:]))
"""


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="waits on the runner's end in /proc")
def test_script_fails_when_a_runner_dies(tmp_path):
    """A runner process killed mid-run (a node lost) stops the script with an error, not an idle run."""
    run = tmp_path / "runs" / "k"
    killer = tmp_path / "runner_killer.py"
    killer.write_text(RUNNER_KILLER.format(train=str(REPO / "train"), root=str(REPO)))
    args = [*TINY_RUN, "--rounds", "4", "--eval-every", "2", "--out", str(tmp_path / "runs"), "--name", "k"]
    proc = run_script(args, tmp_path, [sys.executable, str(killer), *args])
    out, _ = proc.communicate(timeout=HANG_GUARD)
    assert proc.returncode == 1, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("error: ")]  # Ray's worker logs interleave
    assert len(errors) == 1 and errors[0].endswith("(the run folder keeps its last checkpoint)"), out[-3000:]
    assert not (run / "final.pt").exists()


def test_script_rejects_bad_options_before_writing(tmp_path):
    for bad in (["--num-env-runners", "3"], ["--learning-rate", "nan"], ["--algo", "dqn"]):
        proc = run_script([*TINY_RUN, *bad, "--out", str(tmp_path / "runs")], tmp_path)
        out, _ = proc.communicate(timeout=HANG_GUARD)
        assert proc.returncode == 2 and out.startswith("error: ") and len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "runs").exists()


def test_bench_rllib_times_every_setup():
    """bench/bench_rllib.py end to end at tiny size (here, not in test_bench.py: it needs Ray): the native
    env and each number of runners sample a round and print their rate."""
    bench = REPO / "bench" / "bench_rllib.py"
    args = ["--vocab-size", "8", "--seq-len", "4", "--n-rollouts", "2", "--num-envs", "4", "--runners", "0,2",
            "--repeats", "1", "--threads", "1", "--matmul-size", "64", "--matmul-repeats", "1"]  # fmt: skip
    out = subprocess.run([sys.executable, str(bench), *args], capture_output=True, text=True,
                         timeout=HANG_GUARD, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    for setup in ("native vector env", "rllib, 0 env runners", "rllib, 2 env runners"):
        rate = re.search(re.escape(setup) + r"\s+([0-9.]+) steps/s", out.stdout)
        assert rate is not None and float(rate.group(1)) > 0, out.stdout[-2000:]
