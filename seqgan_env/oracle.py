"""The oracle of the synthetic benchmark: a token LSTM whose parameters are drawn from N(0, 1).

Real data are the oracle's samples; NLL-oracle scores a generator's samples under it (SPEC 2.1). The
built-in default is a seeded random oracle (the paper's protocol, no file needed); the paper's own
oracle parameters load from an `.npz` file or straight from the reference repository's pickle
(`save/target_params_py3.pkl`), read by a restricted unpickler that admits numpy arrays only.

Convert the pickle once: `python -m seqgan_env.convert_oracle target_params_py3.pkl target_params.npz`.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from seqgan_env.files import write_atomically
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig

PAPER_VOCAB_SIZE = 5000
PAPER_SEQ_LEN = 20
PAPER_HIDDEN = 32
PAPER_EMBED = 32

# The reference code's gate names, in torch's gate order (i, f, g=candidate c, o).
_GATES = ("i", "f", "c", "og")

# The 15 arrays in the order of the reference pickle's list (target_lstm.py reads params[0..14]).
ORACLE_ARRAYS = (
    "embedding", "Wi", "Ui", "bi", "Wf", "Uf", "bf", "Wog", "Uog", "bog", "Wc", "Uc", "bc", "Wo", "bo",
)  # fmt: skip


def random_oracle(
    vocab_size: int = PAPER_VOCAB_SIZE,
    seq_len: int = PAPER_SEQ_LEN,
    seed: int = 0,
    embed_dim: int = PAPER_EMBED,
    hidden_dim: int = PAPER_HIDDEN,
) -> TokenLSTM:
    """A seeded oracle with every parameter ~ N(0, 1), as the paper's protocol draws it."""
    config = TokenLSTMConfig(vocab_size, seq_len, embed_dim, hidden_dim, start_token=0, init_std=1.0)
    oracle = TokenLSTM(config, rng=torch.Generator(device="cpu").manual_seed(seed))  # CPU: initialisation
    return oracle.requires_grad_(False).eval()


def load_oracle(path: str | Path, seq_len: int = PAPER_SEQ_LEN) -> TokenLSTM:
    """Load an oracle from a parameter file: an `.npz` or the reference code's pickle (SPEC 2.1's layout).

    Either holds the 15 arrays `embedding Wi Ui bi Wf Uf bf Wog Uog bog Wc Uc bc Wo bo` of consistent
    shapes (see `read_oracle_arrays`); the sizes are read from the arrays.
    """
    arrays = read_oracle_arrays(path)
    vocab_size, embed_dim = arrays["embedding"].shape
    hidden_dim = arrays["Ui"].shape[0]
    config = TokenLSTMConfig(vocab_size, seq_len, embed_dim, hidden_dim, start_token=0, init_std=1.0)
    oracle = TokenLSTM(config)
    tensor = {name: torch.from_numpy(a) for name, a in arrays.items()}
    with torch.no_grad():
        # Row-vector convention x @ W in the file; torch stores W.T.
        oracle.embedding.weight.copy_(tensor["embedding"])
        weight_ih, weight_hh, bias_ih, bias_hh = oracle.lstm.all_weights[0]
        weight_ih.copy_(torch.cat([tensor[f"W{g}"].T for g in _GATES]))
        weight_hh.copy_(torch.cat([tensor[f"U{g}"].T for g in _GATES]))
        bias_ih.copy_(torch.cat([tensor[f"b{g}"] for g in _GATES]))
        bias_hh.zero_()
        oracle.output.weight.copy_(tensor["Wo"].T)
        oracle.output.bias.copy_(tensor["bo"])
    return oracle.requires_grad_(False).eval()


def read_oracle_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The 15 oracle arrays of a parameter file, checked, as float32 in `ORACLE_ARRAYS` order.

    The format is told by content: a zip archive is an `.npz` of named arrays (extra names are ignored);
    anything else is read as a pickle of a list/tuple of the 15 arrays in the reference order, or a dict
    of them by name. Raises FileNotFoundError for a missing file, ValueError for anything unusable
    (unreadable, forbidden pickle content, missing arrays, wrong shapes or dtypes, NaN or inf).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"oracle parameter file not found: {path}")
    head = _read(path, 6)
    if head.startswith(b"PK") or head.startswith(b"\x93NUMPY"):
        arrays = _read_npz(path)
    else:
        arrays = _read_pickle(path, is_pickle=head.startswith(b"\x80"))
    return _check_arrays(arrays, path)


def _read(path: Path, size: int = -1) -> bytes:
    """The first `size` bytes of the file (-1: all); ValueError where the system refuses to read it
    (no permission, a device or /proc file that fails reads)."""
    try:
        with path.open("rb") as f:
            return f.read(size)
    except OSError as err:
        raise ValueError(f"oracle parameter file {path} cannot be read ({err.strerror or err})") from None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The named arrays of an `.npz` archive (numpy's own loader, pickled objects not allowed)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a single .npy array, not an archive
            raise ValueError(f"it holds one {type(loaded).__name__}, not an .npz archive of named arrays")
        with loaded as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable .npz file of oracle parameters: {err}") from err


class _ForbiddenPickleContent(ValueError):
    """A pickle asked for a global other than the few numpy arrays need."""


# ndarray.__reduce__ names numpy's array reconstructor; taking it from there fits numpy 1.x and 2.x.
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]


def _latin1_encode(text: Any, encoding: Any) -> bytes:
    """`_codecs.encode` as protocol-2 pickles of bytes use it: latin-1 text to bytes, nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _ForbiddenPickleContent(
            f"_codecs.encode is allowed on text with 'latin1' only, got {type(text).__name__}, {encoding!r}"
        )
    return text.encode("latin-1")


class OracleUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain containers, and refuses every other global.

    Admitted: numpy's `_reconstruct` (from `numpy.core.multiarray` or `numpy._core.multiarray`),
    `numpy.ndarray`, `numpy.dtype`, and `_codecs.encode` restricted to latin-1 (which Python 3 writes
    for bytes in protocol-2 pickles). Anything else raises ValueError naming the global, before it is
    imported or called, so a malicious `__reduce__` never runs.
    """

    _ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        """The admitted object for `module.name`; ValueError for any other global."""
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise _ForbiddenPickleContent(
                f"forbidden global {module}.{name} in the pickle (only numpy arrays are allowed)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        """Persistent ids are refused: an oracle pickle holds arrays only."""
        raise _ForbiddenPickleContent(f"forbidden persistent id {pid!r} in the pickle")


def _read_pickle(path: Path, is_pickle: bool) -> dict[str, Any]:
    """The arrays of a pickled list/tuple of 15 arrays (reference order) or dict of them by name."""
    data = _read(path)
    try:
        # latin1: a Python 2 pickle's numpy data are byte strings (numpy's recommended setting).
        obj = OracleUnpickler(io.BytesIO(data), encoding="latin1").load()
    except _ForbiddenPickleContent as err:
        raise ValueError(f"{path}: {err}") from None
    except Exception as err:
        what = "not a readable pickle" if is_pickle else "neither an .npz archive nor a readable pickle"
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        raise ValueError(f"{path} is {what} of oracle parameters ({reason})") from None
    if isinstance(obj, (list, tuple)):
        if len(obj) != len(ORACLE_ARRAYS):
            raise ValueError(
                f"{path}: the pickle holds a {type(obj).__name__} of {len(obj)} items, expected the "
                f"{len(ORACLE_ARRAYS)} arrays {' '.join(ORACLE_ARRAYS)}"
            )
        return dict(zip(ORACLE_ARRAYS, obj, strict=True))
    if isinstance(obj, dict):
        return {str(k): v for k, v in obj.items()}
    raise ValueError(
        f"{path}: the pickle holds a {type(obj).__name__}, expected a list of the {len(ORACLE_ARRAYS)} "
        "oracle arrays (or a dict of them by name)"
    )


def _check_arrays(arrays: dict[str, Any], path: Path) -> dict[str, np.ndarray]:
    """The 15 arrays as float32, after checking presence, type, dtype, shapes and finiteness."""
    missing = [name for name in ORACLE_ARRAYS if name not in arrays]
    if missing:
        raise ValueError(f"{path} lacks oracle arrays {missing}; expected {sorted(ORACLE_ARRAYS)}")
    for name in ORACLE_ARRAYS:
        a = arrays[name]
        if not isinstance(a, np.ndarray):
            raise ValueError(f"{path}: oracle array {name!r} is a {type(a).__name__}, expected a numpy array")
        if a.dtype.kind not in "fiu":
            raise ValueError(f"{path}: oracle array {name!r} has dtype {a.dtype}, expected float32")
    embedding = _require_ndim(arrays, "embedding", 2, path)
    vocab_size, embed_dim = embedding.shape
    hidden_dim = _require_ndim(arrays, "Ui", 2, path).shape[0]
    expected = {"embedding": (vocab_size, embed_dim), "Wo": (hidden_dim, vocab_size), "bo": (vocab_size,)}
    for gate in _GATES:
        expected |= {f"W{gate}": (embed_dim, hidden_dim), f"U{gate}": (hidden_dim, hidden_dim)}
        expected[f"b{gate}"] = (hidden_dim,)
    checked = {}
    for name in ORACLE_ARRAYS:
        shape = arrays[name].shape
        if shape != expected[name]:
            raise ValueError(f"{path}: array {name!r} has shape {shape}, expected {expected[name]}")
        if not np.isfinite(arrays[name]).all():
            n_nan, n_inf = int(np.isnan(arrays[name]).sum()), int(np.isinf(arrays[name]).sum())
            raise ValueError(
                f"{path}: array {name!r} holds {n_nan} NaN and {n_inf} infinite values, "
                "expected finite numbers"
            )
        with np.errstate(over="ignore"):
            checked[name] = np.ascontiguousarray(arrays[name], dtype=np.float32)
        if not np.isfinite(checked[name]).all():
            raise ValueError(f"{path}: array {name!r} has values beyond float32's range, expected finite")
    return checked


def _require_ndim(arrays: dict[str, np.ndarray], name: str, ndim: int, path: Path) -> np.ndarray:
    shape = arrays[name].shape
    if len(shape) != ndim:
        raise ValueError(f"{path}: array {name!r} should have {ndim} dimensions, has shape {shape}")
    return arrays[name]


def convert(source: str | Path, target: str | Path, force: bool = False) -> dict[str, np.ndarray]:
    """Write the checked oracle arrays of `source` (pickle or npz) to the `.npz` file `target`, atomically.

    Raises FileExistsError when `target` exists and not `force`; returns the arrays written.
    """
    target = Path(target)
    arrays = read_oracle_arrays(source)
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists; pass --force to overwrite it")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"directory {target.parent} of the output file not found")
    # mypy matches **arrays against savez's `allow_pickle: bool` too
    write_atomically(target, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
    return arrays
