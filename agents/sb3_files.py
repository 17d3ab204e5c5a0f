"""Saved Stable-Baselines3 models (`model.zip`) read without unpickling anything.

SB3's own `load` deserialises the entries of the zip's `data` that it stored with cloudpickle (the
`:serialized:` ones: the policy class, the spaces, the learning-rate and clip-range schedules), so a
crafted file runs whatever code it holds. This reader takes from the zip only

- `data`, parsed as JSON: its plain entries (counters) and the plain fields SB3 writes beside each
  `:serialized:` payload (a class's module, a space's shape, the policy's keyword arguments); the
  payloads themselves are never decoded;
- `policy.pth` and `policy.optimizer.pth`, loaded weights-only (plain types and tensors), every
  tensor finite and of the shape the policy needs.

`pytorch_variables.pth`, `_stable_baselines3_version` and `system_info.txt` are not read. The model is
built afresh (`make_model`, with the run's own options and therefore its own schedules) and then given
the saved weights, the optimizer's per-parameter state and the step counters.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from agents.sb3_policy import ALGORITHMS, make_model, vocab_and_length
from seqgan_env.checkpoint import check_finite, load_weights, load_weights_only
from seqgan_env.optim_state import load_optimizer_state
from seqgan_env.token_lstm import TokenLSTMConfig

MAX_DATA_BYTES = 16 * 2**20  # the `data` JSON (a few kB for this project's models)
MAX_TENSOR_BYTES = 2 * 2**30  # each .pth member
COUNTERS = ("num_timesteps", "_n_updates", "_episode_num")  # restored, so a continued run counts on

# The module of each algorithm's policy class, as SB3 records it beside the pickled class.
_POLICY_MODULES = {
    "stable_baselines3.common.policies": ("ppo", "a2c"),  # told apart by PPO's clip range in `data`
    "sb3_contrib.common.maskable.policies": ("maskable_ppo",),
    "sb3_contrib.common.recurrent.policies": ("recurrent_ppo",),
}


@dataclass
class SavedModel:
    """What a saved SB3 model holds, as plain values and tensors."""

    path: Path
    algo: str  # one of ALGORITHMS
    vocab_size: int
    seq_len: int
    start_token: int
    policy: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    counters: dict[str, int]

    def generator_config(self) -> TokenLSTMConfig:
        """The sizes of the generator the policy maps to (embedding and LSTM from the weights)."""
        embedding = self.policy["pi_features_extractor.embedding.weight"]
        head = self.policy["action_net.weight"]
        E, H = int(embedding.shape[1]), int(head.shape[1])
        return TokenLSTMConfig(self.vocab_size, self.seq_len, E, H, self.start_token)

    def value_arch(self) -> tuple[int, ...]:
        """The hidden sizes of the value MLP (`--value-arch`), from its layers' weights."""
        layers = {}
        for name, tensor in self.policy.items():
            found = re.fullmatch(r"mlp_extractor\.value_net\.(\d+)\.weight", name)
            if found:
                layers[int(found.group(1))] = int(tensor.shape[0])
        return tuple(layers[i] for i in sorted(layers))


def _member(archive: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    """A member of the zip, read to at most `limit` bytes (whatever size its header claims)."""
    try:
        with archive.open(name) as f:
            data = f.read(limit + 1)
    except KeyError:
        raise ValueError(f"{path} is not a saved Stable-Baselines3 model (it has no {name!r})") from None
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as err:
        raise ValueError(f"{path}: cannot read {name!r} ({type(err).__name__}: {err})") from None
    if len(data) > limit:
        raise ValueError(f"{path}: {name!r} is larger than {limit} bytes, which no model of this project is")
    return data


def _field(entry: Any, key: str) -> Any:
    """A plain field SB3 writes beside a `:serialized:` payload (the payload itself is never read)."""
    return entry.get(key) if isinstance(entry, dict) else None


def _saved_algorithm(data: dict[str, Any], path: Path) -> str:
    """Which of ALGORITHMS saved the model: its policy class's module (and, for PPO against A2C,
    whether it has a clip range)."""
    module = _field(data.get("policy_class"), "__module__")
    algos = _POLICY_MODULES.get(module) if isinstance(module, str) else None
    if algos is None:
        raise ValueError(f"{path} holds a policy from {module!r}, not one of --algo {', '.join(ALGORITHMS)}")
    if algos == ("ppo", "a2c"):
        return "ppo" if "clip_range" in data else "a2c"
    return algos[0]


def _plain_int(value: Any, what: str, path: Path, low: int = 0) -> int:
    """`value` as an int in [low, 2**62] (a counter or size; beyond that no run counts, and tensorboard
    and numpy refuse it)."""
    if isinstance(value, str) and value.isdigit() and len(value) < 20:  # SB3 writes a Discrete's n as text
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 2**62:
        raise ValueError(f"{path}: {what} is {str(value)[:40]}, expected an int in [{low}, 2**62]")
    return value


def read_saved_model(path: str | Path) -> SavedModel:
    """The algorithm, sizes, weights, optimizer state and counters of a saved SB3 model, read as the
    module docstring says; a one-line ValueError (FileNotFoundError) for anything else."""
    path = Path(path)
    if not path.is_file():
        if path.exists():
            raise ValueError(f"SB3 model {path} is not a regular file, expected a .zip")
        raise FileNotFoundError(f"SB3 model not found: {path}")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"{path} is not a saved Stable-Baselines3 model ({err})") from None
    with archive:
        raw = _member(archive, "data", MAX_DATA_BYTES, path)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise ValueError(f"{path}: its 'data' is not JSON ({str(err)[:100]})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: its 'data' is a JSON {type(data).__name__}, expected an object")
        tensors = {}
        for name in ("policy", "policy.optimizer"):
            member = io.BytesIO(_member(archive, f"{name}.pth", MAX_TENSOR_BYTES, path))
            tensors[name] = load_weights_only(member, f"{path}: {name}.pth is not a weights-only state dict")
            check_finite(tensors[name], f"{path}, {name}.pth")
    algo = _saved_algorithm(data, path)
    policy, optimizer = tensors["policy"], tensors["policy.optimizer"]
    if not isinstance(policy, dict) or not all(isinstance(v, torch.Tensor) for v in policy.values()):
        raise ValueError(f"{path}: policy.pth is not a state dict of tensors")
    for key in ("pi_features_extractor.embedding.weight", "action_net.weight"):
        if key not in policy or policy[key].dim() != 2:
            raise ValueError(f"{path}: the policy has no {key} matrix: it was not built by "
                             "agents.sb3_policy.policy_kwargs")  # fmt: skip
    shape = _field(data.get("observation_space"), "_shape")
    if not isinstance(shape, list) or len(shape) != 1:
        raise ValueError(f"{path}: its observation space has shape {shape!r}, expected SeqGAN's (T,)")
    kwargs = _field(_field(data.get("policy_kwargs"), "features_extractor_kwargs"), "start_token")
    return SavedModel(
        path=path, algo=algo, vocab_size=int(policy["action_net.weight"].shape[0]),
        seq_len=_plain_int(shape[0], "the sequence length", path, low=1),
        start_token=_plain_int(0 if kwargs is None else kwargs, "the start token", path),
        policy=policy, optimizer=optimizer if isinstance(optimizer, dict) else {},
        counters={name: _plain_int(data.get(name, 0), name, path) for name in COUNTERS},
    )  # fmt: skip


class _SpacesOnly(gym.Env[Any, Any]):
    """An environment that is only SeqGAN's spaces: enough to build a model to check a file against."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space


def check_saved_model(
    algo: str,
    path: str | Path,
    observation_space: spaces.Space,
    value_arch: tuple[int, ...] | None = None,
    generator: TokenLSTMConfig | None = None,
) -> SavedModel:
    """The saved model at `path`, refused with a one-line error when another algorithm than `algo`
    saved it, when it was trained on another vocabulary or sequence length than `observation_space`
    describes, (where given) when its value MLP is not `value_arch` or its embedding, LSTM and start
    token are not `generator`'s, or when its weights or optimizer state would not load: they are
    loaded into a model of its sizes built on no environment (nothing stepped or trained), so that a
    run refuses the file before it writes or trains anything."""
    saved = read_saved_model(path)
    if saved.algo != algo:
        raise ValueError(f"{saved.path} was saved by {saved.algo}, not a policy of --algo {algo}: pass "
                         f"--algo {saved.algo} to continue it")  # fmt: skip
    V, T = vocab_and_length(observation_space)
    if (saved.vocab_size, saved.seq_len) != (V, T):
        raise ValueError(
            f"{saved.path} was trained with vocabulary {saved.vocab_size} and sequence length "
            f"{saved.seq_len}; this environment has vocabulary {V} and sequence length {T}"
        )
    if value_arch is not None and saved.value_arch() != tuple(value_arch):
        arch = ",".join(map(str, saved.value_arch()))
        raise ValueError(f"{saved.path} has a value MLP of --value-arch {arch!r}, this run "
                         f"{','.join(map(str, value_arch))!r}")  # fmt: skip
    sizes = saved.generator_config()
    if generator is not None:
        mine = (generator.embed_dim, generator.hidden_dim, generator.start_token)
        if mine != (sizes.embed_dim, sizes.hidden_dim, sizes.start_token):
            raise ValueError(f"{saved.path} holds a policy of embedding {sizes.embed_dim}, LSTM "
                             f"{sizes.hidden_dim} and start token {sizes.start_token}; the generator has "
                             f"{mine[0]}, {mine[1]}, {mine[2]}")  # fmt: skip
    layers = saved.value_arch() if value_arch is None else value_arch
    env = DummyVecEnv([lambda: _SpacesOnly(observation_space, spaces.Discrete(saved.vocab_size))])
    probe = make_model(algo, env, None, generator or sizes, layers, device="cpu")
    _load_policy(probe.policy, saved)
    _load_optimizer(probe.policy.optimizer, saved)
    return saved


def _load_policy(policy: BasePolicy, saved: SavedModel) -> None:
    """The saved weights into `policy`, every name and shape checked first (one-line errors)."""
    load_weights(policy, saved.policy, f"{saved.path}, policy.pth")


def _load_optimizer(optimizer: torch.optim.Optimizer, saved: SavedModel) -> None:
    """The saved optimizer's per-parameter state (moments, step counts) into `optimizer`, checked;
    its hyperparameters (learning rate, betas, ...) stay those this run built it with."""
    load_optimizer_state(optimizer, saved.optimizer, str(saved.path))


def load_model(
    algo: str,
    path: str | Path,
    env: VecEnv,
    config: TokenLSTMConfig | None = None,
    value_arch: tuple[int, ...] | None = None,
    **hyperparameters: Any,
) -> BaseAlgorithm:
    """A saved SB3 model on `env`, continued with `hyperparameters` (the algorithm's constructor
    arguments: n_steps, learning_rate, gamma, seed, device, ...): a fresh `make_model` of `algo`
    whose policy, optimizer state and counters come from the file (`check_saved_model` first).
    `config` and `value_arch`, where given, are the sizes the policy must have (else the file's)."""
    saved = check_saved_model(algo, path, env.observation_space, value_arch, config)
    sizes = saved.generator_config() if config is None else config
    arch = saved.value_arch() if value_arch is None else value_arch
    model = make_model(algo, env, None, sizes, arch, **hyperparameters)
    _load_policy(model.policy, saved)
    _load_optimizer(model.policy.optimizer, saved)
    for name, value in saved.counters.items():
        setattr(model, name, value)
    return model
