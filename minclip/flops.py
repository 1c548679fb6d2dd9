"""FLOPs of a model's forward pass: GFLOPs per image and per caption, the x-axis of CLIP's compute plots.

    minclip.flops(model)  ->  {"image": GFLOPs per image, "text": GFLOPs per caption}

What is counted. torch.utils.flop_counter.FlopCounterMode counts the matrix products (linear, matmul,
convolution, attention), a multiply-add as 2 FLOPs; LayerNorm, BatchNorm, softmax, GELU and additions are not
counted (they are a few percent of the total). The forward pass only: it is what one inference costs, and training
costs about 3x it (the backward pass computes two products for each forward one).

The architecture, not minclip's shortcuts. minclip skips work whose result is never read: the last Transformer block
runs for the read-out token only (Transformer.shortcut), and only the mean token queries in ResNet's attention pool
(AttentionPool2d.shortcut). The paper's compute axes (Figs. 9-10) count the architecture, so flops() turns both
shortcuts off in a copy of the model; the caller's model is left as it was.

A hand count for one ViT block, N tokens of width D, MLP ratio 4 (tests/test_flops.py checks it):

    q, k, v projection     2 * N * D * 3D
    attention scores       2 * N * N * D      (q k^T, all heads together)
    weighted values        2 * N * N * D      (softmax(.) v)
    output projection      2 * N * D * D
    MLP, two layers        2 * N * D * 4D * 2
    total                  24 N D^2 + 4 N^2 D

ViT-B/32 at 224 px has N = 50, D = 768 and 12 blocks: 12 x 0.715 GFLOPs, plus 0.23 for the patch embedding, = 8.8.
"""
import copy

import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from .encoders.resnet import AttentionPool2d
from .encoders.transformer import Transformer

B = 2  # rows per counted batch, divided out again; with B = 1 a count that misses a batch row would go unseen


def count(module: nn.Module, x: torch.Tensor) -> float:
    """FLOPs of module(x), per row of x."""
    # FlopCounterMode has no formula for the CPU's fused attention kernel (it would count 0); the math backend
    # computes attention with two batched matmuls, which it counts exactly.
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() / x.shape[0]


def flops(model: nn.Module) -> dict:
    """{"image": GFLOPs per image, "text": GFLOPs per caption} of `model`'s forward pass (see the module docstring).

    model: anything with `.config` (a CLIPConfig) and `.visual` (images (B, 3, S, S) -> (B, E)); if it has `.text`
    (tokens (B, L) int64 -> (B, E)), a full context of L = config.text.context_length tokens is counted, as the
    paper does at L = 77. Models without `.text` (the image-only baselines) get "text": 0.0.
    """
    if not hasattr(model, "visual") or not hasattr(model, "config"):
        raise TypeError(f"flops() takes a model with `.visual` (the image tower) and `.config` (its CLIPConfig), "
                        f"such as minclip.CLIP; got {type(model).__name__}")
    config = model.config
    model = copy.deepcopy(model).float().eval()  # a copy: the caller's shortcuts and training mode stay as they are
    for module in model.modules():
        if isinstance(module, (Transformer, AttentionPool2d)):
            module.shortcut = False
    device = next(model.parameters()).device

    S = config.vision.image_size
    images = torch.zeros(B, 3, S, S, device=device)  # (B, 3, S, S): the values do not change the count
    result = {"image": count(model.visual, images) / 1e9, "text": 0.0}
    if hasattr(model, "text"):
        L, V = config.text.context_length, config.text.vocab_size
        tokens = torch.ones(B, L, dtype=torch.long, device=device)  # (B, L)
        tokens[:, 0], tokens[:, -1] = V - 2, V - 1  # SOT first, EOT last: the whole context is one caption
        result["text"] = count(model.text, tokens) / 1e9
    return result
