"""Checks for notebooks/03_pretraining.ipynb: the warm-up + cosine schedule, the weight-decay split, GradCache.

Shapes: B batch, L text length, E the shared embedding dim.
"""
import math

import torch

from ..config import CLIPConfig
from ..loss import clip_loss
from ..model import CLIP
from ..optim import param_groups, warmup_cosine
from ..train import train_step
from .core import ExerciseError, call, exercise, expect_close, passed


@exercise
def check_warmup_cosine(fn) -> None:
    """fn(step, warmup, total) -> float: the learning-rate multiplier, as minclip.optim.warmup_cosine(warmup, total)."""
    for warmup, total in [(10, 100), (0, 50), (3, 7), (100, 1500)]:
        reference = warmup_cosine(warmup, total)
        for step in sorted({0, 1, warmup - 1, warmup, warmup + 1, (warmup + total) // 2, total - 1, total,
                            total + 5} - {-1}):
            want = reference(step)
            got = call(fn, step, warmup, total, name="warmup_cosine")
            try:
                got = float(got)
            except (TypeError, ValueError):
                raise ExerciseError(f"warmup_cosine should return a number, got {type(got).__name__}") from None
            if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
                phase = "warm-up" if step < warmup else ("cosine" if step <= total else "after the end")
                hint = {"warm-up": "during warm-up the multiplier is (step + 1) / warmup, so step 0 already "
                                   "trains (a multiplier of 0 would waste a step)",
                        "cosine": "after warm-up: progress p = (step − warmup) / (total − warmup), multiplier "
                                  "0.5·(1 + cos(π·p))",
                        "after the end": "past `total` the multiplier stays at its final value 0 (clip p at 1)"}
                raise ExerciseError(f"warmup_cosine(step={step}, warmup={warmup}, total={total}) = {got:.6g}, "
                                    f"expected {want:.6g} ({phase}): {hint[phase]}")
    passed("warmup_cosine", "the same schedule as minclip.optim.warmup_cosine")


@exercise
def check_param_groups(fn) -> None:
    """fn(model) -> list of the names of the parameters that get weight decay (as minclip.optim.param_groups)."""
    resnet = dict(embed_dim=16, tokenizer="shapeworld",
                  vision=dict(kind="resnet", image_size=32, width=8, layers=(1, 1, 1, 1), heads=2),
                  text=dict(vocab_size=64, context_length=8, width=16, layers=1, heads=2))
    with torch.random.fork_rng(devices=[]):  # only the names matter; leave the caller's global RNG as it was
        models = {"tiny": CLIP(CLIPConfig.preset("tiny")), "ResNet": CLIP(CLIPConfig.from_dict(resnet))}
    for kind, model in models.items():
        names = {id(p): n for n, p in model.named_parameters()}
        want = {names[id(p)] for p in param_groups(model, 0.2)[0]["params"]}
        got = call(fn, model, name="decayed_parameter_names")
        if not isinstance(got, (list, tuple, set)) or not all(isinstance(n, str) for n in got):
            raise ExerciseError("return a list of parameter names (strings from model.named_parameters())")
        got = set(got)
        wrong, missing = sorted(got - want), sorted(want - got)
        if wrong or missing:
            raise ExerciseError(
                f"on the {kind} CLIP, {len(wrong)} parameters should NOT decay but you decay them "
                f"(e.g. {wrong[:3]}), and {len(missing)} should decay but you leave out (e.g. {missing[:3]}). Rule: "
                f"decay matrices and conv kernels (p.ndim >= 2); exempt gains, biases, logit_scale (ndim < 2) and "
                f"embeddings (names containing 'embedding')")
    passed("decayed_parameter_names", "the same split as minclip.optim.param_groups")


def _micro_clip(seed: int) -> CLIP:
    with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's global RNG as it was
        torch.manual_seed(seed)
        return CLIP(CLIPConfig.from_dict(dict(embed_dim=16, tokenizer="shapeworld",
                                              vision=dict(image_size=16, patch_size=8, width=32, layers=1, heads=2),
                                              text=dict(vocab_size=64, context_length=8, width=32, layers=1,
                                                        heads=2))))


@exercise
def check_gradcache_step(fn) -> None:
    """fn(model, images (B, 3, H, W), tokens (B, L), chunks) -> loss: one GradCache step that leaves in .grad
    exactly the full-batch gradient of clip_loss, while encoding at most B / chunks examples with a graph."""
    for seed, (B, chunks) in enumerate([(8, 2), (12, 4)]):
        g = torch.Generator().manual_seed(seed)
        images = torch.randn(B, 3, 16, 16, generator=g)
        tokens = torch.randint(1, 63, (B, 8), generator=g)
        tokens[torch.arange(B), torch.randint(2, 8, (B,), generator=g)] = 63  # EOT, the largest id, ends each caption
        reference = _micro_clip(seed)
        want_loss = train_step(reference, images, tokens, clip_loss)
        model = _micro_clip(seed)
        seen = []  # (batch size, grad enabled) of every encoder call
        for tower in ("encode_image", "encode_text"):
            encode = getattr(model, tower)
            setattr(model, tower, lambda x, *a, _encode=encode, **k: seen.append((len(x), torch.is_grad_enabled()))
                    or _encode(x, *a, **k))
        got_loss = call(fn, model, images, tokens, chunks, name="gradcache_step")
        big = [n for n, grad in seen if grad and n > B // chunks]
        if big:
            raise ExerciseError(f"you encoded {big[0]} examples at once with autograd on; GradCache's point is to hold "
                                f"one chunk's graph at a time ({B // chunks} here): embed under torch.no_grad() "
                                f"first, then re-encode chunk by chunk")
        expect_close(torch.as_tensor(got_loss).detach().reshape(()), want_loss, "the returned loss",
                     "return the loss of the whole batch, computed on all the cached embeddings at once")
        for (name, p), q in zip(model.named_parameters(), reference.parameters()):
            if p.grad is None and name == "logit_scale":
                raise ExerciseError("logit_scale.grad is empty: the temperature is learned, so the loss must use "
                                    "model.logit_scale.exp() as a tensor in the graph (not .item(), .detach() or a "
                                    "number); then loss.backward() gives its gradient, which GradCache needs no "
                                    "second pass for")
            if p.grad is None:
                raise ExerciseError(f"{name}.grad is empty: push the cached embedding gradients through each "
                                    f"re-encoded chunk with torch.autograd.backward([i, t], [grad_i, grad_t])")
            expect_close(p.grad, q.grad, f"the gradient of {name}",
                         "it should equal the full-batch gradient; check that each chunk gets its own slice of the "
                         "embedding gradients, and that logit_scale's gradient comes from the loss", atol=1e-5)
    passed("gradcache_step", "full-batch gradients, one chunk's activations at a time")
