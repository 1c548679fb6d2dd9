"""The supervised baseline: the same image tower, trained with cross-entropy on ShapeWorld's labels.

This is the deck's "ResNet-50 trained on ImageNet", scaled down: a model that learns its test classes from labelled
images of one distribution (the photo domain by default) and nothing else.

    logits = head(visual(images))          (B, K), K = the task's classes (64 colour-shape pairs)
    loss   = cross_entropy(logits, labels)

--tower picks the image tower: minclip's own families by preset (tiny, tiny-rn, ...) or any timm model by name,
e.g. the EfficientNet the paper compares CLIP with (§3.2, Fig. 10: CLIP-ResNets fall below EfficientNets of equal
compute on the linear-probe suite, CLIP-ViTs above them):

    python -m baselines.supervised --tower efficientnet_b0 --steps 1500 --out runs/supervised-effnet

CLIP §3.3 (Fig. 13) places zero-shot CLIP against many such models: across them, accuracy under distribution
shift follows a line of in-distribution accuracy, and a model's *effective robustness* is its height above that
line. --width, --layers and --steps train the family that line is fitted on (baselines/compare.py).

    python -m baselines.supervised --steps 1500 --domains photo --out runs/supervised
"""
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines import common
from minclip import loop
from minclip.cli import arg
from minclip.config import CLIPConfig, VisionConfig
from minclip.data import ShapeWorld, clip_preprocess
from minclip.data.shapeworld import TASKS
from minclip.pairs import parse_domains, step_seed


class Supervised(common.ImageTower):
    """minclip's image tower and a linear classifier over the classes of a ShapeWorld task.
    `forward(images (B, 3, H, W)) -> logits (B, K)`; `encode_image(images) -> (B, E)` are the features the
    classifier reads, as CLIP's."""

    def __init__(self, config: CLIPConfig, task: str = "color_shape"):
        super().__init__(config)
        self.head = nn.Linear(config.embed_dim, len(TASKS[task]))

    def forward(self, images):
        return self.head(self.visual(images))  # (B, E) -> (B, K)


def build(model_config: dict) -> Supervised:
    """The model a checkpoint's model_config describes (baselines.common.load calls this)."""
    return common.from_config(Supervised, model_config)


@dataclass
class SupervisedRun(common.BaselineConfig):
    COMMAND: ClassVar[str] = "python -m baselines.supervised"
    out: str = arg("runs/supervised", "run folder: config.json, metrics.jsonl, checkpoint.pt, summary.json")
    domains: str = arg("photo", "comma-separated ShapeWorld domains of the labelled training images (one: photo, "
                                "the in-distribution domain; the others are the distribution shift)")
    task: str = arg("color_shape", "the ShapeWorld task whose labels are learned: " + ", ".join(TASKS))
    tower: str = arg("", "the image tower: a minclip preset's (e.g. tiny-rn, mini), or any timm model by name (e.g. "
                         "efficientnet_b0, resnet18; from scratch, at --preset's image size); '' = --preset's")
    init: str = arg("", "fine-tune: start the image tower from this run's (a baseline or minclip run with the same "
                        "tower); '' = from scratch")

    def check(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"--task {self.task!r} is unknown; choose one of {list(TASKS)}")
        if self.init and not self.resume and not (Path(self.init) / "checkpoint.pt").exists():
            raise ValueError(f"--init {self.init!r} holds no checkpoint.pt; pass a run folder, e.g. runs/mae")
        if self.tower and self.tower not in CLIPConfig.presets():
            import timm  # only for a timm tower: importing it takes a second
            if self.tower not in timm.list_models():
                raise ValueError(f"--tower {self.tower!r} is neither a minclip preset {CLIPConfig.presets()} nor a "
                                 "timm model; see timm.list_models(), e.g. efficientnet_b0 or resnet18")
            if (self.width, self.layers) != (None, None):
                raise ValueError(f"--width and --layers resize minclip's ViT, not timm's {self.tower}; leave them out")
        if self.domains == "mix":
            raise ValueError("--domains mix: name the labelled domains, e.g. photo or photo,sketch")
        super().check()


def labelled_batch(world: ShapeWorld, task: str, domains: list, n: int, seed: int):
    """n labelled training images (seen colour-shape pairs only), split evenly over `domains`, each part drawn with
    its own seed -> (images uint8 (n, 3, H, W), labels (n,))."""
    parts = [world.classification(task, "train", domain, n=len(range(i, n, len(domains))), seed=step_seed(seed, i))
             for i, domain in enumerate(domains)]
    return torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts])


class SupervisedObjective(common.Baseline):
    """Cross-entropy on ShapeWorld's labelled images of --domains (seen colour-shape pairs only)."""
    method = "supervised"

    def __init__(self, cfg: SupervisedRun, state, par):
        super().__init__(cfg, par, Supervised, task=cfg.task)
        if cfg.init and state is None:  # fine-tuning (MAE §4.1): every weight trains, from a pre-trained start
            try:
                self.model.visual.load_state_dict(common.load(cfg.init).model.visual.state_dict())
            except RuntimeError as error:
                raise ValueError(f"--init {cfg.init}: its image tower differs from this run's; pass the --preset, "
                                 f"--width and --layers it was trained with ({error})") from error
        size = self.model.config.vision.image_size
        self.world = ShapeWorld(seed=0, image_size=size)  # world 0: the held-out pairs of CLIP's
        self.preprocess = clip_preprocess(size)

    def clip_config(self, cfg: SupervisedRun) -> CLIPConfig:
        """--tower: a minclip preset's image tower, or a timm model at --preset's image size and embedding width."""
        if cfg.tower in ("", cfg.preset):
            return common.clip_config(cfg)
        if cfg.tower in CLIPConfig.presets():
            return CLIPConfig.preset(cfg.tower)
        config = CLIPConfig.preset(cfg.preset)
        config.vision = VisionConfig(kind="timm", timm_name=cfg.tower, image_size=config.vision.image_size)
        return config

    def loss(self, step: int) -> torch.Tensor:
        images, labels = labelled_batch(self.world, self.cfg.task, parse_domains(self.cfg.domains),
                                        self.cfg.batch_size, step_seed(self.cfg.seed, step, 0))
        return F.cross_entropy(self.model(self.preprocess(images.to(self.device))), labels.to(self.device))


def train(cfg: SupervisedRun) -> dict:
    """Train (or resume) a supervised run; returns the summary (also OUT/summary.json)."""
    return loop.run(cfg, SupervisedObjective)


if __name__ == "__main__":
    common.main(SupervisedRun, SupervisedObjective, __doc__)
