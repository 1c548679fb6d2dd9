"""Checkpoints: written atomically, read safely, and enough to resume a run bit for bit or to evaluate it.

A checkpoint file is self-contained: the model config and the tokenizer travel inside it, so
`minclip.load("run/checkpoint.pt")` works on its own. A run folder holds:

    config.json       the model and training configs, readable by people
    tokenizer.json    the tokenizer the model was trained with
    checkpoint.pt     model, optimiser, scheduler, step, RNG states (rewritten atomically every --save-every steps)
    metrics.jsonl     one JSON line per logged step
    zeroshot.json     the final zero-shot evaluation
"""
from pathlib import Path
from typing import NamedTuple

import torch

from .config import CLIPConfig
from .data.transforms import clip_preprocess
from .io import atomic_save
from .model import CLIP
from .tokenizer import CLIPTokenizer


class Loaded(NamedTuple):
    model: CLIP
    tokenizer: CLIPTokenizer
    preprocess: object  # uint8 images (B, 3, H, W) -> float (B, 3, H, W), as the model expects


def rng_state() -> dict:
    """Every RNG a training step draws from (data is seeded per step, so only torch's generators remain)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, model, tokenizer, step: int, optimizer=None, scheduler=None, train_config=None,
                    scaler=None) -> None:
    """Write everything needed to resume (or just evaluate) to `path`, atomically."""
    state = {
        "step": step,
        "model": model.state_dict(),
        "model_config": model.config.to_dict(),
        "tokenizer": tokenizer.to_json(),
        "rng": rng_state(),
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    if train_config is not None:
        state["train_config"] = train_config
    atomic_save(state, path)


def read_checkpoint(path) -> dict:
    """torch.load with weights_only=True: tensors and plain containers only, never pickled code."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `python -m minclip.train --out DIR`")
    return torch.load(path, map_location="cpu", weights_only=True)


def load(path, device="cpu") -> Loaded:
    """`model, tokenizer, preprocess = minclip.load(run_dir_or_checkpoint)`; the model is in eval mode."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    state = read_checkpoint(path)
    model = CLIP(CLIPConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    tokenizer = CLIPTokenizer.from_json(state["tokenizer"])
    return Loaded(model.to(device).eval(), tokenizer, clip_preprocess(model.config.vision.image_size))
