"""Interop with OpenAI / open_clip checkpoints: the released weights, loaded into minclip's readable model.

minclip's image tower uses OpenAI's parameter names as they are (`visual.*`). Its text tower is one submodule,
`text`, where OpenAI keeps the text parameters at the top level; that prefix is the whole conversion.

    open_clip / OpenAI                    minclip
    visual.conv1.weight                   visual.conv1.weight
    token_embedding.weight                text.token_embedding.weight
    transformer.resblocks.0.attn.*        text.transformer.resblocks.0.attn.*
    logit_scale                           logit_scale

Nothing here downloads. With internet, get a checkpoint through open_clip
(`open_clip.create_model("ViT-B-32-quickgelu", pretrained="openai").state_dict()`) or pass a file path.
"""
import zipfile
from pathlib import Path
from typing import Union

import torch

from .config import CLIPConfig
from .model import CLIP

TEXT_KEYS = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")
# Metadata that OpenAI's original checkpoints carry beside the weights.
OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


def is_torchscript(path) -> bool:
    """A TorchScript archive (torch.jit.save) is a zip with a constants.pkl beside its data.pkl; torch.save's has none."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def torchscript_refused(path) -> ValueError:
    return ValueError(
        f"{path} is a TorchScript archive, and TorchScript archives can run code on load (their __setstate__ "
        "methods), so minclip does not open them by default. OpenAI's original .pt files are TorchScript: if you "
        "trust the file, pass allow_torchscript=True (from_open_clip(path, preset, allow_torchscript=True)), or "
        "convert it once with open_clip: torch.save(open_clip.load_openai_model(PATH, device='cpu').state_dict(), "
        "'weights.pt')")


def load_state_dict(path, allow_torchscript: bool = False) -> dict:
    """A state dict from a file, read with weights_only=True: tensors and plain containers only, no pickled code.

    TorchScript archives (OpenAI's original .pt files) are refused: torch.jit.load runs the code inside them, so
    it is only safe on a file you trust. allow_torchscript=True says you do, and reads it with torch.jit.load.
    """
    if is_torchscript(path):  # checked first: before torch 2.6, torch.load(weights_only=True) ran TorchScript too
        if not allow_torchscript:
            raise torchscript_refused(path)
        obj = torch.jit.load(path, map_location="cpu").state_dict()  # runs the archive's code: trusted files only
    else:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj:  # an open_clip training checkpoint
        obj = obj["state_dict"]
    return {k.removeprefix("module."): v for k, v in obj.items()}  # written by DDP


def mismatch(expected: dict, got: dict) -> str:
    """What keeps state dict `got` from loading strictly where `expected` is the model's own: "" if nothing.

    Missing keys, unexpected keys and wrong shapes, the first 10 of each."""
    missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    shapes = [f"{k} {tuple(got[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in got and got[k].shape != v.shape]
    found = (("missing", missing), ("unexpected", unexpected), ("wrong shape (file vs model)", shapes))
    return ", ".join(f"{what} {keys[:10]}{' ...' if len(keys) > 10 else ''}" for what, keys in found if keys)


def describe(config: CLIPConfig) -> str:
    """A config's name in messages: "preset 'tiny'" if it is a preset's (patch dropout aside: a training option), else
    its main sizes."""
    for name in CLIPConfig.presets():
        preset = CLIPConfig.preset(name)
        preset.vision.patch_dropout = config.vision.patch_dropout
        if preset == config:
            return f"preset {name!r}"
    v, t = config.vision, config.text
    return f"a custom config ({v.kind} width {v.width} at {v.image_size}px, text width {t.width})"


def from_open_clip(state_dict: Union[dict, str, Path], preset: Union[str, CLIPConfig],
                   allow_torchscript: bool = False) -> CLIP:
    """An open_clip/OpenAI state dict (or a path to one) -> a minclip CLIP with the same weights.

    preset: "vit-b-32", "vit-b-16", "rn50" (or any CLIPConfig with the same architecture).
    Missing or unexpected keys, or weights of the wrong shape, raise a ValueError that lists them.
    allow_torchscript: a path to a TorchScript archive (OpenAI's original .pt) is read only if True (load_state_dict).
    """
    if isinstance(state_dict, (str, Path)):
        state_dict = load_state_dict(state_dict, allow_torchscript)
    config = CLIPConfig.preset(preset) if isinstance(preset, str) else preset
    converted = {}
    for key, value in state_dict.items():
        if key in OPENAI_EXTRA_KEYS:
            continue
        converted["text." + key if key.startswith(TEXT_KEYS) else key] = value
    model = CLIP(config)
    problem = mismatch(model.state_dict(), converted)
    if problem:
        raise ValueError(f"checkpoint does not match {describe(config)}: {problem}; "
                         f"is it the right preset (vit-b-32, vit-b-16, rn50)?")
    model.load_state_dict(converted)
    return model


def to_open_clip(model: CLIP) -> dict:
    """minclip CLIP -> a state dict with open_clip's (= OpenAI's) key names, loadable by
    `open_clip.create_model("ViT-B-32-quickgelu").load_state_dict(...)`."""
    return {k.removeprefix("text."): v for k, v in model.state_dict().items()}
