"""Image transforms: CLIP's preprocessing (torchvision.transforms.v2) and SimCLR's augmentations (vectorised).

Both take uint8 images, (B, 3, H, W), the format ShapeWorld and the real datasets produce, and return float images
normalised with CLIP's mean and std, so that CLIP and the SimCLR baseline feed their encoders alike.

Why SimCLR's augmentations are written out here: torchvision draws one set of random parameters per call, so a
batch needs a Python loop over its images: about 0.9 ms per 32 px image on one core here (its hue jitter alone
takes 0.5 ms). SimCLR needs two views of every image at every step, so the loop would cost more than the model.
Below, every image gets its own parameters in a few batched tensor operations (about 0.1 ms per image), and
tests/test_transforms.py checks each operation against torchvision's functional kernels, image by image.
"""
import math

import torch
from torchvision.transforms import v2

# The mean and std of OpenAI's pre-training images, per RGB channel (openai/CLIP clip.py, open_clip OPENAI_DATASET_*).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_preprocess(image_size: int) -> v2.Compose:
    """CLIP's evaluation preprocessing: uint8 (..., 3, H, W) -> float (..., 3, S, S), normalised.

    Bicubic resize of the short side to S, centre crop to S x S, scale to [0, 1], normalise with CLIP_MEAN/STD,
    as openai/CLIP and open_clip do. When H = W = S the resize and crop do nothing (and cost nothing).
    """
    return v2.Compose([
        v2.Resize(image_size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
        v2.CenterCrop(image_size),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(CLIP_MEAN, CLIP_STD),
    ])


class SimCLRAugment:
    """One random SimCLR view per image (Chen et al. 2020, §3 and Appendix A; lightly's SimCLRTransform settings).

    Per image, in order: random resized crop (area 0.08..1 of the image, aspect 3/4..4/3, bilinear), horizontal
    flip (p 0.5), colour jitter (p 0.8: brightness, contrast, saturation 0.8, hue 0.2, in random order), grayscale
    (p 0.2), and Gaussian blur (p 0.5, sigma 0.1..2, kernel about 10% of the image), except at 32 px or less, where
    lightly's CIFAR setting (`SimCLRTransform(input_size=32, gaussian_blur=0.0)`) turns blur off.

    `augment(images uint8 (B, 3, H, W), generator) -> float (B, 3, S, S)`. Every random number comes from
    `generator` (a CPU torch.Generator, or an int seed for a fresh one), so equal generator states give equal
    views, and the global random state is not touched. Pass one generator on from step to step for fresh views.
    The random choices are the same on every device; the pixels may differ in the last bits (float rounding).
    """

    def __init__(self, image_size: int, min_scale: float = 0.08, hflip: float = 0.5, jitter_p: float = 0.8,
                 jitter=(0.8, 0.8, 0.8, 0.2), grayscale: float = 0.2, blur=None):
        self.image_size, self.min_scale, self.hflip, self.grayscale = image_size, min_scale, hflip, grayscale
        self.jitter_p, self.jitter = jitter_p, jitter  # (brightness, contrast, saturation, hue) strengths
        self.blur = (0.0 if image_size <= 32 else 0.5) if blur is None else blur

    def __call__(self, images: torch.Tensor, generator) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        if isinstance(generator, int):
            generator = torch.Generator().manual_seed(generator)
        if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
            raise TypeError(f"pass a CPU torch.Generator or an int seed, got {generator!r}")
        B, S, device = len(images), self.image_size, images.device
        rand = lambda *shape, lo=0.0, hi=1.0: (lo + (hi - lo) * torch.rand(*shape, generator=generator)).to(device)
        top, left, height, width = crop_boxes(B, *images.shape[-2:], self.min_scale, generator).to(device).unbind(1)
        rows, cols = resize_matrix(top, height, images.shape[-2], S), resize_matrix(left, width, images.shape[-1], S)
        cols = torch.where(rand(B, 1, 1) < self.hflip, cols.flip(1), cols)  # a flip is a reversed resize
        x = rows[:, None] @ (images.float() / 255) @ cols[:, None].transpose(-1, -2)  # (S,H) @ (B,3,H,W) @ (W,S)
        b, c, s, h = self.jitter
        order = torch.argsort(torch.rand(B, 4, generator=generator), 1).to(device)  # each image its own order
        order[rand(B) >= self.jitter_p] = -1  # -1: no jitter for this image
        x = color_jitter(x, rand(B, lo=1 - b, hi=1 + b), rand(B, lo=1 - c, hi=1 + c), rand(B, lo=1 - s, hi=1 + s),
                         rand(B, lo=-h, hi=h), order)
        x = torch.where(rand(B, 1, 1, 1) < self.grayscale, _gray(x).expand(B, 3, S, S), x)
        if self.blur:
            sigma = torch.where(rand(B) < self.blur, rand(B, lo=0.1, hi=2.0), 0.0)
            x = gaussian_blur(x, sigma, 2 * (S // 20) + 1)
        mean, std = torch.tensor(CLIP_MEAN, device=device), torch.tensor(CLIP_STD, device=device)
        return (x - mean[:, None, None]) / std[:, None, None]


def simclr_augment(image_size: int) -> SimCLRAugment:
    """SimCLR's augmentation for `image_size` px views, with lightly's defaults; see SimCLRAugment."""
    return SimCLRAugment(image_size)


def crop_boxes(B: int, H: int, W: int, min_scale: float, generator: torch.Generator) -> torch.Tensor:
    """torchvision's RandomResizedCrop parameters for B images at once -> (B, 4): top, left, height, width.

    As torchvision: up to 10 tries of an area in [min_scale, 1] of the image and a log-uniform aspect ratio in
    [3/4, 4/3]; the first try that fits is used; if none fits, the centre crop of the whole image (ratio clamped)."""
    area = H * W * (min_scale + (1 - min_scale) * torch.rand(B, 10, generator=generator))
    ratio = torch.exp(math.log(3 / 4) + math.log(16 / 9) * torch.rand(B, 10, generator=generator))
    w, h = torch.sqrt(area * ratio).round(), torch.sqrt(area / ratio).round()
    fits = (w > 0) & (w <= W) & (h > 0) & (h <= H)
    first = fits.int().argmax(1, keepdim=True)  # index of the first try that fits
    ok = fits.any(1)
    w = torch.where(ok, w.gather(1, first)[:, 0], float(min(W, round(H * 4 / 3))))
    h = torch.where(ok, h.gather(1, first)[:, 0], float(min(H, round(W * 4 / 3))))
    top = torch.where(ok, ((H - h + 1) * torch.rand(B, generator=generator)).floor(), (H - h) // 2)
    left = torch.where(ok, ((W - w + 1) * torch.rand(B, generator=generator)).floor(), (W - w) // 2)
    return torch.stack([top, left, h, w], 1)


def resize_matrix(start, length, size_in: int, size_out: int) -> torch.Tensor:
    """(B, size_out, size_in): output pixel i of each image's crop [start, start + length) (B,) resized to
    size_out pixels, as weights on the input pixels. These are torchvision's antialiased bilinear weights (a tent
    as wide as the output pixel, at least one input pixel), renormalised inside the crop; so a resized crop is
    `rows @ image @ cols.T`, for every image at once."""
    scale = (length / size_out)[:, None, None]  # input pixels per output pixel
    centre = start[:, None, None] + (torch.arange(size_out, device=start.device)[:, None] + 0.5) * scale
    pixel = torch.arange(size_in, device=start.device) + 0.5  # input pixel centres
    weight = (1 - (pixel - centre).abs() / scale.clamp(min=1)).clamp(min=0)  # (B, size_out, size_in)
    weight = weight * ((pixel >= start[:, None, None]) & (pixel < (start + length)[:, None, None]))
    return weight / weight.sum(-1, keepdim=True)


def color_jitter(x, brightness, contrast, saturation, hue, order) -> torch.Tensor:
    """torchvision's ColorJitter with per-image factors: x float (B, 3, H, W) in [0, 1]; factors (B,) each;
    order (B, 4): step t applies adjustment order[:, t] (0 brightness, 1 contrast, 2 saturation, 3 hue; -1 none)."""
    x = x.clone()
    steps = (_brightness, _contrast, _saturation, _hue)
    for t in range(order.shape[1]):
        for op, (adjust, factor) in enumerate(zip(steps, (brightness, contrast, saturation, hue))):
            index = (order[:, t] == op).nonzero()[:, 0]
            x[index] = adjust(x[index], factor[index].view(-1, 1, 1, 1))
    return x


def _gray(x):  # ITU-R 601 luma with torchvision's weights: (B, 3, H, W) -> (B, 1, H, W)
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]


def _blend(x, y, f):  # torchvision's _blend: f * x + (1 - f) * y, clamped to [0, 1]
    return (f * x + (1 - f) * y).clamp(0, 1)


def _brightness(x, f):
    return _blend(x, 0, f)


def _contrast(x, f):
    return _blend(x, _gray(x).mean((1, 2, 3), keepdim=True), f)


def _saturation(x, f):
    return _blend(x, _gray(x), f)


def _hue(x, f):
    """Rotate the hue of HSV (the hexagonal hue of PIL and torchvision) by f turns; keep saturation and value."""
    r, g, b = x.unbind(1)
    value, low = x.amax(1), x.amin(1)
    spread = value - low
    safe = torch.where(spread > 0, spread, 1.0)
    h = torch.where(value == r, (g - b) / safe, torch.where(value == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    h = torch.remainder(h / 6 + f[:, 0], 1.0)  # (B, H, W), in turns
    # HSV -> RGB without case analysis: channel n (5 red, 3 green, 1 blue) is V - (V - min) * clamp(min(k, 4 - k)).
    k = torch.remainder(torch.tensor([5.0, 3.0, 1.0], device=x.device).view(1, 3, 1, 1) + 6 * h[:, None], 6)
    return value[:, None] - spread[:, None] * torch.minimum(k, 4 - k).clamp(0, 1)


def gaussian_blur(x, sigma, kernel_size: int) -> torch.Tensor:
    """torchvision's gaussian_blur (reflect padding) with a per-image sigma (B,); sigma 0 leaves an image as is.
    Separable: each image is G @ image @ G.T with its own (S, S) matrix G, reflection folded into G."""
    B, _, S, _ = x.shape
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (offsets / sigma.clamp(min=1e-6)[:, None]) ** 2)
    kernel = torch.where(sigma[:, None] > 0, kernel, (offsets == 0).to(x.dtype))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (B, kernel_size)
    source = torch.arange(S, device=x.device)[:, None] + offsets.long()  # (S, kernel_size)
    source = torch.where(source < 0, -source, torch.where(source >= S, 2 * (S - 1) - source, source))  # reflect
    G = torch.zeros(B, S, S, dtype=x.dtype, device=x.device)
    G.scatter_add_(2, source.expand(B, S, kernel_size), kernel[:, None, :].expand(B, S, kernel_size))
    return G[:, None] @ x @ G[:, None].transpose(-1, -2)  # (B,1,S,S) @ (B,3,S,S) @ (B,1,S,S)
