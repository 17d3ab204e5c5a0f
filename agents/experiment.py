"""Experiment bookkeeping shared by the training scripts: the run folder, evaluation, metrics, plots.

A run folder holds `config.json`, `metrics.csv` (a row per evaluation), TensorBoard scalars under
`tb/`, checkpoints (written atomically), `curve.png` and `samples.txt`. The metrics rows live in the
checkpoint too, so a resumed run rewrites `metrics.csv` from its last checkpoint and every
evaluation appears exactly once.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqgan_env.metrics import nll_oracle, nll_test
from seqgan_env.token_lstm import TokenLSTM

METRIC_FIELDS = (
    "phase", "step", "generator_updates", "nll_oracle", "nll_oracle_se", "nll_test", "nll_test_se",
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


class RunFolder:
    """One experiment's folder: config, metrics, TensorBoard, checkpoints, plot, samples."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer: Any = None

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def checkpoint(self, name: str) -> Path:
        return self.path / f"{name}.pt"

    def create(self, config: dict[str, Any]) -> None:
        """Make a new run folder; refuses an existing one so nothing is partly overwritten."""
        if self.path.exists():
            raise FileExistsError(
                f"run folder {self.path} already exists: pass --resume {self.path} to continue it, "
                "or choose another --name"
            )
        self.path.mkdir(parents=True)
        self.config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    def saved_config(self) -> dict[str, Any]:
        """The config a run folder was made with, or a clear error if it is not a run folder."""
        if not self.config_path.is_file():
            raise FileNotFoundError(f"{self.path} is not a run folder (no config.json)")
        return json.loads(self.config_path.read_text())

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite metrics.csv from all rows so far (the rows also live in the checkpoint)."""
        tmp = self.path / "metrics.csv.tmp"
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore")
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
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def write_samples(self, samples: torch.Tensor, decode: Any = None) -> None:
        """Generated sequences, one per line (token ids, or text through `decode`)."""
        lines = [decode(row) if decode else " ".join(map(str, row.tolist())) for row in samples]
        (self.path / "samples.txt").write_text("\n".join(lines) + "\n")


def plot_learning_curve(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """NLL-oracle and NLL-test against training progress, MLE and adversarial phases marked (as the
    paper's Figure 2): x is MLE epochs, then adversarial rounds (one generator update each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    mle_end = max((r["step"] for r in rows if r["phase"] == "mle"), default=0)
    xs = [r["step"] + (mle_end if r["phase"] != "mle" else 0) for r in rows]
    for key, label, style in (("nll_oracle", "NLL-oracle", "o-"), ("nll_test", "NLL-test", "s--")):
        ax.plot(xs, [r[key] for r in rows], style, ms=3, label=label)
    ax.axvline(mle_end, color="grey", lw=1)
    ax.text(mle_end, ax.get_ylim()[1], " adversarial  ", ha="left", va="top", fontsize=8, color="grey")
    ax.text(mle_end, ax.get_ylim()[1], "MLE pre-training ", ha="right", va="top", fontsize=8, color="grey")
    ax.set_xlabel("MLE epochs, then adversarial rounds")
    ax.set_ylabel("mean per-token NLL (nats)")
    ax.set_title(title, fontsize=10)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
