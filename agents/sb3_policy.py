"""Stable-Baselines3 policies on SeqGAN-v0 that are the paper's generator: extractors, warm start, models.

The observation is the prefix y_1..y_t padded with V (an int64 Box that SB3 hands to the network as
floats). `TokenPrefixExtractor` casts it back to ids and runs embedding + LSTM over
[start, y_1..y_t] (the generator's input, start token included), taking the hidden state after the
last real token as the features. With no hidden layers in the policy head (`net_arch["pi"] == []`)
the policy's logits are then `action_net(h_t)`: exactly the generator's next-token logits when the
embedding, LSTM and `action_net` hold the generator's weights. `warm_start` copies them in
(an MLE-pretrained start, as SeqGAN's adversarial phase), `generator_from_policy` copies them back out,
so the SB3 policy can be evaluated with the same NLL-oracle/NLL-test code as the REINFORCE agent and
can serve as the environment's rollout policy.

RecurrentPPO carries its own LSTM across the steps of an episode (its state reset at episode
starts), so there the extractor only embeds the newest token (`LastTokenExtractor`) and the
generator's LSTM goes into `lstm_actor`: the same recurrence, one token per step.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, MlpExtractor
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig

ALGORITHMS = ("ppo", "a2c", "maskable_ppo", "recurrent_ppo")


def vocab_and_length(observation_space: spaces.Space) -> tuple[int, int]:
    """V and T of a SeqGAN observation space: Box(0, V, shape=(T,)), V being the padding id."""
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
        raise ValueError(f"expected SeqGAN's Box(0, V, shape=(T,)) observations, got {observation_space}")
    return int(observation_space.high.max()), int(observation_space.shape[0])


def prefix_ids(observations: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [B, T] (SB3 passes Box observations as floats) and prefix lengths [B]
    (the number of non-padding ids; prefixes are left-aligned)."""
    ids = observations.round().long().clamp_(0, pad_id)
    return ids, (ids != pad_id).sum(dim=1)


class TokenPrefixExtractor(BaseFeaturesExtractor):
    """Embedding + LSTM over [start, y_1..y_t]; features = the hidden state after y_t (after the start
    token for the empty prefix): [B, hidden_dim]. The padding id V embeds to zeros."""

    def __init__(
        self, observation_space: spaces.Box, embed_dim: int = 32, hidden_dim: int = 32, start_token: int = 0
    ) -> None:
        super().__init__(observation_space, features_dim=hidden_dim)
        self.vocab_size, self.seq_len = vocab_and_length(observation_space)
        self.start_token = start_token
        self.embedding = nn.Embedding(self.vocab_size + 1, embed_dim, padding_idx=self.vocab_size)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        ids, lengths = prefix_ids(observations, self.vocab_size)
        start = torch.full_like(ids[:, :1], self.start_token)
        hidden, _ = self.lstm(self.embedding(torch.cat([start, ids], dim=1)))  # [B, T+1, H]
        return hidden[torch.arange(len(ids), device=ids.device), lengths]


class LastTokenExtractor(BaseFeaturesExtractor):
    """For RecurrentPPO: the embedding of the newest token y_t (the start token for the empty prefix):
    [B, embed_dim]. RecurrentPPO's own LSTM, reset at episode starts, reads one such token per step."""

    def __init__(self, observation_space: spaces.Box, embed_dim: int = 32, start_token: int = 0) -> None:
        super().__init__(observation_space, features_dim=embed_dim)
        self.vocab_size, self.seq_len = vocab_and_length(observation_space)
        self.start_token = start_token
        self.embedding = nn.Embedding(self.vocab_size + 1, embed_dim, padding_idx=self.vocab_size)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        ids, lengths = prefix_ids(observations, self.vocab_size)
        last = ids[torch.arange(len(ids), device=ids.device), (lengths - 1).clamp(min=0)]
        return self.embedding(torch.where(lengths > 0, last, torch.full_like(last, self.start_token)))


def policy_kwargs(
    config: TokenLSTMConfig, algo: str = "ppo", value_arch: tuple[int, ...] = (64,)
) -> dict[str, Any]:
    """SB3 `policy_kwargs` whose policy has the generator's shape: the extractor above, no hidden
    policy layers (`pi=[]`, so the logits are a linear map of the LSTM state) and a small value MLP
    on a separate copy of the extractor (the critic's gradients leave the policy's weights alone)."""
    net_arch = {"pi": [], "vf": list(value_arch)}
    if algo == "recurrent_ppo":
        return {
            "features_extractor_class": LastTokenExtractor,
            "features_extractor_kwargs": {"embed_dim": config.embed_dim, "start_token": config.start_token},
            "lstm_hidden_size": config.hidden_dim, "n_lstm_layers": 1, "shared_lstm": False,
            "enable_critic_lstm": True, "share_features_extractor": False, "net_arch": net_arch,
        }  # fmt: skip
    return {
        "features_extractor_class": TokenPrefixExtractor,
        "features_extractor_kwargs": {
            "embed_dim": config.embed_dim, "hidden_dim": config.hidden_dim, "start_token": config.start_token,
        },
        "share_features_extractor": False,
        "net_arch": net_arch,
    }  # fmt: skip


Extractor = TokenPrefixExtractor | LastTokenExtractor
CriticPart = nn.LSTM | TokenPrefixExtractor | LastTokenExtractor


def _policy_parts(policy: BasePolicy) -> tuple[Extractor, nn.LSTM, nn.Linear, list[CriticPart]]:
    """The generator-shaped parts of an actor-critic policy (SB3's, or sb3-contrib's maskable or
    recurrent one, which share no base class beyond `BasePolicy`): the features extractor holding the
    embedding, the LSTM, the action head, and the critic's copies of the embedding/LSTM, checked for
    the shape the mapping needs."""
    recurrent = hasattr(policy, "lstm_actor")
    wanted = LastTokenExtractor if recurrent else TokenPrefixExtractor
    extractor = getattr(policy, "pi_features_extractor", None)
    if not isinstance(extractor, wanted):
        raise ValueError(
            f"the policy's features extractor is {type(extractor).__name__}, the mapping needs "
            f"{wanted.__name__}: build the model with agents.sb3_policy.policy_kwargs"
        )
    mlp = getattr(policy, "mlp_extractor", None)
    if not isinstance(mlp, MlpExtractor) or len(mlp.policy_net) != 0:
        raise ValueError("the mapping needs no hidden policy layers (net_arch pi=[]): the logits must be "
                         "a linear map of the LSTM state, as the generator's")  # fmt: skip
    lstm = getattr(policy, "lstm_actor", None) if recurrent else getattr(extractor, "lstm", None)
    assert isinstance(lstm, nn.LSTM)  # sb3-contrib's lstm_actor, or TokenPrefixExtractor's
    if lstm.num_layers != 1:
        raise ValueError(f"the mapping needs a one-layer LSTM, the policy has {lstm.num_layers}")
    head = getattr(policy, "action_net", None)
    if not isinstance(head, nn.Linear):
        what = type(head).__name__
        raise ValueError(f"the mapping needs a linear action head (Discrete actions), got {what}")
    critic: list[CriticPart] = []
    critic_extractor = getattr(policy, "vf_features_extractor", extractor)
    if critic_extractor is not extractor:
        assert isinstance(critic_extractor, wanted)  # SB3 builds both from one class
        critic.append(critic_extractor)
    critic_lstm = getattr(policy, "lstm_critic", None)  # None without a separate critic LSTM
    if recurrent and isinstance(critic_lstm, nn.LSTM):
        critic.append(critic_lstm)
    return extractor, lstm, head, critic


@torch.no_grad()
def load_generator(
    embedding: nn.Embedding, lstm: nn.LSTM | None, head: nn.Linear | None, generator: TokenLSTM
) -> None:
    """Copy the generator's weights into a prefix network's parts: the embedding (its extra row, the
    padding id V, zeroed), the LSTM and the linear head (either may be None: a critic has no head)."""
    V = generator.config.vocab_size
    embedding.weight[:V].copy_(generator.embedding.weight)
    embedding.weight[V].zero_()  # the padding id
    if lstm is not None:
        lstm.load_state_dict(generator.lstm.state_dict())
    if head is not None:
        head.load_state_dict(generator.output.state_dict())


@torch.no_grad()
def generator_from_parts(
    embedding: nn.Embedding, lstm: nn.LSTM, head: nn.Linear, seq_len: int, start_token: int,
    init_std: float = 0.1,
) -> TokenLSTM:  # fmt: skip
    """`load_generator` in reverse: a `TokenLSTM` on the head's device with the network's next-token
    distribution (for evaluation, sampling, and the env's rollout policy)."""
    config = TokenLSTMConfig(head.out_features, seq_len, lstm.input_size, lstm.hidden_size, start_token,
                             init_std)  # fmt: skip
    generator = TokenLSTM(config).to(head.weight.device)
    generator.embedding.weight.copy_(embedding.weight[: config.vocab_size])
    generator.lstm.load_state_dict(lstm.state_dict())
    generator.output.load_state_dict(head.state_dict())
    return generator.eval()


def check_generator_fits(
    embedding: nn.Embedding, lstm: nn.LSTM, head: nn.Linear, start_token: int, generator: TokenLSTM
) -> None:
    """A clear error when the generator's sizes or start token differ from the network's."""
    cfg = generator.config
    if embedding.num_embeddings != cfg.vocab_size + 1 or head.out_features != cfg.vocab_size:
        raise ValueError(f"the policy's vocabulary is {head.out_features}, the generator's {cfg.vocab_size}")
    if (lstm.input_size, lstm.hidden_size) != (cfg.embed_dim, cfg.hidden_dim):
        raise ValueError(f"the policy's embedding/LSTM sizes are {lstm.input_size}/{lstm.hidden_size}, the "
                         f"generator's {cfg.embed_dim}/{cfg.hidden_dim}")  # fmt: skip
    if start_token != cfg.start_token:
        raise ValueError(f"the policy's start token is {start_token}, the generator's {cfg.start_token}")


@torch.no_grad()
def warm_start(policy: BasePolicy, generator: TokenLSTM) -> None:
    """Give `policy` the generator's next-token distribution: its logits on a prefix y_1..y_t equal the
    generator's after reading [start, y_1..y_t]. The critic's embedding/LSTM start from the same
    weights (a starting point only; its value head stays fresh)."""
    extractor, lstm, head, critic = _policy_parts(policy)
    check_generator_fits(extractor.embedding, lstm, head, extractor.start_token, generator)
    load_generator(extractor.embedding, lstm, head, generator)
    for module in critic:
        if isinstance(module, nn.LSTM):
            module.load_state_dict(generator.lstm.state_dict())
        else:  # the critic's own extractor (LastTokenExtractor has no LSTM)
            load_generator(module.embedding, getattr(module, "lstm", None), None, generator)


@torch.no_grad()
def generator_from_policy(policy: BasePolicy, init_std: float = 0.1) -> TokenLSTM:
    """The warm-start mapping in reverse: a `TokenLSTM` on the policy's device with the policy's
    next-token distribution, for evaluation (NLL-oracle/NLL-test), sampling, and the env's rollout
    policy."""
    extractor, lstm, head, _ = _policy_parts(policy)
    return generator_from_parts(extractor.embedding, lstm, head, extractor.seq_len, extractor.start_token,
                                init_std)  # fmt: skip


# --- models ----------------------------------------------------------------------------------------
def algorithm_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class of an algorithm name in `ALGORITHMS`, with a clear error for any other."""
    if algo == "ppo":
        from stable_baselines3 import PPO

        return PPO
    if algo == "a2c":
        from stable_baselines3 import A2C

        return A2C
    if algo in ("maskable_ppo", "recurrent_ppo"):
        try:
            import sb3_contrib
        except ImportError as err:
            raise ImportError(f"--algo {algo} needs sb3-contrib: pip install sb3-contrib") from err
        return sb3_contrib.MaskablePPO if algo == "maskable_ppo" else sb3_contrib.RecurrentPPO
    raise ValueError(f"unknown algorithm {algo!r}; choose from {', '.join(ALGORITHMS)}")


def make_model(
    algo: str,
    env: VecEnv,
    generator: TokenLSTM | None = None,
    config: TokenLSTMConfig | None = None,
    value_arch: tuple[int, ...] = (64,),
    **hyperparameters: Any,
) -> BaseAlgorithm:
    """An SB3 model of `algo` on `env` whose policy has the generator's shape, warm-started from
    `generator` when one is given (else fresh, with `config`'s sizes). `hyperparameters` go to the
    algorithm's constructor (n_steps, learning_rate, gamma, seed, tensorboard_log, ...)."""
    cls = algorithm_class(algo)
    if generator is not None:
        config = generator.config
    elif config is None:
        raise ValueError("make_model needs a generator to warm-start from, or a TokenLSTMConfig (sizes)")
    V, T = vocab_and_length(env.observation_space)
    if (config.vocab_size, config.seq_len) != (V, T):
        raise ValueError(f"the generator has V={config.vocab_size}, T={config.seq_len}; the env V={V}, T={T}")
    policy = "MlpLstmPolicy" if algo == "recurrent_ppo" else "MlpPolicy"
    model = cls(policy, env, policy_kwargs=policy_kwargs(config, algo, value_arch), **hyperparameters)
    freeze_recurrent_bias(model.policy)
    if generator is not None:
        warm_start(model.policy, generator)
    return model


def freeze_recurrent_bias(policy: BasePolicy) -> None:
    """Keep the policy's LSTM to one bias per gate, as the generator's (`TokenLSTM`): torch's second
    bias stays where the warm start put it (zero) and out of training."""
    _, lstm, _, _ = _policy_parts(policy)
    lstm.bias_hh_l0.requires_grad_(False)
