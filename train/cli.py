"""A config dataclass as a command line: one `--flag` per field, its type, choices and help from the
field, and errors of one line.

Each field declares its help with `option()`. `Literal[...]` fields become choices, `bool` fields
`--flag/--no-flag`, `int`/`float`/`str` (maybe `| None`) typed values. Defaults are suppressed, so the
parsed namespace holds only what was given: a preset or a resumed run's config fills in the rest.
Each help line ends with one "(default: ...)": the value the run will use (a preset's, where one sets
it: `config_parser(..., shown=...)`), or the words of `option(..., shown=...)` where no value says it;
a required option's line ends "(required)" instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal, NoReturn

from seqgan_env.devices import resolve_device

MAX_SEED = 2**63 - 1
MAX_NAME_BYTES = 255  # the longest file name the common file systems take (ext4, xfs, btrfs, APFS, NTFS)
THREADS_PER_CPU = 4  # --threads above this many per CPU only slows a run down (and 10**5 exhausts memory)
# Float32 stays finite under these: Adam moves a weight by about the learning rate per step, so a rate
# <= 1 cannot overflow it; a reward or loss coefficient <= 1e6 times a sum of log-probabilities over a
# batch stays far below float32's 3.4e38; logits / temperature stays finite for temperature >= 1e-6.
MAX_LR = 1.0
MAX_SCALE = 1e6
MIN_TEMPERATURE = 1e-6


def option(
    help_text: str, *, at_least: float | None = None, above: float | None = None, below: float | None = None,
    at_most: float | None = None, shown: str | None = None, required: bool | None = None, **kw: Any,
) -> Any:
    """A config dataclass field whose help text becomes its `--help` line, with the range its value
    must lie in (`check_options` enforces it): >= `at_least`, > `above`, < `below`, <= `at_most`.
    `shown` is what `--help` says of the default where the value alone does not say it (e.g. None:
    "pre-train here"). A `required` (True) option's line ends "(required)" instead of a default (the
    script's validation says what it needs)."""
    bounds = {"at_least": at_least, "above": above, "below": below, "at_most": at_most}
    metadata = {"help": help_text, "shown": shown, "required": bool(required), **bounds}
    return dataclasses.field(metadata=metadata, **kw)


def default_text(value: Any) -> str:
    """A default as `--help` shows it: on/off for flags, none for None or an empty string."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value is None or value == "" else str(value)


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are a ValueError: the scripts report it as every other bad input, in one
    line with exit code 2, before anything is written."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(f"{message} (see --help)")


def config_parser(
    config_cls: type, description: str | None, shown: Mapping[str, str] | None = None,
    fields: Collection[str] | None = None,
) -> argparse.ArgumentParser:
    """A parser with one flag per field of `config_cls` (see the module docstring), or only for the
    fields named in `fields`; `shown` replaces the default `--help` states for the fields it names."""
    parser = OneLineParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        if fields is not None and f.name not in fields:
            continue
        flag, kind = f"--{f.name.replace('_', '-')}", _base_type(hints[f.name])
        default = (shown or {}).get(f.name) or f.metadata.get("shown") or default_text(f.default)
        ending = "(required)" if f.metadata.get("required") else f"(default: {default})"
        text = f"{f.metadata['help']} {ending}"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=text)  # fmt: skip
        elif typing.get_origin(kind) is Literal:
            choices = typing.get_args(kind)
            parser.add_argument(flag, choices=choices, default=argparse.SUPPRESS,
                                metavar="{" + ",".join(choices) + "}", help=text)  # fmt: skip
        else:
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=text)
    return parser


def _base_type(hint: Any) -> Any:
    """`int` for `int | None`, the hint itself otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def check_options(config: Any) -> None:
    """Every field of a config dataclass holds its declared type (floats finite, `Literal` fields one
    of their choices) within its `option()` range. Errors name the flag: a preset or a config.json may
    hold anything."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        flag, value, hint = f"--{f.name.replace('_', '-')}", getattr(config, f.name), hints[f.name]
        if value is None:
            if type(None) not in typing.get_args(hint):
                raise ValueError(f"{flag} needs a value")
            continue
        kind = _base_type(hint)
        if typing.get_origin(kind) is Literal:
            if value not in typing.get_args(kind):
                raise ValueError(f"{flag} must be one of {', '.join(typing.get_args(kind))}, got {value!r}")
        elif kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{flag} must be true or false, got {value!r}")
        elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{flag} must be an integer, got {value!r}")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{flag} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{flag} must be a finite number, got {value!r}")
        elif kind is str and not isinstance(value, str):
            raise ValueError(f"{flag} must be a string, got {value!r}")
        if kind in (int, float):
            _check_range(flag, value, f.metadata)


def _check_range(flag: str, value: float, bounds: Any) -> None:
    low, above, below = bounds.get("at_least"), bounds.get("above"), bounds.get("below")
    high = bounds.get("at_most")
    if low is not None and below is not None and not low <= value < below:
        raise ValueError(f"{flag} must be in [{low}, {below}), got {value}")
    if low is not None and high is not None and not low <= value <= high:
        raise ValueError(f"{flag} must be in [{low:g}, {high:g}], got {value:g}")
    if above is not None and high is not None and not above < value <= high:
        raise ValueError(f"{flag} must be in ({above:g}, {high:g}], got {value:g}")
    if low is not None and value < low:
        raise ValueError(f"{flag} must be >= {low}, got {value}")
    if above is not None and not value > above:
        raise ValueError(f"{flag} must be > {above}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{flag} must be <= {high:g}, got {value:g}")


def check_seed(flag: str, value: int) -> None:
    """A seed every generator takes: an int in [0, 2**63 - 1]."""
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"{flag} must be in [0, 2**63 - 1], got {value}")


def check_run_name(name: str) -> None:
    """A run folder name is one plain path component: it cannot reach outside --out, and the file
    system takes it (at most 255 bytes)."""
    if name in (".", "..") or Path(name).name != name or "/" in name or "\\" in name or name.startswith("-"):
        raise ValueError(f"--name must be a plain folder name (no '/', '..' or leading '-'), got {name!r}")
    size = len(os.fsencode(name))
    if size > MAX_NAME_BYTES:
        raise ValueError(f"--name must be at most {MAX_NAME_BYTES} bytes (a file system's longest name), "
                         f"got {size}: {name[:20]}...")  # fmt: skip


def max_threads() -> int:
    """The most --threads this machine takes: THREADS_PER_CPU per CPU."""
    return THREADS_PER_CPU * (os.cpu_count() or 1)


def check_threads(threads: int) -> None:
    """--threads is 0 (torch's default) or at most `max_threads()`: checked before anything is written,
    as a huge count makes the OpenMP runtime abort the process."""
    if threads > max_threads():
        raise ValueError(f"--threads must be in [0, {max_threads()}] ({THREADS_PER_CPU} per CPU of this "
                         f"machine), got {threads}")  # fmt: skip


def check_out(out: str) -> None:
    """--out is a folder, or not there yet (it is made with the run folder)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out} is a file, expected a folder (for run folders)")


def check_run_options(config: Any, paths: tuple[str, ...] = ()) -> None:
    """What every script's config has: --seed, --device (it must exist here), --threads (within
    `max_threads()`), --out (a folder) and --name (a plain folder name inside --out), and path options
    that, when given, are not empty."""
    check_seed("--seed", config.seed)
    resolve_device(config.device)
    check_threads(config.threads)
    for name in ("out", "name", *paths):
        if getattr(config, name) == "":
            raise ValueError(f"--{name.replace('_', '-')} must not be empty")
    if getattr(config, "resume", None) is None:  # a resumed run stays where it is
        check_out(config.out)
    if config.name is not None:
        check_run_name(config.name)


def as_flags(settings: dict[str, Any]) -> list[str]:
    """The command-line options that give these settings (field name -> value; None values left out):
    `--flag value`, and `--flag` / `--no-flag` for booleans."""
    args: list[str] = []
    for key, value in settings.items():
        flag = key.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            args.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            args += [f"--{flag}", str(value)]
    return args


def fail(message: object) -> int:
    """Print a user error as one line; the scripts' exit code for bad input."""
    if isinstance(message, OSError) and message.strerror:  # e.g. "Permission denied: runs/x/config.json"
        message = f"{message.strerror}: {message.filename}" if message.filename else message.strerror
    print(f"error: {message}", file=sys.stderr)
    return 2
