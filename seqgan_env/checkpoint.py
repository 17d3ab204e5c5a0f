"""The checkpoint format: a plain dict of configs and state dicts, loadable with `weights_only=True`.

```
{"format": "seqgan-env", "version": 1,
 "rollout_policy": {"config": TokenLSTMConfig dict, "state_dict": ...},   # optional
 "generator":      {"config": ..., "state_dict": ...},                    # optional
 "discriminator":  {"config": DiscriminatorConfig dict, "state_dict": ...},
 ... anything else a training script records (plain types and tensors only)}
```
The environment takes its rollout policy from "rollout_policy", or from "generator" where the file
has no separate rollout policy (the paper's rollout policy is the generator itself). A prefix
discriminator's entry (`seqgan_env.prefix_discriminator`) carries `"kind": "prefix_discriminator"` and
its own config; an entry without a kind is the paper's CNN.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import re
from pathlib import Path
from typing import IO, Any, TypeVar

import torch
from torch import nn

from seqgan_env.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.files import write_atomically
from seqgan_env.finite import Index, nonfinite_tensors, require_finite
from seqgan_env.prefix_discriminator import AnyDiscriminator, PrefixDiscriminator, PrefixDiscriminatorConfig
from seqgan_env.text import Vocabulary
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig

FORMAT = "seqgan-env"
VERSION = 1


def model_entry(model: TokenLSTM | AnyDiscriminator) -> dict[str, Any]:
    """The checkpoint entry of a model: its config as plain types and a CPU copy of its weights (and,
    for a prefix discriminator, its kind)."""
    entry: dict[str, Any] = {
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    if isinstance(model, PrefixDiscriminator):
        entry["kind"] = model.entry_kind
    return entry


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write `payload` (plus format and version) atomically: a crash leaves the old file intact. A
    payload holding a NaN or infinite tensor is refused (`NonFiniteError`) and nothing is written."""
    path = Path(path)
    require_finite(f"before writing {path.name}", checkpoint=payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda f: torch.save({"format": FORMAT, "version": VERSION, **payload}, f))


def _cause(err: BaseException) -> str:
    """The gist of a torch.load failure in one short line (torch's weights-only text runs to 600+
    characters over several lines and suggests unsafe loading)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    if "Weights only load failed" in text:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if found:  # a pickled object other than plain types and tensors
            return f"it holds pickled objects ({found.group(1)}) besides plain types and tensors"
        found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
        return f"not a weights-only pickle ({found.group(1).strip()[:80] if found else 'unreadable'})"
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = line.split(". ")[0]  # torch appends sentences of advice to the first
    if not line:
        line = "unexpected end of file" if isinstance(err, EOFError) else type(err).__name__
    elif isinstance(err, KeyError):
        line = f"KeyError {line}"
    return line if len(line) <= 120 else line[:117] + "..."


# Arbitrary bytes make torch's legacy reader fail in many ways (KeyError and IndexError included).
_LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError,
                AttributeError, TypeError, UnicodeDecodeError)  # fmt: skip


def load_weights_only(source: str | os.PathLike[str] | IO[bytes], what: str) -> Any:
    """`torch.load` of plain types and tensors only (`weights_only=True`, onto the CPU), so a file a
    user hands us never runs code; a ValueError "`what` (torch.load failed: the gist)" otherwise."""
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except _LOAD_ERRORS as err:
        raise ValueError(f"{what} (torch.load failed: {_cause(err)})") from None


def check_finite(payload: Any, source: str) -> None:
    """Every floating-point tensor in `payload` (nested dicts, lists and tuples) holds finite numbers;
    else a one-line ValueError naming `source` and the tensor. Weights that are NaN or infinite come
    from a damaged file or a diverged run, and every number computed from them would be too."""
    bad = nonfinite_tensors(payload)
    if bad:
        path, value = bad[0]
        tensor = torch.as_tensor(value)
        n_nan, n_bad = int(torch.isnan(tensor).sum()), int((~torch.isfinite(tensor)).sum())
        name = "".join(f"[{key}]" if isinstance(key, Index) else f"[{key!r}]" for key in path)
        raise ValueError(f"{source}: tensor {name} holds {n_nan} NaN and {n_bad - n_nan} infinite "
                         "values, expected finite numbers")  # fmt: skip


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, with clear one-line errors for anything else
    (a non-finite tensor included)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"checkpoint path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise ValueError(f"checkpoint path {path} is a directory, expected a .pt file")
    if not path.is_file():  # a FIFO or a device: torch.load would block reading it, or never finish
        raise ValueError(f"checkpoint path {path} is not a regular file, expected a .pt file")
    payload = load_weights_only(path, f"{path} is not a seqgan-env checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a seqgan-env checkpoint (no format tag {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path} has checkpoint version {payload.get('version')!r}, expected {VERSION}")
    check_finite(payload, str(path))
    return payload


_Config = TypeVar("_Config", TokenLSTMConfig, DiscriminatorConfig, PrefixDiscriminatorConfig)
_Model = TypeVar("_Model", TokenLSTM, Discriminator, PrefixDiscriminator)


def _config_from_entry(cls: type[_Config], entry: Any, source: str) -> _Config:
    """The model config of a checkpoint entry, every key known and every value of its field's type."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise ValueError(f"{source}: not a model entry (expected a dict with 'config' and 'state_dict')")
    config = entry["config"]
    types = {f.name: f.type if isinstance(f.type, str) else f.type.__name__ for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(config) - set(types)))
    if unknown:
        raise ValueError(
            f"{source}: unknown {cls.__name__} key(s) {unknown}; expected some of {sorted(types)}"
        )
    for key, value in config.items():
        kind = types[key]
        if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{source}: config {key} must be an int, got {value!r}")
        if kind == "bool" and not isinstance(value, bool):
            raise ValueError(f"{source}: config {key} must be true or false, got {value!r}")
        if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                or not math.isfinite(value)):  # fmt: skip
            raise ValueError(f"{source}: config {key} must be a finite number, got {value!r}")
        if key == "filters" and not (isinstance(value, (list, tuple)) and all(map(_is_int_pair, value))):
            raise ValueError(f"{source}: config filters must be (width, n_filters) int pairs, got {value!r}")
    try:
        return cls(**config)  # DiscriminatorConfig turns the filters' lists into tuples
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: bad config ({err})") from None


def _is_int_pair(value: Any) -> bool:
    """A list or tuple of two Python ints (a (width, n_filters) pair as a checkpoint stores it)."""
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(type(x) is int for x in value)


def _check_weights(model: TokenLSTM | AnyDiscriminator, entry: dict[str, Any], source: str) -> dict[str, Any]:
    """The entry's state dict, every name and shape checked against `model` (the model its config
    describes): a one-line error instead of torch's multi-line one from `load_state_dict`."""
    sizes = ", ".join(f"{k}={v}" for k, v in model.config.to_dict().items() if k not in ("filters",)
                      and isinstance(v, int))  # fmt: skip
    return check_state_dict(model, entry.get("state_dict"), source, f" its config ({sizes})")


def check_state_dict(module: nn.Module, state: Any, source: str, owner: str = " the model") -> dict[str, Any]:
    """`state`, a state dict read from `source`, with the names of `module`'s and tensors of their
    shapes (else a one-line ValueError; `owner` says whose sizes the shapes come from)."""
    if not isinstance(state, dict):
        raise ValueError(f"{source}: no state_dict (expected a dict of tensors)")
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(map(str, set(state) - set(expected)))
    if missing or unexpected:
        raise ValueError(f"{source}: weights do not match{owner}: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")  # fmt: skip
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            what = type(tensor).__name__
            raise ValueError(f"{source}: state_dict[{name!r}] is a {what}, expected a tensor")
        if tensor.shape != expected[name].shape:
            raise ValueError(
                f"{source}: {name} has shape {tuple(tensor.shape)} in the file, but{owner} "
                f"needs {tuple(expected[name].shape)}: the config disagrees with the weights"
            )
    return state


def load_weights(module: nn.Module, state: Any, source: str) -> None:
    """`module.load_state_dict(state)` of a state dict read from `source`, checked first
    (`check_state_dict`)."""
    module.load_state_dict(check_state_dict(module, state, source))


def check_sequences(x: Any, vocab_size: int, seq_len: int, source: str, padded: bool = False) -> torch.Tensor:
    """`x`, token sequences read from `source`: an int64 tensor [N, T] of ids in [0, V), or in [0, V]
    where `padded` (a text run's padding id V); a one-line ValueError otherwise."""
    if not isinstance(x, torch.Tensor) or x.dtype != torch.int64 or x.dim() != 2 or x.shape[1] != seq_len:
        what = f"a {type(x).__name__}" if not isinstance(x, torch.Tensor) else f"{x.dtype} {tuple(x.shape)}"
        raise ValueError(f"{source}: {what}, expected int64 token sequences [N, {seq_len}]")
    top = vocab_size if padded else vocab_size - 1
    if x.numel() and (int(x.min()) < 0 or int(x.max()) > top):
        raise ValueError(f"{source}: token ids in [{int(x.min())}, {int(x.max())}], expected [0, {top}]")
    return x


def _model_from_entry(cls: type[_Model], config: Any, entry: dict[str, Any], source: str) -> _Model:
    """A model of `config` holding the entry's weights, checked first on a model without memory for
    its weights (meta tensors), so a config that claims huge sizes allocates nothing."""
    with torch.device("meta"):
        state = _check_weights(cls(config), entry, source)
    model = cls(config)
    model.load_state_dict(state)
    return model


def token_lstm_from_entry(entry: dict[str, Any], source: str = "checkpoint entry") -> TokenLSTM:
    """Rebuild a token LSTM from its checkpoint entry; `source` (e.g. "run.pt, entry 'generator'")
    names it in the one-line ValueError a bad or inconsistent entry raises."""
    return _model_from_entry(TokenLSTM, _config_from_entry(TokenLSTMConfig, entry, source), entry, source)


def discriminator_from_entry(entry: dict[str, Any], source: str = "checkpoint entry") -> AnyDiscriminator:
    """Rebuild a discriminator from its checkpoint entry, the paper's CNN or (by the entry's "kind") a
    prefix discriminator (see `token_lstm_from_entry` for `source`)."""
    kind = entry.get("kind") if isinstance(entry, dict) else None
    if kind == PrefixDiscriminator.entry_kind:
        prefix_config = _config_from_entry(PrefixDiscriminatorConfig, entry, source)
        return _model_from_entry(PrefixDiscriminator, prefix_config, entry, source).eval()
    if kind is not None:
        raise ValueError(f"{source}: unknown discriminator kind {kind!r}; expected none (the CNN) or "
                         f"{PrefixDiscriminator.entry_kind!r}")  # fmt: skip
    config = _config_from_entry(DiscriminatorConfig, entry, source)
    return _model_from_entry(Discriminator, config, entry, source).eval()


def load_env_models(path: str | os.PathLike[str]) -> tuple[TokenLSTM, AnyDiscriminator, Vocabulary | None]:
    """The rollout policy and discriminator an environment needs, from a checkpoint file, and the
    vocabulary of a run trained on text (None for the synthetic benchmark)."""
    payload = load_checkpoint(path)
    policy_key = "rollout_policy" if "rollout_policy" in payload else "generator"
    for key in (policy_key, "discriminator"):
        if key not in payload:
            raise ValueError(f"{path} holds no {key!r} entry; keys present: {sorted(payload)}")
    try:
        vocabulary = Vocabulary.from_dict(payload["vocabulary"]) if "vocabulary" in payload else None
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: bad 'vocabulary' entry ({err})") from None
    return (
        token_lstm_from_entry(payload[policy_key], f"{path}, entry {policy_key!r}"),
        discriminator_from_entry(payload["discriminator"], f"{path}, entry 'discriminator'"),
        vocabulary,
    )
