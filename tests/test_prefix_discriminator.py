"""The prefix discriminator (seqgan_env/prefix_discriminator.py): causal per-position logits equal to a
re-scoring of each prefix, the incremental state, the per-position loss with padding left out, its
training and its checkpoint entry."""

from __future__ import annotations

import pytest
import torch

from seqgan_env.checkpoint import (
    discriminator_from_entry,
    load_checkpoint,
    load_env_models,
    model_entry,
    save_checkpoint,
)
from seqgan_env.diagnostics import discriminator_accuracy_auc
from seqgan_env.prefix_discriminator import (
    IncrementalScorer,
    PrefixDiscriminator,
    PrefixDiscriminatorConfig,
    dense_rewards,
)
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig
from seqgan_env.wrappers import TrainableDiscriminator

V, T = 8, 6


def make(layer_norm: bool = True, seed: int = 0, **kwargs) -> PrefixDiscriminator:
    config = PrefixDiscriminatorConfig(V, T, 8, 16, layer_norm, **kwargs)
    return PrefixDiscriminator(config, rng=torch.Generator().manual_seed(seed)).eval()


def sequences(n: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (n, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("layer_norm", [True, False])
def test_logits_at_each_position_equal_a_rescoring_of_that_prefix(layer_norm: bool) -> None:
    d, seqs = make(layer_norm), sequences()
    full = d.prefix_logits(seqs)  # [B, T]
    assert full.shape == (5, T)
    for t in range(1, T + 1):
        alone = d.prefix_logits(seqs[:, :t])[:, -1]
        torch.testing.assert_close(full[:, t - 1], alone, rtol=0, atol=1e-6)


def test_the_future_never_changes_a_prefixs_logit() -> None:
    d, seqs = make(), sequences()
    changed = seqs.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % V
    torch.testing.assert_close(d.prefix_logits(seqs)[:, :3], d.prefix_logits(changed)[:, :3], rtol=0, atol=0)
    assert not torch.allclose(d.prefix_logits(seqs)[:, 3:], d.prefix_logits(changed)[:, 3:])


def test_advancing_one_token_at_a_time_gives_the_full_passs_logits() -> None:
    d, seqs = make(), sequences()
    assert isinstance(d, IncrementalScorer) and isinstance(d, TrainableDiscriminator)
    state = d.start(len(seqs))
    with torch.inference_mode():
        steps = []
        for t in range(T):
            logit, state = d.advance(seqs[:, t], state)
            steps.append(logit)
    torch.testing.assert_close(torch.stack(steps, 1), d.prefix_logits(seqs), rtol=0, atol=1e-6)


def test_score_is_the_probability_at_the_last_live_position() -> None:
    d, seqs = make(), sequences()
    pad = d.pad_id
    seqs[0, 3:] = pad  # ended after 3 tokens (an <eos> at position 3 would be its last live token)
    probs = torch.sigmoid(d.prefix_logits(seqs))
    score = d.score(seqs)
    assert score[0] == pytest.approx(probs[0, 2].item(), abs=1e-7)
    torch.testing.assert_close(score[1:], probs[1:, -1])
    assert ((score > 0) & (score < 1)).all()


def test_dense_rewards_are_scratchgans() -> None:
    logits = torch.tensor([0.0, 2.0, -3.0])
    torch.testing.assert_close(dense_rewards(logits), 2 * torch.sigmoid(logits) - 1)
    assert dense_rewards(torch.tensor([0.0])).item() == 0.0


def test_the_loss_leaves_padding_out_and_labels_every_live_position() -> None:
    d = make(l2_reg=0.0)
    seqs, labels = sequences(4), torch.tensor([1, 0, 1, 0])
    seqs[1, 2:] = d.pad_id
    logits = d(seqs)
    live = seqs != d.pad_id
    target = labels[:, None].float().expand_as(logits)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[live], target[live])
    torch.testing.assert_close(d.loss(seqs, labels), expected)
    everywhere = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert d.loss(seqs, labels).item() != pytest.approx(everywhere.item())  # padding would count


def test_l2_counts_every_weight() -> None:
    d0, d1 = make(l2_reg=0.0), make(l2_reg=0.5)
    seqs, labels = sequences(4), torch.tensor([1, 0, 1, 0])
    l2 = 0.5 * sum(p.square().sum() for p in d1.parameters())
    torch.testing.assert_close(d1.loss(seqs, labels) - d0.loss(seqs, labels), 0.5 * l2)


def test_embedding_dropout_only_while_training_and_advance_is_eval() -> None:
    d, seqs = make(embed_dropout=0.5), sequences()
    d.train()
    torch.manual_seed(0)
    a = d(seqs)
    torch.manual_seed(1)
    b = d(seqs)
    assert not torch.allclose(a, b)  # dropout on the embedding matrix
    state = d.start(len(seqs))
    with torch.inference_mode():
        logit, _ = d.advance(seqs[:, 0], state)
    assert d.training  # the caller's mode is kept
    torch.testing.assert_close(logit, d.prefix_logits(seqs)[:, 0], rtol=0, atol=1e-6)


def test_fit_learns_to_tell_real_from_generated_and_counts_its_steps() -> None:
    d = make(lr=1e-2)
    rng = torch.Generator().manual_seed(0)
    real = torch.randint(0, 4, (256, T), generator=rng)  # the real data use tokens 0..3
    fake = torch.randint(4, V, (256, T), generator=rng)
    before = d.weights_key()
    optimizer = d.make_optimizer()
    assert optimizer.param_groups[0]["betas"] == (0.5, 0.999)
    for _ in range(3):
        d.fit(optimizer, real, fake, epochs=1, batch_size=64, rng=rng)
    assert d.steps == 3 * 8 and d.weights_key() != before and not d.training
    _, auc = discriminator_accuracy_auc(d, real[:64], fake[:64])
    assert auc > 0.99


def test_weights_key_sees_load_state_dict() -> None:
    d = make()
    key = d.weights_key()
    d.load_state_dict(make(seed=3).state_dict())
    assert d.weights_key() != key


def test_checkpoint_entry_round_trip(tmp_path) -> None:
    d = make(layer_norm=False, embed_dropout=0.2, lr=3e-3)
    entry = model_entry(d)
    assert entry["kind"] == "prefix_discriminator"
    back = discriminator_from_entry(entry)
    assert isinstance(back, PrefixDiscriminator) and back.config == d.config
    for name, value in d.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name
    policy = TokenLSTM(TokenLSTMConfig(V, T, 4, 4))
    save_checkpoint(tmp_path / "run.pt", {"generator": model_entry(policy), "discriminator": entry})
    _, loaded, _ = load_env_models(tmp_path / "run.pt")
    assert isinstance(loaded, PrefixDiscriminator)
    torch.testing.assert_close(loaded.prefix_logits(sequences()), d.prefix_logits(sequences()))
    assert load_checkpoint(tmp_path / "run.pt")["discriminator"]["kind"] == "prefix_discriminator"


@pytest.mark.parametrize(("change", "message"), [
    (lambda e: e.update(kind="lstm"), "unknown discriminator kind 'lstm'"),
    (lambda e: e["config"].update(layer_norm=1), "config layer_norm must be true or false"),
    (lambda e: e["config"].update(hidden_dim=17), "needs"),
    (lambda e: e["config"].update(embed_dropout=1.5), "embed_dropout must be in"),
    (lambda e: e["config"].update(filters=[[1, 2]]), "unknown PrefixDiscriminatorConfig key"),
])  # fmt: skip
def test_bad_entries_are_one_line_errors(change, message) -> None:
    entry = model_entry(make())
    change(entry)
    with pytest.raises(ValueError, match=message):
        discriminator_from_entry(entry, "run.pt")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"hidden_dim": 0}, "hidden_dim must be >= 1"),
    ({"embed_dropout": 1.0}, "embed_dropout must be in"),
    ({"l2_reg": float("nan")}, "l2_reg must be a finite number"),
    ({"lr": 0.0}, "lr must be a finite number > 0"),
    ({"beta1": 1.0}, "beta1 and beta2"),
    ({"layer_norm": "yes"}, "layer_norm must be a bool"),
])  # fmt: skip
def test_config_errors(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        PrefixDiscriminatorConfig(V, T, **kwargs)


def test_bf16_precision_autocasts_the_products_and_keeps_fp32_logits() -> None:
    d, seqs = make(), sequences()
    fp32 = d.prefix_logits(seqs)
    d.precision = "bf16"
    bf16 = d.prefix_logits(seqs)
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)  # the products ran in bf16
    torch.testing.assert_close(bf16, fp32, rtol=0, atol=0.1)
    with torch.inference_mode():
        logit, _ = d.advance(seqs[:, 0], d.start(len(seqs)))
    assert logit.dtype == torch.float32
    torch.testing.assert_close(logit, fp32[:, 0], rtol=0, atol=0.1)
    loss = d.loss(seqs, torch.ones(len(seqs)))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
