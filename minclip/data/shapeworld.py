"""ShapeWorld: an offline world of captioned images, rendered on the fly, deterministic by seed.

CLIP learned from 400M web image-text pairs (§2.2). This world is small enough to train on in CPU-minutes and
structured enough to show the paper's phenomena:
- zero-shot transfer to classes never seen in training: some colour-shape pairs (`holdout_pairs`) appear in no
  training image and no caption, yet their words do, so a model can compose them;
- prompt sensitivity (`templates`), weakness on specialised tasks (count, position, size), and robustness under
  distribution shift (`domains`: renditions and corruptions of the same scenes).

    sw = ShapeWorld(seed=0)
    images, captions = sw.pretraining(10_000, seed=0)                       # uint8 (B, 3, 32, 32), list[str]
    images, labels, classnames = sw.classification("color_shape", "unseen")  # labels index the 64 classnames
"""
import argparse
import hashlib
import json
import textwrap
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from minclip.data import render
from minclip.data.render import COLORS, DOMAINS, PATTERNS, POSITIONS, SHAPES, SIZES
from minclip.io import atomic_save, data_dir

TASKS = {  # task -> class names
    "color_shape": [f"{c} {s}" for c in COLORS for s in SHAPES],
    "shape": list(SHAPES), "color": list(COLORS), "count": ["one", "two", "three"],
    "position": list(POSITIONS), "size": list(SIZES),
    "pattern": list(PATTERNS),  # the background's texture, which only the patterned domain draws
}
# Zero-shot prompts (CLIP §3.1.4) in the captions' own words: each template also occurs as a caption form.
TEMPLATES = {
    "color_shape": ["a {}.", "a photo of a {}.", "a picture of a {}.", "an image of a {}."],
    "shape": ["a {}.", "a photo of a {}.", "a picture of a {}.", "an image of a {}."],
    "color": ["a {} shape.", "a photo of a {} shape.", "a picture of a {} shape.", "an image of a {} shape."],
    "size": ["a {} shape.", "a photo of a {} shape.", "a picture of a {} shape.", "an image of a {} shape."],
    "position": ["a shape in the {}.", "a photo of a shape in the {}.", "a picture of a shape in the {}."],
    "count": ["the number of shapes is {}.", "a picture where the number of shapes is {}."],
    "pattern": ["on a {} background.", "a {} background."],
}
# Tasks whose prompts fill the tokenizer's corpus. The pattern task came later, and its words are in the captions
# already ("... on a striped background"); leaving its prompts out keeps the tokenizers of earlier runs unchanged.
CORPUS_TASKS = ("color_shape", "shape", "color", "count", "position", "size")
SPLITS = ("train", "test", "unseen")
CAPTION_STYLES = ("varied", "simple", "complete")  # ShapeWorld.pretraining(caption_style=...)
DEFAULT_MIX = {"photo": 0.4, "sketch": 0.1, "cartoon": 0.1, "patterned": 0.1, "noisy": 0.1, "blur": 0.1,
               "grayscale": 0.1}
DOMAIN_PHRASES = {"photo": ["a photo of "], "sketch": ["a sketch of ", "a drawing of "], "cartoon": ["a cartoon of "],
                  "patterned": ["a photo of "], "noisy": ["a noisy photo of ", "a grainy photo of "],
                  "blur": ["a blurry photo of "], "grayscale": ["a black and white photo of "]}
PLURALS = {s: s + ("es" if s.endswith("s") else "s") for s in SHAPES}
NUMBERS = ("one", "two", "three")
CACHE_VERSION = 1  # bump when rendering or captions change, so that old caches are not reused


class Classification(NamedTuple):
    images: torch.Tensor  # uint8 (B, 3, H, W)
    labels: torch.Tensor  # int64 (B,)
    classnames: list


class Pretraining(NamedTuple):
    images: torch.Tensor  # uint8 (B, 3, H, W)
    captions: list


class ShapeWorld:
    """The world: fixed by `seed` (which colour-shape pairs are held out) and `image_size` (32, 64, 96, ...)."""
    COLORS, SHAPES, TASKS, SPLITS = list(COLORS), list(SHAPES), list(TASKS), list(SPLITS)

    def __init__(self, seed: int = 0, image_size: int = 32):
        _check_seed(seed, "seed")
        if not isinstance(image_size, int) or image_size % 4 or not 32 <= image_size <= 128:
            raise ValueError(f"image_size must be a multiple of 4 from 32 to 128 (e.g. 32, 64, 96; resize for larger "
                             f"models with minclip.data.transforms.clip_preprocess); got {image_size!r}")
        self.seed, self.image_size = seed, image_size
        # One held-out shape per colour, a seeded permutation: every colour and every shape still occurs in
        # training, so that the words of each held-out pair are known, only never together.
        held = np.random.default_rng([seed, 99]).permutation(len(SHAPES))
        self.holdout_pairs = [(COLORS[c], SHAPES[s]) for c, s in enumerate(held)]
        self._unseen = np.array([c * len(SHAPES) + s for c, s in enumerate(held)])
        self._seen = np.setdiff1d(np.arange(len(COLORS) * len(SHAPES)), self._unseen)
        self.domains = list(DOMAINS)

    @staticmethod
    def templates(task: str) -> list:
        """Zero-shot prompt templates for `task`, each with one "{}" for the class name."""
        _check_choice(task, TASKS, "task")
        return list(TEMPLATES[task])

    def classification(self, task: str, split: str = "test", domain: str = "photo", n: int = 1000, seed: int = 0,
                       cache: bool = False) -> Classification:
        """A labelled view: -> (images uint8 (B, 3, H, W), labels int64 (B,), classnames of the task).

        split "train" and "test" hold the seen colour-shape pairs (from disjoint seed streams); "unseen" only the
        held-out pairs. Labels are balanced over the classes present (counts differ by at most one) and always
        index the task's full class list. The same (task, split, n, seed) gives the same scenes in every domain.
        The "pattern" task (the background's texture) exists only in the patterned domain, which alone draws one.
        """
        _check_choice(task, TASKS, "task"), _check_choice(split, SPLITS, "split")
        _check_choice(domain, DOMAINS, "domain"), _check_count(n), _check_seed(seed, "seed")
        if task == "pattern" and domain != "patterned":
            raise ValueError(f"the pattern task labels the background's texture, which only the patterned domain "
                             f"draws; pass domain='patterned', not {domain!r}")
        params = dict(kind="classification", task=task, split=split, domain=domain, n=n, seed=seed)
        return self._cached(params, cache, lambda: self._classification(task, split, domain, n, seed))

    def pretraining(self, n: int, seed: int = 0, domains=None, objects=(1, 3), caption_style: str = "varied",
                    cache: bool = False) -> Pretraining:
        """Image-caption pairs for CLIP pre-training: -> (images uint8 (B, 3, H, W), captions list[str]).

        domains: None (DEFAULT_MIX), a list (equal weights) or a dict of weights. objects: (min, max) objects per
        image, within 1..3. caption_style: "varied" (alt-text-like, some attributes left out), "simple" (the
        main object's colour and shape in a zero-shot template: the easiest curriculum) or "complete" (every object
        by its colour and shape, "a photo of a red circle and a blue square": the captions that ask for binding,
        minclip.binding). Only seen pairs occur.
        """
        _check_count(n), _check_seed(seed, "seed")
        _check_choice(caption_style, CAPTION_STYLES, "caption_style")
        mix, objects = _domain_mix(domains), _check_objects(objects)
        params = dict(kind="pretraining", n=n, seed=seed, domains=mix, objects=objects, caption_style=caption_style)
        return self._cached(params, cache, lambda: self._pretraining(n, seed, mix, objects, caption_style))

    def caption_corpus(self, n: int = 20_000, seed: int = 0) -> list:
        """Text to train a small tokenizer on: n pre-training captions, plus every task's templates filled with
        every class name. Renders nothing."""
        _check_count(n), _check_seed(seed, "seed")
        scenes, domains = self._pretraining_scenes(n, seed, DEFAULT_MIX, (1, 3))
        captions = _captions(scenes, domains, np.random.default_rng([self.seed, 0, seed, 2]), "varied")
        return captions + [t.format(c) for task in CORPUS_TASKS for t in TEMPLATES[task] for c in TASKS[task]]

    def _classification(self, task, split, domain, n, seed) -> Classification:
        rng = np.random.default_rng([self.seed, 1 + SPLITS.index(split), list(TASKS).index(task), seed, 0])
        pairs = self._seen if split != "unseen" else self._unseen
        attribute = {"color_shape": pairs, "shape": pairs % len(SHAPES), "color": pairs // len(SHAPES)}
        classes = np.unique(attribute.get(task, np.arange(len(TASKS[task]))))
        labels = classes[rng.permutation(n) % len(classes)]  # balanced: counts differ by at most one
        counts = labels + 1 if task == "count" else np.ones(n, dtype=np.int64)
        scenes = _sample_scenes(rng, pairs, counts, corners_only=task == "count")
        if task in attribute:  # choose the main object's pair among those of its class
            main = np.empty(n, dtype=np.int64)
            for value in classes:
                mask = labels == value
                main[mask] = rng.choice(pairs[attribute[task] == value], mask.sum())
            scenes.color[:, 0], scenes.shape[:, 0] = main // len(SHAPES), main % len(SHAPES)
        elif task in ("position", "size"):
            getattr(scenes, task)[:, 0] = labels
        elif task == "pattern":
            scenes.pattern[:] = labels
        render_rng = np.random.default_rng([self.seed, 1 + SPLITS.index(split), list(TASKS).index(task), seed, 1,
                                            list(DOMAINS).index(domain)])
        images = render.render(scenes, domain, self.image_size, render_rng)
        return Classification(images, torch.from_numpy(labels).long(), list(TASKS[task]))

    def _pretraining_scenes(self, n, seed, mix, objects) -> tuple:
        rng = np.random.default_rng([self.seed, 0, seed, 0])
        scenes = _sample_scenes(rng, self._seen, rng.integers(objects[0], objects[1] + 1, n))
        names = list(mix)
        domains = np.array(names)[rng.choice(len(names), n, p=np.array([mix[d] for d in names]))]
        return scenes, domains

    def _pretraining(self, n, seed, mix, objects, caption_style) -> Pretraining:
        scenes, domains = self._pretraining_scenes(n, seed, mix, objects)
        images = torch.empty(n, 3, self.image_size, self.image_size, dtype=torch.uint8)
        for d in mix:  # one batched render per domain
            index = np.flatnonzero(domains == d)
            rng = np.random.default_rng([self.seed, 0, seed, 1, list(DOMAINS).index(d)])
            images[index] = render.render(scenes.subset(index), d, self.image_size, rng)
        captions = _captions(scenes, domains, np.random.default_rng([self.seed, 0, seed, 2]), caption_style)
        return Pretraining(images, captions)

    def _cached(self, params: dict, cache: bool, make):
        """make(), or its copy under data_dir()/shapeworld/, keyed by every parameter that changes the result."""
        if not cache:
            return make()
        key = dict(params, world_seed=self.seed, image_size=self.image_size, version=CACHE_VERSION)
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        path = data_dir() / "shapeworld" / f"{params['kind']}-{self.image_size}px-{digest}.pt"
        kind = Classification if params["kind"] == "classification" else Pretraining
        if path.exists():
            return kind(**torch.load(path, weights_only=True))
        result = make()
        atomic_save(result._asdict(), path)
        return result


def _sample_scenes(rng: np.random.Generator, pairs: np.ndarray, counts: np.ndarray, corners_only: bool = False):
    """Scenes with counts[i] objects, every object's colour-shape pair drawn from `pairs`."""
    n, K = len(counts), int(counts.max())
    pair = rng.choice(pairs, (n, K))
    repeat = rng.random(n) < 0.3  # "two blue squares": some scenes repeat their main object
    pair[repeat] = pair[repeat, :1]
    corners = np.argsort(rng.random((n, 4)), 1)[:, :K]  # distinct corners for the objects of one image
    alone = counts == 1
    if not corners_only:  # a lone object may also sit in the centre
        corners[alone, 0] = rng.integers(0, len(POSITIONS), alone.sum())
    return render.Scenes(counts, pair // len(SHAPES), pair % len(SHAPES), rng.integers(0, len(SIZES), (n, K)),
                         corners, rng.integers(0, render.N_VARIANTS, (n, K)), rng.uniform(0.85, 1.1, (n, K)),
                         rng.integers(0, len(PATTERNS), n))


def _captions(scenes, domains, rng: np.random.Generator, style: str) -> list:
    """One caption per scene (domains: the domain name of each)."""
    u = rng.random((len(domains), 10))  # every random decision, drawn at once
    form = np.searchsorted([0.76, 0.88, 0.95], u[:, 1])  # main object named by colour+shape, shape, colour, neither
    rows = zip(np.asarray(domains).tolist(), scenes.count.tolist(), scenes.color.tolist(), scenes.shape.tolist(),
               scenes.size.tolist(), scenes.position.tolist(), scenes.pattern.tolist(), form.tolist(), u.tolist())
    return [_caption(*row, style) for row in rows]


def _caption(d, n, color, shape, size, position, pattern, form, u, style) -> str:
    """Alt-text-like: most captions name the main object's colour and shape; many leave other things out."""
    pick = lambda options, x: options[int(x * len(options))]
    c, s = COLORS[color[0]], SHAPES[shape[0]]
    if style == "simple":
        return pick(TEMPLATES["color_shape"], u[0]).format(f"{c} {s}")
    if style == "complete":  # every object named in full (colour words even in grayscale: written for the scene)
        named = [f"a {COLORS[color[k]]} {SHAPES[shape[k]]}" for k in range(n)]
        if n == 2 and u[3] < 0.35:
            text = f"{named[0]} {_relation(position[0], position[1], u[4])} {named[1]}"
        else:
            text = named[0] if n == 1 else ", ".join(named[:-1]) + " and " + named[-1]
        return pick(["", "a photo of ", "a picture of ", "an image of "], u[8]) + text + ("." if u[0] < 0.5 else "")
    if d == "grayscale":  # black-and-white photos rarely get colour words
        form = {0: 1, 2: 3}.get(form, form)
    words = [SIZES[size[0]]] if u[2] < (0.6 if form == 3 else 0.3) else []
    words += [c] if form in (0, 2) else []
    words += [s] if form in (0, 1) else ["shape"]
    text = "a " + " ".join(words)
    other = lambda k: f"a {'' if d == 'grayscale' else COLORS[color[k]] + ' '}{SHAPES[shape[k]]}"
    if form == 0 and n > 1 and len(set(zip(color[:n], shape[:n]))) == 1 and u[3] < 0.5:
        text = f"{NUMBERS[n - 1]} {c} {PLURALS[s]}"
    elif n == 2 and u[3] < 0.35:
        text += f" {_relation(position[0], position[1], u[4])} {other(1)}"
    elif n > 1 and u[3] < 0.7:
        others = [other(k) for k in range(1, n)]
        text = ", ".join([text] + others[:-1]) + " and " + others[-1]
    elif u[5] < 0.3 or (form == 3 and len(words) == 1):
        text += f" in the {POSITIONS[position[0]]}"
    if d == "patterned" and u[6] < 0.5:
        text += f" on a {PATTERNS[pattern]} background"
    if u[7] < 0.5:
        text = pick(DOMAIN_PHRASES[d], u[8]) + text
    elif u[7] < 0.7:
        text = pick(["a picture of ", "an image of "], u[8]) + text
    if u[9] < 0.05:  # some alt-text states the count, and nothing else
        text = f"a picture where the number of shapes is {NUMBERS[n - 1]}"
    elif u[9] < 0.15:
        text += f", the number of shapes is {NUMBERS[n - 1]}"
    return text + ("." if u[0] < 0.5 else "")


def _relation(here: int, there: int, u: float) -> str:
    """Where corner `here` is relative to corner `there` (corners 0..3: top left, top right, bottom left, ...)."""
    options = []
    if here % 2 != there % 2:
        options.append("left of" if here % 2 < there % 2 else "right of")
    if here // 2 != there // 2:
        options.append("above" if here // 2 < there // 2 else "below")
    return options[int(u * len(options))]


class ShapeWorldCaptions(torch.utils.data.Dataset):
    """Pre-training pairs as a Dataset: item i is (image uint8 (3, H, W), caption). Renders all n up front."""

    def __init__(self, world: ShapeWorld, n: int, seed: int = 0, transform=None, **pretraining_kwargs):
        self.images, self.captions = world.pretraining(n, seed, **pretraining_kwargs)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> tuple:
        image = self.images[i]
        return (self.transform(image) if self.transform else image), self.captions[i]


class ShapeWorldClassification(torch.utils.data.Dataset):
    """A classification view as a Dataset: item i is (image uint8 (3, H, W), label); `.classnames` names them."""

    def __init__(self, world: ShapeWorld, task: str, split: str = "test", domain: str = "photo", n: int = 1000,
                 seed: int = 0, transform=None, cache: bool = False):
        self.images, self.labels, self.classnames = world.classification(task, split, domain, n, seed, cache)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple:
        image = self.images[i]
        return (self.transform(image) if self.transform else image), int(self.labels[i])


def gallery(world: ShapeWorld, n_scenes: int = 6, seed: int = 0):
    """A matplotlib Figure: the same n_scenes scenes (columns) in every domain (rows), photo captions on top."""
    import matplotlib.pyplot as plt  # here, not at the top: importing minclip should not load matplotlib

    _check_count(n_scenes)
    scenes, _ = world._pretraining_scenes(n_scenes, seed, {"photo": 1.0}, (1, 3))
    captions = _captions(scenes, np.array(["photo"] * n_scenes), np.random.default_rng([seed, 7]), "varied")
    fig, axes = plt.subplots(len(DOMAINS), n_scenes, figsize=(1.7 * n_scenes, 1.5 * len(DOMAINS) + 0.6),
                             squeeze=False)
    for row, domain in enumerate(DOMAINS):
        images = render.render(scenes, domain, world.image_size, np.random.default_rng([seed, row]))
        for col, ax in enumerate(axes[row]):
            ax.imshow(images[col].permute(1, 2, 0).numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(textwrap.fill(captions[col], 22), fontsize=7)
        axes[row, 0].set_ylabel(domain, fontsize=9)
    fig.tight_layout()
    return fig


def _check_choice(value, options, what: str) -> None:
    if value not in options:
        raise ValueError(f"unknown {what} {value!r}; choose one of {list(options)}")


def _check_count(n) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"n must be a positive number of images, got {n!r}")


def _check_seed(seed, what: str) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {seed!r}")


def _check_objects(objects) -> tuple:
    if (not isinstance(objects, (tuple, list)) or len(objects) != 2
            or not all(isinstance(k, int) for k in objects) or not 1 <= objects[0] <= objects[1] <= 3):
        raise ValueError(f"objects must be (min, max) objects per image with 1 <= min <= max <= 3, got {objects!r}")
    return int(objects[0]), int(objects[1])


def _domain_mix(domains) -> dict:
    """None, a list of domain names or a dict of weights -> {domain: probability}, in DOMAINS order."""
    if domains is None:
        domains = DEFAULT_MIX
    if isinstance(domains, str) or not isinstance(domains, (list, tuple, dict)) or not domains:
        raise ValueError(f"domains must be a non-empty list of domain names or a dict of weights, got {domains!r}")
    weights = dict(domains) if isinstance(domains, dict) else {d: 1.0 for d in domains}
    for d, w in weights.items():
        _check_choice(d, DOMAINS, "domain")
        if not w >= 0:
            raise ValueError(f"domain weights must be >= 0, got {d}: {w!r}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"domain weights must not all be zero, got {weights}")
    return {d: weights[d] / total for d in DOMAINS if weights.get(d, 0) > 0}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Draw the ShapeWorld gallery: every domain, the same scenes.")
    parser.add_argument("--gallery", required=True, help="output image, e.g. docs/shapeworld_gallery.png")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    Path(args.gallery).parent.mkdir(parents=True, exist_ok=True)
    gallery(ShapeWorld(image_size=args.image_size), seed=args.seed).savefig(args.gallery, dpi=80)
    print(f"wrote {args.gallery}")
