"""minclip: a teaching codebase for CLIP (Radford et al. 2021).

    model, tokenizer, preprocess = minclip.load("runs/demo")
    out = model(preprocess(images), tokenizer(captions, context_length=model.context_length))
    loss = minclip.clip_loss(*out)
"""
from .config import CLIPConfig, TextConfig, VisionConfig
from .model import CLIP, CLIPOutput
from .tokenizer import CLIPTokenizer
from .loss import clip_loss
from .flops import flops


def load(path, device="cpu"):
    """`model, tokenizer, preprocess = minclip.load(run_dir_or_checkpoint)` (see minclip/checkpoint.py)."""
    from .checkpoint import load as _load  # imports the data package, so only when asked
    return _load(path, device)
