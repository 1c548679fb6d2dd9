"""ModifiedResNet: CLIP's ResNet-50 image encoder (Radford et al. 2021 §2.4).

Three changes to He et al.'s ResNet:
- a stem of three 3x3 convolutions with an average pool, instead of one 7x7 convolution and a max pool;
- anti-aliased strides (Zhang 2019): a stride-2 block average-pools before its convolution instead of striding it;
- attention pooling: the final global average pool is replaced by one layer of multi-head attention in which the
  mean of the feature map is the query.
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()  # anti-aliased stride
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = None
        if stride > 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(OrderedDict([
                ("-1", nn.AvgPool2d(stride)),
                ("0", nn.Conv2d(inplanes, planes * self.expansion, 1, bias=False)),
                ("1", nn.BatchNorm2d(planes * self.expansion)),
            ]))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class AttentionPool2d(nn.Module):
    """Pool a (B, C, h, w) feature map to (B, E) with one attention layer whose query is the mean feature."""

    def __init__(self, spatial: int, width: int, heads: int, embed_dim: int):
        super().__init__()
        self.heads = heads
        self.shortcut = True  # False: every token queries, as in OpenAI's code (minclip.flops counts that)
        self.positional_embedding = nn.Parameter(torch.randn(spatial ** 2 + 1, width) / width ** 0.5)
        self.k_proj = nn.Linear(width, width)
        self.q_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.c_proj = nn.Linear(width, embed_dim)

    def forward(self, x):
        B, C, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, N-1, C): one token per position
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + self.positional_embedding.to(x.dtype)  # (B, N, C)
        # OpenAI's code lets every token query, then keeps token 0. Only the mean token's output is used, so with
        # the shortcut only it queries: the same result with N times fewer query rows.
        queries = x[:, :1] if self.shortcut else x  # (B, 1 or N, C)
        q = self.q_proj(queries).view(B, -1, self.heads, C // self.heads).transpose(1, 2)  # (B, H, 1 or N, C/H)
        k = self.k_proj(x).view(B, -1, self.heads, C // self.heads).transpose(1, 2)  # (B, H, N, C/H)
        v = self.v_proj(x).view(B, -1, self.heads, C // self.heads).transpose(1, 2)  # (B, H, N, C/H)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, 1 or N, C/H)
        out = self.c_proj(out.transpose(1, 2).reshape(B, -1, C))  # (B, 1 or N, E): heads side by side, projected
        return out[:, 0]  # (B, E): the mean token's output


class ModifiedResNet(nn.Module):
    def __init__(self, layers, embed_dim: int, heads: int, image_size: int = 224, width: int = 64):
        super().__init__()
        if image_size % 32:
            raise ValueError(f"ModifiedResNet downsamples 32x; image_size {image_size} must be a multiple of 32")
        self.image_size = image_size
        # the 3-conv stem
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.avgpool = nn.AvgPool2d(2)
        # four stages of bottleneck blocks; each stage after the first halves the resolution
        self._inplanes = width
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2)
        self.attnpool = AttentionPool2d(image_size // 32, width * 32, heads, embed_dim)
        self.init_weights()

    def _make_layer(self, planes: int, blocks: int, stride: int = 1):
        layers = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def init_weights(self):
        """OpenAI's init: attention-pool projections std C^-1/2; each block's last BatchNorm gain 0, so every
        residual block starts as the identity (Goyal et al. 2017)."""
        std = self.attnpool.c_proj.in_features ** -0.5
        for proj in (self.attnpool.q_proj, self.attnpool.k_proj, self.attnpool.v_proj, self.attnpool.c_proj):
            nn.init.normal_(proj.weight, std=std)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                nn.init.zeros_(block.bn3.weight)

    def forward(self, images):
        """images (B, 3, H, W) float, normalised -> (B, E) unnormalised image embeddings."""
        x = F.relu(self.bn1(self.conv1(images)))  # (B, C/2, H/2, W/2)
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.avgpool(F.relu(self.bn3(self.conv3(x))))  # (B, C, H/4, W/4)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 32C, H/32, W/32)
        return self.attnpool(x)  # (B, E)
