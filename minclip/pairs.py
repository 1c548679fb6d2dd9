"""Where training pairs come from: a deterministic stream of (image, caption) batches, one per step.

Batch `step` depends only on (seed, step), never on what came before, and rank `r` of `world` takes its r-th slice.
So a resumed run sees exactly the batches an uninterrupted run would have seen, with no data-loader state to save,
and two ranks of B/2 together see exactly the batch of B that one process sees.

    stream = ShapeWorldPairs(ShapeWorld(image_size=32), batch_size=256, seed=0, domains=["photo"])
    images, captions = stream.pairs(step)      # uint8 (B, 3, H, W), B strings

Tokenizing and evaluating are not the stream's job: the objective that reads the pairs does them (minclip/train.py).
"""
from typing import Optional, Sequence

import numpy as np
import torch

from .data.render import DOMAINS
from .data.shapeworld import Pretraining


def step_seed(*keys: int) -> int:
    """A well-mixed 32-bit seed from several integers (numpy's SeedSequence hashes them)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def parse_domains(text: str) -> Optional[list]:
    """The --domains flag -> a list of ShapeWorld domains, or None for 'mix' (ShapeWorld's 7-domain mix)."""
    if text == "mix":
        return None
    domains = [d for d in text.split(",") if d]
    unknown = [d for d in domains if d not in DOMAINS]
    if unknown or not domains:
        raise ValueError(f"--domains {text!r}: unknown {unknown}; use 'mix' or some of {list(DOMAINS)}, "
                         "comma-separated, e.g. photo,sketch")
    return domains


def parse_objects(text: str) -> tuple:
    """The --objects flag 'fewest,most' -> (fewest, most), with 1 <= fewest <= most <= 3."""
    lo_hi = text.split(",")
    if not (len(lo_hi) == 2 and all(k.strip().isdigit() for k in lo_hi) and 1 <= int(lo_hi[0]) <= int(lo_hi[1]) <= 3):
        raise ValueError(f"--objects {text!r}: give fewest,most with 1 <= fewest <= most <= 3, e.g. 1,3")
    return int(lo_hi[0]), int(lo_hi[1])


class _RankSlice:
    """The batch size B of a step and this rank's share of it, B / world rows starting at rank * B / world."""

    def __init__(self, batch_size: int, rank: int, world: int):
        if batch_size % world:
            raise ValueError(f"--batch-size {batch_size} must split evenly over {world} ranks")
        self.batch_size, self.rank, self.local = batch_size, rank, batch_size // world


class ShapeWorldPairs(_RankSlice):
    """`pairs(step)` -> Pretraining(images uint8 (b, 3, H, W), b captions): ShapeWorld scenes rendered for this step.

    world: a ShapeWorld (its image size is the images'); domains: a list, or None for the 7-domain mix; objects:
    (fewest, most) objects a scene; caption_style: 'varied' (alt-text-like) or 'simple'."""

    def __init__(self, world, batch_size: int, seed: int, domains: Optional[Sequence[str]] = ("photo",),
                 objects: tuple = (1, 1), caption_style: str = "varied", rank: int = 0, world_size: int = 1):
        super().__init__(batch_size, rank, world_size)
        self.world, self.seed, self.objects, self.caption_style = world, seed, tuple(objects), caption_style
        self.domains = None if domains is None else list(domains)

    def pairs(self, step: int) -> Pretraining:
        # every rank renders the whole batch of this step and keeps its slice, so that two ranks of B/2 train on
        # exactly the pairs one process of B would (rendering is ~60,000 images/s a core: cheap next to a step)
        batch = self.world.pretraining(self.batch_size, seed=step_seed(self.seed, step, 0), domains=self.domains,
                                       objects=self.objects, caption_style=self.caption_style)
        mine = slice(self.rank * self.local, (self.rank + 1) * self.local)
        return Pretraining(batch.images[mine], batch.captions[mine])

    def corpus(self) -> list:
        """Text to train a small tokenizer on: every caption style and every zero-shot prompt."""
        return self.world.caption_corpus()


class DatasetPairs(_RankSlice):
    """`pairs(step)` from an image-caption dataset (minclip.data.ImageCaptionCSV: `dataset[i]` -> (image uint8
    (3, H, W), caption), `dataset.rows`): a fresh seeded permutation each epoch, and this rank's slice of it."""

    def __init__(self, dataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        super().__init__(batch_size, rank, world_size)
        self.dataset, self.seed = dataset, seed

    def pairs(self, step: int) -> Pretraining:
        n, B = len(self.dataset), self.batch_size
        start = step * B + self.rank * self.local
        epoch = start // n
        order = torch.randperm(n, generator=torch.Generator().manual_seed(step_seed(self.seed, epoch)))
        items = [self.dataset[int(order[(start + i) % n])] for i in range(self.local)]
        return Pretraining(torch.stack([img for img, _ in items]), [cap for _, cap in items])

    def corpus(self) -> list:
        """The caption column alone: decoding every image only to read its caption would be slow."""
        return [row.caption for row in self.dataset.rows]
