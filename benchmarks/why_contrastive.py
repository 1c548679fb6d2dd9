"""Why contrastive? CLIP's Fig. 2 at teaching scale: zero-shot accuracy against images seen, for three ways to learn
from captions and CLIP itself, on the same image tower and the same data.

    captioning        a transformer LM predicts the caption from the image       (baselines/captioning.py)
    bow_prediction    a linear head predicts the caption's bag of words          (baselines/bow_prediction.py)
    bow_contrastive   CLIP's loss with a bag-of-words text encoder               (baselines/bow_contrastive.py)
    clip              CLIP: CLIP's loss with its transformer text encoder        (minclip.train)

Every run: the tiny preset's ViT (and its text tower's size for the captioner's decoder), ShapeWorld photos with
minclip.train's captions, batch 256, the same recipe (AdamW, lr 3e-3, weight decay 0.2, warm-up 10%, clipping 1),
STEPS steps, seeds 0..SEEDS-1. Zero-shot on fresh photos, seen and held-out colour-shape pairs, every STEPS/4 steps
while training (500 images per split for the embedding models, 200 for the likelihood models: scoring every
(image, prompt) pair is 256x the work), and at the end (2,000 and 1,000).

    .venv/bin/python benchmarks/why_contrastive.py                  # about 30 CPU-minutes on 2 cores
    .venv/bin/python benchmarks/why_contrastive.py --steps 100 --seeds 1   # a quick look

Prints one JSON line per run, then writes benchmarks/why_contrastive.json and .png.
"""
import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from baselines import bow_contrastive, bow_prediction, captioning
from minclip.train import TrainConfig, train as train_clip
from reproduce.plan import zeroshot_curve

HERE = Path(__file__).resolve().parent
OBJECTIVES = {  # name -> (train(cfg), its config class)
    "captioning": (captioning.train, captioning.CaptioningRun),
    "bow_prediction": (bow_prediction.train, bow_prediction.BowPredictionRun),
    "bow_contrastive": (bow_contrastive.train, bow_contrastive.BowContrastiveRun),
    "clip": (train_clip, TrainConfig),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "why_contrastive"))
    parser.add_argument("--replot", action="store_true", help="only redraw OUT.png from OUT.json")
    args = parser.parse_args()
    if args.replot:
        rows = json.loads(Path(args.out + ".json").read_text())
        figure(rows).savefig(args.out + ".png", dpi=110, bbox_inches="tight")
        return
    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for name, (train, config_class) in OBJECTIVES.items():
                out = Path(tmp) / f"{name}-{seed}"
                summary = train(config_class(preset="tiny", batch_size=args.batch_size, steps=args.steps,
                                             lr=3e-3, weight_decay=0.2, warmup=args.steps // 10, seed=seed,
                                             eval_every=args.steps // 4, quiet=True, out=str(out)))
                row = {"bench": "why_contrastive", "objective": name, "seed": seed, "steps": args.steps,
                       "images": args.steps * args.batch_size, "seen": round(summary["seen"], 4),
                       "unseen": round(summary["unseen"], 4), "train_seconds": round(summary["train_seconds"], 1),
                       "curve": [(n, round(a, 4), round(b, 4)) for n, a, b in zeroshot_curve(out, args.batch_size)]}
                print(json.dumps(row), flush=True)
                rows.append(row)
    Path(args.out + ".json").write_text(json.dumps(rows, indent=1))
    figure(rows).savefig(args.out + ".png", dpi=110, bbox_inches="tight")
    for name in OBJECTIVES:
        mine = [r for r in rows if r["objective"] == name]
        for split in ("seen", "unseen"):
            values = [100 * r[split] for r in mine]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            print(f"{name:16s} {split:7s} {statistics.mean(values):5.1f} ± {spread:.1f}% "
                  f"(seeds {', '.join(f'{v:.1f}' for v in values)})")


def figure(rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), sharey=True)
    for ax, (split, column) in zip(axes, (("seen", 1), ("held-out", 2))):
        for name, style in zip(OBJECTIVES, ("v:", "s--", "o-.", "D-")):
            mine = [r for r in rows if r["objective"] == name]
            steps = sorted({p[0] for p in mine[0]["curve"]})  # the evaluation points (images seen)
            at = [{p[0]: p[column] for p in r["curve"]} for r in mine]  # the last value at each point
            mean = [100 * statistics.mean(a[s] for a in at) for s in steps]
            ax.plot([s / 1000 for s in steps], mean, style, label=name)
        ax.set_xlabel("thousands of images seen")
        ax.set_title(f"zero-shot, {split} colour-shape pairs")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%, mean over seeds)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
