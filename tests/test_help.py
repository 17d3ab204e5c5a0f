"""Every script's `--help` tells the truth: it works without the optional extras, every option has
help with at most one "(default: ...)", train/adversarial.py shows the values of the preset in force,
train/pretrain.py lists only what pre-training reads, and no help names another library's options or
the project's history."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from conftest import REPO

from train.config import ADVERSARIAL_ONLY
from train.presets import PRESETS

SCRIPTS = sorted(
    [p for p in (REPO / "train").glob("*.py") if p.read_text().count('if __name__ == "__main__":')]
    + list((REPO / "bench").glob("*.py"))
)
HISTORY = re.compile(r"SPEC [0-9]|issue [0-9]+|session [0-9]")


def help_text(script: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
              *args: str) -> str:  # fmt: skip
    """`python SCRIPT [args] --help`'s output, in this process (its main() exits 0 after printing)."""
    monkeypatch.setenv("COLUMNS", "200")  # one line per option
    monkeypatch.syspath_prepend(str(script.parent))
    monkeypatch.setattr(sys, "argv", [str(script), *args, "--help"])
    spec = importlib.util.spec_from_file_location(f"help_{script.parent.name}_{script.stem}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_:
        module.main()
    assert exit_.value.code in (0, None)
    return capsys.readouterr().out


def options(text: str) -> dict[str, str]:
    """Each option of a help text (its first flag) and its help, wrapped lines joined."""
    found: dict[str, str] = {}
    flag = None
    for line in text[text.index("options:"):].splitlines()[1:]:
        match = re.match(r"^  (-{1,2}[\w-]+)", line)
        if match:
            flag = match.group(1)
            found[flag] = line[match.end():]
        elif flag is not None and line.startswith("   "):
            found[flag] += " " + line.strip()
    found.pop("-h", None)
    return {k: " ".join(v.split()) for k, v in found.items()}


def option_help(entry: str) -> str:
    """The help of one option line, without its metavar or choices."""
    return re.sub(r"^(, --no-[\w-]+|\s[A-Z_]+|\s\{[^}]*\})*\s*", "", entry)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_option_has_one_truthful_help(
    script: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_text(script, monkeypatch, capsys)  # bench_rllib.py: without Ray where it is absent
    found = options(text)
    assert found, text
    for flag, entry in found.items():
        assert option_help(entry), f"{flag} has no help"
        assert entry.count("(default:") <= 1, f"{flag}: {entry}"
    assert not HISTORY.search(text), HISTORY.search(text)


def test_a_required_option_shows_no_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A required option has no default to show: its help ends "(required)"."""
    found = options(help_text(REPO / "train" / "probe_discriminator.py", monkeypatch, capsys))
    assert found["--pretrained"].endswith("(required)") and "(default:" not in found["--pretrained"], found


def test_adversarial_help_shows_the_preset_in_force(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = REPO / "train" / "adversarial.py"
    for argv, preset in (((), "cpu"), (("--preset", "tiny"), "tiny"), (("--preset=paper",), "paper"),
                         (("--preset", "dense"), "dense")):  # fmt: skip
        found = options(help_text(script, monkeypatch, capsys, *argv))
        for name, value in PRESETS[preset].items():
            assert f"(default: {value} with --preset {preset};" in found[f"--{name.replace('_', '-')}"], name
    found = options(help_text(script, monkeypatch, capsys))
    assert "(default: 20 with --preset cpu; paper 120, dense 20, tiny 3)" in found["--mle-epochs"]
    assert "(default: 50 with --preset cpu; paper 200, dense 200, tiny 4)" in found["--rounds"]
    assert "(default: 8 with --preset cpu; paper 16, dense 8, tiny 4)" in found["--n-rollouts"]
    assert "(default: mc with --preset cpu; paper mc, dense dense, tiny mc)" in found["--reward-mode"]
    assert "--progress" in found  # --progress/--no-progress, as train/sb3.py's and train/rllib.py's


def test_pretrain_help_lists_only_what_pretraining_reads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    found = options(help_text(REPO / "train" / "pretrain.py", monkeypatch, capsys))
    for name in ADVERSARIAL_ONLY:
        assert f"--{name.replace('_', '-')}" not in found, name
    for flag in ("--preset", "--mle-epochs", "--disc-pretrain-repeats", "--oracle", "--data", "--resume"):
        assert flag in found


def test_rllib_help_names_rllib_not_sb3(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    text = help_text(REPO / "train" / "rllib.py", monkeypatch, capsys)
    for phrase in ("seed of SB3", "SB3 update", "A2C", "RMSprop"):
        assert phrase not in text
    assert "seed of RLlib" in text
