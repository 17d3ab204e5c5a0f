"""Shared small fixtures: a tiny token LSTM, a tiny discriminator, stub scorers, the paper's oracle file.

Sizes are tiny on purpose (vocabulary 8, length 4) so the whole suite runs in seconds on a 2-core CPU.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

import seqgan_env.core
from seqgan_env.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig

CUDNN_RNN_EVAL_BACKWARD = "cudnn RNN backward can only be called in training mode"


@pytest.fixture(autouse=True)
def lstm_backward_needs_train_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """cuDNN's rule, enforced on the CPU for every test: a backward pass through an `nn.LSTM` that ran
    in eval mode fails as it does on a GPU, so a gradient taken through a model in eval mode is
    caught here, not first on a GPU."""
    forward = torch.nn.LSTM.forward

    def guarded(self: torch.nn.LSTM, *args: object, **kwargs: object) -> object:
        out = forward(self, *args, **kwargs)  # type: ignore[arg-type]
        if not self.training and torch.is_grad_enabled():
            output, (h, c) = out
            for tensor in (output, h, c):
                if tensor.requires_grad:
                    tensor.register_hook(_refuse_eval_backward)
        return out

    monkeypatch.setattr(torch.nn.LSTM, "forward", guarded)


def _refuse_eval_backward(grad: torch.Tensor) -> torch.Tensor:
    raise RuntimeError(f"{CUDNN_RNN_EVAL_BACKWARD} (tests/conftest.py enforces cuDNN's rule on the CPU)")


@pytest.fixture(autouse=True)
def sb3_logs_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that call an SB3 model's own `learn` get SB3's default logger, which makes a folder: it goes
    in the test's tmp_path, not a new SB3-<date> folder in the system's temp dir per call."""
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3_log"))


# The suite runs on a 2-core machine shared with other jobs: torch's intra-op threads then spin and wait
# for each other on every small op (measured: the oracle tests 3x slower with 2 threads under load).
torch.set_num_threads(1)

V = 8  # vocabulary of the tiny models
T = 4  # sequence length of the tiny models
PAD = V  # the environment's padding id

REPO = ROOT = Path(__file__).resolve().parents[1]  # the repository
HANG_GUARD = 900  # seconds: a subprocess's limit only catches a hang, it never times a run


def case_id(value: object) -> str:
    """A parametrized case's id that is the same in every process (pytest-xdist's workers must collect
    the same ids): a function's name, never its address."""
    return getattr(value, "__name__", None) or repr(value)[:40]

# The paper's oracle parameters live in ../shared next to the repository root (SPEC 2.1).
PAPER_ORACLE_PATH = Path(__file__).resolve().parents[2] / "shared/benchmarks/paper_oracle/target_params.npz"


# Upper 1e-4 quantiles of the chi-square distribution by degrees of freedom (scipy.stats.chi2.isf(1e-4, df)).
CHI2_CRITICAL_1E4 = {1: 15.14, 2: 18.42, 3: 21.11, 4: 23.51, 5: 25.74, 6: 27.86, 7: 29.88}


def chi2_critical_1e4(df: int) -> float:
    """The upper 1e-4 quantile of chi-square with `df` degrees of freedom: the table above, or the
    Wilson-Hilferty approximation (at most 2% above the exact value from 8 dof on)."""
    if df in CHI2_CRITICAL_1E4:
        return CHI2_CRITICAL_1E4[df]
    z = 3.719  # the standard normal's upper 1e-4 quantile
    return df * (1 - 2 / (9 * df) + z * (2 / (9 * df)) ** 0.5) ** 3


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> tuple[float, int]:
    """Pearson's statistic over the categories of non-zero probability, and its degrees of freedom."""
    support = probs > 0
    n = counts.sum().item()
    expected = probs[support].double() * n
    stat = ((counts[support].double() - expected) ** 2 / expected).sum().item()
    return stat, int(support.sum()) - 1


@pytest.fixture(scope="session")
def paper_oracle_path() -> Path:
    """The path of the paper's oracle file; the test is skipped when the file is absent."""
    if not PAPER_ORACLE_PATH.is_file():
        pytest.skip(f"paper oracle file not found at {PAPER_ORACLE_PATH} (../shared, beside the repository)")
    return PAPER_ORACLE_PATH


class OpenMarker:
    """Unpickling this opens (creates) the file `marker`: the payload of a malicious file, whose
    loaders must never let it run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


class Reduced:
    """Pickles as the reduce tuple it is given: writes what a library itself never would."""

    def __init__(self, *reduce) -> None:
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


class SystemMarker:
    """Unpickling this runs a shell command (`touch marker`)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def poisoned_zip(source: Path, target: Path, marker: Path, change: Any = None) -> Path:
    """A copy of the saved SB3 model `source` whose cloudpickled `data` entries (the policy class, the
    spaces, the schedules) and pytorch_variables.pth would each create `marker` when unpickled; each
    member's name and bytes pass through `change` (returning new bytes, or None to leave it out)."""
    payload = base64.b64encode(pickle.dumps(OpenMarker(marker))).decode()
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "data":
                entries = json.loads(data)
                for entry in entries.values():
                    if isinstance(entry, dict) and ":serialized:" in entry:
                        entry[":serialized:"] = payload
                data = json.dumps(entries).encode()
            elif name == "pytorch_variables.pth":
                buffer = io.BytesIO()
                torch.save(OpenMarker(marker), buffer)
                data = buffer.getvalue()
            changed = data if change is None else change(name, data)
            if changed is not None:
                zout.writestr(name, changed)
    return target


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters an optimiser moves (the token LSTM's recurrent bias is frozen at zero)."""
    return [p for p in model.parameters() if p.requires_grad]


def tiny_lstm(seed: int = 0, vocab_size: int = V, seq_len: int = T, init_std: float = 0.5) -> TokenLSTM:
    """A seeded token LSTM with embedding 6, hidden 5 (different sizes catch transposed weights)."""
    config = TokenLSTMConfig(vocab_size, seq_len, embed_dim=6, hidden_dim=5, start_token=0, init_std=init_std)
    return TokenLSTM(config, rng=torch.Generator().manual_seed(seed)).eval()


def tiny_discriminator_config(**overrides) -> DiscriminatorConfig:
    kwargs = dict(vocab_size=V, seq_len=T, embed_dim=6, filters=((1, 4), (2, 5), (3, 3), (4, 2)))
    return DiscriminatorConfig(**{**kwargs, **overrides})


def tiny_discriminator(seed: int = 0, **overrides) -> Discriminator:
    config = tiny_discriminator_config(**overrides)
    return Discriminator(config, rng=torch.Generator().manual_seed(seed))


@pytest.fixture
def lstm() -> TokenLSTM:
    return tiny_lstm()


@pytest.fixture
def discriminator() -> Discriminator:
    return tiny_discriminator()


class TableScorer:
    """A stub scorer: D(y) = table[y], a known value for every complete sequence over a small vocabulary.

    Records every batch it is asked to score, so tests can check how the rewards called it.
    """

    def __init__(self, vocab_size: int, seq_len: int, seed: int = 0) -> None:
        self.vocab_size, self.seq_len = vocab_size, seq_len
        g = torch.Generator().manual_seed(seed)
        self.table = torch.rand((vocab_size,) * seq_len, generator=g)  # one value in [0, 1) per sequence
        self.calls: list[torch.Tensor] = []

    def value(self, sequence) -> float:
        return float(self.table[tuple(int(t) for t in sequence)])

    def score(self, sequences: torch.Tensor) -> torch.Tensor:
        self.calls.append(sequences.clone())
        return self.table[tuple(sequences.T)]  # [B]


class FunctionScorer:
    """A stub scorer computing D(y) = fn(y) row by row (sequences may contain padding); records calls."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.calls: list[torch.Tensor] = []

    def score(self, sequences: torch.Tensor) -> torch.Tensor:
        self.calls.append(sequences.clone())
        return torch.tensor([float(self.fn(row.tolist())) for row in sequences], dtype=torch.float32)


def count_searched_rows(monkeypatch) -> list[int]:
    """The number of prefix rows of every Monte Carlo search the core runs."""
    rows: list[int] = []
    original = seqgan_env.core.MonteCarloSearch.__call__

    def counting(search, scorer, prefixes, *args, **kwargs):
        rows.append(prefixes.shape[0])
        return original(search, scorer, prefixes, *args, **kwargs)

    monkeypatch.setattr(seqgan_env.core.MonteCarloSearch, "__call__", counting)
    return rows


# --- a script run in a child process that something happens to at the N-th call of one function -----------

# The child runs train/SCRIPT.py's main(args) with "module:Class.method" (or "module:function") wrapped so
# that its N-th call, a state the run reaches on any machine, does ACTION:
#   SIGTERM, SIGINT, SIGKILL  the process sends itself the signal, before the call runs (SIGKILL inside
#                             torch.save: after writing half a file), so it dies as a real kill would, with
#                             no cleanup, no `finally` and no flush;
#   nan:ATTR                  after the call, a weight of the model at args[0].ATTR ('': args[0]) is NaN;
#   nanloss                   the call's result (a loss) becomes NaN;
#   enospc                    the call writes to a file (its second argument, as torch.save's) that fails
#                             every write as a full disk does.
INJECTOR = """
import errno, importlib, os, signal, sys
sys.path[:0] = [{train!r}, {root!r}]
script, target, n, action, *args = sys.argv[1:]
module_name, _, attr = target.partition(":")
owner = importlib.import_module(module_name)
*path, name = attr.split(".")
for part in path:
    owner = getattr(owner, part)
original, calls = getattr(owner, name), [0]

class FullDisk:
    def __init__(self, file):
        self.file = file
    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    def __getattr__(self, key):
        return getattr(self.file, key)

def injected(*a, **kw):
    calls[0] += 1
    if calls[0] != int(n):
        return original(*a, **kw)
    if action.startswith("SIG"):
        if target == "torch:save" and action == "SIGKILL":  # inside a write: half a file, then the kill
            a[1].write(b"half a checkpoint")
            a[1].flush()
        os.kill(os.getpid(), getattr(signal, action))
    if action == "enospc":
        return original(a[0], FullDisk(a[1]), *a[2:], **kw)
    result = original(*a, **kw)
    if action.startswith("nan:"):
        model = a[0]
        for part in filter(None, action[4:].split(".")):
            model = getattr(model, part)
        next(model.parameters()).data.view(-1)[0] = float("nan")
    elif action == "nanloss":
        return float("nan")
    return result

setattr(owner, name, injected)
sys.exit(importlib.import_module(script).main(args))
"""


def injector_command(
    tmp_path: Path, script: str, where: str, call: int, action: str, args: list[str]
) -> list[str]:
    """The command line of a child that runs train/`script`.py with `args` and `action`s at the
    `call`-th call of `where` (see INJECTOR)."""
    child = tmp_path / "injector.py"
    child.write_text(INJECTOR.format(train=str(ROOT / "train"), root=str(ROOT)))
    return [sys.executable, str(child), script, where, str(call), action, *args]


def killer_command(
    tmp_path: Path, where: str, call: int, args: list[str], script: str = "adversarial",
    signal_name: str = "SIGKILL",
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a child that runs train/`script`.py with `args` and sends
    itself `signal_name` at the `call`-th call of `where` ("module:Class.method"): the signal lands at a
    state the run reaches, never after a delay, so it is the same on a fast machine and a slow one."""
    return injector_command(tmp_path, script, where, call, signal_name, args), dict(os.environ)


def run_injected(
    tmp_path: Path, script: str, where: str, call: int, action: str, args: list[str], **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run train/`script`.py with `args` in a child process that `action`s at the `call`-th call of
    `where` (see INJECTOR); its exit code and output."""
    command = injector_command(tmp_path, script, where, call, action, args)
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=HANG_GUARD, **kwargs)


@pytest.fixture
def cuda_graphs_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> Any:
    """`seqgan_env.cuda_graphs` with torch.cuda's graph API stood in for on the CPU: any model can be
    "captured", and the capture block runs eagerly (where CUDA would only record it). For the tests of
    what a capture leaves behind."""
    import contextlib

    from seqgan_env import cuda_graphs

    class Stream:
        def wait_stream(self, other: Any) -> None:
            pass

    monkeypatch.setattr(cuda_graphs, "can_capture", lambda model, optimizer: True)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: object())
    monkeypatch.setattr(torch.cuda, "graph", lambda g: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device=None: torch.get_rng_state())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device=None: torch.set_rng_state(state))
    return cuda_graphs


class RecordedGraph:
    """A CUDA graph stood in for on the CPU: the aten operators a capture ran, each with the tensors
    it read and wrote, replayed in order on those same tensors (a result that is a new tensor is
    copied into the captured one; views and in-place results already are the captured memory). So a
    replay reads the captured inputs' current values and writes the captured outputs, as a graph
    does, and a Python-side decision made during the capture is frozen into it, as on a GPU."""

    # Operators a CUDA capture refuses, since they wait for the device (a value read back, a
    # data-dependent shape): raised here as the capture would.
    SYNCHRONISING = ("aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select", "aten::item")

    def __init__(self) -> None:
        self.ops: list[tuple[Any, tuple[Any, ...], dict[str, Any], Any, list[bool], bool]] = []
        self.generators: list[torch.Generator] = []
        self.replays = 0

    def register_generator_state(self, generator: torch.Generator) -> None:
        self.generators.append(generator)

    def replay(self) -> None:
        from torch.utils._pytree import tree_flatten

        # The operators as the capture ran them: below autograd (the backward's are among them), each
        # in the grad mode it ran in (some kernels keep what a backward needs only with grad enabled).
        with torch._C._AutoDispatchBelowADInplaceOrView():
            for func, args, kwargs, out, fresh, grad in self.ops:
                with torch.set_grad_enabled(grad):
                    result = func(*args, **kwargs)
                outputs = zip(tree_flatten(out)[0], tree_flatten(result)[0], fresh, strict=True)
                for captured, new, copy in outputs:
                    if copy:
                        captured.copy_(new)
        self.replays += 1


def recording(graph: RecordedGraph, pool: Any = None, **_: Any) -> Any:
    """`torch.cuda.graph(graph)` on the CPU: the block runs eagerly and its operators are recorded."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            if func._schema.name in RecordedGraph.SYNCHRONISING:
                raise RuntimeError(f"operation not permitted when stream is capturing ({func})")
            out = func(*args, **kwargs)
            read = {x.untyped_storage().data_ptr() for x in tree_flatten((args, kwargs))[0]
                    if isinstance(x, torch.Tensor)}  # fmt: skip
            fresh = [isinstance(x, torch.Tensor) and x.untyped_storage().data_ptr() not in read
                     for x in tree_flatten(out)[0]]  # fmt: skip
            graph.ops.append((func, args, kwargs, out, fresh, torch.is_grad_enabled()))
            return out

    return Record()


@pytest.fixture
def cuda_graphs_recorded_on_the_cpu(cuda_graphs_on_the_cpu: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`seqgan_env.cuda_graphs` with CUDA graphs stood in for by `RecordedGraph`s that replay, the CPU
    counted as a device that captures (the trainers' Adam built `capturable`, its step count a tensor,
    which torch then allows on the CPU): for the tests that a replayed graph computes what the eager
    code does, reads its inputs and the weights where they lie, and continues the random stream."""
    import importlib

    from seqgan_env import cuda_graphs

    adam = importlib.import_module("torch.optim.adam")  # the module (torch.optim.adam names the class)
    devices = adam._get_capturable_supported_devices()  # Adam's capturable form, on the CPU too
    monkeypatch.setattr(adam, "_get_capturable_supported_devices", lambda *_: [*devices, "cpu"])
    monkeypatch.setattr(cuda_graphs, "captures_on", lambda device: True)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", RecordedGraph)
    monkeypatch.setattr(torch.cuda, "graph", recording)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: "pool")
    return cuda_graphs
