"""Binding before and after the fix, 3 seeds each, on the binding benchmark (minclip/binding.py), with what the fix
costs in ordinary zero-shot accuracy and in step time. Beside them, once each: the demo model, SigLIP, and the three
objectives of Fig. 2 (captioning, bag-of-words prediction, bag-of-words contrastive).

- clip: the zoo model's recipe (minclip/zoo.py: tiny preset, 1,500 steps of 256, ShapeWorld's 7-domain mix, 1-3
  objects a scene, alt-text-like captions).
- negclip: the same recipe with `--hard-negatives swap` from the first step.
- complete: clip, fine-tuned for 600 steps on photos of 1-3 objects whose captions name every object by colour and
  shape (`--init RUN --objects 1,3 --captions complete`): the data lever, and the control for the next row.
- complete+negclip: the same fine-tune with `--hard-negatives swap`: the fix.
- demo: `make demo`'s recipe at a fixed 1,000 steps (photos, one object a scene). siglip: the zoo recipe with
  `--loss siglip`. The Fig. 2 baselines: 400 steps of 256 on the zoo's mix and objects.

    .venv/bin/python benchmarks/binding.py                    # about 60 CPU-minutes on 2 cores; runs are kept
    .venv/bin/python benchmarks/binding.py --only clip,complete+negclip --seeds 0   # a quick look

Runs go to --runs (kept: a finished run is evaluated again, not retrained). Prints one JSON line per run, the step
time of CLIP and NegCLIP measured side by side (interleaved, in this process), then writes benchmarks/binding.json
and benchmarks/binding.png.
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from baselines import bow_contrastive, bow_prediction, captioning
from minclip.binding import NEGATIVE_TYPES, evaluate_binding
from minclip.checkpoint import load
from minclip.data import ShapeWorld
from minclip.parallel import Parallel
from minclip.train import CLIPObjective, TrainConfig, train as train_clip
from minclip.zoo import MODELS

HERE = Path(__file__).resolve().parent
ZOO = {k: v for k, v in MODELS["clip-tiny-shapeworld"].items() if k != "seed"}
FINE_TUNE = dict(init="clip", preset="tiny", steps=600, batch_size=256, warmup=50, lr=1e-3, domains="photo",
                 objects="1,3", captions="complete")  # init: the run of this variant with the same seed
FIG2 = dict(preset="tiny", steps=400, batch_size=256, warmup=40, domains="mix", objects="1,3")
VARIANTS = {  # name -> (train, config class, flags), seeded per run
    "clip": (train_clip, TrainConfig, ZOO),
    "negclip": (train_clip, TrainConfig, {**ZOO, "hard_negatives": "swap"}),
    "complete": (train_clip, TrainConfig, FINE_TUNE),
    "complete+negclip": (train_clip, TrainConfig, {**FINE_TUNE, "hard_negatives": "swap"}),
    "demo": (train_clip, TrainConfig, dict(preset="tiny", steps=1000, batch_size=256, warmup=100)),
    "siglip": (train_clip, TrainConfig, {**ZOO, "loss": "siglip"}),
    "bow_contrastive": (bow_contrastive.train, bow_contrastive.BowContrastiveRun, FIG2),
    "captioning": (captioning.train, captioning.CaptioningRun, FIG2),
    "bow_prediction": (bow_prediction.train, bow_prediction.BowPredictionRun, FIG2),
}
SEEDED = ("clip", "negclip", "complete", "complete+negclip")  # these take --seeds; the rest train once, seed 0


def folder(runs: Path, name: str, seed: int) -> Path:
    return runs / f"{name}-seed{seed}"


def run(name: str, seed: int, runs: Path) -> dict:
    train, config, flags = VARIANTS[name]
    out = folder(runs, name, seed)
    if "init" in flags:  # a fine-tune starts from the run of flags["init"] with the same seed
        run(flags["init"], seed, runs)
        flags = {**flags, "init": str(folder(runs, flags["init"], seed))}
    if not (out / "summary.json").exists():
        train(config(**flags, seed=seed, out=str(out), eval_every=10 ** 9, quiet=True, resume=out.exists()))
    summary = json.loads((out / "summary.json").read_text())
    model, tokenizer, preprocess = load(out)
    world = ShapeWorld(seed=0, image_size=model.config.vision.image_size)
    result = evaluate_binding(model, tokenizer, preprocess, world, n=500, seed=0)
    return {"bench": "binding", **result, "benchmark_seed": result["seed"], "model": name, "seed": seed,
            "steps": summary["steps"], "step_seconds": round(summary["train_seconds"] / summary["steps"], 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--only", default=",".join(VARIANTS), help="comma-separated models, of: " + ", ".join(VARIANTS))
    parser.add_argument("--runs", default="runs/binding")
    parser.add_argument("--out", default=str(HERE / "binding"))
    parser.add_argument("--report", action="store_true", help="only print the table and redraw the figure of OUT.json")
    args = parser.parse_args()
    unknown = set(args.only.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"--only: unknown models {sorted(unknown)}; choose among {', '.join(VARIANTS)}")
    if args.report:
        return report(json.loads(Path(args.out + ".json").read_text()), args.out)
    torch.set_num_threads(2)
    rows = []
    for name in [n for n in VARIANTS if n in args.only.split(",")]:
        for seed in [int(s) for s in args.seeds.split(",")] if name in SEEDED else [0]:
            row = run(name, seed, Path(args.runs))
            print(json.dumps({k: row[k] for k in ("model", "seed", "step_seconds", "single_object_zeroshot")}
                             | {"binding": headline(row)}), flush=True)
            rows.append(row)
    result = {"runs": rows, "negclip_step_time_ratio": step_time_ratio()}
    Path(args.out + ".json").write_text(json.dumps(result, indent=1))
    report(result, args.out)


def report(result: dict, out: str) -> None:
    print(table(result["runs"]))
    print(f"\nstep time, NegCLIP / CLIP (tiny preset, batch 256, interleaved, median of 15): "
          f"{result['negclip_step_time_ratio']:.2f}x")
    figure(result["runs"]).savefig(out + ".png", dpi=110, bbox_inches="tight")


def step_time_ratio(repeats: int = 15) -> float:
    """NegCLIP's training step over CLIP's, timed alternately in one process so that both see the same machine
    load: forward + backward on one batch of 256 (tiny preset, photos of 2-3 objects, complete captions), with the
    hard negatives written, tokenized and encoded. -> the median of the per-pair ratios."""
    cpu = Parallel(rank=0, world=1, device=torch.device("cpu"))
    objectives = {hn: CLIPObjective(TrainConfig(**{**FINE_TUNE, "init": "", "hard_negatives": hn}), None, cpu)
                  for hn in ("none", "swap")}
    ratios = []
    for step in range(repeats + 2):  # the first two are warm-up
        seconds = {}
        for hn, objective in sorted(objectives.items(), reverse=step % 2 == 1):  # each goes first half the time
            start = time.perf_counter()
            objective.backward(step, None, None)
            seconds[hn] = time.perf_counter() - start
        ratios.append(seconds["swap"] / seconds["none"])
    return round(statistics.median(ratios[2:]), 3)


def both(scores: dict) -> float:
    """The mean of the two directions (image -> caption and caption -> image)."""
    return (scores["text"] + scores["image"]) / 2


def headline(row: dict) -> dict:
    return {kind: round(both(row["types"][kind]["seen"]), 3) for kind in NEGATIVE_TYPES}


def mean_std(values) -> str:
    values = [100 * v for v in values]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def table(rows) -> str:
    """A Markdown table, one line per model: mean ± std over seeds (seen pairs, both directions), and the fix's cost
    in zero-shot accuracy. (Step times are measured apart, interleaved: a run's own time depends on what else the
    machine was doing while it trained.)"""
    kinds = [k.replace("_", " ") for k in NEGATIVE_TYPES]
    lines = ["| model | seeds | " + " | ".join(kinds) + " | swap attr. (held-out) | zero-shot seen "
             "| zero-shot held-out |", "|" + "---|" * (len(kinds) + 5)]
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        cells = [mean_std([both(r["types"][k]["seen"]) for r in mine]) for k in NEGATIVE_TYPES]
        cells.append(mean_std([both(r["types"]["swap_attribute"]["unseen"]) for r in mine]))
        cells += [mean_std([r["single_object_zeroshot"][s] for r in mine]) for s in ("seen", "unseen")]
        lines.append(f"| {name} | {len(mine)} | " + " | ".join(cells) + " |")
    blind = rows[0]["blind"]
    lines.append("| blind (bigram LM, text only) | - | " + " | ".join(f"{100 * both(blind[k]['seen']):.1f}"
                                                                       for k in NEGATIVE_TYPES) + " | | | |")
    return "\n".join(lines)


def figure(rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(r["model"] for r in rows))
    fig, ax = plt.subplots(figsize=(11, 3.8))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        mine = [r for r in rows if r["model"] == name]
        values = [[100 * both(r["types"][k]["seen"]) for r in mine] for k in NEGATIVE_TYPES]
        x = [i + (j - (len(names) - 1) / 2) * width for i in range(len(NEGATIVE_TYPES))]
        ax.bar(x, [statistics.mean(v) for v in values], width, label=f"{name} ({len(mine)})",
               yerr=[statistics.stdev(v) if len(v) > 1 else 0 for v in values], capsize=2)
    ax.axhline(50, color="k", ls="--", lw=1, label="chance = blind baseline")
    ax.set_xticks(range(len(NEGATIVE_TYPES)), [k.replace("_", " ") for k in NEGATIVE_TYPES])
    ax.set_ylabel("true match wins (%)"), ax.set_ylim(0, 105)
    ax.set_title("Binding on ShapeWorld (seen pairs, both directions; mean ± std over seeds)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
