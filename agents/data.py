"""Real text as training data: a corpus file split into training and held-out sequences.

The oracle runs of the synthetic benchmark sample their data from the oracle; a text run reads a
plain-text file (one sequence per line) through `seqgan_env.text` instead, and then has a
vocabulary, an end-of-sequence id and padding.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from seqgan_env.scorers import strip_ids
from seqgan_env.text import CorpusError, Vocabulary, decode, load_corpus


@dataclass
class TextData:
    """A corpus's training (`real`) and held-out (`test`) sequences [N, T] and its vocabulary.

    Sequences end with `<eos>` and are padded with `pad_id` = V when shorter than T.
    """

    real: torch.Tensor
    test: torch.Tensor
    vocabulary: Vocabulary

    @property
    def eos_id(self) -> int:
        return self.vocabulary.eos_id

    @property
    def pad_id(self) -> int:
        return self.vocabulary.pad_id


def load_text_data(
    path: str | os.PathLike[str],
    level: str = "word",
    seq_len: int = 20,
    max_vocab: int | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    expected_vocabulary: str | os.PathLike[str] | None = None,
) -> TextData:
    """Read a corpus, build its vocabulary (at most `max_vocab` ids) and split off `test_fraction`
    of the lines (seeded); errors (`CorpusError`, `ValueError`) say what is wrong with the file.
    Where the file `expected_vocabulary` exists (a resumed run's vocab.json), the corpus must still
    give that vocabulary."""
    if expected_vocabulary is not None and not isinstance(expected_vocabulary, (str, os.PathLike)):
        raise TypeError(f"expected_vocabulary must be a path (str or os.PathLike), got {expected_vocabulary!r}")
    corpus = load_corpus(path, level, seq_len, max_vocab, test_fraction, seed)  # type: ignore[arg-type]
    if len(corpus.test) == 0:
        raise CorpusError(
            f"{path}: no held-out lines ({len(corpus.train)} line(s) in all, test fraction {test_fraction}); "
            "NLL-test and BLEU need some: use a larger corpus or test fraction"
        )
    if expected_vocabulary is not None and os.path.isfile(expected_vocabulary):
        if Vocabulary.load(expected_vocabulary) != corpus.vocab:
            raise CorpusError(f"{path} no longer gives the vocabulary {expected_vocabulary}: the corpus or "
                              "the options changed since that run started")
    return TextData(torch.from_numpy(corpus.train), torch.from_numpy(corpus.test), corpus.vocab)


def strip_sequences(
    sequences: torch.Tensor, eos_id: int | None, pad_id: int | None
) -> list[tuple[int, ...]]:
    """Each row of `sequences` [N, T] as its ids up to the first end-of-sequence or padding."""
    return [strip_ids(row, eos_id, pad_id) for row in sequences.cpu().tolist()]


def decode_lines(sequences: Iterable[torch.Tensor], vocabulary: Vocabulary | None) -> list[str]:
    """Generated sequences as lines: text through the vocabulary, else space-separated token ids."""
    if vocabulary is None:
        return [" ".join(map(str, row.tolist())) for row in sequences]
    return [decode(row.tolist(), vocabulary) for row in sequences]
