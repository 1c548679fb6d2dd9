"""minclip/model.py and minclip/encoders/: shapes, the contract, init, invariances, and clear errors."""
import math

import pytest
import torch

import minclip
from minclip import CLIP, CLIPConfig
from minclip.encoders.transformer import QuickGELU, Transformer


def tiny(**vision):
    config = CLIPConfig.preset("tiny")
    for k, v in vision.items():
        setattr(config.vision, k, v)
    torch.manual_seed(0)
    return CLIP(config)


def tokens(B, L=32, vocab=512, gen=None):
    """Random captions of random length: SOT=vocab-2 ... EOT=vocab-1, then 0-padding."""
    gen = gen or torch.Generator().manual_seed(0)
    t = torch.zeros(B, L, dtype=torch.long)
    for b in range(B):
        n = int(torch.randint(1, L - 1, (1,), generator=gen))
        t[b, 0] = vocab - 2
        t[b, 1:n] = torch.randint(1, vocab - 2, (n - 1,), generator=gen)
        t[b, n] = vocab - 1
    return t


def test_presets_build_and_round_trip():
    for name in CLIPConfig.presets():
        config = CLIPConfig.preset(name)
        assert CLIPConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown preset"):
        CLIPConfig.preset("vit-z-99")
    with pytest.raises(ValueError, match="unknown CLIPConfig keys"):
        CLIPConfig.from_dict({"embed_dimm": 3})


def test_forward_contract(gen):
    model = tiny().eval()
    images, toks = torch.randn(4, 3, 32, 32, generator=gen), tokens(4)
    out = model(images, toks)
    assert isinstance(out, minclip.CLIPOutput)
    assert out.image_embeds.shape == out.text_embeds.shape == (4, 64)
    torch.testing.assert_close(out.image_embeds.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(out.text_embeds.norm(dim=-1), torch.ones(4))
    assert out.logit_scale.ndim == 0 and math.isclose(out.logit_scale.item(), 1 / 0.07, rel_tol=1e-5)
    raw = model.encode_image(images, normalize=False)
    torch.testing.assert_close(raw / raw.norm(dim=-1, keepdim=True), out.image_embeds)


def test_logit_scale_clamp():
    model = tiny()
    with torch.no_grad():
        model.logit_scale.fill_(7.0)
    assert model(torch.randn(2, 3, 32, 32), tokens(2)).logit_scale.item() == pytest.approx(100.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == pytest.approx(math.log(100))
    with torch.no_grad():
        model.logit_scale.fill_(-1.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == 0.0


def test_text_padding_and_trimming_do_not_change_embeddings(gen):
    """The EOT state sees only tokens before it (causal mask), so extra padding changes nothing."""
    model = tiny().eval()
    toks = tokens(5, L=20)
    padded = torch.cat([toks, torch.zeros(5, 12, dtype=torch.long)], dim=1)  # (5, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(toks), model.encode_text(padded), atol=1e-6, rtol=0)
        # and changing a token after a caption's EOT changes nothing either
        other = padded.clone()
        eot = padded.argmax(-1)
        other[0, eot[0] + 1:] = 7
        # the row is no longer padded with 0, but its EOT (the max id) is still at the same place
        torch.testing.assert_close(model.encode_text(other)[0], model.encode_text(padded)[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
def test_readout_equals_the_full_stack(gen, causal):
    """The last block computing only the read-out tokens gives the same states and gradients as running every
    token through every block and picking the read-out rows afterwards (what open_clip does)."""
    torch.manual_seed(0)
    stack = Transformer(width=24, layers=3, heads=3).double()
    x = torch.randn(6, 11, 24, generator=gen, dtype=torch.float64, requires_grad=True)
    readout = torch.tensor([0, 10, 3, 7, 0, 5])  # (B,) one token per row, anywhere in the row
    full = stack(x, causal=causal)[torch.arange(6), readout]  # (B, D) the slow way
    fast = stack(x, causal=causal, readout=readout)  # (B, D)
    torch.testing.assert_close(fast, full, atol=1e-12, rtol=0)
    w = torch.randn(6, 24, generator=gen, dtype=torch.float64)
    g_full = torch.autograd.grad((full * w).sum(), [x, *stack.parameters()])
    g_fast = torch.autograd.grad((fast * w).sum(), [x, *stack.parameters()])
    for a, b in zip(g_fast, g_full):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_causal_mask_matters(gen):
    """Changing a token before EOT must change the embedding (a sanity check on the pooling position)."""
    model = tiny().eval()
    toks = tokens(2, L=20)
    changed = toks.clone()
    changed[:, 1] = (changed[:, 1] % 500) + 1
    with torch.no_grad():
        assert (model.encode_text(toks) - model.encode_text(changed)).abs().max() > 1e-4


def test_init_stds():
    torch.manual_seed(0)
    model = CLIP(CLIPConfig.preset("small"))
    t, w, layers = model.text, 256, 4
    assert t.token_embedding.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert t.positional_embedding.std().item() == pytest.approx(0.01, rel=0.1)
    block = t.transformer.resblocks[0]
    assert block.attn.in_proj_weight.std().item() == pytest.approx(w ** -0.5, rel=0.05)
    assert block.attn.out_proj.weight.std().item() == pytest.approx(w ** -0.5 * (2 * layers) ** -0.5, rel=0.05)
    assert block.mlp.c_fc.weight.std().item() == pytest.approx((2 * w) ** -0.5, rel=0.05)
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))


def test_quickgelu():
    x = torch.linspace(-5, 5, 101)
    torch.testing.assert_close(QuickGELU()(x), x * torch.sigmoid(1.702 * x))
    assert (QuickGELU()(x) - torch.nn.functional.gelu(x)).abs().max() < 0.03  # it approximates GELU


def test_patch_dropout_keeps_fraction_and_only_when_training(gen):
    model = tiny(patch_dropout=0.5)
    x = torch.randn(2, 16 + 1, 96, generator=gen)
    assert model.visual.drop_patches(x).shape == (2, 1 + 8, 96)
    torch.testing.assert_close(model.visual.drop_patches(x)[:, 0], x[:, 0])  # the class token always stays
    images = torch.randn(3, 3, 32, 32, generator=gen)
    model.eval()
    with torch.no_grad():
        a, b = model.encode_image(images), model.encode_image(images)
    torch.testing.assert_close(a, b)  # no dropout at eval time
    with pytest.raises(ValueError, match="patch_dropout"):
        tiny(patch_dropout=1.0)


def test_backward_reaches_every_parameter(gen):
    model = tiny()
    out = model(torch.randn(4, 3, 32, 32, generator=gen), tokens(4))
    (out.logit_scale * out.image_embeds @ out.text_embeds.T).logsumexp(1).sum().backward()
    # positional rows past the longest caption get no gradient: they were never used
    missing = [n for n, p in model.named_parameters() if p.grad is None and n != "text.positional_embedding"]
    assert not missing


def test_resnet_and_timm_towers(gen):
    config = CLIPConfig.preset("tiny")
    config.vision.kind, config.vision.layers, config.vision.width, config.vision.heads = "resnet", (1, 1, 1, 1), 16, 8
    model = CLIP(config).eval()
    assert model.encode_image(torch.randn(2, 3, 32, 32, generator=gen)).shape == (2, 64)
    config = CLIPConfig.preset("tiny")
    config.vision.kind, config.vision.timm_name = "timm", "resnet18"
    model = CLIP(config).eval()
    assert model.encode_image(torch.randn(2, 3, 32, 32, generator=gen)).shape == (2, 64)
    config.vision.timm_name = "no-such-net"
    with pytest.raises(ValueError, match="timm has no model"):
        CLIP(config)


@pytest.mark.parametrize("bad, match", [
    (lambda m: m.encode_image(torch.randn(2, 1, 32, 32)), "shape \\(B, 3, H, W\\)"),
    (lambda m: m.encode_image(torch.randn(2, 3, 64, 64)), "this model takes 32x32"),
    (lambda m: m.encode_image(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)), "preprocess"),
    (lambda m: m.encode_image(torch.randn(0, 3, 32, 32)), "empty batch"),
    (lambda m: m.encode_image([[1.0]]), "torch.Tensor"),
    (lambda m: m.encode_image(torch.randn(2, 3, 32, 32, dtype=torch.float64)),
     "images are torch.float64 but the model is torch.float32; pass torch.float32 images: images.float()"),
    (lambda m: m.encode_image(torch.randn(2, 3, 32, 32).half()), "images.float\\(\\), or .*torch.autocast"),
    (lambda m: m.double().encode_image(torch.randn(2, 3, 32, 32)), "model is torch.float64; .*images.double"),
    (lambda m: m.encode_text(torch.full((1, 32), 10 ** 7)), "vocabulary has 512"),
    (lambda m: m.encode_text(torch.full((1, 32), -1)), "vocabulary has 512"),
    (lambda m: m.encode_text(torch.zeros(1, 40, dtype=torch.long)), "context is 32"),
    (lambda m: m.encode_text(torch.zeros(0, 32, dtype=torch.long)), "B > 0"),
    (lambda m: m.encode_text(torch.zeros(1, 32)), "integer tensor"),
])
def test_bad_input_is_refused_clearly(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bad(tiny())


def test_images_in_the_models_dtype_or_under_autocast_give_its_result(gen):
    """The model's parameters set the dtype: a float64 model takes float64 images (and agrees with float32); under
    torch.autocast, float32 images and images in the autocast dtype are both cast by each layer."""
    model, images = tiny().eval(), torch.randn(2, 3, 32, 32, generator=gen)
    with torch.no_grad():
        reference = model.encode_image(images)
        torch.testing.assert_close(model.double().encode_image(images.double()).float(), reference,
                                   atol=1e-5, rtol=0)
        model.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            for x in (images, images.bfloat16()):
                torch.testing.assert_close(model.encode_image(x).float(), reference, atol=0.05, rtol=0)
            with pytest.raises(TypeError, match="under autocast: float32 or torch.bfloat16 images"):
                model.encode_image(images.double())
