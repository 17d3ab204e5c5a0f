"""The oracle: the paper's parameter file loads into exactly SPEC 2.1's LSTM; bad files fail clearly."""

from __future__ import annotations

import fractions
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import OpenMarker, Reduced, SystemMarker

from seqgan_env.convert_oracle import main
from seqgan_env.oracle import ORACLE_ARRAYS, load_oracle, random_oracle, read_oracle_arrays

REPO_ROOT = Path(__file__).resolve().parents[1]

GATES = ("i", "f", "og", "c")


def numpy_log_probs(params: dict[str, np.ndarray], sequences: np.ndarray, start_token: int = 0) -> np.ndarray:
    """SPEC 2.1 written out in float64 numpy: next-token log-probabilities [B, T, V] of `sequences` [B, T].

    Row-vector convention x @ W; gates i, f, o (`og`) and candidate c; no recurrent bias; h0 = c0 = 0;
    the start token is the first input.
    """
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    batch, length = sequences.shape
    hidden = p["Ui"].shape[0]
    h = np.zeros((batch, hidden))
    c = np.zeros((batch, hidden))
    x = p["embedding"][np.full(batch, start_token)]
    out = []
    for t in range(length):
        i = sigmoid(x @ p["Wi"] + h @ p["Ui"] + p["bi"])
        f = sigmoid(x @ p["Wf"] + h @ p["Uf"] + p["bf"])
        o = sigmoid(x @ p["Wog"] + h @ p["Uog"] + p["bog"])
        candidate = np.tanh(x @ p["Wc"] + h @ p["Uc"] + p["bc"])
        c = f * c + i * candidate
        h = o * np.tanh(c)
        logits = h @ p["Wo"] + p["bo"]
        m = logits.max(axis=1, keepdims=True)
        out.append(logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))
        x = p["embedding"][sequences[:, t]]
    return np.stack(out, axis=1)


def tiny_params(vocab_size: int = 8, embed_dim: int = 3, hidden_dim: int = 4, seed: int = 0) -> dict:
    """A complete parameter set of the reference layout, N(0, 1), with distinct sizes for E, H and V."""
    rng = np.random.default_rng(seed)
    shapes = {"embedding": (vocab_size, embed_dim), "Wo": (hidden_dim, vocab_size), "bo": (vocab_size,)}
    for g in GATES:
        shapes[f"W{g}"] = (embed_dim, hidden_dim)
        shapes[f"U{g}"] = (hidden_dim, hidden_dim)
        shapes[f"b{g}"] = (hidden_dim,)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def torch_log_probs(oracle, sequences: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.log_softmax(oracle(torch.as_tensor(sequences)), dim=-1).double().numpy()


def mean_nll(oracle, sequences: torch.Tensor, chunk: int = 200) -> float:
    """Mean per-token NLL of `sequences` under `oracle` (chunked: V = 5000 logits are large)."""
    with torch.inference_mode():
        total = sum(
            F.cross_entropy(oracle(c).flatten(0, 1), c.flatten(), reduction="sum").item()
            for c in sequences.split(chunk)
        )
    return total / sequences.numel()


# --- a tiny oracle file: always runs --------------------------------------------------------------
def test_tiny_file_matches_numpy_equations(tmp_path):
    params = tiny_params()
    path = tmp_path / "oracle.npz"
    np.savez(path, **params)
    oracle = load_oracle(path, seq_len=5)
    c = oracle.config
    assert (c.vocab_size, c.embed_dim, c.hidden_dim, c.seq_len, c.start_token) == (8, 3, 4, 5, 0)
    seqs = np.random.default_rng(1).integers(0, 8, size=(6, 5))
    expected = numpy_log_probs(params, seqs)
    np.testing.assert_allclose(torch_log_probs(oracle, seqs), expected, rtol=1e-5, atol=1e-5)
    # The cached step path (the one sampling and rollouts use) agrees as well.
    with torch.inference_mode():
        logits, state = oracle.start(6)
        logits, state = oracle.step(torch.as_tensor(seqs[:, 0]), state)
    got = torch.log_softmax(logits, -1).double().numpy()
    np.testing.assert_allclose(got, expected[:, 1], rtol=1e-5, atol=1e-5)


def test_swapped_gates_would_be_caught(tmp_path):
    """The numpy comparison has power: swapping the output gate and the candidate changes the numbers."""
    params = tiny_params()
    swapped = dict(params, Wog=params["Wc"], Wc=params["Wog"])
    np.savez(tmp_path / "oracle.npz", **swapped)
    seqs = np.random.default_rng(1).integers(0, 8, size=(6, 5))
    got = torch_log_probs(load_oracle(tmp_path / "oracle.npz", seq_len=5), seqs)
    assert np.abs(got - numpy_log_probs(params, seqs)).max() > 1e-2


# --- the paper's oracle file (skipped when absent) -------------------------------------------------
@pytest.fixture(scope="module")
def paper_params_and_oracle(paper_oracle_path):
    path = paper_oracle_path
    with np.load(path) as npz:
        params = {k: npz[k] for k in npz.files}
    return params, load_oracle(path)


def test_paper_oracle_loads(paper_params_and_oracle):
    params, oracle = paper_params_and_oracle
    assert len(params) == 15 and all(a.dtype == np.float32 for a in params.values())
    c = oracle.config
    assert (c.vocab_size, c.seq_len, c.embed_dim, c.hidden_dim, c.start_token) == (5000, 20, 32, 32, 0)
    assert not oracle.training
    assert not any(p.requires_grad for p in oracle.parameters())
    assert (oracle.lstm.bias_hh_l0 == 0).all()


def test_paper_oracle_matches_numpy_equations(paper_params_and_oracle):
    params, oracle = paper_params_and_oracle
    sampled = oracle.sample(2, rng=torch.Generator().manual_seed(0)).numpy()
    uniform = np.random.default_rng(0).integers(0, 5000, size=(2, 20))
    seqs = np.concatenate([sampled, uniform])
    expected = numpy_log_probs(params, seqs)
    np.testing.assert_allclose(torch_log_probs(oracle, seqs), expected, rtol=1e-4, atol=1e-4)


def test_paper_oracle_entropy_floor(paper_params_and_oracle):
    """SPEC 2.1's sanity check: the oracle's own samples score about 5.75 (standard error ~0.012 here)."""
    _, oracle = paper_params_and_oracle
    samples = oracle.sample(2000, rng=torch.Generator().manual_seed(0))
    assert abs(mean_nll(oracle, samples) - 5.75) < 0.05


def test_paper_oracle_uniform_tokens(paper_params_and_oracle):
    """... and uniform random tokens about 11.44."""
    _, oracle = paper_params_and_oracle
    tokens = torch.randint(0, 5000, (2000, 20), generator=torch.Generator().manual_seed(0))
    assert abs(mean_nll(oracle, tokens) - 11.44) < 0.05


# --- the built-in random oracle ------------------------------------------------------------------
def test_random_oracle_is_seeded_and_deterministic():
    torch.manual_seed(123)  # the global RNG must not matter
    a = random_oracle(8, 4, seed=3)
    torch.manual_seed(456)
    b = random_oracle(8, 4, seed=3)
    c = random_oracle(8, 4, seed=4)
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    assert not torch.equal(a.output.weight, c.output.weight)
    assert (a.config.vocab_size, a.config.seq_len, a.config.start_token) == (8, 4, 0)
    assert not a.training and not any(p.requires_grad for p in a.parameters())
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(a.sample(20, rng=g()), b.sample(20, rng=g()))


def test_random_oracle_default_is_paper_shaped_and_standard_normal():
    oracle = random_oracle()
    c = oracle.config
    assert (c.vocab_size, c.seq_len, c.embed_dim, c.hidden_dim) == (5000, 20, 32, 32)
    w = oracle.embedding.weight  # 160,000 draws: mean and std within a few 1e-3 of N(0, 1)
    assert abs(w.mean().item()) < 0.02 and abs(w.std().item() - 1.0) < 0.02
    assert (oracle.lstm.bias_hh_l0 == 0).all()


# --- bad files -----------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.npz"):
        load_oracle(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError):
        load_oracle(tmp_path)  # a directory is not a parameter file


@pytest.mark.parametrize(
    ("name", "content"),
    [("text.npz", b"this is not a numpy archive\n"), ("empty.npz", b""), ("zip.npz", b"PK\x03\x04garbage")],
)
def test_not_an_npz(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=name):
        load_oracle(path)


def test_single_npy_array_is_not_an_npz(tmp_path):
    path = tmp_path / "embedding.npy"
    np.save(path, tiny_params()["embedding"])
    with pytest.raises(ValueError, match=r"embedding\.npy"):
        load_oracle(path)


def test_object_arrays_are_refused(tmp_path):
    params = dict(tiny_params(), bo=np.array([{"not": "numbers"}], dtype=object))
    np.savez(tmp_path / "oracle.npz", **params)
    with pytest.raises(ValueError):
        load_oracle(tmp_path / "oracle.npz")


@pytest.mark.parametrize("missing", [("embedding",), ("Wo", "bc"), ("Ui",), ("bo",)])
def test_missing_arrays(tmp_path, missing):
    params = {k: v for k, v in tiny_params().items() if k not in missing}
    np.savez(tmp_path / "oracle.npz", **params)
    with pytest.raises(ValueError, match=missing[0]):
        load_oracle(tmp_path / "oracle.npz")


@pytest.mark.parametrize(
    ("name", "shape"),
    [("Uf", (4, 5)), ("Wc", (4, 4)), ("bi", (5,)), ("Wo", (4, 9)), ("bo", (7,)), ("embedding", (8,))],
)
def test_wrong_shapes(tmp_path, name, shape):
    params = dict(tiny_params(), **{name: np.zeros(shape, dtype=np.float32)})
    np.savez(tmp_path / "oracle.npz", **params)
    with pytest.raises(ValueError, match=name):
        load_oracle(tmp_path / "oracle.npz")


def test_accepts_str_path(tmp_path):
    np.savez(tmp_path / "oracle.npz", **tiny_params())
    assert load_oracle(str(tmp_path / "oracle.npz")).config.vocab_size == 8


# --- the reference code's pickle (save/target_params_py3.pkl: a list of the 15 arrays) ----------------
def write_reference_pickle(path: Path, params: dict, protocol: int = pickle.DEFAULT_PROTOCOL) -> Path:
    """Write `params` as the reference repository does: a pickled list in target_lstm.py's order."""
    path.write_bytes(pickle.dumps([params[name] for name in ORACLE_ARRAYS], protocol=protocol))
    return path


def assert_same_oracle(a, b) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL, 5])
def test_reference_pickle_loads_like_the_npz(tmp_path, protocol):
    params = tiny_params()
    np.savez(tmp_path / "oracle.npz", **params)
    pkl = write_reference_pickle(tmp_path / "target_params_py3.pkl", params, protocol)
    oracle = load_oracle(pkl, seq_len=5)
    assert_same_oracle(oracle, load_oracle(tmp_path / "oracle.npz", seq_len=5))
    seqs = np.random.default_rng(1).integers(0, 8, size=(6, 5))
    expected = numpy_log_probs(params, seqs)
    np.testing.assert_allclose(torch_log_probs(oracle, seqs), expected, rtol=1e-5, atol=1e-5)


def python2_pickle(arrays: list[np.ndarray]) -> bytes:
    """A list of float32 arrays as Python 2's numpy pickled it in protocol 0, the format of the
    reference's older save/target_params.pkl: text opcodes, the array data a latin-1 byte string."""
    items = []
    for a in arrays:
        shape = "".join(f"I{n}\n" for n in a.shape)
        data = repr(a.astype("<f4").tobytes())[1:]  # b'..' less the b: the S opcode's quoted string
        items.append("cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I0\ntS'b'\ntR"
                     f"(I1\n({shape}tcnumpy\ndtype\n(S'f4'\nI0\nI1\ntR(I3\nS'<'\nNNNI-1\nI-1\nI0\ntbI00\n"
                     f"S{data}\ntba")  # fmt: skip
    return ("(lp0\n" + "".join(items) + ".").encode("latin-1")


def test_python2_protocol_0_pickle_loads_like_the_npz(tmp_path):
    params = tiny_params()
    np.savez(tmp_path / "oracle.npz", **params)
    (tmp_path / "target_params.pkl").write_bytes(python2_pickle([params[k] for k in ORACLE_ARRAYS]))
    assert_same_oracle(load_oracle(tmp_path / "target_params.pkl"), load_oracle(tmp_path / "oracle.npz"))


# --- crafted pickles: numpy's own array and dtype state would trust them ------------------------------
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]  # what every pickled array starts with


def crafted_array(shape, dtype_name: str, dtype_state: tuple, data: bytes, fortran: bool = False) -> Reduced:
    dtype = Reduced(np.dtype, (dtype_name, False, True), dtype_state)
    return Reduced(_RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, shape, dtype, fortran, data))


PLAIN = (3, "<", None, None, None, -1, -1, 0)  # a float32 dtype's state
FIELDS = (3, "<", None, ("x",), {"x": (np.dtype("O"), 0)}, 4, 4, 63)  # ... claiming an object field
# An object dtype with its list-pickle flag off: numpy's ndarray.__setstate__ then takes the raw bytes
# for object pointers, and the process dies (segmentation fault) when they are touched or freed.
OBJECT_POINTERS = crafted_array((4,), "O8", (3, "|", None, None, None, -1, -1, 61), b"A" * 32)
# Crafted dtype states, each run in a process of its own (numpy's own unpickling of the first crashes it).
CRASHING = {
    "object pointers": (OBJECT_POINTERS, r"array 'embedding' has dtype object, expected float32"),
    "fields on a float": (crafted_array((8, 3), "f4", FIELDS, b"A" * 96), r"has dtype structured"),
    "structured": (crafted_array((8, 3), "V8", (3, "|", None, None, None, 8, 1, 0), b"A" * 192),
                   r"array 'embedding' has dtype \|?V8"),
}
CRAFTED = {
    "short data": (crafted_array((8, 3), "f4", PLAIN, b"A" * 95),
                   r"an array of shape \(8, 3\) and dtype float32 needs 96 bytes, the pickle holds 95"),
    "long data": (crafted_array((8, 3), "f4", PLAIN, b"A" * 97), r"needs 96 bytes, the pickle holds 97"),
    "negative shape": (crafted_array((-8, 3), "f4", PLAIN, b"A"), r"malformed array shape \(-8, 3\)"),
    "no data": (Reduced(_RECONSTRUCT, (np.ndarray, (8, 3), b"b")), r"an array without data"),
    "bad byte order": (crafted_array((8, 3), "f4", (3, "!", None, None, None, -1, -1, 0), b"A" * 96),
                       r"malformed numpy.dtype state"),
}


def crafted_oracle(path: Path, crafted: Reduced) -> Path:
    """The tiny oracle's 15 arrays with `crafted` in place of the first, pickled."""
    params = [tiny_params()[name] for name in ORACLE_ARRAYS]
    path.write_bytes(pickle.dumps([crafted, *params[1:]], protocol=2))
    return path


@pytest.mark.parametrize("case", CRAFTED, ids=list(CRAFTED))
def test_crafted_arrays_are_refused(tmp_path, case):
    """Every array is rebuilt from a plain numeric dtype name and a byte count that matches its
    shape: a data size that disagrees, or an array without data, is refused in one line."""
    crafted, match = CRAFTED[case]
    path = crafted_oracle(tmp_path / "crafted.pkl", crafted)
    with pytest.raises(ValueError) as err:
        load_oracle(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert re.search(match, message), message


def test_an_oracle_of_arrays_without_data_is_refused(tmp_path):
    """15 arrays of the right shapes that the pickle never fills (numpy would hand out uninitialised
    memory): refused, whatever sizes they claim."""
    shapes = {name: a.shape for name, a in tiny_params(vocab_size=2_000_000).items()}
    empty = [Reduced(_RECONSTRUCT, (np.ndarray, shapes[name], b"b")) for name in ORACLE_ARRAYS]
    path = tmp_path / "empty.pkl"
    path.write_bytes(pickle.dumps(empty, protocol=2))
    assert len(path.read_bytes()) < 2000
    with pytest.raises(ValueError, match=r"empty\.pkl: an array without data in the pickle"):
        load_oracle(path)


ORACLE_READERS = {
    "convert_oracle": [sys.executable, "-m", "seqgan_env.convert_oracle", "{path}", "{out}"],
    "adversarial.py": [sys.executable, "train/adversarial.py", "--oracle", "{path}", "--preset", "tiny",
                       "--vocab-size", "8", "--out", "{out}"],
    "SeqGAN-v0": [sys.executable, "-c", "import gymnasium as gym, seqgan_env, sys\n"
                  "try:\n    gym.make('SeqGAN-v0', oracle_path='{path}', vocab_size=8)\n"
                  "except ValueError as err:\n    sys.exit(f'error: {{err}}')"],
}


@pytest.mark.parametrize(("case", "reader"), [(case, reader) for case in CRASHING for reader in ORACLE_READERS
                                              if case == "object pointers" or reader == "convert_oracle"])
def test_crafted_dtype_states_are_refused_without_a_crash(tmp_path, case, reader):
    """A crafted dtype state (a few hundred bytes make the object-pointer pickle), read in a process of
    its own so that a regression shows as that process's crash: one error line and an ordinary exit."""
    crafted, match = CRASHING[case]
    path = crafted_oracle(tmp_path / "evil.pkl", crafted)
    out = tmp_path / "out"
    argv = [part.format(path=path, out=out) for part in ORACLE_READERS[reader]]
    result = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode in (1, 2), (result.returncode, result.stderr)  # not -11 (SIGSEGV)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(match, lines[0]), result.stderr
    assert not out.exists()


@pytest.mark.parametrize("container", [tuple, "dict"])
def test_pickled_tuple_or_dict_by_name(tmp_path, container):
    params = tiny_params()
    obj = params if container == "dict" else tuple(params[name] for name in ORACLE_ARRAYS)
    (tmp_path / "p.pkl").write_bytes(pickle.dumps(obj))
    arrays = read_oracle_arrays(tmp_path / "p.pkl")
    assert list(arrays) == list(ORACLE_ARRAYS)
    assert all(np.array_equal(arrays[k], params[k]) and arrays[k].dtype == np.float32 for k in ORACLE_ARRAYS)


@pytest.mark.parametrize(("payload", "forbidden"), [(OpenMarker, "open"), (SystemMarker, "system")])
@pytest.mark.parametrize("protocol", [0, 2, pickle.DEFAULT_PROTOCOL])
def test_code_running_pickle_is_refused_and_not_run(tmp_path, payload, forbidden, protocol):
    marker = tmp_path / "marker"
    params = [tiny_params()[name] for name in ORACLE_ARRAYS]
    for index in (0, 14):  # first or last: the array before it must not let it through either
        path = tmp_path / f"evil{index}.pkl"
        evil = [*params[:index], payload(marker), *params[index + 1 :]]
        path.write_bytes(pickle.dumps(evil, protocol=protocol))
        with pytest.raises(ValueError, match=rf"forbidden global \S*{forbidden}") as err:
            load_oracle(path)
        assert "evil" in str(err.value) and "\n" not in str(err.value)
        assert not marker.exists()


def test_code_running_pickle_would_run_without_the_guard(tmp_path):
    """The test above has power: a plain pickle.loads of the payload does create the marker."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(OpenMarker(marker))).close()
    assert marker.exists()


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        (dict(tiny_params(), bo=fractions.Fraction(1, 3)), "forbidden global fractions.Fraction"),
        ({"a": OpenMarker(Path("/nonexistent-dir/marker"))}, "forbidden global .*open"),
        (np.save, "forbidden global numpy.save"),
        ([os.getcwd] * 15, "forbidden global (os|posix).getcwd"),
        (torch.zeros(3), "forbidden global torch"),
        (np.float32(1.0), "forbidden global numpy"),  # a numpy scalar is not an array
        ("just text", "holds a str, expected a list of the 15"),
        ({"embedding": 1}, "lacks oracle arrays"),
        (dict(tiny_params(), bo=[0.0] * 8), "'bo' is a list, expected a numpy array"),
        (dict(tiny_params(), bo=np.array([1] * 8, dtype=object)), "'bo' has dtype object"),
        (dict(tiny_params(), bo=np.zeros(8, dtype=complex)), "'bo' has dtype complex128"),
    ],
    ids=[
        "fraction", "object", "np-function", "os-function", "torch", "np-scalar",
        "str", "dict-missing", "list", "object-array", "complex",
    ],
)
def test_other_pickled_objects_are_refused(tmp_path, obj, match):
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(ValueError, match=match):
        load_oracle(path)


@pytest.mark.parametrize(("data", "order", "pattern"), [
    (bytearray(b"x"), "C", r"an array of shape \(8, 3\) and dtype float32 needs 96 bytes, the pickle holds"),
    (bytearray(96), "K", r"numpy's _frombuffer with order 'K', expected 'C' or 'F'"),
    (5, "C", r"an array's data is a int, expected bytes"),
], ids=["short data", "order", "not bytes"])  # fmt: skip
def test_protocol_5_arrays_are_checked_like_the_others(tmp_path, data, order, pattern):
    """Protocol 5 rebuilds arrays with numpy's _frombuffer(data, dtype, shape, order): the loader's
    stand-in checks them as it checks a _reconstruct'ed array's state."""
    reduce = np.zeros(1, np.float32).__reduce_ex__(5)[0]
    params = [tiny_params()[name] for name in ORACLE_ARRAYS]
    crafted = Reduced(reduce, (data, np.dtype("f4"), (8, 3), order))
    path = tmp_path / "p5.pkl"
    path.write_bytes(pickle.dumps([crafted, *params[1:]], protocol=5))
    with pytest.raises(ValueError, match=pattern):
        load_oracle(path)


@pytest.mark.parametrize("count", [14, 16, 0])
def test_pickled_list_of_wrong_length(tmp_path, count):
    arrays = [tiny_params()[name] for name in ORACLE_ARRAYS]
    arrays = (arrays + arrays)[:count]
    (tmp_path / "p.pkl").write_bytes(pickle.dumps(arrays, protocol=2))
    with pytest.raises(ValueError, match=f"list of {count} items, expected the 15 arrays embedding Wi"):
        load_oracle(tmp_path / "p.pkl")


@pytest.mark.parametrize(("name", "shape"), [("Uf", (4, 5)), ("bo", (7,)), ("embedding", (8,))])
def test_pickle_with_wrong_shape(tmp_path, name, shape):
    params = dict(tiny_params(), **{name: np.zeros(shape, dtype=np.float32)})
    with pytest.raises(ValueError, match=rf"p.pkl: array '{name}'.*shape"):
        load_oracle(write_reference_pickle(tmp_path / "p.pkl", params, protocol=2))


def test_swapped_pickle_order_would_be_caught(tmp_path):
    """A list in another order (here the embedding and Wo swapped) fails the shape checks."""
    params = tiny_params()
    swapped = [params[name] for name in ORACLE_ARRAYS]
    swapped[0], swapped[13] = swapped[13], swapped[0]
    (tmp_path / "p.pkl").write_bytes(pickle.dumps(swapped))
    with pytest.raises(ValueError, match="shape"):
        load_oracle(tmp_path / "p.pkl")


@pytest.mark.parametrize(
    ("name", "content"),
    [("cut.pkl", None), ("proto.pkl", b"\x80\x04junk"), ("text.pkl", b"not a pickle\n"), ("empty.pkl", b"")],
)
def test_not_a_pickle(tmp_path, name, content):
    path = tmp_path / name
    if content is None:  # a real pickle cut short
        content = pickle.dumps([tiny_params()[k] for k in ORACLE_ARRAYS])[:300]
    path.write_bytes(content)
    with pytest.raises(ValueError, match=name) as err:
        load_oracle(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("fmt", ["npz", "pkl"])
@pytest.mark.parametrize(
    ("name", "value"), [("embedding", np.nan), ("Uog", np.inf), ("bo", -np.inf), ("bc", 1e39)]
)
def test_nan_and_inf_are_refused(tmp_path, fmt, name, value):
    params = tiny_params()
    params[name] = params[name].astype(np.float64)  # 1e39 overflows to inf only as float32
    params[name].flat[-1] = value
    path = tmp_path / f"oracle.{fmt}"
    if fmt == "npz":
        np.savez(path, **params)
    else:
        write_reference_pickle(path, params)
    expected = "beyond float32's range" if value == 1e39 else f"{1 if value != value else 0} NaN"
    with pytest.raises(ValueError, match=rf"array '{name}' (holds|has) .*{expected}.*expected finite"):
        load_oracle(path)


# --- the convert command -----------------------------------------------------------------------------
def test_convert_round_trip(tmp_path, capsys):
    params = tiny_params()
    pkl = write_reference_pickle(tmp_path / "target_params_py3.pkl", params, protocol=2)
    out = tmp_path / "target_params.npz"
    assert main([str(pkl), str(out)]) == 0
    assert "vocabulary 8, embedding 3, hidden 4" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(ORACLE_ARRAYS)
        assert all(np.array_equal(npz[k], params[k]) and npz[k].dtype == np.float32 for k in ORACLE_ARRAYS)
    assert_same_oracle(load_oracle(out), load_oracle(pkl))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target_params.npz", "target_params_py3.pkl"]


def test_convert_refuses_to_overwrite_without_force(tmp_path, capsys):
    pkl = write_reference_pickle(tmp_path / "p.pkl", tiny_params())
    out = tmp_path / "out.npz"
    out.write_bytes(b"precious")
    assert main([str(pkl), str(out)]) == 2
    assert capsys.readouterr().err == f"error: {out} exists; pass --force to overwrite it\n"
    assert out.read_bytes() == b"precious"
    assert main([str(pkl), str(out), "--force"]) == 0
    assert_same_oracle(load_oracle(out), load_oracle(pkl))


@pytest.mark.parametrize("bad", ["missing", "garbage", "evil", "no-dir"])
def test_convert_bad_input(tmp_path, capsys, bad):
    source, out = tmp_path / "in.pkl", tmp_path / "out.npz"
    if bad == "garbage":
        source.write_bytes(b"\x80\x04nonsense")
    elif bad == "evil":
        source.write_bytes(pickle.dumps(OpenMarker(tmp_path / "marker")))
    else:
        write_reference_pickle(source, tiny_params())
    if bad == "missing":
        source = tmp_path / "nope.pkl"
    if bad == "no-dir":
        out = tmp_path / "nodir" / "out.npz"
    assert main([str(source), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "marker").exists()


def test_convert_refuses_a_folder_or_an_empty_target(tmp_path, capsys):
    """Both were the system's error on the folder ("Is a directory", "Device or resource busy: '.'")."""
    pkl = write_reference_pickle(tmp_path / "p.pkl", tiny_params())
    assert main([str(pkl), str(tmp_path), "--force"]) == 2
    expected = f"error: {tmp_path} is a folder, expected the path of the .npz file to write\n"
    assert capsys.readouterr().err == expected
    with pytest.raises(SystemExit) as exit_:
        main([str(pkl), "", "--force"])
    assert exit_.value.code == 2
    assert "argument target: expected a file path, got an empty string" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.pkl"]


def test_convert_command_line(tmp_path):
    """`python -m seqgan_env.convert_oracle`: one `error:` line and exit 2 on a missing input; --help."""
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "seqgan_env.convert_oracle", *args],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )  # fmt: skip
    result = run(str(tmp_path / "nope.pkl"), str(tmp_path / "out.npz"))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: oracle parameter file not found: {tmp_path / 'nope.pkl'}\n"
    helped = run("--help")
    assert helped.returncode == 0 and "--force" in helped.stdout and "target_params_py3.pkl" in helped.stdout


def test_paper_oracle_pickle_round_trip(paper_oracle_path, tmp_path):
    """The paper's npz, written as the reference's pickle list, converts back to identical parameters."""
    with np.load(paper_oracle_path) as npz:
        params = {k: npz[k] for k in npz.files}
    pkl = write_reference_pickle(tmp_path / "target_params_py3.pkl", params, protocol=3)
    out = tmp_path / "target_params.npz"
    assert main([str(pkl), str(out)]) == 0
    with np.load(out) as npz:
        assert all(np.array_equal(npz[k], params[k]) for k in ORACLE_ARRAYS)
    assert_same_oracle(load_oracle(pkl), load_oracle(paper_oracle_path))
    assert_same_oracle(load_oracle(out), load_oracle(paper_oracle_path))


def npy_header(shape: tuple[int, ...]) -> bytes:
    """A version 1.0 .npy header of float32 `shape`, padded as numpy pads it."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


@pytest.mark.parametrize("shape", [(10**6, 10**6), (100_000, 40_000)], ids=["4 TB", "16 GB"])
def test_an_npz_array_declaring_more_than_it_holds_is_refused_before_allocating(tmp_path, shape):
    """numpy allocates what an .npy header declares before reading: 4 TB is a MemoryError traceback,
    16 GB could take the machine's memory. The header is checked against the member's size first."""
    import zipfile

    path = tmp_path / "oracle.npz"
    np.savez(path, **tiny_params())
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("embedding2.npy", npy_header(shape) + b"\0" * 100)
    with pytest.raises(ValueError, match=r"array 'embedding2\.npy' declares shape .* but holds 100 bytes"):
        read_oracle_arrays(path)


def test_a_bare_npy_declaring_terabytes_is_refused_unread(tmp_path):
    path = tmp_path / "oracle.npz"
    path.write_bytes(npy_header((10**6, 10**6)) + b"\0" * 100)
    with pytest.raises(ValueError, match=r"it holds one numpy array, not an \.npz archive"):
        read_oracle_arrays(path)


def test_weights_whose_likelihoods_overflow_float32_are_refused(tmp_path):
    """Finite float32 weights near 3e38 make the logits infinite and every NLL-oracle NaN: refused when
    read, with the bound that was exceeded (the paper's oracle's is about 200)."""
    params = tiny_params()
    params["Wo"] = np.full_like(params["Wo"], 3e38)
    np.savez(tmp_path / "big.npz", **params)
    with pytest.raises(ValueError, match=r"big\.npz: weights so large that .* can reach 1\.2e\+39; float32"):
        read_oracle_arrays(tmp_path / "big.npz")
    params["Wo"] = np.full_like(params["Wo"], 1e20)  # large, but every likelihood stays finite
    np.savez(tmp_path / "large.npz", **params)
    assert read_oracle_arrays(tmp_path / "large.npz")["Wo"].max() == np.float32(1e20)


@pytest.mark.parametrize("empty", ["vocabulary", "hidden"])
def test_an_oracle_of_size_zero_is_refused(tmp_path, empty):
    params = tiny_params(vocab_size=0) if empty == "vocabulary" else tiny_params(hidden_dim=0)
    np.savez(tmp_path / "empty.npz", **params)
    with pytest.raises(ValueError, match=r"empty\.npz: an oracle of vocabulary \d+, embedding 3 and hid"):
        read_oracle_arrays(tmp_path / "empty.npz")
