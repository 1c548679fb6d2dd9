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
from .probe import FEW_SHOT_C, linear_probe, sample_k_shot, standardize, stratified_split
from .zeroshot import classification_metrics, image_features, scores_likelihood, zeroshot_logits


class ShapeWorldDataset(NamedTuple):
    """A ShapeWorld view used as a dataset of a suite: its classes are those of `task` that occur in `pairs`."""
    task: str  # a ShapeWorld task: color_shape, shape, color, count, position, size, pattern
    domain: str  # the rendering: photo, cartoon, patterned, sketch, noisy, blur, grayscale
    stands_for: str  # the paper's datasets it stands in for
    why: str  # what the two share
    pairs: str = "seen"  # "seen": the colour-shape pairs of pre-training; "unseen": only the 8 held-out pairs


D = ShapeWorldDataset  # a short name for the table
SHAPEWORLD = {
    # ---- the standard 12: general recognition, class names that describe what is seen -------------------------
    "color_shape-photo": D("color_shape", "photo", "CIFAR-100, Food-101",
                           "many everyday classes, named as web text names them"),
    "shape-photo": D("shape", "photo", "CIFAR-10", "a few coarse object classes"),
    "color-photo": D("color", "photo", "Oxford Flowers 102", "classes told apart mostly by colour"),
    "unseen_pairs-photo": D("color_shape", "photo", "Stanford Cars, FGVC Aircraft",
                            "fine-grained names composed of known words, the combinations rare in pre-training (here: "
                            "never in it)", pairs="unseen"),
    "color_shape-cartoon": D("color_shape", "cartoon", "Caltech-101", "clean, centred objects on plain backgrounds"),
    "shape-cartoon": D("shape", "cartoon", "PASCAL VOC 2007", "object categories in simple renderings"),
    "color-cartoon": D("color", "cartoon", "Oxford Flowers 102", "colour as the cue, flat rendering"),
    "color_shape-patterned": D("color_shape", "patterned", "SUN397, Birdsnap", "the object against a busy background"),
    "shape-patterned": D("shape", "patterned", "Oxford-IIIT Pets", "the category among clutter"),
    "color-patterned": D("color", "patterned", "Birdsnap", "plumage colour against foliage-like texture"),
    "shape-grayscale": D("shape", "grayscale", "FGVC Aircraft", "shape alone, colour gone"),
    "unseen_pairs-cartoon": D("color_shape", "cartoon", "Stanford Cars",
                              "new combinations of known words, clean renderings", pairs="unseen"),
    # ---- the extension to 27: specialised, abstract or degraded, where a generalist does worse ----------------
    "count-photo": D("count", "photo", "CLEVR Counts", "counting objects: abstract, rarely captioned"),
    "count-cartoon": D("count", "cartoon", "CLEVR Counts", "counting in clean renderings"),
    "position-photo": D("position", "photo", "KITTI distance", "where the object is: a spatial read-out"),
    "size-photo": D("size", "photo", "KITTI distance", "near/far as large/small: a metric property"),
    "pattern-patterned": D("pattern", "patterned", "DTD, EuroSAT",
                           "texture of the background, which captions seldom mention"),
    "color_shape-noisy": D("color_shape", "noisy", "PatchCamelyon", "heavy pixel noise on small images"),
    "shape-noisy": D("shape", "noisy", "FER2013", "low-quality, noisy small images"),
    "color-noisy": D("color", "noisy", "GTSRB", "colour under poor imaging conditions"),
    "color_shape-blur": D("color_shape", "blur", "GTSRB", "low-resolution, motion-blurred signs"),
    "shape-blur": D("shape", "blur", "STL-10 at low resolution", "outlines lost to blur"),
    "color-blur": D("color", "blur", "RESISC45", "colour patches in blurry aerial-like images"),
    "color_shape-sketch": D("color_shape", "sketch", "Rendered SST2", "a rendition unlike the photos"),
    "shape-sketch": D("shape", "sketch", "MNIST", "hand-drawn strokes on paper"),
    "color-sketch": D("color", "sketch", "MNIST", "thin coloured strokes, little area to read colour from"),
    "unseen_pairs-sketch": D("color_shape", "sketch", "Country211",
                             "rare combinations in an odd rendition", pairs="unseen"),
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
# The most classes a ShapeWorld dataset has: the seen colour-shape pairs, 64 less one held-out shape per colour
SEEN_PAIRS = len(TASKS["color_shape"]) - len(ShapeWorld(seed=0).holdout_pairs)  # 56
TASK_LABELS = {"zeroshot_classification": "zero-shot", "linear_probe": "linear probe"}


def task_label(task: str) -> str:
    """A task's name in tables and figures: zero-shot, linear probe, 16-shot probe."""
    return TASK_LABELS.get(task) or task.removeprefix("linear_probe_").replace("shot", "-shot probe")


class Sizes(NamedTuple):
    """Images per split of every ShapeWorld dataset (real datasets use their whole splits)."""
    train: int = 1120  # 20 per class of the 56 seen colour-shape pairs: enough for 16-shot probes (and 20)
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


def _loader(split: torch.utils.data.Dataset, workers: int) -> torch.utils.data.DataLoader:
    """Batches of a real dataset's (uint8 images (B, 3, S, S), labels (B,)), decoded and resized in `workers`
    processes (0: in this one)."""
    return torch.utils.data.DataLoader(split, batch_size=256, num_workers=workers, pin_memory=workers > 0)


def _split_features(model, preprocess, split, workers: int = 0) -> tuple:
    """(feats (B, E) on the CPU, labels (B,)) of one split: ShapeWorld's (images, labels) pair, or a real Dataset."""
    if isinstance(split, tuple):
        images, labels = split
        return image_features(model, images, preprocess).cpu(), labels
    feats, labels = [], []
    for images, y in _loader(split, workers):
        feats.append(image_features(model, images, preprocess).cpu())  # (b, E)
        labels.append(torch.as_tensor(y))
    return torch.cat(feats), torch.cat(labels)


def _features(model, preprocess, data: Prepared, seed: int = 0, workers: int = 0) -> Features:
    train = _split_features(model, preprocess, data.splits["train"], workers)
    test = _split_features(model, preprocess, data.splits["test"], workers)
    if "val" in data.splits:
        val = _split_features(model, preprocess, data.splits["val"], workers)
    else:  # no official validation split: hold out a seeded, stratified 20% of train
        keep, held = stratified_split(train[1], 0.2, seed)
        train, val = (train[0][keep], train[1][keep]), (train[0][held], train[1][held])
    return Features(train, val, test)


def _row(model_name, dataset, task, metrics, metric, n_test, seconds, **extra) -> dict:
    return {"model": model_name, "dataset": dataset, "task": task, "metric": metric, "value": metrics[metric],
            **metrics, "n_test": n_test, "seconds": round(seconds, 3), **extra}


def evaluate_dataset(model, tokenizer, preprocess, name: str, data: Prepared, features: Features,
                     model_name: str = "model", shots: Sequence[int] = (), seed: int = 0, workers: int = 0,
                     Cs: Sequence[float] = SUITE_CS) -> list:
    """The rows of one dataset: zero-shot (if the model reads text), the linear probe, and k-shot probes (the ks
    every class has enough training images for; the others are skipped).

    Each row: model, dataset, task ("zeroshot_classification", "linear_probe", "linear_probe_{k}shot"), metric
    (the name of `value`: "top1" or "mean_per_class_recall"), value, top1, top5 (None for 5 classes or fewer),
    mean_per_class_recall, n_test, seconds; probes add C and n_train, k-shot rows shots, trials and std.
    The probes fit on the model's device (a GPU if the model is on one); Cs: the probe's grid (one C: no sweep).
    """
    rows = []
    device = next(model.parameters()).device
    (ftr, ytr), (fva, yva), (fte, yte) = features  # feats (B, E), labels (B,)
    if tokenizer is not None:
        t0 = time.perf_counter()
        test = data.splits["test"]
        if scores_likelihood(model):  # a captioning / bag-of-words-prediction model scores prompts, from the pixels
            batches = [test[0]] if isinstance(test, tuple) else (x for x, _ in _loader(test, workers))
            logits = torch.cat([zeroshot_logits(model, tokenizer, images, data.classnames, data.templates, preprocess)
                                for images in batches])  # (B, K)
        else:  # test features @ the prompt-ensemble classifier: (B, E) @ (E, K)
            logits = zeroshot_logits(model, tokenizer, None, data.classnames, data.templates, preprocess, fte)
        rows.append(_row(model_name, name, "zeroshot_classification", classification_metrics(logits.cpu(), yte),
                         data.metric, len(yte), time.perf_counter() - t0))
    # The probes read standardised features (z = (f - mean) / std per feature, with the statistics of the final
    # fit's training set, train + val). This is minclip's choice, not the paper's (which probed raw pre-projection
    # features): the models' features differ in scale, and standardised ones let one C grid serve every model.
    ztr, zva, zte = (z.to(device) for z in standardize(torch.cat([ftr, fva]), ftr, fva, fte)[1:])  # (B, E) each
    ytr, yva, yte = ytr.to(device), yva.to(device), yte.to(device)
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # a best C at the grid's top: C = 1e3 is all but unregularised already
        warnings.filterwarnings("ignore", message=f"the best C, {Cs[-1]:g},")
        probe = linear_probe(ztr, ytr, zte, yte, Cs=Cs, val_feats=zva, val_labels=yva, seed=seed)
    logits = _probe_logits(probe.classifier, zte, len(data.classnames))  # (B, K)
    rows.append(_row(model_name, name, "linear_probe", classification_metrics(logits, yte.cpu()), data.metric,
                     len(yte), time.perf_counter() - t0, C=probe.C, n_train=len(ytr) + len(yva)))
    fewest = int(torch.bincount(ytr.cpu(), minlength=len(data.classnames)).min())  # training images of the rarest
    for k in [k for k in shots if k <= fewest]:
        t0 = time.perf_counter()
        trials = []
        for t in range(TRIALS):
            idx = sample_k_shot(ytr, k, seed + t)  # (K*k,)
            # FEW_SHOT_C is OpenAI's C for raw features; on standardised ones (each feature of variance 1, not about
            # 1/E) the same C regularises less. No validation split is possible at k = 1 to choose another.
            fit = linear_probe(ztr[idx], ytr[idx], zte, yte, C=FEW_SHOT_C)
            trials.append(classification_metrics(_probe_logits(fit.classifier, zte, len(data.classnames)), yte.cpu()))
        mean_metrics = {m: None if trials[0][m] is None else sum(t[m] for t in trials) / TRIALS for m in trials[0]}
        spread = torch.tensor([t[data.metric] for t in trials]).std().item()
        rows.append(_row(model_name, name, f"linear_probe_{k}shot", mean_metrics, data.metric, len(yte),
                         time.perf_counter() - t0, shots=k, trials=TRIALS, std=spread))
    return rows


def _probe_logits(classifier, feats: Tensor, K: int) -> Tensor:
    """(B, K) scores over all K classes of the dataset, on the CPU (a class the probe never saw scores -inf)."""
    logits = torch.full((len(feats), K), float("-inf"))
    logits[:, classifier.classes.cpu()] = classifier.logits(feats).cpu()
    return logits


def feature_cache_key(model_id: str, name: str, sizes: Sizes, seed: int, image_size: int) -> str:
    """What a dataset's cached features depend on: the model, the dataset, the image size, the seed (it draws
    ShapeWorld's scenes, and the validation part carved out of a real training split) and, for ShapeWorld, the
    split sizes."""
    key = [model_id, name, image_size, seed] + ([list(sizes)] if name in SHAPEWORLD else []) + [2]  # 2: version
    return hashlib.sha1(json.dumps(key).encode()).hexdigest()[:16]


class SuiteResult(NamedTuple):
    rows: list  # one dict per (dataset, task): see evaluate_dataset
    timing: dict  # seconds spent on rendering (or opening), features, zero-shot and probes
    missing: dict  # {dataset: why}: the suite's datasets torchvision does not provide


def evaluate_suite(model, tokenizer, preprocess, suite: str, model_name: str = "model", shots: Sequence[int] = (),
                   sizes: Sizes = Sizes(), seed: int = 0, cache_dir=None, model_id: Optional[str] = None,
                   root=None, download: bool = False, workers: int = 0, progress: bool = True,
                   Cs: Sequence[float] = SUITE_CS, only: Sequence[str] = ()) -> SuiteResult:
    """Evaluate one model on every dataset of `suite`, with a progress bar over the datasets.

    model: anything with encode_image (CLIP, SigLIP, SimCLR, MAE, supervised, LiT, ...) on any device; tokenizer
    None for an image-only model (then no zero-shot rows). cache_dir: where image features are kept between runs,
    keyed by model_id (e.g. the checkpoint file and its modification time: a changed checkpoint gets fresh
    features). workers: processes decoding a real dataset's images. Real datasets that torchvision lacks are
    listed in `missing`, with the reason, and skipped; one that cannot be opened stops the run before any work.
    Cs: the probes' C grid; only: a few of the suite's datasets (a quick look; the suite's mean is then theirs).
    """
    from tqdm.auto import tqdm  # here: importing minclip should not load tqdm's notebook machinery

    names = check_suite(suite)
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ValueError(f"only={unknown}: not datasets of {suite}; choose among {names}")
        names = [name for name in names if name in only]
    if cache_dir is not None and model_id is None:
        raise ValueError("cache_dir needs a model_id (what identifies the model's weights) to key the features by")
    image_size = model.config.vision.image_size
    missing = {name: real.MISSING[name] for name in names if name in real.MISSING}
    # Open every real dataset first: a missing file or library is reported, all at once, before any features
    # (only ImageNet takes long here, the first time: torchvision unpacks its archives).
    opened, problems = {}, []
    for name in names:
        if name not in SHAPEWORLD and name not in missing:
            try:
                opened[name] = real_dataset(name, image_size, root, download)
            except (FileNotFoundError, ImportError, ValueError, RuntimeError) as error:  # RuntimeError: a download
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
        if cache_dir is not None:
            cached = Path(cache_dir) / f"{name}-{feature_cache_key(model_id, name, sizes, seed, image_size)}.pt"
        if cached is not None and cached.exists():
            features = Features(*(tuple(split) for split in torch.load(cached, weights_only=True)))
        else:
            features = _features(model, preprocess, data, seed, workers)
            if cached is not None:
                atomic_save([list(split) for split in features], cached)
        t2 = time.perf_counter()
        dataset_rows = evaluate_dataset(model, tokenizer, preprocess, name, data, features, model_name, shots, seed,
                                        workers, Cs)
        for row in dataset_rows:
            row.update(render_s=round(t1 - t0, 3), features_s=round(t2 - t1, 3))
            timing["zeroshot" if row["task"].startswith("zeroshot") else "probes"] += row["seconds"]
        timing["render"] += t1 - t0
        timing["features"] += t2 - t1
        rows += dataset_rows
    return SuiteResult(rows, {k: round(v, 2) for k, v in timing.items()}, missing)


def summary(rows: list) -> dict:
    """{model: {task: mean value over the datasets evaluated}}: the one number per model the paper's figures plot.
    A real suite's mean covers only the datasets torchvision has (e.g. 10 of kornblith-12's 12)."""
    out = {}
    for row in rows:
        out.setdefault(row["model"], {}).setdefault(row["task"], []).append(row["value"])
    return {m: {t: sum(v) / len(v) for t, v in tasks.items()} for m, tasks in out.items()}


def table(rows: list) -> str:
    """A text table: one line per dataset, one column per (model, task), and the mean over the datasets last.
    With several models, columns are headed A, B, ... and a key line names them."""
    columns = list(dict.fromkeys((r["model"], r["task"]) for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    letter = {m: chr(ord("A") + i % 26) + ("" if i < 26 else str(i // 26)) for i, m in enumerate(models)}
    values = {(r["dataset"], r["model"], r["task"]): r["value"] for r in rows}
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    heads = [(f"{letter[m]} " if len(models) > 1 else "") + task_label(t) for m, t in columns]
    width = max(9, *(len(h) for h in heads))
    lines = [f"{'dataset':24s}" + "".join(f"{h:>{width + 2}s}" for h in heads)]
    for d in datasets:
        cells = [values.get((d, m, t)) for m, t in columns]
        lines.append(f"{d:24s}" + "".join(f"{'-' if v is None else f'{100 * v:.1f}':>{width + 2}s}" for v in cells))
    means = summary(rows)
    lines.append(f"{f'mean of {len(datasets)}':24s}" + "".join(f"{100 * means[m][t]:>{width + 2}.1f}"
                                                                for m, t in columns))
    if len(models) > 1:
        lines.append("models: " + ", ".join(f"{letter[m]} = {m}" for m in models))
    return "\n".join(lines)
