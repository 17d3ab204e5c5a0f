"""The oracle of the synthetic benchmark: a token LSTM whose parameters are drawn from N(0, 1).

Real data are the oracle's samples; NLL-oracle scores a generator's samples under it. The
built-in default is a seeded random oracle (the paper's protocol, no file needed); the paper's own
oracle parameters load from an `.npz` file or straight from the reference repository's pickle
(`save/target_params_py3.pkl`), read by a restricted unpickler that admits numpy arrays only.

Convert the pickle once: `python -m seqgan_env.convert_oracle target_params_py3.pkl target_params.npz`.
"""

from __future__ import annotations

import io
import math
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
    """Load an oracle from a parameter file: an `.npz` or the reference code's pickle (its 15 arrays).

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
    """The named arrays of an `.npz` archive (numpy's own loader, pickled objects not allowed), each
    array's declared size checked against its member's before numpy allocates it."""
    if _read(path, len(_NPY_MAGIC)) == _NPY_MAGIC:  # not loaded: its header alone sets what numpy allocates
        raise ValueError(f"{path} is not a readable .npz file of oracle parameters: it holds one numpy "
                         "array, not an .npz archive of named arrays")  # fmt: skip
    try:
        with np.load(path, allow_pickle=False) as npz:
            for name in npz.files:
                _check_declared_size(npz.zip, f"{name}.npy")
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, MemoryError) as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ValueError(f"{path} is not a readable .npz file of oracle parameters: {reason}") from None


_NPY_MAGIC = b"\x93NUMPY"
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
MAX_ARRAY_BYTES = 2 * 2**30  # far above the paper's oracle (1.3 MB) and any oracle a CPU could run


def _check_declared_size(archive: zipfile.ZipFile, member: str) -> None:
    """The array `member` of an .npz declares a shape no larger than `MAX_ARRAY_BYTES` and than the
    bytes the member holds (a crafted header would have numpy allocate terabytes); ValueError if not."""
    with archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        read_header = _NPY_HEADERS.get(version)
        if read_header is None:  # 3.0 is for structured arrays' unicode field names, never an oracle's
            raise ValueError(f"array {member!r} is in .npy format {version}, expected 1.0 or 2.0")
        shape, _, dtype = read_header(f)
        declared = math.prod(shape) * dtype.itemsize
        held = archive.getinfo(member).file_size - f.tell()
    if declared > min(held, MAX_ARRAY_BYTES):
        raise ValueError(f"array {member!r} declares shape {shape} ({declared} bytes) but holds {held} bytes")


class _ForbiddenPickleContent(ValueError):
    """A pickle asked for a global other than the few numpy arrays need, or its arrays are malformed."""


# Plain numeric numpy type strings, the only dtypes an oracle pickle may name: float, signed and
# unsigned int of each width. A dtype is built from its name alone (and a byte order), never from the
# pickle's dtype state: numpy's `dtype.__setstate__` and `ndarray.__setstate__` trust what they are
# given, and a crafted state makes them read raw bytes as object pointers.
_NUMERIC_TYPES = frozenset({"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"})
_BYTE_ORDERS = frozenset({"<", ">", "|", "="})


def _text(value: Any) -> Any:
    """A Python 2 pickle's byte strings come as latin-1 text: both forms as text."""
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _DtypeSpec:
    """What a pickle's `numpy.dtype(name, align, copy)` call and its state say: a type name and a byte
    order. `dtype()` is numpy's dtype of the two when the name is a plain numeric type, else None."""

    __slots__ = ("name", "order", "structured")

    def __init__(self, name: Any, align: Any = False, copy: Any = True) -> None:
        name = _text(name)
        if not isinstance(name, str) or len(name) > 16:
            raise _ForbiddenPickleContent(f"numpy.dtype of {type(name).__name__} in the pickle, expected a "
                                          "type name such as 'f4'")  # fmt: skip
        self.name, self.order, self.structured = name, "=", False

    def __setstate__(self, state: Any) -> None:
        """The byte order of numpy's dtype state (3 or 4, order, subarray, names, fields, ...); a dtype
        with fields or a subarray is not a plain numeric type."""
        if not isinstance(state, tuple) or len(state) < 5 or _text(state[1]) not in _BYTE_ORDERS:
            raise _ForbiddenPickleContent(f"malformed numpy.dtype state for {self.name!r} in the pickle")
        self.structured = any(part is not None for part in state[2:5])  # subarray, names, fields
        self.order = _text(state[1])

    def dtype(self) -> np.dtype | None:
        plain = self.name in _NUMERIC_TYPES and not self.structured
        return np.dtype(self.order + self.name) if plain else None

    def describe(self) -> str:
        """The type's name for an error message, as numpy spells it where numpy reads it."""
        if self.structured:
            return "structured (fields or a subarray)"
        try:
            return str(np.dtype(self.name))
        except (TypeError, ValueError):
            return repr(self.name)


class _ArraySpec:
    """A pickled numpy array, rebuilt from (dtype, shape, raw bytes) by this module, never by numpy's
    `ndarray.__setstate__`: its state is checked (a plain numeric dtype, a byte count that matches
    the shape) and copied into a fresh array. An array whose dtype is not plain numeric keeps only
    that dtype's name, for the error message."""

    __slots__ = ("array", "dtype_name")

    def __init__(self) -> None:
        self.array: np.ndarray | None = None
        self.dtype_name: str | None = None

    def __setstate__(self, state: Any) -> None:
        """numpy's array state: ([version,] shape, dtype, is_fortran, raw bytes)."""
        if self.array is not None or self.dtype_name is not None:
            raise _ForbiddenPickleContent("an array's state is set twice in the pickle")
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _ForbiddenPickleContent("malformed array state in the pickle")
        shape, spec, fortran, raw = state[-4:]
        if not isinstance(shape, tuple) or not all(_is_int(n) and n >= 0 for n in shape):
            raise _ForbiddenPickleContent(f"malformed array shape {shape!r} in the pickle")
        if not isinstance(spec, _DtypeSpec):
            raise _ForbiddenPickleContent("an array without a numpy.dtype in the pickle")
        dtype = spec.dtype()
        if dtype is None:
            self.dtype_name = spec.describe()
            return
        raw = _text(raw)
        if isinstance(raw, str):
            try:
                raw = raw.encode("latin-1")
            except UnicodeEncodeError:
                raise _ForbiddenPickleContent("an array's data is text beyond latin-1") from None
        if not isinstance(raw, (bytes, bytearray)):
            raise _ForbiddenPickleContent(f"an array's data is a {type(raw).__name__}, expected bytes")
        needed = math.prod(shape) * dtype.itemsize
        if len(raw) != needed:
            raise _ForbiddenPickleContent(f"an array of shape {shape} and dtype {dtype} needs {needed} "
                                          f"bytes, the pickle holds {len(raw)}")  # fmt: skip
        flat = np.frombuffer(bytes(raw), dtype=dtype)
        self.array = np.array(flat.reshape(shape, order="F" if fortran else "C"), order="C")  # a copy


class _Admitted:
    """A global the pickle may name, as this module's stand-in: calling it runs this module's code;
    it holds no state a pickle could set."""

    __slots__ = ("call", "name")

    def __init__(self, name: str, call: Any = None) -> None:
        self.name, self.call = name, call

    def __call__(self, *args: Any) -> Any:
        if self.call is None:
            raise _ForbiddenPickleContent(f"the pickle calls {self.name}, which only names an array's type")
        return self.call(*args)

    def __setstate__(self, state: Any) -> None:
        raise _ForbiddenPickleContent(f"the pickle sets state on {self.name}")


_NDARRAY = _Admitted("numpy.ndarray")


def _new_array(subtype: Any, shape: Any = (0,), dtype: Any = b"b") -> _ArraySpec:
    """numpy's `_reconstruct(ndarray, (0,), b'b')`, the start of every pickled array: an empty spec
    that the pickle's next step fills (`_ArraySpec.__setstate__`)."""
    if subtype is not _NDARRAY:
        raise _ForbiddenPickleContent("numpy's _reconstruct of something other than numpy.ndarray")
    return _ArraySpec()


def _from_buffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> _ArraySpec:
    """numpy's `_frombuffer(buffer, dtype, shape, order)`, how protocol-5 pickles store an array: the
    same checked rebuild as a `_reconstruct`ed array's state."""
    if order not in ("C", "F"):
        raise _ForbiddenPickleContent(f"numpy's _frombuffer with order {order!r}, expected 'C' or 'F'")
    spec = _ArraySpec()
    spec.__setstate__((shape, dtype, order == "F", buffer))
    return spec


def _latin1_encode(text: Any, encoding: Any) -> bytes:
    """`_codecs.encode` as protocol-2 pickles of bytes use it: latin-1 text to bytes, nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _ForbiddenPickleContent(
            f"_codecs.encode is allowed on text with 'latin1' only, got {type(text).__name__}, {encoding!r}"
        )
    return text.encode("latin-1")


class OracleUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays of plain numeric dtypes and plain containers, and
    refuses every other global.

    The globals a numpy array's pickle names (numpy's `_reconstruct` from `numpy.core.multiarray` or
    `numpy._core.multiarray`, `numpy.ndarray`, `numpy.dtype`, `_codecs.encode` restricted to
    latin-1, which Python 3 writes for bytes in protocol-2 pickles, and protocol 5's `_frombuffer`
    from `numpy.core.numeric` or `numpy._core.numeric`) resolve to this module's
    stand-ins, so nothing of numpy's runs on the file's content: arrays are rebuilt from checked
    (dtype name, shape, raw bytes). Any other global raises ValueError naming it, before it is
    imported or called, so a malicious `__reduce__` never runs.
    """

    _ALLOWED: ClassVar[dict[tuple[str, str], _Admitted]] = {
        ("numpy.core.multiarray", "_reconstruct"): _Admitted("numpy's _reconstruct", _new_array),
        ("numpy._core.multiarray", "_reconstruct"): _Admitted("numpy's _reconstruct", _new_array),
        ("numpy.core.numeric", "_frombuffer"): _Admitted("numpy's _frombuffer", _from_buffer),
        ("numpy._core.numeric", "_frombuffer"): _Admitted("numpy's _frombuffer", _from_buffer),
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _Admitted("numpy.dtype", _DtypeSpec),
        ("_codecs", "encode"): _Admitted("_codecs.encode", _latin1_encode),
    }

    def find_class(self, module: str, name: str) -> Any:
        """The admitted stand-in for `module.name`; ValueError for any other global."""
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise _ForbiddenPickleContent(
                f"forbidden global {module}.{name} in the pickle (only numpy arrays are allowed)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        """Persistent ids are refused: an oracle pickle holds arrays only."""
        raise _ForbiddenPickleContent(f"forbidden persistent id {pid!r} in the pickle")


def _resolve(value: Any) -> Any:
    """A pickled item as the checks see it: a rebuilt array as that array; an array of another dtype
    as its dtype's name (`_UnsupportedArray`); anything else as it is."""
    if isinstance(value, _ArraySpec):
        if value.dtype_name is not None:
            return _UnsupportedArray(value.dtype_name)
        if value.array is None:
            raise _ForbiddenPickleContent("an array without data in the pickle")
        return value.array
    return value


class _UnsupportedArray:
    """A pickled array of a dtype other than a plain numeric one (object, complex, structured, ...)."""

    def __init__(self, dtype_name: str) -> None:
        self.dtype_name = dtype_name


def _read_pickle(path: Path, is_pickle: bool) -> dict[str, Any]:
    """The arrays of a pickled list/tuple of 15 arrays (reference order) or dict of them by name."""
    data = _read(path)
    try:
        # latin1: a Python 2 pickle's numpy data are byte strings (numpy's recommended setting).
        obj = OracleUnpickler(io.BytesIO(data), encoding="latin1").load()
        if isinstance(obj, (list, tuple)):
            obj = type(obj)(_resolve(item) for item in obj)
        elif isinstance(obj, dict):
            obj = {str(k): _resolve(v) for k, v in obj.items()}
    except _ForbiddenPickleContent as err:
        raise ValueError(f"{path}: {err}") from None
    except Exception as err:
        what = "not a readable pickle" if is_pickle else "neither an .npz archive nor a readable pickle"
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        raise ValueError(f"{path} is {what} of oracle parameters ({reason})") from None
    if isinstance(obj, (list, tuple)):
        if len(obj) != len(ORACLE_ARRAYS):
            raise ValueError(
                f"{path}: the pickle holds a {type(obj).__name__} of {len(obj)} items, expected the "
                f"{len(ORACLE_ARRAYS)} arrays {' '.join(ORACLE_ARRAYS)}"
            )
        return dict(zip(ORACLE_ARRAYS, obj, strict=True))
    if isinstance(obj, dict):
        return obj
    what = "numpy array" if isinstance(obj, _ArraySpec) else type(obj).__name__
    raise ValueError(
        f"{path}: the pickle holds a {what}, expected a list of the {len(ORACLE_ARRAYS)} "
        "oracle arrays (or a dict of them by name)"
    )


def _check_arrays(arrays: dict[str, Any], path: Path) -> dict[str, np.ndarray]:
    """The 15 arrays as float32, after checking presence, type, dtype, shapes and finiteness."""
    missing = [name for name in ORACLE_ARRAYS if name not in arrays]
    if missing:
        raise ValueError(f"{path} lacks oracle arrays {missing}; expected {sorted(ORACLE_ARRAYS)}")
    for name in ORACLE_ARRAYS:
        a = arrays[name]
        if isinstance(a, _UnsupportedArray):
            raise ValueError(f"{path}: oracle array {name!r} has dtype {a.dtype_name}, expected float32")
        if not isinstance(a, np.ndarray):
            raise ValueError(f"{path}: oracle array {name!r} is a {type(a).__name__}, expected a numpy array")
        if a.dtype.kind not in "fiu":
            raise ValueError(f"{path}: oracle array {name!r} has dtype {a.dtype}, expected float32")
    embedding = _require_ndim(arrays, "embedding", 2, path)
    vocab_size, embed_dim = embedding.shape
    hidden_dim = _require_ndim(arrays, "Ui", 2, path).shape[0]
    if min(vocab_size, embed_dim, hidden_dim) < 1:
        raise ValueError(f"{path}: an oracle of vocabulary {vocab_size}, embedding {embed_dim} and hidden "
                         f"{hidden_dim}, expected each at least 1")  # fmt: skip
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
    bound = _activation_bound(checked)
    if bound > MAX_ACTIVATION:
        raise ValueError(f"{path}: weights so large that the oracle's gate inputs or logits can reach "
                         f"{bound:.1e}; float32 likelihoods stay finite only below {MAX_ACTIVATION:.0e}")
    return checked


MAX_ACTIVATION = 1e30  # log-likelihoods of logits below this, summed over 10^6 tokens, stay finite in float32


def _activation_bound(arrays: dict[str, np.ndarray]) -> float:
    """The largest magnitude any of the oracle LSTM's gate pre-activations or output logits can take
    (in float64): |x W + h U + b| with |x| at most the embedding's largest value and |h| < 1 (an
    LSTM's output), and |h Wo + bo|. Below `MAX_ACTIVATION` no likelihood can overflow."""
    a = {name: np.abs(value.astype(np.float64)) for name, value in arrays.items()}
    x = float(a["embedding"].max(initial=0.0))
    bounds = [float((a["Wo"].sum(axis=0) + a["bo"]).max(initial=0.0))]
    for gate in _GATES:
        column = x * a[f"W{gate}"].sum(axis=0) + a[f"U{gate}"].sum(axis=0) + a[f"b{gate}"]
        bounds.append(float(column.max(initial=0.0)))
    return max(bounds)


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
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a folder, expected the path of the .npz file to write")
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists; pass --force to overwrite it")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"directory {target.parent} of the output file not found")
    # mypy matches **arrays against savez's `allow_pickle: bool` too
    write_atomically(target, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
    return arrays
