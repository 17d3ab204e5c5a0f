"""What a run started from another run takes from it (train/adversarial.py --init-from, train/sb3.py and
train/rllib.py --pretrained, and the runs train/compare.py makes): the source's data, oracle and model
sizes come with its models, so an option that contradicts them is an error naming it; its pre-training
settings are the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from train.cli import default_text
from train.run_folder import RunFolder

# What a run started from another (--init-from) takes from it. Its data, oracle and the generator's
# shape come with its models, so a different value is an error; its pre-training settings and
# discriminator are the defaults (another discriminator shape is pre-trained afresh).
SOURCE_BOUND = (
    "vocab_size", "seq_len", "gen_embed_dim", "gen_hidden_dim", "n_real", "n_test", "oracle", "oracle_seed",
    "data", "level", "max_vocab", "test_fraction",
)  # fmt: skip
SOURCE_DEFAULTS = (
    "batch_size", "mle_epochs", "mle_lr", "mle_eval_every", "disc_embed_dim", "disc_filters", "disc_dropout",
    "disc_lr", "disc_pretrain_repeats", "disc_batch_size", "disc_hidden_dim", "disc_layer_norm",
    "disc_embed_dropout", "disc_l2", "disc_beta1", "disc_beta2",
)  # fmt: skip


def source_settings(flag: str, folder: str) -> dict[str, Any]:
    """The config.json of the run folder `folder` that `flag` starts from; none while that folder does
    not exist yet (train/compare.py checks its runs before it makes their source; loading the source
    reports a missing one before anything is written)."""
    if not Path(folder).exists():
        return {}
    return RunFolder(folder).saved_config()


def same_setting(key: str, given: Any, source: Any) -> bool:
    """Whether an option given agrees with the source run's value (a path: the same file)."""
    if given == source:
        return True
    if key in ("oracle", "data") and isinstance(given, str) and isinstance(source, str):
        try:
            return os.path.samefile(given, source)
        except OSError:
            return False
    return False


def check_source(given: dict[str, Any], source: dict[str, Any], origin: str) -> None:
    """An option given that contradicts the source run's data, oracle or sizes is an error naming it."""
    for key in SOURCE_BOUND:
        if key in given and key in source and not same_setting(key, given[key], source[key]):
            flag = f"--{key.replace('_', '-')}"
            raise ValueError(f"{flag} {default_text(given[key])} contradicts {origin}, made with {flag} "
                             f"{default_text(source[key])}: a run started from another keeps its data, "
                             f"oracle and sizes (omit {flag})")  # fmt: skip


def source_base(given: dict[str, Any], presets: dict[str, dict[str, Any]], default: str) -> dict[str, Any]:
    """train/adversarial.py's settings before the options given, for a run started --init-from another:
    the source's preset (unless --preset is given) with the source's data, oracle, sizes and pre-training
    settings over it; an option given that contradicts the source is an error."""
    origin = f"--init-from {given['init_from']}"
    source = source_settings("--init-from", given["init_from"])
    check_source(given, source, origin)
    preset = given.get("preset", source.get("preset", default))
    if preset not in presets:
        raise ValueError(f"{origin}: its config.json names no known preset ({preset!r}): pass --preset")
    taken = {k: source[k] for k in (*SOURCE_BOUND, *SOURCE_DEFAULTS) if k in source}
    return {**presets[preset], "preset": preset, **taken}
