"""A run folder: `config.json`, `metrics.csv` (a row per evaluation), TensorBoard scalars under `tb/`,
checkpoints (written atomically), `curve.png`, `samples.txt` and, for a text run, `vocab.json`.

The metrics rows live in the checkpoint too, so a resumed run rewrites `metrics.csv` from its last
checkpoint and every evaluation appears exactly once. A process holds the folder's lock (an advisory
lock on the folder itself, no lock file) while it runs; the operating system releases it when the
process ends, however it ends. A `.lock` file in a run folder plays no part in it and may be deleted.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from seqgan_env.files import write_atomically

# A config.json key that one script alone writes: which script made a run folder (first match).
_MADE_BY = (("num_env_runners", "train/rllib.py"), ("algo", "train/sb3.py"), ("mode", "train/adversarial.py"))
_CONTINUE = {"train/sb3.py": "train/sb3.py has no resume; continue its model with --load {path}/model.zip"}



class RunFolder:
    """One experiment's folder: config, metrics, TensorBoard, checkpoints, plot, samples."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer: Any = None
        self._lock: Any = None

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def checkpoint(self, name: str) -> Path:
        return self.path / f"{name}.pt"

    def lock(self) -> None:
        """Hold the folder for this process (until it exits): a second process on the same run folder
        gets a clear error instead of interleaving checkpoints, metrics and TensorBoard events."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        if self._lock is not None:
            return
        handle = os.open(self.path, os.O_RDONLY)  # the folder itself: nothing is written to lock it
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(handle)
            raise RuntimeError(f"run folder {self.path} is in use by another process; wait for it to finish "
                               "or stop it first") from None
        self._lock = handle  # released by the operating system when the process ends

    def remove_temporaries(self) -> list[Path]:
        """Delete what a killed write left behind (`.NAME.*.tmp`); call it while holding the lock.
        Returns the files removed."""
        stale = sorted(self.path.glob("*.tmp"))  # pathlib's * matches dot files too
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def create(self, config: dict[str, Any]) -> None:
        """Make a new run folder holding `config` (config.json), and lock it; refuses an existing one so
        nothing is partly overwritten. Where the system refuses (a read-only or full --out, a name too
        long), an OSError of one line, and nothing made is left behind."""
        if self.path.exists():
            raise FileExistsError(
                f"run folder {self.path} already exists: pass --resume {self.path} to continue it, "
                "or choose another --name"
            )
        made = [p for p in (self.path, *self.path.parents) if not p.exists()]  # innermost first
        try:
            self.path.mkdir(parents=True)
            self.lock()
            text = json.dumps(config, indent=2, sort_keys=True) + "\n"
            write_atomically(self.config_path, lambda f: f.write(text.encode()))
        except OSError as err:
            self.close()
            self.config_path.unlink(missing_ok=True)
            for folder in made:
                if folder.is_dir():
                    folder.rmdir()
            raise OSError(f"cannot create run folder {self.path}: {err.strerror or err}") from None

    def saved_config(self) -> dict[str, Any]:
        """The config a run folder was made with, or a clear error if it is not a run folder."""
        if not self.config_path.is_file():
            raise FileNotFoundError(f"{self.path} is not a run folder (no config.json)")
        try:
            config = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise ValueError(f"{self.config_path} is not a JSON config ({str(err)[:80]})") from None
        if not isinstance(config, dict):
            raise ValueError(f"{self.config_path} holds a JSON {type(config).__name__}, expected an object")
        return config

    def resumable_config(self, fields: Iterable[str], script: str) -> dict[str, Any]:
        """`saved_config()` of a run to resume with `script`, whose options are `fields`: a clear error
        naming the script that made the run where its config.json holds other options."""
        saved = self.saved_config()
        foreign = sorted(set(saved) - set(fields))
        if foreign:
            option = "--" + foreign[0].replace("_", "-")
            maker = next((name for key, name in _MADE_BY if key in saved), "another script")
            if maker == script:
                raise ValueError(f"{self.config_path} has {option}, which this version of {script} lacks")
            how = _CONTINUE.get(maker, "resume it with python {maker} --resume {path}")
            raise ValueError(f"{self.path} was made by {maker}, not {script} (its config.json has {option}): "
                             + how.format(maker=maker, path=self.path))
        return saved

    def write_metrics(self, rows: list[dict[str, Any]], fields: tuple[str, ...]) -> None:
        """Rewrite metrics.csv from all rows so far (the rows also live in the checkpoint), atomically."""
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        write_atomically(self.path / "metrics.csv", lambda f: f.write(text.getvalue().encode()))

    def tensorboard(self, purge_step: int | None = None) -> Any:
        """A TensorBoard writer; on resume, `purge_step` drops events logged after the checkpoint."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.path / "tb"), purge_step=purge_step)
        return self._writer

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        writer = self.tensorboard()
        for key, value in scalars.items():
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                writer.add_scalar(key, value, step)

    def close(self) -> None:
        """Flush TensorBoard and release the folder's lock."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def discard(self) -> None:
        """Release and delete a run folder this process has just created, for a run that could not
        start: a failed start leaves nothing behind."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def __del__(self) -> None:
        if self._lock is not None:  # a folder object dropped without close(), e.g. after an error
            os.close(self._lock)

    def write_samples(self, samples: torch.Tensor, decode: Any = None) -> None:
        """Generated sequences, one per line (token ids, or text through `decode`)."""
        lines = [decode(row) if decode else " ".join(map(str, row.tolist())) for row in samples]
        (self.path / "samples.txt").write_text("\n".join(lines) + "\n")
