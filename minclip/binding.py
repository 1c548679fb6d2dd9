"""Binding: does the model know which colour goes with which shape, and which object is left of which?

CLIP's best-known failure after specialised data is composition (Yuksekgonul et al. 2023, "When and why
vision-language models behave like bags-of-words", ARO): a contrastive batch of random web pairs can almost always
be solved from the bag of words alone, so nothing forces the text tower to care that "a red circle and a blue
square" is not "a blue circle and a red square". This file measures that on ShapeWorld, and holds the fix's half
that is data: NegCLIP's hard-negative captions (the loss's half is minclip.loss.negclip_loss).

The benchmark is built in minimal pairs, as Winoground is (Thrush et al. 2022): each item is two images, A and B,
rendered with the same background, noise and sprites, that differ in one thing, and two captions that use the
same words, one true of each image. Four kinds of difference (NEGATIVE_TYPES):

    swap_attribute     "a red circle and a blue square"      vs  "a blue circle and a red square"
    swap_relation      "a red circle left of a blue square"  vs  "a blue square left of a red circle"
    replace_attribute  "a red circle and a blue square"      vs  "a green circle and a blue square"
    replace_object     "a red circle and a blue square"      vs  "a red star and a blue square"

Scores, both directions (chance 50%): `text`, how often an image's true caption outscores the other caption, and
`image`, how often a caption's true image outscores the other image. Because every caption is the true caption of
one image and the negative of the other, a model that sees no image (`CaptionLM`, a bigram model of the training
captions) scores exactly 50% on both: the negatives cannot leak through their wording (SugarCrepe, Hsieh et al.
2023, found that many benchmarks' do). `one_sided` is the ARO-style measure, each image against its own negative
only, where a leak would show; it is ~50% here too.

    items = benchmark(ShapeWorld(), "swap_attribute", n=500, split="seen")
    scores = binding_scores(pair_scorer(model, tokenizer, preprocess), items)   # {"text": ..., "image": ...}
"""
import re
from collections import Counter
from typing import NamedTuple

import numpy as np
import torch

from .data import render
from .data.render import COLORS, POSITIONS, SHAPES, SIZES
from .data.shapeworld import NUMBERS, PLURALS, _relation

NEGATIVE_TYPES = ("swap_attribute", "swap_relation", "replace_attribute", "replace_object")
SPLITS = ("seen", "unseen")  # colour-shape pairs of training only, or at least one never seen in training
# Corner pairs that share a row or a column, so that exactly one relation word is true: (here, there).
ALIGNED = np.array([(0, 1), (1, 0), (2, 3), (3, 2), (0, 2), (2, 0), (1, 3), (3, 1)])
RELATIONS = ("left of", "right of", "above", "below")


class Items(NamedTuple):
    """n minimal pairs of one kind: caption_a is true of image_a and the hard negative of image_b, and vice versa."""
    kind: str
    images_a: torch.Tensor  # uint8 (n, 3, H, W)
    images_b: torch.Tensor  # uint8 (n, 3, H, W)
    captions_a: list
    captions_b: list


def describe(colors, shapes) -> str:
    """'a red circle', 'a red circle and a blue square', 'a red circle, a blue square and a green star': the
    training captions' own way of listing objects (minclip/data/shapeworld.py)."""
    names = [f"a {COLORS[c]} {SHAPES[s]}" for c, s in zip(colors, shapes)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def benchmark(world, kind: str, n: int = 500, split: str = "seen", seed: int = 0, domain: str = "photo") -> Items:
    """n minimal pairs of `kind` (one of NEGATIVE_TYPES), deterministic in (world, kind, split, seed).

    Scenes have two objects (swap_relation) or two or three, with distinct colours and distinct shapes, so that
    every caption names each object unambiguously. split "seen": every colour-shape pair in both images was seen
    in training; "unseen": each item holds at least one of the world's held-out pairs.
    """
    if kind not in NEGATIVE_TYPES:
        raise ValueError(f"unknown negative type {kind!r}; choose one of {list(NEGATIVE_TYPES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use 'seen' (training pairs only) or 'unseen' (held-out pairs)")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of items, got {n!r}")
    rng = np.random.default_rng([world.seed, 7, NEGATIVE_TYPES.index(kind), SPLITS.index(split), seed])
    a, b, rel = _scenes(rng, kind, 40 * n)
    keep = _allowed(world, a, b, split)
    if keep.sum() < n:
        raise RuntimeError(f"only {keep.sum()} valid {kind} items were drawn for n={n}; draw more candidates")
    index = np.flatnonzero(keep)[:n]
    flip = rng.random(len(index)) < 0.5  # A or B is the drawn scene with equal odds: neither caption is "original"
    a, b, rel = a.subset(index), b.subset(index), rel[index]
    a, b = _where(flip, b, a), _where(flip, a, b)
    captions = lambda s: [_caption(kind, s, i, rel[i]) for i in range(n)]
    images = lambda s: render.render(s, domain, world.image_size, np.random.default_rng([world.seed, 8, seed]))
    return Items(kind, images(a), images(b), captions(a), captions(b))  # the same render seed: only the objects differ


def _scenes(rng, kind: str, N: int) -> tuple:
    """N candidate pairs of scenes (A, B) and, for relations, the corner pair of A's two objects."""
    K = 3
    count = np.full(N, 2) if kind == "swap_relation" else rng.integers(2, K + 1, N)
    colors = np.argsort(rng.random((N, len(COLORS))), 1)[:, :K + 1]  # distinct; the (K+1)-th is the replacement
    shapes = np.argsort(rng.random((N, len(SHAPES))), 1)[:, :K + 1]
    if kind == "swap_relation":
        rel = ALIGNED[rng.integers(0, len(ALIGNED), N)]
        position = np.concatenate([rel, np.zeros((N, 1), dtype=rel.dtype)], 1)
    else:
        rel = np.zeros((N, 2), dtype=np.int64)
        position = np.argsort(rng.random((N, 4)), 1)[:, :K]
    size, variant = rng.integers(0, len(SIZES), (N, K)), rng.integers(0, render.N_VARIANTS, (N, K))
    a = render.Scenes(count, colors[:, :K], shapes[:, :K], size, position, variant, rng.uniform(0.85, 1.1, (N, K)),
                      rng.integers(0, len(render.PATTERNS), N))
    b = a._replace(color=a.color.copy(), shape=a.shape.copy(), position=a.position.copy())
    k = rng.integers(0, count)  # the object a replacement changes
    rows = np.arange(N)
    if kind == "swap_attribute":
        b.color[:, [0, 1]] = a.color[:, [1, 0]]
    elif kind == "swap_relation":
        b.position[:, [0, 1]] = a.position[:, [1, 0]]
    elif kind == "replace_attribute":
        b.color[rows, k] = colors[:, K]
    else:
        b.shape[rows, k] = shapes[:, K]
    return a, b, rel


def _allowed(world, a, b, split: str) -> np.ndarray:
    """(N,) bool: the candidates whose colour-shape pairs fit the split."""
    held = np.zeros((len(COLORS), len(SHAPES)), dtype=bool)
    for c, s in world.holdout_pairs:
        held[COLORS.index(c), SHAPES.index(s)] = True
    used = np.arange(a.color.shape[1]) < a.count[:, None]  # (N, K) the slots in use
    unseen = (held[a.color, a.shape] | held[b.color, b.shape]) & used
    return unseen.any(1) if split == "unseen" else ~unseen.any(1)


def _where(mask, x, y):
    """Scenes: x's rows where mask, y's elsewhere."""
    pick = lambda u, v: np.where(mask.reshape(-1, *[1] * (u.ndim - 1)), u, v)
    return render.Scenes(*(pick(u, v) for u, v in zip(x, y)))


def _caption(kind, scenes, i, rel) -> str:
    n = int(scenes.count[i])
    colors, shapes = scenes.color[i, :n], scenes.shape[i, :n]
    if kind != "swap_relation":
        return describe(colors, shapes)
    # Both images of an item have their two objects on the same two corners `rel` = (here, there), the other way
    # round in B; so one relation word serves both captions, and each names first the object that is `here`.
    first = 0 if scenes.position[i, 0] == rel[0] else 1
    second = 1 - first
    return (f"{describe(colors[[first]], shapes[[first]])} {_relation(rel[0], rel[1], 0.0)} "
            f"{describe(colors[[second]], shapes[[second]])}")


# ---- scoring ---------------------------------------------------------------------------------------------------

def pair_scorer(model, tokenizer, preprocess, batch_size: int = 256):
    """score(images uint8 (n, 3, H, W), captions n strings) -> (n,) the score of image i with caption i: the cosine
    similarity of their embeddings (CLIP, SigLIP, LiT, bag-of-words CLIP) or log p(caption | image) for a model
    that predicts text (captioning, bag-of-words prediction). Higher means a better match."""
    from .zeroshot import _inference, image_features, scores_likelihood

    def tokens(captions, device):
        return tokenizer(list(captions), context_length=model.context_length, truncate=True).to(device)

    def score(images, captions):
        with _inference(model) as device:
            if scores_likelihood(model):  # (b, b) every image with every caption of its chunk: keep the diagonal
                out = [model.prompt_log_likelihood(preprocess(x.to(device)), tokens(c, device)).diagonal().float()
                       for x, c in zip(images.split(64), _chunks(captions, 64))]
                return torch.cat(out).cpu()
            image = image_features(model, images, preprocess, batch_size)  # (n, E)
            text = torch.cat([model.encode_text(tokens(c, device)).float()
                              for c in _chunks(captions, batch_size)])  # (n, E)
            return (image * text).sum(1).cpu()
    return score


def _chunks(items: list, size: int) -> list:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _wins(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 where x > y, 0.5 on a tie (a coin flip), 0 where x < y."""
    return (x > y).double() + 0.5 * (x == y).double()


def binding_scores(score, items: Items) -> dict:
    """{"text", "image", "one_sided"}: fractions of comparisons the true match wins (chance 0.5)."""
    aa, bb = score(items.images_a, items.captions_a), score(items.images_b, items.captions_b)  # true pairs
    ab, ba = score(items.images_a, items.captions_b), score(items.images_b, items.captions_a)  # image, negative
    text = torch.cat([_wins(aa, ab), _wins(bb, ba)])  # each image: its caption vs the other one
    image = torch.cat([_wins(aa, ba), _wins(bb, ab)])  # each caption: its image vs the other one
    return {"text": text.mean().item(), "image": image.mean().item(), "one_sided": _wins(aa, ab).mean().item()}


class CaptionLM:
    """The blind baseline: a bigram language model of training captions, with add-alpha smoothing. It scores a
    caption by log p(caption) and never looks at the image, so any score above chance would mean that the
    negatives can be told from the true captions by their wording alone."""

    def __init__(self, captions, alpha: float = 0.1):
        sentences = [self.words(c) for c in captions]
        self.unigrams = Counter(w for s in sentences for w in s[:-1])
        self.bigrams = Counter(pair for s in sentences for pair in zip(s[:-1], s[1:]))
        self.vocab, self.alpha = len({w for s in sentences for w in s}) + 1, alpha  # +1: an unknown word

    @staticmethod
    def words(caption: str) -> list:
        return ["<s>"] + re.findall(r"[a-z]+", caption.lower()) + ["</s>"]

    def log_prob(self, caption: str) -> float:
        s = self.words(caption)
        return sum(np.log((self.bigrams[p] + self.alpha) / (self.unigrams[p[0]] + self.alpha * self.vocab))
                   for p in zip(s[:-1], s[1:]))

    def scorer(self):
        """A score(images, captions) like pair_scorer's, that ignores the images."""
        return lambda images, captions: torch.tensor([self.log_prob(c) for c in captions], dtype=torch.float64)


def evaluate_binding(model, tokenizer, preprocess, world, n: int = 500, seed: int = 0,
                     blind_captions: int = 20_000) -> dict:
    """The whole benchmark for one model -> a JSON-ready dict: for each negative type and split, the model's
    {"text", "image", "one_sided"} and the blind baseline's; single-object zero-shot (64 colour-shape classes,
    seen and held-out pairs) beside it; one example caption pair per type. n items (2n images) per type and split."""
    from .zeroshot import shapeworld_zeroshot

    score = pair_scorer(model, tokenizer, preprocess)
    blind = CaptionLM(world.caption_corpus(blind_captions, seed=seed)[:blind_captions]).scorer()
    result = {"n_items": n, "seed": seed, "chance": 0.5, "types": {}, "blind": {}, "examples": {},
              "single_object_zeroshot": shapeworld_zeroshot(model, tokenizer, preprocess, world, n=max(n, 64),
                                                            seed=seed)}
    for kind in NEGATIVE_TYPES:
        result["types"][kind], result["blind"][kind] = {}, {}
        for split in SPLITS:
            items = benchmark(world, kind, n, split, seed)
            result["types"][kind][split] = binding_scores(score, items)
            result["blind"][kind][split] = binding_scores(blind, items)
        result["examples"][kind] = [items.captions_a[0], items.captions_b[0]]
    return result


# ---- NegCLIP's hard negatives for training -----------------------------------------------------------------------

_KINDS = {**{c: "color" for c in COLORS}, **{s: "shape" for s in SHAPES}, **{p: "plural" for p in PLURALS.values()},
          **{n: "number" for n in NUMBERS}, **{s: "size" for s in SIZES}}
_RELATION = re.compile(r"\b(left of|right of|above|below)\b")
_OBJECT = re.compile(r"\ba ((?:(?:" + "|".join(SIZES + COLORS) + r") )*(?:" + "|".join(SHAPES) + r"|shape))\b")


def hard_negative(caption: str, rng: np.random.Generator, holdout=()) -> str:
    """A caption with the same words in a wrong order, or, where the caption has nothing to swap, one word changed
    (NegCLIP, Yuksekgonul et al. 2023 §5). Swaps, picked at random among those the caption allows: two colours,
    two shapes, or the two objects around a relation. Replacements: a colour, shape, number or size word.
    holdout: (colour, shape) pairs that must not be named (ShapeWorld's held-out pairs stay out of training)."""
    words = caption.split(" ")
    bare = [w.strip(".,") for w in words]
    by_kind = {}
    for i, w in enumerate(bare):
        by_kind.setdefault(_KINDS.get(w), []).append(i)
    options, ordered = [], _RELATION.search(caption) is not None  # in a relation, the order of the objects is meant
    for kind in ("color", "shape"):
        slots = by_kind.get(kind, [])
        for x in range(len(slots)):
            for y in range(x + 1, len(slots)):
                swapped = _swapped(words, bare, slots[x], slots[y])
                # in a list, objects that only change places ("a pink square and a pink heart" -> "a pink heart and
                # a pink square") say the same thing: a true caption, not a negative
                if ordered or Counter(_OBJECT.findall(swapped)) != Counter(_OBJECT.findall(caption)):
                    options.append(swapped)
    relation = _swap_relation(caption)
    if relation:
        options.append(relation)
    options = [o for o in options if o != caption and not _names_holdout(o, holdout)]
    if not options:  # nothing to swap: change one word
        for i, w in enumerate(bare):
            kind = _KINDS.get(w)
            group = {"color": COLORS, "shape": SHAPES, "plural": tuple(PLURALS.values()), "number": NUMBERS,
                     "size": SIZES}.get(kind, ())
            options += [_swapped(words, bare, i, None, other) for other in group if other != w]
        options += [caption.replace(f"in the {p}", f"in the {q}") for p in POSITIONS if f"in the {p}" in caption
                    for q in POSITIONS if q != p]
        options = [o for o in options if o != caption and not _names_holdout(o, holdout)]
    if not options:
        raise ValueError(f"caption {caption!r} has no colour, shape, number, size or position word to swap or "
                         "change, so it has no hard negative; --hard-negatives needs ShapeWorld's captions "
                         "(--data shapeworld)")
    return options[int(rng.integers(len(options)))]


def hard_negatives(captions, seed: int, holdout=(), first: int = 0) -> list:
    """One hard negative per caption. Caption i's is drawn with its own generator, seeded by (seed, first + i):
    a function of the caption, the seed and its place in the batch only, so a resumed run draws the same ones and a
    rank holding rows first.. of the batch draws what one process holding the whole batch would."""
    return [hard_negative(c, np.random.default_rng([seed, first + i]), holdout) for i, c in enumerate(captions)]


def _swapped(words, bare, i, j, replacement=None) -> str:
    """words with the bare words at i and j exchanged (or word i replaced), punctuation kept in place."""
    out = list(words)
    if replacement is not None:
        out[i] = words[i].replace(bare[i], replacement)
    else:
        out[i], out[j] = words[i].replace(bare[i], bare[j]), words[j].replace(bare[j], bare[i])
    return " ".join(out)


def _swap_relation(caption: str) -> str:
    """'... a red circle left of a blue square ...' -> '... a blue square left of a red circle ...', or ''."""
    match = _RELATION.search(caption)
    if not match:
        return ""
    before = list(_OBJECT.finditer(caption, 0, match.start()))
    after = _OBJECT.match(caption, match.end() + 1)
    if not before or not after or before[-1].end() != match.start() - 1:
        return ""
    first = before[-1]
    return (caption[:first.start()] + after.group(0) + caption[first.end():after.start()] + first.group(0)
            + caption[after.end():])


def _names_holdout(caption: str, holdout) -> bool:
    """Does the caption name one of the held-out colour-shape pairs ("a blue heart", "two blue hearts")?"""
    words = [w.strip(".,") for w in caption.split(" ")]
    plural = {p: s for s, p in PLURALS.items()}
    return any((c, plural.get(s, s)) in holdout for c, s in zip(words[:-1], words[1:]))
