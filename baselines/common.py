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
import importlib
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from minclip import checkpoint, loop
from minclip.cli import arg, parse_flags
from minclip.config import CLIPConfig
from minclip.data import ShapeWorld
from minclip.data.transforms import clip_preprocess
from minclip.model import build_vision, check_images
from minclip.pairs import ShapeWorldPairs, parse_domains, step_seed
from minclip.tokenizer import CLIPTokenizer

METHODS = ("simclr", "mae", "supervised", "lit", "slip")  # the modules of this package that `load` may rebuild


@dataclass
class BaselineConfig(loop.RunConfig):
    """The shared flags (minclip/loop.py), and which minclip preset's towers a baseline trains, on which images."""
    preset: str = arg("tiny", "the minclip preset whose image tower (and text tower, for LiT and SLIP) is used")
    width: Optional[int] = arg(None, "ViT width D, heads = D / 32 (default: the preset's: " + ", ".join(
        f"{p} {CLIPConfig.preset(p).vision.width}" for p in CLIPConfig.presets()) + ")")
    layers: Optional[int] = arg(None, "ViT blocks (default: the preset's: " + ", ".join(
        f"{p} {CLIPConfig.preset(p).vision.layers}" for p in CLIPConfig.presets()) + ")")
    domains: str = arg("photo", "comma-separated ShapeWorld domains of the training images, or 'mix' "
                                "(minclip.train's default: photo)")

    def check(self) -> None:
        """Refuse bad values before any work starts, naming the flag and the fix."""
        if self.preset not in CLIPConfig.presets():
            raise ValueError(f"--preset {self.preset!r} is unknown; choose one of {CLIPConfig.presets()}")
        if self.width is not None and self.width < 32:
            raise ValueError(f"--width {self.width} must be >= 32 (or leave it out: the preset's)")
        if self.layers is not None and self.layers < 1:
            raise ValueError(f"--layers {self.layers} must be >= 1 (or leave it out: the preset's)")
        if self.width is not None and self.width % 32:
            raise ValueError(f"--width {self.width} must be a multiple of 32 (heads of 32 channels), e.g. 64")
        parse_domains(self.domains)
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

    def __init__(self, cfg: BaselineConfig, par, model_class, **options):
        if par.world > 1:  # the baselines' losses see only their rank's batch, and their views repeat across ranks
            raise ValueError("the baselines train on one process; torchrun is for minclip.train (CLIP, SigLIP)")
        self.cfg, self.device = cfg, par.device
        self.model_config = {"clip": clip_config(cfg).to_dict(), **options}
        self.model = from_config(model_class, self.model_config).to(par.device)
        self.data = pair_stream(cfg, self.model.config, par)

    def images(self, step: int) -> torch.Tensor:
        """The images of batch `step`, uint8 (B, 3, H, W) on the device (augmentations are cut from these)."""
        return torch.as_tensor(self.data.pairs(step).images).to(self.device)

    def generator(self, step: int) -> torch.Generator:
        """The generator for step `step`'s augmentations or masks. (seed, step, rank 0) seeds the data
        (minclip.pairs), so a fourth key makes a stream independent of it."""
        return torch.Generator().manual_seed(step_seed(self.cfg.seed, step, 0, 1))


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
    """minclip.train's ShapeWorld image-caption batches (its default objects and captions; our seed, batch and
    domains)."""
    world = ShapeWorld(seed=0, image_size=config.vision.image_size)
    return ShapeWorldPairs(world, cfg.batch_size, cfg.seed, parse_domains(cfg.domains), rank=par.rank,
                           world_size=par.world)


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


class Loaded(NamedTuple):
    model: nn.Module  # eval mode; `.visual` and `encode_image(images) -> (B, E)`; CLIP-like ones also encode_text
    tokenizer: Optional[CLIPTokenizer]  # None for the image-only models (SimCLR, MAE, supervised)
    preprocess: object  # uint8 images (B, 3, H, W) -> float (B, 3, H, W), as the model expects


def load(path, device: str = "cpu") -> Loaded:
    """(model, tokenizer, preprocess) from a baseline's run folder or checkpoint, or from a minclip CLIP run."""
    path = checkpoint.checkpoint_file(path)
    state = checkpoint.read_checkpoint(path)
    method = state.get("method", "clip")  # checkpoints written before runs named their method are CLIP's
    if method == "clip":  # a minclip.train run: CLIP, SigLIP or FLIP
        return Loaded(*checkpoint.load(path, device))
    if method not in METHODS:
        raise ValueError(f"{path} was written by an unknown method {method!r}; expected one of {METHODS}")
    model = importlib.import_module(f"baselines.{method}").build(state["model_config"])
    model.load_state_dict(state["model"])
    tokenizer = CLIPTokenizer.from_json(state["tokenizer"]) if "tokenizer" in state else None
    return Loaded(model.to(device).eval(), tokenizer, clip_preprocess(model.config.vision.image_size))


def main(config_class, objective_class, description: str, argv=None) -> dict:
    """`python -m baselines.NAME`: parse the flags, then train through minclip's loop (one-line errors)."""
    return loop.main(parse_flags(config_class, argv, prog=config_class.COMMAND, description=description),
                     objective_class)
