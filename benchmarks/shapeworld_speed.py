"""ShapeWorld rendering speed on ONE core, at 32 px: images per second for every domain, with one object
(`classification("color_shape")`) and with 1-3 objects (`classification("count")`, a third each), plus pre-training
pairs (images and captions, the default domain mix). The reference is a plain per-image loop (PIL draws the
polygon, numpy adds noise), the way one would first write it; `ratio` is minclip over that loop.

    .venv/bin/python benchmarks/shapeworld_speed.py

Prints one JSON line per measurement. `images_per_s` is wall-clock, `cpu_images_per_s` counts this thread's CPU
time only (steadier on a shared machine). Goal (issue 4): >= 20000 images/s at 32 px on one core, any domain.
"""
import json
import time

import numpy as np
import torch
from PIL import Image, ImageDraw

from minclip.data import ShapeWorld
from minclip.data import render

GOAL = 20_000


def rate(make, n: int, repeats: int = 5) -> tuple:
    """Best of `repeats`: (wall images/s, CPU images/s) of make(seed), which draws n images."""
    make(0)  # warm-up: builds the sprite banks
    wall, cpu = [], []
    for seed in range(1, repeats + 1):
        w, c = time.perf_counter(), time.thread_time()
        make(seed)
        wall.append(time.perf_counter() - w), cpu.append(time.thread_time() - c)
    return n / min(wall), n / min(cpu)


def pil_loop(n: int, seed: int, size: int = 32) -> np.ndarray:
    """The per-image reference: one object on a noisy gray background, drawn image by image."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(50, 170, 3)))
        radius, center = size * rng.uniform(0.14, 0.22), size * rng.uniform(0.3, 0.7, 2)
        xy = render._outline(render.SHAPES[rng.integers(8)]) * radius * [1, -1] + center
        ImageDraw.Draw(image).polygon([tuple(p) for p in xy], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        out[i] = np.clip(np.asarray(image) + rng.normal(0, 6, (size, size, 3)), 0, 255)
    return out


def main() -> None:
    torch.set_num_threads(1)
    n = 4000
    world = ShapeWorld(seed=0, image_size=32)
    loop_wall, loop_cpu = rate(lambda s: pil_loop(n, s), n)
    for task, objects in [("color_shape", "1"), ("count", "1-3")]:
        for domain in world.domains:
            wall, cpu = rate(lambda s: world.classification(task, "train", domain, n, seed=s), n)
            print(json.dumps({"bench": "shapeworld_render", "image_size": 32, "objects": objects, "domain": domain,
                              "images_per_s": round(wall), "cpu_images_per_s": round(cpu),
                              "per_image_loop_images_per_s": round(loop_wall), "ratio": round(wall / loop_wall, 2),
                              "goal_images_per_s": GOAL, "meets_goal": wall >= GOAL}), flush=True)
    wall, cpu = rate(lambda s: world.pretraining(n, seed=s), n)
    print(json.dumps({"bench": "shapeworld_pretraining_pairs", "image_size": 32, "objects": "1-3",
                      "domain": "default mix", "pairs_per_s": round(wall), "cpu_pairs_per_s": round(cpu),
                      "goal_images_per_s": GOAL, "meets_goal": wall >= GOAL}), flush=True)


if __name__ == "__main__":
    main()
