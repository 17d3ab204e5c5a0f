"""Files written whole or not at all: checkpoints and converted oracle parameters."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write `path` through `write(file)`: into a temporary file beside it, flushed to disk, then
    renamed over `path`. A crash or an exception leaves the old file (if any) intact and no temporary
    file behind; where the system refused a write (a full disk, a read-only folder) the error raised is
    that `OSError`, naming `path`. The file gets mode 0644 (mkstemp's 0600 is meant for secrets, not
    data files)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        refused = _os_error(err)
        if refused is not None:  # e.g. a full disk, which torch.save reports as "unexpected pos"
            raise OSError(refused.errno, refused.strerror, str(path)) from None
        raise


def _os_error(err: BaseException) -> OSError | None:
    """The system's refusal (a write, fsync or rename failing) behind `err`, if any: `err` itself or
    an error it was raised from or during."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno is not None:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
