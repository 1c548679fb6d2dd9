"""Which is better, and why? CLIP, FLIP, SLIP, SimCLR, MAE, a supervised model, and LiT on the SimCLR, MAE and
supervised towers: the same image tower (the tiny preset's ViT), the same ShapeWorld images, the same budget
(steps x batch; LiT adds its text tower's steps to its tower's), then the same evaluation (baselines/evaluate.py).

    python -m baselines.compare --out runs/compare              # the CPU budget: about 20 minutes on 2 cores
    python -m baselines.compare --budget gpu --out runs/gpu     # 4x the steps, 2x the batch
    python -m baselines.compare --smoke --out /tmp/smoke        # a few minutes: checks the plumbing, not the methods

Writes OUT/results.json, OUT/results.md (the table), OUT/accuracy.png, OUT/low_shot.png, OUT/robustness.png, and
every run under OUT/runs/NAME. A finished run is reused when the comparison runs again (delete it to retrain).
Effective robustness is measured against a line fitted over a family of supervised models (other widths, depths
and lengths), trained on photos only, as CLIP Fig. 13 fits it over ImageNet models.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from baselines import common, lit, mae, simclr, slip, supervised
from baselines.evaluate import IN_DISTRIBUTION, eval_data, evaluate, head_accuracies, robustness
from baselines.figures import accuracy_bars, low_shot_lines
from minclip import train as minclip_train
from minclip.cli import HelpFormatter
from minclip.plots import robustness_scatter
from minclip.robustness import RobustnessLine, effective_robustness, fit_robustness_line


@dataclass
class Budget:
    steps: int  # optimiser steps of every model (LiT: of its text tower, after its tower's)
    batch_size: int  # images or image-text pairs per step, for every model
    warmup: int
    n_train: int  # the probes' training pool (photo, seen pairs): 40 images a class at 2240
    n_test: int  # test images per domain
    trials: int  # k-shot probes drawn per k


BUDGETS = {
    "cpu": Budget(steps=500, batch_size=256, warmup=50, n_train=2240, n_test=1000, trials=3),
    "gpu": Budget(steps=2000, batch_size=512, warmup=200, n_train=4480, n_test=2000, trials=5),
    "smoke": Budget(steps=4, batch_size=32, warmup=1, n_train=896, n_test=56, trials=1),
}
# How each model trains: (train function, its run config, extra flags). LiT's tower is the run it names.
METHODS = {
    "SimCLR": (simclr.train, simclr.SimCLRRun, {}),
    "MAE": (mae.train, mae.MAERun, {}),
    "supervised": (supervised.train, supervised.SupervisedRun, {}),
    "SLIP": (slip.train, slip.SLIPRun, {}),
    "LiT (SimCLR)": (lit.train, lit.LiTRun, {"tower": "SimCLR"}),
    "LiT (MAE)": (lit.train, lit.LiTRun, {"tower": "MAE"}),
    "LiT (supervised)": (lit.train, lit.LiTRun, {"tower": "supervised"}),
}
MODELS = ("CLIP", "FLIP", "SLIP", "SimCLR", "MAE", "supervised", "LiT (SimCLR)", "LiT (MAE)", "LiT (supervised)")
# The supervised family for the robustness line: (ViT width, blocks, fraction of the steps). With the main
# supervised model (96 x 3, all the steps) it spans a range of in-distribution accuracies.
FAMILY = ((32, 1, 0.25), (32, 1, 1.0), (64, 2, 0.5))
# Fine-tuning (MAE §4): the supervised recipe for this fraction of the steps, starting from each pre-trained image
# tower, or from scratch. Linear probes read a frozen tower; fine-tuning asks how good a start it is.
FINETUNE, TOWERS = 0.1, ("CLIP", "FLIP", "SLIP", "SimCLR", "MAE", "supervised")


def run_dir(out: Path, name: str) -> Path:
    return out / "runs" / name.lower().replace(" ", "-").replace("(", "").replace(")", "").replace("/", "-")


def shorter(budget: Budget, fraction: float) -> Budget:
    """The budget with a fraction of its steps (and warm-up at most half of them)."""
    steps = max(1, int(budget.steps * fraction))
    return replace(budget, steps=steps, warmup=min(budget.warmup, steps // 2))


def train_model(name: str, out: Path, budget: Budget, seed: int, method: str = "", **flags) -> dict:
    """Train model `name` (with `method`'s recipe, default its own) into its run folder, or reuse a finished one;
    returns its timing."""
    folder = run_dir(out, name)
    if (folder / "timing.json").exists():
        return json.loads((folder / "timing.json").read_text())
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished run starts over, so its wall time is whole
    same = dict(steps=budget.steps, batch_size=budget.batch_size, warmup=budget.warmup, seed=seed, out=str(folder),
                quiet=True)
    t0 = time.perf_counter()
    if name in ("CLIP", "FLIP"):  # minclip.train itself; FLIP drops half the patches (Li et al. 2023)
        train_seconds = minclip_train.train(minclip_train.TrainConfig(
            preset="tiny", eval_every=10 ** 9, patch_dropout=0.5 if name == "FLIP" else 0.0, **same))["train_seconds"]
    else:
        train, run_config, extra = METHODS[method or name]
        extra = {k: str(run_dir(out, v)) if k == "tower" else v for k, v in extra.items()}
        train_seconds = train(run_config(**same, **extra, **flags))["train_seconds"]
    timing = {"train_seconds": train_seconds, "wall_seconds": time.perf_counter() - t0}
    (folder / "timing.json").write_text(json.dumps(timing))
    return timing


def compare(out: Path, budget: Budget, seed: int = 0, log=print) -> dict:
    """Train every model and the supervised family, evaluate them, write results.json, results.md and figures."""
    out.mkdir(parents=True, exist_ok=True)
    started, results = time.perf_counter(), {}
    for name in MODELS:
        log(f"[{time.perf_counter() - started:6.0f} s] training {name}")
        results[name] = train_model(name, out, budget, seed)
    family, finetuned = {}, {}
    for width, layers, fraction in FAMILY:
        name = f"supervised {width}x{layers}, {fraction:g} steps"
        log(f"[{time.perf_counter() - started:6.0f} s] training {name}")
        family[name] = train_model(name, out, shorter(budget, fraction), seed, "supervised", width=width, layers=layers)
    for tower in ("scratch",) + TOWERS:
        log(f"[{time.perf_counter() - started:6.0f} s] fine-tuning {tower}")
        init = {} if tower == "scratch" else {"init": str(run_dir(out, tower))}
        finetuned[tower] = train_model(f"fine-tune {tower}", out, shorter(budget, FINETUNE), seed, "supervised", **init)
    log(f"[{time.perf_counter() - started:6.0f} s] evaluating")
    t0 = time.perf_counter()
    data = eval_data(budget.n_train, budget.n_test, seed=seed)
    for name in MODELS:
        model, tokenizer, preprocess = common.load(run_dir(out, name))
        results[name].update(evaluate(model, preprocess, data, tokenizer, trials=budget.trials))
        results[name]["robustness"] = robustness(results[name])._asdict()
    points = {"supervised": results["supervised"]["robustness"]}
    for name in family:
        model, _, preprocess = common.load(run_dir(out, name))
        family[name]["robustness"] = robustness({"head_domains": head_accuracies(model, preprocess, data)})._asdict()
        points[name] = family[name]["robustness"]
    for tower in finetuned:
        model, _, preprocess = common.load(run_dir(out, f"fine-tune {tower}"))
        finetuned[tower]["head_domains"] = head_accuracies(model, preprocess, data)
        if tower in results:
            results[tower]["finetuned"] = finetuned[tower]["head_domains"][IN_DISTRIBUTION]
    line = fit_robustness_line([p["in_distribution"] for p in points.values()], [p["shifted"] for p in points.values()])
    runs = list(results.values()) + list(family.values())
    for r in runs:
        r["effective_robustness"] = effective_robustness(line, r["robustness"]["in_distribution"],
                                                         r["robustness"]["shifted"])
    report = {"date": datetime.date.today().isoformat(), "machine": machine(), "budget": asdict(budget), "seed": seed,
              "training_domains": minclip_train.TrainConfig().domains, "models": results, "supervised_family": family,
              "finetuned": finetuned, "line": line._asdict(),
              "train_wall_seconds": sum(r["wall_seconds"] for r in runs + list(finetuned.values())),
              "eval_seconds": time.perf_counter() - t0, "total_seconds": time.perf_counter() - started}
    write_outputs(out, report)
    log(f"[{report['total_seconds']:6.0f} s] wrote {out / 'results.md'}")
    return report


def machine() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{os.cpu_count()}-core CPU"
    return f"{device}, {platform.machine()}, torch {torch.__version__}"


def percent(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def table(report: dict) -> str:
    """The comparison as a markdown table, one row per model (accuracies in %, color_shape task)."""
    shots = list(next(iter(report["models"].values()))["shots"])
    rows = ["| model | linear probe | kNN | zero-shot (seen / unseen) | " + " | ".join(f"{k}-shot" for k in shots)
            + f" | fine-tuned | {IN_DISTRIBUTION} → shifted (classifier) | effective robustness | train s |",
            "|---" * (8 + len(shots)) + "|"]
    for name, r in report["models"].items():
        rb, tower = r["robustness"], METHODS.get(name, (None, None, {}))[2].get("tower")
        seconds = f"{r['train_seconds']:.0f}"
        if tower:
            seconds += f" + {report['models'][tower]['train_seconds']:.0f}"
        zeroshot = f"{percent(r['zeroshot'])} / {percent(r['zeroshot_unseen'])}" if "zeroshot" in r else "–"
        rows.append(f"| {name} | {percent(r['linear_probe'])} | {percent(r['knn'])} | {zeroshot} | "
                    + " | ".join(percent(r["shots"][k]) for k in shots)
                    + f" | {percent(r.get('finetuned'))} | {percent(rb['in_distribution'])} → {percent(rb['shifted'])}"
                      f" ({rb['classifier']}) | {100 * r['effective_robustness']:+.1f} | {seconds} |")
    b, finetune = report["budget"], shorter(Budget(**report["budget"]), FINETUNE).steps
    scratch = report["finetuned"]["scratch"]["head_domains"][IN_DISTRIBUTION]
    return "\n".join(rows) + (
        f"\n\n{b['steps']} steps x batch {b['batch_size']} for every model, on ShapeWorld images of the "
        f"{report['training_domains']} domain(s); {report['machine']}, {report['date']}. "
        f"Train s: seconds of training steps (LiT: its text tower + its locked tower). "
        f"Probes: photo images of the 56 seen colour-shape pairs ({b['n_train']} in the pool; k-shot: mean of "
        f"{b['trials']} draws); zero-shot picks among all 64 pairs. Fine-tuned: the supervised recipe for "
        f"{finetune} steps from the model's image tower, every weight trained (from scratch: {percent(scratch)}). "
        f"Shifted: mean accuracy over the 6 other domains. Effective robustness: shifted accuracy above the line "
        f"fitted over {len(report['supervised_family']) + 1} supervised models (logit axes; slope "
        f"{report['line']['slope']:.2f}).\n")


def write_outputs(out: Path, report: dict) -> None:
    (out / "results.json").write_text(json.dumps(report, indent=2))
    (out / "results.md").write_text(table(report))
    models = report["models"]
    accuracy_bars(models).savefig(out / "accuracy.png", dpi=120, bbox_inches="tight")
    low_shot_lines(models, report["budget"]["n_train"] / 56).savefig(out / "low_shot.png", dpi=120,
                                                                        bbox_inches="tight")
    points = {name: (r["robustness"]["in_distribution"], r["robustness"]["shifted"])
              for name, r in {**models, **report["supervised_family"]}.items()}
    robustness_scatter(points, RobustnessLine(**report["line"])).savefig(out / "robustness.png", dpi=120, bbox_inches="tight")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m baselines.compare", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--out", default="runs/compare", help="folder for the runs, results and figures")
    parser.add_argument("--budget", default="cpu", choices=["cpu", "gpu"], help="steps, batch and evaluation sizes")
    parser.add_argument("--smoke", action="store_true", help="a few steps of everything (CI): the plumbing only")
    parser.add_argument("--steps", type=int, default=0, help="steps of every model (0 = the budget's)")
    parser.add_argument("--batch-size", type=int, default=0, help="batch of every model (0 = the budget's)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every run and the evaluation")
    args = parser.parse_args(argv)
    budget = BUDGETS["smoke" if args.smoke else args.budget]
    budget = replace(budget, steps=args.steps or budget.steps, batch_size=args.batch_size or budget.batch_size)
    if budget.steps < 1 or budget.batch_size < 2:
        parser.error(f"--steps {budget.steps} and --batch-size {budget.batch_size}: need steps >= 1, batch >= 2")
    report = compare(Path(args.out), budget, args.seed)
    print(table(report))


if __name__ == "__main__":
    main()
