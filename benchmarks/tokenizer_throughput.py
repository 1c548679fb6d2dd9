"""Tokenizer throughput: minclip.CLIPTokenizer vs open_clip.get_tokenizer("ViT-B-32") on 10,000 realistic captions.

Same captions, same output (checked), best of 3 runs each. Prints one JSON line per caption set with the ratio.
"""
import json
import random
import time

import open_clip
import torch

from minclip.tokenizer import CLIPTokenizer


def shapeworld_like(n: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    sizes, colours = ["small", "large", "tiny", "big"], ["red", "green", "blue", "yellow", "purple", "orange", "cyan", "white"]
    shapes = ["circle", "square", "triangle", "star", "cross", "heart", "diamond", "hexagon"]
    places = ["in the top left", "in the bottom right", "in the centre", "on the left", "on the right", "near the top"]
    templates = ["a {s} {c} {h} {p}", "a photo of a {c} {h}.", "two {c} {h}s {p}", "a sketch of a {s} {h}",
                 "A {c} {h} on a striped background, {p}!"]
    return [rng.choice(templates).format(s=rng.choice(sizes), c=rng.choice(colours), h=rng.choice(shapes),
                                         p=rng.choice(places)) for _ in range(n)]


def english_sentences(n: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    words = open("/usr/share/common-licenses/GPL-3", encoding="utf-8").read().split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(5, 20))) for _ in range(n)]


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


mine, ref = CLIPTokenizer.from_openai_vocab(), open_clip.get_tokenizer("ViT-B-32")
non_ascii = [s + " — café" for s in english_sentences(10_000, seed=1)]  # ftfy runs on these in both libraries
for name, captions in [("shapeworld_like", shapeworld_like(10_000)), ("english_5_20_words", english_sentences(10_000)),
                       ("english_non_ascii", non_ascii)]:
    assert torch.equal(mine(captions, truncate=True), ref(captions))
    t_mine, t_ref = best_of(lambda: mine(captions, truncate=True)), best_of(lambda: ref(captions))
    print(json.dumps({"bench": "tokenizer_throughput", "captions": name, "n": len(captions),
                      "minclip_captions_per_s": round(len(captions) / t_mine), "open_clip_captions_per_s":
                      round(len(captions) / t_ref), "ratio": round(t_ref / t_mine, 2)}))
