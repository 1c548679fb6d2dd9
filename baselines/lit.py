"""LiT, locked-image text tuning (Zhai et al. 2022, arXiv 2111.07991): take an image tower trained some other way,
lock it, and train only a text tower to map captions onto its embeddings, with CLIP's loss.

    I_e  = normalize(locked_visual(images))     (B, E) no gradient: the embedding space is given
    T_e  = normalize(text(tokens))              (B, E) trained from scratch
    loss = clip_loss(I_e, T_e, exp(t))          the temperature t is learned too

The result is a minclip.CLIP, so it classifies zero-shot like one (and minclip.load opens its run). It gives the
SimCLR, MAE and supervised towers a zero-shot classifier, and asks how much of what a caption says their embedding
spaces already hold. LiT's finding (§4): with a good pre-trained tower, locking it ("Lu") beats training both towers
from scratch ("uu"), because contrastive image-text data teaches the image tower less than good pre-training does.

    python -m baselines.lit --tower runs/simclr --steps 1500 --out runs/lit-simclr
"""
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from baselines import common
from minclip import loop
from minclip.cli import arg
from minclip.config import CLIPConfig
from minclip.data.transforms import clip_preprocess
from minclip.loss import clip_loss
from minclip.model import CLIP
from minclip.tokenizer import make_tokenizer


def build(model_config: dict) -> CLIP:
    """The model a checkpoint's model_config describes (baselines.common.load calls this)."""
    return CLIP(CLIPConfig.from_dict(model_config))


def locked_clip(tower) -> CLIP:
    """A CLIP whose image tower is `tower.visual` (copied, requires_grad False) and whose text tower is new.

    tower: any model with `.config` (a CLIPConfig) and `.visual`: a baseline, or a minclip CLIP. Its text config
    (its preset's) sizes the new text tower; the embedding width E is the locked tower's output width.
    """
    config = copy.deepcopy(tower.config)
    config.vision.patch_dropout = 0.0  # a FLIP tower, once locked, sees every patch
    model = CLIP(config)
    model.visual.load_state_dict(tower.visual.state_dict())
    model.visual.requires_grad_(False)
    return model


@dataclass
class LiTRun(common.BaselineConfig):
    COMMAND: ClassVar[str] = "python -m baselines.lit"
    tower: str = arg("", "the image tower to lock: a run folder or checkpoint of baselines.simclr, .mae, "
                         ".supervised, or of minclip.train (CLIP, FLIP)")
    out: str = arg("runs/lit", "run folder: config.json, metrics.jsonl, checkpoint.pt, summary.json")
    weight_decay: float = arg(0.2, "AdamW decoupled weight decay on weight matrices (CLIP: 0.2)")

    def check(self) -> None:
        tower = Path(self.tower)
        if not self.resume and not (tower.is_file() or (tower / "checkpoint.pt").is_file()):
            raise ValueError(f"--tower {self.tower!r} is not a run folder or checkpoint; train one first, e.g. "
                             "`python -m baselines.simclr --steps 1500 --out runs/simclr`, then --tower runs/simclr")
        super().check()


class LiTObjective(loop.Objective):
    """CLIP's loss with the image tower locked: only the text tower and the temperature learn."""
    method, builder = "lit", "baselines.lit"

    def __init__(self, cfg: LiTRun, state, par):
        if state is not None:  # the checkpoint holds the locked tower too
            model = build(state["model_config"])
            model.visual.requires_grad_(False)
        else:
            model = locked_clip(common.load(cfg.tower).model)
        self.cfg, self.device = cfg, par.device
        self.model, self.model_config = model.to(par.device), model.config.to_dict()
        self.data = common.pair_stream(cfg, model.config, par)
        self.tokenizer = make_tokenizer(model.config, state, self.data.corpus)
        self.preprocess = clip_preprocess(model.config.vision.image_size)

    def train_mode(self) -> None:
        self.model.train()
        self.model.visual.eval()  # locked: BatchNorm statistics (a ResNet tower) must not move either

    def loss(self, step: int) -> torch.Tensor:
        images, captions = self.data.pairs(step)
        images = self.preprocess(torch.as_tensor(images).to(self.device))  # (B, 3, H, W)
        tokens = self.tokenizer(captions, context_length=self.model.context_length, truncate=True).to(self.device)
        with torch.no_grad():  # locked: no activations kept, no gradient computed
            image_embeds = self.model.encode_image(images)  # (B, E)
        return clip_loss(image_embeds, self.model.encode_text(tokens), self.model.scale())


def train(cfg: LiTRun) -> dict:
    """Train (or resume) the text tower of a LiT model; returns the summary (also OUT/summary.json)."""
    return loop.run(cfg, LiTObjective)


if __name__ == "__main__":
    common.main(LiTRun, LiTObjective, __doc__)
