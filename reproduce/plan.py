"""The plan: which models `python -m reproduce` trains, how each is evaluated, and in which budget.

Every model trains through the shared loop (minclip.train for CLIP, the baselines' trainers for the others) into
OUT/runs/NAME-sSEED, and is then evaluated once into OUT/evals/NAME-sSEED.json. Both steps are resumable: a
finished run (its summary.json) and a finished evaluation (its JSON) are reused, and a run killed half-way resumes
from its last checkpoint, bit-identically (minclip/loop.py). So a killed `make reproduce` continues where it stopped.

The figures only read the evaluations (reproduce/claims.py), never the models.
"""
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from minclip.suite import SUITE_CS, SUITES, Sizes


class Spec(NamedTuple):
    """One model of the plan. kind: the trainer (clip, supervised, simclr, mae, captioning, bow_prediction,
    bow_contrastive); preset: the minclip preset of its towers; tower: a timm image tower (supervised only)."""
    name: str
    kind: str
    family: str  # how the figures group it: CLIP-ViT, CLIP-ResNet, supervised ResNet, EfficientNet, SimCLR, MAE...
    preset: str = "tiny"
    tower: str = ""
    evaluate: str = "all"  # "all": suite + robustness (+ prompts for CLIP); "curve": only the Fig. 2 curve


@dataclass(frozen=True)
class Budget:
    name: str
    steps: int  # optimiser steps of every model, batch `batch_size`
    batch_size: int
    warmup: int
    seeds: tuple
    main: str  # the ViT preset that Figs. 2 and 6 and WiSE-FT compare at (and its ResNet, MAIN-rn)
    clip_vit: tuple  # CLIP-ViT presets, smallest first: the sizes of Figs. 9 and 10
    clip_rn: tuple  # CLIP-ResNet presets
    supervised_rn: tuple  # supervised ResNet towers (minclip presets)
    efficientnet: tuple  # supervised EfficientNet towers (timm names), trained from scratch at the preset's size
    ssl: tuple  # presets of the SimCLR and MAE towers
    sizes: Sizes  # ShapeWorld images per split of every suite dataset
    shots: tuple  # k of the k-shot probes (Fig. 6)
    probe_cs: tuple  # the suite probe's C grid
    datasets: tuple  # the suite's datasets evaluated (): all 27
    eval_train: int  # baselines.evaluate's probe pool and test images per domain (Fig. 13)
    eval_test: int
    eval_every: int  # zero-shot tests while training (the Fig. 2 curves), every this many steps
    eval_images: int  # the caption baselines' zero-shot test images (0: their defaults)
    wise_steps: int  # fine-tuning steps of WiSE-FT
    wise_sizes: Sizes  # its images per split
    amp: str = "none"


BUDGETS = {
    # every stage at toy size, in CI: checks the pipeline and the report's structure, not the numbers
    "smoke": Budget(
        "smoke", steps=4, batch_size=32, warmup=1, seeds=(0, 1), main="tiny",
        clip_vit=("tiny",), clip_rn=("tiny-rn",), supervised_rn=("tiny-rn",), efficientnet=("efficientnet_b0",),
        ssl=("tiny",), sizes=Sizes(train=112, val=56, test=56), shots=(1, 2), probe_cs=(1.0,),
        datasets=SUITES["shapeworld-12"][:3] + SUITES["shapeworld-27"][12:15], eval_train=224, eval_test=56,
        eval_every=2, eval_images=50, wise_steps=3, wise_sizes=Sizes(train=200, val=30, test=56)),
    # the committed report: the 2-core laptop CPU, which it must fit in 2 hours. Sized from every job's measured
    # cost (benchmarks/reproduce_costs.py, RESULTS.md): 300 steps with EfficientNet-B0/B1 came to 61 minutes a
    # seed, so 200 steps, and the EfficientNet family scaled down by TinyNet's rules (timm's tinynet_e and
    # tinynet_c: 0.66 and about 1.0 s a step at batch 256 on 32 px, against B0's 1.9).
    "cpu": Budget(
        "cpu", steps=200, batch_size=256, warmup=20, seeds=(0, 1, 2), main="tiny",
        clip_vit=("micro", "tiny", "mini"), clip_rn=("micro-rn", "tiny-rn", "mini-rn"),
        supervised_rn=("micro-rn", "tiny-rn", "mini-rn"), efficientnet=("tinynet_e", "tinynet_c"),
        ssl=("micro", "tiny"), sizes=Sizes(train=1120, val=280, test=300), shots=(1, 2, 4, 8, 16),
        probe_cs=SUITE_CS[2:6], datasets=(), eval_train=2240, eval_test=500,
        eval_every=50, eval_images=0, wise_steps=150, wise_sizes=Sizes(train=1000, val=30, test=500)),
    # a single modern GPU: 4x the steps, twice the batch, bf16
    "gpu": Budget(
        "gpu", steps=2000, batch_size=512, warmup=200, seeds=(0, 1, 2), main="tiny",
        clip_vit=("tiny", "mini", "small"), clip_rn=("tiny-rn", "mini-rn", "small-rn"),
        supervised_rn=("tiny-rn", "mini-rn", "small-rn"),
        efficientnet=("efficientnet_b0", "efficientnet_b2", "efficientnet_b4"), ssl=("tiny", "mini", "small"),
        sizes=Sizes(train=2240, val=1120, test=2000), shots=(1, 2, 4, 8, 16), probe_cs=SUITE_CS, datasets=(),
        eval_train=4480, eval_test=2000, eval_every=250, eval_images=0, wise_steps=600,
        wise_sizes=Sizes(train=4000, val=30, test=2000), amp="bf16"),
}
# The Fig. 2 objectives besides CLIP (whose tiny run is shared with the other figures)
CAPTION_OBJECTIVES = ("captioning", "bow_prediction", "bow_contrastive")


def models(budget: Budget) -> list:
    """Every model of the plan, in training order (the ones many figures read first)."""
    specs = [Spec(f"clip-{p}", "clip", "CLIP-ViT", p) for p in budget.clip_vit]
    specs += [Spec(f"clip-{p}", "clip", "CLIP-ResNet", p) for p in budget.clip_rn]
    specs += [Spec(f"supervised-{p}", "supervised", "supervised ResNet", p) for p in budget.supervised_rn]
    specs += [Spec(f"supervised-{t}", "supervised", "EfficientNet", "tiny", tower=t) for t in budget.efficientnet]
    specs += [Spec(f"{kind}-{p}", kind, name, p) for kind, name in (("simclr", "SimCLR"), ("mae", "MAE"))
              for p in budget.ssl]
    specs += [Spec(f"{kind}-{budget.main}", kind, kind, budget.main, evaluate="curve") for kind in CAPTION_OBJECTIVES]
    return specs


def run_dir(out: Path, spec: Spec, seed: int) -> Path:
    return Path(out) / "runs" / f"{spec.name}-s{seed}"


def _config(spec: Spec, budget: Budget, seed: int, folder: Path, resume: bool):
    """The run's config: the budget's steps and batch for every model, the trainer's own recipe otherwise."""
    same = dict(preset=spec.preset, steps=budget.steps, batch_size=budget.batch_size, warmup=budget.warmup,
                seed=seed, out=str(folder), quiet=True, resume=resume, amp=budget.amp, eval_every=budget.eval_every)
    if spec.kind == "clip":
        from minclip.train import TrainConfig
        return TrainConfig(**same)
    from baselines import bow_contrastive, bow_prediction, captioning, mae, simclr, supervised
    config_class = {"supervised": supervised.SupervisedRun, "simclr": simclr.SimCLRRun, "mae": mae.MAERun,
                    "captioning": captioning.CaptioningRun, "bow_prediction": bow_prediction.BowPredictionRun,
                    "bow_contrastive": bow_contrastive.BowContrastiveRun}[spec.kind]
    return config_class(**same, eval_images=budget.eval_images, **({"tower": spec.tower} if spec.tower else {}))


def _trainer(kind: str):
    if kind == "clip":
        from minclip.train import train
        return train
    import importlib
    return importlib.import_module(f"baselines.{kind}").train


def finished(folder: Path, steps: int) -> bool:
    """A run is finished when its summary.json says it reached `steps` (it is written last, atomically)."""
    try:
        return json.loads((folder / "summary.json").read_text()).get("steps") == steps
    except (OSError, ValueError):
        return False


def train(spec: Spec, budget: Budget, seed: int, out: Path) -> Path:
    """Train the model into its run folder, resuming a run that was killed, or reuse it if it is finished."""
    folder = run_dir(out, spec, seed)
    if not finished(folder, budget.steps):
        resume = (folder / "checkpoint.pt").is_file()
        _trainer(spec.kind)(_config(spec, budget, seed, folder, resume))
    return folder


def zeroshot_curve(folder: Path, batch_size: int) -> list:
    """[(images seen, seen-pair zero-shot, held-out-pair zero-shot)] from a run's metrics.jsonl: the evaluations
    the loop ran while training (at the last step the final test on more images replaces the logged one)."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    points = {r["step"]: (r["step"] * batch_size, r["zeroshot_seen"], r["zeroshot_unseen"])
              for r in rows if "zeroshot_seen" in r}
    return list(points.values())


def evaluate(spec: Spec, budget: Budget, seed: int, out: Path) -> dict:
    """Everything the figures read about one trained model, as JSON: written once to OUT/evals/NAME-sSEED.json."""
    path = Path(out) / "evals" / f"{spec.name}-s{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    from baselines import common
    from minclip.flops import flops
    folder = run_dir(out, spec, seed)
    summary = json.loads((folder / "summary.json").read_text())
    result = {"name": spec.name, "kind": spec.kind, "family": spec.family, "preset": spec.preset,
              "tower": spec.tower, "seed": seed, "train_seconds": summary["train_seconds"]}
    if spec.kind in ("clip",) + CAPTION_OBJECTIVES:
        result["curve"] = zeroshot_curve(folder, budget.batch_size)
    t0 = time.perf_counter()
    if spec.evaluate == "all":
        model, tokenizer, preprocess = common.load(folder)
        result["gflops"] = flops(model)
        result.update(_evaluate_model(model, tokenizer, preprocess, budget, seed))
    result["eval_seconds"] = time.perf_counter() - t0
    _write_json(path, result)
    return result


def evaluate_wise_ft(budget: Budget, seed: int, out: Path) -> dict:
    """WiSE-FT on the main CLIP-ViT of this seed (reproduce/wiseft.py), once: OUT/evals/wise-ft-sSEED.json."""
    path = Path(out) / "evals" / f"wise-ft-s{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    from baselines import common
    from .wiseft import wise_ft
    spec = next(s for s in models(budget) if s.name == f"clip-{budget.main}")
    model, tokenizer, preprocess = common.load(run_dir(out, spec, seed))
    t0 = time.perf_counter()
    result = {"name": "wise-ft", "kind": "wise-ft", "family": "WiSE-FT", "seed": seed, "model": spec.name,
              **wise_ft(model, tokenizer, preprocess, Path(out) / "runs" / f"wise-ft-s{seed}", steps=budget.wise_steps,
                        sizes=budget.wise_sizes, seed=seed)}
    result["eval_seconds"] = time.perf_counter() - t0
    _write_json(path, result)
    return result


def _write_json(path: Path, value: dict) -> None:
    """Atomically: a killed evaluation leaves no half-written JSON to be reused."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def _evaluate_model(model, tokenizer, preprocess, budget: Budget, seed: int) -> dict:
    """The suite (zero-shot, linear and k-shot probes on shapeworld-27), the prompt ablation on the standard 12
    (CLIP only), and per-domain accuracies for robustness (baselines/evaluate.py: its one definition of shifted)."""
    from baselines.evaluate import eval_data, evaluate as evaluate_domains, robustness
    from minclip.suite import evaluate_suite, shapeworld_dataset
    from minclip.zeroshot import prompt_ablation
    rows = evaluate_suite(model, tokenizer, preprocess, "shapeworld-27", shots=budget.shots, sizes=budget.sizes,
                          seed=seed, progress=False, Cs=budget.probe_cs, only=budget.datasets).rows
    result = {"suite": [{k: r[k] for k in ("dataset", "task", "value")} for r in rows]}
    if tokenizer is not None:
        image_size = model.config.vision.image_size
        prompts = {}
        for name in [n for n in SUITES["shapeworld-12"] if not budget.datasets or n in budget.datasets]:
            data = shapeworld_dataset(name, image_size, budget.sizes, seed)
            images, labels = data.splits["test"]
            prompts[name] = prompt_ablation(model, tokenizer, images, labels, data.classnames, data.templates,
                                            preprocess)
        result["prompts"] = prompts
    data = eval_data(budget.eval_train, budget.eval_test, image_size=model.config.vision.image_size, seed=seed)
    domains = evaluate_domains(model, preprocess, data, tokenizer, shots=(), trials=1)
    result["robustness"] = robustness(domains)._asdict()
    return result


class Progress:
    """A progress bar over the whole plan, weighted by each step's expected cost, with tqdm's time estimate."""

    def __init__(self, jobs: list, enabled: bool = True):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=sum(cost for _, cost in jobs), unit="job-s", disable=not enabled,
                        bar_format="{l_bar}{bar}| {elapsed} elapsed, about {remaining} left")

    def done(self, what: str, cost: float) -> None:
        self.bar.set_description(what)
        self.bar.update(cost)

    def close(self) -> None:
        self.bar.close()


# Seconds a model of the cpu plan took on the 2-core machine (2026-12-03, seed 0 of the committed report): per
# training step of 256 pairs, and for its evaluation. Only the progress bar reads them.
MEASURED = {
    "clip-micro": (0.08, 25), "clip-tiny": (0.18, 35), "clip-mini": (0.69, 108),
    "clip-micro-rn": (0.11, 34), "clip-tiny-rn": (0.26, 43), "clip-mini-rn": (0.67, 74),
    "supervised-micro-rn": (0.08, 28), "supervised-tiny-rn": (0.17, 35), "supervised-mini-rn": (0.43, 60),
    "supervised-tinynet_e": (0.52, 64), "supervised-tinynet_c": (0.82, 98),
    "simclr-micro": (0.15, 30), "simclr-tiny": (0.29, 48), "mae-micro": (0.09, 27), "mae-tiny": (0.13, 57),
    "captioning-tiny": (0.21, 0), "bow_prediction-tiny": (0.12, 0), "bow_contrastive-tiny": (0.13, 0),
}


def cost(spec: Spec, budget: Budget) -> float:
    """A model's expected seconds, training and evaluation, for the progress bar's estimate: measured where the cpu
    plan has the model (MEASURED), else a guess from the preset's compute. The split of the time the report gives
    is measured, not this."""
    step, evaluation = MEASURED.get(spec.name, (None, None))
    if step is None:
        guess = {"micro": 0.007, "micro-rn": 0.01, "tiny": 0.02, "tiny-rn": 0.02, "mini": 0.1, "mini-rn": 0.08,
                 "small": 0.85, "small-rn": 0.37}  # roughly each preset's training cost per pair, relative
        step, evaluation = 8.0 * (guess.get(spec.preset, 0.1) if not spec.tower else 0.1), 60.0
    return budget.steps * budget.batch_size / 256 * step + (evaluation if spec.evaluate == "all" else 0.0)


WISE_COST = 10.0  # WiSE-FT, seconds a seed (measured as MEASURED: about 9)


def run(out: Path, budget: Budget, progress: bool = True) -> dict:
    """Train and evaluate every model of the plan for every seed; returns {"evals": [...], "seconds": {...}}: the
    seconds every model's training and evaluation took, summed over the runs (a resumed plan counts them all)."""
    check_plan(Path(out), budget)
    jobs = [((spec, seed), cost(spec, budget)) for seed in budget.seeds for spec in models(budget)]
    bar = Progress(jobs + [(None, WISE_COST)] * len(budget.seeds), progress)
    evals = []
    try:
        for (spec, seed), job_cost in jobs:
            train(spec, budget, seed, out)
            evals.append(evaluate(spec, budget, seed, out))
            bar.done(f"{spec.name} seed {seed}", job_cost)
        for seed in budget.seeds:
            evals.append(evaluate_wise_ft(budget, seed, out))
            bar.done(f"WiSE-FT seed {seed}", WISE_COST)
    finally:
        bar.close()
    by_family = {}
    for e in evals:
        by_family[e["family"]] = by_family.get(e["family"], 0.0) + e.get("train_seconds", 0) + e["eval_seconds"]
    seconds = {"train": sum(e.get("train_seconds", 0) for e in evals),
               "evaluate": sum(e["eval_seconds"] for e in evals), "by_family": by_family}
    return {"evals": evals, "seconds": seconds}


def check_plan(out: Path, budget: Budget) -> None:
    """OUT/plan.json records the budget; an OUT made with another one is refused (its runs and evaluations would
    be reused as if they were this budget's)."""
    path, plan = out / "plan.json", json.loads(json.dumps(asdict(budget)))  # tuples as JSON lists
    if path.is_file() and json.loads(path.read_text()) != plan:
        raise ValueError(f"{out} holds a run of another plan (budget {json.loads(path.read_text())['name']!r}, or "
                         f"this budget before a change to reproduce/plan.py); pass another --out, or delete {out} to "
                         "start over")
    _write_json(path, plan)


def device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"{os.cpu_count()}-core CPU"


def find(evals: list, **match) -> list:
    """The evaluations whose fields equal `match`, e.g. find(evals, family="CLIP-ViT", preset="tiny")."""
    return [e for e in evals if all(e.get(k) == v for k, v in match.items())]

