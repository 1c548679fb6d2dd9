"""On a GPU: ViT-B/32 training samples/s and MFU, minclip vs open_clip, bf16, fed real JPEGs by the worker loader.

    python benchmarks/gpu_throughput.py                       # a CUDA GPU: ViT-B/32, batch 256, bf16
    python benchmarks/gpu_throughput.py --device cpu --preset tiny --batch 32 --steps 4 --images 64 --workers 1
                                                              # the same script at toy size, to check it runs

Both libraries build the same architecture with the same initial weights (open_clip.model.CLIP from minclip's
config, weights copied with minclip.pretrained.to_open_clip) and train it the same way: bf16 autocast, the CLIP loss
(minclip's clip_loss / open_clip's ClipLoss), gradient clipping at 1, AdamW, the temperature clamp. The batches come
from `--images` JPEGs of 500x375 written by the script, decoded by DatasetPairs with `--workers` DataLoader workers
and pinned memory (minclip/pairs.py), tokenized in the training process. Steps alternate between the libraries, so
noise hits both. Two rates for each, one JSON line each:

    loader   a fresh batch from the loader every step: what a real run gets (the loader may be the bottleneck)
    compute  the same batch, already on the GPU, every step: the model's own rate

MFU = 3 x (forward FLOPs per image + per caption, from minclip.flops, full 77-token context) x samples/s / peak,
peak = the GPU's dense bf16 tensor throughput (--peak-tflops, or known for A100 312, H100/H200 989). The factor 3
is the usual "backward costs twice the forward". open_clip's LAION-400M ViT-B/32 run works out to about 785
samples/s per A100, about 11% MFU (issue 19). Nothing here is timed in a test; on a CPU the numbers mean nothing.
"""
import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
from open_clip.loss import ClipLoss

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_throughput import write_data  # noqa: E402  (real JPEGs, a CSV and shards)
from model_throughput import tiny_open_clip  # noqa: E402  (open_clip's CLIP built from a minclip config)

from minclip import CLIP, CLIPConfig, flops  # noqa: E402
from minclip.data import ImageCaptionCSV  # noqa: E402
from minclip.data.transforms import clip_preprocess  # noqa: E402
from minclip.loss import clip_loss  # noqa: E402
from minclip.optim import adamw  # noqa: E402
from minclip.pairs import DatasetPairs  # noqa: E402
from minclip.pretrained import to_open_clip  # noqa: E402
from minclip.tokenizer import make_tokenizer  # noqa: E402
from minclip.train import train_step  # noqa: E402

PEAK_BF16_TFLOPS = {"A100": 312, "H100": 989, "H200": 989}  # dense, no sparsity (NVIDIA's data sheets)


def peak_tflops(device: torch.device, given: float) -> float:
    if given:
        return given
    if device.type != "cuda":
        return float("nan")
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), float("nan"))


def minclip_step(model, optimizer, images, tokens, autocast):
    train_step(model, images, tokens, clip_loss, autocast=autocast)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    model.clamp_logit_scale()


def open_clip_step(model, loss_fn, optimizer, images, tokens, autocast):
    with autocast:
        image_features, text_features, logit_scale = model(images, tokens)
        loss = loss_fn(image_features.float(), text_features.float(), logit_scale.float())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="vit-b-32")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per library and mode (after 5 warm-up)")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--peak-tflops", type=float, default=0.0)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_throughput: no CUDA GPU here, nothing measured (to check the script on a CPU: --device cpu "
              "--preset tiny --batch 32 --steps 4 --images 64 --workers 1)")
        return
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    torch.manual_seed(0)

    config = CLIPConfig.preset(args.preset)
    folder = Path(tempfile.mkdtemp())
    csv, _, _ = write_data(folder, args.images)
    dataset = ImageCaptionCSV(csv, folder / "images", image_size=config.vision.image_size)
    stream = DatasetPairs(dataset, args.batch, seed=0, workers=args.workers, pin_memory=device.type == "cuda")
    tokenizer = make_tokenizer(config, corpus=stream.corpus)
    preprocess = clip_preprocess(config.vision.image_size)

    def batch(step):
        images, captions = stream.pairs(step)
        tokens = tokenizer(captions, context_length=config.text.context_length, truncate=True)
        return preprocess(images.to(device, non_blocking=True)), tokens.to(device, non_blocking=True)

    mine = CLIP(config).train()
    ref = tiny_open_clip(config).train()
    ref.load_state_dict(to_open_clip(mine))  # the same initial weights
    mine.to(device), ref.to(device)
    steps = {"minclip": lambda x, t, opt=adamw(mine, 5e-4): minclip_step(mine, opt, x, t, autocast),
             "open_clip": lambda x, t, opt=adamw(ref, 5e-4), loss=ClipLoss():
             open_clip_step(ref, loss, opt, x, t, autocast)}
    per_sample = flops(mine)
    train_flops = 3 * (per_sample["image"] + per_sample["text"]) * 1e9
    peak = peak_tflops(device, args.peak_tflops)
    fixed = batch(0)
    step_counter = iter(range(1, 10 ** 9))
    for mode in ("loader", "compute"):
        times = {name: [] for name in steps}
        for r in range(5 + args.steps):
            for name, run in steps.items():
                sync()
                t0 = time.perf_counter()  # in "loader" mode the wait for the batch counts too
                x, t = batch(next(step_counter)) if mode == "loader" else fixed
                run(x, t)
                sync()
                if r >= 5:  # rounds 0-4 warm up (allocator, AdamW state, cuDNN/cuBLAS heuristics, workers)
                    times[name].append(time.perf_counter() - t0)
        for name, ts in times.items():
            median = sorted(ts)[len(ts) // 2]
            rate = args.batch / median
            print(json.dumps({"bench": "gpu_throughput", "mode": mode, "library": name, "preset": args.preset,
                              "batch": args.batch, "device": torch.cuda.get_device_name(device)
                              if device.type == "cuda" else "cpu", "samples_per_s": round(rate, 1),
                              "mfu": round(train_flops * rate / (peak * 1e12), 3) if peak == peak else None,
                              "workers": args.workers}), flush=True)


if __name__ == "__main__":
    main()
