"""Data throughput: images/s that reach the training step, for each way minclip reads real image-caption data.

    .venv/bin/python benchmarks/data_throughput.py [--images 512] [--size 224] [--batch 64] [--steps 18] [--rounds 5]

Writes `--images` real JPEGs of 500x375 (the size of a Flickr30k photo; smooth colour fields plus noise, so they
compress like photographs, ~60 KB each), a CSV of their captions and 4 webdataset shards of the same pairs, then
reads batches of `--batch` at `--size` pixels through:

    csv, in the loop   DatasetPairs(workers=0): each image decoded in the training process, one after another
                       (what `--data csv` did before it had workers)
    csv, N workers     DatasetPairs(workers=N): N DataLoader worker processes decode while the step runs
    wds, N workers     ShardPairs(workers=N): the same pairs streamed from tar shards

The step itself is left out (the consumer only takes the batch): what is measured is the rate the data side can
deliver, the ceiling it puts on a step. Each reader makes `--steps` batches, the first 2 of them warm-up (worker
start-up) and untimed. Every reader runs `--rounds` times, interleaved, and the best rate is kept (on a shared
machine, other work only ever slows a reader down; the median is printed too); ratios are of best rates, against
the in-loop reader of the same run.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' shard writer
from _images import write_shard  # noqa: E402

from minclip.data import ImageCaptionCSV  # noqa: E402
from minclip.pairs import DatasetPairs, ShardPairs  # noqa: E402


def photo(rng, h: int = 375, w: int = 500) -> np.ndarray:
    """A photo-like picture: a few smooth colour blobs and sensor-like noise."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    image = np.zeros((h, w, 3))
    for _ in range(5):
        cy, cx, r = rng.random(3) * [1, 1, 0.5] + [0, 0, 0.1]
        image += rng.random(3) * 255 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / r ** 2)[:, :, None]
    image += rng.normal(0, 8, image.shape)
    return image.clip(0, 255).astype(np.uint8)


def write_data(folder: Path, n: int) -> tuple:
    rng = np.random.default_rng(0)
    (folder / "images").mkdir()
    rows = []
    for i in range(n):
        Image.fromarray(photo(rng)).save(folder / "images" / f"{i:06d}.jpg", quality=90)
        rows.append((f"{i:06d}.jpg", f"a photo, number {i}, of something"))
    (folder / "train.csv").write_text("image,caption\n" + "".join(f"{p},{c}\n" for p, c in rows))
    per_shard = n // 4
    for s in range(4):
        write_shard(folder / f"{s:05d}.tar", [(f"{i:09d}", {"jpg": (folder / "images" / rows[i][0]).read_bytes(),
                                                            "txt": rows[i][1].encode()})
                                              for i in range(s * per_shard, (s + 1) * per_shard)])
    kb = sum((folder / "images" / p).stat().st_size for p, _ in rows) / n / 1024
    return folder / "train.csv", str(folder / "{00000..00003}.tar"), kb


def rate(make, steps: int, batch: int) -> float:
    """Images per second over steps 2..steps-1 of a fresh reader (steps 0 and 1: warm-up)."""
    stream = make()
    for step in range(2):
        stream.pairs(step)
    t0 = time.perf_counter()
    for step in range(2, steps):
        stream.pairs(step)
    seconds = time.perf_counter() - t0
    stream.close()  # its workers stop now, not while the next reader is timed
    return (steps - 2) * batch / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=18)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    csv, pattern, kb = write_data(folder, args.images)
    steps = max(3, args.steps)

    def csv_reader(workers):
        dataset = ImageCaptionCSV(csv, folder / "images", image_size=args.size)
        return lambda: DatasetPairs(dataset, args.batch, seed=0, workers=workers)

    readers = {"csv, in the loop": csv_reader(0), "csv, 1 worker": csv_reader(1), "csv, 2 workers": csv_reader(2),
               "wds, in the loop": lambda: ShardPairs(pattern, args.size, args.batch, seed=0, workers=0),
               "wds, 2 workers": lambda: ShardPairs(pattern, args.size, args.batch, seed=0, workers=2)}
    rates = {name: [] for name in readers}
    for _ in range(args.rounds):
        for name, make in readers.items():
            rates[name].append(rate(make, steps, args.batch))
    base = max(rates["csv, in the loop"])
    print(f"{args.images} JPEGs of 500x375 ({kb:.0f} KB each) -> {args.size}x{args.size}, batches of {args.batch}, "
          f"{steps - 2} timed batches, best of {args.rounds} rounds; load average before: {os.getloadavg()[0]:.1f}")
    for name, r in rates.items():
        print(json.dumps({"reader": name, "images_per_s": round(max(r), 1), "median": round(statistics.median(r), 1),
                          "rounds": [round(x, 1) for x in r], "vs_in_loop": round(max(r) / base, 2)}))


if __name__ == "__main__":
    main()
