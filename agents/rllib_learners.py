"""RLlib's learners made to match Stable-Baselines3's: the same PPO, APPO and IMPALA losses with SB3's Adam,
and PPO's advantages standardized as SB3 does (so `train/rllib.py` and `train/sb3.py` compare on equal
terms; README, "Scaling out: Ray RLlib")."""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.algorithms.appo.torch.appo_torch_learner import APPOTorchLearner
from ray.rllib.algorithms.impala.torch.impala_torch_learner import IMPALATorchLearner
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing


class SB3AdamLearner:
    """Adam with eps 1e-5, as every SB3 actor-critic policy (torch's default is 1e-8). With V = 5000
    the gradient of most output rows is far below 1e-8 ... 1e-5 (a token of probability 2e-4 in a batch
    of 640); Adam at eps 1e-8 still moves each such row a full learning-rate step, which moved the
    whole next-token distribution every round and raised NLL-oracle where SB3's PPO lowered it."""

    def configure_optimizers_for_module(self, module_id: str, config: Any = None) -> None:
        learner: Any = self
        params = learner.get_parameters(learner._module[module_id])
        learner.register_optimizer(module_id=module_id, optimizer=torch.optim.Adam(params, eps=1e-5),
                                   params=params, lr_or_lr_schedule=config.lr)  # fmt: skip


class SB3AdamAPPOLearner(SB3AdamLearner, APPOTorchLearner):
    """RLlib's APPO with SB3's Adam."""


class SB3AdamIMPALALearner(SB3AdamLearner, IMPALATorchLearner):
    """RLlib's IMPALA with SB3's Adam."""


class RealStepsPPOLearner(SB3AdamLearner, PPOTorchLearner):
    """RLlib's PPO as SB3's: its Adam (`SB3AdamLearner`), and the advantages standardized per minibatch
    over the real steps only.

    RLlib appends one artificial step to every episode (for the value bootstrap) and standardizes the
    advantages over the whole batch, those steps included, before it masks them out of the loss. On
    SeqGAN their advantage sits far from the real steps' mean, so the real steps' standardized
    advantages had a mean of -0.1 to -0.6 (measured at tiny size): PPO lowered the probability of every
    sampled token, and NLL-oracle rose by 0.17 in 15 rounds where SB3's PPO lowered it by 0.04."""

    def compute_loss_for_module(
        self, *, module_id: str, config: Any, batch: dict[str, Any], fwd_out: Any
    ) -> Any:
        advantages = batch[Postprocessing.ADVANTAGES]
        mask = batch.get(Columns.LOSS_MASK)
        real = advantages if mask is None else advantages[mask]
        if real.numel() > 1:  # SB3's formula
            batch[Postprocessing.ADVANTAGES] = (advantages - real.mean()) / (real.std() + 1e-8)
        return super().compute_loss_for_module(module_id=module_id, config=config, batch=batch,
                                               fwd_out=fwd_out)  # fmt: skip


LEARNERS: dict[str, type] = {"ppo": RealStepsPPOLearner, "appo": SB3AdamAPPOLearner,
                              "impala": SB3AdamIMPALALearner}  # fmt: skip
