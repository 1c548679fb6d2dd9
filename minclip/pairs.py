"""Where training pairs come from: a deterministic stream of (image, caption) batches, one per step.

A resumed run sees exactly the batches an uninterrupted run would have seen, with no data-loader state to save.
For ShapeWorld and a CSV, batch `step` depends only on (seed, step), never on what came before, and rank `r` of
`world` takes its r-th slice: two ranks of B/2 together see exactly the batch of B that one process sees. Shards
are read front to back, so there batch `step` also depends on the number of ranks and of workers (both kept on
--resume).

    stream = ShapeWorldPairs(ShapeWorld(image_size=32), batch_size=256, seed=0, domains=["photo"])
    images, captions = stream.pairs(step)      # uint8 (B, 3, H, W), B strings

Three streams: ShapeWorldPairs (rendered on the fly), DatasetPairs (an image-caption CSV: rows drawn by (seed, step),
decoded in DataLoader workers or in this process, the same pixels either way) and ShardPairs (webdataset tar shards,
streamed; batch `step` also depends on the number of ranks and workers, see minclip/data/shards.py).
Tokenizing and evaluating are not the stream's job: the objective that reads the pairs does them (minclip/train.py).
"""
import itertools
import os
import warnings
from typing import Optional, Sequence

import numpy as np
import torch

from .data import shards
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


def default_workers() -> int:
    """--workers' default: this rank's share of the CPU cores this process may use (torchrun's LOCAL_WORLD_SIZE
    ranks on one machine share them), at least 1 and at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))))


class _Loader:
    """Batches from a DataLoader, one per step, started at the step asked for. The loop asks for steps in order;
    when it jumps (the --minutes timing, then step 0 again), the DataLoader starts over at the new step.

    make(step) -> a DataLoader whose batches are steps step, step + 1, ...; each batch is (images, captions, bad):
    `bad` names the samples a worker could not read, collected in `skipped` (every worker's, in this process);
    warn: name the first three in a warning (ImageCaptionCSV warns from the worker itself)."""

    def __init__(self, make, warn: bool = False):
        self.make, self.warn, self.batches, self.next, self.skipped = make, warn, None, None, {}

    def close(self) -> None:
        self.batches, self.next = None, None  # the DataLoader's iterator, deleted, shuts its workers down

    def __call__(self, step: int) -> Pretraining:
        if step != self.next:
            self.batches = iter(self.make(step))
        self.next = step + 1
        images, captions, bad = next(self.batches)
        for name in bad:
            if self.warn and name not in self.skipped and len(self.skipped) < 3:
                warnings.warn(f"skipped bad sample {name}; the run goes on, and its summary counts them", stacklevel=3)
            self.skipped[name] = None  # an ordered set: each bad sample once
        return Pretraining(images, list(captions))


def _loader_flags(workers: int, pin_memory: bool) -> dict:
    """DataLoader settings for a stream of step batches: prefetch 4 batches a worker; pinned (page-locked) host
    memory makes the copy to a GPU asynchronous."""
    return dict(num_workers=workers, pin_memory=pin_memory, **({"prefetch_factor": 4} if workers else {}))


class _LoaderPairs(_RankSlice):
    """A stream whose batches come from `self.loader`, a _Loader (the subclass makes it)."""

    def pairs(self, step: int) -> Pretraining:
        return self.loader(step)

    def close(self) -> None:
        """Stop the loader's workers now (they also stop when this stream is garbage-collected)."""
        self.loader.close()


class DatasetPairs(_LoaderPairs):
    """`pairs(step)` from an image-caption dataset (minclip.data.ImageCaptionCSV: `dataset[i]` -> (image uint8
    (3, H, W), caption), `dataset.rows`, `dataset.skipped`): a fresh seeded permutation of the rows each epoch, and
    this rank's slice of it.

    workers = 0 decodes in this process, one image after another (the reference); workers = N decodes in N
    DataLoader worker processes while the model trains. The rows of batch `step` are the same either way."""

    def __init__(self, dataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, workers: int = 0,
                 pin_memory: bool = False):
        super().__init__(batch_size, rank, world_size)
        self.dataset, self.seed, self.workers = dataset, seed, workers
        plan = _RowPlan(len(dataset), batch_size, rank * self.local, self.local, seed)
        self.rows = plan.rows  # the lambda below holds no `self`: a stream dropped is freed at once, workers too
        self.loader = _Loader(lambda step: torch.utils.data.DataLoader(
            _Rows(dataset), batch_sampler=(plan.rows(s) for s in itertools.count(step)), collate_fn=_collate,
            **_loader_flags(workers, pin_memory)))

    @property
    def skipped(self) -> list:
        """The images found unreadable so far, in any worker, and those missing from the start."""
        return list(dict.fromkeys(self.dataset.skipped + list(self.loader.skipped)))

    def corpus(self) -> list:
        """The caption column alone: decoding every image only to read its caption would be slow."""
        return [row.caption for row in self.dataset.rows]


class _RowPlan:
    """Which dataset rows batch `step` holds, for one rank: `rows(step)`."""

    def __init__(self, n: int, batch_size: int, first: int, local: int, seed: int):
        self.n, self.batch_size, self.first, self.local, self.seed = n, batch_size, first, local, seed
        self.orders = {}  # epoch -> its permutation; the two latest are kept

    def rows(self, step: int) -> list:
        """Positions step * B + rank * B / world, ... of the endless list of epochs, each a permutation of the n
        rows seeded by (seed, epoch)."""
        start = step * self.batch_size + self.first
        return [int(self.order(k // self.n)[k % self.n]) for k in range(start, start + self.local)]

    def order(self, epoch: int) -> torch.Tensor:
        if epoch not in self.orders:
            self.orders = {e: o for e, o in self.orders.items() if e == epoch - 1}
            generator = torch.Generator().manual_seed(step_seed(self.seed, epoch))
            self.orders[epoch] = torch.randperm(self.n, generator=generator)
        return self.orders[epoch]


class _Rows(torch.utils.data.Dataset):
    """dataset[i] and the images that were skipped (unreadable) to get it: a worker's finds reach the main process
    inside the batch."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __getitem__(self, i: int) -> tuple:
        before = len(self.dataset.skipped)
        image, caption = self.dataset[i]
        return image, caption, self.dataset.skipped[before:]


def _collate(items: list) -> tuple:
    images, captions, bad = zip(*items)
    return torch.stack(images), list(captions), [name for names in bad for name in names]


class ShardPairs(_LoaderPairs):
    """`pairs(step)` from webdataset shards (minclip/data/shards.py): each rank streams its own shards, decoded in
    `workers` DataLoader workers. Batch `step` is a function of (seed, step, ranks, workers): a resumed run must keep
    --workers (it does: the flag is part of the run), and, unlike the CSV stream, two ranks of B/2 do not see the
    batch one process of B sees (each rank reads different shards). shuffle: the size of each reader's shuffle
    buffer (1: none). `skipped` counts the bad samples this process has met since it started (on a resume: since
    the resume)."""

    def __init__(self, pattern: str, image_size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 workers: int = 0, pin_memory: bool = False, shuffle: int = 1000):
        super().__init__(batch_size, rank, world_size)
        self.paths = paths = shards.expand_shards(pattern)
        local = self.local  # the lambda holds no `self`: a stream dropped is freed at once, and its workers stop
        self.loader = _Loader(lambda step: torch.utils.data.DataLoader(
            shards.ShardBatches(paths, image_size, local, seed, rank, world_size, workers, step, shuffle),
            batch_size=None, **_loader_flags(workers, pin_memory)), warn=True)

    @property
    def skipped(self) -> list:
        """The samples found bad so far: 'shard:key (why)'."""
        return list(self.loader.skipped)

    def corpus(self) -> list:
        """Captions for the tokenizer, from the first shards' .txt files (up to 200,000; no image is decoded)."""
        return shards.shard_captions(self.paths)
