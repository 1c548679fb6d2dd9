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
from pathlib import Path
from typing import Union

import torch

from .config import CLIPConfig
from .model import CLIP

TEXT_KEYS = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")
# Metadata that OpenAI's original checkpoints carry beside the weights.
OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


def load_state_dict(path) -> dict:
    """Read a checkpoint file safely (weights_only=True: tensors only, no pickled code).

    OpenAI's original .pt files are TorchScript archives, which only torch.jit.load reads; open_clip does the same.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except RuntimeError as error:
        if "TorchScript" not in str(error) and "constants.pkl" not in str(error):
            raise
        obj = torch.jit.load(path, map_location="cpu").state_dict()
    if isinstance(obj, dict) and "state_dict" in obj:  # an open_clip training checkpoint
        obj = obj["state_dict"]
    return {k.removeprefix("module."): v for k, v in obj.items()}  # written by DDP


def from_open_clip(state_dict: Union[dict, str, Path], preset: Union[str, CLIPConfig]) -> CLIP:
    """An open_clip/OpenAI state dict (or a path to one) -> a minclip CLIP with the same weights.

    preset: "vit-b-32", "vit-b-16", "rn50" (or any CLIPConfig with the same architecture).
    Missing or unexpected keys raise a ValueError that lists them.
    """
    if isinstance(state_dict, (str, Path)):
        state_dict = load_state_dict(state_dict)
    config = CLIPConfig.preset(preset) if isinstance(preset, str) else preset
    converted = {}
    for key, value in state_dict.items():
        if key in OPENAI_EXTRA_KEYS:
            continue
        converted["text." + key if key.startswith(TEXT_KEYS) else key] = value
    model = CLIP(config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(converted)), sorted(set(converted) - expected)
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match preset {getattr(preset, 'name', preset)!r}: "
                         f"missing {missing[:10]}{' ...' if len(missing) > 10 else ''}, "
                         f"unexpected {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}; "
                         f"is it the right preset (vit-b-32, vit-b-16, rn50)?")
    model.load_state_dict(converted)
    return model


def to_open_clip(model: CLIP) -> dict:
    """minclip CLIP -> a state dict with open_clip's (= OpenAI's) key names, loadable by
    `open_clip.create_model("ViT-B-32-quickgelu").load_state_dict(...)`."""
    return {k.removeprefix("text."): v for k, v in model.state_dict().items()}
