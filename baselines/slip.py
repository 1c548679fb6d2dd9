"""SLIP (Mu et al. 2022, arXiv 2112.12750): CLIP's image-text loss plus SimCLR's image-image loss, on one image tower.

    out  = clip(preprocess(images), tokens)                  CLIP's contrast between each image and its caption
    ssl  = simclr_loss(visual, head, images, augment, τ)     two augmented views of each image (baselines/simclr.py)
    loss = clip_loss(*out) + ssl_weight * ssl

A caption names some of what an image shows; the views ask the tower to know the image itself too. SLIP reports
better zero-shot, linear-probe and fine-tuning accuracy than CLIP at equal epochs on YFCC15M (Tables 1-3), at
about three times the image-tower compute per step (three views of each image instead of one).
The model is a minclip.CLIP plus SimCLR's projection head, so every zero-shot and probe tool takes it as it is.

    python -m baselines.slip --steps 1500 --out runs/slip
"""
from dataclasses import dataclass
from typing import ClassVar

import torch

from baselines import common
from baselines.simclr import ProjectionHead, SimCLRRun, augmentation, simclr_loss
from minclip import loop
from minclip.cli import arg
from minclip.config import CLIPConfig
from minclip.data.transforms import clip_preprocess
from minclip.loss import clip_loss
from minclip.model import CLIP
from minclip.tokenizer import make_tokenizer


class SLIP(CLIP):
    """A CLIP with SimCLR's projection head on its image embeddings (E -> hidden -> E'), used only in training."""

    def __init__(self, config: CLIPConfig, hidden: int = 256, out_dim: int = 64):
        super().__init__(config)
        self.head = ProjectionHead(config.embed_dim, hidden, out_dim)


def slip_loss(model: SLIP, images, tokens, preprocess, augment, generator: torch.Generator, temperature: float,
              ssl_weight: float = 1.0):
    """CLIP's loss on (preprocess(images), tokens) plus ssl_weight x NT-Xent on two augmented views of the images.

    images uint8 (B, 3, H, W), the views are cut from these; tokens (B, L). Returns a scalar.
    """
    ssl = simclr_loss(model.visual, model.head, images, augment, generator, temperature)
    return clip_loss(*model(preprocess(images), tokens)) + ssl_weight * ssl


def build(model_config: dict) -> SLIP:
    """The model a checkpoint's model_config describes (baselines.common.load calls this)."""
    return common.from_config(SLIP, model_config)


@dataclass
class SLIPRun(SimCLRRun):
    """SimCLR's flags (the head's sizes, τ, the augmentation) with SLIP's defaults, and the SimCLR loss's weight."""
    COMMAND: ClassVar[str] = "python -m baselines.slip"
    out: str = arg("runs/slip", "run folder: config.json, metrics.jsonl, checkpoint.pt, summary.json")
    temperature: float = arg(0.1, "NT-Xent temperature τ of the SimCLR branch (SLIP: 0.1)")
    weight_decay: float = arg(0.2, "AdamW decoupled weight decay on weight matrices (CLIP: 0.2)")
    ssl_weight: float = arg(1.0, "weight of the SimCLR loss against CLIP's (SLIP: 1.0)")


class SLIPObjective(common.Baseline):
    """CLIP's image-text loss plus SimCLR's image-image loss, on ShapeWorld's image-caption pairs."""
    method = "slip"

    def __init__(self, cfg: SLIPRun, state, par):
        super().__init__(cfg, par, SLIP, hidden=cfg.hidden, out_dim=cfg.out_dim)
        config = self.model.config
        self.tokenizer = make_tokenizer(config, state, self.data.corpus)
        self.preprocess = clip_preprocess(config.vision.image_size)
        self.augment = augmentation(config.vision.image_size, cfg.min_scale, cfg.color)

    def loss(self, step: int) -> torch.Tensor:
        images, captions = self.data.pairs(step)
        images = torch.as_tensor(images).to(self.device)  # uint8 (B, 3, H, W): the views are cut from these
        tokens = self.tokenizer(captions, context_length=self.model.context_length, truncate=True).to(self.device)
        return slip_loss(self.model, images, tokens, self.preprocess, self.augment, self.generator(step),
                         self.cfg.temperature, self.cfg.ssl_weight)


def train(cfg: SLIPRun) -> dict:
    """Train (or resume) a SLIP run; returns the summary (also OUT/summary.json)."""
    return loop.run(cfg, SLIPObjective)


if __name__ == "__main__":
    common.main(SLIPRun, SLIPObjective, __doc__)
