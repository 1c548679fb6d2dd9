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

    def forward(self, x, causal: bool = False, readout=None):
        """x (B, N, D) -> (B, N, D); with `readout` (B,) token indices, only those tokens ask: -> (B, 1, D)."""
        B, N, D = x.shape  # batch, tokens, width
        H = self.heads
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, N, 3D)
        q, k, v = qkv.view(B, N, 3, H, D // H).permute(2, 0, 3, 1, 4)  # 3 x (B, H, N, D/H)
        mask = None
        if readout is not None:  # one query per row: the token at `readout` (it still attends to every key)
            q = q[torch.arange(B, device=x.device), :, readout].unsqueeze(2)  # (B, H, 1, D/H)
            if causal:  # the query at position p sees keys 0..p
                mask = (torch.arange(N, device=x.device) <= readout[:, None]).view(B, 1, 1, N)
                causal = False
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)  # (B, H, N or 1, D/H)
        x = x.transpose(1, 2).reshape(B, -1, D)  # (B, N or 1, D): heads side by side again
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

    def forward(self, x, causal: bool = False, readout=None):
        """x (B, N, D) -> (B, N, D); with `readout` (B,) token indices, only those tokens' states: -> (B, 1, D)."""
        h = self.attn(self.ln_1(x), causal=causal, readout=readout)  # (B, N or 1, D)
        if readout is not None:
            x = x[torch.arange(x.shape[0], device=x.device), readout].unsqueeze(1)  # (B, 1, D)
        x = x + h
        x = x + self.mlp(self.ln_2(x))  # (B, N or 1, D)
        return x


class Transformer(nn.Module):
    """A stack of blocks. `causal=True` lets token i attend only to tokens <= i (the text tower).

    CLIP reads one token per row out of the last block (the image's class token, the caption's EOT). The other
    tokens' outputs of the last block are never read, so `readout` (B,) skips them: the last block computes keys
    and values for every token but its attention output, residual and MLP for the read-out token only. Same result
    (tests/test_model.py checks it against the full stack), and nearly a third less work in a 3-block tower.
    """

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0, quick_gelu: bool = True):
        super().__init__()
        self.width, self.layers = width, layers
        self.shortcut = True  # False: the last block runs on every token too, as the architecture does (minclip.flops)
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

    def forward(self, x, causal: bool = False, readout=None):
        """x (B, N, D) -> (B, N, D) every token's final state; with `readout` (B,) -> (B, D) those tokens' only."""
        for block in self.resblocks[:-1]:
            x = block(x, causal=causal)
        if readout is None or not self.shortcut:  # the plain way: every token through the last block, then pick
            x = self.resblocks[-1](x, causal=causal)  # (B, N, D)
            return x if readout is None else x[torch.arange(x.shape[0], device=x.device), readout]  # (B, D)
        return self.resblocks[-1](x, causal=causal, readout=readout).squeeze(1)  # (B, 1, D) -> (B, D)
