"""train/cli.py: a config dataclass as a command line, with choices from `Literal`, `--flag/--no-flag`
from `bool`, ranges from `option()`, and one-line errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import pytest

from train.cli import check_options, check_run_name, config_parser, option


@dataclass
class Example:
    mode: Literal["a", "b"] = option("which mode", default="a")
    count: int = option("how many", default=3, at_least=1)
    rate: float = option("a rate", default=0.5, at_least=0, below=1)
    lr: float = option("a learning rate", default=0.1, above=0)
    path: str | None = option("a file", default=None)
    verbose: bool = option("print progress", default=True)


def test_flags_types_choices_and_given_only():
    parser = config_parser(Example, "an example")
    assert vars(parser.parse_args([])) == {}  # defaults suppressed: only what was given
    given = vars(parser.parse_args(["--mode", "b", "--count", "4", "--rate", "0.25", "--no-verbose"]))
    assert given == {"mode": "b", "count": 4, "rate": 0.25, "verbose": False}
    assert vars(parser.parse_args(["--verbose"])) == {"verbose": True}
    text = parser.format_help()
    assert "{a,b}" in text and "--verbose, --no-verbose" in text and "print progress (default: on)" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--mode", "c"], "argument --mode: invalid choice: 'c'"), (["--count", "x"], "invalid int value: 'x'"),
     (["--bogus"], "unrecognized arguments: --bogus")],
)  # fmt: skip
def test_parse_errors_are_one_line_value_errors(argv: list[str], message: str):
    with pytest.raises(ValueError, match=message) as info:
        config_parser(Example, None).parse_args(argv)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"count": 0}, "--count must be >= 1, got 0"), ({"rate": 1.0}, r"--rate must be in \[0, 1\), got 1.0"),
     ({"lr": 0.0}, "--lr must be > 0, got 0.0"), ({"lr": math.nan}, "--lr must be a finite number, got nan"),
     ({"count": 2.5}, "--count must be an integer"), ({"count": True}, "--count must be an integer"),
     ({"mode": "c"}, "--mode must be one of a, b, got 'c'"), ({"path": 3}, "--path must be a string"),
     ({"verbose": "yes"}, "--verbose must be true or false"), ({"count": None}, "--count needs a value")],
)  # fmt: skip
def test_check_options_types_and_ranges(fields: dict[str, object], message: str):
    with pytest.raises(ValueError, match=message):
        check_options(Example(**fields))  # type: ignore[arg-type]
    check_options(Example())


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "..", ".", "-x"])
def test_run_names_stay_inside_out(name: str):
    with pytest.raises(ValueError, match="--name must be a plain folder name"):
        check_run_name(name)
    check_run_name("run_1")
