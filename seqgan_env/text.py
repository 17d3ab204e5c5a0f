"""Turn a plain-text corpus (one sentence per line) into fixed-length token-id arrays.

Id layout (fixed, so the environment and the model agree without configuration)::

    0            <bos>  start token fed as the generator's first input; never in data
    1            <eos>  end of sentence, emitted by the model to finish early
    2            <unk>  any token outside the vocabulary
    3 .. V-1     ordinary tokens, most frequent first (ties: first occurrence)
    V            padding (``pad_id == size``), NOT an action: the environment pads
                 observations with V, one past the model's action space 0..V-1

``Vocabulary.size`` is V, the model's action space (bos/eos/unk included, pad not).

Normalisation (what a round trip gives back): Unicode NFC, then at word level
whitespace-split and re-joined with single spaces; at char level leading/trailing
whitespace is stripped and every code point (inner spaces included) is a token.
Data tokens that spell a special ("<bos>", "<eos>", "<unk>", "<pad>") map to unk, so
bos and eos never occur inside a data sentence.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "SPECIAL_TOKENS",
    "UNK_ID",
    "Corpus",
    "CorpusError",
    "Vocabulary",
    "VocabularyTooLargeError",
    "build_vocabulary",
    "check_fits",
    "decode",
    "encode",
    "load_corpus",
    "normalize",
    "tokenize",
]

Level = Literal["word", "char"]
BOS_ID, EOS_ID, UNK_ID = 0, 1, 2
SPECIAL_TOKENS: tuple[str, ...] = ("<bos>", "<eos>", "<unk>")
_PAD_TOKEN = "<pad>"  # never stored: pad is id V, outside the vocabulary
_RESERVED = frozenset(SPECIAL_TOKENS) | {_PAD_TOKEN}
_FORMAT = "seqgan_env.vocabulary"
_VERSION = 1


class CorpusError(ValueError):
    """A corpus file or its contents cannot be used (missing, empty, binary, ...)."""


class VocabularyTooLargeError(ValueError):
    """The vocabulary has more ids than the model's action space."""


def _check_level(level: str) -> Level:
    if level not in ("word", "char"):
        raise ValueError(f"level must be 'word' or 'char', got {level!r}")
    return level  # type: ignore[return-value]


def normalize(line: str, level: Level = "word") -> str:
    """Canonical form of a line: what ``decode(encode(line))`` returns when nothing is lost."""
    _check_level(level)
    line = unicodedata.normalize("NFC", line)
    return " ".join(line.split()) if level == "word" else line.strip()


def tokenize(line: str, level: Level = "word") -> list[str]:
    """Tokens of a normalised line: whitespace-separated words or code points."""
    text = normalize(line, level)
    if level == "char":
        return list(text)
    return text.split(" ") if text else []


@dataclass(frozen=True)
class Vocabulary:
    """Tokens by id (specials first, see module docstring) and the text level.

    Frozen: the token->id index is built once and must not go stale.
    """

    tokens: tuple[str, ...]
    level: Level = "word"
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tokens = tuple(self.tokens)
        _check_level(self.level)
        if tokens[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise ValueError(f"vocabulary must start with the special tokens {SPECIAL_TOKENS}")
        for t in tokens:
            if not isinstance(t, str) or not t:
                raise ValueError(f"tokens must be non-empty strings, got {t!r}")
        index = {t: i for i, t in enumerate(tokens)}
        if len(index) != len(tokens):
            raise ValueError("vocabulary tokens must be unique")
        if _PAD_TOKEN in index:
            raise ValueError(f"{_PAD_TOKEN!r} must not be a vocabulary token (pad is id V)")
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "_index", index)

    @property
    def size(self) -> int:
        """V: number of ids the model can emit (0..V-1, specials included, pad excluded)."""
        return len(self.tokens)

    @property
    def pad_id(self) -> int:
        """Padding id == V, one past the action space (matches the environment)."""
        return len(self.tokens)

    @property
    def bos_id(self) -> int:
        return BOS_ID

    @property
    def eos_id(self) -> int:
        return EOS_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    def __len__(self) -> int:
        return len(self.tokens)

    def id_of(self, token: str) -> int:
        """Id of a data token; unknown tokens and spelled-out specials give ``unk_id``."""
        if token in _RESERVED:
            return UNK_ID
        return self._index.get(token, UNK_ID)

    def to_dict(self) -> dict[str, Any]:
        """Plain-types form (str/int/list), safe inside a ``weights_only=True`` checkpoint."""
        return {"format": _FORMAT, "version": _VERSION, "level": self.level,
                "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocabulary:
        """Inverse of ``to_dict``; raises ``ValueError`` on anything else."""
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"not a vocabulary dict (expected format={_FORMAT!r})")
        if data.get("version") != _VERSION:
            raise ValueError(f"unsupported vocabulary version {data.get('version')!r}, "
                             f"expected {_VERSION}")
        tokens = data.get("tokens")
        if not isinstance(tokens, list):
            raise ValueError("vocabulary dict needs a 'tokens' list")
        return cls(tuple(tokens), data.get("level", "word"))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary as UTF-8 JSON."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Read a vocabulary written by ``save``."""
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError as e:
            raise CorpusError(f"vocabulary file not found: {path}") from e
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a UTF-8 JSON vocabulary file: {e}") from e
        return cls.from_dict(data)


@dataclass
class Corpus:
    """Encoded train/test splits (int64 ``[N, seq_len]``, pad = ``vocab.pad_id``)."""

    train: np.ndarray
    test: np.ndarray
    vocab: Vocabulary
    seq_len: int


def _check_max_size(max_size: object) -> None:
    """``max_size`` is None or an int that leaves room for ordinary tokens."""
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                 or max_size <= len(SPECIAL_TOKENS)):
        raise ValueError(f"max_size must be an int > {len(SPECIAL_TOKENS)} (the special "
                         f"tokens {SPECIAL_TOKENS} are included in it), got {max_size!r}")


def _vocabulary_from_tokens(
    token_lists: Iterable[Sequence[str]], level: Level, max_size: int | None
) -> Vocabulary:
    """Count tokens and keep the most frequent (ties: first occurrence) within ``max_size``."""
    _check_max_size(max_size)
    counts: Counter[str] = Counter()
    for tokens in token_lists:
        counts.update(t for t in tokens if t not in _RESERVED)
    # Counter keeps first-insertion order and sorted() is stable: ties by first occurrence.
    ordered = sorted(counts, key=lambda t: -counts[t])
    if max_size is not None:
        ordered = ordered[: max_size - len(SPECIAL_TOKENS)]
    return Vocabulary(SPECIAL_TOKENS + tuple(ordered), level)


def build_vocabulary(
    lines: Iterable[str], level: Level = "word", max_size: int | None = None
) -> Vocabulary:
    """Vocabulary of ``lines``; ``max_size`` caps V (specials included), the rest -> unk."""
    _check_level(level)
    return _vocabulary_from_tokens((tokenize(line, level) for line in lines), level, max_size)


def _encode_tokens(tokens: Sequence[str], vocab: Vocabulary, seq_len: int) -> list[int]:
    ids = [vocab.id_of(t) for t in tokens[:seq_len]]
    if len(ids) < seq_len:
        ids.append(vocab.eos_id)
        ids.extend([vocab.pad_id] * (seq_len - len(ids)))
    return ids


def _check_seq_len(seq_len: object) -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be an int >= 1, got {seq_len!r}")
    return seq_len


def encode(line: str, vocab: Vocabulary, seq_len: int) -> list[int]:
    """Exactly ``seq_len`` ids: the tokens, then eos and pads if shorter, else truncated.

    A line of exactly ``seq_len`` tokens or more gets no eos (there is no room).
    """
    _check_seq_len(seq_len)
    return _encode_tokens(tokenize(line, vocab.level), vocab, seq_len)


def decode(ids: Iterable[int], vocab: Vocabulary) -> str:
    """Text of ``ids`` up to the first eos or pad; unk (and a stray bos) show as their names."""
    out = []
    for raw in ids:
        i = int(raw)
        if i == vocab.eos_id or i == vocab.pad_id:
            break
        if not 0 <= i < vocab.size:
            raise ValueError(f"id {i} is outside the vocabulary (0..{vocab.size - 1}, "
                             f"pad {vocab.pad_id})")
        out.append(vocab.tokens[i])
    return (" " if vocab.level == "word" else "").join(out)


def check_fits(vocab: Vocabulary, model_vocab_size: int) -> None:
    """Raise if the vocabulary has more ids than the model's action space.

    The data's pad id is ``vocab.size``; the environment pads with the model's V, so
    the two agree exactly when ``model_vocab_size == vocab.size`` (recommended).
    """
    if vocab.size > model_vocab_size:
        raise VocabularyTooLargeError(
            f"vocabulary has {vocab.size} ids (bos/eos/unk included) but the model's "
            f"vocabulary holds only {model_vocab_size}; rebuild it with "
            f"max_size={model_vocab_size} or enlarge the model")


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _file_kind(mode: int) -> str:
    """What a non-regular file is, for an error message."""
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"))  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _read_lines(path: str | os.PathLike[str]) -> list[str]:
    """Non-blank lines of a UTF-8 text file, with clear errors for unusable files.

    Only a regular file is opened: a FIFO or a device would block the read forever (or never end).
    """
    if not isinstance(path, (str, os.PathLike)):  # an int would open that file descriptor
        raise TypeError(f"corpus path must be a str or os.PathLike, got {path!r} ({type(path).__name__})")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as e:
        raise CorpusError(f"corpus file not found: {path}") from e
    except OSError as e:  # e.g. a path through a file, too long, or a directory we may not search
        raise CorpusError(f"cannot access corpus file {path}: {e.strerror or e}") from e
    if stat.S_ISDIR(mode):
        raise CorpusError(f"corpus path is a directory, expected a text file: {path}")
    if not stat.S_ISREG(mode):
        raise CorpusError(f"corpus path is {_file_kind(mode)}, expected a regular text file: {path}")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as e:
        raise CorpusError(f"corpus file not found: {path}") from e
    except PermissionError as e:
        raise CorpusError(f"corpus file is not readable (permission denied): {path}") from e
    except IsADirectoryError as e:
        raise CorpusError(f"corpus path is a directory, expected a text file: {path}") from e
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {path}: {e.strerror or e}") from e
    nul = data.find(b"\x00")
    if nul >= 0:
        raise CorpusError(f"{path} contains a NUL byte at offset {nul}; it looks binary, "
                          "expected a UTF-8 text file")
    try:
        text = data.decode("utf-8-sig")  # tolerate a UTF-8 byte-order mark
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path} is not valid UTF-8 (byte offset {e.start}: {e.reason}); "
                          "expected a UTF-8 text file, one sentence per line") from e
    lines = [ln for ln in _LINE_BREAK.split(text) if ln.strip()]
    if not lines:
        raise CorpusError(f"{path} is empty or has only blank lines; expected one "
                          "sentence per line")
    return lines


def load_corpus(
    path: str | os.PathLike[str],
    level: Level = "word",
    seq_len: int = 20,
    max_size: int | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    *,
    model_vocab_size: int | None = None,
) -> Corpus:
    """Read, tokenise and encode a corpus, then split it into train/test (seeded).

    Blank lines are skipped. The vocabulary is built from all lines (as Texygen does),
    counting only the first ``seq_len`` tokens of each line, since later ones are never
    encoded. ``model_vocab_size`` (optional) is checked with ``check_fits``.
    """
    _check_level(level)
    _check_seq_len(seq_len)
    numbers = (int, float, np.integer, np.floating)
    number = isinstance(test_fraction, numbers) and not isinstance(test_fraction, bool)
    if not number or not math.isfinite(test_fraction) or not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be a number in [0, 1), got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if model_vocab_size is not None and (isinstance(model_vocab_size, bool)
                                         or not isinstance(model_vocab_size, (int, np.integer))):
        raise ValueError(f"model_vocab_size must be an int, got {model_vocab_size!r}")
    _check_max_size(max_size)  # before the file is read
    token_lists = [tokenize(line, level)[:seq_len] for line in _read_lines(path)]
    vocab = _vocabulary_from_tokens(token_lists, level, max_size)
    if vocab.size == len(SPECIAL_TOKENS):
        raise CorpusError(f"{path} has no ordinary tokens: every token spells one of the reserved "
                          f"{' '.join(sorted(_RESERVED))}, which all read as <unk>")  # fmt: skip
    if model_vocab_size is not None:
        check_fits(vocab, model_vocab_size)
    ids = np.array([_encode_tokens(t, vocab, seq_len) for t in token_lists], dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(ids))
    # Keep >= 1 train line. int(): round() of a numpy float is a float before numpy 2.
    n_test = min(int(round(len(ids) * test_fraction)), len(ids) - 1)  # noqa: RUF046
    return Corpus(train=ids[order[n_test:]], test=ids[order[:n_test]], vocab=vocab,
                  seq_len=seq_len)
