"""The README and docs/ say what the code does: every Python block of the README runs as written (in
seconds), the quick start's command prints the line the README shows, and every `python train/...` or
`python bench/...` command in README.md and docs/*.md parses (its options exist and have valid values)
and is either the quick start (run here) or marked with its measured time or as a long run."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HANG_GUARD, REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
QUICK_START = "python train/adversarial.py --preset tiny"
# A command's trailing comment gives its measured time ("17 min", "30 s", "1-2 h", "seconds") or says
# it is long ("long: the rest of the run").
TIMED = re.compile(r"#.*(\b\d[\d.,-]*\s*(s|min|h)\b|seconds|minutes|hours|\blong\b)")


def blocks(path: Path, language: str) -> list[str]:
    """The fenced code blocks of one language in a markdown file."""
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def commands(path: Path) -> list[str]:
    """Every `python train/...` or `python bench/...` line of the bash blocks, continuations joined."""
    found = []
    for block in blocks(path, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                if re.match(r"python (train|bench)/\w+\.py", part.strip()):
                    found.append(" ".join(part.split()))
    return found


ALL_COMMANDS = [(path, command) for path in DOCUMENTS for command in commands(path)]


class Parsed(Exception):
    """Raised in place of running a script once its command line has parsed."""


def parse_only(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the command's script in this process up to its argument parsing, then stop: argparse's
    errors (an unknown option, a bad value or choice) fail the test, nothing else runs."""
    words = shlex.split(command.split("#")[0])
    script = REPO / words[1]
    assert script.is_file(), script

    def parse_args(self: argparse.ArgumentParser, args: list[str] | None = None, namespace: object = None):
        original(self, args, namespace)
        raise Parsed

    original = argparse.ArgumentParser.parse_args
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    monkeypatch.setattr(sys, "argv", words[1:])
    monkeypatch.syspath_prepend(str(script.parent))
    spec = importlib.util.spec_from_file_location(f"readme_{script.parent.name}_{script.stem}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    with pytest.raises(Parsed):
        module.main()


def test_the_documents_have_commands() -> None:
    assert QUICK_START in [c for p, c in ALL_COMMANDS if p.name == "README.md"]
    assert len(ALL_COMMANDS) > 20


def test_a_command_that_does_not_parse_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pytest.fail.Exception):  # train/'s scripts: exit code 2, no parse completed
        parse_only("python train/adversarial.py --bogus 1   # 1 min", monkeypatch)
    with pytest.raises(SystemExit):  # plain argparse: exit 2
        parse_only("python bench/bench_env.py --episodes many", monkeypatch)
    assert not TIMED.search("python train/adversarial.py --preset cpu   # the main job")


@pytest.mark.parametrize(("path", "command"), ALL_COMMANDS, ids=[c[:80] for _, c in ALL_COMMANDS])
def test_every_command_parses_and_is_timed(path: Path, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parse_only(command, monkeypatch)  # an error fails it (its one-line message is in the captured stderr)
    assert command.startswith(QUICK_START) or TIMED.search(command), (
        f"{path.name}: {command!r} is neither run by a test nor marked with its time"
    )


@pytest.mark.parametrize("index", range(len(blocks(REPO / "README.md", "python"))))
def test_readme_python_blocks_run(index: int, tmp_path: Path) -> None:
    """Each Python block of the README, as written, in a fresh interpreter (seconds each)."""
    code = blocks(REPO / "README.md", "python")[index]
    for extra in ("ray", "torchrl"):
        if f"import {extra}" in code:
            pytest.importorskip(extra)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            timeout=HANG_GUARD)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


def test_quick_start_prints_what_the_readme_shows(tmp_path: Path) -> None:
    """`python train/adversarial.py --preset tiny` ends with the README's line (its numbers to 0.02: a
    machine of another kind may round its floats differently)."""
    shown = re.search(r"^NLL-oracle .* after 4 rounds.*$", (REPO / "README.md").read_text(), flags=re.M)
    assert shown is not None
    result = subprocess.run([sys.executable, str(REPO / "train" / "adversarial.py"), "--preset", "tiny"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=HANG_GUARD)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    pattern = r"NLL-oracle ([\d.]+) -> ([\d.]+), NLL-test ([\d.]+) -> ([\d.]+) after 4 rounds"
    got, expected = re.match(pattern, last), re.match(pattern, shown.group(0))
    assert got is not None and expected is not None, last
    assert [float(v) for v in got.groups()] == pytest.approx([float(v) for v in expected.groups()], abs=0.02)
    assert "results in runs/tiny_seqgan_s0_" in last


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    """.ci/run's command is the README's test command, and that command is short."""
    readme = [line.split("#")[0].strip() for block in blocks(REPO / "README.md", "bash")
              for line in block.splitlines() if "# the test command" in line]  # fmt: skip
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith(("#", "set ", "cd "))]  # fmt: skip
    assert len(readme) == 1 and ci == readme and len(readme[0]) <= 150, (readme, ci)


@pytest.mark.skipif(sys.platform == "win32", reason="a bash script")
def test_the_test_command_fails_with_its_stage(tmp_path: Path) -> None:
    """.ci/test.sh stops at the first failing command with its exit status: pytest's 5 (no test
    collected) included; an unknown stage is an error before anything runs."""
    stub = tmp_path / "python"
    stub.write_text('#!/bin/sh\ncase "$*" in *pytest*) exit 5 ;; *) exit 0 ;; esac\n')
    stub.chmod(0o755)
    script = str(REPO / ".ci" / "test.sh")
    run = subprocess.run(["bash", script, "lint", "tests", "extras"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": str(stub)}, timeout=HANG_GUARD)  # fmt: skip
    assert run.returncode == 5 and run.stderr.split() == ["===", "lint", "===", "tests"], run.stderr
    bad = subprocess.run(["bash", script, "lint", "typo"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": str(stub)}, timeout=HANG_GUARD)  # fmt: skip
    assert bad.returncode == 2 and "unknown stage 'typo'" in bad.stderr and "===" not in bad.stderr
