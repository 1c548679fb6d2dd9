"""VisionTransformer (Dosovitskiy et al. 2021), as CLIP uses it (Radford et al. 2021 §2.4).

An image is cut into P x P patches; each patch becomes a token; a learned class token is prepended; the transformer
mixes them; the class token's final state, layer-normed and projected, is the image embedding. CLIP's one change
is an extra LayerNorm (ln_pre) before the transformer.
"""
import torch
import torch.nn as nn

from .transformer import Transformer


class VisionTransformer(nn.Module):
    def __init__(self, image_size: int, patch_size: int, width: int, layers: int, heads: int, embed_dim: int,
                 mlp_ratio: float = 4.0, quick_gelu: bool = True, patch_dropout: float = 0.0):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        if not 0.0 <= patch_dropout < 1.0:
            raise ValueError(f"patch_dropout must be in [0, 1), got {patch_dropout}")
        self.image_size, self.patch_dropout = image_size, patch_dropout
        n_patches = (image_size // patch_size) ** 2
        scale = width ** -0.5
        # A strided convolution is the same as "cut into patches, flatten each, apply one linear layer".
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(n_patches + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads, mlp_ratio, quick_gelu)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, embed_dim))

    def drop_patches(self, x):
        """FLIP (Li et al. 2023): while training, keep a random subset of the patch tokens (never the class token).

        Fewer tokens make each step cheaper, so more image-text pairs fit in the same compute. It draws from the
        global RNG, which the trainer seeds and checkpoints.
        """
        B, N, D = x.shape  # N = 1 + number of patches
        keep = max(1, int((N - 1) * (1 - self.patch_dropout)))
        idx = torch.rand(B, N - 1, device=x.device).argsort(dim=1)[:, :keep] + 1  # (B, keep): random patch indices
        patches = x.gather(1, idx.unsqueeze(-1).expand(-1, -1, D))  # (B, keep, D)
        return torch.cat([x[:, :1], patches], dim=1)  # (B, 1 + keep, D)

    def forward(self, images):
        """images (B, 3, H, W) float, normalised -> (B, E) unnormalised image embeddings."""
        x = self.conv1(images)  # (B, D, H/P, W/P)
        x = x.flatten(2).transpose(1, 2)  # (B, N-1, D): one token per patch
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # (B, N, D)
        if self.training and self.patch_dropout > 0:
            x = self.drop_patches(x)
        x = self.ln_pre(x)
        first = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)  # (B,) read out token 0, the class token
        x = self.transformer(x, readout=first)  # (B, D): the class token's final state
        return self.ln_post(x) @ self.proj  # (B, D) @ (D, E) -> (B, E): the class token is the image
