"""Evaluation suites: one model, many datasets, one table (CLIP §3.2, Fig. 5 and 10; LAION's CLIP_benchmark).

The paper's efficiency and accuracy claims are averages over suites: a linear probe on Kornblith et al.'s 12
datasets and on its own extended 27, and zero-shot against a probe on 27 datasets. minclip has the same four
suites by name: `shapeworld-12` and `shapeworld-27` (offline: ShapeWorld views that stand in for the paper's
datasets, see data/README.md), and `kornblith-12` and `clip-27` (the real datasets, through torchvision, online).

    rows = evaluate_suite(model, tokenizer, preprocess, "shapeworld-12")   # one dict per (dataset, task)
    python -m minclip.eval --checkpoint runs/demo --suite shapeworld-12 --out eval/   # -> eval/suite.json, .png

For each dataset, in order:
1. image features of its train, validation and test splits, computed once (and cached on disk if asked);
2. zero-shot on the test split with the dataset's class names and templates, if the model reads text;
3. a linear probe: features standardised on train + validation (as MAE's probe, and so that one C grid serves
   every model), C swept on the validation split, the probe refitted on train + validation, scored on test;
4. on request, k-shot probes on k training images per class (3 draws each, C = FEW_SHOT_C).
Every score is reported as top-1, top-5 and mean per-class recall; `value` is the dataset's own metric. Tasks are
named as CLIP_benchmark names them: zeroshot_classification, linear_probe, and linear_probe_{k}shot.
"""
import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor
from torchvision.transforms import v2

from .data import datasets as real
from .data.shapeworld import TASKS, ShapeWorld
from .io import atomic_save
from .probe import FEW_SHOT_C, linear_probe, sample_k_shot, stratified_split
from .zeroshot import classification_metrics, image_features, scores_likelihood, zeroshot_logits


class ShapeWorldDataset(NamedTuple):
    """A ShapeWorld view used as a dataset of a suite: its classes are those of `task` that occur in `pairs`."""
    task: str  # a ShapeWorld task: color_shape, shape, color, count, position, size, pattern
    domain: str  # the rendering: photo, cartoon, patterned, sketch, noisy, blur, grayscale
    pairs: str  # "seen": the colour-shape pairs of pre-training; "unseen": the 8 held-out pairs only
    stands_for: str  # the paper's datasets it stands in for
    why: str  # what the two share


def _sw(task, domain, stands_for, why, pairs="seen"):
    return ShapeWorldDataset(task, domain, pairs, stands_for, why)


SHAPEWORLD = {
    # ---- the standard 12: general recognition, class names that describe what is seen -------------------------
    "color_shape-photo": _sw("color_shape", "photo", "CIFAR-100, Food-101",
                             "many everyday classes, named as web text names them"),
    "shape-photo": _sw("shape", "photo", "CIFAR-10", "a few coarse object classes"),
    "color-photo": _sw("color", "photo", "Oxford Flowers 102", "classes told apart mostly by colour"),
    "unseen_pairs-photo": _sw("color_shape", "photo", "Stanford Cars, FGVC Aircraft",
                              "fine-grained names composed of known words, the combinations rare in pre-training "
                              "(here: never in it)", pairs="unseen"),
    "color_shape-cartoon": _sw("color_shape", "cartoon", "Caltech-101", "clean, centred objects on plain backgrounds"),
    "shape-cartoon": _sw("shape", "cartoon", "PASCAL VOC 2007", "object categories in simple renderings"),
    "color-cartoon": _sw("color", "cartoon", "Oxford Flowers 102", "colour as the cue, flat rendering"),
    "color_shape-patterned": _sw("color_shape", "patterned", "SUN397, Birdsnap",
                                 "the object against a busy background"),
    "shape-patterned": _sw("shape", "patterned", "Oxford-IIIT Pets", "the category among clutter"),
    "color-patterned": _sw("color", "patterned", "Birdsnap", "plumage colour against foliage-like texture"),
    "shape-grayscale": _sw("shape", "grayscale", "FGVC Aircraft", "shape alone, colour gone"),
    "unseen_pairs-cartoon": _sw("color_shape", "cartoon", "Stanford Cars", "new combinations of known words, clean "
                                "renderings", pairs="unseen"),
    # ---- the extension to 27: specialised, abstract or degraded, where a generalist does worse ----------------
    "count-photo": _sw("count", "photo", "CLEVR Counts", "counting objects: abstract, rarely captioned"),
    "count-cartoon": _sw("count", "cartoon", "CLEVR Counts", "counting in clean renderings"),
    "position-photo": _sw("position", "photo", "KITTI distance", "where the object is: a spatial read-out"),
    "size-photo": _sw("size", "photo", "KITTI distance", "near/far as large/small: a metric property"),
    "pattern-patterned": _sw("pattern", "patterned", "DTD, EuroSAT", "texture of the background, which captions "
                             "seldom mention"),
    "color_shape-noisy": _sw("color_shape", "noisy", "PatchCamelyon", "heavy pixel noise on small images"),
    "shape-noisy": _sw("shape", "noisy", "FER2013", "low-quality, noisy small images"),
    "color-noisy": _sw("color", "noisy", "GTSRB", "colour under poor imaging conditions"),
    "color_shape-blur": _sw("color_shape", "blur", "GTSRB", "low-resolution, motion-blurred signs"),
    "shape-blur": _sw("shape", "blur", "STL-10 at low resolution", "outlines lost to blur"),
    "color-blur": _sw("color", "blur", "RESISC45", "colour patches in blurry aerial-like images"),
    "color_shape-sketch": _sw("color_shape", "sketch", "Rendered SST2", "a rendition unlike the photos"),
    "shape-sketch": _sw("shape", "sketch", "MNIST", "hand-drawn strokes on paper"),
    "color-sketch": _sw("color", "sketch", "MNIST", "thin coloured strokes, little area to read colour from"),
    "unseen_pairs-sketch": _sw("color_shape", "sketch", "Country211", "rare combinations in an odd rendition",
                               pairs="unseen"),
}
_SW = list(SHAPEWORLD)
SUITES = {
    "shapeworld-12": _SW[:12],
    "shapeworld-27": _SW,
    "kornblith-12": ["food101", "cifar10", "cifar100", "birdsnap", "sun397", "cars", "aircraft", "voc2007", "dtd",
                     "pets", "caltech101", "flowers"],
}
SUITES["clip-27"] = SUITES["kornblith-12"] + ["mnist", "fer2013", "stl10", "eurosat", "resisc45", "gtsrb",
                                              "kitti_distance", "country211", "pcam", "ucf101", "kinetics700",
                                              "clevr_counts", "hateful_memes", "rendered_sst2", "imagenet"]
# The C grid for standardised features: decades from 1e-4 to 1e3 (OpenAI's search also starts from decades, CLIP
# Appendix A.3). Half decades would double the cost for a fraction of a point; large C, weak regularisation, is
# the slow end (a weak model's features want it, and L-BFGS needs many more steps there).
SUITE_CS = tuple(10.0 ** e for e in range(-4, 4))
TRIALS = 3  # k-shot draws per k
MIN_TEST = len(TASKS["color_shape"]) - len(ShapeWorld.COLORS)  # the most classes of a ShapeWorld dataset: 56


class Sizes(NamedTuple):
    """Images per split of every ShapeWorld dataset (real datasets use their whole splits)."""
    train: int = 1120  # 20 per class of the 56 seen colour-shape pairs: enough for 16-shot probes
    val: int = 560
    test: int = 1000


class Features(NamedTuple):
    train: tuple  # (feats (B, E), labels (B,))
    val: tuple
    test: tuple


class Prepared(NamedTuple):
    """One dataset, ready to evaluate: its class names, templates and metric, and how to get its test images."""
    classnames: list
    templates: list
    metric: str  # "top1" or "mean_per_class_recall": what `value` reports
    splits: dict  # {"train" | "val" | "test": (images uint8 (B, 3, S, S), labels) or a torch Dataset}


def check_suite(name: str) -> list:
    """The dataset names of a suite; unknown names are refused with the list of suites."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    return list(SUITES[name])


def render_size(image_size: int) -> int:
    """The size ShapeWorld renders at for a model of this input size: ShapeWorld draws 32-128 px; preprocess resizes
    (a 224 px OpenAI model sees 128 px scenes scaled up)."""
    return max(32, min(128, image_size // 4 * 4))


def shapeworld_dataset(name: str, image_size: int, sizes: Sizes = Sizes(), seed: int = 0) -> Prepared:
    """A ShapeWorld dataset of the suites, rendered: its train and validation splits come from ShapeWorld's train
    stream (seeds seed, seed + 1), its test split from the test stream; the held-out pairs' datasets draw all three
    from the unseen stream. Labels index the dataset's own classes (those present), as a real dataset's do."""
    spec = SHAPEWORLD[name]
    world = ShapeWorld(seed=0, image_size=render_size(image_size))  # world 0: the held-out pairs of every run here
    streams = {"seen": (("train", seed), ("train", seed + 1), ("test", seed)),
               "unseen": (("unseen", seed), ("unseen", seed + 1), ("unseen", seed + 2))}[spec.pairs]
    views = [world.classification(spec.task, split, spec.domain, n=n, seed=s)
             for (split, s), n in zip(streams, sizes)]
    present = views[0].labels.unique()  # (K,) the task's class ids in this dataset, ascending
    lookup = torch.full((len(TASKS[spec.task]),), -1, dtype=torch.long)
    lookup[present] = torch.arange(len(present))
    splits = {split: (view.images, lookup[view.labels]) for split, view in zip(("train", "val", "test"), views)}
    classnames = [TASKS[spec.task][i] for i in present.tolist()]
    return Prepared(classnames, ShapeWorld.templates(spec.task), "top1", splits)


def real_dataset(name: str, image_size: int, root=None, download: bool = False) -> Prepared:
    """A torchvision dataset of the suites (minclip.data.datasets), its images resized and centre-cropped to the
    model's input size as uint8. A dataset without an official validation split gets a seeded, stratified 20% of
    its training split (carved out of the features, see _features)."""
    if name in real.MISSING:
        raise ValueError(f"{name} ({real.paper_name(name)}) is not available through torchvision: "
                         f"{real.MISSING[name]}")
    spec = real.DATASETS[name]
    resize = v2.Compose([v2.Resize(image_size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
                         v2.CenterCrop(image_size)])
    splits, data = {}, None
    for split in ("train", "val", "test"):
        if split in spec.splits:
            data = real.load_classification(name, root, split, download, transform=resize)
            splits[split] = data.dataset
    metric = "mean_per_class_recall" if spec.metric == "mean_per_class_recall" else "top1"
    return Prepared(data.classnames, data.templates, metric, splits)


def _split_features(model, preprocess, split, batch_size: int = 256) -> tuple:
    """(feats (B, E) on the CPU, labels (B,)) of one split: an (images, labels) pair, or a Dataset of them."""
    if isinstance(split, tuple):
        images, labels = split
        return image_features(model, images, preprocess, batch_size).cpu(), labels
    feats, labels = [], []
    for images, y in torch.utils.data.DataLoader(split, batch_size=batch_size):  # decodes and resizes each image
        feats.append(image_features(model, images, preprocess, batch_size).cpu())
        labels.append(torch.as_tensor(y))
    return torch.cat(feats), torch.cat(labels)


def _features(model, preprocess, data: Prepared, seed: int = 0) -> Features:
    train = _split_features(model, preprocess, data.splits["train"])
    test = _split_features(model, preprocess, data.splits["test"])
    if "val" in data.splits:
        val = _split_features(model, preprocess, data.splits["val"])
    else:  # no official validation split: hold out a seeded, stratified 20% of train
        keep, held = stratified_split(train[1], 0.2, seed)
        train, val = (train[0][keep], train[1][keep]), (train[0][held], train[1][held])
    return Features(train, val, test)


def _row(model_name, dataset, task, metrics, metric, n_test, seconds, **extra) -> dict:
    return {"model": model_name, "dataset": dataset, "task": task, "metric": metric, "value": metrics[metric],
            **metrics, "n_test": n_test, "seconds": round(seconds, 3), **extra}


def evaluate_dataset(model, tokenizer, preprocess, name: str, data: Prepared, features: Features,
                     model_name: str = "model", shots: Sequence[int] = (), seed: int = 0) -> list:
    """The rows of one dataset: zero-shot (if the model reads text), the linear probe, and k-shot probes."""
    rows = []
    (ftr, ytr), (fva, yva), (fte, yte) = features
    if tokenizer is not None:
        t0 = time.perf_counter()
        test = data.splits["test"]
        if scores_likelihood(model):  # a captioning / bag-of-words-prediction model scores prompts, from the pixels
            batches = [test[0]] if isinstance(test, tuple) else (x for x, _ in torch.utils.data.DataLoader(test, 256))
            logits = torch.cat([zeroshot_logits(model, tokenizer, images, data.classnames, data.templates, preprocess)
                                for images in batches])
        else:  # logits = test features @ the prompt-ensemble classifier
            logits = zeroshot_logits(model, tokenizer, None, data.classnames, data.templates, preprocess, fte)
        rows.append(_row(model_name, name, "zeroshot_classification", classification_metrics(logits.cpu(), yte),
                         data.metric, len(yte), time.perf_counter() - t0))
    # Standardise with the statistics of the probe's final training set (train + val): features of every model,
    # whatever their scale, then suit one C grid.
    both = torch.cat([ftr, fva])
    mean, std = both.mean(dim=0), both.std(dim=0, correction=0).clamp_min(1e-6)
    ztr, zva, zte = (ftr - mean) / std, (fva - mean) / std, (fte - mean) / std
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # "best C at the end of the grid": C = 1e3 is all but unregularised already
        warnings.filterwarnings("ignore", message="the best C")
        probe = linear_probe(ztr, ytr, zte, yte, Cs=SUITE_CS, val_feats=zva, val_labels=yva, seed=seed)
    logits = _probe_logits(probe.classifier, zte, len(data.classnames))
    rows.append(_row(model_name, name, "linear_probe", classification_metrics(logits, yte), data.metric, len(yte),
                     time.perf_counter() - t0, C=probe.C, n_train=len(ytr) + len(yva)))
    for k in shots:
        t0 = time.perf_counter()
        trials = []
        for t in range(TRIALS):
            idx = sample_k_shot(ytr, k, seed + t)
            fit = linear_probe(ztr[idx], ytr[idx], zte, yte, C=FEW_SHOT_C)
            trials.append(classification_metrics(_probe_logits(fit.classifier, zte, len(data.classnames)), yte))
        mean_metrics = {m: None if trials[0][m] is None else sum(t[m] for t in trials) / TRIALS for m in trials[0]}
        spread = torch.tensor([t[data.metric] for t in trials]).std().item()
        rows.append(_row(model_name, name, f"linear_probe_{k}shot", mean_metrics, data.metric, len(yte),
                         time.perf_counter() - t0, shots=k, trials=TRIALS, std=spread))
    return rows


def _probe_logits(classifier, feats: Tensor, K: int) -> Tensor:
    """(B, K) scores over all K classes of the dataset (a class missing from the probe's training set scores -inf)."""
    logits = torch.full((len(feats), K), float("-inf"))
    logits[:, classifier.classes.cpu()] = classifier.logits(feats).cpu()
    return logits


def feature_cache_key(model_id: str, name: str, sizes: Sizes, seed: int, image_size: int) -> str:
    key = json.dumps([model_id, name, list(sizes), seed, image_size, 1])  # 1: the cache format version
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def evaluate_suite(model, tokenizer, preprocess, suite: str, model_name: str = "model", shots: Sequence[int] = (),
                   sizes: Sizes = Sizes(), seed: int = 0, cache_dir=None, model_id: Optional[str] = None,
                   root=None, download: bool = False, progress: bool = True) -> dict:
    """Evaluate one model on every dataset of `suite`: -> {"rows": [...], "timing": {...}, "missing": {...}}.

    model: anything with encode_image (CLIP, SigLIP, SimCLR, MAE, supervised, LiT, ...); tokenizer None for an
    image-only model (then no zero-shot rows). cache_dir: where image features are kept between runs, keyed by
    model_id (say, the checkpoint file and its modification time: a changed checkpoint gets fresh features).
    Real datasets that torchvision lacks are listed under "missing" with the reason, and skipped.
    """
    from tqdm.auto import tqdm

    names = check_suite(suite)
    image_size = model.config.vision.image_size
    missing = {name: real.MISSING[name] for name in names if name in real.MISSING}
    # Open every real dataset first: a missing file or library is reported in seconds, all at once, not an hour in.
    opened, problems = {}, []
    for name in names:
        if name not in SHAPEWORLD and name not in missing:
            try:
                opened[name] = real_dataset(name, image_size, root, download)
            except (FileNotFoundError, ImportError, ValueError) as error:
                problems.append(f"{name}: {error}")
    if problems:
        raise FileNotFoundError(f"{len(problems)} dataset(s) of {suite} cannot be opened:\n" + "\n".join(problems)
                                + "\n(download=True, or --download on the command line, fetches what torchvision can)")
    rows, timing = [], {"render": 0.0, "features": 0.0, "zeroshot": 0.0, "probes": 0.0}
    for name in tqdm([n for n in names if n not in missing], desc=f"{model_name} on {suite}", unit="dataset",
                     disable=not progress):
        t0 = time.perf_counter()
        data = opened[name] if name in opened else shapeworld_dataset(name, image_size, sizes, seed)
        t1 = time.perf_counter()
        cached = None
        if cache_dir is not None and model_id is not None:
            cached = Path(cache_dir) / f"{name}-{feature_cache_key(model_id, name, sizes, seed, image_size)}.pt"
        if cached is not None and cached.exists():
            features = Features(*(tuple(split) for split in torch.load(cached, weights_only=True)))
        else:
            features = _features(model, preprocess, data, seed)
            if cached is not None:
                atomic_save([list(split) for split in features], cached)
        t2 = time.perf_counter()
        dataset_rows = evaluate_dataset(model, tokenizer, preprocess, name, data, features, model_name, shots, seed)
        for row in dataset_rows:
            row.update(render_s=round(t1 - t0, 3), features_s=round(t2 - t1, 3))
            timing["zeroshot" if row["task"].startswith("zeroshot") else "probes"] += row["seconds"]
        timing["render"] += t1 - t0
        timing["features"] += t2 - t1
        rows += dataset_rows
    return {"rows": rows, "timing": {k: round(v, 2) for k, v in timing.items()}, "missing": missing}


def summary(rows: list) -> dict:
    """{model: {task: mean value over the suite's datasets}}: the one number per model the paper's figures plot."""
    out = {}
    for row in rows:
        out.setdefault(row["model"], {}).setdefault(row["task"], []).append(row["value"])
    return {m: {t: sum(v) / len(v) for t, v in tasks.items()} for m, tasks in out.items()}


def table(rows: list) -> str:
    """A text table: one line per dataset, one column per (model, task), and the suite mean last. With several
    models, columns are headed A, B, ... and a key line names them."""
    columns = list(dict.fromkeys((r["model"], r["task"]) for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    letter = {m: chr(ord("A") + i % 26) + ("" if i < 26 else str(i // 26)) for i, m in enumerate(models)}
    values = {(r["dataset"], r["model"], r["task"]): r["value"] for r in rows}
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    short = {"zeroshot_classification": "zero-shot", "linear_probe": "probe"}
    heads = [(f"{letter[m]} " if len(models) > 1 else "") + short.get(t, t.removeprefix("linear_probe_"))
             for m, t in columns]
    width = max(9, *(len(h) for h in heads))
    lines = [f"{'dataset':24s}" + "".join(f"{h:>{width + 2}s}" for h in heads)]
    for d in datasets:
        cells = [values.get((d, m, t)) for m, t in columns]
        lines.append(f"{d:24s}" + "".join(f"{'-' if v is None else f'{100 * v:.1f}':>{width + 2}s}" for v in cells))
    means = summary(rows)
    lines.append(f"{'mean':24s}" + "".join(f"{100 * means[m][t]:>{width + 2}.1f}" for m, t in columns))
    if len(models) > 1:
        lines.append("models: " + ", ".join(f"{letter[m]} = {m}" for m in models))
    return "\n".join(lines)
