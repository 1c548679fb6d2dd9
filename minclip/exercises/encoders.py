"""Checks for notebooks/01_encoders.ipynb: the patch embedding without a convolution, the ResNet's feature-map
shapes, its attention pooling, and a ViT's FLOPs counted by hand.

Each check runs the student's function on hidden seeded cases and compares it with minclip's own code:
minclip/encoders/vit.py (conv1), minclip/encoders/resnet.py (ModifiedResNet, AttentionPool2d) and minclip/flops.py.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from minclip.config import CLIPConfig
from minclip.encoders.resnet import AttentionPool2d
from minclip.flops import flops
from minclip.model import build_vision

from .core import ExerciseError, call, exercise, expect_close, hint, passed


@exercise
def check_patch_embed(fn) -> None:
    """fn(images (B, C, H, W), weight (D, C, P, P)) -> (B, N, D): one token per patch, patches row by row, equal to
    the ViT's strided convolution F.conv2d(images, weight, stride=P), flattened (N = H/P * W/P, no class token)."""
    g = torch.Generator().manual_seed(0)
    for B, H, W, P, D in ((2, 8, 8, 4, 5), (3, 32, 32, 8, 12), (1, 16, 24, 8, 6)):
        images = torch.randn(B, 3, H, W, generator=g)
        weight = torch.randn(D, 3, P, P, generator=g)
        want = F.conv2d(images, weight, stride=P).flatten(2).transpose(1, 2)  # (B, N, D)
        got = call(fn, images.clone(), weight.clone(), name="patch_embed")
        got_t = torch.as_tensor(got)
        if got_t.shape == want.shape and got_t.is_floating_point() and not torch.allclose(got_t, want, atol=1e-4):
            # the two usual slips: MAE's (row, column, channel) pixel order, and patches column by column
            patches = images.unfold(2, P, P).unfold(3, P, P)  # (B, C, H/P, W/P, P, P)
            mae = patches.permute(0, 2, 3, 4, 5, 1).reshape(B, -1, P * P * 3)  # (B, N, P*P*C)
            if torch.allclose(got_t, mae @ weight.flatten(1).T, atol=1e-4):
                raise ExerciseError("patch_embed flattened each patch's pixels in (row, column, channel) order, but "
                                    "weight.flatten(1) is in (channel, row, column) order: flatten each patch as "
                                    "(C, P, P) too")
            columns = want.view(B, H // P, W // P, D).transpose(1, 2).reshape(B, -1, D)  # (B, N, D) column-major
            if torch.allclose(got_t, columns, atol=1e-4):
                raise ExerciseError("patch_embed returned the patches column by column; the convolution's "
                                    "flatten(2) reads them row by row (the patch at row i, column j is token "
                                    "i * W/P + j)")
        expect_close(got, want, f"patch_embed on {B} images of {H}x{W} in {P}x{P} patches, D={D}",
                     hint("a strided convolution with a P×P kernel and stride P is one linear layer applied to each "
                          "non-overlapping P×P patch.",
                          "Cut the image into its N = (H/P)(W/P) patches, row by row; flatten each patch in the "
                          "order the conv weight is laid out, (C, P, P); then one matrix product.",
                          "x.reshape(B, C, H/P, P, W/P, P).permute(0, 2, 4, 1, 3, 5).flatten(3).flatten(1, 2) "
                          "@ weight.flatten(1).T"), atol=1e-4)
    passed("patch_embed", "cut into patches + one linear layer = the ViT's strided convolution (conv1)")


STAGES = ("the stem", "layer1", "layer2", "layer3", "layer4")


@exercise
def check_resnet_shapes(fn) -> None:
    """fn(config: CLIPConfig with a ResNet image tower) -> five (channels, height, width) tuples: the feature map of
    one image after the stem (its average pool included) and after each of the four stages."""
    configs = [CLIPConfig.preset("tiny-rn"), CLIPConfig.preset("small-rn")] + [  # and two at RN50's 224 px
        CLIPConfig.from_dict(dict(vision=dict(kind="resnet", image_size=S, width=8, layers=(1, 1, 1, 1), heads=4)))
        for S in (96, 224)]
    for config in configs:
        v = config.vision
        got = call(fn, config, name="resnet_shapes")
        try:
            got = [tuple(int(n) for n in shape) for shape in got]
        except TypeError:
            raise ExerciseError(f"resnet_shapes should return five (channels, height, width) tuples, got {got!r}") \
                from None
        if len(got) != 5 or any(len(shape) != 3 for shape in got):
            raise ExerciseError(f"resnet_shapes should return five (channels, height, width) tuples, one after the "
                                f"stem and one after each stage, got {got}")
        with torch.random.fork_rng():
            torch.manual_seed(0)
            resnet = build_vision(config).eval()
        want = []
        stages = [resnet.avgpool, resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4]
        hooks = [m.register_forward_hook(lambda m, i, out: want.append(tuple(out.shape[1:]))) for m in stages]
        with torch.no_grad():
            resnet(torch.zeros(1, 3, v.image_size, v.image_size))
        for hook in hooks:
            hook.remove()
        for stage, g, w in zip(STAGES, got, want):
            if g == w:
                continue
            what = f"image_size={v.image_size}, width={v.width}: after {stage} you gave {g}"
            if g[0] != w[0]:
                why = ("the stem ends with `width` channels (its first two convolutions have width/2)" if stage ==
                       STAGES[0] else "stage k has width * 2^(k-1) planes, and a Bottleneck's output has 4x its "
                       "planes (Bottleneck.expansion)")
            elif stage == STAGES[0]:
                why = "the stem downsamples 4x: conv1 has stride 2, then the 2x2 average pool halves again"
            else:
                why = "layer1 keeps the stem's resolution; layer2, layer3 and layer4 each halve it (32x in all)"
            raise ExerciseError(f"{what}, which is not minclip's shape: {why}")
    passed("resnet_shapes", "the stem downsamples 4x, the stages 8x more; the channels grow to 32 x width")


def _pool(seed: int, spatial: int, width: int, heads: int, embed_dim: int) -> AttentionPool2d:
    """An AttentionPool2d with seeded random weights (biases too); the global RNG is restored afterwards."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        pool = AttentionPool2d(spatial, width, heads, embed_dim)
        for proj in (pool.q_proj, pool.k_proj, pool.v_proj, pool.c_proj):
            nn.init.normal_(proj.bias, std=0.1)
    return pool.eval()


@exercise
def check_attention_pool(fn) -> None:
    """fn(x (B, C, h, w), pool: AttentionPool2d) -> (B, E): ModifiedResNet's attention pooling, written with the
    pool's own weights (pool.positional_embedding, pool.q_proj, .k_proj, .v_proj, .c_proj, pool.heads)."""
    g = torch.Generator().manual_seed(0)
    for seed, (B, spatial, C, heads, E) in enumerate(((3, 2, 16, 4, 8), (2, 3, 32, 2, 6), (2, 1, 8, 1, 4))):
        pool = _pool(seed, spatial, C, heads, E)
        x = torch.randn(B, C, spatial, spatial, generator=g)
        with torch.no_grad():
            want = pool(x)  # (B, E)
            got = call(fn, x.clone(), pool, name="attention_pool")
        got_t = torch.as_tensor(got).detach()
        if got_t.shape == (B, spatial * spatial + 1, E):
            raise ExerciseError(f"attention_pool returned one vector per token, {tuple(got_t.shape)}; only the mean "
                                "token's output is the image: keep token 0 (or let only the mean token query)")
        if got_t.shape == want.shape and spatial > 1:
            with torch.no_grad():  # the pool without its positional embedding
                tokens = x.flatten(2).transpose(1, 2)  # (B, hw, C)
                tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)  # (B, N, C)
                q, k, v = (proj(t).view(B, -1, heads, C // heads).transpose(1, 2)  # (B, H, 1 or N, C/H)
                           for proj, t in ((pool.q_proj, tokens[:, :1]), (pool.k_proj, tokens), (pool.v_proj, tokens)))
                no_pos = pool.c_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, C))  # (B, E)
            if torch.allclose(got_t, no_pos, atol=1e-4):
                raise ExerciseError("attention_pool left out the positional embedding: add "
                                    "pool.positional_embedding, (h*w + 1, C), to the tokens (the mean token "
                                    "included) before the projections")
        expect_close(got_t, want, f"attention_pool on a {(B, C, spatial, spatial)} map with {heads} heads",
                     hint("attention pooling is one attention step in which a single query, the mean of the map, "
                          "looks at every position (and at itself).",
                          "Flatten the map to tokens, put its mean in front, add the positional embedding; only "
                          "token 0 makes a query, all N tokens make keys and values; split the channels into heads.",
                          "tokens = [mean, h*w positions] + pos (B, N, C); q = q_proj(tokens[:, :1]), k = k_proj, "
                          "v = v_proj of all; softmax(q k^T / sqrt(C/H)) v per head, heads concatenated, c_proj"),
                     atol=1e-4)
    passed("attention_pool", "equal to minclip's AttentionPool2d")


class _ImageTower(nn.Module):
    """What minclip.flops needs of a model: `.config` and `.visual` (no `.text`, so no caption is counted)."""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = config
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.visual = build_vision(config)


def _vit(image_size: int, patch_size: int, width: int, layers: int, heads: int, embed_dim: int) -> CLIPConfig:
    return CLIPConfig.from_dict(dict(embed_dim=embed_dim, vision=dict(
        image_size=image_size, patch_size=patch_size, width=width, layers=layers, heads=heads)))


@exercise
def check_vit_flops(fn) -> None:
    """fn(config: CLIPConfig with a ViT image tower, MLP ratio 4) -> GFLOPs of one image's forward pass through it,
    counted as minclip.flops counts them: the matrix products only, a multiply-add = 2 FLOPs."""
    configs = [CLIPConfig.preset("tiny"), CLIPConfig.preset("small"), _vit(48, 16, 64, 2, 2, 32),
               _vit(40, 4, 32, 1, 4, 16)]
    for config in configs:
        v = config.vision
        got = call(fn, config, name="vit_flops")
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise ExerciseError(f"vit_flops should return a number (GFLOPs), got {type(got).__name__}") from None
        want = flops(_ImageTower(config))["image"]
        what = f"vit_flops for image_size={v.image_size}, patch_size={v.patch_size}, width={v.width}, " \
               f"layers={v.layers}, embed_dim={config.embed_dim}"
        if abs(got - want) <= 1e-6 * want:
            continue
        N, D = (v.image_size // v.patch_size) ** 2 + 1, v.width
        block = 24 * N * D ** 2 + 4 * N ** 2 * D
        patches, proj = 2 * (N - 1) * D * 3 * v.patch_size ** 2, 2 * D * config.embed_dim
        if abs(got / want - 1e9) < 1e3:
            why = "that is FLOPs, not GFLOPs: divide by 1e9"
        elif abs(got / want - 0.5) < 1e-6:
            why = "that is multiply-adds: a multiply-add counts as 2 FLOPs"
        elif abs(got * 1e9 - v.layers * block) < 1e-3 * want * 1e9:
            why = f"that is the blocks alone: add the patch embedding, 2 (N-1) D 3P^2 = {patches:,}, and the " \
                  f"projection, 2 D E = {proj:,}"
        elif abs(got * 1e9 - (v.layers * block + patches)) < 1e-3 * want * 1e9:
            why = f"you left out the final projection (D, E): 2 D E = {proj:,} FLOPs"
        else:
            why = "N counts the class token, (S/P)^2 + 1; each block is 24 N D^2 + 4 N^2 D; add the patch " \
                  "embedding (a (3P^2, D) linear layer on N-1 patches) and the projection (D, E)"
        raise ExerciseError(f"{what}: got {got:.6g} GFLOPs, minclip.flops counts {want:.6g}. {why}")
    passed("vit_flops", "the same count as minclip.flops, from the formula alone")
