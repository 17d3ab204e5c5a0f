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


def test_a_graph_cache_captures_a_shape_at_its_second_call_and_keeps_at_most_its_limit(
    cuda_graphs_recorded_on_the_cpu,
):
    """A shape seen once (a ragged last batch) is not captured; a shape seen again is, until
    `max_graphs` are kept; a new key drops them all. The results are the eager ones throughout."""
    cache = cuda_graphs_recorded_on_the_cpu.GraphCache("doubling", max_graphs=2)

    def double(x: torch.Tensor) -> torch.Tensor:
        return x * 2 + 1

    for n in (3, 3, 3, 4, 5, 5, 4, 4):
        x = torch.arange(n, dtype=torch.float32) + n
        assert torch.equal(cache(double, x, key="weights"), double(x))
    assert {shapes[0][0] for shapes in cache._graphs} == {(3,), (5,)}  # (4,) came third: over the limit
    assert cache(double, torch.ones(3), key="new weights").tolist() == [3.0] * 3
    assert len(cache) == 0


def test_a_graphed_function_refuses_an_input_of_another_shape_and_gives_back_the_warm_up_s_draws(
    cuda_graphs_recorded_on_the_cpu,
):
    def noisy(x: torch.Tensor) -> torch.Tensor:
        return x + torch.rand(x.shape, generator=rng)

    rng = torch.Generator().manual_seed(0)
    before = rng.get_state()
    graphed = cuda_graphs_recorded_on_the_cpu.GraphedFunction(noisy, torch.zeros(2, 3), generator=rng)
    assert torch.equal(rng.get_state(), before) and graphed.graph.generators == [rng]
    eager_rng = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3)
    assert torch.equal(graphed(x), x + torch.rand(2, 3, generator=eager_rng))
    with pytest.raises(ValueError, match=r"input of shape \(1, 3\) for a graph captured with \(2, 3\)"):
        graphed(torch.zeros(1, 3))  # copy_ would broadcast it into every row
