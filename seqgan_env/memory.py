"""Sizes that cannot fit in this machine's memory are refused before anything is allocated.

Each caller estimates its largest buffers by the option (or argument) that sets them; `check_memory`
compares the sum with the machine's RAM and names the option to lower.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SHARE = 0.8  # of the machine's RAM that the estimate may take


def physical_memory() -> int | None:
    """Bytes of RAM on this machine, where the OS says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(terms: Mapping[str, float]) -> None:
    """A one-line ValueError when the bytes in `terms` (keyed by the option that sets each) exceed
    `SHARE` of this machine's RAM, naming the largest term's option."""
    total = physical_memory()
    need = sum(terms.values())
    if total is not None and need > SHARE * total:
        biggest = max(terms, key=terms.__getitem__)
        gib = {"need": need / 2**30, "total": total / 2**30, "biggest": terms[biggest] / 2**30}
        raise ValueError(f"these sizes need about {gib['need']:.1f} GiB, this machine has {gib['total']:.1f} "
                         f"GiB: lower {biggest} (about {gib['biggest']:.1f} GiB)")  # fmt: skip
