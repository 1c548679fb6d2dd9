"""The loop every baseline trains through, with minclip.train's conventions: CLI flags from a dataclass, --steps or
--minutes, AdamW with warm-up and cosine decay (minclip/optim.py), a progress bar and metrics.jsonl, atomic
checkpoints every --save-every steps and an exact --resume.

A baseline supplies three things:
- its run config, a RunConfig subclass (every field is a CLI flag);
- its model, rebuilt from a plain dict by the module's `build(model_config)`, so that a checkpoint rebuilds it;
- `loss(step)`, the loss of batch `step`. That batch, and every augmentation and mask drawn for it, depend only on
  (seed, step) (minclip/pairs.py), so a resumed run sees exactly what an uninterrupted run would have seen.

    run = prepare(cfg, build, "hidden")     # check the flags (resuming: the saved ones win), build the model
    fit(run, "simclr", loss)                # train, checkpoint, log
    model, tokenizer, preprocess = load("runs/simclr")  # any baseline run, or a minclip CLIP run
"""
import importlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from minclip import checkpoint, cli, train
from minclip.config import CLIPConfig
from minclip.data.transforms import clip_preprocess
from minclip.io import atomic_save
from minclip.model import build_vision, check_images
from minclip.optim import adamw, warmup_cosine
from minclip.pairs import PairSource, step_seed
from minclip.tokenizer import CLIPTokenizer
from minclip.cli import arg, parse_flags_or_exit

METHODS = ("simclr", "mae", "supervised", "lit", "slip")  # the modules of this package that `load` may rebuild


@dataclass
class RunConfig:
    preset: str = arg("tiny", "the minclip preset whose image tower (and text tower, for LiT and SLIP) is used")
    width: int = arg(0, "ViT width D (0 = the preset's); heads = D / 32")
    layers: int = arg(0, "ViT blocks (0 = the preset's)")
    domains: str = arg("", "comma-separated ShapeWorld domains of the training images ('': minclip.train's default)")
    steps: int = arg(0, "optimiser steps (give --steps or --minutes)")
    minutes: float = arg(0.0, "training budget in minutes: timed on the first steps, then fixed as --steps")
    batch_size: int = arg(256, "images (or image-text pairs) per step")
    lr: float = arg(3e-3, "peak learning rate")
    warmup: int = arg(100, "linear warm-up steps")
    weight_decay: float = arg(0.05, "AdamW decoupled weight decay on weight matrices")
    beta2: float = arg(0.98, "Adam beta2")
    grad_clip: float = arg(1.0, "clip the gradient norm to this (0 = off)")
    seed: int = arg(0, "seeds the model init, the data stream and every augmentation and mask")
    out: str = arg("runs/baseline", "run folder: config.json, metrics.jsonl, checkpoint.pt, summary.json")
    resume: bool = arg(False, "continue from OUT/checkpoint.pt")
    save_every: int = arg(50, "write the checkpoint every this many steps (atomically)")
    log_every: int = arg(10, "append to metrics.jsonl every this many steps")
    device: str = arg("auto", "auto, cpu, cuda, mps ...")
    quiet: bool = arg(False, "no progress bar (metrics.jsonl is still written)")
    tensorboard: bool = arg(False, "also log to OUT/tensorboard")

    def check(self) -> None:
        """Refuse bad values before any work starts, naming the flag and the fix."""
        def need(ok, msg):
            if not ok:
                raise ValueError(msg)
        need(self.preset in CLIPConfig.presets(), f"--preset {self.preset!r} is unknown; choose one of "
                                                  f"{CLIPConfig.presets()}")
        need((self.steps > 0) != (self.minutes > 0) or self.resume,
             f"give exactly one of --steps N or --minutes M (got steps={self.steps}, minutes={self.minutes})")
        need(min(self.steps, self.minutes, self.width, self.layers, self.warmup, self.lr, self.weight_decay) >= 0,
             "--steps, --minutes, --width, --layers, --warmup, --lr, --weight-decay must not be negative")
        need(self.width % 32 == 0, f"--width {self.width} must be a multiple of 32 (heads of 32 channels)")
        need(self.batch_size >= 2, f"--batch-size {self.batch_size}: a batch needs at least 2 images")
        need(self.save_every > 0 and self.log_every > 0, "--save-every and --log-every must be positive")
        has_ckpt = (Path(self.out) / "checkpoint.pt").exists()
        need(self.resume or not has_ckpt, f"{self.out} already holds a run; pass --resume to continue it or pick "
                                          "another --out")
        need(not self.resume or has_ckpt, f"--resume: no checkpoint at {self.out}/checkpoint.pt")


def start(cfg: RunConfig):
    """Check the flags and seed the model init. When resuming, the saved run's config wins (all but --out).
    Returns (cfg, the checkpoint's state or None)."""
    cfg.check()
    state = checkpoint.read_checkpoint(Path(cfg.out) / "checkpoint.pt") if cfg.resume else None
    if state is not None:
        cfg = type(cfg)(**{**state["train_config"], "resume": True, "out": cfg.out})
    torch.manual_seed(cfg.seed)
    return cfg, state


class Run(NamedTuple):
    """A run ready to train: everything `fit` needs but the loss."""
    cfg: RunConfig  # the flags, or the saved run's config when resuming
    state: Optional[dict]  # the checkpoint when resuming, else None
    model_config: dict  # what the method's build() rebuilds the model from
    model: nn.Module  # on its device
    device: torch.device
    source: PairSource  # the training batches


def prepare(cfg: RunConfig, build: Callable, *options: str) -> Run:
    """The start the baselines share: check and seed (`start`); model_config = the preset's config, its ViT resized
    by --width / --layers, plus the run flags named in `options`; the model build(model_config), on its device."""
    cfg, state = start(cfg)
    config = clip_config(cfg)
    model_config = {"clip": config.to_dict(), **{name: getattr(cfg, name) for name in options}}
    device = resolve_device(cfg)
    return Run(cfg, state, model_config, build(model_config).to(device), device, pair_source(cfg, config))


def from_config(model_class, model_config: dict) -> nn.Module:
    """model_class(CLIPConfig from model_config["clip"], **the other entries): how a baseline's build() rebuilds the
    model that `prepare` made."""
    options = dict(model_config)
    return model_class(CLIPConfig.from_dict(options.pop("clip")), **options)


def clip_config(cfg: RunConfig) -> CLIPConfig:
    """The preset's config with the ViT's width and depth overridden by --width / --layers (a model-size knob)."""
    config = CLIPConfig.preset(cfg.preset)
    if cfg.width:
        config.vision.width, config.vision.heads = cfg.width, cfg.width // 32
    config.vision.layers = cfg.layers or config.vision.layers
    return config


def resolve_device(cfg: RunConfig) -> torch.device:
    """--device auto: a GPU if there is one, else the CPU."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)


def pair_source(cfg: RunConfig, config: CLIPConfig) -> PairSource:
    """minclip.train's stream of ShapeWorld image-caption batches (its defaults, our seed, batch and domains):
    every method sees the same images at the same step."""
    domains = {"domains": cfg.domains} if cfg.domains else {}  # "": minclip.train's default
    return PairSource(train.TrainConfig(seed=cfg.seed, batch_size=cfg.batch_size, **domains), config)


def generator(cfg: RunConfig, step: int) -> torch.Generator:
    """The generator for step `step`'s augmentations or masks. (seed, step, rank 0) seeds the data
    (minclip.pairs), so a fourth key makes a stream independent of it."""
    return torch.Generator().manual_seed(step_seed(cfg.seed, step, 0, 1))


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


class Logger(cli.Logger):
    """minclip.train's progress bar and metrics.jsonl, logging what every baseline has: loss, lr, images/s."""

    def step(self, step, loss, lr, seconds, batch_size):
        self.bar.update(1)
        self.seconds += seconds  # training time only: checkpoints are not counted
        if self.active:
            self.bar.set_postfix(loss=f"{loss:.3f}", images_s=f"{batch_size / seconds:.0f}")
            if step % self.every == 0:
                self.write({"step": step, "loss": loss, "lr": lr, "images_per_s": batch_size / seconds,
                            "time": time.time()})


def calibrate_steps(model: nn.Module, loss: Callable, minutes: float) -> int:
    """How many steps fit in `minutes`: time a few forward-backward passes. No optimiser step is taken and batches
    are drawn by step number, so nothing is changed but .grad, which is cleared."""
    times = []
    for step in range(5):
        t0 = time.perf_counter()
        loss(step).backward()
        times.append(time.perf_counter() - t0)
    model.zero_grad(set_to_none=True)
    per_step = sorted(times[1:])[len(times[1:]) // 2] * 1.08  # median; +8% for the optimiser step and logging
    return max(1, int(minutes * 60 / per_step))


def fit(run: Run, method: str, loss: Callable, tokenizer: Optional[CLIPTokenizer] = None) -> dict:
    """Train `run.model` by minimising `loss(step)`; returns the summary also written to OUT/summary.json.

    method: the module name in METHODS whose `build(model_config)` rebuilds the model. Parameters with
    requires_grad=False (LiT's locked tower) are neither decayed nor updated. A model with a learned temperature
    (CLIP-like: LiT, SLIP) has it clamped after every step, as minclip.train does (CLIP §2.5).
    """
    cfg, state, model_config, model = run.cfg, run.state, run.model_config, run.model
    out = Path(cfg.out)
    if cfg.steps == 0:
        cfg.steps = calibrate_steps(model, loss, cfg.minutes)
    optimizer = adamw(model, cfg.lr, cfg.weight_decay, (0.9, cfg.beta2), 1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(min(cfg.warmup, cfg.steps // 2), cfg.steps))
    start_step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        start_step = state["step"]
    else:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(
            {"method": method, "model": model_config, "train": asdict(cfg)}, indent=2))
    log = Logger(out, cfg, True, start_step)
    clamp = getattr(model, "clamp_logit_scale", lambda: None)
    model.train()
    for step in range(start_step, cfg.steps):
        t0 = time.perf_counter()
        value = loss(step)
        value.backward()
        if not math.isfinite(value.item()):
            raise FloatingPointError(f"the loss is {value.item()} at step {step}; the learning rate is likely too "
                                     f"high (--lr {cfg.lr:g}): lower it, or resume from {out / 'checkpoint.pt'}")
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        clamp()
        log.step(step + 1, value.item(), scheduler.get_last_lr()[0], time.perf_counter() - t0, cfg.batch_size)
        if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
            saved = {"method": method, "step": step + 1, "model": model.state_dict(), "model_config": model_config,
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "rng": checkpoint.rng_state(), "train_config": asdict(cfg)}
            if tokenizer is not None:  # with it, a LiT checkpoint is one minclip.load opens too
                saved["tokenizer"] = tokenizer.to_json()
            atomic_save(saved, out / "checkpoint.pt")
    summary = {"method": method, "steps": cfg.steps, "batch_size": cfg.batch_size, "train_seconds": log.seconds,
               "final_loss": value.item() if cfg.steps > start_step else None}
    (out / "summary.json").write_text(json.dumps(summary))
    log.close()
    return summary


class Loaded(NamedTuple):
    model: nn.Module  # eval mode; `.visual` and `encode_image(images) -> (B, E)`; CLIP-like ones also encode_text
    tokenizer: Optional[CLIPTokenizer]  # None for the image-only models (SimCLR, MAE, supervised)
    preprocess: object  # uint8 images (B, 3, H, W) -> float (B, 3, H, W), as the model expects


def load(path, device: str = "cpu") -> Loaded:
    """(model, tokenizer, preprocess) from a baseline's run folder or checkpoint, or from a minclip CLIP run."""
    path = Path(path)
    path = path / "checkpoint.pt" if path.is_dir() else path
    state = checkpoint.read_checkpoint(path)
    if "method" not in state:  # a minclip.train run: CLIP or FLIP
        return Loaded(*checkpoint.load(path, device))
    if state["method"] not in METHODS:
        raise ValueError(f"{path} was written by an unknown method {state['method']!r}; expected one of {METHODS}")
    model = importlib.import_module(f"baselines.{state['method']}").build(state["model_config"])
    model.load_state_dict(state["model"])
    tokenizer = CLIPTokenizer.from_json(state["tokenizer"]) if "tokenizer" in state else None
    return Loaded(model.to(device).eval(), tokenizer, clip_preprocess(model.config.vision.image_size))


def main(config_class, run: Callable, name: str, description: str, argv=None) -> None:
    """`python -m baselines.NAME`: parse the flags, refuse bad ones with a one-line error, then train."""
    run(parse_flags_or_exit(config_class, argv, prog=f"python -m baselines.{name}", description=description))
