"""Small pretrained baselines, trained on demand, deterministically, and cached: `baselines.zoo.load("simclr-tiny-
shapeworld")` -> (model, tokenizer, preprocess), tokenizer None for the image-only models.

As minclip.zoo: nothing is downloaded; the first call trains the model (minutes on a laptop CPU) into
`minclip.io.data_dir()/zoo/NAME/`, and every later call loads it in a second. minclip's "clip-tiny-shapeworld" and
"flip-tiny-shapeworld" load from here too, so a notebook gets every model of the comparison from one place.
Every recipe has the budget of minclip's CLIP (1,500 steps of 256), on the same images.
"""
import os
import shutil
from pathlib import Path

from baselines import common, lit, mae, simclr, slip, supervised
from minclip import zoo as minclip_zoo
from minclip.io import data_dir

SAME = dict(steps=1500, batch_size=256, warmup=100, seed=0)
# name -> (train function, its run config, the flags that make it)
MODELS = {
    "simclr-tiny-shapeworld": (simclr.train, simclr.SimCLRRun, SAME),
    "mae-tiny-shapeworld": (mae.train, mae.MAERun, SAME),
    "supervised-tiny-shapeworld": (supervised.train, supervised.SupervisedRun, SAME),  # photo images only
    "slip-tiny-shapeworld": (slip.train, slip.SLIPRun, SAME),
    # LiT: the text tower's 1,500 steps, on a locked tower from this zoo (trained first if needed)
    "lit-simclr-tiny-shapeworld": (lit.train, lit.LiTRun, dict(SAME, tower="simclr-tiny-shapeworld")),
    "lit-mae-tiny-shapeworld": (lit.train, lit.LiTRun, dict(SAME, tower="mae-tiny-shapeworld")),
    "lit-supervised-tiny-shapeworld": (lit.train, lit.LiTRun, dict(SAME, tower="supervised-tiny-shapeworld")),
}


def names() -> list:
    """Every model this zoo can load: the baselines and minclip's CLIP and FLIP."""
    return sorted(MODELS) + sorted(minclip_zoo.MODELS)


def path(name: str) -> Path:
    return data_dir() / "zoo" / name


def load(name: str, device: str = "cpu", verbose: bool = True) -> common.Loaded:
    """(model, tokenizer, preprocess) for a zoo model, in eval mode; trains and caches it first if needed."""
    if name in minclip_zoo.MODELS:
        return common.Loaded(*minclip_zoo.load(name, device, verbose))
    if name not in MODELS:
        raise ValueError(f"unknown zoo model {name!r}; available: {names()}")
    target = path(name)
    if not (target / "checkpoint.pt").exists():
        train(name, target, verbose)
    return common.load(target, device)


def train(name: str, target: Path, verbose: bool = True) -> None:
    """Train a zoo entry into a temporary folder, then move it into place, so a crash never leaves half a model."""
    run, run_config, flags = MODELS[name]
    if "tower" in flags:  # LiT copies the locked tower into its own checkpoint; the tower must exist first
        load(flags["tower"], verbose=verbose)
        flags = dict(flags, tower=str(path(flags["tower"])))
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        print(f"baselines.zoo: training {name!r} once (cached in {target}) ...", flush=True)
    run(run_config(**flags, out=str(tmp), quiet=not verbose))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
