"""What the scripts' options would allocate, estimated before anything is: the terms `check_memory`
(seqgan_env.memory) compares with the machine's RAM, each named by the options that set it, so that an
option too large for the machine is refused with the option to lower, before anything is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seqgan_env import memory
from seqgan_env.discriminator import DiscriminatorConfig
from seqgan_env.prefix_discriminator import PrefixDiscriminatorConfig

if TYPE_CHECKING:
    from train.config import Config

FLOAT = 4  # bytes of a float32
TRAINED = 4 * FLOAT  # a trained float32 weight: itself, its gradient and Adam's two moments


def either(*flags: str) -> str:
    """The options that set a memory term, as its error names them: "--a", "--a or --b or --c" (the
    term's own option first)."""
    return " or ".join(flags)


def discriminator_terms(
    config: DiscriminatorConfig | PrefixDiscriminatorConfig, batch: int, batch_flag: str,
    diag_samples: int = 0, also: tuple[str, ...] = ("--seq-len",),
) -> dict[str, int]:
    """Bytes of a discriminator in training, by the options that set them: its weights (each with its
    gradient and Adam's two moments) by the size that multiplies them, the activations of a minibatch
    of `batch` (set by `batch_flag`) with their gradients, and its activations on --diag-samples.
    `also`: the script's options that set the sequence length (none where a run's data sets it)."""
    V, T, E = config.vocab_size, config.seq_len, config.embed_dim
    if isinstance(config, PrefixDiscriminatorConfig):
        embedding, rest = memory.lstm_weights(V + 1, E, config.hidden_dim, 1)
        sizes, width = ("--disc-embed-dim", "--disc-hidden-dim"), E + 4 * config.hidden_dim
    else:
        embedding, rest = memory.cnn_weights(V, E, config.filters)
        sizes, width = ("--disc-embed-dim", "--disc-filters"), E + config.n_features
    terms = {sizes[0]: TRAINED * embedding, sizes[1]: TRAINED * rest,
             either(batch_flag, *also, *sizes): 2 * FLOAT * batch * T * width}  # fmt: skip
    if diag_samples:
        terms[either("--diag-samples", *also, *sizes)] = memory.activation_bytes(diag_samples, T, width)
    return terms


def check_memory(cfg: Config) -> None:
    """Refuse sizes whose largest buffers cannot fit in this machine's memory (e.g. --batch-size 10**8),
    before anything is allocated; the error names the options that set the largest. The estimate counts
    the data, the generator's and the discriminator's weights (with their gradients and Adam's moments;
    the generator's rollout copy), the Monte Carlo search's [B*N, V] sampling buffers (only where the
    rounds search: the seqgan mode with --reward-mode mc), an MLE or policy-gradient minibatch's
    [B, T, V] logits and their gradients, a discriminator minibatch's activations, and, with
    --diagnostics, the diagnostics' buffers (the discriminator's activations on --diag-samples
    sequences, the sampling of --diag-q-samples and, where the rounds search, its Monte Carlo search)."""
    V, T = cfg.vocab_size, cfg.seq_len
    vocab = "--vocab-size" if cfg.data is None else "--max-vocab"
    searched = cfg.n_rollouts if cfg.mode == "seqgan" and cfg.reward_mode == "mc" else 0
    search = ("--n-rollouts",) if searched else ()
    mle, pg = 4 * FLOAT * cfg.batch_size * V * T, 4 * FLOAT * cfg.pg_batch * V * (searched + T)
    batch = "--pg-batch-size" if pg > mle and cfg.pg_batch_size else "--batch-size"
    embedding, hidden = memory.lstm_weights(V, cfg.gen_embed_dim, cfg.gen_hidden_dim, V)
    terms = {  # bytes, by the options that set them
        either("--n-real/--n-test/--n-negatives", "--seq-len"):
            8 * T * (cfg.n_real + cfg.n_test + 2 * cfg.n_negatives),
        either(batch, vocab, "--seq-len", *search): max(mle, pg),
        either("--eval-samples", vocab, "--seq-len"): memory.sampling_bytes(cfg.eval_samples, V, T),
        "--gen-embed-dim": (TRAINED + FLOAT) * embedding,
        "--gen-hidden-dim": (TRAINED + FLOAT) * hidden,
    }  # fmt: skip
    disc: DiscriminatorConfig | PrefixDiscriminatorConfig = (
        PrefixDiscriminatorConfig(V, T, cfg.disc_embed_dim, cfg.disc_hidden_dim) if cfg.reward_mode == "dense"
        else DiscriminatorConfig(V, T, cfg.disc_embed_dim, cfg.filters()))  # fmt: skip
    disc_batch = "--disc-batch-size" if cfg.disc_batch_size else "--batch-size"
    diag = cfg.diag_samples if cfg.diagnostics else 0
    terms.update(discriminator_terms(disc, cfg.disc_batch, disc_batch, diag))
    if cfg.diagnostics:
        terms[either("--diag-q-samples", vocab, "--seq-len", *search)] = memory.q_matrix_bytes(
            cfg.diag_q_samples, V, T, searched)
    memory.check_memory(terms)
