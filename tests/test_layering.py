"""Imports go one way: train -> agents -> seqgan_env. The env package knows nothing of its users."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_packages(path: Path, root: Path = REPO) -> set[str]:
    """Top-level names of the packages a module imports, including `importlib.import_module("x.y")`
    and `__import__("x")` with a literal name. Relative imports that climb out of the module's own
    package (`from .. import x`) are reported as "<outside>"."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    depth = len(path.relative_to(root).parts) - 1  # how many packages the module sits in
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.add(node.module.split(".")[0])
            elif node.level > depth:
                names.add("<outside>")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names.add(node.args[0].value.lstrip(".").split(".")[0])
    return names


def python_files(package: str) -> list[Path]:
    root = REPO / package
    return sorted(root.rglob("*.py")) if root.is_dir() else []


def offenders(files: list[Path], forbidden: set[str]) -> dict[str, list[str]]:
    """Each file that imports a forbidden package, with what it imports."""
    found = {str(f.relative_to(REPO)): sorted(imported_packages(f) & forbidden) for f in files}
    return {f: bad for f, bad in found.items() if bad}


def test_the_import_scanner_finds_real_imports():
    assert imported_packages(REPO / "seqgan_env" / "env.py") >= {"gymnasium", "numpy", "seqgan_env"}


def test_the_import_scanner_sees_every_import_form(tmp_path):
    module = tmp_path / "seqgan_env" / "sub" / "m.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "import os, agents.policy\n"
        "from train import loop\n"
        "from . import sibling\n"
        "from .. import inside\n"
        "import importlib\n"
        "importlib.import_module('train.adversarial')\n"
        "def f():\n"
        "    from agents.reinforce import Agent\n"
    )
    assert imported_packages(module, root=tmp_path) == {"os", "agents", "train", "importlib"}
    module.write_text("from ... import escaped\n")
    assert imported_packages(module, root=tmp_path) == {"<outside>"}


def test_env_package_imports_neither_agents_nor_train():
    files = python_files("seqgan_env")
    assert len(files) >= 10, "the seqgan_env package should be found"
    assert not offenders(files, {"agents", "train", "<outside>"})


def test_agents_import_no_train():
    files = python_files("agents")
    if not files:
        pytest.skip("agents/ has no Python files yet")
    assert not offenders(files, {"train", "<outside>"})


SCRIPTS = ("adversarial", "pretrain", "sb3", "rllib", "compare", "sample")  # train/NAME.py: entry points only


def test_no_script_imports_another_script():
    """Scripts share the modules of the train package, never each other (nor run each other)."""
    files = python_files("train")
    assert {f.stem for f in files} >= set(SCRIPTS)
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        scripts = {name for name in imported if name.removeprefix("train.") in SCRIPTS}
        assert not scripts, f"{path.name} imports the script(s) {sorted(scripts)}"
        assert "subprocess" not in imported, f"{path.name} runs another process"


def test_train_modules_are_small():
    sizes = {f.name: len(f.read_text(encoding="utf-8").splitlines()) for f in python_files("train")}
    assert max(sizes.values()) <= 300, sizes
