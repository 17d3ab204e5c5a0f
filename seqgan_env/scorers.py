"""Sequence scores other than the discriminator, to plug into the environment's rewards (`scorer=`).

`BLEUScorer` is the paper's PG-BLEU baseline: the reward of a complete sequence is its BLEU against
the training set (Texygen's definition: the whole reference set, uniform weights, nltk smoothing
method 1), so policy gradient maximises BLEU directly instead of fooling a discriminator.

`OracleScorer` is the synthetic benchmark's upper bound on the adversarial signal: the reward of a
sequence is a monotone map of the oracle's own per-token likelihood of it (the ground truth of
quality that NLL-oracle measures), i.e. what a learner could reach with a perfect discriminator.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from seqgan_env.bleu import BLEUReference
from seqgan_env.metrics import sequence_nll
from seqgan_env.token_lstm import TokenLSTM

__all__ = ["BLEUScorer", "OracleScorer", "strip_ids"]


def strip_ids(
    row: Sequence[int] | np.ndarray | torch.Tensor, eos_id: int | None, pad_id: int | None
) -> tuple[int, ...]:
    """The ids of one sequence up to (not including) its first `eos_id` or `pad_id`."""
    ids = row.tolist() if hasattr(row, "tolist") else list(row)
    for k, i in enumerate(ids):
        if i == eos_id or i == pad_id:
            return tuple(ids[:k])
    return tuple(ids)


class BLEUScorer:
    """BLEU-`n` of each sequence against a fixed reference set (e.g. the training data), in [0, 1].

    Implements the `SequenceScorer` protocol: `score(sequences [B, T]) -> [B]`. Sequences and
    references are token ids, compared up to their first `eos_id` / `pad_id` (the end-of-sequence
    is not a token of the sentence). The default order n = 4 is standard BLEU (BLEU-4); lower orders
    give denser rewards on small data. The reference n-gram counts are prepared once
    (`BLEUReference`), and scores of recently seen sequences are cached: the Monte Carlo search scores
    many identical completions.
    """

    def __init__(
        self,
        references: torch.Tensor | np.ndarray | Iterable[Sequence[int]],
        n: int = 4,
        eos_id: int | None = None,
        pad_id: int | None = None,
        cache_size: int = 200_000,
    ) -> None:
        self.n, self.eos_id, self.pad_id = n, eos_id, pad_id
        self.cache_size = cache_size
        self.set_references(references)

    def set_references(self, references: torch.Tensor | np.ndarray | Iterable[Sequence[int]]) -> None:
        """Score against these reference sequences from now on (e.g. training data loaded later)."""
        rows = references.tolist() if isinstance(references, (torch.Tensor, np.ndarray)) else references
        self.reference = BLEUReference((strip_ids(r, self.eos_id, self.pad_id) for r in rows), max_n=self.n)
        self._cache: dict[tuple[int, ...], float] = {}

    def sentence_bleu(self, sequence: Sequence[int] | np.ndarray | torch.Tensor) -> float:
        """BLEU-n of one sequence (ids, possibly padded) against the references."""
        ids = strip_ids(sequence, self.eos_id, self.pad_id)
        value = self._cache.get(ids)
        if value is None:
            value = self.reference.sentence_bleu(ids, self.n)
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[ids] = value
        return value

    @torch.inference_mode()
    def score(self, sequences: torch.Tensor) -> torch.Tensor:
        """BLEU-n of each row of `sequences` [B, T]: float32 [B] on the same device."""
        values = [self.sentence_bleu(row) for row in sequences.cpu().tolist()]
        return torch.tensor(values, dtype=torch.float32, device=sequences.device)

    def __repr__(self) -> str:
        return (f"BLEUScorer(n={self.n}, references={self.reference.num_references}, "
                f"eos_id={self.eos_id}, pad_id={self.pad_id})")

    def __getstate__(self) -> dict[str, Any]:  # deep copies (gymnasium.make) need not copy the cache
        return {**self.__dict__, "_cache": {}}


# At its defaults OracleScorer maps the reference NLL to sigmoid(+LOGIT_AT_REFERENCE) = 0.9 and the
# uniform generator's NLL to sigmoid(-LOGIT_AT_REFERENCE) = 0.1.
LOGIT_AT_REFERENCE = math.log(9.0)


class OracleScorer:
    """The oracle's verdict on each sequence, in [0, 1]: `sigmoid((centre - NLL) / width)`, where
    NLL is the oracle's mean per-token negative log-likelihood of the sequence
    (`seqgan_env.metrics.sequence_nll`, the quantity NLL-oracle averages).

    Implements the `SequenceScorer` protocol, so `scorer=OracleScorer(oracle)` runs the environment's
    rewards (and every agent) on the benchmark's ground truth instead of a discriminator: the upper
    bound of what a perfect discriminator's signal could give.

    Why this squashing: the score must be exactly monotone decreasing in the per-token NLL and lie in
    [0, 1]. `exp(-NLL)` (the per-token geometric-mean probability) qualifies but is tiny and flat
    where it matters (about 1/5000 per token at V 5000), so rewards would carry almost no signal. A
    logistic of the standardised NLL puts its steep part between the two natural reference points of
    the benchmark: `reference` = the mean NLL of the oracle's own samples (its entropy rate: the best a
    generator can do on average) or of given `references` (e.g. the real training data), and
    `uniform` = the mean NLL of uniformly random sequences (the NLL-oracle of a uniform generator).
    By default `centre` is their midpoint and `width = (uniform - reference) / (2 ln 9)`, so the
    oracle's typical sample scores 0.9 and a uniform one 0.1; either can be given instead.

    Sequences are read up to their end: positions holding `pad_id`, and positions after the first
    `eos_id` (the end-of-sequence itself counts, it is a choice the oracle has a probability for), are
    left out of the mean. Note that a per-token mean does not penalise short sequences by itself.
    One teacher-forced pass of the oracle in inference mode per call.
    """

    def __init__(
        self,
        oracle: TokenLSTM,
        centre: float | None = None,
        width: float | None = None,
        *,
        references: torch.Tensor | None = None,
        n_samples: int = 1000,
        seed: int = 0,
        eos_id: int | None = None,
        pad_id: int | None = None,
    ) -> None:
        if not isinstance(oracle, TokenLSTM):
            raise TypeError(f"oracle must be a TokenLSTM, got {type(oracle).__name__}")
        V = oracle.config.vocab_size
        for name, value in (("centre", centre), ("width", width)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if width is not None and width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        if eos_id is not None and not 0 <= eos_id < V:
            raise ValueError(f"eos_id must be a vocabulary id in [0, {V}), got {eos_id}")
        if pad_id is not None and pad_id == eos_id:
            raise ValueError(f"pad_id and eos_id must differ, both are {pad_id}")
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
            raise ValueError(f"n_samples must be an int >= 2, got {n_samples!r}")
        self.oracle = oracle
        self.eos_id, self.pad_id = eos_id, pad_id
        self.reference_nll = self.uniform_nll = float("nan")
        if centre is None or width is None:
            self.reference_nll, self.uniform_nll = self._reference_points(references, n_samples, seed)
            if centre is None:
                centre = (self.reference_nll + self.uniform_nll) / 2
            if width is None:
                width = (self.uniform_nll - self.reference_nll) / (2 * LOGIT_AT_REFERENCE)
                if not width > 0:
                    raise ValueError(f"the reference sequences' NLL {self.reference_nll:.4f} is not below "
                                     f"the uniform NLL {self.uniform_nll:.4f}: give width")  # fmt: skip
        self.centre, self.width = float(centre), float(width)

    def _reference_points(
        self, references: torch.Tensor | None, n_samples: int, seed: int
    ) -> tuple[float, float]:
        """Mean per-token NLL of the references (default: `n_samples` oracle samples) and of
        `n_samples` uniformly random sequences, drawn with a CPU generator seeded by `seed`."""
        V, T = self.oracle.config.vocab_size, self.oracle.config.seq_len
        rng = torch.Generator(device="cpu").manual_seed(seed)
        if references is None:
            sample_rng = torch.Generator(device=self.oracle.device).manual_seed(seed)
            references = self.oracle.sample(n_samples, sample_rng, eos_id=self.eos_id, pad_id=self.pad_id)
        elif not isinstance(references, torch.Tensor) or references.ndim != 2 or len(references) == 0:
            raise ValueError("references must be a non-empty [N, T] tensor of token ids, got "
                             f"{getattr(references, 'shape', type(references).__name__)}")  # fmt: skip
        uniform = torch.randint(0, V, (n_samples, T), generator=rng)
        return self.nll(references).double().mean().item(), self.nll(uniform).double().mean().item()

    def nll(self, sequences: torch.Tensor) -> torch.Tensor:
        """The oracle's mean per-token NLL of each row of `sequences` [B, T], read up to its end: [B]
        on the oracle's device."""
        if sequences.ndim != 2 or sequences.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"sequences must be a [B, T] integer tensor, got {sequences.dtype} "
                             f"{tuple(sequences.shape)}")  # fmt: skip
        sequences = sequences.long()
        V = self.oracle.config.vocab_size
        pad = V if self.pad_id is None else self.pad_id  # V: one past the vocabulary, never a real token
        ignored = torch.zeros_like(sequences, dtype=torch.bool) if self.pad_id is None else sequences == pad
        if self.eos_id is not None:  # strictly after the first end-of-sequence
            is_eos = (sequences == self.eos_id).long()
            ignored |= (is_eos.cumsum(1) - is_eos) > 0
        kept = sequences[~ignored]
        if ((kept < 0) | (kept >= V)).any():
            raise ValueError(f"sequences hold ids outside the oracle's vocabulary [0, {V}) "
                             f"(padding {self.pad_id})")  # fmt: skip
        sequences = sequences.masked_fill(ignored, pad)
        use_pad = None if (self.pad_id is None and self.eos_id is None) else pad
        return sequence_nll(self.oracle, sequences, pad_id=use_pad)

    @torch.inference_mode()
    def score(self, sequences: torch.Tensor) -> torch.Tensor:
        """sigmoid((centre - NLL) / width) of each row of `sequences` [B, T]: float32 [B] in [0, 1]
        on the same device as `sequences` (computed in float64, so it never reverses the NLL order)."""
        nll = self.nll(sequences).double()
        return torch.sigmoid((self.centre - nll) / self.width).float().to(sequences.device)

    def __repr__(self) -> str:
        return (f"OracleScorer(centre={self.centre:.4f}, width={self.width:.4f}, "
                f"vocab_size={self.oracle.config.vocab_size}, eos_id={self.eos_id}, pad_id={self.pad_id})")
