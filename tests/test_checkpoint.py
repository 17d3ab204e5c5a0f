"""The checkpoint format: weights_only round trip, atomic writes, and environments built from a file."""

from __future__ import annotations

import errno
import io
import os
import pickle
import warnings
from fractions import Fraction

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import T, V, tiny_discriminator, tiny_lstm

from seqgan_env.checkpoint import (
    FORMAT,
    VERSION,
    discriminator_from_entry,
    load_checkpoint,
    load_env_models,
    model_entry,
    save_checkpoint,
    token_lstm_from_entry,
)
from seqgan_env.finite import NonFiniteError


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name].cpu(), sb[name].cpu()), name


@pytest.fixture
def models():
    """A generator, a different rollout policy and a discriminator."""
    return {"generator": tiny_lstm(1), "rollout_policy": tiny_lstm(2), "discriminator": tiny_discriminator(3)}


@pytest.fixture
def checkpoint(tmp_path, models):
    path = tmp_path / "run.pt"
    save_checkpoint(path, {key: model_entry(m) for key, m in models.items()} | {"round": 3})
    return path


def test_round_trip_is_weights_only(checkpoint, models):
    raw = torch.load(checkpoint, weights_only=True)  # plain types and tensors only: no pickled classes
    assert raw["format"] == FORMAT and raw["version"] == VERSION and raw["round"] == 3
    payload = load_checkpoint(checkpoint)
    generator = token_lstm_from_entry(payload["generator"])
    assert generator.config == models["generator"].config
    assert_same_weights(generator, models["generator"])
    discriminator = discriminator_from_entry(payload["discriminator"])
    assert discriminator.config == models["discriminator"].config
    assert_same_weights(discriminator, models["discriminator"])
    assert not discriminator.training


def test_model_entry_is_a_detached_copy(models):
    entry = model_entry(models["generator"])
    before = entry["state_dict"]["output.bias"].clone()
    with torch.no_grad():
        models["generator"].output.bias.add_(1.0)
    assert torch.equal(entry["state_dict"]["output.bias"], before)
    assert isinstance(entry["config"], dict)


def test_load_env_models_prefers_the_rollout_policy(checkpoint, models, tmp_path):
    policy, discriminator, vocabulary = load_env_models(checkpoint)
    assert vocabulary is None  # not a text run
    assert_same_weights(policy, models["rollout_policy"])
    assert_same_weights(discriminator, models["discriminator"])
    # Without a separate rollout policy the generator is the rollout policy (the paper's beta = theta).
    path = tmp_path / "generator_only.pt"
    save_checkpoint(path, {k: model_entry(models[k]) for k in ("generator", "discriminator")})
    policy, _, _ = load_env_models(path)
    assert_same_weights(policy, models["generator"])


def test_atomic_write_leaves_no_temporary_files(tmp_path, models):
    path = tmp_path / "nested" / "dir" / "run.pt"  # parents are created
    save_checkpoint(path, {"generator": model_entry(models["generator"])})
    save_checkpoint(path, {"generator": model_entry(models["rollout_policy"])})  # overwrite
    assert [p.name for p in path.parent.iterdir()] == ["run.pt"]
    assert_same_weights(token_lstm_from_entry(load_checkpoint(path)["generator"]), models["rollout_policy"])


def test_failed_write_keeps_the_old_file(checkpoint, models):
    with pytest.raises((pickle.PicklingError, AttributeError)):  # AttributeError before Python 3.12
        save_checkpoint(checkpoint, {"bad": lambda: None})  # torch.save cannot pickle a lambda
    assert [p.name for p in checkpoint.parent.iterdir()] == ["run.pt"]
    assert load_checkpoint(checkpoint)["round"] == 3


# --- environments built from a checkpoint ----------------------------------------------------------------
def test_env_from_checkpoint_has_the_saved_weights(checkpoint, models):
    env = gym.make("SeqGAN-v0", checkpoint=str(checkpoint))  # sizes come from the file, not the paper
    unwrapped = env.unwrapped
    assert (unwrapped.vocab_size, unwrapped.seq_len) == (V, T)
    assert env.action_space == gym.spaces.Discrete(V)
    assert_same_weights(unwrapped.rollout_policy, models["rollout_policy"])
    assert_same_weights(unwrapped.discriminator, models["discriminator"])
    env.reset(seed=0)
    for a in (1, 2, 3):
        env.step(a)
    _, reward, terminated, _, _ = env.step(4)
    assert terminated
    expected = models["discriminator"].score(torch.tensor([[1, 2, 3, 4]]))[0].item()
    assert reward == pytest.approx(expected, abs=1e-6)


def test_vector_env_from_checkpoint(checkpoint, models):
    env = gym.make_vec("SeqGAN-v0", num_envs=2, checkpoint=str(checkpoint))
    assert env.num_envs == 2 and env.vocab_size == V
    assert_same_weights(env.rollout_policy, models["rollout_policy"])
    assert_same_weights(env.discriminator, models["discriminator"])


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"vocab_size": 9}, "vocab_size"), ({"seq_len": 5}, "seq_len")]
)
def test_mismatched_size_kwarg(checkpoint, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("SeqGAN-v0", checkpoint=str(checkpoint), **kwargs)
    # Matching sizes are fine.
    gym.make("SeqGAN-v0", checkpoint=str(checkpoint), vocab_size=V, seq_len=T)


def test_models_that_disagree_on_sizes(tmp_path, models):
    path = tmp_path / "run.pt"
    other = tiny_discriminator(vocab_size=9)
    entries = {"generator": model_entry(models["generator"]), "discriminator": model_entry(other)}
    save_checkpoint(path, entries)
    with pytest.raises(ValueError, match="disagree"):
        gym.make("SeqGAN-v0", checkpoint=str(path))


def test_checkpoint_and_live_models_together(checkpoint, models):
    with pytest.raises(ValueError, match="checkpoint"):
        gym.make("SeqGAN-v0", checkpoint=str(checkpoint), rollout_policy=models["generator"])


# --- files that are not (usable) checkpoints ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"format": "other-project", "version": VERSION}, "format"),
        ({"version": VERSION}, "format"),
        ({"format": FORMAT, "version": VERSION + 1}, "version"),
        ([FORMAT, VERSION], "format"),
    ],
)
def test_wrong_format_tag_or_version(tmp_path, payload, match):
    path = tmp_path / "run.pt"
    torch.save(payload, path)
    with pytest.raises(ValueError, match=match):
        load_checkpoint(path)
    with pytest.raises(ValueError, match=match):
        gym.make("SeqGAN-v0", checkpoint=str(path))


@pytest.mark.parametrize("missing", ["discriminator", "generator"])
def test_missing_model_entry(tmp_path, models, missing):
    path = tmp_path / "run.pt"
    save_checkpoint(path, {k: model_entry(models[k]) for k in ("generator", "discriminator") if k != missing})
    with pytest.raises(ValueError, match=missing):
        load_env_models(path)


def test_pickled_objects_are_refused(tmp_path):
    """weights_only: a file that needs arbitrary classes to load is not a checkpoint (and is not run)."""
    path = tmp_path / "run.pt"
    torch.save({"format": FORMAT, "version": VERSION, "extra": Fraction(1, 3)}, path)
    with pytest.raises(ValueError, match="not a seqgan-env checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content", [b"hello, I am not a checkpoint\n", b"", np.arange(50, dtype=np.uint8).tobytes()]
)
def test_garbage_bytes(tmp_path, content):
    path = tmp_path / "run.pt"
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's unpickler comments on garbage bytes
        with pytest.raises(ValueError, match=r"run\.pt"):
            load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def test_a_full_disk_is_one_oserror_naming_the_file(checkpoint, models, monkeypatch):
    """torch.save reports a refused write as "unexpected pos"; save_checkpoint raises the system's
    OSError instead, naming the checkpoint, and leaves the old file whole and no temporary file."""
    import seqgan_env.files

    real_fdopen = os.fdopen

    class FullDisk(io.RawIOBase):
        def __init__(self, fd: int) -> None:
            self.file = real_fdopen(fd, "wb")

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self) -> None:
            self.file.close()
            super().close()

        def fileno(self) -> int:
            return self.file.fileno()

    monkeypatch.setattr(seqgan_env.files.os, "fdopen", lambda fd, mode: FullDisk(fd))
    with pytest.raises(OSError) as caught:
        save_checkpoint(checkpoint, {"generator": model_entry(models["rollout_policy"])})
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(checkpoint)
    monkeypatch.undo()
    assert [p.name for p in checkpoint.parent.iterdir()] == ["run.pt"]
    assert load_checkpoint(checkpoint)["round"] == 3


def test_a_non_finite_tensor_is_never_saved(checkpoint, models):
    entry = model_entry(models["generator"])
    entry["state_dict"]["lstm.weight_hh_l0"][0, 0] = float("inf")
    message = r"before writing run\.pt: the checkpoint holds NaN or infinite values \(generator\.state_dict"
    with pytest.raises(NonFiniteError, match=message):
        save_checkpoint(checkpoint, {"generator": entry})
    assert [p.name for p in checkpoint.parent.iterdir()] == ["run.pt"]
    assert load_checkpoint(checkpoint)["round"] == 3
