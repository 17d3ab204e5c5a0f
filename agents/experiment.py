"""Experiment bookkeeping shared by the training scripts: the run folder, evaluation, metrics, plots.

A run folder holds `config.json`, `metrics.csv` (a row per evaluation), TensorBoard scalars under
`tb/`, checkpoints (written atomically), `curve.png`, `samples.txt` and, for a text run, `vocab.json`.
The metrics rows live in the checkpoint too, so a resumed run rewrites `metrics.csv` from its last
checkpoint and every evaluation appears exactly once.

Oracle runs report NLL-oracle and NLL-test (`evaluate`); text runs NLL-test, BLEU-2..5 of generated
sentences against the held-out set and their Self-BLEU-2..5 (`evaluate_text`, Texygen definitions).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.data import strip_sequences
from seqgan_env.bleu import BLEUReference, self_bleu
from seqgan_env.metrics import nll_oracle, nll_test
from seqgan_env.text import Vocabulary
from seqgan_env.token_lstm import TokenLSTM


def option(help_text: str, **kw: Any) -> Any:
    """A config dataclass field whose help text becomes its `--help` line."""
    return dataclasses.field(metadata={"help": help_text}, **kw)


def config_parser(config_cls: type, description: str | None) -> argparse.ArgumentParser:
    """An argparse parser with one `--flag` per field of a config dataclass (bool fields become
    `--no-flag`). Defaults are suppressed, so the parsed namespace holds only what was given."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(config_cls):
        flag = f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(f"--no-{flag}", dest=f.name, action="store_false", default=argparse.SUPPRESS,
                                help=f.metadata["help"])  # fmt: skip
            continue
        kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
        parser.add_argument(f"--{flag}", type=kind, default=argparse.SUPPRESS,
                            help=f"{f.metadata['help']} (default: {f.default})")  # fmt: skip
    return parser

def check_option_type(flag: str, value: Any, annotation: str) -> None:
    """`value` has the option's declared type (`int`, `float`, `str`, each maybe `| None`); floats are
    finite. One-line errors: NaN and inf are bad input, and so is a float where an int is meant."""
    if value is None:
        if "None" not in annotation:
            raise ValueError(f"{flag} needs a value")
        return
    kind = annotation.split(" ")[0]
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{flag} must be an integer, got {value!r}")
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{flag} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{flag} must be a finite number, got {value!r}")
    if kind == "str" and not isinstance(value, str):
        raise ValueError(f"{flag} must be a string, got {value!r}")


def check_run_name(name: str) -> None:
    """A run folder name is one plain path component: it cannot reach outside --out."""
    if name in (".", "..") or Path(name).name != name or "/" in name or "\\" in name or name.startswith("-"):
        raise ValueError(f"--name must be a plain folder name (no '/', '..' or leading '-'), got {name!r}")


def check_option_types(config: Any) -> None:
    """`check_option_type` for every field of a config dataclass, named by its command-line flag."""
    for f in dataclasses.fields(config):
        check_option_type(f"--{f.name.replace('_', '-')}", getattr(config, f.name), str(f.type))


def derive_seed(seed: int, *purpose: str | int) -> int:
    """A seed for one purpose of a run (`"train"`, `("eval", "mle", 10)`, ...), independent of every
    other purpose's: drawing more or fewer numbers for one never shifts another's stream."""
    words = [seed, *(int.from_bytes(p.encode(), "little") if isinstance(p, str) else p for p in purpose)]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> 1)


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch random generator on `device` (where it will sample), seeded with `seed`."""
    return torch.Generator(device=device).manual_seed(seed)


METRIC_FIELDS = (
    "phase", "step", "generator_updates", "nll_oracle", "nll_oracle_se", "nll_test", "nll_test_se",
    "temperature", "d_loss", "pg_loss", "elapsed_s",
)  # fmt: skip
BLEU_ORDERS = (2, 3, 4, 5)
TEXT_METRIC_FIELDS = (
    "phase", "step", "generator_updates", "nll_test", "nll_test_se",
    *(f"bleu{n}" for n in BLEU_ORDERS), *(f"self_bleu{n}" for n in BLEU_ORDERS),
    "temperature", "d_loss", "pg_loss", "elapsed_s",
)  # fmt: skip


@dataclass(frozen=True)
class Evaluation:
    """NLL-oracle (quality) and NLL-test (diversity) of a generator, with standard errors."""

    nll_oracle: float
    nll_oracle_se: float
    nll_test: float
    nll_test_se: float


def evaluate(
    generator: TokenLSTM,
    oracle: TokenLSTM,
    test_data: torch.Tensor,
    n_samples: int,
    rng: torch.Generator,
    temperature: float = 1.0,
) -> Evaluation:
    """NLL-oracle of `n_samples` fresh samples and NLL-test on held-out data, both at `temperature`."""
    generator.eval()
    quality = nll_oracle(oracle, generator, n_samples, rng, temperature)
    diversity = nll_test(generator, test_data, temperature=temperature)
    return Evaluation(quality.mean, quality.stderr, diversity.mean, diversity.stderr)


@dataclass(frozen=True)
class TextEvaluation:
    """NLL-test on held-out text, BLEU-n of generated sentences against it (quality) and their
    Self-BLEU-n (similarity to each other: higher is less diverse)."""

    nll_test: float
    nll_test_se: float
    bleu2: float
    bleu3: float
    bleu4: float
    bleu5: float
    self_bleu2: float
    self_bleu3: float
    self_bleu4: float
    self_bleu5: float


def evaluate_text(
    generator: TokenLSTM,
    test_data: torch.Tensor,
    reference: BLEUReference,
    n_samples: int,
    rng: torch.Generator,
    temperature: float = 1.0,
    eos_id: int | None = None,
    pad_id: int | None = None,
    self_bleu_samples: int | None = None,
) -> TextEvaluation:
    """NLL-test of `test_data` (padding excluded), and BLEU-2..5 / Self-BLEU-2..5 of `n_samples` fresh
    samples at `temperature`: each against the whole `reference` (the held-out sentences), resp. the
    other samples, `self_bleu_samples` of them (seeded subset; None: all) scored as hypotheses."""
    generator.eval()
    nll = nll_test(generator, test_data, pad_id=pad_id, temperature=temperature)
    samples = strip_sequences(generator.sample(n_samples, rng, temperature, eos_id=eos_id, pad_id=pad_id),
                              eos_id, pad_id)  # fmt: skip
    bleus = [reference.corpus_mean_bleu(samples, n) for n in BLEU_ORDERS]
    selfs = [self_bleu(samples, n, max_sentences=self_bleu_samples) for n in BLEU_ORDERS]
    return TextEvaluation(nll.mean, nll.stderr, *bleus, *selfs)


class Evaluator:
    """A run's evaluation: NLL-oracle and NLL-test of an oracle run (`oracle`), or NLL-test, BLEU-2..5
    and Self-BLEU-2..5 of a text run (`vocabulary`), all at `temperature`."""

    def __init__(
        self,
        oracle: TokenLSTM | None,
        vocabulary: Vocabulary | None = None,
        temperature: float = 1.0,
        eval_samples: int = 9984,
        bleu_samples: int = 1000,
        self_bleu_samples: int | None = 500,
    ) -> None:
        if (oracle is None) == (vocabulary is None):
            raise ValueError("an Evaluator needs an oracle (oracle runs) or a vocabulary (text runs)")
        self.oracle, self.vocabulary, self.temperature = oracle, vocabulary, temperature
        self.eval_samples, self.bleu_samples = eval_samples, bleu_samples
        self.self_bleu_samples = self_bleu_samples
        self._reference: tuple[torch.Tensor, BLEUReference] | None = None  # (test data, its BLEU references)

    @property
    def fields(self) -> tuple[str, ...]:
        """The columns of the run's metrics.csv."""
        return METRIC_FIELDS if self.vocabulary is None else TEXT_METRIC_FIELDS

    @property
    def summary(self) -> tuple[str, ...]:
        """The scores worth showing at a glance."""
        return ("nll_oracle", "nll_test") if self.vocabulary is None else ("bleu4", "self_bleu4", "nll_test")

    def __call__(
        self, generator: TokenLSTM, test_data: torch.Tensor, rng: torch.Generator
    ) -> dict[str, float]:
        """The scores of `generator` against held-out `test_data`, by name (the metrics columns)."""
        if self.vocabulary is not None:
            eos, pad = self.vocabulary.eos_id, self.vocabulary.pad_id
            if self._reference is None or self._reference[0] is not test_data:  # made once per test set
                self._reference = (test_data, BLEUReference(strip_sequences(test_data, eos, pad)))
            return asdict(evaluate_text(generator, test_data, self._reference[1], self.bleu_samples, rng,
                                        self.temperature, eos, pad, self.self_bleu_samples))  # fmt: skip
        assert self.oracle is not None
        return asdict(evaluate(generator, self.oracle, test_data, self.eval_samples, rng, self.temperature))


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
        handle = (self.path / ".lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise RuntimeError(f"run folder {self.path} is in use by another process; wait for it to finish "
                               "or stop it first") from None
        self._lock = handle  # released by the operating system when the process ends

    def remove_temporaries(self) -> list[Path]:
        """Delete what a killed write left behind (`.NAME.pt.*.tmp`, `metrics.csv.tmp`); call it while
        holding the lock. Returns the files removed."""
        stale = sorted(self.path.glob("*.tmp"))  # pathlib's * matches dot files too
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def create(self, config: dict[str, Any]) -> None:
        """Make a new run folder; refuses an existing one so nothing is partly overwritten."""
        if self.path.exists():
            raise FileExistsError(
                f"run folder {self.path} already exists: pass --resume {self.path} to continue it, "
                "or choose another --name"
            )
        self.path.mkdir(parents=True)
        self.lock()
        tmp = self.path / "config.json.tmp"
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.config_path)

    def saved_config(self) -> dict[str, Any]:
        """The config a run folder was made with, or a clear error if it is not a run folder."""
        if not self.config_path.is_file():
            raise FileNotFoundError(f"{self.path} is not a run folder (no config.json)")
        return json.loads(self.config_path.read_text())

    def write_metrics(self, rows: list[dict[str, Any]], fields: tuple[str, ...] = METRIC_FIELDS) -> None:
        """Rewrite metrics.csv from all rows so far (the rows also live in the checkpoint)."""
        tmp = self.path / "metrics.csv.tmp"
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.path / "metrics.csv")

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
            self._lock.close()
            self._lock = None

    def write_samples(self, samples: torch.Tensor, decode: Any = None) -> None:
        """Generated sequences, one per line (token ids, or text through `decode`)."""
        lines = [decode(row) if decode else " ".join(map(str, row.tolist())) for row in samples]
        (self.path / "samples.txt").write_text("\n".join(lines) + "\n")


def plot_learning_curve(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """NLL-oracle and NLL-test against training progress, MLE and adversarial phases marked (as the
    paper's Figure 2): x is MLE epochs, then adversarial rounds (one generator update each). Text runs
    plot NLL-test, and BLEU-n / Self-BLEU-n in a second panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    text = bool(rows) and "bleu2" in rows[0]
    fig, axes = plt.subplots(1, 2 if text else 1, figsize=(11 if text else 7, 4.2), squeeze=False)
    mle_end = max((r["step"] for r in rows if r["phase"] == "mle"), default=0)
    xs = [r["step"] + (mle_end if r["phase"] != "mle" else 0) for r in rows]
    ax = axes[0][0]
    curves = (("nll_test", "NLL-test", "s--"),) if text else (
        ("nll_oracle", "NLL-oracle", "o-"), ("nll_test", "NLL-test", "s--"))
    for key, label, style in curves:
        ax.plot(xs, [r[key] for r in rows], style, ms=3, label=label)
    ax.set_ylabel("mean per-token NLL (nats)")
    if text:
        bleu_ax = axes[0][1]
        for n in BLEU_ORDERS:
            (line,) = bleu_ax.plot(xs, [r[f"bleu{n}"] for r in rows], "o-", ms=3, label=f"BLEU-{n}")
            bleu_ax.plot(xs, [r[f"self_bleu{n}"] for r in rows], ":", color=line.get_color(),
                         label=f"Self-BLEU-{n}")  # fmt: skip
        bleu_ax.set_ylabel("BLEU (solid), Self-BLEU (dotted)")
        bleu_ax.legend(fontsize=7, ncol=2)
    for ax in axes[0]:
        ax.axvline(mle_end, color="grey", lw=1)
        ax.text(mle_end, ax.get_ylim()[1], " adversarial  ", ha="left", va="top", fontsize=8, color="grey")
        ax.text(mle_end, ax.get_ylim()[1], "MLE pre-training ", ha="right", va="top", fontsize=8, color="grey")
        ax.set_xlabel("MLE epochs, then adversarial rounds")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    if text:
        fig.suptitle(title, fontsize=10)
    else:
        axes[0][0].set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
