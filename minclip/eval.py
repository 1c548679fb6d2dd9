"""Evaluate a trained CLIP on ShapeWorld: `python -m minclip.eval --checkpoint DIR --task zeroshot`, or any model on a
suite of datasets: `python -m minclip.eval --checkpoint DIR [DIR ...] --suite shapeworld-12 --out OUT`.

Tasks (each prints a table and writes DIR/eval_TASK.json and DIR/eval_TASK.png, or into --out):
    zeroshot    64-class colour-shape accuracy on seen and held-out pairs, the specialised tasks, and the prompt
                ablation (class name vs one template vs the ensemble, CLIP §3.1.4)
    retrieval   image->text and text->image recall@1/5/10 on fresh captioned scenes
    probe       a linear probe on frozen image features vs zero-shot (CLIP §3.2)
    lowshot     probe accuracy at 1-16 shots and all, and where it crosses zero-shot (§3.1.5)
    robustness  accuracy on every domain, zero-shot and for a probe fitted on photos only, and effective robustness
                against a line fitted over in-distribution probes (§3.3, Fig. 13)
    binding     true caption vs a hard negative with the same words (swapped colours, swapped relation, one word
                replaced), both directions, with a blind text-only baseline (minclip/binding.py) -> binding.json

Suites (--suite; minclip/suite.py): shapeworld-12, shapeworld-27 (offline), kornblith-12, clip-27 (torchvision, with
--root and --download). Zero-shot where the model reads text, and a linear probe (C swept on the validation split),
on every dataset; --shots 1,2,4,8,16 adds k-shot probes. Writes OUT/suite.json (one row per model, dataset and task)
and OUT/suite.png, and keeps image features in OUT/features/ for the next run. Every objective's run folder works
(CLIP, SigLIP, SimCLR, MAE, supervised, LiT, ...); --pretrained vit-b-32 reads open_clip/OpenAI weight files.
"""
import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import torch

from . import plots, suite
from .binding import NEGATIVE_TYPES, evaluate_binding
from .checkpoint import checkpoint_file, load
from .data import ShapeWorld
from .data.shapeworld import TASKS as CLASSNAMES
from .parallel import resolve_device
from .probe import FEW_SHOT_C, knn_accuracy, linear_probe, low_shot_curve, sample_k_shot
from .robustness import domain_accuracies, effective_robustness, fit_robustness_line
from .zeroshot import (image_features, logits_accuracy, prompt_ablation, retrieval, scores_likelihood,
                       zeroshot_logits)

TASKS = ("zeroshot", "retrieval", "probe", "lowshot", "robustness", "binding")
# The smallest --n each task can run on. Zero-shot and retrieval: one image per colour-shape class. The probes fit on
# the train split, which holds only the seen colour-shape pairs (one shape per colour is held out), and choose their
# C on a validation split of it: 3 images per seen class, 2 to fit and 1 to validate.
SEEN_CLASSES = len(CLASSNAMES["color_shape"]) - len(ShapeWorld.COLORS)
MIN_N = {"zeroshot": len(CLASSNAMES["color_shape"]), "retrieval": len(CLASSNAMES["color_shape"]),
         "probe": 3 * SEEN_CLASSES, "lowshot": 3 * SEEN_CLASSES, "robustness": 3 * SEEN_CLASSES,
         "binding": 20}  # binding: min(--n, 500) minimal pairs per negative type and split
MINIMA = ", ".join(f"{task} {n}" for task, n in MIN_N.items())


def feasible_shots(labels, shots) -> list:
    """The ks for which every class has k examples, then None ("all")."""
    fewest = int(torch.bincount(labels)[labels.unique()].min())
    return [k for k in shots if k <= fewest] + [None]


class Evaluator:
    """One loaded model and the ShapeWorld views every task draws from (seeded, so results are reproducible)."""

    def __init__(self, checkpoint, n: int = 2000, seed: int = 0, device: str = "cpu"):
        self.model, self.tokenizer, self.preprocess = load(checkpoint, device)
        self.sw = ShapeWorld(seed=0, image_size=self.model.config.vision.image_size)
        self.n, self.seed = n, seed

    def check_task(self, task: str) -> None:
        """Refuse a task this model cannot do, before it runs. Every task here reads text (each compares with
        zero-shot), which an image-only model (SimCLR, MAE, supervised) cannot; retrieval needs text embeddings,
        which a model that scores prompts by likelihood (captioning, bag-of-words prediction) does not have."""
        if self.tokenizer is None:
            raise ValueError(f"--task {task} needs a model that reads text, and this one has no text tower; an "
                             "image-only run is evaluated by `python -m baselines.evaluate` (probes, LiT)")
        if task == "retrieval" and scores_likelihood(self.model):
            raise ValueError("--task retrieval ranks text embeddings, and this model scores captions by their "
                             "likelihood instead (it has no text embedding); use --task zeroshot")

    def features(self, images):
        return image_features(self.model, torch.as_tensor(images), preprocess=self.preprocess).cpu()  # (B, E)

    def zeroshot_logits(self, images, task="color_shape"):
        """(B, K) zero-shot scores of the task's classes: embeddings or prompt likelihoods (minclip/zeroshot.py)."""
        return zeroshot_logits(self.model, self.tokenizer, torch.as_tensor(images), CLASSNAMES[task],
                               ShapeWorld.templates(task), self.preprocess).cpu()

    def zeroshot_accuracy(self, task, split="test", domain="photo"):
        x, y, _ = self.sw.classification(task, split=split, domain=domain, n=self.n, seed=self.seed)
        return logits_accuracy(self.zeroshot_logits(x, task), y)[1]

    def zeroshot(self):
        result = {"color_shape seen": self.zeroshot_accuracy("color_shape", "test"),
                  "color_shape unseen": self.zeroshot_accuracy("color_shape", "unseen")}
        for task in ("shape", "color", "count", "position", "size"):
            result[task] = self.zeroshot_accuracy(task)
        x, y, names = self.sw.classification("color_shape", split="test", n=self.n, seed=self.seed)
        ablation = prompt_ablation(self.model, self.tokenizer, torch.as_tensor(x), y, names,
                                   ShapeWorld.templates("color_shape"), self.preprocess)
        result.update({f"prompts: {k}": v for k, v in ablation.items()})
        return result, plots.prompt_ablation(ablation)

    def retrieval(self):
        images, captions = self.sw.pretraining(min(self.n, 1000), seed=10 ** 6 + self.seed)
        img = self.features(images)  # (B, E)
        tokens = self.tokenizer(captions, context_length=self.model.context_length, truncate=True)
        with torch.no_grad():
            txt = self.model.encode_text(tokens.to(next(self.model.parameters()).device)).cpu()  # (B, E)
        k = 8
        return retrieval(img, txt), plots.similarity_matrix(img[:k] @ txt[:k].T, captions[:k],
                                                            torch.as_tensor(images[:k]))

    def split_features(self, domain="photo", task="color_shape"):
        xtr, ytr, _ = self.sw.classification(task, split="train", domain=domain, n=self.n, seed=self.seed)
        xte, yte, _ = self.sw.classification(task, split="test", domain=domain, n=self.n, seed=self.seed)
        return self.features(xtr), ytr, self.features(xte), yte

    def probe(self):
        ftr, ytr, fte, yte = self.split_features()
        fit = linear_probe(ftr, ytr, fte, yte)
        result = {"linear probe": fit.accuracy, "probe C": fit.C, "kNN": knn_accuracy(ftr, ytr, fte, yte),
                  "zero-shot": self.zeroshot_accuracy("color_shape", "test")}
        return result, plots.prompt_ablation({k: v for k, v in result.items() if k != "probe C"})

    def lowshot(self):
        ftr, ytr, fte, yte = self.split_features()
        curve = low_shot_curve(ftr, ytr, fte, yte, shots=feasible_shots(ytr, (1, 2, 4, 8, 16)), seed=self.seed,
                               zeroshot_accuracy=self.zeroshot_accuracy("color_shape", "test"))
        result = {f"{k:g}-shot": m for k, m in zip(curve.shots, curve.mean)}
        result.update({"zero-shot": curve.zeroshot, "crossover (shots)": curve.crossover})
        return result, plots.low_shot_curve(curve)

    def robustness(self):
        ftr, ytr, fte, yte = self.split_features()
        predictors = {"zero-shot": lambda x: self.zeroshot_logits(x).argmax(1)}
        family = {}  # probes trained only on photos, more and more shots: the in-distribution family
        for k in feasible_shots(ytr, (1, 2, 4, 8)):
            idx = torch.arange(len(ytr)) if k is None else sample_k_shot(ytr, k, self.seed)
            clf = linear_probe(ftr[idx], ytr[idx], fte, yte, C=None if k is None else FEW_SHOT_C).classifier
            family[f"probe {k or 'all'}-shot"] = (lambda c: lambda x: c.predict(self.features(x)))(clf)
        predictors.update(family)
        result, points = {}, {}
        for name, predict in predictors.items():
            accs = domain_accuracies(predict, self.sw, n=min(self.n, 1000), seed=self.seed)
            shifted = [a for d, a in accs.items() if d != "photo"]
            points[name] = (accs["photo"], sum(shifted) / len(shifted))
            result[name] = accs
        line = fit_robustness_line([points[m][0] for m in family], [points[m][1] for m in family])
        result["effective robustness"] = {m: effective_robustness(line, *points[m]) for m in points}
        return result, plots.robustness_scatter(points, line)

    def binding(self):
        result = evaluate_binding(self.model, self.tokenizer, self.preprocess, self.sw, n=min(self.n, 500),
                                  seed=self.seed)
        return result, plots.binding_bars(result)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors in the one-line form of every other bad input
        sys.exit(f"error: {message} (see --help)")


def check_flags(args) -> None:
    """A flag out of range -> a ValueError that says what it must be. Also fills in what the flags leave implicit:
    --task's default (zeroshot, without --suite) and --shots as a list."""
    if args.seed < 0:
        raise ValueError(f"--seed {args.seed}: seeds are non-negative integers")
    if args.suite:
        suite.check_suite(args.suite)
        if args.task is not None:
            raise ValueError("--task and --suite do not go together: a suite runs zero-shot and the linear probe on "
                             "each of its datasets (and k-shot probes with --shots); drop --task")
        if args.n < suite.SEEN_PAIRS:
            raise ValueError(f"--n {args.n} is too small for a suite: each ShapeWorld dataset's test split needs "
                             f"--n >= {suite.SEEN_PAIRS} images (one per class of its largest class list)")
        if args.workers < 0:
            raise ValueError(f"--workers {args.workers}: pass 0 (decode in this process) or more")
        args.shots = parse_shots(args.shots)
        return
    if args.shots:
        raise ValueError("--shots adds k-shot probes to a suite; pass --suite too (or use --task lowshot)")
    for flag, value in (("--pretrained", args.pretrained), ("--root", args.root), ("--download", args.download)):
        if value:
            raise ValueError(f"{flag} is for a suite (--suite); the --task evaluations read ShapeWorld only")
    if len(args.checkpoint) > 1:
        raise ValueError(f"{len(args.checkpoint)} checkpoints given; --task evaluates one (a suite takes several)")
    args.task = args.task or "zeroshot"
    if args.task not in TASKS:
        raise ValueError(f"unknown --task {args.task!r}; choose one of {', '.join(TASKS)}")
    if args.n < MIN_N[args.task]:
        raise ValueError(f"--n {args.n} is too small for --task {args.task}: it needs --n >= {MIN_N[args.task]} "
                         f"(each task's minimum: {MINIMA})")


def parse_shots(text: str) -> list:
    """"1,2,4" -> [1, 2, 4]; anything but positive whole numbers is refused. A dataset with fewer training images
    of some class than k gets no k-shot row (ShapeWorld's have 20 a class)."""
    bad = ValueError(f"--shots {text!r}: pass examples per class as comma-separated whole numbers, e.g. 1,2,4,8,16")
    try:
        shots = [int(k) for k in text.split(",")] if text else []
    except ValueError:
        raise bad from None
    if any(k < 1 for k in shots):
        raise bad
    return sorted(set(shots))


def output_folder(args) -> Path:
    """--out, or the run folder, created now: a folder that cannot be written is refused before any result is
    computed (which takes minutes), not after."""
    ckpt = Path(args.checkpoint[0])
    out = Path(args.out) if args.out else (ckpt if ckpt.is_dir() else ckpt.parent)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # --out names a file (FileExistsError), or a folder we may not write
        why = "it is a file" if out.is_file() else error.strerror.lower()
        what = "suite.json" if args.suite else f"eval_{args.task}.json"
        raise ValueError(f"--out {out} cannot be the output folder ({why}); pass a folder: {what} and .png are "
                         "written into it") from None
    return out


def load_model(path: str, pretrained: str = ""):
    """(model, tokenizer, preprocess) of a run folder or checkpoint, or with --pretrained PRESET of an
    open_clip/OpenAI weight file (minclip.pretrained.from_open_clip, OpenAI's tokenizer)."""
    if not pretrained:
        return load(path)
    from .data.transforms import clip_preprocess
    from .pretrained import from_open_clip
    from .tokenizer import CLIPTokenizer

    if not Path(path).is_file():
        raise FileNotFoundError(f"--pretrained {pretrained}: {path} is not a weight file; pass the state dict that "
                                "open_clip.create_model(..., pretrained='openai').state_dict() saved")
    model = from_open_clip(path, pretrained).eval()
    return model, CLIPTokenizer.from_openai_vocab(), clip_preprocess(model.config.vision.image_size)


def model_names(paths) -> list:
    """A short, unique name per checkpoint: its run folder's name (a file: folder/file)."""
    names = []
    for path in paths:
        p = Path(path).resolve()
        name = p.name if p.is_dir() else f"{p.parent.name}/{p.stem}"
        names.append(name if name not in names else f"{name}#{len(names)}")
    return names


def model_id(path: str) -> str:
    """Identifies a checkpoint's weights for the feature cache: the file, its size and modification time."""
    file = checkpoint_file(path)
    stat = os.stat(file)
    return f"{Path(file).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def run_suite(args, out: Path, models: list, device) -> None:
    """Every model on every dataset of --suite -> OUT/suite.json and OUT/suite.png, and a table on stdout. Each model
    goes to the device for its turn only, so that several large ones need not fit at once."""
    sizes = suite.Sizes(test=args.n)
    results = {"suite": args.suite, "date": datetime.date.today().isoformat(), "sizes": sizes._asdict(),
               "shots": args.shots, "seed": args.seed, "models": {}, "rows": [], "timing": {}, "missing": {}}
    for path, name, (model, tokenizer, preprocess) in models:
        result = suite.evaluate_suite(model.to(device), tokenizer, preprocess, args.suite, name, args.shots, sizes,
                                      args.seed, cache_dir=out / "features", model_id=model_id(path),
                                      root=args.root or None, download=args.download, workers=args.workers)
        model.cpu()
        results["models"][name] = {"checkpoint": str(path), "reads_text": tokenizer is not None}
        results["rows"] += result.rows
        results["timing"][name] = result.timing
        results["missing"] = result.missing
    results["summary"] = suite.summary(results["rows"])
    results["n_datasets"] = len({row["dataset"] for row in results["rows"]})
    (out / "suite.json").write_text(json.dumps(results, indent=2))
    plots.suite_bars(results["rows"]).savefig(out / "suite.png", dpi=110, bbox_inches="tight")
    print(suite.table(results["rows"]))
    for name, reason in results["missing"].items():
        print(f"missing {name}: {reason}")
    print(f"wrote {out / 'suite.json'} and {out / 'suite.png'}")


def write_binding(result: dict, figure, out: Path) -> None:
    """OUT/binding.json and OUT/binding.png, and a table: a row per negative type."""
    (out / "binding.json").write_text(json.dumps(result, indent=2))
    figure.savefig(out / "binding.png", dpi=120, bbox_inches="tight")
    zs = result["single_object_zeroshot"]
    print(f"single-object zero-shot (64 classes): seen {zs['seen']:.1%}, held-out {zs['unseen']:.1%}")
    print(f"{'negative type':18s} {'seen: text image':>17s} {'held-out: text image':>21s} {'blind':>6s}")
    for kind in NEGATIVE_TYPES:
        seen, unseen, blind = (result[k][kind][s] for k, s in (("types", "seen"), ("types", "unseen"),
                                                                ("blind", "seen")))
        print(f"{kind:18s} {seen['text']:10.1%} {seen['image']:6.1%} {unseen['text']:14.1%} {unseen['image']:6.1%} "
              f"{blind['text']:6.1%}")
    print(f"chance 50%. wrote {out / 'binding.json'} and {out / 'binding.png'}")


def main(argv=None) -> None:
    parser = Parser(prog="python -m minclip.eval", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, nargs="+",
                        help="a run folder or a checkpoint file (several with --suite: one table, a row per model)")
    parser.add_argument("--task", default=None, help="one of " + ", ".join(TASKS) + " (default zeroshot)")
    parser.add_argument("--suite", default="", help="evaluate on a suite of datasets: " + ", ".join(suite.SUITES))
    parser.add_argument("--shots", default="", help="with --suite: k-shot probes too, e.g. 1,2,4,8,16")
    parser.add_argument("--pretrained", default="",
                        help="with --suite: the checkpoints are open_clip/OpenAI weight files of this preset "
                             "(vit-b-32, vit-b-16, rn50)")
    parser.add_argument("--root", default="", help="with a real-data suite: where the datasets are (default: data/)")
    parser.add_argument("--download", action="store_true",
                        help="with a real-data suite: download the torchvision datasets that are not there yet")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="with a real-data suite: processes that decode its images (default: min(8, CPUs))")
    parser.add_argument("--n", type=int, default=2000,
                        help=f"images per evaluation view (minimum: {MINIMA}); with --suite: test images per "
                             f"ShapeWorld dataset (train {suite.Sizes().train}, validation {suite.Sizes().val})")
    parser.add_argument("--seed", type=int, default=0, help="seeds every evaluation view and probe")
    parser.add_argument("--out", default="", help="folder for eval_TASK.json/.png (default: the run folder)")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:1, mps")
    args = parser.parse_args(argv)
    try:  # everything that can be wrong with the flags is found here, in seconds, before the evaluation runs
        check_flags(args)
        if args.suite:  # every checkpoint is opened (on the CPU) before the first is evaluated
            device = resolve_device(args.device)
            models = [(path, name, load_model(path, args.pretrained))
                      for path, name in zip(args.checkpoint, model_names(args.checkpoint))]
        else:
            evaluator = Evaluator(args.checkpoint[0], args.n, args.seed, resolve_device(args.device))
            evaluator.check_task(args.task)
        out = output_folder(args)
    except (ValueError, FileNotFoundError) as error:  # a bad flag, or a checkpoint that is not one
        sys.exit(f"error: {error}")
    if args.suite:
        try:
            return run_suite(args, out, models, device)
        except FileNotFoundError as error:  # real datasets not on disk: every one is named before any work
            sys.exit(f"error: {error}")
    result, figure = getattr(evaluator, args.task)()
    if args.task == "binding":  # its own table: a row per negative type
        return write_binding(result, figure, out)
    (out / f"eval_{args.task}.json").write_text(json.dumps(result, indent=2))
    figure.savefig(out / f"eval_{args.task}.png", dpi=120, bbox_inches="tight")
    for name, value in result.items():
        if isinstance(value, dict):
            print(f"{name:28s} " + "  ".join(f"{k} {v:.3f}" for k, v in value.items()))
        else:
            print(f"{name:28s} {value:.3f}" if isinstance(value, float) else f"{name:28s} {value}")
    print(f"wrote {out / f'eval_{args.task}.json'} and .png")


if __name__ == "__main__":
    main()
