"""Small pretrained models, trained on demand, deterministically, and cached: `minclip.zoo.load("clip-tiny-shapeworld")`.

Nothing is downloaded. The first call trains the model (minutes on a laptop CPU) into `data/zoo/NAME/`; every later
call, from any notebook, loads it in a second. The recipe is fixed by the entry below, so the same machine always
trains the same weights (another machine may differ in the last bits: float sums depend on the CPU's kernels).
"""
import json
import os
import shutil
from pathlib import Path

from .checkpoint import Loaded, load as load_run
from .io import data_dir

# name -> the `python -m minclip.train` flags that make it (as TrainConfig fields)
MODELS = {
    # the main teaching model: the tiny preset on ShapeWorld's 7-domain mix (so that robustness has something to
    # show), about 3 CPU-minutes
    "clip-tiny-shapeworld": dict(preset="tiny", steps=1500, batch_size=256, warmup=100, seed=0, domains="mix",
                                 objects="1,3"),
    # the same recipe and budget with FLIP's patch dropout: half the image tokens, so cheaper steps
    "flip-tiny-shapeworld": dict(preset="tiny", steps=1500, batch_size=256, warmup=100, seed=0, domains="mix",
                                 objects="1,3", patch_dropout=0.5),
}


def path(name: str) -> Path:
    return data_dir() / "zoo" / name


def load(name: str, device: str = "cpu", verbose: bool = True) -> Loaded:
    """(model, tokenizer, preprocess) for a zoo model; trains and caches it first if needed."""
    if name not in MODELS:
        raise ValueError(f"unknown zoo model {name!r}; available: {sorted(MODELS)}")
    target = path(name)
    recipe = target / "recipe.json"
    # retrain if the recipe changed since the model was cached (a stale cache must never pass as the new model)
    if not recipe.exists() or json.loads(recipe.read_text()) != MODELS[name]:
        train(name, target, verbose)
    return load_run(target, device)


def train(name: str, target: Path, verbose: bool = True) -> None:
    """Train a zoo entry into a temporary folder, then move it into place, so a crash never leaves half a model."""
    from .train import TrainConfig, train as run

    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        print(f"minclip.zoo: training {name!r} once (cached in {target}) ...", flush=True)
    run(TrainConfig(**MODELS[name], out=str(tmp), eval_every=10 ** 9, quiet=not verbose))
    (tmp / "recipe.json").write_text(json.dumps(MODELS[name]))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
