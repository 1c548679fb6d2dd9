"""Contrastive losses: CLIP's symmetric InfoNCE (plain, tiled and distributed), NegCLIP's (CLIP's with hard-negative
captions), SigLIP's sigmoid loss (plain and distributed), SimCLR's NT-Xent.

Shapes: B batch, E shared embedding dim. Every loss takes two (B, E) tensors whose row i is a matching pair and
returns a scalar. The CLIP losses expect L2-normalised embeddings and an already exponentiated logit_scale, as
`CLIP.forward` returns them; they do not normalise (see `clip_loss`).
"""
from typing import NamedTuple, Union

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

Scalar = Union[Tensor, float]


def widen(x: Tensor) -> Tensor:
    """A loss's inputs in float32 at least: bf16/fp16 activations (autocast) are widened, float64 stays float64."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _check_pair(a: Tensor, b: Tensor, names=("image_embeds", "text_embeds"), min_batch: int = 2) -> None:
    """Shape checks at the boundary. They read only metadata, so they cost nothing and never sync a GPU."""
    for x, name in zip((a, b), names):
        if not isinstance(x, Tensor) or x.ndim != 2:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a (B, E) tensor, got {shape}; stack the batch into one 2-d tensor")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{names[0]} has {a.shape[0]} rows but {names[1]} has {b.shape[0]}; row i of each must "
                         f"be a matching pair, so pass the same number of both")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names[0]} has E={a.shape[1]} but {names[1]} has E={b.shape[1]}; project both towers "
                         f"into the same embedding space (the model's embed_dim) first")
    if a.shape[0] < min_batch:
        raise ValueError(f"a batch of {a.shape[0]} has no negatives, so the loss is 0 with zero gradient; "
                         f"use a batch of at least 2 pairs")
    if a.dtype != b.dtype:
        raise ValueError(f"{names[0]} is {a.dtype} but {names[1]} is {b.dtype}; cast both to one dtype")


def _scalar(x: Scalar, name: str, like: Tensor) -> Tensor:
    x = torch.as_tensor(x, device=like.device)
    if x.numel() != 1:
        raise ValueError(f"{name} must be a scalar, got shape {tuple(x.shape)}; pass the model's single learnable "
                         f"value (e.g. model.logit_scale.exp()), not one per pair")
    return x.reshape(())


def _check_positive(x: Scalar, name: str, fix: str, nan_ok: bool = False) -> None:
    """Refuse x <= 0 (and NaN, unless nan_ok), for a scale or temperature that divides or multiplies the logits."""
    if isinstance(x, Tensor) and x.device.type != "cpu":
        # A Python `if` on an accelerator tensor waits for every queued kernel: a device sync in every training
        # step. _assert_async queues the comparison instead; a failure surfaces at a later sync (and, on CUDA,
        # ends the process's CUDA context, acceptable for what is always a bug in the caller).
        torch._assert_async((x > 0) | x.isnan() if nan_ok else x > 0, f"{name} must be > 0; {fix}")
    elif x <= 0 or (x != x and not nan_ok):  # x != x: NaN
        raise ValueError(f"{name} must be > 0, got {float(x.detach() if isinstance(x, Tensor) else x)}; {fix}")


def _logit_scale(logit_scale: Scalar, like: Tensor) -> Tensor:
    """The exponentiated scale s = exp(t) as a () tensor on like's device, refused where it cannot be one."""
    if isinstance(logit_scale, torch.nn.Parameter):  # the model's learnable t = log s itself, not exp(t)
        raise TypeError("logit_scale is an nn.Parameter, the model's log-scale t; the losses multiply the logits "
                        "by s = exp(t), so pass model.logit_scale.exp() (or CLIPOutput.logit_scale, clamped to 100)")
    s = _scalar(logit_scale, "logit_scale", like)
    # NaN passes: a NaN scale is a diverged model, not a wrong argument; the loss comes out NaN and the trainer,
    # which checks every loss, names the cause (the learning rate) and the last good checkpoint
    _check_positive(s, "logit_scale", "it is exp(t) = 1/τ, always positive: pass the exponentiated scale, "
                    "model.logit_scale.exp(), or CLIPOutput.logit_scale", nan_ok=True)
    return s


def clip_loss(image_embeds: Tensor, text_embeds: Tensor, logit_scale: Scalar) -> Tensor:
    """CLIP's symmetric cross-entropy, line for line the pseudocode of Fig. 3 (CLIP §2.3).

    image_embeds, text_embeds: (B, E), L2-normalised, row i of each a matching pair. logit_scale: () the
    exponentiated learnable temperature, exp(t) = 1/τ. Returns a scalar.

    Z = s·I·Tᵀ holds the scaled cosine similarity of every image with every text. Row i of Z asks "which of the B
    texts belongs to image i?", column j asks "which image belongs to text j?"; the answer is always the diagonal,
    so both are B-way classifications with labels arange(B):

        L = ½·(1/B)·Σ_i [logsumexp_j Z_ij − Z_ii]  +  ½·(1/B)·Σ_j [logsumexp_i Z_ij − Z_jj]
            (image → text, rows)                       (text → image, columns)

    The derivative of logsumexp is softmax, and Z_ii enters with −1, so per direction ∂L/∂Z = (softmax − onehot)/B:
    each logit is pushed down by the probability the model gives it and the correct one up by 1 (see
    `clip_loss_grad`). The B − 1 other pairs in the batch are the negatives; larger batches mean harder negatives.

    The embeddings are not normalised here (the model does that, as in open_clip). Unnormalised inputs give the
    dot-product loss: the norms silently rescale the temperature. Checking the norms would need a device sync, so
    nothing is checked; NaN inputs likewise give a NaN loss. What is checked costs no sync: the shapes, and that
    logit_scale is a positive scalar rather than the model's nn.Parameter t (see `_logit_scale`).
    """
    _check_pair(image_embeds, text_embeds)
    s = _logit_scale(logit_scale, image_embeds)
    logits = s * image_embeds @ text_embeds.T  # (B, B): image i against text j
    labels = torch.arange(len(logits), device=logits.device)  # pair i sits on the diagonal
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


class ClipLossGrad(NamedTuple):
    image_embeds: Tensor  # (B, E) ∂L/∂I
    text_embeds: Tensor  # (B, E) ∂L/∂T
    logit_scale: Tensor  # () ∂L/∂s


def clip_loss_grad(image_embeds: Tensor, text_embeds: Tensor, logit_scale: Scalar) -> ClipLossGrad:
    """The gradient of `clip_loss`, derived by hand. Inputs as clip_loss; returns a ClipLossGrad of (B, E), (B, E), ().

    With Z = s·I·Tᵀ, rows and columns each contribute (softmax − onehot)/B, halved because L averages them:

        G = ∂L/∂Z = (softmax_rows(Z) + softmax_cols(Z) − 2·Id) / (2B)        (B, B)

    and the chain rule through Z = s·I·Tᵀ gives ∂L/∂I = s·G·T, ∂L/∂T = s·Gᵀ·I, ∂L/∂s = Σ_ij G_ij·(I_i·T_j).
    The model learns t with s = exp(t), so its gradient is ∂L/∂t = s·∂L/∂s. The entries of G sum to zero: adding
    one constant to every logit changes nothing, as it should for a softmax.
    """
    _check_pair(image_embeds, text_embeds)
    s = _logit_scale(logit_scale, image_embeds)
    cosines = image_embeds @ text_embeds.T  # (B, B)
    logits = s * cosines
    eye = torch.eye(len(logits), dtype=logits.dtype, device=logits.device)
    G = (logits.softmax(dim=1) + logits.softmax(dim=0) - 2 * eye) / (2 * len(logits))  # (B, B) ∂L/∂Z
    return ClipLossGrad(s * G @ text_embeds, s * G.T @ image_embeds, (G * cosines).sum())  # (B, E), (B, E), ()


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Σ_ij a_ij·b_ij without a (B, E) temporary."""
    return torch.dot(a.flatten(), b.flatten())


def _tile(buffer: Tensor, rows: int, cols: int) -> Tensor:
    """A contiguous (rows, cols) view of a preallocated buffer. The loops below reuse two tile buffers, so memory
    stays flat: allocating fresh (chunk, chunk) tensors each step lets the allocator fragment and RSS creep up."""
    return buffer[:rows * cols].view(rows, cols)


def _logit_tiles(I: Tensor, T: Tensor, scale: Tensor, n: int, buffer: Tensor):
    """Yield (r, c, Z) for every tile Z = s·I[r:r+n]·T[c:c+n]ᵀ of the logits, computed into `buffer`."""
    for r in range(0, len(I), n):
        Ir = I[r:r + n] * scale  # scale the (n, E) rows, not the (n, n) tile
        for c in range(0, len(T), n):
            Tc = T[c:c + n]
            yield r, c, torch.mm(Ir, Tc.T, out=_tile(buffer, len(Ir), len(Tc)))  # (n, n)


def _logsumexp(Z: Tensor, dim: int, scratch: Tensor) -> Tensor:
    """torch.logsumexp(Z, dim), computing exp(Z − max) in `scratch` instead of a new tile."""
    m = Z.amax(dim, keepdim=True)  # the max makes exp safe at logit_scale = 100 (e^100 overflows float32)
    return torch.sub(Z, m, out=scratch).exp_().sum(dim).log_().add_(m.squeeze(dim))


class _TiledClipLoss(torch.autograd.Function):
    """`clip_loss` computed in (chunk × chunk) tiles of Z, so that memory is O(B·E + chunk²) instead of O(B²).

    Forward keeps only the B row and B column log-sum-exps, merged tile by tile with logaddexp (an online LSE).
    Backward recomputes each tile and turns it into its block of 2B·G + 2·Id = exp(Z − lse_row) + exp(Z − lse_col),
    which it multiplies into both embedding gradients at once, as Inf-CL does (Wang et al. 2024, arXiv 2410.17243).
    The −2·Id part of G is added outside the loop, where it costs O(B·E).
    """

    @staticmethod
    def forward(ctx, image_embeds, text_embeds, logit_scale, chunk_size, dtype):
        I, T = image_embeds.to(dtype), text_embeds.to(dtype)  # matmul dtype (bf16 under autocast)
        acc = torch.promote_types(dtype, torch.float32)  # logsumexps and sums never in half precision
        B, n = len(I), min(chunk_size, len(I))
        Z_buffer, scratch = I.new_empty(n * n), I.new_empty(n * n, dtype=acc)
        row_lse = torch.full((B,), float("-inf"), dtype=acc, device=I.device)
        col_lse = torch.full_like(row_lse, float("-inf"))
        for r, c, Z in _logit_tiles(I, T, logit_scale.to(dtype), n, Z_buffer):
            Z = Z.to(acc)
            lse_r, lse_c = row_lse[r:r + n], col_lse[c:c + n]
            torch.logaddexp(lse_r, _logsumexp(Z, 1, _tile(scratch, *Z.shape)), out=lse_r)
            torch.logaddexp(lse_c, _logsumexp(Z, 0, _tile(scratch, *Z.shape)), out=lse_c)
        diagonal = logit_scale.to(acc) * _dot(I.to(acc), T.to(acc))  # Σ_i Z_ii, the correct pairs
        ctx.save_for_backward(image_embeds, text_embeds, logit_scale, row_lse, col_lse)
        ctx.chunk_size, ctx.dtype = n, dtype
        return (((row_lse.sum() + col_lse.sum()) / 2 - diagonal) / B).to(image_embeds.dtype)

    @staticmethod
    def backward(ctx, grad_loss):
        image_embeds, text_embeds, logit_scale, row_lse, col_lse = ctx.saved_tensors
        n, dtype, acc = ctx.chunk_size, ctx.dtype, row_lse.dtype
        I, T, s = image_embeds.to(acc), text_embeds.to(acc), logit_scale.to(acc)
        I_low, T_low = image_embeds.to(dtype), text_embeds.to(dtype)  # recompute Z exactly as forward did
        B = len(I)
        Z_buffer, P_buffer = I_low.new_empty(n * n), I.new_empty(n * n)
        PT = torch.zeros_like(I)  # (B, E) Σ_j P_ij·T_j
        PI = torch.zeros_like(T)  # (B, E) Σ_i P_ij·I_i
        with torch.autocast(I.device.type, enabled=False):
            for r, c, Z in _logit_tiles(I_low, T_low, logit_scale.to(dtype), n, Z_buffer):
                Z = Z.to(acc)  # recomputed, not stored: that is the memory saving
                P = torch.sub(Z, row_lse[r:r + n, None], out=_tile(P_buffer, *Z.shape)).exp_()  # row softmax
                P += Z.sub_(col_lse[c:c + n]).exp_()  # + column softmax
                PT[r:r + n].addmm_(P, T[c:c + n])  # (n, E) += (n, n) @ (n, E)
                PI[c:c + n].addmm_(P.T, I[r:r + n])  # (n, E) += (n, n) @ (n, E)
        # G = (P − 2·Id) / (2B), so ∂L/∂I = s·G·T = g·s·(PT − 2T), ∂L/∂T = g·s·(PI − 2I), ∂L/∂s = g·Σ(PT − 2T)·I
        g = grad_loss.to(acc) / (2 * B)
        grad_s = g * (_dot(PT, I) - 2 * _dot(T, I))
        grad_I = PT.sub_(T, alpha=2).mul_(g * s)
        grad_T = PI.sub_(I, alpha=2).mul_(g * s)
        return (grad_I.to(image_embeds.dtype), grad_T.to(text_embeds.dtype), grad_s.to(logit_scale.dtype),
                None, None)


def tiled_clip_loss(image_embeds: Tensor, text_embeds: Tensor, logit_scale: Scalar, chunk_size: int = 2048) -> Tensor:
    """`clip_loss` without ever holding the (B, B) logits: exact, with O(B·E + chunk_size²) memory.

    image_embeds, text_embeds: (B, E); logit_scale: (). Returns the same scalar as clip_loss, and the same gradients
    for the embeddings and logit_scale (to float rounding), for any chunk_size, including ones that do not divide B.

    This is how CLIP trained at B = 32,768 (§2.5: "sharded similarity matrix"): the loss needs only each row's and
    each column's logsumexp, and those can be accumulated tile by tile. Under torch.autocast the tile matmuls run
    in the autocast dtype (e.g. bf16) while every logsumexp and accumulation stays in float32.
    """
    _check_pair(image_embeds, text_embeds)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}; 2048 suits CPUs and GPUs")
    device = image_embeds.device.type
    autocast = torch.is_autocast_enabled(device) and image_embeds.dtype != torch.float64  # autocast skips float64
    dtype = torch.get_autocast_dtype(device) if autocast else image_embeds.dtype
    s = _logit_scale(logit_scale, image_embeds)
    with torch.autocast(device, enabled=False):  # the Function picks its dtypes itself
        return _TiledClipLoss.apply(image_embeds, text_embeds, s, chunk_size, dtype)


def gather_with_grad(x: Tensor) -> Tensor:
    """All-gather (B, E) local rows from every rank into (n·B, E), rank order, keeping the autograd graph.

    Plain dist.all_gather returns tensors without history, so the other ranks' rows would be constants and the
    local rows would miss the gradient that every other rank's loss sends them. The autograd-aware all_gather
    sums those gradients back to the rank that owns each row (a reduce-scatter). Every rank must pass the same
    shape. Without an initialised process group it returns x itself.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather  # imported late: not every build ships distributed

    return torch.cat(all_gather(x), dim=0)  # (n·B, E)


def distributed_clip_loss(image_embeds: Tensor, text_embeds: Tensor, logit_scale: Scalar) -> Tensor:
    """`clip_loss` over the global batch of all ranks, for torchrun/DDP; equal to clip_loss on a single process.

    image_embeds, text_embeds: (B, E) this rank's pairs (the same B on every rank); returns a scalar.

    Each rank scores only its own B images against all n·B texts (and its B texts against all n·B images), so the
    logits are (B, n·B) rather than (n·B, n·B): open_clip's local_loss=True, gather_with_grad=True. The labels are
    offset by rank·B, since this rank's pairs sit at those columns of the gathered batch.

    Gradient convention: each rank returns the mean over its own rows, so the mean of the n rank losses is exactly
    the full-batch loss. gather_with_grad sends each rank's gradient to the rows it came from, and DDP then
    averages parameter gradients over ranks: the result is exactly the full-batch gradient. (Per rank, the local
    embedding gradient is n times the full-batch gradient of those rows; divide by n to compare.) open_clip's
    local_loss=False, where every rank computes all (n·B)² logits, gives the same gradients at n times the cost,
    so it is not offered.
    """
    _check_pair(image_embeds, text_embeds, min_batch=1)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return clip_loss(image_embeds, text_embeds, logit_scale)
    s = _logit_scale(logit_scale, image_embeds)
    all_images, all_texts = gather_with_grad(image_embeds), gather_with_grad(text_embeds)  # (n·B, E) each
    labels = torch.arange(len(image_embeds), device=image_embeds.device) + dist.get_rank() * len(image_embeds)
    logits_per_image = s * image_embeds @ all_texts.T  # (B, n·B)
    logits_per_text = s * text_embeds @ all_images.T  # (B, n·B)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


def negclip_loss(image_embeds: Tensor, text_embeds: Tensor, negative_embeds: Tensor, logit_scale: Scalar) -> Tensor:
    """CLIP's loss with hard-negative captions (NegCLIP, Yuksekgonul et al. 2023 §5).

    image_embeds, text_embeds: (B, E), row i a matching pair; negative_embeds: (M, E), usually M = B, row i a
    caption with image i's words in a wrong order ("a blue circle and a red square" for "a red circle and a blue
    square"). Each image picks its caption among all B + M texts, so it must tell its caption from its near-copy;
    each caption still picks its image among the B images (a negative caption has no image of its own):

        L = ½·CE(s·I·[T; N]ᵀ, arange(B))  +  ½·CE(s·T·Iᵀ, arange(B))       (B, B+M) rows, then (B, B) rows

    With a random batch, "which of these B captions is mine?" can be answered from the bag of words alone, and
    clip_loss gives no reason to learn more; the hard negative shares the bag, so only binding tells them apart.
    With no negatives (M = 0) this is clip_loss exactly.

    Under torchrun each rank passes its own rows, and the loss is taken over the global batch as in
    distributed_clip_loss: this rank's images against every rank's captions and negatives (gather_with_grad, which
    is the identity without a process group), its captions against every image; labels offset by rank·B.
    """
    _check_pair(image_embeds, text_embeds, min_batch=1)
    if negative_embeds.ndim != 2 or negative_embeds.shape[1] != image_embeds.shape[1]:
        raise ValueError(f"negative_embeds must be (M, E) with E={image_embeds.shape[1]}, got "
                         f"{tuple(negative_embeds.shape)}; encode the hard-negative captions with the text tower")
    s = _logit_scale(logit_scale, image_embeds)
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    all_images, all_texts = gather_with_grad(image_embeds), gather_with_grad(text_embeds)  # (n·B, E) each
    all_negatives = gather_with_grad(negative_embeds)  # (n·M, E)
    if len(all_images) < 2:
        raise ValueError("a batch of 1 has no negative images; use a batch of at least 2 pairs")
    labels = torch.arange(len(image_embeds), device=image_embeds.device) + rank * len(image_embeds)
    logits_per_image = s * image_embeds @ torch.cat([all_texts, all_negatives]).T  # (B, n·B + n·M)
    logits_per_text = s * text_embeds @ all_images.T  # (B, n·B)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


def _sigmoid_loss(logits: Tensor, offset: int) -> Tensor:
    """−(1/B)·Σ_ij log σ(y_ij·Z_ij) over (B, C) logits Z: y = +1 where row i meets its pair, column offset + i,
    and −1 elsewhere."""
    positives = torch.arange(len(logits), device=logits.device) + offset  # (B,) the column of each row's pair
    labels = 2 * F.one_hot(positives, logits.shape[1]).to(logits.dtype) - 1  # (B, C) +1 at the pair, −1 elsewhere
    return -F.logsigmoid(labels * logits).sum() / len(logits)


def siglip_loss(image_embeds: Tensor, text_embeds: Tensor, logit_scale: Scalar, logit_bias: Scalar) -> Tensor:
    """SigLIP's pairwise sigmoid loss (Zhai et al. 2023, arXiv 2303.15343), with open_clip's SigLipLoss semantics.

    image_embeds, text_embeds: (B, E), L2-normalised; logit_scale: () exponentiated; logit_bias: (). Returns a scalar.

    Every one of the B² pairs is an independent binary question "do image i and text j match?", with label +1 on
    the diagonal and −1 elsewhere: L = −(1/B)·Σ_ij log σ(y_ij·(s·I_i·T_j + b)). No softmax couples the batch, so
    no row or column normalisation is needed (the point of SigLIP). SigLIP initialises t' = log 10 (s = 10) and
    b = −10: with B − 1 negatives per positive, a large negative bias makes the starting prediction "no match" and
    keeps the first steps from being dominated by the many easy negatives.
    """
    _check_pair(image_embeds, text_embeds)
    s, b = _logit_scale(logit_scale, image_embeds), _scalar(logit_bias, "logit_bias", image_embeds)
    logits = s * image_embeds @ text_embeds.T + b  # (B, B)
    return _sigmoid_loss(logits, offset=0)  # pair i sits on the diagonal


def distributed_siglip_loss(image_embeds: Tensor, text_embeds: Tensor, logit_scale: Scalar,
                            logit_bias: Scalar) -> Tensor:
    """`siglip_loss` over the global batch of all ranks, for torchrun/DDP; equal to siglip_loss on a single process.

    image_embeds, text_embeds: (B, E) this rank's pairs (the same B on every rank); logit_scale, logit_bias: ().
    Returns a scalar.

    The (n·B)² pairs of the global batch split by image: each rank scores its own B images against all n·B texts,
    (B, n·B) logits, so every pair is scored on exactly one rank. The positives sit at columns rank·B + i of the
    gathered texts; every other column, including the other ranks' texts, is a negative. The sum is divided by the
    local B, so the mean of the n rank losses is exactly the full-batch loss.

    Gradient convention, as in `distributed_clip_loss`: gather_with_grad sends every rank's gradient for a text back
    to the rank that owns it, and DDP then averages parameter gradients over ranks: the result is exactly the
    full-batch gradient. (Per rank, the local embedding gradient is n times the full-batch gradient of those rows;
    divide by n to compare.) With a plain all_gather the other ranks' texts would be constants, and each text would
    miss the gradient from the n − 1 ranks whose images it is a negative for.

    SigLIP §3.3 computes the same sum with less memory: the texts travel round a ring of devices in n steps, and each
    step scores the local images against one rank's (B, E) texts, so no device ever holds n·B texts or (B, n·B)
    logits, only (B, B) at a time. The loss and gradients are equal to these. It is not used here because it needs
    n − 1 point-to-point exchanges, each with a hand-written backward (open_clip's NeighbourExchange), where one
    differentiable all-gather does it; the (B, n·B) logits are small at the batch sizes minclip trains.
    """
    _check_pair(image_embeds, text_embeds, min_batch=1)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return siglip_loss(image_embeds, text_embeds, logit_scale, logit_bias)
    s, b = _logit_scale(logit_scale, image_embeds), _scalar(logit_bias, "logit_bias", image_embeds)
    all_texts = gather_with_grad(text_embeds)  # (n·B, E)
    logits = s * image_embeds @ all_texts.T + b  # (B, n·B): this rank's images against every text
    return _sigmoid_loss(logits, offset=dist.get_rank() * len(image_embeds))


def nt_xent_loss(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """SimCLR's NT-Xent loss (Chen et al. 2020, arXiv 2002.05709, Alg. 1), equal to lightly's NTXentLoss.

    z1, z2: (B, E) projections of two augmented views of the same B images (need not be normalised: like lightly,
    this normalises them). temperature: τ > 0. Returns a scalar.

    The 2B views form one batch. View k's positive is the other view of its image; its negatives are the other
    2B − 2 views. Each row of the (2B, 2B) cosine matrix, without its self-similarity, is a (2B − 1)-way
    classification, and the loss is the mean cross-entropy over all 2B rows (both directions, as in CLIP).
    """
    _check_pair(z1, z2, names=("z1", "z2"))
    _check_positive(temperature, "temperature", "it divides the cosine similarities; SimCLR uses 0.1 to 0.5")
    B = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2B, E)
    logits = z @ z.T / temperature  # (2B, 2B)
    self_mask = torch.eye(2 * B, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))  # a view is not its own negative
    positives = torch.arange(2 * B, device=z.device).roll(B)  # view k of image i pairs with view k ± B
    return F.cross_entropy(logits, positives)
