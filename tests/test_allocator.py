"""train/allocator.py: with the scripts' setting, the discriminator's training steps reuse the
process's memory instead of taking pages back from the system at every step."""

from __future__ import annotations

import resource

import pytest
import torch

from seqgan_env.discriminator import Discriminator, DiscriminatorConfig
from train.allocator import keep_freed_memory


def test_training_steps_reuse_freed_memory_without_page_faults() -> None:
    """The paper discriminator's bf16 step frees and makes again tens of buffers of 1 to 12 MB (its
    highway's weights cast to bf16 and their gradients back); with glibc's default thresholds it took
    about 8,600 page faults a step on the machine these figures come from, with the setting none."""
    if not keep_freed_memory():
        pytest.skip("not glibc's malloc: the setting does not apply here")
    disc = Discriminator(DiscriminatorConfig(), rng=torch.Generator().manual_seed(0))
    disc.precision = "bf16"
    optimizer = disc.make_optimizer()
    x = torch.randint(5000, (64, 20), generator=torch.Generator().manual_seed(1))
    y = torch.arange(64) % 2
    for _ in range(3):  # the heap grows to what a step needs
        disc.train_step(optimizer, x, y)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    steps = 4
    for _ in range(steps):
        disc.train_step(optimizer, x, y)
    per_step = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps
    assert per_step < 1000, per_step  # one fresh 12 MB buffer alone is 3,000 pages


def test_the_setting_is_a_no_op_where_it_does_not_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", "darwin")
    assert keep_freed_memory() is False


def test_the_environment_can_leave_glibc_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQGAN_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False
