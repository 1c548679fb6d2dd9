"""minclip's trainer vs open_clip's model in an equivalent loop: the same minutes, data and recipe; which is ahead?

    .venv/bin/python benchmarks/time_to_accuracy.py [--minutes 3]

Both sides train the `tiny` preset from the same initial weights on the same ShapeWorld stream (the demo's data,
`minclip.pairs.ShapeWorldPairs`), with one recipe but for weight decay: AdamW (beta2 0.98, eps 1e-6), lr 3e-3,
100 warm-up steps then cosine, gradient clipping at 1, the logit-scale clamp; decay on matrices 1.0 for minclip (the
tiny preset's) and 0.2 for open_clip (the paper's). Each side times its own first steps to fix how many steps fit
in the budget (minclip: `--minutes`, the median of >= 20 steps; open_clip: the median of 5, +8% for the rest of the
step), so a faster step buys more steps. Both are then
scored by the same function: 64-way zero-shot accuracy on 2,000 fresh photos of seen and of held-out pairs.
Prints one JSON line per library and one with the verdict.
"""
import argparse
import json
import logging
import tempfile
import time

import torch
from open_clip.loss import ClipLoss

from minclip import CLIP, CLIPConfig
from minclip.data.transforms import clip_preprocess
from minclip.optim import adamw, warmup_cosine
from minclip.data import ShapeWorld
from minclip.pairs import ShapeWorldPairs
from minclip.tokenizer import make_tokenizer
from minclip.zeroshot import shapeworld_zeroshot
from minclip.pretrained import from_open_clip, to_open_clip
from minclip.train import TrainConfig, train
from model_throughput import tiny_open_clip
from train_throughput import open_clip_step

logging.getLogger().setLevel(logging.ERROR)


def open_clip_run(minutes: float, seed: int = 0) -> dict:
    """open_clip's model and ClipLoss in the loop of its training/train.py, on minclip's data and recipe."""
    cfg = TrainConfig(minutes=minutes, seed=seed)
    config = CLIPConfig.preset("tiny")
    world = ShapeWorld(seed=0, image_size=config.vision.image_size)
    source = ShapeWorldPairs(world, cfg.batch_size, seed)  # minclip.train's data: photos, one object, varied captions
    tokenizer = make_tokenizer(config, corpus=source.corpus)
    preprocess = clip_preprocess(config.vision.image_size)

    def batch(step):
        images, captions = source.pairs(step)
        return preprocess(torch.as_tensor(images)), tokenizer(captions, context_length=config.text.context_length, truncate=True)

    torch.manual_seed(seed)
    model = tiny_open_clip(config)
    model.load_state_dict(to_open_clip(CLIP(config)))  # the initial weights minclip's trainer starts from
    loss_fn = ClipLoss()
    # how many steps fit: the median of 5 timed steps (+8% for the optimiser step) on a throwaway copy
    probe, times = tiny_open_clip(config), []
    probe.load_state_dict(model.state_dict())
    probe_opt = adamw(probe, 3e-3)
    for step in range(6):
        t0 = time.perf_counter()
        images, tokens = batch(step)
        open_clip_step(probe, loss_fn, probe_opt, images, tokens)
        times.append(time.perf_counter() - t0)
    steps = max(1, int(minutes * 60 / (sorted(times[1:])[2] * 1.08)))
    optimizer = adamw(model, 3e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(min(cfg.warmup, steps // 2), steps))
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        images, tokens = batch(step)
        open_clip_step(model, loss_fn, optimizer, images, tokens)  # clips, steps AdamW, clamps the scale
        scheduler.step()
    seconds = time.perf_counter() - t0
    mine = from_open_clip(model.state_dict(), config)  # only to score it with the very same evaluation code
    return {"steps": steps, "train_seconds": seconds, **shapeworld_zeroshot(mine, tokenizer, preprocess, world, n=2000)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        train(TrainConfig(minutes=args.minutes, seed=0, out=f"{tmp}/run", eval_every=10 ** 9, quiet=True))
        results["minclip"] = json.load(open(f"{tmp}/run/zeroshot.json"))  # steps, train_seconds, seen, unseen
    results["open_clip"] = open_clip_run(args.minutes)
    for lib, r in results.items():
        print(json.dumps({"bench": "time_to_accuracy", "library": lib, "minutes": args.minutes,
                          **{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}}), flush=True)
    ahead = all(results["minclip"][k] > results["open_clip"][k] for k in ("seen", "unseen"))
    print(json.dumps({"bench": "time_to_accuracy", "minclip_ahead_on_both": ahead}))


if __name__ == "__main__":
    main()
