"""MLE pre-training (agents/mle.py) against SPEC 2.2: mean per-token cross-entropy (padding excluded),
Adam(lr 0.01), global grad-norm clip 5.0, batch 64."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import trainable

from agents.mle import MLEConfig, MLETrainer, mle_loss
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig, token_nll

V, T = 8, 4
PAD = V


def make_generator(seed: int = 1) -> TokenLSTM:
    return TokenLSTM(TokenLSTMConfig(V, T, 8, 8), rng=torch.Generator().manual_seed(seed))


@torch.no_grad()
def hand_nll_sum(generator: TokenLSTM, tokens: list[int]) -> float:
    """-sum_t log G(y_t | start, y_<t) of one unpadded sequence, one step at a time from the start token
    (an independent path from the teacher-forced forward)."""
    logits, state = generator.start(1)
    total = 0.0
    for y in tokens:
        p = torch.softmax(logits[0].double(), dim=0)
        total -= math.log(p[y].item())
        logits, state = generator.step(torch.tensor([y]), state)
    return total


def test_mle_loss_is_the_mean_per_token_cross_entropy():
    gen = make_generator()
    seqs = torch.tensor([[1, 2, 3, 4], [0, 7, 7, 5], [6, 6, 6, 6]])
    expected = sum(hand_nll_sum(gen, row.tolist()) for row in seqs) / seqs.numel()  # 12 tokens
    loss = mle_loss(gen, seqs)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # An untrained generator (parameters ~ N(0, 0.01)) is close to uniform: about log V.
    assert loss.item() == pytest.approx(math.log(V), abs=0.1)


def test_mle_loss_excludes_padding():
    gen = make_generator()
    seqs = torch.tensor([[1, 2, 3, 4], [5, 6, PAD, PAD], [7, PAD, PAD, PAD]])
    rows = [[1, 2, 3, 4], [5, 6], [7]]
    expected = sum(hand_nll_sum(gen, r) for r in rows) / 7  # 7 real tokens
    loss = mle_loss(gen, seqs, pad_id=PAD)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # Not divided by all 12 positions.
    assert loss.item() != pytest.approx(expected * 7 / 12, rel=1e-3)


def test_mle_loss_gradient_matches_hand_loss():
    gen = make_generator()
    seqs = torch.tensor([[1, 2, 3, 4], [0, 7, 7, 5]])
    logp = torch.log_softmax(gen(seqs), dim=-1).gather(2, seqs.unsqueeze(2)).squeeze(2)
    manual = -logp.mean()
    want = torch.autograd.grad(manual, trainable(gen))
    got = torch.autograd.grad(mle_loss(gen, seqs), trainable(gen))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)


def deterministic_data() -> torch.Tensor:
    """Two fixed sequences, 32 copies each: a data set MLE can fit almost exactly."""
    return torch.tensor([[1, 2, 3, 4], [5, 6, 7, 1]]).repeat(32, 1)


def test_mle_epochs_lower_the_loss():
    gen = make_generator()
    data = deterministic_data()
    trainer = MLETrainer(gen, MLEConfig(batch_size=16))
    start = mle_loss(gen, data).item()
    rng = torch.Generator().manual_seed(0)
    epoch_losses = [trainer.epoch(data, rng) for _ in range(15)]
    end = mle_loss(gen, data).item()
    assert start == pytest.approx(math.log(V), abs=0.1)
    # The entropy of this data is log(2)/4 per token (only y_1 is uncertain): the loss heads there.
    assert end < 0.6 * start
    assert epoch_losses[-1] < epoch_losses[0]
    assert end < 1.0


def test_mle_on_the_cpu_takes_plain_steps_with_adam_s_step_on_the_host():
    trainer = MLETrainer(make_generator(), MLEConfig(batch_size=16))
    assert not trainer.optimizer.defaults["capturable"]  # checkpoints hold its step count as before
    assert trainer._graphed_step(deterministic_data()[:16]) is None


def test_a_captured_mle_step_clips_and_leaves_the_generator_and_adam_as_they_were(cuda_graphs_on_the_cpu):
    """The capture of `epoch`'s step (cuda_graphs_on_the_cpu: run eagerly on the CPU) clips the gradient
    before each of Adam's steps, and its warm-up is undone: weights and Adam's state as before."""
    trainer = MLETrainer(make_generator(), MLEConfig(batch_size=16))
    data = deterministic_data()
    trainer.cuda_graphs = False
    trainer.epoch(data, torch.Generator().manual_seed(0))  # plain steps: Adam has state
    trainer.cuda_graphs = True
    gen, opt = trainer.generator, trainer.optimizer
    weights = [p.detach().clone() for p in gen.parameters()]
    state = {(i, k): v.clone() for i, p in enumerate(gen.parameters()) for k, v in opt.state[p].items()}
    clips: list[float] = []
    opt.register_step_pre_hook(lambda o, args, kwargs: clips.append(
        float(torch.cat([p.grad.reshape(-1) for p in trainable(gen)]).norm())))  # fmt: skip
    trainer.config = MLEConfig(batch_size=16, grad_clip=1e-3)  # every step clipped
    step = trainer._graphed_step(data[:16])
    assert step is not None and trainer.cuda_graphs
    assert len(clips) == 4 and max(clips) == pytest.approx(1e-3, rel=1e-4)  # 3 warm-up steps, the capture
    assert all(torch.equal(p, w) for p, w in zip(gen.parameters(), weights, strict=True))
    for i, p in enumerate(gen.parameters()):
        for k, v in opt.state[p].items():
            assert torch.equal(v, state[i, k]), k


def test_mle_trainer_step_is_clipped_adam_at_lr_001():
    gen = make_generator()
    trainer = MLETrainer(gen)
    seen = []
    trainer.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: seen.append(torch.cat([p.grad.reshape(-1) for p in trainable(gen)]))
    )
    data = deterministic_data()[:4]
    raw = torch.autograd.grad(mle_loss(gen, data), trainable(gen))
    raw = torch.cat([g.reshape(-1) for g in raw])
    before = torch.cat([p.detach().reshape(-1).clone() for p in trainable(gen)])
    loss_before = mle_loss(gen, data).item()
    loss = trainer.step(data)
    assert loss == pytest.approx(loss_before, rel=1e-6)  # the loss of the minibatch before the step
    assert raw.norm() < 5.0  # a mean loss has a small gradient: not clipped
    torch.testing.assert_close(seen[0], raw, rtol=1e-5, atol=1e-7)
    change = torch.cat([p.detach().reshape(-1) for p in trainable(gen)]) - before
    big = raw.abs() > 1e-4
    torch.testing.assert_close(change[big], -0.01 * raw[big].sign(), rtol=1e-2, atol=1e-4)


def test_mle_trainer_clips_the_gradient_norm():
    gen = make_generator()
    with torch.no_grad():  # huge output weights: large gradients reach the LSTM
        gen.output.weight.mul_(1000.0)
    trainer = MLETrainer(gen)
    norms = []
    trainer.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: norms.append(
            torch.cat([p.grad.reshape(-1) for p in trainable(gen)]).norm()
        )
    )
    data = deterministic_data()[:4]
    raw = torch.autograd.grad(mle_loss(gen, data), trainable(gen))
    assert torch.cat([g.reshape(-1) for g in raw]).norm() > 5.0
    trainer.step(data)
    assert norms[0].item() == pytest.approx(5.0, rel=1e-4)


def test_mle_trainer_uses_its_pad_id():
    gen = make_generator()
    trainer = MLETrainer(gen, pad_id=PAD)
    seqs = torch.tensor([[1, 2, PAD, PAD], [3, PAD, PAD, PAD]])
    expected = mle_loss(gen, seqs, pad_id=PAD).item()
    assert trainer.step(seqs) == pytest.approx(expected, rel=1e-5)


def test_default_config_is_the_reference_code():
    c = MLEConfig()
    assert (c.lr, c.batch_size, c.grad_clip) == (0.01, 64, 5.0)


@pytest.mark.parametrize(
    "kwargs", [{"lr": 0.0}, {"lr": -0.01}, {"batch_size": 0}, {"grad_clip": 0.0}, {"grad_clip": -5.0}]
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        MLEConfig(**kwargs)


def test_one_bias_per_gate_stays_out_of_training():
    """The reference LSTM has one bias per gate: torch's recurrent bias stays zero and untrained, so the
    gate biases move at Adam's rate (not twice it) and count once in the clip-5 norm."""
    gen = make_generator()
    assert not gen.lstm.bias_hh_l0.requires_grad
    trainer = MLETrainer(gen)
    norms = []
    trainer.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: norms.append(torch.cat([p.grad.flatten() for p in trainable(gen)]).norm())
    )
    data = deterministic_data()[:4]
    grads = dict(zip([n for n, p in gen.named_parameters() if p.requires_grad],
                     torch.autograd.grad(mle_loss(gen, data), trainable(gen)), strict=True))
    assert "lstm.bias_hh_l0" not in grads and "lstm.bias_ih_l0" in grads
    before = gen.lstm.bias_ih_l0.detach().clone()
    trainer.step(data)
    assert gen.lstm.bias_hh_l0.grad is None
    assert torch.equal(gen.lstm.bias_hh_l0, torch.zeros_like(gen.lstm.bias_hh_l0))
    # The norm the clip sees counts the gate-bias gradient once.
    expected = torch.cat([g.flatten() for g in grads.values()]).norm()
    torch.testing.assert_close(norms[0], expected, rtol=1e-5, atol=1e-7)
    # Adam's first step moves each gate bias by lr = 0.01 at most (a doubled bias would move 0.02 in all).
    assert (gen.lstm.bias_ih_l0 - before).abs().max() <= 0.01 + 1e-6


def test_the_fused_token_nll_is_cross_entropy_in_value_and_gradient():
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(50, 40, generator=g)).requires_grad_()
    targets = torch.randint(0, 40, (50,), generator=g)
    weights = torch.rand(50, generator=g)
    fused = token_nll(logits, targets)
    expected = F.cross_entropy(logits, targets, reduction="none")
    assert torch.equal(fused, expected)  # the same log-softmax kernel forward
    (grad,) = torch.autograd.grad((fused * weights).sum(), logits)
    (reference,) = torch.autograd.grad((expected * weights).sum(), logits)
    torch.testing.assert_close(grad, reference, rtol=1e-5, atol=1e-7)  # (softmax - one-hot) * weight


BF16_MLE_LOSS_RTOL = 1e-2  # bf16 products: the per-token cross-entropy within 1% of fp32's


def test_a_bf16_mle_step_follows_the_fp32_step():
    data = make_generator(7).sample(64, torch.Generator().manual_seed(0))
    config = MLEConfig(batch_size=16)
    trainers = {p: MLETrainer(make_generator(), config, precision=p) for p in ("fp32", "bf16")}
    for _ in range(3):
        losses = {p: trainer.epoch(data, torch.Generator().manual_seed(1)) for p, trainer in trainers.items()}
        assert losses["bf16"] == pytest.approx(losses["fp32"], rel=BF16_MLE_LOSS_RTOL)
    assert all(p.dtype == torch.float32 for p in trainers["bf16"].generator.parameters())
    assert all(s.dtype == torch.float32 for state in trainers["bf16"].optimizer.state.values()
               for s in state.values() if s.is_floating_point())  # fmt: skip
