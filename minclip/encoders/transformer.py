"""The one Transformer block that both CLIP towers use (Radford et al. 2021 §2.4; Vaswani et al. 2017).

Pre-norm residual blocks: x + attn(ln_1(x)), then x + mlp(ln_2(x)). Parameter names follow OpenAI's release
(`attn.in_proj_weight`, `mlp.c_fc`, ...) so that released checkpoints load by name (minclip/pretrained.py).
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the sigmoid approximation of GELU that OpenAI trained CLIP with."""

    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection.

    The maths is softmax(q k^T / sqrt(D/H)) v per head; F.scaled_dot_product_attention computes exactly that,
    with a fused kernel where the device has one.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}; pick heads that divide the width")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x, causal: bool = False):
        B, N, D = x.shape  # batch, tokens, width
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, N, 3D)
        q, k, v = qkv.view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, N, D/H)
        x = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # (B, H, N, D/H)
        x = x.transpose(1, 2).reshape(B, N, D)  # (B, N, D): heads side by side again
        return self.out_proj(x)


class Block(nn.Module):
    """One pre-norm residual block: attention, then a 2-layer MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, quick_gelu: bool = True):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, hidden)),
            ("gelu", QuickGELU() if quick_gelu else nn.GELU()),
            ("c_proj", nn.Linear(hidden, width)),
        ]))

    def forward(self, x, causal: bool = False):
        x = x + self.attn(self.ln_1(x), causal=causal)  # (B, N, D)
        x = x + self.mlp(self.ln_2(x))  # (B, N, D)
        return x


class Transformer(nn.Module):
    """A stack of blocks. `causal=True` lets token i attend only to tokens <= i (the text tower)."""

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0, quick_gelu: bool = True):
        super().__init__()
        self.width, self.layers = width, layers
        self.resblocks = nn.ModuleList([Block(width, heads, mlp_ratio, quick_gelu) for _ in range(layers)])
        self.init_weights()

    def init_weights(self):
        """CLIP's init (OpenAI model.py): attention std D^-1/2; output projections D^-1/2 (2 layers)^-1/2, so the
        residual stream's variance does not grow with depth; MLP input (2D)^-1/2."""
        attn_std = self.width ** -0.5
        proj_std = self.width ** -0.5 * (2 * self.layers) ** -0.5
        fc_std = (2 * self.width) ** -0.5
        for block in self.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)

    def forward(self, x, causal: bool = False):
        for block in self.resblocks:
            x = block(x, causal=causal)
        return x
