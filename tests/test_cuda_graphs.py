"""seqgan_env/cuda_graphs.py on the CPU: when a step is captured, and what a failed capture leaves."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_discriminator

from agents.mle import MLETrainer
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig


def test_a_capture_that_fails_is_said_once_and_the_trainer_goes_on_with_plain_steps(
    cuda_graphs_on_the_cpu, monkeypatch
):
    """A CUDA build or driver that cannot capture: `capture_or_none` warns, turns the trainer's switch
    off and returns None, so that `fit` and `epoch` run plain steps from then on, without asking again."""
    attempts = []

    def refuse(graph):
        attempts.append(graph)
        raise RuntimeError("capture refused")

    monkeypatch.setattr(torch.cuda, "graph", refuse)
    disc = tiny_discriminator()
    real = torch.randint(0, 8, (32, 4), generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match="discriminator training runs without CUDA graphs: capture failed"):
        loss = disc.fit(disc.make_optimizer(), real, real.flip(0), epochs=1, batch_size=16)
    assert not disc.cuda_graphs and loss > 0 and len(attempts) == 1
    trainer = MLETrainer(TokenLSTM(TokenLSTMConfig(8, 4, 6, 5), rng=torch.Generator().manual_seed(1)))
    trainer.config = type(trainer.config)(batch_size=16)
    with pytest.warns(UserWarning, match="MLE runs without CUDA graphs: capture failed"):
        trainer.epoch(real)
    assert not trainer.cuda_graphs and len(attempts) == 2
    trainer.epoch(real)  # no second attempt, no second warning
    assert len(attempts) == 2
