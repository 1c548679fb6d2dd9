"""What the baselines share on top of minclip's training loop (minclip/loop.py): their flags, their start (a model
built from a minclip preset, ShapeWorld's image-caption stream), the image tower, and a loader for any run.

A baseline module holds only what is its own: its model, its loss for one batch, its extra flags.

    @dataclass
    class SimCLRRun(common.BaselineConfig):          # the shared flags, plus SimCLR's own
        COMMAND: ClassVar[str] = "python -m baselines.simclr"
        temperature: float = arg(0.5, "NT-Xent temperature")

    class SimCLRObjective(common.Baseline):
        method = "simclr"                            # load() rebuilds the model with baselines.simclr.build
        def __init__(self, cfg, state, par):
            super().__init__(cfg, par, SimCLR, hidden=cfg.hidden, out_dim=cfg.out_dim)
        def loss(self, step):                        # the loss of batch `step`
            ...

    loop.run(SimCLRRun(steps=1500), SimCLRObjective)    # train, checkpoint, log, resume: minclip/loop.py
    model, tokenizer, preprocess = load("runs/simclr")   # any baseline run, or a minclip CLIP run
"""
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from minclip import checkpoint, loop
from minclip.cli import arg, parse_flags
from minclip.config import CLIPConfig
from minclip.data import ShapeWorld
from minclip.data.transforms import clip_preprocess
from minclip.model import build_vision, check_images
from minclip.pairs import ShapeWorldPairs, parse_domains, parse_objects, step_seed
from minclip.tokenizer import make_tokenizer
from minclip.zeroshot import scores_likelihood, shapeworld_zeroshot



@dataclass
class BaselineConfig(loop.RunConfig):
    """The shared flags (minclip/loop.py), and which minclip preset's towers a baseline trains, on which images."""
    RESUMABLE: ClassVar[tuple] = loop.RunConfig.RESUMABLE + ("eval_images",)
    preset: str = arg("tiny", "the minclip preset whose image tower (and text tower, for LiT and SLIP) is used")
    width: Optional[int] = arg(None, "ViT width D, heads = D / 32 (default: the preset's: " + ", ".join(
        f"{p} {CLIPConfig.preset(p).vision.width}" for p in CLIPConfig.presets()) + ")")
    layers: Optional[int] = arg(None, "ViT blocks (default: the preset's: " + ", ".join(
        f"{p} {CLIPConfig.preset(p).vision.layers}" for p in CLIPConfig.presets()) + ")")
    domains: str = arg("photo", "comma-separated ShapeWorld domains of the training images, or 'mix' "
                                "(minclip.train's default: photo)")
    objects: str = arg("1,1", "fewest,most objects per training image (minclip.train's default: 1,1; 1,3 for "
                              "crowded scenes whose captions name several objects)")
    eval_images: int = arg(0, "the caption baselines' zero-shot test: images per split while training and at the "
                              "end (0: 500 and 2,000; 200 and 1,000 for the likelihood models, which score every "
                              "prompt)")

    def check(self) -> None:
        """Refuse bad values before any work starts, naming the flag and the fix."""
        if self.preset not in CLIPConfig.presets():
            raise ValueError(f"--preset {self.preset!r} is unknown; choose one of {CLIPConfig.presets()}")
        if self.width is not None and self.width < 32:
            raise ValueError(f"--width {self.width} must be >= 32 (or leave it out: the preset's)")
        if self.eval_images < 0:
            raise ValueError(f"--eval-images {self.eval_images} must be 0 (the defaults) or more")
        if self.layers is not None and self.layers < 1:
            raise ValueError(f"--layers {self.layers} must be >= 1 (or leave it out: the preset's)")
        if self.width is not None and self.width % 32:
            raise ValueError(f"--width {self.width} must be a multiple of 32 (heads of 32 channels), e.g. 64")
        if (self.width, self.layers) != (None, None) and CLIPConfig.preset(self.preset).vision.kind != "vit":
            raise ValueError(f"--width and --layers resize a ViT, and --preset {self.preset} is a ResNet; leave them "
                             "out, or pick the ResNet size by its preset (tiny-rn, mini-rn, small-rn)")
        parse_domains(self.domains), parse_objects(self.objects)
        super().check()

    def resolved(self) -> "BaselineConfig":
        """--width and --layers filled from the preset where they are left out (config.json records them)."""
        cfg = super().resolved()
        vision = CLIPConfig.preset(cfg.preset).vision
        cfg.width = vision.width if cfg.width is None else cfg.width
        cfg.layers = vision.layers if cfg.layers is None else cfg.layers
        return cfg


class Baseline(loop.Objective):
    """The start every baseline shares: the model built from the preset (its ViT resized by --width / --layers)
    plus the baseline's own `options`, on its device, and minclip.train's stream of ShapeWorld pairs, so that every
    method sees the same images at the same step."""

    @property
    def builder(self) -> str:
        return f"baselines.{self.method}"  # the module whose build(model_config) rebuilds the model

    def __init__(self, cfg: BaselineConfig, par, model_class, **options):
        if par.world > 1:  # the baselines' losses see only their rank's batch, and their views repeat across ranks
            raise ValueError("the baselines train on one process; torchrun is for minclip.train (CLIP, SigLIP)")
        self.cfg, self.device = cfg, par.device
        self.model_config = {"clip": self.clip_config(cfg).to_dict(), **options}
        self.model = from_config(model_class, self.model_config).to(par.device)
        self.data = pair_stream(cfg, self.model.config, par)

    def clip_config(self, cfg: BaselineConfig) -> CLIPConfig:
        """The towers' config: the preset's, resized by --width / --layers (the supervised baseline adds --tower)."""
        return clip_config(cfg)

    def images(self, step: int) -> torch.Tensor:
        """The images of batch `step`, uint8 (B, 3, H, W) on the device (augmentations are cut from these)."""
        return torch.as_tensor(self.data.pairs(step).images).to(self.device)

    def generator(self, step: int) -> torch.Generator:
        """The generator for step `step`'s augmentations or masks. (seed, step, rank 0) seeds the data
        (minclip.pairs), so a fourth key makes a stream independent of it."""
        return torch.Generator().manual_seed(step_seed(self.cfg.seed, step, 0, 1))


class CaptionBaseline(Baseline):
    """A baseline that reads the captions too (the predictive objectives, bag-of-words CLIP): minclip.train's
    tokenizer and preprocessing, the batch as model inputs, and CLIP's zero-shot evaluation while it trains."""

    def __init__(self, cfg: BaselineConfig, state, par, model_class, **options):
        super().__init__(cfg, par, model_class, **options)
        self.tokenizer = make_tokenizer(self.model.config, state, self.data.corpus)
        self.preprocess = clip_preprocess(self.model.config.vision.image_size)

    def text_pairs(self, step: int) -> tuple:
        """Batch `step` as the model takes it: images float (B, 3, H, W) and tokens (B, L), on the device."""
        images, captions = self.data.pairs(step)
        tokens = self.tokenizer(captions, context_length=self.model.context_length, truncate=True)
        return self.preprocess(torch.as_tensor(images).to(self.device)), tokens.to(self.device)

    # Images per split for the zero-shot test while training, and at the end. Scoring by likelihood runs the
    # decoder once per (image, prompt) pair, 256 prompts per image for 64 classes, where CLIP embeds the 256
    # prompts once: so the likelihood models are tested on fewer images.
    EVAL_N = {"embeddings": 500, "likelihood": 200}
    FINAL_N = {"embeddings": 2000, "likelihood": 1000}

    def evaluate(self, n: Optional[int] = None) -> dict:
        """Zero-shot on fresh photos, seen and held-out colour-shape pairs, as minclip.train logs it (embeddings or
        prompt likelihoods, whichever the model scores by: minclip/zeroshot.py)."""
        n = n or self.cfg.eval_images or self.EVAL_N["likelihood" if scores_likelihood(self.model) else "embeddings"]
        return shapeworld_zeroshot(self.model, self.tokenizer, self.preprocess, self.data.world, n=n)

    def finish(self, out, summary: dict) -> dict:
        return self.evaluate(n=self.cfg.eval_images or self.FINAL_N["likelihood" if scores_likelihood(self.model)
                                                                     else "embeddings"])


def from_config(model_class, model_config: dict) -> nn.Module:
    """model_class(CLIPConfig from model_config["clip"], **the other entries): how a baseline's build() rebuilds the
    model that `Baseline` made."""
    options = dict(model_config)
    return model_class(CLIPConfig.from_dict(options.pop("clip")), **options)


def clip_config(cfg: BaselineConfig) -> CLIPConfig:
    """The preset's config with the ViT's width and depth overridden by --width / --layers (a model-size knob)."""
    config = CLIPConfig.preset(cfg.preset)
    if cfg.width and cfg.width != config.vision.width:  # (runs saved before None meant "the preset's" used 0)
        config.vision.width, config.vision.heads = cfg.width, cfg.width // 32
    config.vision.layers = cfg.layers or config.vision.layers
    return config


def pair_stream(cfg: BaselineConfig, config: CLIPConfig, par) -> ShapeWorldPairs:
    """minclip.train's ShapeWorld image-caption batches (its captions; our seed, batch, domains and objects)."""
    world = ShapeWorld(seed=0, image_size=config.vision.image_size)
    return ShapeWorldPairs(world, cfg.batch_size, cfg.seed, parse_domains(cfg.domains), parse_objects(cfg.objects),
                           rank=par.rank, world_size=par.world)


class ImageTower(nn.Module):
    """What every image-only baseline shares: minclip's image tower, built from a CLIPConfig as CLIP builds it, and
    CLIP's `encode_image`, so minclip.zeroshot.image_features and the probes read every model alike."""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = config
        self.visual = build_vision(config)

    def encode_image(self, images, normalize: bool = True):
        """images (B, 3, H, W) float, preprocessed -> (B, E) embeddings, L2-normalised unless normalize=False."""
        check_images(images, self.config.vision.image_size)
        x = self.visual(images)  # (B, E)
        return F.normalize(x, dim=-1) if normalize else x


Loaded = checkpoint.Loaded  # (model, tokenizer or None, preprocess)


def load(path, device: str = "cpu") -> Loaded:
    """(model, tokenizer, preprocess) from any run folder or checkpoint: a baseline's or a minclip CLIP's. It is
    minclip.load: each checkpoint names the module that rebuilds its model (a baseline's `build`)."""
    return checkpoint.load(path, device)


def main(config_class, objective_class, description: str, argv=None) -> dict:
    """`python -m baselines.NAME`: parse the flags, then train through minclip's loop (one-line errors)."""
    return loop.main(parse_flags(config_class, argv, prog=config_class.COMMAND, description=description),
                     objective_class)
