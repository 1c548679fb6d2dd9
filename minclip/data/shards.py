"""Webdataset shards: image-caption pairs streamed from tar files, the layout img2dataset writes.

A shard is a tar file of samples, each a few files with one key: `000000042.jpg` (the image), `000000042.txt` (its
caption) and, optionally, `000000042.json` (metadata, unused here). CC3M is about 330 such shards of 10,000 pairs.
A tar file is read front to back, so there is no `dataset[i]`: pairs arrive as a stream, and this is how a stream
stays exact enough to train from:

- **Who reads what.** The shard order of epoch e is a permutation seeded by (seed, e); the epochs' orders, one
  after another, make an endless list of shard visits. With R readers (ranks x loader workers), reader g takes
  visits g, g + R, g + 2R, ...: every reader gets shards even when there are fewer shards than readers.
- **Shuffling.** Each reader passes its samples through a seeded shuffle buffer (webdataset's idea: keep N samples,
  emit a random one, refill), since samples inside a shard arrive in the order they were downloaded.
- **Batches.** Reader k of a rank makes the rank's batches for steps k, k + W, k + 2W, ... (W workers), each from the
  next `local` samples of its stream. So batch `step` is a function of (seed, step, ranks, workers), and a resumed
  run skips, in each reader, the samples of the batches it made before, reading their bytes without decoding them.
- **Bad samples.** A corrupt image, a caption that is empty or not UTF-8, or a sample missing its image or caption
  is counted and replaced by a copy of a good pair of the same batch (or, if it has none, of the latest good sample
  read before it): never fatal, and every batch still takes exactly `local` samples, which is what lets a resumed
  run skip without decoding.
"""
import collections
import io
import itertools
import random
from pathlib import Path
from typing import Iterator

import torch
import webdataset as wds
from webdataset.shardlists import expand_urls

from .captions import square_uint8
from .datasets import load_rgb

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
HISTORY = 256  # raw samples a reader keeps, for a batch in which none decodes


def expand_shards(pattern: str) -> list:
    """'shards/{00000..00331}.tar' -> the 332 paths (brace expansion, as webdataset and img2dataset write them);
    raises naming how many are missing and the first one, with the fix."""
    paths = expand_urls(pattern)
    missing = [p for p in paths if not Path(p).is_file()]
    if not paths or missing:
        raise FileNotFoundError(f"--train-data {pattern!r}: {len(missing)} of {len(paths)} shards do not exist, e.g. "
                                f"{(missing or [pattern])[0]}; give tar files in brace notation, e.g. "
                                f"'shards/{{00000..00099}}.tar' (img2dataset's --output_format webdataset)")
    return paths


def _samples(paths: list) -> Iterator[dict]:
    """The samples of these shards in order: {'__key__', '__url__', 'jpg', 'txt', ...} with raw bytes. A shard that
    cannot be read as tar (truncated at the end, say) ends early, with webdataset's warning, and the next begins."""
    return iter(wds.WebDataset(paths, shardshuffle=False, nodesplitter=None, workersplitter=None, empty_check=False,
                               handler=wds.warn_and_continue))


def shard_captions(paths: list, limit: int = 200_000) -> list:
    """Up to `limit` captions from the shards, in order, without decoding an image: a tokenizer's training text."""
    captions = []
    for sample in itertools.islice(_samples(paths), limit):
        try:
            captions.append(sample["txt"].decode("utf-8").strip())
        except (KeyError, UnicodeDecodeError):
            continue
    return [c for c in captions if c]


def decode(sample: dict, image_size: int, resize=None) -> tuple:
    """A raw sample -> (image uint8 (3, S, S), caption); raises ValueError saying what is wrong with a bad one.
    resize: square_uint8(image_size), if the caller has one already."""
    image_key = next((k for k in IMAGE_EXTENSIONS if k in sample), None)
    if image_key is None or "txt" not in sample:
        raise ValueError(f"no image or no caption: it has {sorted(k for k in sample if not k.startswith('__'))}")
    try:
        caption = sample["txt"].decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("its .txt caption is not UTF-8") from None
    if not caption:
        raise ValueError("its .txt caption is empty")
    try:
        image = load_rgb(io.BytesIO(sample[image_key]), image_size)
    except Exception as error:  # PIL raises many kinds on bad bytes: OSError, SyntaxError, EOFError, ...
        raise ValueError(f"its .{image_key} image cannot be decoded ({type(error).__name__})") from None
    return (resize or square_uint8(image_size))(image), caption


class ShardBatches(torch.utils.data.IterableDataset):
    """The batches of one rank, steps `start`, `start` + 1, ..., for a DataLoader with `workers` workers (0: in
    this process) and batch_size=None: each item is (images uint8 (b, 3, S, S), b captions, bad samples' names).

    The DataLoader asks its workers in turn, so the i-th batch it gives (step start + i) comes from worker i mod W:
    a fresh DataLoader gives step `start` to worker 0. Worker w therefore plays reader (start + w) mod W, the reader
    that makes steps reader, reader + W, ...; its batch for step s is its (s // W)-th."""

    def __init__(self, paths: list, image_size: int, local: int, seed: int, rank: int, world: int, workers: int,
                 start: int, shuffle: int = 1000):
        super().__init__()
        self.paths, self.image_size, self.local, self.seed = paths, image_size, local, seed
        self.rank, self.world, self.workers, self.start, self.shuffle = rank, world, max(1, workers), start, shuffle

    def visits(self, reader: int) -> Iterator[str]:
        """The shards reader `reader` of this rank reads, in order, epoch after epoch."""
        readers, g = self.world * self.workers, self.rank * self.workers + reader
        for epoch in itertools.count():
            order = random.Random(f"{self.seed}-{epoch}").sample(self.paths, len(self.paths))
            for i in range(len(self.paths)):
                position = epoch * len(self.paths) + i
                if position % readers == g:
                    yield order[i]

    def stream(self, reader: int) -> Iterator[dict]:
        """Reader `reader`'s samples, raw, through its seeded shuffle buffer. Raises once every shard has been
        visited without giving a sample (else a reader would loop forever over empty shards)."""
        rng, buffer, empty, gave = random.Random(f"{self.seed}-{self.rank}-{reader}-buffer"), [], set(), False
        for path in self.visits(reader):
            for sample in _samples([path]):
                gave = True
                buffer.append(sample)
                if len(buffer) >= self.shuffle:
                    yield buffer.pop(rng.randrange(len(buffer)))
            if not gave:  # no sample yet from any shard this reader visited: remember which came up empty
                empty.add(path)
                if len(empty) == len(self.paths):
                    raise OSError(f"all {len(self.paths)} shards hold no sample, e.g. {path}: check them (tar -tf)")

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        w = info.id if info is not None else 0
        reader = (self.start + w) % self.workers
        stream, resize = self.stream(reader), square_uint8(self.image_size)
        # the samples read before this batch, raw (the latest HISTORY): where a batch with no good sample finds one
        history = collections.deque(maxlen=HISTORY)
        # the batches this reader made before `start` (steps reader, reader + W, ... below start): read, not decoded
        done = len(range(reader, self.start, self.workers))
        history.extend(itertools.islice(stream, done * self.local))
        while True:
            raw = list(itertools.islice(stream, self.local))
            yield self.batch(raw, history, resize)
            history.extend(raw)

    def batch(self, raw: list, history, resize) -> tuple:
        """`local` raw samples -> (images, captions, bad samples' names). A bad sample is replaced by a copy of a good
        pair of the batch, or, in a batch with none, of the latest good sample read before it: each batch reads
        exactly `local` samples either way, so a resume can skip samples without decoding them."""
        pairs, bad = [], []
        for sample in raw:
            try:
                pairs.append(decode(sample, self.image_size, resize))
            except ValueError as error:
                bad.append(f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}: {error}")
        for sample in reversed(history if not pairs else []):
            try:
                pairs.append(decode(sample, self.image_size, resize))
                break
            except ValueError:
                continue
        if not pairs:
            raise OSError(f"none of the last {len(raw) + len(history)} samples could be decoded, e.g. {bad[:2]}: the "
                          f"shards look broken; check them (tar -tf SHARD | head)")
        pairs = [pairs[i % len(pairs)] for i in range(self.local)]  # good pairs, then copies of them
        return torch.stack([image for image, _ in pairs]), [caption for _, caption in pairs], bad
