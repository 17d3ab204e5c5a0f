"""Evaluation of a generator: NLL-oracle and NLL-test on the synthetic benchmark, NLL-test, BLEU-2..5
and Self-BLEU-2..5 on text (Texygen's definitions), as the rows of a run's metrics.csv (whose last
columns are the adversarial signal's diagnostics, train.diagnostics)."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from seqgan_env.bleu import BLEUReference, self_bleu
from seqgan_env.discriminator import SequenceScorer
from seqgan_env.finite import require_finite
from seqgan_env.metrics import nll_oracle, nll_test
from seqgan_env.rewards import MonteCarloSearch
from seqgan_env.text import Vocabulary
from seqgan_env.token_lstm import TokenLSTM
from train.diagnostics import (
    DENSE_SIGNAL_FIELDS,
    SIGNAL_FIELDS,
    SignalSettings,
    measure_signal,
    signal_scalars,
)
from train.rng import derive_seed, seeded_rng
from train.run_folder import RunFolder
from train.sources import Pretrained, strip_sequences

METRIC_FIELDS = (
    "phase", "step", "generator_updates", "nll_oracle", "nll_oracle_se", "nll_test", "nll_test_se",
    "temperature", "d_loss", "pg_loss", "elapsed_s", *SIGNAL_FIELDS,
)  # fmt: skip
BLEU_ORDERS = (2, 3, 4, 5)
TEXT_METRIC_FIELDS = (
    "phase", "step", "generator_updates", "nll_test", "nll_test_se",
    *(f"bleu{n}" for n in BLEU_ORDERS), *(f"self_bleu{n}" for n in BLEU_ORDERS),
    "temperature", "d_loss", "pg_loss", "elapsed_s", *SIGNAL_FIELDS,
)  # fmt: skip


def metric_fields(dense: bool) -> tuple[str, ...]:
    """The columns of an oracle run's metrics.csv; a dense-reward run's add the dense diagnostics'."""
    return (*METRIC_FIELDS, *DENSE_SIGNAL_FIELDS) if dense else METRIC_FIELDS


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
    """NLL-oracle of `n_samples` fresh samples and NLL-test on held-out data, both at `temperature`.
    A generator with a NaN or infinite weight gets no score: `NonFiniteError` (its samples, all one
    token, would score a fake-good NLL-oracle)."""
    require_finite("evaluation", generator=generator)
    generator.eval()
    quality = nll_oracle(oracle, generator, n_samples, rng, temperature)
    diversity = nll_test(generator, test_data, temperature=temperature)
    require_finite("evaluation", {"NLL-oracle": quality.mean, "NLL-test": diversity.mean})
    return Evaluation(quality.mean, quality.stderr, diversity.mean, diversity.stderr)


class PolicyEvalSettings(SignalSettings, Protocol):
    """What `evaluate_policy_round` reads from train/sb3.py's or train/rllib.py's config."""

    eval_samples: int
    temperature: float

    @property
    def reward_mode(self) -> str: ...


def evaluate_policy_round(
    cfg: PolicyEvalSettings,
    round_: int,
    generator: TokenLSTM,
    rollout_policy: TokenLSTM,
    scorer: SequenceScorer,
    pre: Pretrained,
    oracle: TokenLSTM,
    updates: int,
    losses: dict[str, float],
    elapsed_s: float,
    rows: list[dict[str, Any]],
    run: RunFolder,
    search: MonteCarloSearch | None = None,
) -> dict[str, str]:
    """An SB3 or RLlib learner's evaluation at adversarial round `round_`, with the REINFORCE path's code
    and train/adversarial.py's evaluation seeds (so round 0 is the same point for every method): appends
    the metrics row (with the signal diagnostics of `scorer`, the env's reward, their Q estimated
    through `search`), rewrites metrics.csv, logs eval/* and signal/* to TensorBoard and returns the
    progress bar's summary."""
    rng = seeded_rng(derive_seed(cfg.seed, "eval", "adversarial", round_), generator.device)
    ev = evaluate(generator, oracle, pre.test, cfg.eval_samples, rng, cfg.temperature)
    dense = cfg.reward_mode == "dense"
    signal = measure_signal(cfg, round_, generator, rollout_policy, scorer, pre.test, oracle,
                            monte_carlo=cfg.reward_mode != "terminal", dense=dense,
                            search=search)  # fmt: skip
    rows.append({
        "phase": "adversarial", "step": round_, "generator_updates": updates, **asdict(ev),
        "temperature": cfg.temperature, "d_loss": losses["d_loss"], "pg_loss": losses["pg_loss"],
        "elapsed_s": round(elapsed_s, 1), **signal,
    })  # fmt: skip
    run.write_metrics(rows, metric_fields(dense))
    scalars = {"eval/nll_oracle": ev.nll_oracle, "eval/nll_test": ev.nll_test, **signal_scalars(signal)}
    run.log_scalars(scalars, round_)
    return {"nll_oracle": f"{ev.nll_oracle:.3f}", "nll_test": f"{ev.nll_test:.3f}"}


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
    other samples, `self_bleu_samples` of them (seeded subset; None: all) scored as hypotheses. A
    generator with a NaN or infinite weight gets no score: `NonFiniteError`."""
    require_finite("evaluation", generator=generator)
    generator.eval()
    nll = nll_test(generator, test_data, pad_id=pad_id, temperature=temperature)
    samples = strip_sequences(generator.sample(n_samples, rng, temperature, eos_id=eos_id, pad_id=pad_id),
                              eos_id, pad_id)  # fmt: skip
    bleus = [reference.corpus_mean_bleu(samples, n) for n in BLEU_ORDERS]
    selfs = [self_bleu(samples, n, max_sentences=self_bleu_samples) for n in BLEU_ORDERS]
    return TextEvaluation(nll.mean, nll.stderr, *bleus, *selfs)


def real_text_scores(
    test_data: torch.Tensor, n_sentences: int, self_bleu_samples: int | None, eos_id: int | None,
    pad_id: int | None, seed: int = 0,
) -> dict[str, float]:
    """The yardstick of a text run's BLEU and Self-BLEU: the held-out lines scored as `evaluate_text`
    scores the generator's samples, real lines in place of generated ones. BLEU-n: each of (a seeded
    subset of at most) `n_sentences` held-out lines against all the others; Self-BLEU-n: `n_sentences`
    held-out lines (the same subset) against each other, `self_bleu_samples` of them scored. With no
    more than `n_sentences` held-out lines the two are the same quantity. NaN with fewer than 2 lines."""
    lines = strip_sequences(test_data, eos_id, pad_id)
    if len(lines) < 2:
        return {f"{kind}{n}": math.nan for kind in ("bleu", "self_bleu") for n in BLEU_ORDERS}
    chosen = random.Random(seed).sample(range(len(lines)), min(n_sentences, len(lines)))
    subset = [lines[i] for i in sorted(chosen)]  # self_bleu's own choice of hypotheses below
    bleus = {f"bleu{n}": self_bleu(lines, n, max_sentences=n_sentences, seed=seed) for n in BLEU_ORDERS}
    selfs = {f"self_bleu{n}": self_bleu(subset, n, max_sentences=self_bleu_samples, seed=seed)
             for n in BLEU_ORDERS}  # fmt: skip
    return {**bleus, **selfs}


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
        dense: bool = False,
    ) -> None:
        if (oracle is None) == (vocabulary is None):
            raise ValueError("an Evaluator needs an oracle (oracle runs) or a vocabulary (text runs)")
        self.oracle, self.vocabulary, self.temperature = oracle, vocabulary, temperature
        self.eval_samples, self.bleu_samples = eval_samples, bleu_samples
        self.self_bleu_samples = self_bleu_samples
        self.dense = dense  # a dense-reward run: its metrics.csv has the dense diagnostics' column too
        self._reference: tuple[torch.Tensor, BLEUReference] | None = None  # (test data, its BLEU references)

    @property
    def fields(self) -> tuple[str, ...]:
        """The columns of the run's metrics.csv."""
        return metric_fields(self.dense) if self.vocabulary is None else TEXT_METRIC_FIELDS

    def yardstick(self, test_data: torch.Tensor) -> list[dict[str, Any]]:
        """A text run's metrics row of the real held-out lines' own BLEU-2..5 and Self-BLEU-2..5
        (phase "real", `real_text_scores`), the reference beside the generator's; none for oracle runs."""
        if self.vocabulary is None:
            return []
        scores = real_text_scores(test_data, self.bleu_samples, self.self_bleu_samples,
                                  self.vocabulary.eos_id, self.vocabulary.pad_id)  # fmt: skip
        return [{"phase": "real", "step": 0, "generator_updates": 0, **scores}]

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


def run_summary(
    label: str, rows: list[dict[str, Any]], rounds: int, stage: str, stage_s: float, total_s: float,
    path: Path,
) -> str:
    """The closing line of an SB3 or RLlib run: NLL-oracle and NLL-test from the adversarial phase's first
    evaluation to its last, the rounds, the times and where the results are."""
    start = next(r for r in rows if r["phase"] == "adversarial")
    end = rows[-1]
    return (f"{label}: NLL-oracle {start['nll_oracle']:.3f} -> {end['nll_oracle']:.3f} "
            f"(+-{end['nll_oracle_se']:.3f}), NLL-test {start['nll_test']:.3f} -> {end['nll_test']:.3f} "
            f"after {rounds} rounds; {stage} stage {stage_s / 60:.1f} min, total {total_s / 60:.1f} min; "
            f"results in {path}")  # fmt: skip
