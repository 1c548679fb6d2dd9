"""Checkpoints: written atomically, read safely, and enough to resume a run bit for bit or to evaluate it.

A checkpoint file is self-contained: the method that built the model, the model config and (for a model that reads
text) the tokenizer travel inside it, so `minclip.load("run/checkpoint.pt")` works on its own. A run folder holds
(minclip/loop.py writes it):

    config.json       the method, the model and training configs, readable by people
    tokenizer.json    the tokenizer the model was trained with (models that read text)
    checkpoint.pt     model, optimiser, scheduler, step, RNG states (rewritten atomically every --save-every steps)
    metrics.jsonl     one JSON line per logged step
    summary.json      written last: steps, training seconds, final loss and metrics (a finished run has it)
    zeroshot.json     minclip.train on ShapeWorld: the final zero-shot evaluation
"""
import importlib
import pickle
import re
import struct
from pathlib import Path
from typing import NamedTuple, Optional

import torch
import torch.nn as nn

from .config import CLIPConfig
from .data.transforms import clip_preprocess
from .io import atomic_save
from .model import CLIP
from .pretrained import describe, is_torchscript, mismatch, torchscript_refused
from .tokenizer import CLIPTokenizer

# What torch.load raises for bytes that are not a whole torch.save file: a cut or damaged zip archive (RuntimeError),
# or bytes that its pickle reader takes for opcodes (the rest).
UNREADABLE = (pickle.UnpicklingError, EOFError, RuntimeError, KeyError, IndexError, ValueError, struct.error)
FIX = "pass a run folder or its checkpoint.pt, as written by `python -m minclip.train --out DIR`"
# The packages whose modules a checkpoint may name as its builder. Loading imports that module, so a file must not
# be able to name any module at all (importing one runs its top-level code). Append yours to load your own models.
BUILDER_PACKAGES = ["minclip", "baselines", "reproduce"]  # reproduce: WiSE-FT's fine-tuned classifier


class Loaded(NamedTuple):
    model: nn.Module  # a minclip.CLIP, or what a run's builder builds; eval mode, with `.visual` and `.config`
    tokenizer: Optional[CLIPTokenizer]  # None for the image-only models (SimCLR, MAE, supervised)
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


def nonfinite_weight(model) -> Optional[str]:
    """The name of the first weight that holds NaN or inf, or None if all are finite."""
    return next((k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()),
                None)


def save_checkpoint(path, model, tokenizer, step: int, optimizer=None, scheduler=None, train_config=None,
                    scaler=None, extra=None, method: str = "clip", model_config: Optional[dict] = None,
                    builder: str = "") -> None:
    """Write everything needed to resume (or just evaluate) to `path`, atomically; `extra`: any small dict to keep.

    method: the training method's name ("clip", or a baseline's); builder: the module whose build(model_config)
    rebuilds the model ("": minclip.CLIP); model_config: default model.config.to_dict(). tokenizer: None for an
    image-only model.
    Weights that are not all finite raise a FloatingPointError and nothing is written: a diverged step never
    overwrites the last good checkpoint.
    """
    weights = model.state_dict()
    bad = nonfinite_weight(model)
    if bad is not None:
        raise FloatingPointError(f"model weight {bad} holds NaN or inf; {path} was not written, so the last good "
                                 "checkpoint (if any) is kept")
    state = {
        "method": method,
        "builder": builder,
        "step": step,
        "model": weights,
        "model_config": model.config.to_dict() if model_config is None else model_config,
        "rng": rng_state(),
    }
    if tokenizer is not None:  # with it, the checkpoint is one minclip.load opens on its own
        state["tokenizer"] = tokenizer.to_json()
    optional = {"optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    state.update({k: v.state_dict() for k, v in optional.items() if v is not None})
    if train_config is not None:
        state["train_config"] = train_config
    if extra is not None:
        state["extra"] = extra
    atomic_save(state, path)


def read_checkpoint(path, needs=("model", "model_config")) -> dict:
    """A checkpoint file or run folder -> its dict, by torch.load with weights_only=True: tensors and plain containers
    only, never pickled code or TorchScript.

    A file that is not a checkpoint with the entries `needs` raises a ValueError that says what the file is instead.
    """
    path = checkpoint_file(path)
    if is_torchscript(path):  # before torch 2.6, torch.load(weights_only=True) ran TorchScript archives' code
        raise torchscript_refused(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except UNREADABLE as error:
        raise ValueError(unreadable(path, error)) from None
    weights = state.get("state_dict", state) if isinstance(state, dict) else None  # open_clip keeps "state_dict"
    if weights and all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ValueError(f"{path} is a bare state dict (model.state_dict() saved alone), not a minclip checkpoint: "
                         "it has no model config or tokenizer. Load it into the model it came from, "
                         "`CLIP(config).load_state_dict(torch.load(path, weights_only=True))`, or, for open_clip or "
                         "OpenAI weights, use minclip.pretrained.from_open_clip(path, preset)")
    missing = [k for k in needs if k not in state] if isinstance(state, dict) else list(needs)
    if missing:
        raise ValueError(f"{path} is not a minclip checkpoint: it holds a {type(state).__name__} without the entries "
                         f"{missing}; {FIX}")
    return state


def checkpoint_file(path) -> Path:
    """A run folder -> its checkpoint.pt; a file -> itself. Neither there: a FileNotFoundError that says why."""
    path = Path(path)
    if path.is_dir():
        if not (path / "checkpoint.pt").exists():
            raise FileNotFoundError(f"run folder {path} has no checkpoint.pt: its run has not saved one yet (it saves "
                                    f"every --save-every steps and at the end), or it is not a run folder; {FIX}")
        return path / "checkpoint.pt"
    if not path.exists():
        raise FileNotFoundError(f"no run or checkpoint at {path}; train one with `python -m minclip.train --out DIR`")
    return path


def unreadable(path: Path, error: Exception) -> str:
    """Why torch.load could not read `path`, in words, with the fix."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        return f"{path} is empty (0 bytes): a save or copy that did not finish? {FIX}"
    if head.startswith(b"PK"):  # torch.save writes a zip archive
        return (f"{path} is a truncated or damaged checkpoint: its zip archive cannot be read (a save or copy that "
                "did not finish?); copy it again, or use an earlier checkpoint")
    if "Unsupported global" in str(error):  # a real pickle, of objects other than tensors and containers
        return (f"{path} holds pickled Python objects other than tensors and plain containers, which minclip does "
                "not unpickle (unpickling can run code); save tensors, dicts, lists, numbers and strings only")
    return f"{path} is not a file written by torch.save (it starts with {head!r}); {FIX}"


def builder_of(state: dict) -> str:
    """The module that rebuilds a checkpoint's model: its "builder", or for runs saved before checkpoints named one,
    baselines.<method>; "" for a minclip.CLIP."""
    method = state.get("method", "clip")  # checkpoints written before runs named their method are CLIP's
    builder = state.get("builder") or ("" if method == "clip" else f"baselines.{method}")
    if builder and not (re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", builder)
                        and builder.split(".")[0] in BUILDER_PACKAGES):
        raise ValueError(f"the checkpoint names {builder!r} as the module that builds its model, which is not a "
                         f"module of {BUILDER_PACKAGES}; minclip imports builders from those packages only. For "
                         "your own model, append its package to minclip.checkpoint.BUILDER_PACKAGES first")
    return builder


def build_model(state: dict, path) -> nn.Module:
    """The model a checkpoint describes, with its weights: minclip.CLIP, or `builder.build(model_config)`."""
    builder = builder_of(state)
    if builder:
        try:
            module = importlib.import_module(builder)
        except ImportError as error:
            raise ValueError(f"{path} was trained by {builder}, which cannot be imported here ({error})") from None
        model = module.build(state["model_config"])
    else:
        model = CLIP(CLIPConfig.from_dict(state["model_config"]))
    problem = mismatch(model.state_dict(), state["model"])
    if problem:
        raise ValueError(f"{path} says its model is {describe(model.config)}, but its weights do not fit that "
                         f"model: {problem}; the file was edited or put together from two runs: use one its run wrote")
    model.load_state_dict(state["model"])
    return model


def load(path, device="cpu") -> Loaded:
    """`model, tokenizer, preprocess = minclip.load(run_dir_or_checkpoint)`; the model is in eval mode.

    Any run folder: minclip.train's (a CLIP), or any objective's (SimCLR, captioning, ...), whose model its builder
    module rebuilds. tokenizer is None for a model that reads no text."""
    path = checkpoint_file(path)
    state = read_checkpoint(path)
    if not builder_of(state) and "tokenizer" not in state:
        raise ValueError(f"{path} is not a minclip checkpoint: it holds a dict without the entries ['tokenizer']; "
                         f"{FIX}")
    model = build_model(state, path)
    tokenizer = None
    if "tokenizer" in state:
        tokenizer = CLIPTokenizer.from_json(state["tokenizer"], source=f"the tokenizer in {path}")
    return Loaded(model.to(device).eval(), tokenizer, clip_preprocess(model.config.vision.image_size))
