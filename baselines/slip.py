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

import torch

from baselines import common
from baselines.simclr import ProjectionHead, SimCLRRun, augmentation, simclr_loss
from minclip.config import CLIPConfig
from minclip.data.transforms import clip_preprocess
from minclip.loss import clip_loss
from minclip.model import CLIP
from minclip.pairs import make_tokenizer
from minclip.cli import arg


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
    out: str = arg("runs/slip", "run folder: config.json, metrics.jsonl, checkpoint.pt, summary.json")
    temperature: float = arg(0.1, "NT-Xent temperature τ of the SimCLR branch (SLIP: 0.1)")
    weight_decay: float = arg(0.2, "AdamW decoupled weight decay on weight matrices (CLIP: 0.2)")
    ssl_weight: float = arg(1.0, "weight of the SimCLR loss against CLIP's (SLIP: 1.0)")


def train(cfg: SLIPRun) -> dict:
    """Train (or resume) a SLIP run on ShapeWorld's image-caption pairs; returns the summary."""
    run = common.prepare(cfg, build, "hidden", "out_dim")
    config, model = run.model.config, run.model
    tokenizer = make_tokenizer(config, run.state, run.source.corpus)
    preprocess = clip_preprocess(config.vision.image_size)
    augment = augmentation(config.vision.image_size, run.cfg.min_scale, run.cfg.color)

    def loss(step):
        images, captions = run.source.pairs(step)
        images = torch.as_tensor(images).to(run.device)  # uint8 (B, 3, H, W): the views are cut from these
        tokens = tokenizer(captions, context_length=config.text.context_length, truncate=True).to(run.device)  # (B, L)
        return slip_loss(model, images, tokens, preprocess, augment, common.generator(run.cfg, step),
                         run.cfg.temperature, run.cfg.ssl_weight)

    return common.fit(run, "slip", loss, tokenizer)


if __name__ == "__main__":
    common.main(SLIPRun, train, "slip", __doc__)
