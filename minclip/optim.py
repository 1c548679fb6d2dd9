"""CLIP's optimiser recipe (Radford et al. 2021 §2.5, Tables 18-20): AdamW, decoupled weight decay on the weight
matrices only, linear warm-up, then cosine decay."""
import math

import torch


def param_groups(model: torch.nn.Module, weight_decay: float) -> list:
    """Two groups: matrices and conv kernels decay; gains, biases, embeddings and logit_scale do not.

    Decay pulls a parameter toward 0. That is a useful prior for weight matrices, but it would shrink LayerNorm gains,
    biases, the temperature and the learned embeddings toward meaningless values (§2.5: "not applied to gains or
    biases"; embeddings as in open_clip and nanoGPT).
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exempt = p.ndim < 2 or "embedding" in name or name.endswith("logit_scale")
        (no_decay if exempt else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw(model: torch.nn.Module, lr: float, weight_decay: float = 0.2, betas=(0.9, 0.98), eps: float = 1e-6):
    """AdamW with the paper's settings for ViTs (β2 0.98, eps 1e-6; ResNets used 0.999 / 1e-8)."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)


def warmup_cosine(warmup: int, total: int, final: float = 0.0):
    """The learning-rate multiplier at each step: 0 -> 1 linearly over `warmup` steps, then a cosine down to `final`.

    Returned as a function of the step so that torch.optim.lr_scheduler.LambdaLR can use it (and checkpoint it).
    """
    if total < 1 or warmup < 0:
        raise ValueError(f"need total >= 1 and warmup >= 0 steps, got total={total}, warmup={warmup}")

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return multiplier
