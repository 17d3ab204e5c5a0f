"""Sequence scores other than the discriminator, to plug into the environment's rewards (`scorer=`).

`BLEUScorer` is the paper's PG-BLEU baseline: the reward of a complete sequence is its BLEU against
the training set (Texygen's definition: the whole reference set, uniform weights, nltk smoothing
method 1), so policy gradient maximises BLEU directly instead of fooling a discriminator.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from seqgan_env.bleu import BLEUReference

__all__ = ["BLEUScorer", "strip_ids"]


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
