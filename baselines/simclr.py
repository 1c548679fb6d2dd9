"""SimCLR (Chen et al. 2020, arXiv 2002.05709): learn image features with no labels and no text, by telling
two augmented views of the same image apart from the views of every other image in the batch.

    views   = augment(x), augment(x)          two random views of each of B images
    h       = visual(views)                   (2B, E)  the representation: what probes and LiT use
    z       = head(h)                         (2B, E') a small MLP; the loss lives here, not on h (§4.2)
    loss    = nt_xent_loss(z1, z2, τ)         each view must find its partner among 2B - 1 others

The image tower is CLIP's (the tiny preset's ViT by default), so every difference from CLIP is the objective.
The augmentation is the whole lesson of §3: without strong colour jitter and crops, two views of one image share
trivial cues (the colour histogram) and the task is solved without learning shapes.

    python -m baselines.simclr --steps 1500 --out runs/simclr
"""
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from baselines import common
from minclip import loop
from minclip.cli import arg
from minclip.config import CLIPConfig
from minclip.data.transforms import SimCLRAugment
from minclip.loss import nt_xent_loss


class ProjectionHead(nn.Sequential):
    """SimCLR's g(.): Linear -> BatchNorm -> ReLU -> Linear, (B, E) -> (B, E') (§2.1; lightly's
    SimCLRProjectionHead). The loss on z = g(h) lets h keep what the loss would discard, such as colour (§4.2)."""

    def __init__(self, embed_dim: int, hidden: int, out_dim: int):
        super().__init__(nn.Linear(embed_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out_dim))


class SimCLR(common.ImageTower):
    """minclip's image tower plus a projection head. `forward(images (B, 3, H, W)) -> z (B, E')`;
    `encode_image(images) -> (B, E)` is the representation h, as CLIP's."""

    def __init__(self, config: CLIPConfig, hidden: int = 256, out_dim: int = 64):
        super().__init__(config)
        self.head = ProjectionHead(config.embed_dim, hidden, out_dim)

    def forward(self, images):
        return self.head(self.visual(images))  # (B, E) -> (B, E')


def simclr_loss(visual: nn.Module, head: nn.Module, images, augment, generator: torch.Generator,
                temperature: float):
    """NT-Xent on two augmented views of every image: images uint8 (B, 3, H, W) -> scalar.

    Both views go through the tower as one batch of 2B, so BatchNorm in the head sees both (SimCLR's global BN).
    `generator` draws every augmentation; SLIP (baselines/slip.py) calls this with CLIP's image tower.
    """
    views = torch.cat([augment(images, generator), augment(images, generator)])  # (2B, 3, S, S)
    z1, z2 = head(visual(views)).chunk(2)  # 2 x (B, E')
    return nt_xent_loss(z1, z2, temperature)


def augmentation(image_size: int, min_scale: float = 0.08, color: float = 1.0) -> SimCLRAugment:
    """SimCLR's views: random crops of at least `min_scale` of the image, flips, colour jitter of strength s =
    `color` (brightness, contrast, saturation 0.8 s, hue 0.2 s; §3, Fig. 5), grayscale. The defaults are lightly's
    CIFAR recipe, `minclip.data.simclr_augment` at 32 px (no blur); smaller values give the weaker augmentations of
    SimCLR's ablation (Table 1, Fig. 5)."""
    return SimCLRAugment(image_size, min_scale=min_scale, jitter=(0.8 * color, 0.8 * color, 0.8 * color, 0.2 * color))


def build(model_config: dict) -> SimCLR:
    """The model a checkpoint's model_config describes (baselines.common.load calls this)."""
    return common.from_config(SimCLR, model_config)


@dataclass
class SimCLRRun(common.BaselineConfig):
    COMMAND: ClassVar[str] = "python -m baselines.simclr"
    out: str = arg("runs/simclr", "run folder: config.json, metrics.jsonl, checkpoint.pt, summary.json")
    temperature: float = arg(0.5, "NT-Xent temperature τ (SimCLR's CIFAR-10 setting and lightly's default: 0.5)")
    hidden: int = arg(256, "hidden width of the projection head")
    out_dim: int = arg(64, "output width E' of the projection head, where the loss is computed")
    weight_decay: float = arg(0.1, "AdamW decoupled weight decay on weight matrices")
    min_scale: float = arg(0.08, "smallest crop, as a fraction of the image's area (SimCLR, lightly: 0.08)")
    color: float = arg(1.0, "colour-jitter strength s (SimCLR: 1.0 on ImageNet, 0.5 on CIFAR-10; 0 = none)")

    def check(self) -> None:
        if not (0 < self.min_scale <= 1 and self.color >= 0):
            raise ValueError(f"--min-scale {self.min_scale} must be in (0, 1] and --color {self.color} >= 0")
        super().check()


class SimCLRObjective(common.Baseline):
    """SimCLR on ShapeWorld's pre-training images (their captions unused)."""
    method = "simclr"

    def __init__(self, cfg: SimCLRRun, state, par):
        super().__init__(cfg, par, SimCLR, hidden=cfg.hidden, out_dim=cfg.out_dim)
        self.augment = augmentation(self.model.config.vision.image_size, cfg.min_scale, cfg.color)

    def loss(self, step: int) -> torch.Tensor:
        return simclr_loss(self.model.visual, self.model.head, self.images(step), self.augment, self.generator(step),
                           self.cfg.temperature)


def train(cfg: SimCLRRun) -> dict:
    """Train (or resume) a SimCLR run; returns the summary (also OUT/summary.json)."""
    return loop.run(cfg, SimCLRObjective)


if __name__ == "__main__":
    common.main(SimCLRRun, SimCLRObjective, __doc__)
