"""The oracle of the synthetic benchmark: a token LSTM whose parameters are drawn from N(0, 1).

Real data are the oracle's samples; NLL-oracle scores a generator's samples under it (SPEC 2.1). The
built-in default is a seeded random oracle (the paper's protocol, no file needed); the paper's own
oracle parameters load from its `.npz` file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig

PAPER_VOCAB_SIZE = 5000
PAPER_SEQ_LEN = 20
PAPER_HIDDEN = 32
PAPER_EMBED = 32

# The reference code's gate names, in torch's gate order (i, f, g=candidate c, o).
_GATES = ("i", "f", "c", "og")


def random_oracle(
    vocab_size: int = PAPER_VOCAB_SIZE,
    seq_len: int = PAPER_SEQ_LEN,
    seed: int = 0,
    embed_dim: int = PAPER_EMBED,
    hidden_dim: int = PAPER_HIDDEN,
) -> TokenLSTM:
    """A seeded oracle with every parameter ~ N(0, 1), as the paper's protocol draws it."""
    config = TokenLSTMConfig(vocab_size, seq_len, embed_dim, hidden_dim, start_token=0, init_std=1.0)
    oracle = TokenLSTM(config, generator=torch.Generator().manual_seed(seed))
    return oracle.requires_grad_(False).eval()


def load_oracle(path: str | Path, seq_len: int = PAPER_SEQ_LEN) -> TokenLSTM:
    """Load an oracle from the reference code's parameter file (SPEC 2.1 gives the layout).

    Any `.npz` with the 15 arrays `embedding Wi Ui bi Wf Uf bf Wog Uog bog Wc Uc bc Wo bo` of
    consistent shapes is accepted; the sizes are read from the arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"oracle parameter file not found: {path}")
    try:
        loaded = np.load(path)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a single .npy array, not an archive
            raise ValueError(f"it holds one {type(loaded).__name__}, not an .npz archive of named arrays")
        with loaded as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable .npz file of oracle parameters: {err}") from err
    embedding = _require(arrays, "embedding", ndim=2, path=path)
    vocab_size, embed_dim = embedding.shape
    hidden_dim = _require(arrays, "Ui", ndim=2, path=path).shape[0]
    expected = {"embedding": (vocab_size, embed_dim), "Wo": (hidden_dim, vocab_size), "bo": (vocab_size,)}
    for gate in _GATES:
        expected |= {f"W{gate}": (embed_dim, hidden_dim), f"U{gate}": (hidden_dim, hidden_dim)}
        expected[f"b{gate}"] = (hidden_dim,)
    missing = sorted(set(expected) - set(arrays))
    if missing:
        raise ValueError(f"{path} lacks oracle arrays {missing}; expected {sorted(expected)}")
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ValueError(f"{path}: array {name!r} has shape {arrays[name].shape}, expected {shape}")

    config = TokenLSTMConfig(vocab_size, seq_len, embed_dim, hidden_dim, start_token=0, init_std=1.0)
    oracle = TokenLSTM(config)
    tensor = {name: torch.from_numpy(np.asarray(a, dtype=np.float32)) for name, a in arrays.items()}
    with torch.no_grad():
        # Row-vector convention x @ W in the file; torch stores W.T.
        oracle.embedding.weight.copy_(tensor["embedding"])
        oracle.lstm.weight_ih_l0.copy_(torch.cat([tensor[f"W{g}"].T for g in _GATES]))
        oracle.lstm.weight_hh_l0.copy_(torch.cat([tensor[f"U{g}"].T for g in _GATES]))
        oracle.lstm.bias_ih_l0.copy_(torch.cat([tensor[f"b{g}"] for g in _GATES]))
        oracle.lstm.bias_hh_l0.zero_()
        oracle.output.weight.copy_(tensor["Wo"].T)
        oracle.output.bias.copy_(tensor["bo"])
    return oracle.requires_grad_(False).eval()


def _require(arrays: dict[str, np.ndarray], name: str, ndim: int, path: Path) -> np.ndarray:
    if name not in arrays:
        raise ValueError(f"{path} lacks the oracle array {name!r}")
    if arrays[name].ndim != ndim:
        raise ValueError(f"{path}: array {name!r} should have {ndim} dimensions, has shape {arrays[name].shape}")
    return arrays[name]
