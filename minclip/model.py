"""CLIP: an image tower and a text tower that map into one embedding space (Radford et al. 2021, Fig. 3).

    I_e = normalize(image_encoder(images))      (B, E)
    T_e = normalize(text_encoder(tokens))       (B, E)
    logits = exp(t) * I_e @ T_e.T               (B, B): cosine similarities times a learned scale

Training pushes the diagonal (the true pairs) up and everything else down (minclip/loss.py).
"""
import math
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import CLIPConfig
from .encoders.resnet import ModifiedResNet
from .encoders.text import TextTransformer
from .encoders.vit import VisionTransformer

# How a batch is cast to a model's dtype, for the error messages of check_dtype.
CAST = {torch.float32: ".float()", torch.float64: ".double()", torch.float16: ".half()", torch.bfloat16: ".bfloat16()"}
# CLIP §2.5: the logit scale exp(t) is clipped at 100 "to prevent training instability". This is the one place the rule
# is written: CLIP.scale() clamps the scale every loss sees, CLIP.clamp_logit_scale() the parameter t after each step.
MAX_SCALE = 100.0
MAX_LOGIT_SCALE = math.log(MAX_SCALE)


class CLIPOutput(NamedTuple):
    image_embeds: torch.Tensor  # (B, E), L2-normalised
    text_embeds: torch.Tensor   # (B, E), L2-normalised
    logit_scale: torch.Tensor   # scalar, exp(t) clamped to <= 100


def build_vision(config: CLIPConfig) -> nn.Module:
    v, q = config.vision, config.quick_gelu
    if v.kind == "vit":
        return VisionTransformer(v.image_size, v.patch_size, v.width, v.layers, v.heads, config.embed_dim,
                                 v.mlp_ratio, q, v.patch_dropout)
    if v.kind == "resnet":
        return ModifiedResNet(v.layers, config.embed_dim, v.heads, v.image_size, v.width)
    if v.kind == "timm":
        from .encoders.timm_backbone import TimmVision
        return TimmVision(v.timm_name, config.embed_dim, v.image_size)
    raise ValueError(f"unknown vision kind {v.kind!r}; use 'vit', 'resnet' or 'timm'")


def check_images(images, image_size: int, dtype: Optional[torch.dtype] = None) -> None:
    """Raise a clear error for anything that is not a non-empty float batch (B, 3, image_size, image_size) in `dtype`,
    the model's dtype (None: any float). It runs every step, so it compares shapes and dtypes only, never values."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (B, 3, H, W), got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"images have dtype {images.dtype}; the model takes normalised floats: "
                        f"pass uint8 images through `preprocess` first (model, tokenizer, preprocess = minclip.load(...))")
    if dtype is not None:
        check_dtype(images.dtype, dtype, images.device.type)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}; "
                         f"grayscale images need their channel repeated 3 times")
    if images.shape[0] == 0:
        raise ValueError("empty batch: images has 0 rows")
    if images.shape[-2:] != (image_size, image_size):
        raise ValueError(f"images are {tuple(images.shape[-2:])} pixels but this model takes "
                         f"{image_size}x{image_size}; resize them (minclip.data.transforms.clip_preprocess does)")


def check_dtype(images: torch.dtype, model: torch.dtype, device: str) -> None:
    """Images must be in the model's dtype; under torch.autocast, float32 images (or images in the autocast dtype)
    are fine too, since autocast casts each layer's inputs. Anything else would fail deep inside the first layer."""
    autocast = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    if images == model or (autocast is not None and images in (torch.float32, autocast)):
        return
    accepted = f" (under autocast: float32 or {autocast} images)" if autocast is not None else ""
    fix = f"pass {model} images: images{CAST.get(model, f'.to({model})')}"
    if model == torch.float32 and images in (torch.float16, torch.bfloat16) and autocast is None:
        fix += f", or run the model in mixed precision under torch.autocast('{device}', dtype={images})"
    raise TypeError(f"images are {images} but the model is {model}{accepted}; {fix}")


def check_tokens(tokens, vocab_size: int, context_length: int) -> None:
    """Raise a clear error for anything that is not a non-empty (B, L) integer batch of valid token ids."""
    if not isinstance(tokens, torch.Tensor) or tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise TypeError(f"tokens must be an integer tensor (B, L) from the tokenizer, got "
                        f"{getattr(tokens, 'dtype', type(tokens).__name__)}")
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise ValueError(f"tokens must have shape (B, L) with B > 0, got {tuple(tokens.shape)}")
    if tokens.shape[1] > context_length:
        raise ValueError(f"tokens have length {tokens.shape[1]} but the context is {context_length}; "
                         f"tokenize with context_length={context_length}")
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"token ids range over [{lo}, {hi}] but the vocabulary has {vocab_size} ids; "
                         f"use the tokenizer this model was trained with")


class CLIP(nn.Module):
    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = config
        t = config.text
        self.visual = build_vision(config)
        self.text = TextTransformer(t.vocab_size, t.context_length, t.width, t.layers, t.heads, config.embed_dim,
                                    t.mlp_ratio, config.quick_gelu)
        # t in the paper: the log of the inverse temperature, learned (§2.5)
        self.logit_scale = nn.Parameter(torch.tensor(config.init_logit_scale))
        # SigLIP's learned bias b of the pairwise logits (Zhai et al. 2023); CLIP's softmax has no use for one
        has_bias = config.init_logit_bias is not None
        self.logit_bias = nn.Parameter(torch.tensor(config.init_logit_bias)) if has_bias else None

    @property
    def context_length(self) -> int:
        return self.config.text.context_length

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def dtype(self) -> torch.dtype:
        """The parameters' dtype: float32, unless the model was cast (model.double(), model.half())."""
        return self.logit_scale.dtype

    def encode_image(self, images, normalize: bool = True):
        """images (B, 3, H, W) float, preprocessed -> (B, E) embeddings, L2-normalised unless normalize=False."""
        check_images(images, self.config.vision.image_size, self.dtype)
        x = self.visual(images)  # (B, E)
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, tokens, normalize: bool = True):
        """tokens (B, L) int64 -> (B, E) embeddings, L2-normalised unless normalize=False."""
        check_tokens(tokens, self.config.text.vocab_size, self.context_length)
        x = self.text(tokens)  # (B, E)
        return F.normalize(x, dim=-1) if normalize else x

    def forward(self, images, tokens) -> CLIPOutput:
        """images (B, 3, H, W), tokens (B, L) -> CLIPOutput(image_embeds (B, E), text_embeds (B, E), logit_scale).

        The logits of Fig. 3 are `logit_scale * image_embeds @ text_embeds.T`, (B, B); minclip.clip_loss takes it
        from here.
        """
        return CLIPOutput(self.encode_image(images), self.encode_text(tokens), self.scale())

    def scale(self) -> torch.Tensor:
        """The logit scale every loss takes: exp(t), clamped to <= 100 (§2.5), with its gradient."""
        return self.logit_scale.exp().clamp(max=MAX_SCALE)

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep t in [0, ln 100]; the trainer calls this after every optimiser step, as open_clip does (§2.5)."""
        self.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
