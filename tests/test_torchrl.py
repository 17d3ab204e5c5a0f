"""TorchRL's `GymWrapper` wraps the native vector env (autoreset SAME_STEP or DISABLED, as declared in
`metadata["autoreset_mode"]`). Skipped where TorchRL is not installed (`pip install -e ".[torchrl]"`)."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from gymnasium.vector import AutoresetMode

import seqgan_env  # noqa: F401  (registers the ids)

torchrl_envs = pytest.importorskip("torchrl.envs")


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.DISABLED])
def test_gym_wrapper_steps_the_vector_env_and_its_rewards_are_the_envs(mode):
    venv = gym.make_vec("SeqGAN-Tiny-v0", num_envs=3, autoreset_mode=mode, reward_mode="terminal")
    assert venv.metadata["autoreset_mode"] == mode
    env = torchrl_envs.GymWrapper(venv, categorical_action_encoding=True)
    torch.manual_seed(0)
    td = env.rollout(12, break_when_any_done=False)  # three episodes of T = 4 per env
    actions, rewards = td["action"], td["next", "reward"].squeeze(-1)  # [3, 12]
    done = td["next", "done"].squeeze(-1)
    assert done.tolist() == [[t % 4 == 3 for t in range(12)]] * 3
    # The episode's sequence is its 4 actions; its terminal reward is D of that sequence.
    sequences = actions.reshape(3, 3, 4).reshape(9, 4)
    with torch.no_grad():
        expected = venv.unwrapped.discriminator.score(sequences).reshape(3, 3).float()
    torch.testing.assert_close(rewards[:, 3::4], expected)
    assert not rewards[~done].any()


def test_gym_wrapper_refuses_next_step_autoreset_with_a_clear_error():
    venv = gym.make_vec("SeqGAN-Tiny-v0", num_envs=2)  # NEXT_STEP: what RLlib and SB3's adapter expect
    with pytest.raises(RuntimeError, match="SAME_STEP or DISABLED"):
        torchrl_envs.GymWrapper(venv)
