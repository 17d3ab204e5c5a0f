"""A training step replayed as a CUDA graph: captured once, then each minibatch is one launch.

A discriminator step at the paper's batch of 64 is a hundred to three hundred small kernels (the
convolutions, the highway, their backward, Adam), an MLE step some dozens (the LSTM, the output layer,
the gradient clip, Adam): on a GPU the time goes to launching them, not to arithmetic.
`GraphedTrainStep` records the whole step (forward, loss, backward, optimizer step) into one CUDA graph
on fixed input buffers, so that a step costs one graph launch and a copy per input, with no host
synchronisation. CUDA only; the CPU path never comes here.

Capturing needs a few warm-up steps (on a side stream, so that the allocator and the fused kernels
settle); their updates are undone afterwards (weights, optimizer state and the CUDA random state are
restored in place), so the training that follows is the one an eager loop would run, with the same
dropout random stream. Adam must be built with `capturable=True` (its step count on the device). A
trainer keeps its captured step (`CapturedStep`) for its next calls while the tensors and settings the
graph reads stay the same, so that a capture's warm-up is paid once, not once per call.

`GraphedFunction` does the same for a function without autograd (the Monte Carlo search: some hundreds
of kernels per prefix length), and `GraphCache` keeps one such graph per shape of its inputs. Random
draws inside a graph continue the generator's stream exactly as the eager calls would: the generator
is registered with the graph, whose replay reads its current state and advances it by the draws the
capture recorded. A `GraphCache`'s graphs draw from a generator of its own that takes the caller's
state for each replay and hands it back, so that any generator of the device replays them.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Hashable
from typing import Any, Protocol

import torch
from torch import nn

LossFn = Callable[..., torch.Tensor]  # (*inputs) -> 0-d loss


class StartsEmptyWhenCopied:
    """What a trainer keeps of work made on its tensors (a graph, a compiled program): a copy or a
    pickle of the trainer starts without it (the class made anew, without arguments)."""

    def __deepcopy__(self, memo: dict[int, object]) -> StartsEmptyWhenCopied:
        return type(self)()

    def __reduce__(self) -> tuple[type[StartsEmptyWhenCopied], tuple[()]]:
        return (type(self), ())


class CapturedStep(StartsEmptyWhenCopied):
    """A trainer's last captured training step, kept for its next calls (epochs, sets of negatives)
    while everything the graph reads is unchanged (`capture_or_none`'s key). A copy or a pickle of the
    trainer starts empty: a graph belongs to the tensors it was captured on."""

    def __init__(self) -> None:
        self.key: Hashable = None
        self.step: GraphedTrainStep | None = None


class UsesGraphs(Protocol):
    """A trainer with a switch for its graphed steps (a capture that fails turns it off) and its last
    captured step."""

    cuda_graphs: bool
    captured: CapturedStep


def capture_or_none(
    owner: UsesGraphs,
    what: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    *examples: torch.Tensor,
    before_step: Callable[[], object] | None = None,
    settings: Hashable = (),
) -> GraphedTrainStep | None:
    """`model`'s training step as a `GraphedTrainStep` where CUDA graphs apply (`owner`'s switch on, a
    CUDA model, a capturable optimizer), else None: the owner's last one while nothing it reads has
    changed (the weights' and the optimizer state's tensors, the optimizer's hyperparameters,
    the inputs' shapes and `settings`, the owner's options that `loss_fn` reads), else a new capture.
    A capture that fails (a CUDA build or driver that cannot) turns the switch off, said once: `what`
    runs plain steps from then on."""
    if not (owner.cuda_graphs and can_capture(model, optimizer)):
        return None
    captured = owner.captured
    if captured.step is not None and captured.key == _step_key(model, optimizer, examples, settings):
        return captured.step
    captured.key, captured.step = None, None  # the old graph's memory goes before the new capture
    model.train()
    try:
        step = GraphedTrainStep(model, optimizer, loss_fn, *examples, before_step=before_step)
    except RuntimeError as err:
        warnings.warn(f"{what} runs without CUDA graphs: capture failed ({err})", stacklevel=3)
        owner.cuda_graphs = False
        return None
    captured.key, captured.step = _step_key(model, optimizer, examples, settings), step
    return step


def _step_key(
    model: nn.Module, optimizer: torch.optim.Optimizer, examples: tuple[torch.Tensor, ...], settings: Hashable
) -> Hashable:
    """What a captured training step reads besides its inputs' values (see `capture_or_none`)."""
    params = [p for p in model.parameters() if p.requires_grad]
    state = [v.data_ptr() for p in params for v in optimizer.state.get(p, {}).values() if torch.is_tensor(v)]
    hyper = [tuple((k, v) for k, v in sorted(g.items()) if k != "params" and isinstance(v, Hashable))
             for g in optimizer.param_groups]  # fmt: skip
    shapes = tuple((tuple(x.shape), x.dtype, x.device) for x in examples)
    return (id(optimizer), tuple(p.data_ptr() for p in params), tuple(state), tuple(hyper), shapes, settings)


def can_capture(model: nn.Module, optimizer: torch.optim.Optimizer) -> bool:
    """Whether `model`'s training steps with `optimizer` can run as a CUDA graph here: a CUDA model
    and an optimizer whose state lives on the device (`capturable=True`)."""
    params = list(model.parameters())
    return bool(params) and on_cuda(*params) and bool(optimizer.defaults.get("capturable", False))


def captures_on(device: torch.device) -> bool:
    """Whether work on `device` runs as CUDA graphs (and its Adam is built `capturable` for them): on a
    CUDA device only."""
    return device.type == "cuda"


def on_cuda(*tensors: torch.Tensor) -> bool:
    """Whether all of `tensors` live where work is captured as graphs (`captures_on`)."""
    return all(captures_on(x.device) for x in tensors)


class GraphedTrainStep:
    """`step(*inputs)`: one training step of `loss_fn(*inputs)` on a minibatch of the captured shapes,
    replayed from a CUDA graph; returns the loss (a fresh 0-d tensor on the device, not read back).
    `before_step` runs between the backward pass and the optimizer's step (a gradient clip), inside the
    graph."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        *examples: torch.Tensor,
        warmup: int = 3,
        before_step: Callable[[], object] | None = None,
    ) -> None:
        if not can_capture(model, optimizer):
            raise ValueError("a graphed training step needs a CUDA model and an optimizer built with "
                             "capturable=True")  # fmt: skip
        device = examples[0].device
        self.inputs = [x.clone() for x in examples]
        self.optimizer = optimizer  # its state's memory is the graph's to write
        finish = before_step or (lambda: None)
        params = [p for p in model.parameters() if p.requires_grad]
        saved_params = [p.detach().clone() for p in params]
        saved_state = {p: {k: v.clone() for k, v in optimizer.state[p].items() if torch.is_tensor(v)}
                       for p in params if p in optimizer.state}  # fmt: skip
        saved_rng = torch.cuda.get_rng_state(device)
        def one_step() -> None:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(*self.inputs).backward()
            finish()
            optimizer.step()

        try:
            _warm_up(device, one_step, warmup)
            self.graph = torch.cuda.CUDAGraph()
            optimizer.zero_grad(set_to_none=True)
            with torch.cuda.graph(self.graph):
                self.loss = loss_fn(*self.inputs)
                self.loss.backward()
                finish()
                optimizer.step()
            self.grads = [p.grad for p in params]  # the graph's gradient buffers, kept alive
        finally:  # undo the warm-up: the training goes on from where it was
            with torch.no_grad():
                for p, saved in zip(params, saved_params, strict=True):
                    p.copy_(saved)
                for p in params:
                    for k, v in optimizer.state.get(p, {}).items():
                        if torch.is_tensor(v):
                            v.copy_(saved_state[p][k]) if p in saved_state else v.zero_()
            torch.cuda.set_rng_state(saved_rng, device)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        _copy_into(self.inputs, inputs)
        self.graph.replay()
        return self.loss.detach().clone()


def _warm_up(device: torch.device, run: Callable[[], object], times: int) -> None:
    """`run()` `times` times on a side stream before a capture, so that the libraries' handles, the
    allocator and lazily made buffers settle outside the graph."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(times):
            run()
    torch.cuda.current_stream(device).wait_stream(side)


def _copy_into(buffers: list[torch.Tensor], inputs: tuple[torch.Tensor, ...]) -> None:
    """A call's inputs into a graph's input buffers, each of the captured shape (`copy_` would
    broadcast a smaller input silently)."""
    for buffer, x in zip(buffers, inputs, strict=True):
        if x.shape != buffer.shape:
            shapes = f"{tuple(x.shape)} for a graph captured with {tuple(buffer.shape)}"
            raise ValueError(f"input of shape {shapes}")
        buffer.copy_(x, non_blocking=True)


class GraphedFunction:
    """`fn(*inputs)` (one tensor, no autograd) replayed from a CUDA graph for inputs of the captured
    shapes: a call copies the inputs into the graph's buffers, replays it and returns a copy of its
    output. Call it in the autograd mode it was built in (the buffers are inference tensors when built
    under `torch.inference_mode`). Draws from `generator` (or the device's default generator) inside
    `fn` follow on from the generator's state at each call, as eager calls would; the warm-up's draws
    are undone. `pool`: a memory pool shared with other graphs that never replay concurrently."""

    def __init__(
        self,
        fn: Callable[..., torch.Tensor],
        *examples: torch.Tensor,
        generator: torch.Generator | None = None,
        pool: Any = None,
        warmup: int = 1,
    ) -> None:
        device = examples[0].device
        self.inputs = [x.clone() for x in examples]
        saved = generator.get_state() if generator is not None else torch.cuda.get_rng_state(device)
        try:
            _warm_up(device, lambda: fn(*self.inputs), warmup)
            self.graph = torch.cuda.CUDAGraph()
            if generator is not None:  # the default generator is registered by every capture
                self.graph.register_generator_state(generator)
            with torch.cuda.graph(self.graph, pool=pool):
                self.output = fn(*self.inputs)
        finally:
            if generator is not None:
                generator.set_state(saved)
            else:
                torch.cuda.set_rng_state(saved, device)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        _copy_into(self.inputs, inputs)
        self.graph.replay()
        return self.output.clone()


class GraphCache:
    """`fn(generator, *inputs)` with one `GraphedFunction` per shape of the inputs, where all of them
    are on a CUDA device. A shape is captured the second time it is seen (one seen once, such as a
    ragged last batch, is not worth a capture), and at most `max_graphs` are kept; the other calls run
    eagerly.

    `key()` names everything the captured kernels read besides the inputs (the weights' storage,
    settings read when `fn` runs), asked only where graphs apply: a call with a new key drops every
    graph, so `fn` must compute the same thing for equal keys. The graphs draw from a generator of the
    cache's own, set to `generator`'s state before each replay and handed back after it: the caller's
    generator advances as under eager calls, and any generator of the device (the run's, a resumed
    run's, the diagnostics' own) replays the same graphs. `generator` None: the device's default
    generator, which every graph reads. A capture that fails is said once (`what` runs eagerly from
    then on; `cuda_graphs` off)."""

    def __init__(self, what: str, max_graphs: int = 64) -> None:
        self.what = what
        self.max_graphs = max_graphs
        self.cuda_graphs = True
        self._key: Hashable = None
        self._graphs: dict[Hashable, GraphedFunction] = {}
        self._seen: set[Hashable] = set()
        self._pool: Any = None  # one memory pool for all the graphs (they replay one at a time)
        self._generator: torch.Generator | None = None  # the one the graphs draw from

    def __len__(self) -> int:
        return len(self._graphs)

    def __reduce__(self) -> tuple[type[GraphCache], tuple[str, int]]:
        """A copy or a pickle starts without graphs: they belong to the tensors they were captured on."""
        return (GraphCache, (self.what, self.max_graphs))

    def __call__(
        self,
        fn: Callable[..., torch.Tensor],
        *inputs: torch.Tensor,
        key: Callable[[], Hashable],
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        if not (self.cuda_graphs and on_cuda(*inputs)):
            return fn(generator, *inputs)
        if (named := key()) != self._key:
            self._key, self._graphs, self._seen, self._pool = named, {}, set(), None
        shapes = (generator is None, *((tuple(x.shape), x.dtype) for x in inputs))
        graph = self._graphs.get(shapes)
        if graph is None:
            if shapes not in self._seen or len(self._graphs) >= self.max_graphs:
                self._seen.add(shapes)
                return fn(generator, *inputs)
            graph = self._capture(fn, inputs, generator)
            if graph is None:
                return fn(generator, *inputs)
            self._graphs[shapes] = graph
        if generator is None:
            return graph(*inputs)
        own = self._own_generator(generator)
        own.set_state(generator.get_state())
        out = graph(*inputs)
        generator.set_state(own.get_state())
        return out

    def _own_generator(self, generator: torch.Generator) -> torch.Generator:
        if self._generator is None or self._generator.device != generator.device:
            self._generator = torch.Generator(device=generator.device)
        return self._generator

    def _capture(
        self,
        fn: Callable[..., torch.Tensor],
        inputs: tuple[torch.Tensor, ...],
        generator: torch.Generator | None,
    ) -> GraphedFunction | None:
        """A graph of `fn` on `inputs`' shapes, drawing from the cache's generator (None: the default
        one); None if the capture fails (said once, and the switch turned off)."""
        own = None if generator is None else self._own_generator(generator)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        try:
            return GraphedFunction(functools.partial(fn, own), *inputs, generator=own, pool=self._pool)
        except (RuntimeError, AttributeError) as err:  # AttributeError: a torch without the API
            warnings.warn(f"{self.what} runs without CUDA graphs: capture failed ({err})", stacklevel=3)
            self.cuda_graphs = False
            self._graphs.clear()
            return None
