"""minclip vs open_clip: forward+backward pairs/s on CPU fp32, same architecture, same weights, eager vs eager.

    .venv/bin/python benchmarks/model_throughput.py [--rounds 6]

Two models: ViT-B/32 at batch 16 with short English sentences (5-20 words, OpenAI's BPE, context 77), and the
`tiny` preset at batch 256 with ShapeWorld captions (its own small tokenizer, context 32). Each round times one
step of each library, alternating, so that machine noise hits both; the ratio of medians is reported. The same run
checks that both give the same embeddings. One JSON line per model.
"""
import argparse
import glob
import json
import logging
import random
import time

import open_clip
import torch
import torch.nn.functional as F

from minclip import CLIP, CLIPConfig
from minclip.data import ShapeWorld
from minclip.data.transforms import clip_preprocess
from minclip.pretrained import from_open_clip, to_open_clip
from minclip.tokenizer import CLIPTokenizer

logging.getLogger().setLevel(logging.ERROR)


def english_captions(n: int, seed: int = 0) -> list:
    """n snippets of 5-20 words of real English (the license texts every Debian machine has)."""
    rng = random.Random(seed)
    text = " ".join(open(f, errors="ignore").read() for f in sorted(glob.glob("/usr/share/common-licenses/*"))[:6])
    words = text.split() or ("a photo of a small red circle in the top left corner " * 40).split()
    out = []
    for _ in range(n):
        i = rng.randrange(len(words) - 30)
        out.append(" ".join(words[i:i + rng.randint(5, 20)]))
    return out


def tiny_open_clip(config: CLIPConfig):
    """The tiny preset built by open_clip itself."""
    v, t = config.vision, config.text
    return open_clip.model.CLIP(
        config.embed_dim, quick_gelu=config.quick_gelu,
        vision_cfg=open_clip.model.CLIPVisionCfg(layers=v.layers, width=v.width, head_width=v.width // v.heads,
                                                 patch_size=v.patch_size, image_size=v.image_size),
        text_cfg=open_clip.model.CLIPTextCfg(context_length=t.context_length, vocab_size=t.vocab_size,
                                             width=t.width, heads=t.heads, layers=t.layers))


def step(model, images, tokens, is_open_clip: bool):
    out = model(images, tokens)
    i, t = (F.normalize(out[0], dim=-1), F.normalize(out[1], dim=-1)) if is_open_clip else out[:2]
    (i @ t.T).logsumexp(1).sum().backward()
    model.zero_grad(set_to_none=True)


def compare(name, ref, mine, images, tokens, rounds):
    with torch.no_grad():
        a, b = ref.eval()(images, tokens), mine.eval()(images, tokens)
        diff = max((F.normalize(a[0], dim=-1) - b.image_embeds).abs().max().item(),
                   (F.normalize(a[1], dim=-1) - b.text_embeds).abs().max().item())
    ref.train(), mine.train()
    times = {"open_clip": [], "minclip": []}
    for r in range(rounds + 1):
        for lib, model in (("open_clip", ref), ("minclip", mine)):
            t0 = time.perf_counter()
            step(model, images, tokens, lib == "open_clip")
            if r:  # round 0 warms up both
                times[lib].append(time.perf_counter() - t0)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    B = images.shape[0]
    print(json.dumps({"bench": "model_throughput", "model": name, "batch": B,
                      "minclip_pairs_per_s": round(B / med["minclip"], 1),
                      "open_clip_pairs_per_s": round(B / med["open_clip"], 1),
                      "ratio": round(med["open_clip"] / med["minclip"], 3), "max_abs_diff": diff}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)

    ref = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None)
    mine = from_open_clip(ref.state_dict(), "vit-b-32")
    tokens = open_clip.get_tokenizer("ViT-B-32")(english_captions(16))
    images = torch.randn(16, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    compare("vit-b-32", ref, mine, images, tokens, args.rounds)

    config = CLIPConfig.preset("tiny")
    sw = ShapeWorld(seed=0, image_size=config.vision.image_size)
    tokenizer = CLIPTokenizer.train(sw.caption_corpus(), vocab_size=config.text.vocab_size)
    uint8, captions = sw.pretraining(256, seed=0)
    images = clip_preprocess(config.vision.image_size)(torch.as_tensor(uint8))
    tokens = tokenizer(captions, context_length=config.text.context_length, truncate=True)
    mine = CLIP(config)
    ref = tiny_open_clip(config)
    ref.load_state_dict(to_open_clip(mine))
    compare("tiny", ref, mine, images, tokens, args.rounds * 4)


if __name__ == "__main__":
    main()
