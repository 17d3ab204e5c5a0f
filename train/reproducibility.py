"""What a run's numbers depend on beyond its config, and what a resumed run is told about it.

On the CPU a run is exact: the same config and seed give the same numbers, and a resumed run continues
bit for bit, provided it computes the same way. The thread count decides how float sums are split, so
config.json records it and `--resume` keeps it unless told otherwise; the CPU's vector instructions and
torch's version move the last digits, so a checkpoint records them and a resume on another kind of
machine says so.
"""

from __future__ import annotations

from typing import Any

import torch


def machine() -> dict[str, str]:
    """The vector instructions torch uses on this CPU and torch's version (a checkpoint records them)."""
    return {"cpu_capability": str(torch.backends.cpu.get_cpu_capability()), "torch": str(torch.__version__)}


def machine_note(state: dict[str, Any]) -> str:
    """The resume line's words on a checkpoint written on another kind of machine (empty if none)."""
    recorded = state.get("machine")
    if not isinstance(recorded, dict) or recorded == machine():  # none recorded (or not readable)
        return ""
    here = ", ".join(f"{k} {v}" for k, v in machine().items())
    there = ", ".join(f"{k} {str(v)[:80]}" for k, v in recorded.items())
    return f"; it ran on {there}, this machine has {here}: its numbers may differ in the last digits"


def thread_note(recorded: int | None, threads: int) -> str:
    """The resume line's words on the thread count: the one config.json records (`recorded`; None for
    a run that records none), or another given with --threads."""
    if recorded is None:
        return ""
    if recorded == threads:
        return f", on {threads} threads as recorded"
    return (f", on {threads} threads as --threads asks (the run recorded {recorded}: its numbers will "
            "differ from an uninterrupted run's)")  # fmt: skip


def compile_note(recorded: bool | None, compiled: bool) -> str:
    """The resume line's words where --compile differs from what config.json records (`recorded`; None
    for a run that records none): compiled kernels round differently."""
    if recorded is None or recorded == compiled:
        return ""
    return (f", {'with' if compiled else 'without'} --compile as asked (the run recorded "
            f"{'--compile' if recorded else '--no-compile'}: its numbers will differ from an uninterrupted "
            "run's in the last digits)")
