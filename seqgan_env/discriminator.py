"""The SeqGAN discriminator: a CNN with max-over-time pooling and a highway layer, as the reference code's.

It owns its loss (cross-entropy + l2_reg * L2 of the output layer) and its training step; the
environment only reads it through `score`, the probability that a sequence is real.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, cast, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from seqgan_env import cuda_graphs
from seqgan_env.compiled import CompiledLoss, compiled_or_plain
from seqgan_env.cuda_graphs import CapturedStep, GraphedTrainStep, LossFn, capture_or_none
from seqgan_env.devices import rng_device
from seqgan_env.modes import module_mode
from seqgan_env.precision import autocast

# (width, number of filters) of the paper's 12 parallel convolutions: 1720 features in all.
PAPER_FILTERS: tuple[tuple[int, int], ...] = (
    (1, 100), (2, 200), (3, 200), (4, 200), (5, 200), (6, 100),
    (7, 100), (8, 100), (9, 100), (10, 100), (15, 160), (20, 160),
)  # fmt: skip


def paper_filters(seq_len: int) -> tuple[tuple[int, int], ...]:
    """The paper's filters that fit sequences of length `seq_len` (all of them at T = 20)."""
    return tuple((w, n) for w, n in PAPER_FILTERS if w <= seq_len)


FilterGroups = tuple[tuple[int, ...], ...]  # indices into the filters; each group is one product


def per_filter(n_filters: int) -> FilterGroups:
    """Each filter its own product: the fewest FLOPs (the default off CUDA)."""
    return tuple((k,) for k in range(n_filters))


def one_product(n_filters: int) -> FilterGroups:
    """All filters as one product: the fewest kernels (the default on CUDA)."""
    return (tuple(range(n_filters)),)


def group_filters(filters: tuple[tuple[int, int], ...], max_width_ratio: float) -> FilterGroups:
    """The filters' indices grouped by width for fewer, larger convolution products: in order of width,
    a filter joins the group before it while its width is at most `max_width_ratio` times the group's
    narrowest (1: equal widths together; 20 and more: the paper's twelve filters as one product)."""
    if not math.isfinite(max_width_ratio) or max_width_ratio < 1:
        raise ValueError(f"max_width_ratio must be a finite number >= 1, got {max_width_ratio}")
    groups: list[list[int]] = []
    for k in sorted(range(len(filters)), key=lambda k: filters[k][0]):
        if groups and filters[k][0] <= max_width_ratio * filters[groups[-1][0]][0]:
            groups[-1].append(k)
        else:
            groups.append([k])
    return tuple(tuple(g) for g in groups)


class SequenceScorer(Protocol):
    """Anything that scores complete sequences [B, T] with a value in [0, 1] per row: the
    discriminator, or another sequence score plugged into the environment's rewards."""

    def score(self, sequences: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class PrefixScorer(SequenceScorer, Protocol):
    """A scorer that can also score many completions of shared prefixes faster than `score` would
    score the concatenated sequences, with the same values (the Monte Carlo search's case)."""

    def score_completions(self, prefixes: torch.Tensor, completions: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Sizes and training constants of the discriminator; the defaults are the paper's."""

    vocab_size: int = 5000
    seq_len: int = 20
    embed_dim: int = 64
    filters: tuple[tuple[int, int], ...] = PAPER_FILTERS
    dropout: float = 0.25
    l2_reg: float = 0.2
    lr: float = 1e-4

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple((int(w), int(n)) for w, n in self.filters))
        if self.vocab_size < 1 or self.seq_len < 1 or self.embed_dim < 1:
            raise ValueError(f"discriminator sizes must be >= 1, got {self}")
        if not self.filters:
            raise ValueError("the discriminator needs at least one (width, filters) pair")
        too_wide = [w for w, _ in self.filters if not 1 <= w <= self.seq_len]
        if too_wide:
            raise ValueError(
                f"filter widths {too_wide} do not fit sequences of length {self.seq_len}; "
                f"widths must lie in [1, {self.seq_len}] (see paper_filters(seq_len))"
            )
        too_few = [n for _, n in self.filters if n < 1]
        if too_few:
            raise ValueError(f"filter counts must be >= 1, got {too_few}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def n_features(self) -> int:
        return sum(n for _, n in self.filters)

    def to_dict(self) -> dict[str, Any]:
        """Plain-typed form, safe inside a `weights_only` checkpoint."""
        d = asdict(self)
        d["filters"] = [list(f) for f in self.filters]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiscriminatorConfig:
        return cls(**{**d, "filters": tuple(tuple(f) for f in d["filters"])})


class Discriminator(nn.Module):
    """CNN + highway classifier of token sequences; class 1 is "real".

    Input ids lie in [0, V]; id V is padding (after an end-of-sequence) and embeds to zeros.
    """

    def __init__(self, config: DiscriminatorConfig, rng: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        self.pad_id = config.vocab_size
        self.embedding = nn.Embedding(config.vocab_size + 1, config.embed_dim, padding_idx=self.pad_id)
        self.convs = nn.ModuleList(nn.Conv1d(config.embed_dim, n, w) for w, n in config.filters)
        d = config.n_features
        self.highway_transform = nn.Linear(d, d)
        self.highway_gate = nn.Linear(d, d)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(d, 2)
        # "fp32", or "bf16": the products under bf16 autocast (seqgan_env/precision.py); not saved with
        # the weights, set by whoever runs the model.
        self.precision = "fp32"
        # On CUDA, `fit` replays its full-batch steps from a CUDA graph (seqgan_env/cuda_graphs.py),
        # captured once and kept for the next calls while the weights and optimizer stay the same.
        self.cuda_graphs = True
        self.captured = CapturedStep()
        # `fit`'s full-batch steps through torch.compile (seqgan_env/compiled.py): fused kernels, at a
        # minute of compiling; off by default (slower on a CPU). Set by whoever runs the model.
        self.compiled = False
        self.compiled_loss = CompiledLoss()
        self.filter_groups = None  # by device: see the property
        self._layouts: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] = {}  # `_group_layout`
        self.reset_parameters(rng)

    def reset_parameters(self, rng: torch.Generator | None = None) -> None:
        """The reference code's initialisation: uniform(-1, 1) embeddings; truncated
        N(0, 0.1^2) convolution and output weights with biases 0.1; the highway's transform and gate
        as TF's default Glorot uniform (limit sqrt(6 / (fan_in + fan_out)) for the [d, d] matrices,
        sqrt(3 / d) for the [d] biases, whose fans are both d); no offset on the gate's bias (the
        reference calls `highway(x, size, 1, 0)`, overriding the -2.0 default). Draws are made on the
        CPU (`rng` is a CPU generator) and copied in, so a seed gives the same model anywhere."""
        with torch.no_grad():
            for param, value in self._initial_values(rng).items():
                param.copy_(value)

    @property
    def _conv_layers(self) -> list[nn.Conv1d]:
        """The convolutions, one per (width, n_filters) pair, as the Conv1d layers they are."""
        return cast("list[nn.Conv1d]", list(self.convs))  # nn.ModuleList yields them typed as Module

    def _initial_values(self, rng: torch.Generator | None) -> dict[torch.Tensor, torch.Tensor]:
        """Each parameter's initial value, drawn on the CPU in a fixed order."""
        values: dict[torch.Tensor, torch.Tensor] = {}
        embedding = torch.empty(self.embedding.weight.shape).uniform_(-1.0, 1.0, generator=rng)
        embedding[self.pad_id] = 0.0  # the padding id embeds to zeros
        values[self.embedding.weight] = embedding
        layers: list[nn.Conv1d | nn.Linear] = [*self._conv_layers, self.output]
        for layer in layers:
            values[layer.weight] = nn.init.trunc_normal_(
                torch.empty(layer.weight.shape), std=0.1, a=-0.2, b=0.2, generator=rng
            )
            assert layer.bias is not None  # every layer here is built with a bias
            values[layer.bias] = torch.full(layer.bias.shape, 0.1)
        d = self.config.n_features
        for layer in (self.highway_transform, self.highway_gate):
            w_limit, b_limit = (6.0 / (2 * d)) ** 0.5, (3.0 / d) ** 0.5
            values[layer.weight] = torch.empty(d, d).uniform_(-w_limit, w_limit, generator=rng)
            values[layer.bias] = torch.empty(d).uniform_(-b_limit, b_limit, generator=rng)
        return values

    @property
    def filter_groups(self) -> FilterGroups:
        """Which convolutions share one matrix product (`group_filters`); set by whoever runs the model,
        not saved with the weights. Grouping computes the same values up to float rounding in fewer,
        larger kernels, at the FLOPs of the zero-padded windows.

        By default (None) it follows the device: on CUDA all filters as one product, since a training
        step at the paper's batch is bound by its kernel launches there (one product dispatches about
        100 operators a step in bf16 where one per filter dispatches about 290: `bench/bench_gpu.py`);
        elsewhere one product per filter, the fewest FLOPs, which is the fastest form on a CPU
        (`bench/bench_discriminator.py`). The Monte Carlo search's `score_completions` keeps one product
        per filter (it skips the windows inside the prefix filter by filter)."""
        if self._filter_groups is not None:
            return self._filter_groups
        n = len(self.config.filters)
        return one_product(n) if self.device.type == "cuda" else per_filter(n)

    @filter_groups.setter
    def filter_groups(self, groups: FilterGroups | None) -> None:
        if groups is not None:
            groups = tuple(tuple(int(k) for k in g) for g in groups)
            n = len(self.config.filters)
            if sorted(k for g in groups for k in g) != list(range(n)) or not all(groups):
                raise ValueError(f"filter_groups must split the filter indices 0..{n - 1} into non-empty "
                                 f"groups, each once (or be None: by device); got {groups}")  # fmt: skip
        self._filter_groups = groups

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """Class logits [B, 2] of `sequences` [B, T]."""
        return self._head(self._pooled(self._embed(sequences)))

    def _pooled(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each convolution's max over time ([B, n_filters] each, in the filters' order) of embedded
        sequences `x` [B, T, E], one matrix product per group of `filter_groups`."""
        convs = self._conv_layers
        pooled: list[torch.Tensor] = [x] * len(convs)
        for group in self.filter_groups:
            if len(group) == 1:
                pooled[group[0]] = self._windows(x, convs[group[0]]).amax(dim=1)
                continue
            maxima = self._group_windows(x, group).amax(dim=1)  # [B, sum of the group's n]
            sizes = [self.config.filters[k][1] for k in group]
            for k, part in zip(group, maxima.split(sizes, dim=1), strict=True):
                pooled[k] = part
        return pooled

    def _head(self, pooled: list[torch.Tensor]) -> torch.Tensor:
        """Class logits [B, 2] from each convolution's max over time ([B, n_filters] each)."""
        # ReLU after the max over time: the same as before it (ReLU is monotonic), on [B, n] instead
        # of [B, T-w+1, n].
        h = F.relu(torch.cat(pooled, dim=1))  # [B, 1720] at paper sizes
        gate = torch.sigmoid(self.highway_gate(h))
        h = gate * F.relu(self.highway_transform(h)) + (1.0 - gate) * h
        return self.output(self.dropout(h))

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Embedded `ids` [..., E]. Scoring under bf16 autocast embeds straight to bf16, so that the
        unfolded windows are copied at half the bytes and not cast again per convolution (the same
        values either way). Not in training, whose backward through bf16 windows measured slower."""
        x = self.embedding(ids)
        if torch.is_autocast_enabled(x.device.type) and not torch.is_grad_enabled():
            x = x.to(torch.get_autocast_dtype(x.device.type))
        return x

    @staticmethod
    def _windows(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
        """`conv` over embedded sequences `x` [B, T, E]: [B, T-w+1, n_filters].

        The same numbers as `conv(x.transpose(1, 2))` (up to float rounding), computed as one matrix
        product of the unfolded windows [B*(T-w+1), E*w] with the weight [n, E*w]: about twice as fast
        as the CPU convolution kernels in training, whose backward pass is slow at these sizes.
        """
        n, e, w = conv.weight.shape
        if w == x.shape[1]:  # one window, the whole sequence: the same view without unfold, whose
            windows = x.transpose(1, 2).unsqueeze(1)  # backward torch.compile miscompiles at this width
        else:
            windows = x.unfold(1, w, 1)  # [B, T-w+1, E, w], a view; E-major like the weight [n, E, w]
        out = F.linear(windows.reshape(-1, e * w), conv.weight.view(n, e * w), conv.bias)
        return out.view(x.shape[0], -1, n)

    def _group_windows(self, x: torch.Tensor, group: tuple[int, ...]) -> torch.Tensor:
        """The convolutions of `group` over `x` [B, T, E] as one product: [B, T, sum of their n].

        Each filter is zero-padded to the group's widest width W and applied at every position of the
        sequence padded with W-1 zero positions; a window of a width-w filter starting after T-w
        overruns the sequence, and is -inf, so that the max over time sees only the T-w+1 real ones."""
        convs = self._conv_layers
        width = max(self.config.filters[k][0] for k in group)
        batch, length, e = x.shape
        windows = F.pad(x, (0, 0, 0, width - 1)).unfold(1, width, 1)  # [B, T, E, W], E-major
        # The group's weights [sum of n, E, W], zero-padded, put in place by one precomputed index
        # (one kernel each way, where padding each filter's weight would be two per filter).
        flat = torch.cat([convs[k].weight.reshape(-1) for k in group])
        on = torch.is_autocast_enabled(x.device.type)  # the product's dtype: autocast's, or x's
        dtype = torch.get_autocast_dtype(x.device.type) if on else x.dtype
        columns, invalid = self._group_layout(group, length, dtype, x.device)
        weight = flat.new_zeros(len(invalid[0]) * e * width).index_put((columns,), flat)
        bias = torch.cat([cast("torch.Tensor", convs[k].bias) for k in group])
        out = F.linear(windows.reshape(-1, e * width), weight.view(len(bias), -1), bias)
        return out.view(batch, length, -1) + invalid

    def _group_layout(self, group: tuple[int, ...], length: int, dtype: torch.dtype,
                      device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """For `_group_windows`: where each of the group's weights goes in the padded [sum of n, E, W]
        weight (flat indices), and [T, sum of n] holding 0 where a filter's window lies inside the
        sequence and -inf where it overruns. Made once per group, length, dtype and device, so that a
        step captured in a CUDA graph creates no tensor from host data; made as normal tensors even
        under `score`'s inference mode, since training saves them for its backward."""
        key = (group, length, dtype, device)
        if key not in self._layouts:
            with torch.inference_mode(False):
                filters = [self.config.filters[k] for k in group]
                width, e = max(w for w, _ in filters), self.config.embed_dim
                slots = torch.arange(sum(n for _, n in filters) * e * width).view(-1, e, width)
                blocks = zip(slots.split([n for _, n in filters]), filters, strict=True)  # filter by filter
                columns = torch.cat([block[..., :w].flatten() for block, (w, _) in blocks])  # first w of W
                widths = torch.tensor([w for w, n in filters for _ in range(n)])
                overruns = torch.arange(length)[:, None] > length - widths  # [T, sum of n]
                invalid = torch.zeros(overruns.shape).masked_fill(overruns, -math.inf)
                self._layouts[key] = (columns.to(device), invalid.to(device, dtype))
        return self._layouts[key]

    def loss(self, sequences: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy + l2_reg * (sum of squares / 2) of the output layer (reference code),
        in fp32 whatever the precision of the products."""
        l2 = 0.5 * (self.output.weight.square().sum() + self.output.bias.square().sum())
        with autocast(self.precision, self.device):
            logits = self.forward(sequences)
        return F.cross_entropy(logits.float(), labels) + self.config.l2_reg * l2

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam at the configured rate; the fused kernel is several times faster per step on CPU. On
        CUDA its state lives on the device (`capturable`), so that `fit` can replay it in a graph."""
        capturable = cuda_graphs.captures_on(self.device)
        return torch.optim.Adam(self.parameters(), lr=self.config.lr, fused=True, capturable=capturable)

    def train_step(
        self, optimizer: torch.optim.Optimizer, sequences: torch.Tensor, labels: torch.Tensor
    ) -> float:
        """One optimiser step on a minibatch (dropout on); returns the loss before the step."""
        return self.train_step_tensor(optimizer, sequences, labels).item()

    def train_step_tensor(
        self,
        optimizer: torch.optim.Optimizer,
        sequences: torch.Tensor,
        labels: torch.Tensor,
        loss_fn: LossFn | None = None,
    ) -> torch.Tensor:
        """`train_step` returning the loss as a 0-d tensor on the model's device, so that a loop of
        steps on a GPU never waits for one to finish (no host synchronisation per step). `loss_fn`:
        `loss` or its compiled form."""
        self.train()
        optimizer.zero_grad(set_to_none=True)
        loss = (loss_fn or self.loss)(sequences, labels)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def fit(
        self,
        optimizer: torch.optim.Optimizer,
        real: torch.Tensor,
        fake: torch.Tensor,
        epochs: int = 3,
        batch_size: int = 64,
        rng: torch.Generator | None = None,
    ) -> float:
        """Train on real (label 1) against fake (label 0) sequences for `epochs` shuffled passes,
        as the reference code does with each fresh set of negatives; returns the mean loss.

        The data stay on the model's device, shuffled there by a permutation drawn by `rng`; the
        losses are read back once, at the end. On CUDA the full batches replay one captured step
        (`GraphedTrainStep`, kept for the next calls; `cuda_graphs` False: plain steps); with
        `compiled` on, their loss runs through torch.compile (`seqgan_env.compiled`)."""
        sequences = torch.cat([real.to(self.device), fake.to(self.device)])
        labels = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))]).long().to(self.device)
        full_batch_loss = self._full_batch_loss(sequences, labels, batch_size)
        graphed = self._graphed_step(optimizer, full_batch_loss, sequences, labels, batch_size)
        losses = []
        for _ in range(epochs):
            order = torch.randperm(len(sequences), generator=rng, device=rng_device(rng))
            order = order.to(self.device)
            for batch in _chunks(order, batch_size):
                if graphed is not None and len(batch) == batch_size:
                    losses.append(graphed(sequences[batch], labels[batch]))
                else:
                    loss_fn = full_batch_loss if len(batch) == batch_size else self.loss
                    losses.append(self.train_step_tensor(optimizer, sequences[batch], labels[batch], loss_fn))
        self.eval()
        values = torch.stack(losses).tolist() if losses else []  # one synchronisation
        return sum(values) / max(len(values), 1)

    def _full_batch_loss(self, sequences: torch.Tensor, labels: torch.Tensor, batch_size: int) -> LossFn:
        """The loss of `fit`'s full batches: `loss`, or its compiled form where `compiled` is on."""
        if len(sequences) < batch_size:
            return self.loss
        return compiled_or_plain(self, "discriminator training", self, self.loss,
                                 sequences[:batch_size], labels[:batch_size])  # fmt: skip

    def _graphed_step(
        self,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        sequences: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
    ) -> GraphedTrainStep | None:
        """The captured training step of `loss_fn` for `fit`'s full batches, where CUDA graphs apply;
        else None."""
        if len(sequences) < batch_size:
            return None
        settings = (self.precision, self.filter_groups, self.config, loss_fn is self.compiled_loss.fn)
        return capture_or_none(self, "discriminator training", self, optimizer, loss_fn,
                               sequences[:batch_size], labels[:batch_size], settings=settings)  # fmt: skip

    @torch.inference_mode()
    def score(self, sequences: torch.Tensor) -> torch.Tensor:
        """P(real) of each of `sequences` [B, T], in eval mode (no dropout): [B]."""
        with module_mode(self, False), autocast(self.precision, self.device):
            logits = self.forward(sequences)
        return torch.softmax(logits.float(), dim=-1)[:, 1]

    @torch.inference_mode()
    def score_completions(self, prefixes: torch.Tensor, completions: torch.Tensor) -> torch.Tensor:
        """P(real) of each completed sequence: row b*N + n of `completions` [B*N, T-t] completes
        prefix b of `prefixes` [B, t]; returns [B*N], the values of `score` on the concatenations.

        A convolution window that lies inside the prefix has the same output in all N completions, so
        the max over those windows is computed once per prefix (B rows); only the windows that reach
        into the completion are computed for all B*N rows. The max over time is exact, so the result
        is that of `score` up to float rounding, at a fraction of the convolution work for long prefixes.
        """
        batch, t = prefixes.shape
        n_rollouts = completions.shape[0] // max(batch, 1)
        if completions.shape[0] != batch * n_rollouts or t + completions.shape[1] != self.config.seq_len:
            raise ValueError(
                f"completions {tuple(completions.shape)} do not complete prefixes {tuple(prefixes.shape)} "
                f"to length {self.config.seq_len} with the same number of rows per prefix"
            )
        with autocast(self.precision, self.device):
            logits = self._completion_logits(prefixes, completions, n_rollouts)
        return torch.softmax(logits.float(), dim=-1)[:, 1]

    def _completion_logits(
        self, prefixes: torch.Tensor, completions: torch.Tensor, n_rollouts: int
    ) -> torch.Tensor:
        """Class logits [B*N, 2] of the completed sequences (see `score_completions`)."""
        t = prefixes.shape[1]
        x_prefix = self._embed(prefixes)  # [B, t, E]
        widest = max(w for w, _ in self.config.filters)
        keep = min(t, widest - 1)  # prefix positions a window reaching into the completion can cover
        tail = x_prefix[:, t - keep :].repeat_interleave(n_rollouts, dim=0)
        x_tail = torch.cat([tail, self._embed(completions)], dim=1)  # positions t-keep .. T-1
        pooled = []
        for (w, _), conv in zip(self.config.filters, self._conv_layers, strict=True):
            # Windows starting at max(0, t-w+1) or later reach into the completion.
            reaching = self._windows(x_tail[:, keep - min(t, w - 1) :], conv).amax(dim=1)  # [B*N, n]
            if t >= w:  # windows starting at 0 .. t-w lie inside the prefix
                inside = self._windows(x_prefix, conv).amax(dim=1).repeat_interleave(n_rollouts, dim=0)
                reaching = torch.maximum(reaching, inside)
            pooled.append(reaching)
        with module_mode(self, False):  # dropout off; the convolutions above have none
            return self._head(pooled)


    @property
    def device(self) -> torch.device:
        return self.output.weight.device


def _chunks(index: torch.Tensor, size: int) -> Iterable[torch.Tensor]:
    return (index[i : i + size] for i in range(0, len(index), size))


def count_forward_flops(config: DiscriminatorConfig) -> int:
    """Multiply-adds x 2 of one forward pass on one sequence (convolutions, highway, output)."""
    return count_completion_flops(config, prefix_len=0, n_rollouts=1)


def count_completion_flops(config: DiscriminatorConfig, prefix_len: int, n_rollouts: int) -> int:
    """Multiply-adds x 2 of `score_completions` for one prefix of length t and its N completions:
    the convolution windows inside the prefix (start <= t-w) once, the windows reaching into the
    completion, the highway and the output layer N times."""
    t, T, E, d = prefix_len, config.seq_len, config.embed_dim, config.n_features
    inside = sum(2 * max(0, t - w + 1) * w * E * n for w, n in config.filters)
    reaching = sum(2 * (T - w + 1 - max(0, t - w + 1)) * w * E * n for w, n in config.filters)
    head = 2 * (2 * d * d + 2 * d)  # highway transform and gate, output layer
    return inside + n_rollouts * (reaching + head)
