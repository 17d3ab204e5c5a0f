"""The oracle: the paper's parameter file loads into exactly SPEC 2.1's LSTM; bad files fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqgan_env.oracle import load_oracle, random_oracle

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
    sampled = oracle.sample(2, generator=torch.Generator().manual_seed(0)).numpy()
    uniform = np.random.default_rng(0).integers(0, 5000, size=(2, 20))
    seqs = np.concatenate([sampled, uniform])
    expected = numpy_log_probs(params, seqs)
    np.testing.assert_allclose(torch_log_probs(oracle, seqs), expected, rtol=1e-4, atol=1e-4)


def test_paper_oracle_entropy_floor(paper_params_and_oracle):
    """SPEC 2.1's sanity check: the oracle's own samples score about 5.75 (standard error ~0.012 here)."""
    _, oracle = paper_params_and_oracle
    samples = oracle.sample(2000, generator=torch.Generator().manual_seed(0))
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
    assert torch.equal(a.sample(20, generator=g()), b.sample(20, generator=g()))


def test_random_oracle_default_is_paper_shaped_and_standard_normal():
    oracle = random_oracle()
    c = oracle.config
    assert (c.vocab_size, c.seq_len, c.embed_dim, c.hidden_dim) == (5000, 20, 32, 32)
    w = oracle.embedding.weight  # 160,000 draws: mean and std within a few 1e-3 of N(0, 1)
    assert abs(w.mean().item()) < 0.02 and abs(w.std().item() - 1.0) < 0.02
    assert (oracle.lstm.bias_hh_l0 == 0).all()


# --- bad files -----------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
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
    with pytest.raises(ValueError, match="embedding.npy"):
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
