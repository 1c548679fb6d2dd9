"""Tests for minclip/loss.py. Each loss is checked four ways: a slow numpy loop written from the paper's pseudocode,
an analytic special case, symmetry/invariance, and parity with the reference library (open_clip, lightly).
The two-process gloo tests of distributed_clip_loss and distributed_siglip_loss live in test_loss_distributed.py.
"""
import math
import subprocess
import sys

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss

from minclip.loss import (clip_loss, clip_loss_grad, distributed_clip_loss, distributed_siglip_loss, nt_xent_loss,
                          siglip_loss, tiled_clip_loss)


def pairs(B, E, seed=0, dtype=torch.float32, grad=False):
    """(B, E) L2-normalised image and text embeddings."""
    g = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(B, E, generator=g, dtype=dtype), dim=-1)
    texts = F.normalize(torch.randn(B, E, generator=g, dtype=dtype), dim=-1)
    return images.requires_grad_(grad), texts.requires_grad_(grad)


def max_rel(a, b):
    """Largest entry of |a − b|, relative to the largest entry of |b| (all-zero gradients compare absolutely)."""
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()


def logsumexp(values):
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


# numpy oracles: slow loops, one line of pseudocode at a time

def clip_oracle(images, texts, s):
    """CLIP Fig. 3: logits = s·I·Tᵀ, labels = arange(B), (CE over rows + CE over columns) / 2."""
    I, T = images.detach().double().numpy(), texts.detach().double().numpy()
    B = len(I)
    logits = [[s * float(np.dot(I[i], T[j])) for j in range(B)] for i in range(B)]
    image_to_text = sum(logsumexp(logits[i]) - logits[i][i] for i in range(B)) / B
    text_to_image = sum(logsumexp([logits[i][j] for i in range(B)]) - logits[j][j] for j in range(B)) / B
    return (image_to_text + text_to_image) / 2


def siglip_oracle(images, texts, s, b):
    """SigLIP: −(1/B)·Σ_ij log σ(y_ij·(s·I_i·T_j + b)), y = +1 on the diagonal, −1 elsewhere."""
    I, T = images.double().numpy(), texts.double().numpy()
    total = 0.0
    for i in range(len(I)):
        for j in range(len(T)):
            y = 1.0 if i == j else -1.0
            total += math.log1p(math.exp(-y * (s * float(np.dot(I[i], T[j])) + b)))  # −log σ(x) = log(1 + e^−x)
    return total / len(I)


def nt_xent_oracle(z1, z2, temperature):
    """SimCLR Alg. 1: ℓ(k, k') = −log(exp(sim(k, k')/τ) / Σ_{l≠k} exp(sim(k, l)/τ)), averaged over all 2B views."""
    z = np.concatenate([z1.double().numpy(), z2.double().numpy()])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    B2 = len(z)
    total = 0.0
    for k in range(B2):
        partner = (k + B2 // 2) % B2
        logits = [float(np.dot(z[k], z[l])) / temperature for l in range(B2) if l != k]
        total += logsumexp(logits) - float(np.dot(z[k], z[partner])) / temperature
    return total / B2


@pytest.mark.parametrize("B,E,s", [(2, 3, 1.0), (7, 5, 14.3), (16, 8, 100.0)])
def test_clip_loss_matches_the_numpy_oracle(B, E, s):
    images, texts = pairs(B, E, dtype=torch.float64)
    expected, scale = clip_oracle(images, texts, s), torch.tensor(s, dtype=torch.float64)
    assert clip_loss(images, texts, scale).item() == pytest.approx(expected, rel=1e-10)
    assert tiled_clip_loss(images, texts, scale, chunk_size=3).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("B,E,s,b", [(2, 3, 10.0, -10.0), (9, 6, 14.3, -2.0), (16, 8, 100.0, 0.5)])
def test_siglip_loss_matches_the_numpy_oracle(B, E, s, b):
    images, texts = pairs(B, E, dtype=torch.float64)
    expected = siglip_oracle(images, texts, s, b)
    scale, bias = torch.tensor(s, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    assert siglip_loss(images, texts, scale, bias).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("B,E,temperature", [(2, 3, 0.5), (8, 5, 0.1), (13, 16, 1.0)])
def test_nt_xent_loss_matches_the_numpy_oracle(B, E, temperature):
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(B, E, generator=g, dtype=torch.float64), torch.randn(B, E, generator=g, dtype=torch.float64)
    expected = nt_xent_oracle(z1, z2, temperature)
    assert nt_xent_loss(z1, z2, temperature).item() == pytest.approx(expected, rel=1e-10)


# analytic special cases

@pytest.mark.parametrize("B", [2, 5, 64])
def test_identical_embeddings_give_log_B(B):
    # every logit equal: each B-way softmax is uniform, so each cross-entropy is −log(1/B) = log B
    same = F.normalize(torch.ones(B, 4, dtype=torch.float64), dim=-1)
    assert clip_loss(same, same, torch.tensor(14.3)).item() == pytest.approx(math.log(B), rel=1e-12)
    assert tiled_clip_loss(same, same, torch.tensor(14.3), chunk_size=3).item() == pytest.approx(math.log(B), rel=1e-12)


def test_orthogonal_pairs_at_scale_100_give_almost_zero():
    # one-hot rows: Z = 100·Id, so each CE is log(1 + (B − 1)·e^−100) ≈ (B − 1)·e^−100
    one_hot = torch.eye(8, dtype=torch.float64)
    expected = math.log1p(7 * math.exp(-100))
    assert clip_loss(one_hot, one_hot, torch.tensor(100.0)).item() == pytest.approx(expected, rel=1e-6)
    assert clip_loss(one_hot, one_hot, torch.tensor(100.0)).item() < 1e-40


def test_siglip_of_orthogonal_pairs_is_softplus_in_closed_form():
    # one-hot rows: logits are s + b on the diagonal and b elsewhere, so L = softplus(−(s + b)) + (B − 1)·softplus(b)
    B, s, b = 6, 10.0, -10.0
    one_hot = torch.eye(B, dtype=torch.float64)
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected = softplus(-(s + b)) + (B - 1) * softplus(b)
    assert siglip_loss(one_hot, one_hot, torch.tensor(s), torch.tensor(b)).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("B", [2, 8])
def test_collinear_views_give_log_2B_minus_1(B):
    # all 2B views point the same way: the positive is one of 2B − 1 equal logits, so the loss is −log(1/(2B − 1))
    z = torch.ones(B, 5, dtype=torch.float64)
    assert nt_xent_loss(z, 3 * z, temperature=0.5).item() == pytest.approx(-math.log(1 / (2 * B - 1)), rel=1e-12)


# symmetry and invariance

def test_swapping_images_and_texts_changes_nothing():
    images, texts = pairs(12, 6)
    s, b = torch.tensor(14.3), torch.tensor(-3.0)
    assert clip_loss(texts, images, s).item() == pytest.approx(clip_loss(images, texts, s).item(), rel=1e-6)
    assert siglip_loss(texts, images, s, b).item() == pytest.approx(siglip_loss(images, texts, s, b).item(), rel=1e-6)
    assert nt_xent_loss(texts, images).item() == pytest.approx(nt_xent_loss(images, texts).item(), rel=1e-6)


def test_permuting_the_batch_jointly_changes_nothing_but_breaking_pairs_does():
    images, texts = pairs(12, 6)
    s, b = torch.tensor(14.3), torch.tensor(-3.0)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    for loss in (lambda i, t: clip_loss(i, t, s), lambda i, t: siglip_loss(i, t, s, b), nt_xent_loss):
        assert loss(images[perm], texts[perm]).item() == pytest.approx(loss(images, texts).item(), rel=1e-6)
        assert loss(images, texts[perm]).item() != pytest.approx(loss(images, texts).item(), rel=1e-3)


# parity with the reference libraries

@pytest.mark.parametrize("B", [2, 17, 64])
@pytest.mark.parametrize("E", [8, 32])
@pytest.mark.parametrize("s", [1.0, 14.3, 100.0])
def test_clip_loss_and_gradients_match_open_clip(B, E, s):
    # float64 (here and in every parity test): the comparison is of the formulas, not of one CPU's float32 kernels.
    # Two correct paths differ by a few ulps per operation, ~1e-14 relative in float64; 1e-10 catches any wrong term.
    images, texts = pairs(B, E, seed=B + E, dtype=torch.float64, grad=True)
    scale = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    ours = clip_loss(images, texts, scale)
    ref = open_clip.ClipLoss()(images, texts, scale)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    for a, b in zip(torch.autograd.grad(ours, (images, texts, scale)), torch.autograd.grad(ref, (images, texts, scale))):
        assert max_rel(a, b) < 1e-10


@pytest.mark.parametrize("B,E", [(2, 4), (12, 8), (48, 32)])
@pytest.mark.parametrize("s,b", [(10.0, -10.0), (1.0, 0.0), (100.0, -5.0)])
def test_siglip_loss_matches_open_clip(B, E, s, b):
    images, texts = pairs(B, E, seed=B, dtype=torch.float64, grad=True)
    scale = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    ours = siglip_loss(images, texts, scale, bias)
    ref = open_clip.loss.SigLipLoss()(images, texts, scale, bias)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    inputs = (images, texts, scale, bias)
    for x, y in zip(torch.autograd.grad(ours, inputs), torch.autograd.grad(ref, inputs)):
        assert max_rel(x, y) < 1e-10


def test_distributed_siglip_loss_without_a_process_group_is_siglip_loss():
    # one process is a world of one: the same function, so the same bits (the 2-rank test: test_loss_distributed.py)
    images, texts = pairs(6, 4, dtype=torch.float64, grad=True)
    scale = torch.tensor(10.0, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-10.0, dtype=torch.float64, requires_grad=True)
    assert not torch.distributed.is_initialized()
    ours, ref = distributed_siglip_loss(images, texts, scale, bias), siglip_loss(images, texts, scale, bias)
    assert torch.equal(ours, ref)
    inputs = (images, texts, scale, bias)
    for x, y in zip(torch.autograd.grad(ours, inputs), torch.autograd.grad(ref, inputs)):
        assert torch.equal(x, y)
    with pytest.raises(ValueError, match="logit_bias must be a scalar"):
        distributed_siglip_loss(images, texts, scale, torch.zeros(4))


@pytest.mark.parametrize("B,E", [(2, 3), (16, 24), (64, 128)])
@pytest.mark.parametrize("temperature", [0.07, 0.1, 0.5, 1.0])
def test_nt_xent_loss_matches_lightly(B, E, temperature):
    g = torch.Generator().manual_seed(B)
    z1 = torch.randn(B, E, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(B, E, generator=g, dtype=torch.float64, requires_grad=True)
    ours, ref = nt_xent_loss(z1, z2, temperature), NTXentLoss(temperature=temperature)(z1, z2)
    # abs: at τ = 0.07 a loss near 0 is a difference of logits ~14, which float64 holds to ~1e-15
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12, abs=1e-13)
    for a, b in zip(torch.autograd.grad(ours, (z1, z2)), torch.autograd.grad(ref, (z1, z2))):
        assert max_rel(a, b) < 1e-10


# the hand-derived gradient

@pytest.mark.parametrize("B,E,s", [(2, 3, 1.0), (9, 4, 14.3), (32, 16, 100.0)])
def test_analytic_gradient_equals_autograd_in_float64(B, E, s):
    images, texts = pairs(B, E, dtype=torch.float64, grad=True)
    scale = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    expected = torch.autograd.grad(clip_loss(images, texts, scale), (images, texts, scale))
    ours = clip_loss_grad(images.detach(), texts.detach(), scale.detach())
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)


class _ClipLossWithAnalyticGradient(torch.autograd.Function):
    """clip_loss whose backward is clip_loss_grad, so that gradcheck compares it with finite differences."""

    @staticmethod
    def forward(ctx, images, texts, scale):
        ctx.save_for_backward(images, texts, scale)
        return clip_loss(images, texts, scale)

    @staticmethod
    def backward(ctx, grad):
        return tuple(grad * g for g in clip_loss_grad(*ctx.saved_tensors))


def test_analytic_gradient_passes_gradcheck():
    images, texts = pairs(6, 4, dtype=torch.float64, grad=True)
    scale = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_ClipLossWithAnalyticGradient.apply, (images, texts, scale))


# the tiled loss

@pytest.mark.parametrize("chunk_size", [1, 7, 16, 50, 64, 1024])
@pytest.mark.parametrize("s", [1.0, 100.0])
def test_tiled_loss_equals_clip_loss_in_float32(chunk_size, s):
    images, texts = pairs(50, 16, seed=3, grad=True)  # 7 and 16 do not divide 50; 64 and 1024 exceed it
    scale = torch.tensor(s, requires_grad=True)
    plain, tiled = clip_loss(images, texts, scale), tiled_clip_loss(images, texts, scale, chunk_size=chunk_size)
    assert tiled.item() == pytest.approx(plain.item(), rel=1e-5)
    grads = torch.autograd.grad(plain, (images, texts, scale)), torch.autograd.grad(tiled, (images, texts, scale))
    for a, b in zip(*grads):
        assert max_rel(b, a) < 1e-5


def test_tiled_loss_passes_gradcheck():
    images, texts = pairs(7, 4, dtype=torch.float64, grad=True)
    scale = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda i, t, s: tiled_clip_loss(i, t, s, chunk_size=3), (images, texts, scale))


def test_tiled_loss_under_bf16_autocast_is_close_to_float32():
    images, texts = pairs(96, 32, grad=True)
    scale = torch.tensor(100.0, requires_grad=True)
    exact = clip_loss(images, texts, scale)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain, tiled = clip_loss(images, texts, scale), tiled_clip_loss(images, texts, scale, chunk_size=40)
    assert tiled.dtype == torch.float32 and torch.isfinite(tiled)
    # bf16 keeps 8 bits of mantissa: logits of size ~100 carry errors ~0.4, so expect about 1% here, like clip_loss
    assert tiled.item() == pytest.approx(exact.item(), rel=1e-2)
    assert tiled.item() == pytest.approx(plain.item(), rel=1e-2)
    grads = torch.autograd.grad(tiled, (images, texts, scale))
    for a, b in zip(grads, torch.autograd.grad(exact, (images, texts, scale))):
        assert a.dtype == torch.float32 and ((a - b).norm() / b.norm()).item() < 3e-2


def test_scale_100_is_finite_where_a_naive_exp_overflows():
    # logits reach ±100 and e^100 > float32's max of 3.4e38: only the max-shifted logsumexp stays finite
    images = F.normalize(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 1e-3], [0.0, 1.0]]), dim=-1).requires_grad_()
    texts = images.detach().clone().requires_grad_()
    scale = torch.tensor(100.0, requires_grad=True)
    assert not torch.isfinite((100.0 * images @ texts.T).exp()).all()
    plain, tiled = clip_loss(images, texts, scale), tiled_clip_loss(images, texts, scale, chunk_size=3)
    assert torch.isfinite(plain) and torch.isfinite(tiled)
    # the loss is a difference of logits ~100, which float32 holds to ~1e-5 absolute
    exact = clip_loss(images.double(), texts.double(), scale.double()).item()
    assert tiled.item() == pytest.approx(exact, abs=1e-5) and plain.item() == pytest.approx(exact, abs=1e-5)
    for g in torch.autograd.grad(tiled, (images, texts, scale)):
        assert torch.isfinite(g).all()


# bad input: a clear error naming the problem and the fix, or a documented result

@pytest.mark.parametrize("loss", [
    lambda i, t: clip_loss(i, t, torch.tensor(14.3)),
    lambda i, t: tiled_clip_loss(i, t, torch.tensor(14.3)),
    lambda i, t: siglip_loss(i, t, torch.tensor(10.0), torch.tensor(-10.0)),
    nt_xent_loss,
])
@pytest.mark.parametrize("shapes,message", [
    (((4, 8), (5, 8)), "4 rows but .* has 5"),
    (((4, 8), (4, 6)), "E=8 but .* has E=6"),
    (((1, 8), (1, 8)), "a batch of 1 has no negatives"),
    (((4, 8, 2), (4, 8, 2)), r"must be a \(B, E\) tensor"),
])
def test_bad_shapes_raise_a_clear_error(loss, shapes, message):
    with pytest.raises(ValueError, match=message):
        loss(torch.randn(*shapes[0]), torch.randn(*shapes[1]))


def test_bad_scale_chunk_temperature_and_dtype_raise_a_clear_error():
    images, texts = pairs(4, 8)
    with pytest.raises(ValueError, match="logit_scale must be a scalar"):
        clip_loss(images, texts, torch.tensor([14.3, 14.3]))
    with pytest.raises(ValueError, match="logit_bias must be a scalar"):
        siglip_loss(images, texts, torch.tensor(10.0), torch.zeros(4))
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        tiled_clip_loss(images, texts, torch.tensor(14.3), chunk_size=0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        nt_xent_loss(images, texts, temperature=0.0)
    with pytest.raises(ValueError, match="cast both to one dtype"):
        clip_loss(images, texts.double(), torch.tensor(14.3))


SCALED_LOSSES = {  # every loss that multiplies the logits by an exponentiated logit_scale
    "clip_loss": clip_loss,
    "clip_loss_grad": clip_loss_grad,
    "tiled_clip_loss": lambda i, t, s: tiled_clip_loss(i, t, s, chunk_size=3),
    "distributed_clip_loss": distributed_clip_loss,  # without a process group: clip_loss
    "siglip_loss": lambda i, t, s: siglip_loss(i, t, s, torch.tensor(-10.0)),
    "distributed_siglip_loss": lambda i, t, s: distributed_siglip_loss(i, t, s, torch.tensor(-10.0)),
}


@pytest.mark.parametrize("loss", SCALED_LOSSES.values(), ids=SCALED_LOSSES.keys())
@pytest.mark.parametrize("scale", [-14.3, 0.0, torch.tensor(-1.0)], ids=["neg", "zero", "tensor"])
def test_a_scale_that_is_not_positive_is_refused(loss, scale):
    # s <= 0 would reward the wrong pairs (or flatten every softmax) and train without complaint
    images, texts = pairs(4, 8)
    with pytest.raises(ValueError, match=r"logit_scale must be > 0, got .*model\.logit_scale\.exp\(\)"):
        loss(images, texts, scale)


@pytest.mark.parametrize("loss", SCALED_LOSSES.values(), ids=SCALED_LOSSES.keys())
def test_the_models_log_scale_parameter_is_refused(loss):
    # CLIP stores t = log(1/0.07) = 2.66 as an nn.Parameter: positive, so only its type tells it from s = exp(t)
    images, texts = pairs(4, 8)
    t = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    with pytest.raises(TypeError, match=r"nn\.Parameter.*pass model\.logit_scale\.exp\(\)"):
        loss(images, texts, t)
    assert loss(images, texts, t.exp()) is not None  # the fix, as the message says


@pytest.mark.parametrize("temperature", [-0.5, float("nan"), torch.tensor(0.0)])
def test_a_temperature_that_is_not_positive_is_refused(temperature):
    z1, z2 = pairs(4, 8)
    with pytest.raises(ValueError, match="temperature must be > 0, got .*SimCLR uses 0.1 to 0.5"):
        nt_xent_loss(z1, z2, temperature)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_scale_checks_never_sync_the_gpu():
    # clip_loss runs every training step: its checks must not wait for the GPU (sync debug mode "error" raises
    # on any op that would)
    images, texts = (x.cuda() for x in pairs(64, 16))
    s, b = torch.tensor(14.3, device="cuda"), torch.tensor(-10.0, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for loss in (clip_loss, tiled_clip_loss, distributed_clip_loss):
            loss(images, texts, s)
        siglip_loss(images, texts, s, b)
        distributed_siglip_loss(images, texts, s, b)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    # On the GPU a negative scale is caught asynchronously, at the next sync. A failed device-side assert ends the
    # process's CUDA context, so it runs in a process of its own.
    code = ("import torch; from minclip.loss import clip_loss; x = torch.eye(4, device='cuda'); "
            "clip_loss(x, x, torch.tensor(-1.0, device='cuda')); torch.cuda.synchronize()")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "device-side assert" in run.stderr


def test_a_plain_number_works_as_logit_scale():
    images, texts = pairs(6, 4)
    assert clip_loss(images, texts, 14.3).item() == pytest.approx(clip_loss(images, texts, torch.tensor(14.3)).item())


def test_nan_inputs_give_a_nan_loss():
    # documented: checking for NaN would sync the GPU every step, so a NaN embedding gives a NaN loss; and a NaN
    # scale is a diverged model, whose NaN loss the trainer reports with its cause (not a wrong-argument error)
    images, texts = pairs(5, 4)
    images[2, 1] = float("nan")
    s = torch.tensor(14.3)
    for loss in (clip_loss(images, texts, s), tiled_clip_loss(images, texts, s, chunk_size=2),
                 siglip_loss(images, texts, s, torch.tensor(-10.0))):
        assert torch.isnan(loss)
    images, texts = pairs(5, 4)
    assert torch.isnan(clip_loss(images, texts, torch.tensor(float("nan"))))


def test_unnormalised_embeddings_give_the_dot_product_loss():
    # documented: clip_loss does not normalise, like open_clip; the norms act as a per-pair temperature
    g = torch.Generator().manual_seed(0)
    images, texts = 3 * torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    s = torch.tensor(2.0)
    ours = clip_loss(images, texts, s)
    assert ours.item() == pytest.approx(open_clip.ClipLoss()(images, texts, s).item(), rel=1e-6)
    assert ours.item() == pytest.approx(clip_oracle(images, texts, 2.0), rel=1e-5)
    assert ours.item() != pytest.approx(clip_loss(F.normalize(images, dim=-1), F.normalize(texts, dim=-1), s).item())
    assert tiled_clip_loss(images, texts, s, chunk_size=3).item() == pytest.approx(ours.item(), rel=1e-5)
