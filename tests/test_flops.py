"""minclip/flops.py: hand counts, open_clip's published GFLOPs, the shortcuts' equivalence, and the caller's model."""
import pytest
import torch

import minclip
from baselines.supervised import Supervised
from minclip import CLIP, CLIPConfig
from minclip.encoders.resnet import AttentionPool2d
from minclip.encoders.transformer import Block, Transformer
from minclip.flops import count
from test_model import tiny  # the tiny preset with vision fields overridden, seeded


def block_flops(N, D):
    """The module docstring's hand count for one ViT block: N tokens of width D, MLP ratio 4."""
    return 24 * N * D ** 2 + 4 * N ** 2 * D


@pytest.fixture(scope="module")
def vit_b_32():
    return minclip.flops(CLIP(CLIPConfig.preset("vit-b-32")))


@pytest.fixture(scope="module")
def rn50():
    return minclip.flops(CLIP(CLIPConfig.preset("rn50")))


def test_one_block_matches_the_hand_count(gen):
    N, D = 17, 64
    x = torch.randn(2, N, D, generator=gen)  # (B, N, D)
    assert count(Block(D, heads=4), x) == block_flops(N, D)


@pytest.mark.parametrize("image_size, patch_size", [(32, 8), (64, 8), (64, 16)])
def test_tiny_towers_match_the_hand_count(image_size, patch_size):
    model = tiny(image_size=image_size, patch_size=patch_size)
    v, t, E = model.config.vision, model.config.text, model.config.embed_dim
    N = (image_size // patch_size) ** 2 + 1  # patches and the class token
    patch_embedding = 2 * (N - 1) * (3 * patch_size ** 2) * v.width  # one linear layer per patch
    image = patch_embedding + v.layers * block_flops(N, v.width) + 2 * v.width * E
    text = t.layers * block_flops(t.context_length, t.width) + 2 * t.width * E  # the full context of L tokens
    assert minclip.flops(model) == {"image": image / 1e9, "text": text / 1e9}


@pytest.mark.slow  # builds two 100M-parameter models
def test_openai_architectures_match_open_clips_profile(vit_b_32, rn50):
    # open_clip docs/model_profile.csv: image_gflops and text_gflops at 224 px and 77 tokens. 1%, not more: the
    # shortcuts alone would make ViT-B/32's image count 8% lower.
    assert vit_b_32["image"] == pytest.approx(8.82, rel=0.01)
    assert vit_b_32["text"] == pytest.approx(5.96, rel=0.01)
    assert rn50["image"] == pytest.approx(12.22, rel=0.01)
    assert rn50["text"] == pytest.approx(5.96, rel=0.01)
    assert all(type(v) is float for v in (*vit_b_32.values(), *rn50.values()))


@pytest.mark.parametrize("causal", [False, True])
def test_transformer_shortcut_gives_the_plain_result(gen, causal):
    torch.manual_seed(0)
    stack = Transformer(width=32, layers=3, heads=4).double()
    x = torch.randn(6, 11, 32, generator=gen, dtype=torch.float64)  # (B, N, D)
    readout = torch.tensor([0, 10, 3, 7, 0, 5])  # (B,) one token per row
    fast = stack(x, causal=causal, readout=readout)  # (B, D)
    stack.shortcut = False
    plain = stack(x, causal=causal, readout=readout)  # (B, D)
    assert plain.shape == fast.shape == (6, 32)
    torch.testing.assert_close(plain, fast)


def test_attention_pool_shortcut_gives_the_plain_result(gen):
    torch.manual_seed(0)
    pool = AttentionPool2d(spatial=3, width=32, heads=4, embed_dim=16).double()
    x = torch.randn(5, 32, 3, 3, generator=gen, dtype=torch.float64)  # (B, C, h, w)
    fast = pool(x)  # (B, E)
    pool.shortcut = False
    plain = pool(x)  # (B, E)
    assert plain.shape == fast.shape == (5, 16)
    torch.testing.assert_close(plain, fast)


def test_attention_pool_costs_more_without_its_shortcut():
    torch.manual_seed(0)
    pool = AttentionPool2d(spatial=3, width=32, heads=4, embed_dim=16)
    x = torch.zeros(2, 32, 3, 3)  # (B, C, h, w), N = 10 tokens
    fast = count(pool, x)
    pool.shortcut = False
    extra_queries = 2 * 9 * 32 * 32 + 2 * 2 * 9 * 10 * 32 + 2 * 9 * 32 * 16  # q_proj, attention, c_proj for 9 more
    assert count(pool, x) == fast + extra_queries


def test_the_callers_model_is_left_as_it_was():
    model = tiny(patch_dropout=0.5).train()  # patch dropout would drop tokens in training mode
    assert minclip.flops(model) == minclip.flops(tiny())  # counted in eval mode: every patch
    resnet = tiny(kind="resnet", layers=(1, 1, 1, 1), width=16, heads=2).eval()
    assert minclip.flops(resnet)["image"] > 0
    for m, training in ((model, True), (resnet, False)):
        assert all(sub.training == training for sub in m.modules())
        assert [sub.shortcut for sub in m.modules() if isinstance(sub, (Transformer, AttentionPool2d))] == [True] * 2


def test_image_only_model_has_no_text_flops():
    torch.manual_seed(0)
    model = Supervised(CLIPConfig.preset("tiny"))
    assert minclip.flops(model) == {"image": minclip.flops(tiny())["image"], "text": 0.0}


def test_a_model_without_visual_or_config_is_refused():
    with pytest.raises(TypeError, match="`.visual`.*`.config`"):
        minclip.flops(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="Supervised"):
        model = Supervised(CLIPConfig.preset("tiny"))
        del model.config
        minclip.flops(model)
