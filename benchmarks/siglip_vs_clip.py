"""CLIP's softmax loss against SigLIP's sigmoid loss, across batch sizes, at an equal number of images seen.

SigLIP's claim (Zhai et al. 2023, §4, Fig. 2): the sigmoid loss is better than the softmax at small batches, and the
two meet as the batch grows. Here: the tiny preset on ShapeWorld photos, `python -m minclip.train --loss clip|siglip`
at --batch-size 32 ... 512, each for IMAGES / batch steps (warm-up 10% of them), the preset's learning rate, seed 0;
zero-shot accuracy on 2,000 fresh photos of seen colour-shape pairs and 2,000 of held-out pairs.

    .venv/bin/python benchmarks/siglip_vs_clip.py            # about 15 CPU-minutes on 2 cores
    .venv/bin/python benchmarks/siglip_vs_clip.py --images 20000 --batches 32,128   # a quick look

Prints one JSON line per run, then writes benchmarks/siglip_vs_clip.json and benchmarks/siglip_vs_clip.png.
"""
import argparse
import json
import tempfile
from pathlib import Path

import torch

from minclip.train import TrainConfig, train

HERE = Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=76_800, help="images seen by every run (300 steps of 256)")
    parser.add_argument("--batches", default="32,64,128,256,512")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "siglip_vs_clip"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in [int(b) for b in args.batches.split(",")]:
            for loss in ("clip", "siglip"):
                steps = args.images // batch
                summary = train(TrainConfig(preset="tiny", loss=loss, batch_size=batch, steps=steps,
                                            warmup=steps // 10, seed=args.seed, eval_every=10 ** 9, quiet=True,
                                            out=f"{tmp}/{loss}-{batch}"))
                row = {"bench": "siglip_vs_clip", "loss": loss, "batch_size": batch, "steps": steps,
                       "images": steps * batch, "seen": round(summary["seen"], 4),
                       "unseen": round(summary["unseen"], 4), "train_seconds": round(summary["train_seconds"], 1)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    Path(args.out + ".json").write_text(json.dumps(rows, indent=1))
    figure(rows).savefig(args.out + ".png", dpi=110, bbox_inches="tight")


def figure(rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, split in zip(axes, ("seen", "unseen")):
        for loss, style in (("clip", "o-"), ("siglip", "s--")):
            mine = [r for r in rows if r["loss"] == loss]
            ax.plot([r["batch_size"] for r in mine], [100 * r[split] for r in mine], style, label=loss)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size (equal images seen)")
        ax.set_title(f"zero-shot, {split} colour-shape pairs")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend()
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
