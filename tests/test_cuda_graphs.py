"""seqgan_env/cuda_graphs.py on the CPU: when a step is captured, and what a failed capture leaves."""

from __future__ import annotations

import copy
import pickle

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

    def double(generator: torch.Generator | None, x: torch.Tensor) -> torch.Tensor:
        return x * 2 + 1

    for n in (3, 3, 3, 4, 5, 5, 4, 4):
        x = torch.arange(n, dtype=torch.float32) + n
        assert torch.equal(cache(double, x, key=lambda: "weights"), double(None, x))
    assert {shapes[1][0] for shapes in cache._graphs} == {(3,), (5,)}  # (4,) came third: over the limit
    assert cache(double, torch.ones(3), key=lambda: "new weights").tolist() == [3.0] * 3
    assert len(cache) == 0
    for _ in range(2):
        cache(double, torch.ones(3), key=lambda: "new weights")
    assert len(cache) == 1
    for copied in (copy.deepcopy(cache), pickle.loads(pickle.dumps(cache))):  # an env copied or sent away
        assert len(copied) == 0 and (copied.what, copied.max_graphs) == ("doubling", 2)


def test_the_cached_graphs_draw_from_whichever_generator_a_call_brings(cuda_graphs_recorded_on_the_cpu):
    """The graphs draw from the cache's own generator, set to the caller's state before a replay and
    handed back after: each generator's stream goes on as under eager calls, and a new generator (a
    resumed run's, the diagnostics' own) replays the same graphs."""
    cache = cuda_graphs_recorded_on_the_cpu.GraphCache("noise")

    def noisy(generator: torch.Generator | None, x: torch.Tensor) -> torch.Tensor:
        return x + torch.rand(x.shape, generator=generator)

    for seed in range(4):
        rng, eager_rng = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        for k in range(3):
            x = torch.full((2, 3), float(k))
            assert torch.equal(cache(noisy, x, key=lambda: "weights", generator=rng), noisy(eager_rng, x))
        assert torch.equal(rng.get_state(), eager_rng.get_state())
    (graph,) = cache._graphs.values()
    assert graph.graph.replays == 4 * 3 - 1  # every call but the first of all: kept for every generator


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


@pytest.mark.parametrize("groups", [None, ((0, 1, 2, 3),)], ids=["per filter", "one product"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_replayed_discriminator_fit_is_the_plain_fit(cuda_graphs_recorded_on_the_cpu, precision, groups):
    """The full batches replayed from the captured step train exactly as plain steps: the same losses,
    weights and dropout stream (the capture's warm-up steps and their draws are undone)."""
    real = torch.randint(0, 8, (40, 4), generator=torch.Generator().manual_seed(0))
    results = []
    for graphs in (False, True):
        disc = tiny_discriminator()
        disc.cuda_graphs, disc.precision, disc.filter_groups = graphs, precision, groups
        torch.manual_seed(2)  # dropout's generator
        loss = disc.fit(disc.make_optimizer(), real, real.flip(1), epochs=2, batch_size=16,
                        rng=torch.Generator().manual_seed(3))  # fmt: skip
        assert (disc.captured.step is not None) == graphs  # the replayed run replayed
        results.append((loss, [p.detach().clone() for p in disc.parameters()], torch.get_rng_state()))
    (plain_loss, plain_weights, plain_rng), (loss, weights, rng) = results
    assert loss == plain_loss and torch.equal(rng, plain_rng)
    assert all(torch.equal(a, b) for a, b in zip(plain_weights, weights, strict=True))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_replayed_mle_epochs_are_plain_epochs(cuda_graphs_recorded_on_the_cpu, precision):
    """MLE's captured step (loss, backward, the clip, Adam) replayed for the full minibatches: the
    same losses and weights as plain steps, epoch after epoch."""
    data = torch.randint(0, 8, (40, 4), generator=torch.Generator().manual_seed(0))
    results = []
    for graphs in (False, True):
        generator = TokenLSTM(TokenLSTMConfig(8, 4, 6, 5), rng=torch.Generator().manual_seed(1))
        trainer = MLETrainer(generator, precision=precision)
        trainer.config = type(trainer.config)(batch_size=16, grad_clip=0.05)  # a clip that acts
        trainer.cuda_graphs = graphs
        losses = [trainer.epoch(data, torch.Generator().manual_seed(e)) for e in range(3)]
        assert (trainer.captured.step is not None) == graphs
        results.append((losses, [p.detach().clone() for p in generator.parameters()]))
    (plain_losses, plain_weights), (losses, weights) = results
    assert losses == plain_losses
    assert all(torch.equal(a, b) for a, b in zip(plain_weights, weights, strict=True))


def test_a_captured_step_is_kept_across_fits_until_what_it_reads_changes(cuda_graphs_recorded_on_the_cpu):
    """One capture serves every `fit` (the paper's five sets of negatives a round, its rounds) while the
    weights, the optimizer's state and settings stay the same; an optimizer state loaded from a
    checkpoint (new tensors) or a new precision captures again. The training is the plain one
    throughout, and a copy of the discriminator starts without the graph."""
    real = torch.randint(0, 8, (32, 4), generator=torch.Generator().manual_seed(0))
    runs, steps = [], []
    for graphs in (False, True):
        disc = tiny_discriminator()
        disc.cuda_graphs = graphs
        optimizer = disc.make_optimizer()
        torch.manual_seed(2)
        losses = []
        for k in range(5):
            if k == 2:
                optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # as a resume does
            if k == 4:
                disc.precision = "bf16"
            fake = torch.randint(0, 8, (32, 4), generator=torch.Generator().manual_seed(k + 1))
            losses.append(disc.fit(optimizer, real, fake, epochs=1, batch_size=16))
            steps.append(disc.captured.step)
        runs.append((losses, [p.detach().clone() for p in disc.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    graphed = steps[5:]
    assert graphed[0] is graphed[1] and graphed[2] is graphed[3]  # kept
    assert len({id(s) for s in graphed}) == 3  # captured at fits 1, 3 (new state) and 5 (bf16)
    assert copy.deepcopy(disc).captured.step is None


def test_mle_captures_its_step_once_for_all_its_epochs(cuda_graphs_recorded_on_the_cpu):
    data = torch.randint(0, 8, (40, 4), generator=torch.Generator().manual_seed(0))
    generator = TokenLSTM(TokenLSTMConfig(8, 4, 6, 5), rng=torch.Generator().manual_seed(1))
    trainer = MLETrainer(generator)
    trainer.config = type(trainer.config)(batch_size=16)
    steps = []
    for e in range(3):
        trainer.epoch(data, torch.Generator().manual_seed(e))
        steps.append(trainer.captured.step)
    assert steps[0] is not None and steps[0] is steps[1] is steps[2]
    assert steps[0].graph.replays == 3 * 2  # two full minibatches of 16 an epoch, the last 8 plain
