"""ShapeWorld's rasteriser: whole batches of scenes to uint8 images, with no Python loop over images or pixels.

Rasterising polygons is slow, so it happens once per image size S. Every position owns a fixed window of S/2 x S/2
pixels: the four quadrants, and one centred window. Every shape, at every size, tilt and jitter inside its window,
becomes an anti-aliased window-sized sprite. Drawing a batch is then array indexing and arithmetic:
- an object is its sprite, alpha-blended into its window: `window * (1 - cover) + paint * colour`, for all objects
  in one window at once (a loop over the 5 windows, never over images);
- blur is a separable Gaussian, as two matmuls: `G @ image @ G.T`;
- noise and textures come from fixed banks of random fields (drawing fresh random numbers would cost more than all
  the rest of the rendering), and each image picks its fields by a seeded index.
Batches are drawn in chunks of CHUNK images, small enough to stay in cache. B is the batch, K the object slots.
"""
import functools
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

COLORS = ("red", "green", "blue", "yellow", "purple", "pink", "cyan", "brown")  # none starts with a vowel: "a {}"
COLOR_RGB = torch.tensor([(220, 40, 40), (40, 170, 60), (40, 80, 230), (240, 215, 40),
                          (140, 60, 200), (250, 130, 200), (40, 200, 215), (140, 85, 40)], dtype=torch.float32)
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross", "heart", "semicircle")
SIZES = ("small", "large")
RADII = ((0.16, 0.17, 0.18), (0.21, 0.22, 0.23))  # farthest point / image size: three radii per size
TILTS = (-10.0, -5.0, 0.0, 5.0, 10.0)  # degrees; small, so that a square never turns into a diamond
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "center")
WINDOWS = ((0, 0), (0, 2), (2, 0), (2, 2), (1, 1))  # top-left corner of each position's window, in units of S/4
JITTER = 0.02  # an object's centre moves by -1, 0 or +1 times this (/ image size) along each axis
PATTERNS = ("striped", "checkered", "dotted")
N_VARIANTS = len(RADII[0]) * len(TILTS) * 9  # sprites per (shape, size): radius x tilt x 3 x 3 jitters
CHUNK = 256  # images drawn at a time


class Style(NamedTuple):
    background: str  # "textured", "paper", "flat" or "pattern"
    objects: str  # "shaded", "outlined", "stroke" or "flat"
    noise: float  # std of the pixel noise, in uint8 steps
    blur: float  # std of a Gaussian blur, in pixels at 32 px (0: none)
    gray: bool


# Three renditions (like ImageNet-Sketch and -R), then the photo under three corruptions (like ImageNet-C): CLIP §3.3
# measures robustness under exactly such shifts.
DOMAINS = {
    "photo": Style("textured", "shaded", 6.0, 0.0, False),
    "sketch": Style("paper", "stroke", 3.0, 0.0, False),
    "cartoon": Style("flat", "outlined", 0.0, 0.0, False),
    "patterned": Style("pattern", "flat", 3.0, 0.0, False),
    "noisy": Style("textured", "shaded", 32.0, 0.0, False),
    "blur": Style("textured", "shaded", 3.0, 1.3, False),
    "grayscale": Style("textured", "shaded", 6.0, 0.0, True),
}


class Scenes(NamedTuple):
    """What is in each image: numpy arrays, B images, K object slots, slot 0 the main object. Objects of one image
    sit at different positions; images with several objects use only the four corners, so objects never overlap."""
    count: np.ndarray  # (B,) number of objects, 1..K; slots k >= count are empty
    color: np.ndarray  # (B, K) index into COLORS
    shape: np.ndarray  # (B, K) index into SHAPES
    size: np.ndarray  # (B, K) index into SIZES
    position: np.ndarray  # (B, K) index into POSITIONS
    variant: np.ndarray  # (B, K) which of the N_VARIANTS sprites: radius, tilt and jitter
    brightness: np.ndarray  # (B, K) multiplies the colour
    pattern: np.ndarray  # (B,) index into PATTERNS, used by the patterned domain

    def subset(self, index) -> "Scenes":
        return Scenes(*(field[index] for field in self))


def _outline(shape: str) -> np.ndarray:
    """Polygon (V, 2) of x, y (y up), its bounding box centred, its farthest point at radius 1 (0.85: circle)."""
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    ring = lambda n, r, start: np.stack([r * np.cos(start + 2 * np.pi * np.arange(n) / n),
                                         r * np.sin(start + 2 * np.pi * np.arange(n) / n)], 1)
    a, b = 0.3, 0.95  # the cross's arm half-width and length
    xy = {
        "circle": ring(64, 1.0, 0),
        "square": ring(4, 1.0, np.pi / 4),
        "triangle": ring(3, 1.0, np.pi / 2),
        "star": ring(10, np.tile([1.0, 0.45], 5), np.pi / 2),
        "diamond": np.array([(0, 1.0), (-0.72, 0), (0, -1.0), (0.72, 0)]),
        "cross": np.array([(a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a),
                           (-a, -a), (-a, -b), (a, -b), (a, -a), (b, -a), (b, a)]),
        "heart": np.stack([16 * np.sin(t) ** 3,  # the classic parametric heart curve
                           13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)], 1),
        "semicircle": np.stack([np.cos(t / 2), np.sin(t / 2)], 1),
    }[shape]
    xy = xy - (xy.min(0) + xy.max(0)) / 2
    return xy / np.linalg.norm(xy, axis=1).max() * (0.85 if shape == "circle" else 1.0)


class Assets(NamedTuple):
    sprites: torch.Tensor  # (len(SHAPES) * len(SIZES) * N_VARIANTS, 2, S/2, S/2): fill and outline stroke
    shade: torch.Tensor  # (9, S/2, S/2) lighting from the top left, for each jitter
    noise: torch.Tensor  # (M, 3, S, S) unit Gaussian noise
    texture: torch.Tensor  # (M, 1, S, S) smooth noise, unit std
    patterns: torch.Tensor  # (len(PATTERNS), V, 1, S, S) in [0, 1]


@functools.lru_cache(maxsize=4)
def assets(image_size: int) -> Assets:
    """Sprites and random fields for one image size: built on first use (well under a second), then cached."""
    S, Q, g = image_size, image_size // 2, torch.Generator().manual_seed(20210226)  # fixed: part of the world
    ss = max(4, 128 // Q)  # supersampling, for anti-aliased edges
    width = max(1, round(S / 32)) * ss  # outline stroke: one pixel at 32 px
    sprites = []
    for shape in SHAPES:
        for radius, tilt in [(r, t) for radii in RADII for r in radii for t in TILTS]:
            c, s = math.cos(math.radians(tilt)), math.sin(math.radians(tilt))
            xy = _outline(shape) @ np.array([[c, -s], [s, c]]) * radius * S * ss  # rotated clockwise by tilt
            xy = [(Q * ss / 2 + px, Q * ss / 2 - py) for px, py in xy]  # image coordinates: y down
            fill, edge = Image.new("L", (Q * ss, Q * ss)), Image.new("L", (Q * ss, Q * ss))
            ImageDraw.Draw(fill).polygon(xy, fill=255)
            ImageDraw.Draw(edge).line(xy + xy[:1], fill=255, width=2 * width, joint="curve")
            fill, edge = np.asarray(fill, dtype=np.float32) / 255, np.asarray(edge, dtype=np.float32) / 255
            sprites.append(np.stack([fill, fill * edge]).reshape(2, Q, ss, Q, ss).mean((2, 4)))  # (2, Q, Q)
    sprites = torch.from_numpy(np.stack(sprites))  # (shapes * sizes * radii * tilts, 2, Q, Q): fill, inner outline
    step = max(1, round(JITTER * S))
    shifts = [(dy * step, dx * step) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    jittered = torch.stack([_shift(sprites, dy, dx) for dy, dx in shifts], 1)  # (.., 9, 2, Q, Q)
    # Light from the top left, so that objects in photos look lit rather than flat.
    r = torch.arange(Q) + 0.5 - 0.3 * Q
    shade = torch.stack([(1.2 - 0.5 * torch.sqrt((r[:, None] - dy) ** 2 + (r - dx) ** 2) / Q).clamp(0.65, 1.2)
                         for dy, dx in shifts])  # (9, Q, Q)
    M = min(1024, max(64, 2**22 // (3 * S * S)))
    noise = torch.randn(M, 3, S, S, generator=g)
    texture = sum(F.interpolate(torch.randn(M, 1, S // o, S // o, generator=g), size=(S, S), mode="bilinear")
                  for o in (4, 8))
    texture = texture / texture.std(dim=(1, 2, 3), keepdim=True)
    return Assets(jittered.flatten(0, 1), shade, noise, texture, _patterns(S, g))


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move the last two dimensions of x down by dy and right by dx pixels, filling in zeros."""
    out, (H, W) = torch.zeros_like(x), x.shape[-2:]
    out[..., max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = x[..., max(-dy, 0):H + min(-dy, 0),
                                                                        max(-dx, 0):W + min(-dx, 0)]
    return out


@functools.lru_cache(maxsize=8)
def _gaussian(S: int, sigma: float) -> torch.Tensor:
    """(S, S): row i is a Gaussian around pixel i, renormalised at the borders (so G @ image blurs columns)."""
    i = torch.arange(S, dtype=torch.float32)
    g = torch.exp(-((i[:, None] - i) ** 2) / (2 * sigma**2))
    return g / g.sum(1, keepdim=True)


def _patterns(S: int, g: torch.Generator, V: int = 48) -> torch.Tensor:
    """(3, V, 1, S, S): stripes at any angle, checkerboards, polka dots; random periods and phases."""
    rand = lambda lo, hi: lo + (hi - lo) * torch.rand(V, 1, 1, generator=g)
    y, x = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
    period, phase, angle = rand(0.12 * S, 0.25 * S), rand(0, 2 * math.pi), rand(0, math.pi)
    u = (x * torch.cos(angle) + y * torch.sin(angle)) / period * 2 * math.pi + phase
    v = (-x * torch.sin(angle) + y * torch.cos(angle)) / period * 2 * math.pi + phase
    stripes = 0.5 + 0.5 * torch.tanh(3 * torch.sin(u))
    checks = 0.5 + 0.5 * torch.tanh(3 * torch.sin(u / 2) * torch.sin(v / 2))
    du, dv = torch.remainder(u, 2 * math.pi) - math.pi, torch.remainder(v, 2 * math.pi) - math.pi
    dots = (1.2 - torch.sqrt(du**2 + dv**2)).clamp(0, 1)  # discs of radius ~ period / 5
    return torch.stack([stripes, checks, dots])[:, :, None]


def render(scenes: Scenes, domain: str, image_size: int, rng: np.random.Generator) -> torch.Tensor:
    """Draw scenes in one domain -> uint8 (B, 3, S, S). Every random choice comes from `rng`."""
    images = torch.empty(len(scenes.count), 3, image_size, image_size, dtype=torch.uint8)
    for start in range(0, len(images), CHUNK):
        chunk = scenes.subset(slice(start, start + CHUNK))
        images[start:start + CHUNK] = _render_chunk(chunk, DOMAINS[domain], assets(image_size), image_size, rng)
    return images


def _render_chunk(scenes: Scenes, style: Style, a: Assets, S: int, rng: np.random.Generator) -> torch.Tensor:
    B = len(scenes.count)
    canvas = _background(style.background, scenes, a, S, rng)  # (B, 3, S, S)
    _draw_objects(canvas, scenes, style.objects, a, S)
    if style.blur:
        G = _gaussian(S, style.blur * S / 32)
        canvas = G @ canvas @ G.T  # (S, S) @ (B, 3, S, S) @ (S, S): blur the columns, then the rows
    if style.noise:
        amount = style.noise * torch.from_numpy(rng.uniform(0.6, 1.4, (B, 1, 1, 1))).float()
        canvas.addcmul_(a.noise.index_select(0, torch.from_numpy(rng.integers(0, len(a.noise), B))), amount)
    if style.gray:  # ITU-R 601 luma, as in PIL and torchvision
        canvas = (torch.tensor([0.299, 0.587, 0.114]) @ canvas.view(B, 3, S * S)).view(B, 1, S, S)
    return canvas.clamp_(0, 255).to(torch.uint8).expand(B, 3, S, S)


def _background(kind: str, scenes: Scenes, a: Assets, S: int, rng: np.random.Generator) -> torch.Tensor:
    """-> float (B, 3, S, S) in about [0, 255]. Low-saturation tones, so that the objects' colours stand out."""
    B = len(scenes.count)
    tensor = lambda x: torch.from_numpy(x).float()
    pick = lambda bank: bank.index_select(0, torch.from_numpy(rng.integers(0, len(bank), B)))
    lo, hi = {"textured": (50, 170), "paper": (225, 250), "flat": (70, 210), "pattern": (60, 190)}[kind]
    tint = {"paper": 5, "flat": 25}.get(kind, 15)
    base = tensor(rng.uniform(lo, hi, (B, 1, 1, 1)) + rng.uniform(-tint, tint, (B, 3, 1, 1)))  # (B, 3, 1, 1)
    if kind == "flat":
        return base.repeat(1, 1, S, S)
    if kind == "pattern":
        fields = a.patterns.flatten(0, 1)[torch.from_numpy(scenes.pattern * a.patterns.shape[1]
                                                           + rng.integers(0, a.patterns.shape[1], B))]
        contrast = tensor(rng.choice([-1, 1], (B, 1, 1, 1)) * rng.uniform(35, 60, (B, 1, 1, 1)))
        return base + contrast * fields  # (B, 3, 1, 1) + (B, 1, S, S) -> (B, 3, S, S)
    field = pick(a.texture) * tensor(rng.uniform(3, 7, (B, 1, 1, 1)) if kind == "paper"
                                     else rng.uniform(6, 18, (B, 1, 1, 1)))  # (B, 1, S, S)
    if kind == "textured":  # light falling across the scene
        ramp, slope = torch.linspace(-1, 1, S), tensor(rng.uniform(-25, 25, (B, 2, 1, 1)))
        field += slope[:, :1] * ramp[:, None] + slope[:, 1:] * ramp
    return base + field


def _draw_objects(canvas: torch.Tensor, scenes: Scenes, style: str, a: Assets, S: int) -> None:
    """Alpha-blend every object into its window of `canvas` (B, 3, S, S), in place; one step per window."""
    Q, K = S // 2, scenes.color.shape[1]
    present = np.arange(K) < scenes.count[:, None]  # (B, K)
    for position, (top, left) in enumerate(WINDOWS):
        b, k = np.nonzero(present & (scenes.position == position))  # at most one object per window and image
        if len(b) == 0:
            continue
        sprite = (scenes.shape[b, k] * len(SIZES) + scenes.size[b, k]) * N_VARIANTS + scenes.variant[b, k]
        fill, stroke = a.sprites.index_select(0, torch.from_numpy(sprite)).unbind(1)  # (n, Q, Q) each
        if style == "shaded":
            cover, paint = fill, fill * a.shade[torch.from_numpy(scenes.variant[b, k] % 9)]
        elif style == "outlined":  # the stroke has coverage but no paint: a black outline
            cover, paint = fill, fill - stroke
        elif style == "stroke":
            cover, paint = stroke, 0.8 * stroke
        else:
            cover, paint = fill, fill
        color = COLOR_RGB[scenes.color[b, k]] * torch.from_numpy(scenes.brightness[b, k, None]).float()  # (n, 3)
        rows, cols = slice(top * S // 4, top * S // 4 + Q), slice(left * S // 4, left * S // 4 + Q)
        b = torch.from_numpy(b)
        window = canvas[b, :, rows, cols]  # (n, 3, Q, Q)
        canvas[b, :, rows, cols] = torch.addcmul(paint[:, None] * color[:, :, None, None], window, 1 - cover[:, None])
