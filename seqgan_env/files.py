"""Files written whole or not at all: checkpoints and converted oracle parameters."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write `path` through `write(file)`: into a temporary file beside it, flushed to disk, then
    renamed over `path`. A crash or an exception leaves the old file (if any) intact and no temporary
    file behind. The file gets mode 0644 (mkstemp's 0600 is meant for secrets, not data files)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
