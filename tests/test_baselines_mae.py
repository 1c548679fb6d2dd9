"""baselines/mae.py: patchify against a loop over patches and its round trip; random masking keeps exactly
1 - ratio of the patches, per image, and restores their order; the loss counts the hidden patches only."""
import json

import pytest
import torch

from baselines import common, mae
from minclip.config import CLIPConfig
from minclip.data import ShapeWorld


def tiny_mae(seed=0, norm_pix_loss=True):
    torch.manual_seed(seed)
    return mae.MAE(CLIPConfig.preset("tiny"), decoder_layers=1, decoder_heads=2, norm_pix_loss=norm_pix_loss)


@pytest.mark.parametrize("P, size", [(8, 32), (4, 16), (16, 32)])
def test_patchify_matches_a_loop_and_round_trips(gen, P, size):
    images = torch.randn(3, 3, size, size, generator=gen)
    patches = mae.patchify(images, P)
    h = size // P
    assert patches.shape == (3, h * h, P * P * 3)
    for i in range(h):  # patch n = i * h + j is the block at row i, column j; pixels (row, column, channel)
        for j in range(h):
            block = images[:, :, i * P:(i + 1) * P, j * P:(j + 1) * P].permute(0, 2, 3, 1).reshape(3, -1)
            assert torch.equal(patches[:, i * h + j], block)
    assert torch.equal(mae.unpatchify(patches, P), images)


def test_patchify_refuses_what_does_not_tile():
    with pytest.raises(ValueError, match="not a multiple of the patch size"):
        mae.patchify(torch.zeros(1, 3, 30, 30), 8)
    with pytest.raises(ValueError, match="not a square image"):
        mae.unpatchify(torch.zeros(1, 15, 192), 8)


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.75, 0.9])
def test_masking_keeps_the_right_count_and_restores_order(gen, ratio):
    B, N, D = 6, 16, 5
    x = torch.randn(B, N, D, generator=gen)
    visible, mask, ids_restore = mae.random_masking(x, ratio, torch.Generator().manual_seed(1))
    keep = max(1, int(N * (1 - ratio)))
    assert visible.shape == (B, keep, D)
    assert torch.equal(mask.sum(1), torch.full((B,), float(N - keep)))  # exactly N - keep hidden in every image
    # the visible tokens are exactly the unmasked rows of x
    for b in range(B):
        rows = x[b, mask[b] == 0]  # (keep, D) in patch order
        assert torch.equal(visible[b][visible[b][:, 0].argsort()], rows[rows[:, 0].argsort()])
    # ids_restore puts every token back in place: visible ones at their patch, placeholders at the hidden ones
    filled = torch.cat([visible, torch.zeros(B, N - keep, D)], dim=1).gather(1, ids_restore[..., None].expand(-1, -1, D))
    assert torch.equal(filled[mask == 0], x[mask == 0]) and torch.all(filled[mask == 1] == 0)


def test_masking_is_per_sample_and_seeded(gen):
    x = torch.randn(8, 16, 4, generator=gen)
    a = mae.random_masking(x, 0.75, torch.Generator().manual_seed(5)).mask
    b = mae.random_masking(x, 0.75, torch.Generator().manual_seed(5)).mask
    c = mae.random_masking(x, 0.75, torch.Generator().manual_seed(6)).mask
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len({tuple(row.tolist()) for row in a}) > 1  # each image its own mask
    with pytest.raises(ValueError, match="at least one patch"):
        mae.random_masking(x, 1.0, torch.Generator())


def test_loss_covers_hidden_patches_only(gen):
    """Changing a visible patch's prediction leaves the loss as it is; changing a hidden one changes it; the
    gradient reaches hidden patches only."""
    model = tiny_mae()
    images = torch.randn(2, 3, 32, 32, generator=gen)
    mask = torch.zeros(2, 16)
    mask[:, :12] = 1  # patches 12..15 visible
    pred = torch.randn(2, 16, 192, generator=gen, requires_grad=True)
    loss = model.forward_loss(images, pred, mask)
    loss.backward()
    assert torch.all(pred.grad[:, 12:] == 0) and torch.all(pred.grad[:, :12].abs().sum(-1) > 0)
    moved = pred.detach().clone()
    moved[:, 12:] += 10.0
    assert model.forward_loss(images, moved, mask).item() == pytest.approx(loss.item(), abs=1e-6)
    moved[:, 0] += 1.0
    assert model.forward_loss(images, moved, mask).item() != pytest.approx(loss.item(), abs=1e-3)


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_loss_equals_the_papers_formula(gen, norm_pix_loss):
    """Mean over hidden patches of the per-patch mean squared error, targets normalised per patch (MAE §3)."""
    model = tiny_mae(norm_pix_loss=norm_pix_loss)
    images = torch.randn(2, 3, 32, 32, generator=gen)
    pred = torch.randn(2, 16, 192, generator=gen)
    mask = (torch.rand(2, 16, generator=gen) < 0.75).float()
    total, count = 0.0, 0
    for b in range(2):
        for n in range(16):
            if mask[b, n]:
                i, j = divmod(n, 4)
                target = images[b, :, i * 8:(i + 1) * 8, j * 8:(j + 1) * 8].permute(1, 2, 0).reshape(-1)
                if norm_pix_loss:
                    target = (target - target.mean()) / (target.var() + 1e-6).sqrt()
                total += ((pred[b, n] - target) ** 2).mean().item()
                count += 1
    assert model.forward_loss(images, pred, mask).item() == pytest.approx(total / count, rel=1e-5)


def test_encoder_and_decoder_shapes(gen):
    model = tiny_mae()
    images = torch.randn(4, 3, 32, 32, generator=gen)
    latent, mask, ids_restore = model.forward_encoder(images, 0.75, torch.Generator().manual_seed(0))
    assert latent.shape == (4, 1 + 4, 96) and mask.shape == ids_restore.shape == (4, 16)
    assert model.forward_decoder(latent, ids_restore).shape == (4, 16, 8 * 8 * 3)
    out = model(images, torch.Generator().manual_seed(0))
    assert out.pred.shape == (4, 16, 192) and out.loss.ndim == 0 and torch.isfinite(out.loss)


def test_unmasked_encoder_is_the_vit(gen):
    """With nothing hidden, MAE's encoder computes minclip's ViT: its class token through `proj` is visual(images)."""
    model = tiny_mae().eval()
    images = torch.randn(3, 3, 32, 32, generator=gen)
    latent, mask, ids_restore = model.forward_encoder(images, 0.0, torch.Generator().manual_seed(0))
    assert mask.sum() == 0
    torch.testing.assert_close(latent[:, 0] @ model.visual.proj, model.visual(images), atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_training_lowers_the_loss_and_loads(tmp_path):
    """20 steps lower the reconstruction loss on a fixed held-out batch and mask; the run loads back as an MAE."""
    mae.train(mae.MAERun(steps=20, batch_size=32, warmup=2, quiet=True, out=str(tmp_path)))
    trained, tokenizer, preprocess = common.load(tmp_path)
    assert isinstance(trained, mae.MAE) and tokenizer is None
    torch.manual_seed(0)  # the run's seed: the weights it started from
    untrained = mae.build(json.loads((tmp_path / "config.json").read_text())["model"])
    images = preprocess(ShapeWorld(seed=0).pretraining(64, seed=10 ** 6).images)
    with torch.no_grad():
        before, after = (m(images, torch.Generator().manual_seed(0)).loss.item() for m in (untrained, trained))
    assert after < before - 0.05
    with pytest.raises(SystemExit, match="--mask-ratio 1.0 must be in"):
        common.main(mae.MAERun, mae.MAEObjective, "", ["--steps", "1", "--mask-ratio", "1.0"])
