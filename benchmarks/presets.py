"""Every preset's size and speed: parameters, forward GFLOPs per image and per caption (minclip.flops), and CPU
training pairs/s in fp32 and under --amp bf16, measured in one run.

One training step as minclip.train takes it (forward, CLIP loss, backward, AdamW) on a fixed batch of BATCH random
images and captions of 16 tokens; each round times one fp32 step and one bf16 step of the same model, alternating,
so that machine noise hits both; the median of ROUNDS rounds (after one warm-up round each). The OpenAI presets
(224 px) are counted but not timed (--time-openai to time them too: minutes).

    .venv/bin/python benchmarks/presets.py [--rounds 5] [--batch-size 128]

Prints one JSON line per preset.
"""
import argparse
import json
import statistics
import time

import torch

import minclip
from minclip import CLIP, CLIPConfig
from minclip.loss import clip_loss

TEACHING = ("tiny", "tiny-rn", "mini", "mini-rn", "small", "small-rn")


def step_seconds(model, optimizer, images, tokens, bf16: bool) -> float:
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(images, tokens)
    clip_loss(out.image_embeds.float(), out.text_embeds.float(), out.logit_scale.float()).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--time-openai", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    for name in CLIPConfig.presets():
        config = CLIPConfig.preset(name)
        torch.manual_seed(0)
        model = CLIP(config)
        g = minclip.flops(model)
        row = {"bench": "presets", "preset": name, "kind": config.vision.kind, "image_size": config.vision.image_size,
               "width": config.vision.width, "layers": config.vision.layers, "text_width": config.text.width,
               "text_layers": config.text.layers, "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
               "image_GFLOPs": round(g["image"], 4), "text_GFLOPs": round(g["text"], 4)}
        if name in TEACHING or args.time_openai:
            B, S, L = args.batch_size, config.vision.image_size, config.text.context_length
            images = torch.randn(B, 3, S, S)
            tokens = torch.randint(1, config.text.vocab_size - 2, (B, L))
            tokens[:, 15], tokens[:, 16:] = config.text.vocab_size - 1, 0  # EOT at 15, then padding
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            times = {False: [], True: []}
            for r in range(args.rounds + 1):
                for bf16 in (False, True):
                    t = step_seconds(model, optimizer, images, tokens, bf16)
                    if r:  # round 0 warms up both
                        times[bf16].append(t)
            fp32, bf16 = (B / statistics.median(times[k]) for k in (False, True))
            row.update({"fp32_pairs_per_s": round(fp32), "bf16_pairs_per_s": round(bf16),
                        "bf16_speedup": round(bf16 / fp32, 2)})
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
