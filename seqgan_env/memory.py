"""Sizes that cannot fit in this machine's memory are refused before anything is allocated.

Each caller estimates its largest buffers by the option (or argument) that sets them; `check_memory`
compares the sum with the machine's RAM and names the option to lower. `lstm_weights` and `cnn_weights`
count the models' weights, split by the size that multiplies them, so that a caller can name it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

SHARE = 0.8  # of the machine's RAM that the estimate may take
MAX_BYTES = 2**100  # a term is capped here before it is summed and shown: far beyond any machine, finite


def physical_memory() -> int | None:
    """Bytes of RAM on this machine, where the OS says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def lstm_weights(vocab_size: int, embed_dim: int, hidden_dim: int, outputs: int) -> tuple[int, int]:
    """Weights of a token LSTM (embedding, LSTM, output layer of `outputs` units): those the embedding
    size multiplies (the embedding, the LSTM's input weights), and the rest (the hidden size's)."""
    embedding = vocab_size * embed_dim + 4 * hidden_dim * embed_dim
    hidden = 4 * hidden_dim * (hidden_dim + 2) + (hidden_dim + 1) * outputs
    return embedding, hidden


def cnn_weights(vocab_size: int, embed_dim: int, filters: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """Weights of the CNN discriminator (its `vocab_size` + 1 embeddings, a convolution per (width,
    count) filter, a highway layer and a 2-way output): those the embedding size multiplies, and those
    the filter counts alone set."""
    pairs = list(filters)
    features = sum(n for _, n in pairs)
    embedding = (vocab_size + 1) * embed_dim + sum(w * n for w, n in pairs) * embed_dim
    return embedding, 2 * features * (features + 1) + 3 * features + 2


def sampling_bytes(n: int, vocab_size: int, seq_len: int) -> int:
    """Sampling `n` sequences (an evaluation): the softmax buffers of a [n, V] step, in chunks of at
    most 1024 rows, and the [n, T] tokens."""
    return 4 * 4 * min(n, 1024) * vocab_size + 8 * seq_len * n


def q_matrix_bytes(n: int, vocab_size: int, seq_len: int, n_rollouts: int) -> int:
    """The diagnostics' Q matrix of `n` sequences: every row's [V] sampling buffers at each of the T
    steps, and `n_rollouts` Monte Carlo completions of each prefix where the rewards search (else 0)."""
    return 4 * 4 * n * vocab_size * (n_rollouts + seq_len)


def activation_bytes(n: int, seq_len: int, width: int) -> int:
    """float32 activations of `width` features per token over `n` sequences (a discriminator scoring
    the diagnostics' samples)."""
    return 4 * n * seq_len * width


def check_memory(terms: Mapping[str, int | float]) -> None:
    """A one-line ValueError when the bytes in `terms` (keyed by the option that sets each) exceed
    `SHARE` of this machine's RAM, naming the largest term's option. Terms may be ints of any size."""
    total = physical_memory()
    capped = {k: float(min(v, MAX_BYTES)) for k, v in terms.items()}
    need = sum(capped.values())
    if total is not None and need > SHARE * total:
        biggest = max(capped, key=capped.__getitem__)
        raise ValueError(f"these sizes need about {_gib(need)} GiB, this machine has {_gib(total)} GiB: "
                         f"lower {biggest} (about {_gib(capped[biggest])} GiB)")  # fmt: skip


def _gib(size: float) -> str:
    """Bytes in GiB as the message shows them: one decimal, or three digits and an exponent when huge."""
    gib = size / 2**30
    return f"{gib:.1f}" if gib < 1e6 else f"{gib:.3g}"
