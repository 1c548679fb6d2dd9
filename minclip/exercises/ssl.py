"""Checks for notebooks/07_simclr_mae_vs_clip: SimCLR's NT-Xent loss, MAE's per-image random masking, and
patchify (the reshape behind every ViT's patch embedding).

The references are minclip's own code: minclip.loss.nt_xent_loss (equal to lightly's NTXentLoss) and the patch
embedding of minclip.encoders.vit.VisionTransformer. MAE's masking is checked by its properties; it mirrors
baselines/mae.py's random_masking, which the notebook compares it with (minclip itself never imports baselines).
"""
import torch
import torch.nn.functional as F

from minclip.encoders.vit import VisionTransformer
from minclip.loss import nt_xent_loss

from .core import ExerciseError, call, exercise, expect_close, hint, passed


@exercise
def check_simclr_nt_xent(fn) -> None:
    """fn(z1 (B, E), z2 (B, E), temperature) -> scalar: SimCLR's NT-Xent over the 2B views."""
    for seed, (B, E, tau) in enumerate([(2, 3, 0.5), (5, 8, 0.1), (8, 16, 1.0)]):
        g = torch.Generator().manual_seed(seed)
        z1 = torch.randn(B, E, generator=g, dtype=torch.float64)
        z2 = z1 + 0.7 * torch.randn(B, E, generator=g, dtype=torch.float64)  # two views: correlated, not equal
        got = call(fn, z1.clone(), z2.clone(), tau, name="nt_xent")
        got = torch.as_tensor(got, dtype=torch.float64)
        if got.numel() != 1:
            raise ExerciseError(f"nt_xent should return one number, got shape {tuple(got.shape)}: average the "
                                "cross-entropies of the 2B rows")
        want = nt_xent_loss(z1, z2, tau)
        z = F.normalize(torch.cat([z1, z2]), dim=1)
        with_self = F.cross_entropy(z @ z.T / tau, torch.arange(2 * B).roll(B))
        if torch.allclose(got, with_self, atol=1e-6) and not torch.allclose(got, want, atol=1e-6):
            raise ExerciseError("nt_xent kept each view's similarity with itself (always the largest, cos = 1): mask "
                                "the diagonal of the (2B, 2B) matrix with -inf before the cross-entropy")
        expect_close(got.reshape(()), want, f"nt_xent with B={B}, E={E}, temperature={tau}",
                     hint("each of the 2B views must pick out its one positive, the other view of the same image, "
                          "among the 2B − 1 other views of the batch.",
                          "Compare every normalised view with every other (cosine / temperature); a view is never "
                          "its own candidate, so mask the diagonal; view k's positive is k + B (mod 2B).",
                          "z = normalize(cat(z1, z2)); logits = z @ z.T / temperature, diagonal = −inf; "
                          "mean CE over the 2B rows with targets (arange(2B) + B) % 2B"),
                     atol=1e-6, rtol=1e-6)
    passed("nt_xent", "equal to minclip.loss.nt_xent_loss (and so to lightly's NTXentLoss)")


@exercise
def check_random_masking(fn) -> None:
    """fn(x (B, N, D), mask_ratio, generator) -> (visible (B, keep, D), mask (B, N)): every image keeps its own random
    keep = int(N * (1 - mask_ratio)) tokens; mask is 1 where a token is hidden, 0 where it is visible."""
    B, N, D = 6, 16, 5
    x = torch.arange(B * N * D, dtype=torch.float32).view(B, N, D)  # every token distinct: find it again
    for ratio in (0.75, 0.5):
        keep = int(N * (1 - ratio))
        out = call(fn, x, ratio, torch.Generator().manual_seed(0), name="random_masking")
        if not isinstance(out, (tuple, list)) or len(out) < 2:
            raise ExerciseError(f"random_masking should return (visible, mask), got {type(out).__name__}")
        visible, mask = torch.as_tensor(out[0]), torch.as_tensor(out[1])
        if visible.shape != (B, keep, D) or mask.shape != (B, N):
            raise ExerciseError(f"mask_ratio {ratio} of N={N} tokens keeps {keep}: expected visible {(B, keep, D)} "
                                f"and mask {(B, N)}, got {tuple(visible.shape)} and {tuple(mask.shape)}")
        if not ((mask == 0) | (mask == 1)).all() or not (mask.sum(1) == N - keep).all():
            raise ExerciseError(f"each row of mask should hold {N - keep} ones (hidden) and {keep} zeros (visible), "
                                f"got row sums {mask.sum(1).tolist()}")
        for b in range(B):  # the visible tokens are exactly the unmasked ones, none repeated
            shown = (x[b] @ torch.ones(D))[mask[b] == 0].sort().values  # one id per token
            if not torch.equal((visible[b] @ torch.ones(D)).sort().values, shown):
                raise ExerciseError(f"image {b}: the visible tokens are not the ones mask marks 0; gather x with the "
                                    "kept indices, and build mask from the same indices")
        if len({tuple(row.tolist()) for row in mask}) == 1:
            raise ExerciseError("every image got the same mask; MAE draws a subset per image: noise (B, N), "
                                "argsort along dim 1")
        again = torch.as_tensor(call(fn, x, ratio, torch.Generator().manual_seed(0), name="random_masking")[1])
        if not torch.equal(again, mask):
            raise ExerciseError("the same generator state gave a different mask; draw the noise with "
                                "torch.rand(B, N, generator=generator)")
    hidden = torch.stack([torch.as_tensor(call(fn, x, 0.75, torch.Generator().manual_seed(s), name="random_masking")[1])
                          for s in range(30)]).float().mean(dim=(0, 1))  # (N,) how often each position is hidden
    if (hidden - 0.75).abs().max() > 0.2:
        raise ExerciseError(f"some positions are hidden far more or less often than 75% over 30 draws "
                            f"({[round(h, 2) for h in hidden.tolist()]}): every position should be equally likely")
    passed("random_masking", "per-image random subsets of the right size, seeded, as baselines/mae.py")


@exercise
def check_patchify(fn) -> None:
    """fn(images (B, C, H, W), P) -> (B, N, P*P*C): patches row by row, each patch's pixels in (row, column,
    channel) order, as MAE's models_mae.py. Checked through minclip's ViT: a patch embedding is patchify, then
    one linear layer."""
    g = torch.Generator().manual_seed(0)
    for B, S, P in ((2, 8, 4), (3, 32, 8)):
        images = torch.randn(B, 3, S, S, generator=g)
        got = call(fn, images, P, name="patchify")
        N = (S // P) ** 2
        if torch.as_tensor(got).shape != (B, N, P * P * 3):
            raise ExerciseError(f"{S}x{S} images in {P}x{P} patches: expected {(B, N, P * P * 3)}, got "
                                f"{tuple(torch.as_tensor(got).shape)}")
        with torch.random.fork_rng():
            torch.manual_seed(1)
            vit = VisionTransformer(S, P, width=12, layers=1, heads=2, embed_dim=4)
        weight = vit.conv1.weight.permute(0, 2, 3, 1).reshape(12, P * P * 3)  # (D, P*P*C) in (row, col, channel)
        with torch.no_grad():
            want = vit.conv1(images).flatten(2).transpose(1, 2)  # (B, N, D): the ViT's patch tokens
            expect_close(torch.as_tensor(got) @ weight.T, want, f"patchify({S}x{S} images, P={P}) @ conv1's weight",
                         hint("MAE's targets are the image's P×P patches, each flattened into one vector.",
                              "Patches go row by row over the image; inside a patch, the pixels go row, then "
                              "column, then channel (channels last, as MAE's reference code does).",
                              "x.reshape(B, C, H/P, P, W/P, P).permute(0, 2, 4, 3, 5, 1).reshape(B, N, P*P*C)"))
    passed("patchify", "patchify + a linear layer = minclip's ViT patch embedding (conv1)")
