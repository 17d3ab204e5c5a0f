"""The learners of seqgan-env: SeqGAN's REINFORCE agent, MLE (pre-training and the continued-MLE
control), the learner protocol they meet, and Stable-Baselines3 interop (agents.sb3*)."""

from agents.learner import Learner, sync_rollout_policy
from agents.mle import ContinuedMLE, MLEConfig, MLETrainer, mle_loss
from agents.reinforce import Episodes, ReinforceAgent, ReinforceConfig, policy_gradient_loss

__all__ = [
    "ContinuedMLE",
    "Episodes",
    "Learner",
    "MLEConfig",
    "MLETrainer",
    "ReinforceAgent",
    "ReinforceConfig",
    "mle_loss",
    "policy_gradient_loss",
    "sync_rollout_policy",
]
