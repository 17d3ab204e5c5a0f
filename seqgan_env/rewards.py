"""Monte Carlo search rewards: Q of an unfinished prefix is the mean score of N completions.

Q_t = 1/N sum_n D(y_1..y_t + completion_n) for t < T, where each completion is sampled by the rollout
policy continuing from its state after [start, y_1..y_t]; Q_T = D(y_1..y_T). The rollout policy's
state for each prefix is cached by the caller (advanced one token per step), so nothing re-reads the
prefix; the N completions of all B prefixes are sampled as one batch of B*N rows (the first token
straight from the B prefixes' distributions) and scored by one call of the scorer in inference mode,
which for the discriminator computes the convolution windows inside each shared prefix once.

`MonteCarloSearch` is what the environment calls: `monte_carlo_q`, which on a CUDA device with a
discriminator (any `nn.Module` scorer) replays each (prefix length, batch size) from a CUDA graph, since
the search is some hundreds of small kernels per prefix length, each shorter than its launch. The
numbers and the generator's stream are those of the eager calls.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable

import torch
from torch import Tensor, nn

from seqgan_env.cuda_graphs import GraphCache
from seqgan_env.discriminator import PrefixScorer, SequenceScorer
from seqgan_env.token_lstm import LSTMState, TokenLSTM


@torch.inference_mode()
def monte_carlo_q(
    rollout_policy: TokenLSTM,
    scorer: SequenceScorer,
    prefixes: torch.Tensor,
    logits: torch.Tensor,
    state: LSTMState,
    n_rollouts: int,
    rng: torch.Generator | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
) -> torch.Tensor:
    """Q of each prefix in `prefixes` [B, t] (0 < t < T): [B].

    `logits` [B, V] and `state` ([B, H], [B, H]) are the rollout policy's next-token logits and state
    after reading [start, y_1..y_t]. Completions stop at `eos_id` and are padded with `pad_id`.
    """
    batch, t = prefixes.shape
    n_tokens = rollout_policy.config.seq_len - t
    # Row b*N + n is the n-th completion of prefix b, so a plain view(B, N) regroups them
    # (the [N*T, B] reshape-by-view of some ports scrambles exactly this).
    completions = rollout_policy.complete(
        logits, state, n_tokens, rng, eos_id=eos_id, pad_id=pad_id, n_samples=n_rollouts
    )  # [B*N, T-t]
    if isinstance(scorer, PrefixScorer):  # convolutions inside the shared prefix computed once
        scores = scorer.score_completions(prefixes, completions)
    else:
        scores = scorer.score(torch.cat([prefixes.repeat_interleave(n_rollouts, dim=0), completions], dim=1))
    return scores.view(batch, n_rollouts).mean(dim=1)


class MonteCarloSearch:
    """`monte_carlo_q` for one rollout policy's completions (`n_rollouts` of them, ending at `eos_id`
    and padded with `pad_id`), replayed from CUDA graphs on a CUDA device (`GraphCache`: a graph per
    prefix length and batch size, captured the second time it is seen). The graphs read the rollout
    policy's and the scorer's weights where they lie, so training them in place (optimizer steps,
    `load_state_dict`) needs no new capture, nor does another generator; new weight tensors, another
    scorer or a change of precision do. Scorers that are not an `nn.Module` (BLEU, the oracle) run eagerly."""

    def __init__(
        self, rollout_policy: TokenLSTM, n_rollouts: int, eos_id: int | None = None, pad_id: int | None = None
    ) -> None:
        self.rollout_policy = rollout_policy
        self.n_rollouts = n_rollouts
        self.eos_id = eos_id
        self.pad_id = pad_id
        self.graphs = GraphCache("the Monte Carlo search", max_graphs=4 * rollout_policy.config.seq_len)

    @torch.inference_mode()
    def __call__(
        self,
        scorer: SequenceScorer,
        prefixes: torch.Tensor,
        logits: torch.Tensor,
        state: LSTMState,
        rng: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Q of each prefix in `prefixes` [B, t]: [B] (see `monte_carlo_q`)."""

        def search(
            rng: torch.Generator | None, prefixes: Tensor, logits: Tensor, h: Tensor, c: Tensor
        ) -> Tensor:
            return monte_carlo_q(self.rollout_policy, scorer, prefixes, logits, (h, c), self.n_rollouts, rng,
                                 self.eos_id, self.pad_id)  # fmt: skip

        if not isinstance(scorer, nn.Module):
            return search(rng, prefixes, logits, *state)
        return self.graphs(search, prefixes, logits, *state, key=lambda: self._key(scorer), generator=rng)

    def _key(self, scorer: nn.Module) -> Hashable:
        """What a captured search reads besides its inputs: the models' tensors where they lie, the
        scorer, and the settings the models read as they run."""
        models = (self.rollout_policy, scorer)
        tensors = tuple(x.data_ptr() for m in models for x in itertools.chain(m.parameters(), m.buffers()))
        settings = (self.rollout_policy.precision, getattr(scorer, "precision", None))
        return (id(scorer), settings, tensors)


@torch.inference_mode()
def q_values(
    rollout_policy: TokenLSTM,
    scorer: SequenceScorer,
    sequences: torch.Tensor,
    n_rollouts: int,
    rng: torch.Generator | None = None,
    search: MonteCarloSearch | None = None,
) -> torch.Tensor:
    """The whole reward matrix Q [B, T] of complete `sequences` [B, T] (fixed length, no EOS).

    The same numbers the environment hands out step by step in "mc" mode, computed in one go for
    sequences that already exist (the diagnostics, tests and benchmarks use it). `search`: a
    `MonteCarloSearch` of `rollout_policy` with `n_rollouts` completions and no end-of-sequence, whose
    graphs replay each prefix length on CUDA (None: `monte_carlo_q`, eagerly).
    """
    if search is not None and (search.rollout_policy is not rollout_policy or search.n_rollouts != n_rollouts
                               or search.eos_id is not None):  # fmt: skip
        raise ValueError("q_values needs a search of the same rollout policy and number of completions, "
                         "without an end-of-sequence")  # fmt: skip
    T = sequences.shape[1]
    all_logits, (hs, cs) = rollout_policy.prefix_states(sequences)  # [T, B, V], [T, B, H]
    q = torch.empty(sequences.shape, dtype=torch.float32, device=sequences.device)
    for t in range(1, T):
        prefixes, logits, state = sequences[:, :t], all_logits[t], (hs[t], cs[t])
        if search is None:
            q[:, t - 1] = monte_carlo_q(rollout_policy, scorer, prefixes, logits, state, n_rollouts, rng)
        else:
            q[:, t - 1] = search(scorer, prefixes, logits, state, rng)
    q[:, T - 1] = scorer.score(sequences)
    return q
