"""An RLlib RLModule (new API stack) that is the paper's generator: embedding + LSTM over the prefix.

RLlib's default encoder is an MLP over the observation as a float vector: on SeqGAN's int64 token ids
it fails (`mat1 and mat2 must have the same dtype`), and an MLP over ids read as numbers is a poor
model anyway. `TokenPrefixRLModule` reads the prefix as the generator does, through the same
`TokenPrefixExtractor` as the Stable-Baselines3 policy (agents/sb3_policy.py): embedding + LSTM over
[start, y_1..y_t], the state after y_t, then a linear map to V logits. With the generator's weights
(`model_config["generator"]`, the warm start) its next-token distribution equals the generator's, and
`generator()` reads the generator back out (evaluation, negatives, the env's rollout policy). The
critic is a separate copy of the encoder (warm-started too) with a small value MLP, so the value
loss leaves the policy's weights alone, as in the SB3 policy. It implements `ValueFunctionAPI` (PPO,
APPO, IMPALA) and `TargetNetworkAPI` (APPO's old policy).

The value of a finished sequence (T tokens, or ending with `eos_id`) is 0 by definition, and the
module says so instead of predicting it (RLlib evaluates the critic on the final prefix of every
episode, an observation it never trains on).
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import TARGET_NETWORK_ACTION_DIST_INPUTS, TargetNetworkAPI
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn

from agents.sb3_policy import (
    TokenPrefixExtractor,
    check_generator_fits,
    generator_from_parts,
    load_generator,
    prefix_ids,
)
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig


def module_config(
    config: TokenLSTMConfig,
    generator: TokenLSTM | None = None,
    value_arch: tuple[int, ...] = (64,),
    eos_id: int | None = None,
) -> dict[str, Any]:
    """`model_config` of a `TokenPrefixRLModule` of the generator's sizes, warm-started from
    `generator` when one is given (its weights travel as CPU tensors to every runner and learner)."""
    state = None if generator is None else {k: v.detach().cpu() for k, v in generator.state_dict().items()}
    return {"embed_dim": config.embed_dim, "hidden_dim": config.hidden_dim, "start_token": config.start_token,
            "value_arch": list(value_arch), "generator": state, "generator_config": config,
            "eos_id": eos_id}  # fmt: skip


class TokenPrefixRLModule(TorchRLModule, ValueFunctionAPI, TargetNetworkAPI):
    """Policy: logits [B, V] = pi(LSTM(embed([start, prefix])))_t; value: a separate encoder + MLP."""

    def setup(self) -> None:
        cfg = self.model_config
        self.pi_encoder = TokenPrefixExtractor(self.observation_space, cfg["embed_dim"], cfg["hidden_dim"],
                                               cfg["start_token"])  # fmt: skip
        self.vf_encoder = TokenPrefixExtractor(self.observation_space, cfg["embed_dim"], cfg["hidden_dim"],
                                               cfg["start_token"])  # fmt: skip
        self.pi = nn.Linear(cfg["hidden_dim"], int(self.action_space.n))
        layers: list[nn.Module] = []
        width = cfg["hidden_dim"]
        for size in cfg.get("value_arch", [64]):
            layers += [nn.Linear(width, size), nn.Tanh()]
            width = size
        self.vf = nn.Sequential(*layers, nn.Linear(width, 1))
        for layer in self.vf:  # as SB3's actor-critic (ortho_init): hidden layers gain sqrt 2, the output 1
            if isinstance(layer, nn.Linear):
                nn.init.orthogonal_(layer.weight, gain=1.0 if layer.out_features == 1 else 2**0.5)
                nn.init.zeros_(layer.bias)
        for encoder in (self.pi_encoder, self.vf_encoder):  # one bias per gate, as the generator
            bias = encoder.lstm.get_parameter("bias_hh_l0")
            nn.init.zeros_(bias).requires_grad_(False)
        if cfg.get("generator") is not None:
            generator = TokenLSTM(cfg["generator_config"])
            generator.load_state_dict(cfg["generator"])
            self.warm_start(generator)

    @torch.no_grad()
    def warm_start(self, generator: TokenLSTM) -> None:
        """The policy's next-token distribution becomes the generator's; the critic's encoder starts
        from the same weights (its value head stays fresh)."""
        check_generator_fits(self.pi_encoder.embedding, self.pi_encoder.lstm, self.pi,
                             self.pi_encoder.start_token, generator)  # fmt: skip
        load_generator(self.pi_encoder.embedding, self.pi_encoder.lstm, self.pi, generator)
        load_generator(self.vf_encoder.embedding, self.vf_encoder.lstm, None, generator)

    def generator(self) -> TokenLSTM:
        """The policy as a `TokenLSTM` (the warm start in reverse)."""
        enc = self.pi_encoder
        return generator_from_parts(enc.embedding, enc.lstm, self.pi, enc.seq_len, enc.start_token)

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self.pi(self.pi_encoder(batch[Columns.OBS]))}  # [B, V]

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        """V(prefix) [B]; exactly 0 for a finished sequence (see the module docstring)."""
        obs = batch[Columns.OBS]
        values = self.vf(self.vf_encoder(obs)).squeeze(-1)  # [B]
        return values.masked_fill(self.finished(obs), 0.0)

    def finished(self, observations: torch.Tensor) -> torch.Tensor:
        """Which prefixes [B, T] are finished sequences: T tokens, or the last one `eos_id`."""
        ids, lengths = prefix_ids(observations, self.pi_encoder.vocab_size)
        done = lengths == ids.shape[1]
        eos_id = self.model_config.get("eos_id")
        if eos_id is not None:
            last = ids.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
            done |= (lengths > 0) & (last == eos_id)
        return done

    def make_target_networks(self) -> None:
        self._old_pi_encoder = make_target_network(self.pi_encoder)
        self._old_pi = make_target_network(self.pi)

    def get_target_network_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.pi_encoder, self._old_pi_encoder), (self.pi, self._old_pi)]

    def forward_target(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {TARGET_NETWORK_ACTION_DIST_INPUTS: self._old_pi(self._old_pi_encoder(batch[Columns.OBS]))}
