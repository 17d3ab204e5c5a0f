"""Bad input, table-driven: every case names the exception (or exit code 2) and a regex its one-line
message must match. Covers the env constructor (gym.make and gym.make_vec), checkpoint files, the corpus
reader, and the train/sample.py and train/compare.py options; the scripts must write nothing.

Sizes are tiny (V 8, T 4) and nothing trains: the whole file runs in seconds.
"""

from __future__ import annotations

import builtins
import csv
import importlib.util
import io
import json
import os
import pickle
import re
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import OpenMarker, Reduced, T, V, case_id, poisoned_zip, tiny_discriminator, tiny_lstm

import seqgan_env.text as text_module
from seqgan_env.checkpoint import FORMAT, VERSION, load_checkpoint, model_entry, save_checkpoint
from seqgan_env.text import CorpusError, load_corpus
from train.sources import load_text_data

ROOT = Path(__file__).resolve().parents[1]
TINY = "SeqGAN-Tiny-v0"
MAX_MESSAGE = 300  # characters, not counting the test's temporary paths


def check_message(message: str, pattern: str, tmp_path: Path | None = None) -> None:
    """One line, short (the test's temporary paths aside), and matching `pattern`."""
    assert "\n" not in message, f"message spans several lines: {message!r}"
    short = message.replace(str(tmp_path), "TMP") if tmp_path is not None else message
    assert len(short) <= MAX_MESSAGE, f"message of {len(short)} characters: {message!r}"
    assert "weights_only" not in message and "Traceback" not in message, message
    assert re.search(pattern, message), f"{pattern!r} not found in {message!r}"


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Fail (instead of blocking forever) if the test takes more than 10 s, e.g. reading a FIFO."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError("blocked for 10 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(10)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- the environment's keyword arguments -------------------------------------------------------------------
class NotCallableScore:
    score = 0.5


CUDA = torch.cuda.is_available()
ENV_CASES: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"vocab_size": "8"}, TypeError, r"vocab_size must be an int >= 1, got '8' \(str\)"),
    ({"vocab_size": True}, TypeError, r"vocab_size .*True \(bool\)"),
    ({"vocab_size": 8.0}, TypeError, r"vocab_size .*8\.0 \(float\)"),
    ({"vocab_size": 0}, ValueError, r"vocab_size must be an int >= 1, got 0"),
    ({"seq_len": -1}, ValueError, r"seq_len must be an int >= 1, got -1"),
    ({"seq_len": float("nan")}, TypeError, r"seq_len .*nan \(float\)"),
    ({"n_rollouts": 1.5}, TypeError, r"n_rollouts must be an int >= 1, got 1\.5"),
    ({"n_rollouts": 0}, ValueError, r"n_rollouts must be an int >= 1, got 0"),
    ({"n_rollouts": "4"}, TypeError, r"n_rollouts .*'4' \(str\)"),
    ({"n_rollouts": float("inf")}, TypeError, r"n_rollouts .*inf \(float\)"),
    ({"reward_mode": "bogus"}, ValueError, r"reward_mode must be one of .*'mc'.*got 'bogus'"),
    ({"reward_mode": 1}, TypeError, r"reward_mode must be one of .*got 1 \(int\)"),
    ({"eos_id": 2.5}, TypeError, r"eos_id must be an int >= 0, got 2\.5"),
    ({"eos_id": V}, ValueError, rf"eos_id must be a vocabulary id in \[0, {V}\), got {V}"),
    ({"eos_id": -1}, ValueError, r"eos_id must be an int >= 0, got -1"),
    ({"start_token": V}, ValueError, rf"start_token must be a vocabulary id in \[0, {V}\)"),
    ({"start_token": "0"}, TypeError, r"start_token .*'0' \(str\)"),
    ({"embed_dim": 0}, ValueError, r"embed_dim must be an int >= 1, got 0"),
    ({"hidden_dim": "8"}, TypeError, r"hidden_dim .*'8'"),
    ({"discriminator_embed_dim": 0}, ValueError, r"discriminator_embed_dim must be an int >= 1"),
    ({"discriminator_filters": "1:8"}, TypeError, r"discriminator_filters must be .*pairs.*'1:8'"),
    ({"discriminator_filters": ()}, ValueError, r"discriminator_filters .*got an empty tuple"),
    ({"discriminator_filters": ((1, -1),)}, ValueError, r"discriminator_filters .*pair \(1, -1\)"),
    ({"discriminator_filters": ((1, 2, 3),)}, ValueError, r"discriminator_filters .*\(1, 2, 3\)"),
    ({"discriminator_filters": ((1.0, 8),)}, TypeError, r"discriminator_filters .*pair \(1\.0, 8\)"),
    ({"discriminator_filters": ((5, 8),)}, ValueError, r"filter widths \[5\] do not fit .*length 4"),
    ({"oracle_seed": "x"}, TypeError, r"oracle_seed must be an int seed.*'x'"),
    ({"oracle_seed": 2**64}, ValueError, r"oracle_seed must be an int seed in \[-2\*\*63, 2\*\*64\)"),
    ({"oracle_seed": True}, TypeError, r"oracle_seed .*True \(bool\)"),
    ({"oracle_path": 3}, TypeError, r"oracle_path must be a file path.*3 \(int\)"),
    ({"oracle_path": ""}, ValueError, r"oracle_path must be a file path, got an empty string"),
    ({"oracle_path": "/nonexistent/oracle.npz"}, FileNotFoundError, r"oracle parameter file not found"),
    ({"checkpoint": 3}, TypeError, r"checkpoint must be a file path.*3 \(int\)"),
    ({"checkpoint": b"run.pt"}, TypeError, r"checkpoint must be a file path.*\(bytes\)"),
    ({"checkpoint": "/nonexistent/run.pt"}, FileNotFoundError, r"checkpoint not found: /nonexistent/run\.pt"),
    ({"vocabulary": "abcdefgh"}, TypeError, r"vocabulary must be a sequence of token strings.*\(str\)"),
    ({"vocabulary": list(range(V))}, TypeError, r"vocabulary .*got 0 \(int\) at index 0"),
    ({"vocabulary": ["a"] * (V - 1)}, ValueError, rf"vocabulary has {V - 1} tokens, the model has {V}"),
    ({"device": "foo"}, ValueError, r"device 'foo' is not a torch device name; expected 'cpu', 'cuda'"),
    ({"device": "cuda:99"}, ValueError, r"device 'cuda:99': (CUDA is not available|this machine has)"),
    ({"device": 0}, TypeError, r"device must be a torch device string.*0 \(int\)"),
    ({"device": "meta"}, ValueError, r"device 'meta' is not supported"),
    ({"model_seed": "x"}, TypeError, r"model_seed must be an int seed.*'x' \(str\)"),
    ({"model_seed": 1.5}, TypeError, r"model_seed .*1\.5 \(float\)"),
    ({"rollout_policy": "policy"}, TypeError, r"rollout_policy must be a TokenLSTM.*'policy'"),
    ({"discriminator": 3}, TypeError, r"discriminator must be a Discriminator.*3 \(int\)"),
    ({"rollout_policy": tiny_lstm(vocab_size=9)}, ValueError,
     r"the given models have V=9, T=4, but vocab_size=8 came from the arguments or the registered id's "
     r"defaults: use gym\.make\('SeqGAN-v0', rollout_policy=\.\.\.\).*pass vocab_size=9, seq_len=4"),
    ({"rollout_policy": tiny_lstm(), "discriminator": tiny_discriminator(vocab_size=9)}, ValueError,
     r"the given models: rollout policy \(V=8, T=4\) and discriminator \(V=9, T=4\) disagree on sizes"),
    ({"scorer": 3}, TypeError, r"scorer must be an object with a callable score"),
    ({"scorer": NotCallableScore()}, TypeError, r"scorer must be an object with a callable score"),
    ({"vocab_sise": 8}, TypeError, r"unknown argument 'vocab_sise' .*did you mean vocab_size\?"),
    ({"vocab_size": 10**10}, ValueError, r"these sizes need about \d+\.\d GiB, this .*: lower vocab_size"),
    ({"n_rollouts": 10**9}, ValueError, r"need about .* GiB: lower num_envs \* n_rollouts \(about"),
    ({"discriminator_filters": ((1, 10**7),)}, ValueError, r"GiB: lower discriminator_filters"),
    ({"rollouts": 4}, TypeError, r"unknown argument 'rollouts'"),
]
if not CUDA:
    ENV_CASES.append(({"device": "cuda"}, ValueError, r"device 'cuda': CUDA is not available on this "
                                                      r"machine"))  # fmt: skip


def make_env(maker: str, **kwargs: Any) -> Any:
    if maker == "make":
        return gym.make(TINY, **kwargs)
    return gym.make_vec(TINY, num_envs=2, **kwargs)


@pytest.mark.parametrize("maker", ["make", "make_vec"])
@pytest.mark.parametrize(("kwargs", "error", "pattern"), ENV_CASES, ids=case_id)
def test_env_arguments(maker: str, kwargs: dict[str, Any], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error) as caught:
        make_env(maker, **kwargs)
    check_message(str(caught.value), pattern)


def test_live_models_in_kwargs_keep_messages_one_line(lstm) -> None:
    """gymnasium.make appends every kwarg's repr to a TypeError; a torch module's spans many lines."""
    with pytest.raises(TypeError) as caught:
        gym.make(TINY, rollout_policy=lstm, n_rollouts="4")
    check_message(str(caught.value), r"n_rollouts .*'4'")


def test_valid_unusual_arguments_are_accepted(tmp_path: Path) -> None:
    """numpy integers, a PathLike checkpoint and a list of pairs are fine."""
    env = gym.make(TINY, n_rollouts=np.int64(2), eos_id=np.int32(1), discriminator_filters=[[1, 2], [2, 2]],
                   model_seed=np.uint8(3), vocabulary=tuple("abcdefgh"))  # fmt: skip
    assert env.unwrapped.n_rollouts == 2 and type(env.unwrapped.n_rollouts) is int
    env.reset(seed=0)
    env.step(0)


# --- checkpoint files ---------------------------------------------------------------------------------------
def entries(vocab_size: int = V, seq_len: int = T) -> dict[str, Any]:
    return {
        "generator": model_entry(tiny_lstm(1, vocab_size, seq_len)),
        "discriminator": model_entry(tiny_discriminator(2, vocab_size=vocab_size, seq_len=seq_len)),
    }


def with_config(key: str, **changes: Any) -> Callable[[Path], None]:
    """A writer of a checkpoint whose `key` entry's config has `changes` (the weights stay)."""

    def write(path: Path) -> None:
        payload = entries()
        payload[key] = {**payload[key], "config": {**payload[key]["config"], **changes}}
        save_checkpoint(path, payload)

    return write


def without_weight(name: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        payload = entries()
        payload["generator"]["state_dict"].pop(name)
        save_checkpoint(path, payload)

    return write


def write_damaged(path: Path, payload: dict[str, Any]) -> None:
    """A checkpoint as a damaged file or another program could hold it: `save_checkpoint` refuses to
    write non-finite tensors, so this writes the same format without its checks."""
    torch.save({"format": FORMAT, "version": VERSION, **payload}, path)


def with_weight(key: str, name: str, value: float) -> Callable[[Path], None]:
    """A writer of a checkpoint whose `key` entry's weight `name` holds `value` in one place."""

    def write(path: Path) -> None:
        payload = entries()
        payload[key]["state_dict"][name].view(-1)[-1] = value
        write_damaged(path, payload)

    return write


def truncated(path: Path) -> None:
    save_checkpoint(path, entries())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def fifo(path: Path) -> None:
    os.mkfifo(path)


CHECKPOINT_CASES: list[tuple[str, Callable[[Path], None], dict[str, Any], type[Exception], str]] = [
    ("garbage", lambda p: p.write_bytes(b"hello, I am not a checkpoint\n"), {}, ValueError,
     r"run\.pt is not a seqgan-env checkpoint \(torch\.load failed"),
    ("empty", lambda p: p.write_bytes(b""), {}, ValueError, r"run\.pt is not a seqgan-env checkpoint"),
    ("bytes", lambda p: p.write_bytes(bytes(range(256))), {}, ValueError,
     r"not a seqgan-env checkpoint \(torch\.load failed: not a weights-only pickle"),
    ("zip header", lambda p: p.write_bytes(b"PK\x03\x04not a zip"), {}, ValueError, r"not a seqgan-env"),
    ("truncated", truncated, {}, ValueError, r"run\.pt is not a seqgan-env checkpoint \(torch\.load failed"),
    ("tensor file", lambda p: torch.save(torch.zeros(3), p), {}, ValueError, r"no format tag"),
    ("pickled object", lambda p: torch.save({"format": FORMAT, "version": VERSION, "x": Fraction(1, 3)}, p),
     {}, ValueError, r"run\.pt is not a seqgan-env checkpoint .*pickled objects \(fractions\.Fraction\)"),
    ("version", lambda p: torch.save({"format": FORMAT, "version": 99}, p), {}, ValueError,
     r"checkpoint version 99, expected 1"),
    ("directory", lambda p: p.mkdir(), {}, ValueError, r"run\.pt is a directory"),
    ("fifo", fifo, {}, ValueError, r"run\.pt is not a regular file"),
    ("vocab_size vs weights", with_config("generator", vocab_size=9), {}, ValueError,
     r"run\.pt, entry 'generator': embedding\.weight has shape \(8, 6\) in the file, .*needs \(9, 6\)"),
    ("hidden_dim vs weights", with_config("generator", hidden_dim=7), {}, ValueError,
     r"entry 'generator': lstm\.weight_ih_l0 has shape \(20, 6\) .*needs \(28, 6\)"),
    ("filters vs weights", with_config("discriminator", filters=[[1, 5], [2, 5], [3, 3], [4, 2]]), {},
     ValueError, r"entry 'discriminator': convs\.0\.weight has shape \(4, 6, 1\) .*needs \(5, 6, 1\)"),
    ("huge config", with_config("generator", vocab_size=10**12), {}, ValueError,
     r"embedding\.weight has shape \(8, 6\) .*needs \(1000000000000, 6\)"),
    ("unknown config key", with_config("generator", colour="red"), {}, ValueError,
     r"entry 'generator': unknown TokenLSTMConfig key\(s\) \['colour'\]"),
    ("str config value", with_config("generator", vocab_size="8"), {}, ValueError,
     r"entry 'generator': config vocab_size must be an int, got '8'"),
    ("nan config value", with_config("generator", init_std=float("nan")), {}, ValueError,
     r"config init_std must be a finite number, got nan"),
    ("bad config value", with_config("discriminator", dropout=1.5), {}, ValueError,
     r"entry 'discriminator': bad config \(dropout must be in \[0, 1\), got 1\.5\)"),
    ("nan weight", with_weight("generator", "lstm.weight_hh_l0", float("nan")), {}, ValueError,
     r"run\.pt: tensor \['generator'\]\['state_dict'\]\['lstm\.weight_hh_l0'\] holds 1 NaN and 0 infinite "
     r"values, expected finite numbers"),
    ("inf weight", with_weight("discriminator", "output.bias", float("-inf")), {}, ValueError,
     r"tensor \['discriminator'\]\['state_dict'\]\['output\.bias'\] holds 0 NaN and 1 infinite values"),
    ("missing weight", without_weight("output.bias"), {}, ValueError,
     r"entry 'generator': weights do not match its config .*missing \['output\.bias'\]"),
    ("entry not a dict", lambda p: save_checkpoint(p, {**entries(), "generator": [1, 2]}), {}, ValueError,
     r"entry 'generator': not a model entry"),
    ("no discriminator", lambda p: save_checkpoint(p, {"generator": entries()["generator"]}), {}, ValueError,
     r"run\.pt holds no 'discriminator' entry"),
    ("bad vocabulary", lambda p: save_checkpoint(p, {**entries(), "vocabulary": {"tokens": 3}}), {},
     ValueError, r"run\.pt: bad 'vocabulary' entry \(not a vocabulary dict"),
    ("sizes of the registered id", lambda p: save_checkpoint(p, entries(50, 8)), {}, ValueError,
     r"run\.pt holds models of V=50, T=8, but vocab_size=8 and seq_len=4 came from the arguments or the "
     r"registered id's defaults: use gym\.make\('SeqGAN-v0', checkpoint=\.\.\.\).*pass vocab_size=50, "
     r"seq_len=8"),
    ("seq_len argument", lambda p: save_checkpoint(p, entries(50, 8)), {"vocab_size": 50, "seq_len": 5},
     ValueError, r"V=50, T=8, but seq_len=5 came from the arguments"),
]


@pytest.mark.parametrize("maker", ["make", "make_vec"])
@pytest.mark.parametrize(("name", "write", "kwargs", "error", "pattern"), CHECKPOINT_CASES,
                         ids=[c[0] for c in CHECKPOINT_CASES])  # fmt: skip
def test_checkpoint_files(
    tmp_path: Path, no_hang: None, maker: str, name: str, write: Callable[[Path], None],
    kwargs: dict[str, Any], error: type[Exception], pattern: str,
) -> None:  # fmt: skip
    path = tmp_path / "run.pt"
    write(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's unpickler comments on garbage bytes
        with pytest.raises(error) as caught:
            make_env(maker, checkpoint=str(path), **kwargs)
    check_message(str(caught.value), pattern, tmp_path)


def test_load_checkpoint_message_is_short(tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    torch.save({"format": FORMAT, "version": VERSION, "x": Fraction(1, 3)}, path)
    with pytest.raises(ValueError) as caught:
        load_checkpoint(path)
    check_message(str(caught.value), r"pickled objects", tmp_path)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no 600-character chain


def test_registered_id_with_a_checkpoint_of_other_sizes(tmp_path: Path) -> None:
    """The file's sizes win with SeqGAN-v0, or with matching sizes; the id's other size kwargs
    (embed_dim, hidden_dim, discriminator_*) do not matter when the file supplies both models."""
    path = tmp_path / "run.pt"
    save_checkpoint(path, entries(50, 8))
    for env in (gym.make("SeqGAN-v0", checkpoint=path, n_rollouts=2),
                gym.make(TINY, checkpoint=str(path), vocab_size=50, seq_len=8)):  # fmt: skip
        assert (env.unwrapped.vocab_size, env.unwrapped.seq_len) == (50, 8)
        env.reset(seed=0)
        env.step(3)


# --- the corpus reader --------------------------------------------------------------------------------------
def unreadable(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file open() refuses (tests run as root, so chmod 000 would not stop them)."""
    path.write_text("a b c\nd e f\n")
    real_open = builtins.open

    def refuse(file: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(file) == os.fspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(text_module, "open", refuse, raising=False)


def write_bytes(content: bytes) -> Callable[[Path, pytest.MonkeyPatch], None]:
    return lambda path, monkeypatch: path.write_bytes(content)


CORPUS_CASES: list[tuple[str, Callable[[Path, pytest.MonkeyPatch], Any], type[Exception], str]] = [
    ("fifo", lambda p, m: os.mkfifo(p), CorpusError,
     r"corpus path is a FIFO \(named pipe\), expected a regular"),
    ("directory", lambda p, m: p.mkdir(), CorpusError, r"corpus path is a directory"),
    ("missing", lambda p, m: None, CorpusError, r"corpus file not found: .*corpus\.txt"),
    ("empty", write_bytes(b""), CorpusError, r"corpus\.txt is empty"),
    ("blank lines", write_bytes(b"\n  \n\t\n"), CorpusError, r"empty or has only blank lines"),
    ("binary", write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), CorpusError, r"NUL byte.*looks binary"),
    ("latin-1", write_bytes("café au lait\n".encode("latin-1")), CorpusError,
     r"is not valid UTF-8 \(byte offset 3"),
    ("unreadable", unreadable, CorpusError,
     r"corpus file is not readable \(permission denied\): .*corpus\.txt"),
    ("special tokens only", write_bytes(b"<bos> <eos>\n<unk> <pad>\n<eos> <eos>\n"), CorpusError,
     r"corpus\.txt has no ordinary tokens: every token spells one of the reserved <bos> <eos> <pad> <unk>"),
]


@pytest.mark.parametrize("reader", ["load_corpus", "load_text_data"])
@pytest.mark.parametrize(("name", "make", "error", "pattern"), CORPUS_CASES, ids=[c[0] for c in CORPUS_CASES])
def test_corpus_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_hang: None, reader: str, name: str,
    make: Callable[[Path, pytest.MonkeyPatch], Any], error: type[Exception], pattern: str,
) -> None:  # fmt: skip
    path = tmp_path / "corpus.txt"
    make(path, monkeypatch)
    with pytest.raises(error) as caught:
        (load_corpus if reader == "load_corpus" else load_text_data)(path, seq_len=T)
    check_message(str(caught.value), pattern, tmp_path)


CORPUS_ARGUMENT_CASES: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("int path", {"path": 10**6}, TypeError,
     r"corpus path must be a str or os\.PathLike, got 1000000 \(int\)"),
    ("character device", {"path": "/dev/null"}, CorpusError, r"corpus path is a character device"),
    ("nan test fraction", {"test_fraction": float("nan")}, ValueError,
     r"test_fraction must be a number in \[0, 1\), got nan"),
    ("str test fraction", {"test_fraction": "0.1"}, ValueError,
     r"test_fraction must be a number .*got '0\.1'"),
    ("negative seed", {"seed": -1}, ValueError, r"seed must be an int >= 0, got -1"),
    ("float seed", {"seed": 1.5}, ValueError, r"seed must be an int >= 0, got 1\.5"),
    ("seq_len", {"seq_len": 0}, ValueError, r"seq_len must be an int >= 1, got 0"),
    ("max_size", {"max_size": 3}, ValueError, r"max_size must be an int > 3"),
    ("level", {"level": "byte"}, ValueError, r"level must be 'word' or 'char', got 'byte'"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "kwargs", "error", "pattern"), CORPUS_ARGUMENT_CASES,
                         ids=[c[0] for c in CORPUS_ARGUMENT_CASES])  # fmt: skip
def test_corpus_arguments(
    tmp_path: Path, no_hang: None, name: str, kwargs: dict[str, Any], error: type[Exception], pattern: str
) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("a b c\nd e f\ng h\n")
    with pytest.raises(error) as caught:
        load_corpus(**{"path": path, **kwargs})
    check_message(str(caught.value), pattern, tmp_path)


def test_text_data_expected_vocabulary_must_be_a_path(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("a b c\nd e f\ng h\n")
    with pytest.raises(TypeError) as caught:
        load_text_data(path, seq_len=T, test_fraction=0.5, expected_vocabulary=3)  # type: ignore[arg-type]
    check_message(str(caught.value), r"expected_vocabulary must be a path")


# --- the scripts --------------------------------------------------------------------------------------------
def load_script(name: str) -> ModuleType:
    """train/NAME.py as a module (train/ on sys.path: compare.py imports adversarial)."""
    if str(ROOT / "train") not in sys.path:
        sys.path.insert(0, str(ROOT / "train"))
    spec = importlib.util.spec_from_file_location(f"{name}_bad_input", ROOT / "train" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_main(module: ModuleType, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """main(argv)'s exit code (returned, or from SystemExit), stdout and stderr."""
    try:
        code = module.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under `folder` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


def fake_run(folder: Path, rounds: int = 2, last_round: int | None = None,
             files: tuple[str, ...] = ("mle", "final"), metrics: bool = True,
             **settings: Any) -> Path:  # fmt: skip
    """A train/adversarial.py run folder as the scripts read it: config.json (with `settings`),
    metrics.csv (adversarial rounds 0..last_round) and checkpoints holding a tiny generator; nothing
    trained."""
    folder.mkdir(parents=True)
    config = {"preset": "tiny", "mode": "seqgan", "rounds": rounds, "seed": 0, "eval_samples": 16, **settings}
    (folder / "config.json").write_text(json.dumps(config))
    if metrics:
        last = rounds if last_round is None else last_round
        with (folder / "metrics.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, ["phase", "step", "generator_updates", "nll_oracle", "nll_oracle_se",
                                        "nll_test", "nll_test_se", "elapsed_s"])  # fmt: skip
            writer.writeheader()
            for step in ([] if last < 0 else range(last + 1)):
                writer.writerow({"phase": "adversarial", "step": step, "generator_updates": 10 + step,
                                 "nll_oracle": 5.0, "nll_oracle_se": 0.1, "nll_test": 3.0, "nll_test_se": 0.1,
                                 "elapsed_s": 1.0})  # fmt: skip
    for name in files:
        save_checkpoint(folder / f"{name}.pt", {"generator": model_entry(tiny_lstm(1))})
    return folder


def corrupt_final(folder: Path) -> None:
    (folder / "final.pt").write_bytes(b"not a checkpoint")


def nan_final(folder: Path) -> None:
    entry = model_entry(tiny_lstm(1))
    entry["state_dict"]["output.weight"][0, 0] = float("nan")
    write_damaged(folder / "final.pt", {"generator": entry})


def vocab_json(text: str) -> Callable[[Path], None]:
    """A text run's vocab.json holding `text` (the checkpoint has no vocabulary of its own)."""
    return lambda folder: (folder / "vocab.json").write_text(text)


def mismatched_final(folder: Path) -> None:
    entry = model_entry(tiny_lstm(1))
    wrong = {**entry, "config": {**entry["config"], "embed_dim": 7}}
    save_checkpoint(folder / "final.pt", {"generator": wrong})


SAMPLE_CASES: list[tuple[list[str], Callable[[Path], None] | None, str]] = [
    (["-n", "0"], None, r"-n must be >= 1, got 0"),
    (["-n", "-5"], None, r"-n must be >= 1, got -5"),
    (["-n", "1.5"], None, r"argument -n: invalid int value: '1\.5'"),
    (["--temperature", "nan"], None, r"--temperature must be a finite number >= 1e-06, got nan"),
    (["--temperature", "inf"], None, r"--temperature must be a finite number >= 1e-06, got inf"),
    (["--temperature=-inf"], None, r"--temperature must be a finite number .*got -inf"),
    (["--temperature", "0"], None, r"--temperature must be a finite number >= 1e-06, got 0\.0"),
    (["--temperature", "-1"], None, r"--temperature must be a finite number .*got -1\.0"),
    (["--temperature", "1e-40"], None, r"--temperature must be a finite number >= 1e-06, got 1e-40"),
    (["--temperature", "abc"], None, r"argument --temperature: invalid float value: 'abc'"),
    (["--seed", "-1"], None, r"--seed must be an int in \[0, 2\*\*64\), got -1"),
    (["--seed", str(2**64)], None, r"--seed must be an int in \[0, 2\*\*64\), got 18446744073709551616"),
    (["--seed", "x"], None, r"argument --seed: invalid int value: 'x'"),
    (["--checkpoint", "best"], None, r"argument --checkpoint: invalid choice: 'best'"),
    (["--checkpoint", "latest"], None,
     r"error: .*run has no latest\.pt checkpoint \(pass --checkpoint final\)"),
    ([], corrupt_final, r"error: .*final\.pt is not a seqgan-env checkpoint \(torch\.load failed"),
    ([], mismatched_final, r"error: .*final\.pt, entry 'generator': embedding\.weight has shape \(8, 6\) .*"
                           r"needs \(8, 7\)"),
    ([], nan_final, r"error: .*final\.pt: tensor \['generator'\]\['state_dict'\]\['output\.weight'\] "
                    r"holds 1 NaN"),
    ([], vocab_json("not json"), r"error: .*vocab\.json is not a UTF-8 JSON vocabulary file"),
    ([], vocab_json("[1, 2]"), r"error: .*not a vocabulary dict"),
    ([], vocab_json('{"format": "seqgan_env.vocabulary", "version": 1, "tokens": ["<bos>", "<eos>", "<unk>", '
                    '"a"]}'), r"error: .*run's vocabulary has 4 tokens, its generator 8"),
    ([], vocab_json('{"format": "seqgan_env.vocabulary", "version": 1, "tokens": ["<bos>", "<eos>", "<unk>", '
                    '3]}'),
     r"error: .*tokens must be non-empty strings, got 3"),
    ([], vocab_json('{"format": "seqgan_env.vocabulary", "version": 1, "tokens": {"__reduce__": '
                    '"os.system"}}'),
     r"error: .*vocabulary dict needs a 'tokens' list"),
]


@pytest.mark.parametrize(("options", "damage", "pattern"), SAMPLE_CASES, ids=case_id)
def test_sample_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str],
    damage: Callable[[Path], None] | None, pattern: str,
) -> None:  # fmt: skip
    run = fake_run(tmp_path / "run")
    if damage is not None:
        damage(run)
    before = snapshot(tmp_path)
    code, out, err = run_main(load_script("sample"), [str(run), *options], capsys)
    assert code == 2 and out == "", (code, out, err)
    check_message(err.strip().splitlines()[-1], pattern, tmp_path)
    assert snapshot(tmp_path) == before


def test_sample_prints_in_chunks_as_one_batch_would(tmp_path: Path) -> None:
    """Chunked generation draws from the RNG as one `sample(n)` call does: the same lines."""
    sample = load_script("sample")
    generator = tiny_lstm(1)
    chunks = list(sample.generate_lines(generator, None, 2100, 0.9, seed=3))
    assert [len(c) for c in chunks] == [1024, 1024, 52]
    at_once = generator.sample(2100, torch.Generator().manual_seed(3), 0.9)
    assert [line for c in chunks for line in c] == [" ".join(map(str, row.tolist())) for row in at_once]


def test_sample_output_is_unchanged_for_a_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = fake_run(tmp_path / "run")
    code, out, _ = run_main(load_script("sample"), [str(run), "-n", "5", "--seed", "4"], capsys)
    expected = tiny_lstm(1).sample(5, torch.Generator().manual_seed(4))
    assert code == 0 and out == "".join(" ".join(map(str, r.tolist())) + "\n" for r in expected)


def existing_compare_run(folder: Path) -> None:
    (folder / "runs" / "compare_tiny_s0_seqgan").mkdir(parents=True)


COMPARE_CASES: list[tuple[list[str], str]] = [
    (["--temperatures", "abc"], r"--temperatures must be comma-separated numbers > 0, got 'abc'"),
    (["--temperatures", "nan"], r"--temperatures must be finite, >= 1e-06, got nan"),
    (["--temperatures", "inf"], r"--temperatures must be finite, >= 1e-06, got inf"),
    (["--temperatures", "0"], r"--temperatures must be finite, >= 1e-06, got 0\.0"),
    (["--temperatures", "-0.5"], r"--temperatures must be finite, >= 1e-06, got -0\.5"),
    (["--temperatures", "1.0,1e-300"], r"--temperatures must be finite, >= 1e-06, got 1e-300"),
    (["--temperatures", ""], r"--temperatures must be comma-separated numbers > 0, got ''"),
    (["--temperatures", "0.8,,1.0"], r"got '' in '0\.8,,1\.0'"),
    (["--temperatures", "0.8,1e999"], r"got inf in '0\.8,1e999'"),
    (["--seed", "-1"], r"--seed must be in \[0, 2\*\*63 - 1\], got -1"),
    (["--seed", "x"], r"argument --seed: invalid int value: 'x'"),
    (["--extra", "--bogus", "1"], r"unrecognized arguments: --bogus 1"),
    (["--extra", "--threads", "x"], r"argument --threads: invalid int value: 'x'"),
    (["--extra", "--rounds", "-1"], r"--extra: --rounds must be >= 0, got -1"),
    (["--extra", "--name", "foo"], r"--extra: --name cannot be set here: compare\.py sets it"),
    (["--extra", "--out", "foo"], r"--extra: --out cannot be set here: compare\.py sets it"),
    (["--extra", "--disc-filters", "1:0"], r"--extra: --disc-filters: filter counts must be >= 1, got \[0\]"),
]
UNFINISHED_RUNS: list[tuple[str, dict[str, Any], str]] = [
    ("no final.pt", {"files": ("mle",)},
     r"--seqgan-run .*run is unfinished \(no final\.pt\); finish it first: "
     r"python train/adversarial\.py --resume .*run"),
    ("no mle.pt", {"files": ("final",)}, r"--seqgan-run .*run is unfinished \(no mle\.pt\)"),
    ("round 1 of 2", {"last_round": 1},
     r"metrics\.csv ends at adversarial round 1 of the 2 in its config\.json"),
    ("no rounds", {"last_round": -1}, r"metrics\.csv ends at adversarial round none of the 2"),
    ("no metrics", {"metrics": False}, r"--seqgan-run .*run is unfinished \(no metrics\.csv\)"),
]


@pytest.mark.parametrize(("options", "pattern"), COMPARE_CASES, ids=case_id)
def test_compare_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], pattern: str
) -> None:
    """Bad options with a finished run: refused at once, before any control run starts."""
    run = fake_run(tmp_path / "run")
    before = snapshot(tmp_path)
    extra = options if options[0] == "--extra" else []
    options = [] if extra else options
    code, out, err = run_main(load_script("compare"), ["--seqgan-run", str(run), *options, *extra], capsys)
    assert code == 2, (code, out, err)
    check_message(err.strip().splitlines()[-1], pattern, tmp_path)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("name", "settings", "pattern"), UNFINISHED_RUNS,
                         ids=[c[0] for c in UNFINISHED_RUNS])  # fmt: skip
def test_compare_refuses_unfinished_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, settings: dict[str, Any], pattern: str
) -> None:
    run = fake_run(tmp_path / "run", **settings)
    before = snapshot(tmp_path)
    options = ["--seqgan-run", str(run), "--temperatures", "1.0"]
    code, out, err = run_main(load_script("compare"), options, capsys)
    assert code == 2, (code, out, err)
    check_message(err.strip().splitlines()[-1], pattern, tmp_path)
    assert snapshot(tmp_path) == before


COMPARE_SETUP_CASES: list[tuple[str, list[str], Callable[[Path], None] | None, str]] = [
    ("not a run folder", ["--seqgan-run", "{tmp}/nothing"], None,
     r"--seqgan-run .*nothing is not a train/adversarial\.py run folder \(no config\.json\)"),
    ("unknown preset", ["--preset", "huge", "--out", "{tmp}/runs"], None,
     r"--preset must be one of \[.*'tiny'.*got 'huge'"),
    ("missing oracle", ["--preset", "tiny", "--oracle", "{tmp}/no.npz", "--out", "{tmp}/runs"], None,
     r"--oracle .*no\.npz: no such file"),
    ("existing run", ["--preset", "tiny", "--out", "{tmp}/runs"], existing_compare_run,
     r"compare_tiny_s0_seqgan already exists: pass --seqgan-run .* to reuse it"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "options", "prepare", "pattern"), COMPARE_SETUP_CASES,
                         ids=[c[0] for c in COMPARE_SETUP_CASES])  # fmt: skip
def test_compare_setup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, options: list[str],
    prepare: Callable[[Path], None] | None, pattern: str,
) -> None:  # fmt: skip
    if prepare is not None:
        prepare(tmp_path)
    before = snapshot(tmp_path)
    argv = [o.replace("{tmp}", str(tmp_path)) for o in options]
    code, out, err = run_main(load_script("compare"), argv, capsys)
    assert code == 2, (code, out, err)
    check_message(err.strip().splitlines()[-1], pattern, tmp_path)
    assert snapshot(tmp_path) == before


# --- the experiment's sizes: refused before anything is written or allocated -------------------------------
HUGE = "1" + "0" * 400  # beyond a float
EXPERIMENT_CASES: list[tuple[str, list[str], str]] = [
    ("adversarial", ["--disc-filters", "1:0"],
     r"^error: --disc-filters: filter counts must be >= 1, got \[0\]$"),
    ("adversarial", ["--disc-filters", "1:0,2:5"], r"--disc-filters: filter counts must be >= 1, got \[0\]"),
    ("adversarial", ["--disc-filters", "1:-3"], r"--disc-filters: filter counts must be >= 1, got \[-3\]"),
    ("pretrain", ["--disc-filters", "2:5,1:0"], r"--disc-filters: filter counts must be >= 1, got \[0\]"),
    ("adversarial", ["--disc-filters", "30:10"],
     r"--disc-filters: filter widths \[30\] do not fit .*length 8"),
    ("adversarial", ["--gen-embed-dim", "9" * 23], r"GiB: lower --gen-embed-dim \(about"),
    ("pretrain", ["--gen-embed-dim", "9" * 23], r"GiB: lower --gen-embed-dim \(about"),
    ("adversarial", ["--gen-hidden-dim", "100000000"], r"GiB: lower --gen-hidden-dim \(about"),
    ("adversarial", ["--reward-mode", "dense", "--disc-hidden-dim", "10000000"],
     r"GiB: lower --disc-hidden-dim \(about"),
    ("adversarial", ["--no-diagnostics", "--disc-embed-dim", str(10**12)],
     r"GiB: lower --disc-embed-dim \(about"),
    ("adversarial", ["--disc-filters", "1:99999999999999999999"], r"GiB: lower --disc-filters \(about"),
    ("adversarial", ["--pg-batch-size", str(10**11)], r"GiB: lower --pg-batch-size or "),
    ("adversarial", ["--seq-len", str(10**10)], r"GiB: lower [^(]*--seq-len"),
    ("adversarial", ["--no-diagnostics", "--seq-len", str(10**10)], r"GiB: lower [^(]*--seq-len"),
    ("adversarial", ["--batch-size", HUGE], r"GiB: lower --batch-size or .*\(about [0-9.]+e\+\d+ GiB\)$"),
    ("adversarial", ["--reward", "bleu", "--bleu-n", "100000"],
     r"--bleu-n must be at most --seq-len \(8\): a sequence has no longer n-grams, got 100000"),
    ("adversarial", ["--test-fraction", "-5"], r"--test-fraction must be in \(0, 1\), got -5\.0"),
    ("adversarial", ["--max-vocab", "-1"], r"--max-vocab must be > 3 .*got -1"),
    ("adversarial", ["--bleu-samples", "-3"], r"--bleu-samples must be >= 2 .*got -3"),
    ("pretrain", ["--test-fraction", "1"], r"--test-fraction must be in \(0, 1\), got 1\.0"),
]  # fmt: skip


@pytest.mark.parametrize(("script", "options", "pattern"), EXPERIMENT_CASES,
                         ids=[f"{c[0]}: {' '.join(c[1])[:40]}" for c in EXPERIMENT_CASES])  # fmt: skip
def test_experiment_sizes_and_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_hang: None, script: str, options: list[str],
    pattern: str,
) -> None:  # fmt: skip
    """Each option is checked, with or without the options it goes with (--data, --reward bleu), and
    sizes that cannot fit in memory name the options that set them: one line, exit code 2, no run folder."""
    argv = ["--preset", "tiny", "--threads", "1", "--no-progress", "--out", str(tmp_path / "runs"), *options]
    code, out, err = run_main(load_script(script), argv, capsys)
    assert code == 2, (code, out, err)
    check_message(err.strip().splitlines()[-1], pattern, tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- files a user hands us: SB3 models, run folders of other scripts, oracle pickles ------------------------
@pytest.fixture(scope="module")
def ppo_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PPO model of the tiny generator's shape (V 8, T 4, embedding 6, LSTM 5), saved by SB3."""
    from agents.sb3 import SB3VecEnv, make_model
    from seqgan_env import VARIANTS, SeqGANVectorEnv

    env = SB3VecEnv(SeqGANVectorEnv(2, **{**VARIANTS[TINY], "reward_mode": "shaped"}))
    path = tmp_path_factory.mktemp("sb3") / "ppo.zip"
    make_model("ppo", env, tiny_lstm(1), n_steps=4, batch_size=8, n_epochs=1).save(path)
    return path


Change = Callable[[str, bytes], bytes | None]  # a zip member's name and bytes -> new bytes (None: drop it)


def nan_policy(name: str, data: bytes) -> bytes:
    if name != "policy.pth":
        return data
    state = torch.load(io.BytesIO(data), weights_only=True)
    state["action_net.weight"][0, 0] = float("nan")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def pickled_policy(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    torch.save(OpenMarker(Path("/nonexistent/marker")), buffer)
    return buffer.getvalue() if name == "policy.pth" else data


def foreign_policy(name: str, data: bytes) -> bytes:
    if name != "data":
        return data
    entries = json.loads(data)
    entries["policy_class"]["__module__"] = "somebody.policies"
    return json.dumps(entries).encode()


SB3_ZIP_CASES: list[tuple[str, Change | bytes, str]] = [
    ("not a zip", b"PK\x03\x04 not a zip", r"evil\.zip is not a saved Stable-Baselines3 model"),
    ("no data", lambda name, data: None if name == "data" else data,
     r"evil\.zip is not a saved Stable-Baselines3 model \(it has no 'data'\)"),
    ("no policy", lambda name, data: None if name == "policy.pth" else data, r"it has no 'policy\.pth'"),
    ("data not JSON", lambda name, data: b"\x80\x04junk" if name == "data" else data,
     r"evil\.zip: its 'data' is not JSON"),
    ("data a list", lambda name, data: b"[1, 2]" if name == "data" else data,
     r"its 'data' is a JSON list, expected an object"),
    ("data too large", lambda name, data: b" " * (16 * 2**20 + 1) if name == "data" else data,
     r"'data' is larger than 16777216 bytes"),
    ("pickled policy", pickled_policy,
     r"policy\.pth is not a weights-only state dict \(torch\.load failed: it holds pickled objects"),
    ("nan weight", nan_policy, r"evil\.zip, policy\.pth: tensor \['action_net\.weight'\] holds 1 NaN"),
    ("foreign policy", foreign_policy, r"holds a policy from 'somebody\.policies', not one of --algo ppo"),
    ("another algorithm", lambda name, data: data,
     r"evil\.zip was saved by ppo, not a policy of --algo a2c: pass --algo ppo to continue it"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "change", "pattern"), SB3_ZIP_CASES, ids=[c[0] for c in SB3_ZIP_CASES])
def test_sb3_model_files(
    tmp_path: Path, ppo_zip: Path, name: str, change: Change | bytes, pattern: str
) -> None:
    """Every SB3 zip is read without unpickling: its cloudpickled entries, made payloads that would
    create a marker, never run, and what is wrong is one line."""
    from agents.sb3 import SB3VecEnv, load_model
    from seqgan_env import VARIANTS, SeqGANVectorEnv

    path, marker = tmp_path / "evil.zip", tmp_path / "marker"
    if isinstance(change, bytes):
        path.write_bytes(change)
    else:
        poisoned_zip(ppo_zip, path, marker, change)
    env = SB3VecEnv(SeqGANVectorEnv(2, **{**VARIANTS[TINY], "reward_mode": "shaped"}))
    with pytest.raises(ValueError) as caught:
        load_model("a2c" if name == "another algorithm" else "ppo", path, env)
    check_message(str(caught.value), pattern, tmp_path)
    assert not marker.exists()


def sb3_source(folder: Path, damage: str = "", **settings: Any) -> Path:
    """A pre-training run folder of the tiny generator's sizes, as train/sb3.py reads it; `damage`
    "nan" puts a NaN in its generator, "no data" leaves its data out."""
    sizes = {"vocab_size": V, "seq_len": T, "gen_embed_dim": 6, "gen_hidden_dim": 5}
    fake_run(folder, **{**sizes, **settings})
    entry = model_entry(tiny_lstm(1))
    if damage == "nan":
        entry["state_dict"]["output.bias"][2] = float("nan")
    data = {"real": torch.zeros(16, T, dtype=torch.long), "test": torch.zeros(8, T, dtype=torch.long)}
    payload = {"generator": entry} if damage == "no data" else {"generator": entry, "data": data}
    write_damaged(folder / "mle.pt", payload)
    return folder


SB3_SCRIPT_CASES: list[tuple[str, list[str], str]] = [
    ("another algorithm's model", ["--pretrained", "{source}", "--algo", "a2c", "--load", "{evil}"],
     r"evil\.zip was saved by ppo, not a policy of --algo a2c: pass --algo ppo to continue it"),
    ("another value MLP", ["--pretrained", "{source}", "--load", "{evil}", "--value-arch", "32"],
     r"evil\.zip has a value MLP of --value-arch '64', this run '32'"),
    ("another generator", ["--pretrained", "{wide}", "--load", "{evil}"],
     r"evil\.zip holds a policy of embedding 6, LSTM 5 and start token 0; the generator has 16, 5, 0"),
    ("a damaged source", ["--pretrained", "{nan}"],
     r"nan/mle\.pt: tensor \['generator'\]\['state_dict'\]\['output\.bias'\] holds 1 NaN"),
    ("a source without data", ["--pretrained", "{nodata}"],
     r"nodata/mle\.pt is not a pre-training checkpoint \(it holds no data\)"),
    ("a text run", ["--pretrained", "{text}"],
     r"--pretrained .*text is a text run \(--data corpus\.txt\): this script trains on the synthetic"),
    ("pre-training options with --pretrained",
     ["--pretrained", "{source}", "--pretrain-args", "--mle-epochs 2"],
     r"--pretrain-args applies to the in-place pre-training: --pretrained .*source brings its own"),
    ("a text pre-training", ["--pretrain-preset", "tiny", "--pretrain-args", "--data {corpus}"],
     r"--pretrain-args sets --data .*corpus\.txt: this script trains on the synthetic benchmark"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "options", "pattern"), SB3_SCRIPT_CASES,
                         ids=[c[0] for c in SB3_SCRIPT_CASES])  # fmt: skip
def test_sb3_script_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ppo_zip: Path, name: str, options: list[str],
    pattern: str,
) -> None:  # fmt: skip
    """train/sb3.py refuses a source or model that does not fit the run, in one line, before writing;
    the model's cloudpickled entries never run."""
    marker = tmp_path / "marker"
    poisoned_zip(ppo_zip, tmp_path / "evil.zip", marker)
    paths = {"source": sb3_source(tmp_path / "source"), "evil": tmp_path / "evil.zip",
             "text": sb3_source(tmp_path / "text", data="corpus.txt"), "corpus": tmp_path / "corpus.txt",
             "wide": sb3_source(tmp_path / "wide", gen_embed_dim=16),
             "nan": sb3_source(tmp_path / "nan", "nan"), "nodata": sb3_source(tmp_path / "nodata", "no data")}
    paths["corpus"].write_text("a b c\nd e f\ng h i\n")
    argv = [o.format(**paths) for o in options] + ["--out", str(tmp_path / "runs"), "--threads", "1"]
    before = snapshot(tmp_path)
    code, out, err = run_main(load_script("sb3"), argv, capsys)
    assert code == 2, (code, out, err)
    check_message(err.strip().splitlines()[-1], pattern, tmp_path)
    assert snapshot(tmp_path) == before and not marker.exists()


def test_compare_checks_the_ppo_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ppo_zip: Path
) -> None:
    marker = tmp_path / "marker"
    poisoned_zip(ppo_zip, tmp_path / "evil.zip", marker)
    run = sb3_source(tmp_path / "run", temperature=1.0, eval_every=1)
    before = snapshot(tmp_path)
    argv = ["--seqgan-run", str(run), "--methods", "seqgan,ppo",
            "--ppo-args", f"--algo a2c --load {tmp_path}/evil.zip"]  # fmt: skip
    code, out, err = run_main(load_script("compare"), argv, capsys)
    assert code == 2, (code, out, err)
    pattern = r"--ppo-args: .*evil\.zip was saved by ppo, not a policy of --algo a2c"
    check_message(err.strip().splitlines()[-1], pattern, tmp_path)
    assert snapshot(tmp_path) == before and not marker.exists()


@pytest.mark.parametrize(("options", "pattern"), [
    (["--methods", "seqgan,ppo", "--ppo-args", "--disc-filters 1:0"],
     r"--ppo-args: --disc-filters: filter counts must be >= 1, got \[0\]"),
    (["--methods", "seqgan,best", "--best-args", "--disc-filters 1:0"],
     r"--best-args: --disc-filters: filter counts must be >= 1, got \[0\]"),
], ids=["ppo-args", "best-args"])  # fmt: skip
def test_compare_checks_the_methods_filters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], pattern: str
) -> None:
    run = sb3_source(tmp_path / "run", temperature=1.0, eval_every=1)
    before = snapshot(tmp_path)
    code, out, err = run_main(load_script("compare"), ["--seqgan-run", str(run), *options], capsys)
    assert code == 2, (code, out, err)
    check_message(err.strip().splitlines()[-1], pattern, tmp_path)
    assert snapshot(tmp_path) == before


def other_script_run(folder: Path, script: str) -> Path:
    """A run folder as `script` writes its config.json (no checkpoint needed: the config is read first)."""
    folder.mkdir()
    if script == "sb3":
        from train.sb3_config import SB3Config

        settings = SB3Config().settings()
    elif script == "rllib":
        from train.rllib_config import RLlibConfig

        settings = RLlibConfig().settings()
    else:
        from train.config import Config

        settings = Config().run_settings()
    (folder / "config.json").write_text(json.dumps(settings))
    return folder


RESUME_CASES: list[tuple[str, str, str]] = [
    ("adversarial", "sb3", r"run was made by train/sb3\.py, not train/adversarial\.py \(its config\.json "
                           r"has --algo\): train/sb3\.py has no resume; continue its model with --load "
                           r".*run/model\.zip"),
    ("adversarial", "rllib", r"run was made by train/rllib\.py, not train/adversarial\.py \(its config\.json "
                             r"has --algo\): resume it with python train/rllib\.py --resume .*run"),
    ("pretrain", "sb3", r"run was made by train/sb3\.py, not train/adversarial\.py"),
    ("rllib", "adversarial", r"run was made by train/adversarial\.py, not train/rllib\.py \(its config\.json "
                             r"has --baseline\): resume it with python train/adversarial\.py --resume .*run"),
    ("rllib", "sb3", r"run was made by train/sb3\.py, not train/rllib\.py \(its config\.json has --load\)"),
]  # fmt: skip


@pytest.mark.parametrize(("script", "maker", "pattern"), RESUME_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in RESUME_CASES])  # fmt: skip
def test_resume_names_the_script_that_made_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], script: str, maker: str, pattern: str
) -> None:
    run = other_script_run(tmp_path / "run", maker)
    before = snapshot(tmp_path)
    code, out, err = run_main(load_script(script), ["--resume", str(run)], capsys)
    assert code == 2, (code, out, err)
    check_message(err.strip().splitlines()[-1], pattern, tmp_path)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe"], ids=["not json", "list", "latin"])
def test_resume_of_a_damaged_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_bytes(content)
    code, out, err = run_main(load_script("adversarial"), ["--resume", str(run)], capsys)
    assert code == 2, (code, out, err)
    pattern = r"run/config\.json (is not a JSON config|holds a JSON list, expected an object)"
    check_message(err.strip().splitlines()[-1], pattern, tmp_path)


def no_data_oracle(path: Path) -> None:
    """15 arrays of the oracle's shapes that the pickle never fills (numpy would hand out uninitialised
    memory)."""
    reconstruct = np.ndarray.__reduce__(np.zeros(0))[0]
    shapes = [(V, 3)] + [(3, 4), (4, 4), (4,)] * 4 + [(4, V), (V,)]
    path.write_bytes(pickle.dumps([Reduced(reconstruct, (np.ndarray, shape, b"b")) for shape in shapes]))


def short_data_oracle(path: Path) -> None:
    """An array whose bytes are fewer than its shape needs."""
    reconstruct = np.ndarray.__reduce__(np.zeros(0))[0]
    dtype = Reduced(np.dtype, ("f4", False, True), (3, "<", None, None, None, -1, -1, 0))
    array = Reduced(reconstruct, (np.ndarray, (0,), b"b"), (1, (V, 3), dtype, False, b"x"))
    path.write_bytes(pickle.dumps([array]))


@pytest.mark.parametrize("maker", ["make", "make_vec"])
@pytest.mark.parametrize(("write", "pattern"), [
    (no_data_oracle, r"oracle\.pkl: an array without data in the pickle"),
    (short_data_oracle, r"an array of shape \(8, 3\) and dtype float32 needs 96 bytes, the pickle holds 1"),
], ids=["no data", "short data"])  # fmt: skip
def test_crafted_oracle_pickles(
    tmp_path: Path, maker: str, write: Callable[[Path], None], pattern: str
) -> None:
    """Crafted oracle pickles (the one that crashes numpy's own unpickling runs in tests/test_oracle.py, in
    a process of its own)."""
    write(tmp_path / "oracle.pkl")
    with pytest.raises(ValueError) as caught:
        make_env(maker, oracle_path=str(tmp_path / "oracle.pkl"))
    check_message(str(caught.value), pattern, tmp_path)


# --- places the scripts write to and files they read, refused before anything is written ------------------
def a_file(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path.write_text("not a folder")


def refused_open(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An oracle file open() refuses (tests run as root, so chmod 000 would not stop them)."""
    path.write_bytes(b"PK")
    real_open = Path.open

    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)


def read_only_out(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--out in a folder where making folders is refused, as on a read-only file system."""
    real_mkdir = Path.mkdir

    def refuse(self: Path, *args: Any, **kwargs: Any) -> None:
        if str(self).startswith(str(path)):
            raise PermissionError(13, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)


SCRIPT_TINY = {
    "adversarial": ["--preset", "tiny", "--threads", "1"],
    "sb3": ["--pretrain-preset", "tiny", "--threads", "1", "--no-progress"],
    "probe_discriminator": ["--pretrained", "{tmp}/none", "--threads", "1"],
}
PLACE_CASES: list[tuple[str, str, list[str], Callable[[Path, pytest.MonkeyPatch], None] | None, str]] = [
    ("out is a file", "adversarial", ["--out", "{tmp}/x"], a_file, r"--out .*x is a file, expected a folder"),
    ("out is a file", "sb3", ["--out", "{tmp}/x"], a_file, r"--out .*x is a file, expected a folder"),
    ("out is a file", "probe_discriminator", ["--out", "{tmp}/x"], a_file,
     r"--out .*x is a file, expected a folder"),
    ("read-only out", "adversarial", ["--out", "{tmp}/x/runs"], read_only_out,
     r"^error: cannot create run folder .*x/runs/.*: Permission denied$"),
    ("read-only out", "sb3", ["--out", "{tmp}/x/runs"], read_only_out,
     r"^error: cannot create run folder .*x/runs/.*: Permission denied$"),
    ("long name", "sb3", ["--name", "n" * 300], None, r"--name must be at most 255 bytes"),
    ("long name", "probe_discriminator", ["--name", "n" * 300], None, r"--name must be at most 255 bytes"),
    ("huge threads", "sb3", ["--threads", "100000"], None, r"--threads must be in \[0, \d+\] \(4 per CPU"),
    ("huge threads", "probe_discriminator", ["--threads", "100000"], None,
     r"--threads must be in \[0, \d+\]"),
    ("unreadable oracle", "adversarial", ["--oracle", "{tmp}/x"], refused_open,
     r"oracle parameter file .*x cannot be read \(Permission denied\)"),
    ("unreadable oracle", "sb3", ["--oracle", "{tmp}/x"], refused_open,
     r"oracle parameter file .*x cannot be read \(Permission denied\)"),
    ("oracle /proc/self/mem", "adversarial", ["--oracle", "/proc/self/mem"], None,
     r"oracle parameter file /proc/self/mem cannot be read \(Input/output error\)"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "script", "options", "prepare", "pattern"), PLACE_CASES,
                         ids=[f"{c[1]}: {c[0]}" for c in PLACE_CASES])  # fmt: skip
def test_places_and_files_the_scripts_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str,
    script: str, options: list[str], prepare: Callable[[Path, pytest.MonkeyPatch], None] | None, pattern: str,
) -> None:  # fmt: skip
    """One `error:` line and exit code 2 before anything is written: nothing new under the test's folder."""
    if name == "oracle /proc/self/mem" and not Path("/proc/self/mem").exists():
        pytest.skip("no /proc/self/mem here")
    module = load_script(script)  # before any monkeypatching
    if prepare is not None:
        prepare(tmp_path / "x", monkeypatch)
    before = snapshot(tmp_path)
    argv = [*SCRIPT_TINY[script], "--out", "{tmp}/runs", *options]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run_main(module, argv, capsys)
    assert code == 2, (code, out, err)
    check_message(err.strip().splitlines()[-1], pattern, tmp_path)
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders: an injected case covers it")
def test_a_read_only_out_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        argv = [*SCRIPT_TINY["adversarial"], "--out", str(tmp_path / "ro" / "runs")]
        code, _, err = run_main(load_script("adversarial"), argv, capsys)
        assert code == 2
        pattern = r"cannot create run folder .*: Permission denied"
        check_message(err.strip().splitlines()[-1], pattern, tmp_path)
        assert list((tmp_path / "ro").iterdir()) == []
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_a_failed_resume_leaves_the_run_folder_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resume refused after the folder was locked (here: a damaged latest.pt) leaves no lock file (the
    lock is the operating system's, on the folder itself) and no other trace."""
    from train.config import parse_config

    run = tmp_path / "run"
    run.mkdir()
    settings = parse_config(SCRIPT_TINY["adversarial"]).recorded_settings()
    (run / "config.json").write_text(json.dumps(settings))
    (run / "latest.pt").write_bytes(b"damaged")
    before = snapshot(tmp_path)
    code, _, err = run_main(load_script("adversarial"), ["--resume", str(run)], capsys)
    assert code == 2
    check_message(err.strip().splitlines()[-1], r"latest\.pt is not a seqgan-env checkpoint", tmp_path)
    assert snapshot(tmp_path) == before and not (run / ".lock").exists()
