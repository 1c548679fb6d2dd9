"""MAE, masked autoencoders (He et al. 2022, arXiv 2111.06377): hide 75% of an image's patches, encode only the
visible quarter, and have a light decoder paint the hidden patches back.

    patches    = patchify(images)                          (B, N, P*P*C)   N patches, no class token
    visible    = random_masking(embed(images), 0.75)       (B, N/4, D)     a different quarter for every image
    latent     = encoder(class token + visible)            (B, 1 + N/4, D)
    pred       = decoder(latent + mask tokens, unshuffled) (B, N, P*P*C)
    loss       = mean squared error on the hidden patches only, each patch's pixels normalised (§3, norm_pix_loss)

The encoder is minclip's ViT, unchanged (the CLIP tiny preset's by default). Its output projection `proj` (D -> E)
serves as MAE's `decoder_embed`, so `visual(images)`, the embedding every other model is probed on, is what the
encoder hands the decoder. The encoder never sees a mask token, so it can skip the hidden 75%: that is MAE's
3x speed-up (§3). The method and `random_masking` follow MAE's models_mae.py step by step.

    python -m baselines.mae --steps 1500 --out runs/mae
"""
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn as nn

from baselines import common
from minclip import loop
from minclip.cli import arg
from minclip.config import CLIPConfig
from minclip.data.transforms import clip_preprocess
from minclip.encoders.transformer import Transformer


def patchify(images, P: int):
    """images (B, C, H, W) -> patches (B, N, P*P*C), N = (H/P)(W/P), row by row; each patch's pixels in
    (row, column, channel) order, as MAE's models_mae.py."""
    B, C, H, W = images.shape
    if H % P or W % P:
        raise ValueError(f"images are {H}x{W}, not a multiple of the patch size {P}")
    x = images.reshape(B, C, H // P, P, W // P, P)  # (B, C, h, P, w, P)
    x = torch.einsum("bchpwq->bhwpqc", x)  # (B, h, w, P, P, C)
    return x.reshape(B, (H // P) * (W // P), P * P * C)  # (B, N, P*P*C)


def unpatchify(patches, P: int, C: int = 3):
    """The inverse of patchify: patches (B, N, P*P*C) of a square image -> images (B, C, H, W)."""
    B, N, _ = patches.shape
    h = int(round(N ** 0.5))
    if h * h != N or patches.shape[2] != P * P * C:
        raise ValueError(f"{N} patches of {patches.shape[2]} values are not a square image of {P}x{P}x{C} patches")
    x = patches.reshape(B, h, h, P, P, C)  # (B, h, w, P, P, C)
    x = torch.einsum("bhwpqc->bchpwq", x)  # (B, C, h, P, w, P)
    return x.reshape(B, C, h * P, h * P)  # (B, C, H, W)


class Masking(NamedTuple):
    visible: torch.Tensor  # (B, keep, D) the tokens the encoder sees, in shuffled order
    mask: torch.Tensor  # (B, N) 0 = visible, 1 = hidden, in the original patch order
    ids_restore: torch.Tensor  # (B, N) where each original patch sits in the shuffled order


def random_masking(x, mask_ratio: float, generator: torch.Generator) -> Masking:
    """Keep a random (1 - mask_ratio) of the N tokens of every image, each image its own subset (MAE §3).

    x (B, N, D). "Random" is a per-sample shuffle: sort random noise, keep the first `keep` indices.
    """
    if not 0 <= mask_ratio < 1:
        raise ValueError(f"mask_ratio {mask_ratio} must be in [0, 1): at least one patch must stay visible")
    B, N, D = x.shape
    keep = max(1, int(N * (1 - mask_ratio)))
    noise = torch.rand(B, N, generator=generator).to(x.device)  # (B, N) uniform in [0, 1)
    # sort the noise of each image: small noise is kept, large noise is removed
    ids_shuffle = noise.argsort(dim=1)  # (B, N) ascending: the first `keep` are the visible patches
    ids_restore = ids_shuffle.argsort(dim=1)  # (B, N) the inverse permutation, to put patches back in place
    # keep the first subset
    ids_keep = ids_shuffle[:, :keep]  # (B, keep)
    visible = x.gather(1, ids_keep.unsqueeze(-1).expand(-1, -1, D))  # (B, keep, D)
    # the binary mask, 0 is keep, 1 is remove: built in shuffled order, then unshuffled into patch order
    mask = torch.ones(B, N, device=x.device)
    mask[:, :keep] = 0
    mask = mask.gather(1, ids_restore)  # (B, N)
    return Masking(visible, mask, ids_restore)


class MAEOutput(NamedTuple):
    loss: torch.Tensor  # scalar: mean squared error over the hidden patches
    pred: torch.Tensor  # (B, N, P*P*C) the decoder's patches (normalised per patch when norm_pix_loss)
    mask: torch.Tensor  # (B, N) 1 = hidden


class MAE(common.ImageTower):
    """minclip's ViT as MAE's encoder, and a light decoder: `decoder_layers` blocks E wide (MAE's own is 8 x 512 for
    a 1024-wide ViT-L; §4.1 finds a one-block decoder enough for fine-tuning, deeper ones better for probes)."""

    def __init__(self, config: CLIPConfig, decoder_layers: int = 2, decoder_heads: int = 2,
                 norm_pix_loss: bool = True):
        super().__init__(config)
        E, v = config.embed_dim, config.vision
        self.patch_size, self.norm_pix_loss = v.patch_size, norm_pix_loss
        self.mask_token = nn.Parameter(0.02 * torch.randn(E))  # stands in for every hidden patch
        self.decoder_pos = nn.Parameter(0.02 * torch.randn((v.image_size // v.patch_size) ** 2 + 1, E))
        self.decoder = Transformer(E, decoder_layers, decoder_heads, v.mlp_ratio, config.quick_gelu)
        self.decoder_norm = nn.LayerNorm(E)
        self.decoder_pred = nn.Linear(E, v.patch_size ** 2 * 3)  # each token back to its patch's pixels

    def forward_encoder(self, images, mask_ratio: float, generator: torch.Generator) -> Masking:
        """images (B, 3, H, W) -> Masking(latent (B, 1 + keep, D), mask (B, N), ids_restore (B, N))."""
        v = self.visual
        x = v.conv1(images).flatten(2).transpose(1, 2)  # (B, N, D): one token per patch, as in VisionTransformer
        x = x + v.positional_embedding[1:]  # positions first, so a visible token remembers where it was
        x, mask, ids_restore = random_masking(x, mask_ratio, generator)  # (B, keep, D)
        cls = (v.class_embedding + v.positional_embedding[0]).expand(len(x), 1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], dim=1)  # (B, 1 + keep, D)
        x = v.ln_post(v.transformer(v.ln_pre(x)))  # (B, 1 + keep, D): ln_post on every token, as MAE's encoder norm
        return Masking(x, mask, ids_restore)

    def forward_decoder(self, latent, ids_restore):
        """latent (B, 1 + keep, D), ids_restore (B, N) -> predicted patches (B, N, P*P*C)."""
        x = latent @ self.visual.proj  # (B, 1 + keep, D) @ (D, E) -> (B, 1 + keep, E): MAE's decoder_embed
        B, N, E = len(x), ids_restore.shape[1], x.shape[2]
        # append a mask token for every hidden patch, then unshuffle so that token n is patch n again
        hidden = self.mask_token.expand(B, N + 1 - x.shape[1], E)  # (B, N - keep, E)
        patches = torch.cat([x[:, 1:], hidden], dim=1)  # (B, N, E), shuffled order
        patches = patches.gather(1, ids_restore.unsqueeze(-1).expand(-1, -1, E))  # (B, N, E), patch order
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos  # (B, 1 + N, E)
        x = self.decoder_norm(self.decoder(x))  # (B, 1 + N, E)
        return self.decoder_pred(x[:, 1:])  # (B, N, P*P*C): the class token predicts nothing

    def forward_loss(self, images, pred, mask):
        """images (B, 3, H, W), pred (B, N, P*P*C), mask (B, N) -> mean squared error on the hidden patches."""
        target = patchify(images, self.patch_size)  # (B, N, P*P*C)
        if self.norm_pix_loss:  # §3: predicting each patch's normalised pixels gives better features
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        loss = (pred - target).square().mean(dim=-1)  # (B, N): per patch
        return (loss * mask).sum() / mask.sum()  # visible patches are copied, not predicted: they do not count

    def forward(self, images, generator: torch.Generator, mask_ratio: float = 0.75) -> MAEOutput:
        """images (B, 3, H, W) preprocessed -> MAEOutput(loss, pred (B, N, P*P*C), mask (B, N))."""
        latent, mask, ids_restore = self.forward_encoder(images, mask_ratio, generator)
        pred = self.forward_decoder(latent, ids_restore)
        return MAEOutput(self.forward_loss(images, pred, mask), pred, mask)


def build(model_config: dict) -> MAE:
    """The model a checkpoint's model_config describes (baselines.common.load calls this)."""
    return common.from_config(MAE, model_config)


@dataclass
class MAERun(common.BaselineConfig):
    COMMAND: ClassVar[str] = "python -m baselines.mae"
    out: str = arg("runs/mae", "run folder: config.json, metrics.jsonl, checkpoint.pt, summary.json")
    mask_ratio: float = arg(0.75, "fraction of patches hidden from the encoder (MAE §4.1: 0.75)")
    decoder_layers: int = arg(2, "decoder blocks")
    decoder_heads: int = arg(2, "decoder attention heads")
    beta2: float = arg(0.95, "Adam beta2 (MAE: 0.95)")
    weight_decay: float = arg(0.05, "AdamW decoupled weight decay on weight matrices (MAE: 0.05)")

    def check(self) -> None:
        if not 0 <= self.mask_ratio < 1:
            raise ValueError(f"--mask-ratio {self.mask_ratio} must be in [0, 1); MAE uses 0.75")
        super().check()


class MAEObjective(common.Baseline):
    """MAE on ShapeWorld's pre-training images (their captions unused)."""
    method = "mae"

    def __init__(self, cfg: MAERun, state, par):
        super().__init__(cfg, par, MAE, decoder_layers=cfg.decoder_layers, decoder_heads=cfg.decoder_heads)
        self.preprocess = clip_preprocess(self.model.config.vision.image_size)

    def loss(self, step: int) -> torch.Tensor:
        images = self.preprocess(self.images(step))  # (B, 3, H, W)
        return self.model(images, self.generator(step), self.cfg.mask_ratio).loss


def train(cfg: MAERun) -> dict:
    """Train (or resume) an MAE run; returns the summary (also OUT/summary.json)."""
    return loop.run(cfg, MAEObjective)


if __name__ == "__main__":
    common.main(MAERun, MAEObjective, __doc__)
