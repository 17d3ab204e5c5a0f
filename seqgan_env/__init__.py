"""seqgan-env: SeqGAN (Yu et al., AAAI 2017) as a Gymnasium reinforcement-learning environment.

`import seqgan_env` registers `SeqGAN-v0` (and small variants) with Gymnasium.
"""

from seqgan_env.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.env import SeqGANEnv
from seqgan_env.registration import VARIANTS, register_envs
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig
from seqgan_env.vector_env import SeqGANVectorEnv

register_envs()

__all__ = [
    "VARIANTS",
    "Discriminator",
    "DiscriminatorConfig",
    "SeqGANEnv",
    "SeqGANVectorEnv",
    "TokenLSTM",
    "TokenLSTMConfig",
]
