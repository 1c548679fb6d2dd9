"""Checks for notebooks/02_contrastive_loss.ipynb: the CLIP loss, its gradient, the aligned-pairs formula and the
online logsumexp behind the tiled loss.

Shapes: B batch (pairs), E the shared embedding dim.
"""
import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..loss import clip_loss
from .core import ExerciseError, call, exercise, expect_close, forbid, hint, passed, uses_minclip


def _pairs(seed: int, B: int, E: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(B, E, generator=g, dtype=dtype), dim=1)
    texts = F.normalize(images + 0.8 * torch.randn(B, E, generator=g, dtype=dtype), dim=1)  # correlated pairs
    return images, texts


@exercise
def check_clip_loss(fn) -> None:
    """fn(image_embeds (B, E), text_embeds (B, E), logit_scale) -> scalar tensor: CLIP's symmetric loss, written from
    the formula (the rule: no minclip inside)."""
    if found := uses_minclip(fn):
        raise ExerciseError(f"clip_loss uses minclip (through {', '.join(found)}), and the rule is no minclip inside: "
                            f"write the loss yourself from torch operations (the check compares it with minclip's)")
    # B = 2 comes last: there, "the sum over pairs" and "both directions added" both give twice the loss.
    for seed, (B, E, s) in enumerate([(5, 8, 14.3), (8, 16, 100.0), (6, 3, 0.5), (2, 4, 1.0)]):
        images, texts = _pairs(seed, B, E)
        want = clip_loss(images, texts, s)
        got = call(fn, images.clone(), texts.clone(), s, name="clip_loss")
        got = torch.as_tensor(got, dtype=torch.float64)
        if got.numel() != 1:
            raise ExerciseError(f"clip_loss should return one number (a scalar tensor), got shape {tuple(got.shape)}: "
                                f"average the per-pair cross-entropies")
        got = got.reshape(())
        logits = s * images @ texts.T  # (B, B)
        labels = torch.arange(B)
        rows, columns = F.cross_entropy(logits, labels), F.cross_entropy(logits.T, labels)
        for direction, value in {"image→text (rows)": rows, "text→image (columns)": columns}.items():
            if torch.allclose(got, value, atol=1e-6) and not torch.allclose(want, value, atol=1e-6):
                raise ExerciseError(f"clip_loss returned only the {direction} cross-entropy: CLIP's loss is symmetric "
                                    f"in images and texts, so it averages both directions")
        if torch.allclose(got, rows + columns, atol=1e-6):
            raise ExerciseError("clip_loss added the two directions: CLIP averages them (divide by 2)")
        if torch.allclose(got, want * B, atol=1e-6):
            raise ExerciseError(f"clip_loss is B = {B} times too large: take the mean over the B pairs, not the sum")
        if s != 1.0 and torch.allclose(got, clip_loss(images, texts, 1 / s), atol=1e-6):
            raise ExerciseError(f"clip_loss divided the similarities by logit_scale = {s}: it is the inverse "
                                f"temperature, 1/τ, so the logits are logit_scale times the cosines")
        expect_close(got, want, f"clip_loss with B={B}, logit_scale={s}",
                     hint("image i's true caption is text i, so each row of the similarity matrix is a B-way "
                          "classification with the answer on the diagonal, and so is each column.",
                          "The logits are the cosine similarities times logit_scale; the loss is the cross-entropy "
                          "of the rows and of the columns against their diagonal, averaged.",
                          "logits = logit_scale * image_embeds @ text_embeds.T; labels = arange(B); "
                          "(CE(logits, labels) + CE(logits.T, labels)) / 2"), atol=1e-6, rtol=1e-6)
    passed("clip_loss", "equal to minclip.clip_loss (and so to open_clip's ClipLoss)")


def _loss_of_logits(logits: torch.Tensor) -> torch.Tensor:
    labels = torch.arange(len(logits))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


AUTOGRAD = {"backward", "grad", "autograd", "enable_grad", "set_grad_enabled", "requires_grad_", "requires_grad",
            "func", "functorch", "vjp", "jvp", "jacrev", "jacfwd", "jacobian", "hessian"}  # as attributes or keywords


@exercise
def check_clip_logits_grad(fn) -> None:
    """fn(logits (B, B)) -> (B, B): ∂L/∂Z of L(Z) = (CE(Z, arange) + CE(Zᵀ, arange)) / 2, by hand (the rule: no
    autograd)."""
    forbid(fn, "clip_logits_grad", "the exercise is the gradient by hand, from the softmax, without autograd (the "
           "check compares yours with autograd's)", AUTOGRAD, ("torch.autograd", "torch.func", "torch._functorch",
                                                              "functorch"))
    for seed, B in enumerate([4, 7, 2]):  # not B = 2 first: there "forgot 1/B" and "forgot the 1/2" look the same
        g = torch.Generator().manual_seed(seed)
        logits = (5 * torch.randn(B, B, generator=g, dtype=torch.float64)).requires_grad_()
        (want,) = torch.autograd.grad(_loss_of_logits(logits), logits)
        Z = logits.detach()
        with torch.no_grad():
            got = call(fn, Z.clone(), name="clip_logits_grad")
        got = torch.as_tensor(got, dtype=torch.float64)
        eye = torch.eye(B, dtype=torch.float64)
        rows_only = (Z.softmax(dim=1) - eye) / B
        if got.shape == want.shape:
            if torch.allclose(got, 2 * want, atol=1e-8):
                raise ExerciseError("clip_logits_grad is twice the gradient: L averages its two directions, so "
                                    "each direction's gradient enters with a factor 1/2")
            if torch.allclose(got, B * want, atol=1e-8):
                raise ExerciseError(f"clip_logits_grad is B = {B} times the gradient: each cross-entropy is a mean "
                                    f"over the B rows (or columns), so every entry carries a factor 1/B")
            if torch.allclose(got, rows_only, atol=1e-8) or torch.allclose(got, rows_only / 2, atol=1e-8):
                raise ExerciseError("clip_logits_grad holds only the row (image→text) part: Z enters the column "
                                    "direction too, through the softmax of each column")
            columns_only = (Z.softmax(dim=0) - eye) / B
            if torch.allclose(got, columns_only, atol=1e-8) or torch.allclose(got, columns_only / 2, atol=1e-8):
                raise ExerciseError("clip_logits_grad holds only the column (text→image) part: Z enters the row "
                                    "direction too, through the softmax of each row")
            if torch.allclose(got, -want, atol=1e-8):
                raise ExerciseError("clip_logits_grad has the wrong sign: the loss falls when the correct logit rises, "
                                    "so the gradient is negative on the diagonal (probability − 1)")
        expect_close(got, want, f"clip_logits_grad for B={B}",
                     hint("the gradient of a cross-entropy with respect to its logits is the predicted "
                          "probabilities minus the one-hot target.",
                          "Here each direction is a mean over B softmaxes: rows for image→text, columns for "
                          "text→image, and L is the average of the two.",
                          "(softmax(Z, dim=1) − I) / B for the rows, (softmax(Z, dim=0) − I) / B for the "
                          "columns; G is their average"), atol=1e-8, rtol=1e-6)
    passed("clip_logits_grad", "matches autograd in float64")


@exercise
def check_aligned_loss(fn) -> None:
    """fn(B, logit_scale) -> float: your predicted loss for B perfectly aligned pairs whose embeddings are
    orthonormal (image i = text i = the i-th basis vector). The check measures it with clip_loss."""
    for B, s in [(2, 1.0), (4, 0.01), (8, 1.0), (16, 14.3), (32, 100.0), (128, 5.0)]:
        basis = torch.eye(B, dtype=torch.float64)
        want = clip_loss(basis, basis, s).item()
        got = call(fn, B, s, name="aligned_loss")
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise ExerciseError(f"aligned_loss should return a number, got {type(got).__name__}") from None
        if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
            raise ExerciseError(f"aligned_loss({B}, {s}) = {got:.6g}, but clip_loss measures {want:.6g}. " + hint(
                "with orthonormal embeddings, the cosine of a true pair is 1 and of every false pair 0.",
                "So each row of the logits holds s on the diagonal and 0 at the B − 1 other places; the loss is "
                "−log of the diagonal's softmax probability, the same in both directions.",
                "L = −log(e^s / (e^s + B − 1)) = log(1 + (B − 1) e^(−s))"))
    passed("aligned_loss", "your formula predicts clip_loss for every B and temperature")


class _SizeWatch(TorchFunctionMode):
    """Watches every torch operation run inside it, and records those that make a tensor larger than `limit`
    elements: merging one chunk at a time (with a running value) never needs one, joining the chunks does."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit, self.big = limit, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(o, torch.Tensor) and o.numel() > self.limit:
                self.big.append(getattr(func, "__name__", str(func)))
        return out


@exercise
def check_online_logsumexp(fn) -> None:
    """fn(chunks: list of 1-d tensors) -> scalar: log Σ exp over all their entries, merging one chunk at a time (the
    rule: no tensor larger than one chunk and the running value) and safe for large values (a naive exp overflows
    past ~88 in float32)."""
    for seed, (sizes, scale) in enumerate([([3, 4, 1], 1.0), ([5], 10.0), ([2, 2, 2, 2], 100.0), ([1, 6], 500.0)]):
        g = torch.Generator().manual_seed(seed)
        chunks = [scale * torch.randn(n, generator=g) for n in sizes]
        want = torch.logsumexp(torch.cat(chunks), dim=0)
        with _SizeWatch(limit=max(sizes) + 1) as watch:  # one chunk, plus the running value
            got = call(fn, [c.clone() for c in chunks], name="online_logsumexp")
        if watch.big:
            raise ExerciseError(f"online_logsumexp joined the chunks ({watch.big[0]} made a tensor larger than one "
                                f"chunk and the running value): the tiled loss never holds a whole row, so merge one "
                                f"chunk at a time into a running value")
        got = torch.as_tensor(got, dtype=torch.float32)
        if got.numel() == 1 and not torch.isfinite(got).all():
            raise ExerciseError(f"online_logsumexp overflowed to {got.item()} for values up to "
                                f"{max(c.abs().max().item() for c in chunks):.0f}: exp of a large number is inf in "
                                f"float32; shift by the largest value before exp (log Σ exp x = m + log Σ exp(x − m)), "
                                f"or merge with torch.logaddexp")
        expect_close(got.reshape(()), want, f"online_logsumexp over chunks of sizes {sizes}",
                     hint("a log-sum-exp of the whole row is a log-sum-exp of the chunks' log-sum-exps.",
                          "Keep one running value, start it at −inf (the log of an empty sum), and fold each "
                          "chunk's log-sum-exp into it.",
                          "r = −inf; for each chunk: r = torch.logaddexp(r, chunk.logsumexp(0))"),
                     atol=1e-4, rtol=1e-5)
    passed("online_logsumexp", "the tiled loss merges its row and column logsumexps this way")
