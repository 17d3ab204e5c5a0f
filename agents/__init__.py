"""The learners of seqgan-env: SeqGAN's REINFORCE agent and MLE pre-training (and SB3 interop)."""

from agents.mle import MLEConfig, MLETrainer, mle_loss
from agents.reinforce import (
    Episodes,
    ReinforceAgent,
    ReinforceConfig,
    policy_gradient_loss,
    sync_rollout_policy,
)

__all__ = [
    "Episodes",
    "MLEConfig",
    "MLETrainer",
    "ReinforceAgent",
    "ReinforceConfig",
    "mle_loss",
    "policy_gradient_loss",
    "sync_rollout_policy",
]
