"""minclip vs open_clip: one whole training step (forward, loss, backward, clip, AdamW, clamp), CPU fp32, in one run.

    .venv/bin/python benchmarks/train_throughput.py [--rounds 20] [--batch-size 256]

The same architecture (the `tiny` preset, built by each library, with the same initial weights), the same
ShapeWorld batches (the demo's data: photos, one object, varied captions, minclip's small tokenizer), the same
recipe (AdamW with the paper's settings and param groups, gradient clipping at 1, logit-scale clamp). The open_clip
side is its model plus its `ClipLoss`, in the loop its own `training/train.py` runs. Each round times one step of
each library, alternating, so that machine noise hits both; prints the ratio of median step times (goal >= 1.2x)
as one JSON line. Batches are rendered before timing: this measures the step, not the data.
"""
import argparse
import json
import logging
import math
import time

import torch
from open_clip.loss import ClipLoss

from minclip import CLIP, CLIPConfig
from minclip.loss import clip_loss
from minclip.optim import adamw
from minclip.data import ShapeWorld
from minclip.pairs import ShapeWorldPairs
from minclip.tokenizer import make_tokenizer
from minclip.data.transforms import clip_preprocess
from minclip.pretrained import to_open_clip
from minclip.train import train_step
from model_throughput import tiny_open_clip

logging.getLogger().setLevel(logging.ERROR)


def minclip_step(model, optimizer, images, tokens):
    train_step(model, images, tokens, clip_loss)  # forward + loss + backward (minclip/train.py)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    model.clamp_logit_scale()


def open_clip_step(model, loss_fn, optimizer, images, tokens):
    image_features, text_features, logit_scale = model(images, tokens)  # normalised features, exp(logit_scale)
    loss_fn(image_features, text_features, logit_scale).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():  # open_clip/training/train.py clamps after the step, as CLIP §2.5
        model.logit_scale.clamp_(0, math.log(100))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)

    config = CLIPConfig.preset("tiny")
    # the demo's data: photos, one object, varied captions
    source = ShapeWorldPairs(ShapeWorld(seed=0, image_size=config.vision.image_size), args.batch_size, seed=0)
    tokenizer = make_tokenizer(config, corpus=source.corpus)
    preprocess = clip_preprocess(config.vision.image_size)
    pairs = [source.pairs(step) for step in range(4)]
    batches = [(preprocess(torch.as_tensor(x)), tokenizer(c, context_length=config.text.context_length, truncate=True))
               for x, c in pairs]

    mine = CLIP(config).train()
    ref = tiny_open_clip(config).train()
    ref.load_state_dict(to_open_clip(mine))
    lr = 3e-3  # the tiny preset's peak rate; the schedule does not change the cost of a step
    steps = {"minclip": lambda x, t, opt=adamw(mine, lr): minclip_step(mine, opt, x, t),
             "open_clip": lambda x, t, opt=adamw(ref, lr), loss=ClipLoss(): open_clip_step(ref, loss, opt, x, t)}
    times = {name: [] for name in steps}
    for r in range(args.rounds + 2):
        images, tokens = batches[r % len(batches)]
        for name, step in steps.items():
            t0 = time.perf_counter()
            step(images, tokens)
            if r >= 2:  # rounds 0 and 1 warm up both (allocator, AdamW state)
                times[name].append(time.perf_counter() - t0)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    B = args.batch_size
    print(json.dumps({"bench": "train_throughput", "model": "tiny", "batch": B, "threads": torch.get_num_threads(),
                      "minclip_pairs_per_s": round(B / med["minclip"], 1),
                      "open_clip_pairs_per_s": round(B / med["open_clip"], 1),
                      "ratio": round(med["open_clip"] / med["minclip"], 3)}), flush=True)


if __name__ == "__main__":
    main()
