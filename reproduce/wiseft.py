"""WiSE-FT: fine-tune the zero-shot model, then average its weights with the zero-shot ones (Wortsman et al. 2022,
"Robust fine-tuning of zero-shot models", arXiv 2109.01903).

The lecture's claim: CLIP is not suited to specialised tasks (counting, here ShapeWorld's `count-photo`) unless it
is fine-tuned. Fine-tuning end to end fixes the task but costs robustness: accuracy under distribution shift (the
same classes in another rendering, `count-cartoon`) falls from what the zero-shot model had. WiSE-FT's answer is
one line of arithmetic on the two sets of weights,

    theta_alpha = (1 - alpha) * theta_zeroshot + alpha * theta_finetuned,      alpha in [0, 1]

and the paper's finding (§3, Fig. 1): some alpha in between beats both ends under shift while staying close to the
fine-tuned model on the task itself. Averaging works because fine-tuning starts from the zero-shot weights, so
the two models lie in one basin of the loss (§5); the head starts from the zero-shot classifier for the same
reason, which also makes alpha = 0 exactly the zero-shot model.

    head = zeroshot_head(model, tokenizer, classnames, templates)         # nn.Linear(E, K), the zero-shot classifier
    zeroshot = ImageClassifier(model, head)                               # a copy: `model` stays as it is
    finetuned = finetune(zeroshot, images, labels, preprocess, "runs/wise-ft", steps=150, batch_size=64, lr=3e-4,
                         seed=0)                                          # minclip's training loop, a run folder
    mixed = ImageClassifier(model, head)
    mixed.load_state_dict(interpolate(zeroshot.state_dict(), finetuned.state_dict(), alpha=0.5))

    wise_ft(model, tokenizer, preprocess, "runs/wise-ft")  # the whole experiment on ShapeWorld: {"on_task": ...}
"""
import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minclip import CLIP, CLIPConfig, load, loop
from minclip.cli import arg
from minclip.pairs import step_seed
from minclip.probe import linear_probe
from minclip.suite import SHAPEWORLD, Sizes, shapeworld_dataset
from minclip.zeroshot import image_features, logits_accuracy, zeroshot_classifier, zeroshot_logits


def zeroshot_head(model, tokenizer, classnames: Sequence[str], templates: Sequence[str]) -> nn.Linear:
    """The zero-shot classifier as a linear layer, the head WiSE-FT fine-tunes from (§2).

    weight = logit_scale * the normalised mean prompt embedding of each class, (K, E); bias = 0. So
    `head(normalize(model.encode_image(x)))` are minclip's zero-shot logits (cosine similarities, (B, K)) times the
    model's logit scale: the same argmax, and the scale CLIP was trained with, so that cross-entropy starts from
    the model's own confidence instead of from near-uniform probabilities.
    Returns: nn.Linear(E, K) on the model's device, float32.
    """
    weights = zeroshot_classifier(model, tokenizer, classnames, templates)  # (E, K), unit columns
    E, K = weights.shape
    head = nn.Linear(E, K).to(weights.device)
    with torch.no_grad():
        head.weight.copy_(model.scale().detach().float() * weights.T)  # (K, E)
        head.bias.zero_()
    return head


class ImageClassifier(nn.Module):
    """A CLIP image tower with a linear head: logits = head(normalize(encode_image(images))).

    Both are deep copies, so fine-tuning this module leaves the caller's model and head untouched. The copy keeps
    the whole model (its encode_image path, with the input checks); the text tower comes along unused and gets no
    gradient, so fine-tuning leaves it as it is.
    """

    def __init__(self, model: nn.Module, head: nn.Linear):
        super().__init__()
        self.encoder = copy.deepcopy(model)
        self.head = copy.deepcopy(head)
        self.config = model.config  # the CLIP's: its image size sets the preprocessing

    def forward(self, images: Tensor) -> Tensor:
        """images (B, 3, H, W) float, preprocessed -> logits (B, K)."""
        feats = self.encoder.encode_image(images, normalize=True)  # (B, E), unit rows
        return self.head(feats.float())  # (B, E) -> (B, K)


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def build(model_config: dict) -> ImageClassifier:
    """The fine-tuned classifier a checkpoint's model_config describes: {"clip": CLIPConfig dict, "classes": K}
    (minclip.load calls this for a fine-tuning run folder)."""
    model = CLIP(CLIPConfig.from_dict(model_config["clip"]))
    return ImageClassifier(model, nn.Linear(model.embed_dim, model_config["classes"]))


@dataclass
class FinetuneConfig(loop.RunConfig):
    """The loop's flags (minclip/loop.py) with WiSE-FT's fine-tuning recipe at small scale as defaults: AdamW with
    weight decay 0.1, a learning rate of 3e-4 warmed up over the first 10% of the steps then a cosine to 0 (§2 and
    App. C of the paper), and no gradient clipping (the paper clips none)."""
    COMMAND: ClassVar[str] = "python -m reproduce"  # runs inside the plan: running the same command again resumes it
    batch_size: int = arg(64, "images per fine-tuning step")
    lr: float = arg(3e-4, "peak learning rate")
    weight_decay: float = arg(0.1, "AdamW decoupled weight decay on weight matrices")
    grad_clip: float = arg(0.0, "clip the gradient norm to this (0 = off, as the paper)")


class FinetuneObjective(loop.Objective):
    """Fine-tuning end to end with cross-entropy: the image tower and the head both learn (WiSE-FT §2, "end-to-end").

    Batch `step` is batch_size distinct images drawn with a generator seeded by (seed, step), so a resumed run sees
    the batches the uninterrupted one would. The text tower comes along in the model but gets no gradient: AdamW
    skips a parameter whose .grad is None, so it is neither moved nor decayed."""
    method = "wise-ft"
    builder = "reproduce.wiseft"

    def __init__(self, cfg: FinetuneConfig, par, classifier: ImageClassifier, images: Tensor, labels: Tensor,
                 preprocess):
        if par.world > 1:
            raise ValueError("WiSE-FT fine-tunes on one process (python -m reproduce); run it without torchrun")
        self.cfg, self.device = cfg, par.device
        self.model = copy.deepcopy(classifier).to(par.device)
        self.model_config = {"clip": classifier.config.to_dict(), "classes": classifier.head.out_features}
        self.images, self.labels, self.preprocess = images, labels, preprocess

    def loss(self, step: int) -> Tensor:
        batches = torch.Generator().manual_seed(step_seed(self.cfg.seed, step))
        idx = torch.randperm(len(self.images), generator=batches)[:self.cfg.batch_size]  # (B,) distinct images
        x, y = self.preprocess(self.images[idx].to(self.device)), self.labels[idx].to(self.device)
        return F.cross_entropy(self.model(x), y)  # logits (B, K), labels (B,)


def finetune(classifier: ImageClassifier, images: Tensor, labels: Tensor, preprocess, out, steps: int,
             batch_size: int, lr: float, seed: int, weight_decay: float = 0.1, quiet: bool = True) -> ImageClassifier:
    """Fine-tune a copy of `classifier` on (images, labels) through minclip's training loop, into the run folder
    `out` (config.json, metrics.jsonl, checkpoint.pt, summary.json); returns the fine-tuned copy, in eval mode.

    A finished run in `out` is reused and a killed one resumed (the loop's resume is exact), so the plan never
    fine-tunes twice. The global RNG (FLIP's patch dropout draws from it; the loop seeds it from `seed`) is put
    back afterwards. Equal arguments give equal weights on one machine.
    Args: classifier (not modified); images uint8 (B, 3, H, W) with labels (B,) in 0..K-1; preprocess, uint8 ->
        float as the model expects, applied to each batch on the classifier's device; the rest as FinetuneConfig.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images should be uint8 (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    if len(images) != len(labels) or not 1 <= batch_size <= len(images):
        raise ValueError(f"{len(images)} images, {len(labels)} labels, batch_size={batch_size}: pass one label per "
                         "image and a batch_size between 1 and the number of images")
    if steps < 1:
        raise ValueError(f"steps={steps}; fine-tuning needs at least one step")
    device = _device(classifier)
    cfg = FinetuneConfig(steps=steps, batch_size=batch_size, lr=lr, warmup=max(1, steps // 10),
                         weight_decay=weight_decay, seed=seed, out=str(out), save_every=steps, log_every=10,
                         resume=(Path(out) / "checkpoint.pt").is_file(), quiet=quiet, device=str(device))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        loop.run(cfg, lambda cfg, state, par: FinetuneObjective(cfg, par, classifier, images, labels, preprocess))
    return load(out, device).model  # eval mode


def interpolate(zeroshot_state: dict, finetuned_state: dict, alpha: float) -> dict:
    """WiSE-FT's weight-space ensemble: (1 - alpha) * zeroshot + alpha * finetuned, entry by entry (§2, Eq. 1).

    Float tensors are mixed in their own dtype, written so that alpha = 0 and 1 give the inputs bit for bit. Other
    tensors (integer counters, boolean masks) cannot be averaged: they are copied from the nearer end. alpha is the
    paper's mixing coefficient, in [0, 1] there (values outside extrapolate, as nothing forbids).
    Args: two state dicts with the same keys and shapes (model.state_dict()).
    Returns: a new state dict, for load_state_dict.
    """
    if set(zeroshot_state) != set(finetuned_state):
        only_z = sorted(set(zeroshot_state) - set(finetuned_state))[:5]
        only_f = sorted(set(finetuned_state) - set(zeroshot_state))[:5]
        raise ValueError(f"the two state dicts have different keys (only zero-shot: {only_z}, only fine-tuned: "
                         f"{only_f}); interpolate two states of one architecture, the fine-tuned one a copy of the "
                         "zero-shot one")
    if not math.isfinite(alpha):
        raise ValueError(f"alpha={alpha}; pass a finite mixing coefficient, e.g. 0.5")
    mixed = {}
    for key, z in zeroshot_state.items():
        f = finetuned_state[key]
        if z.shape != f.shape:
            raise ValueError(f"{key!r} is {tuple(z.shape)} in the zero-shot state but {tuple(f.shape)} in the "
                             "fine-tuned one; both must come from one architecture")
        if z.is_floating_point():
            mixed[key] = (1 - alpha) * z + alpha * f.to(z)
        else:
            mixed[key] = (z if alpha < 0.5 else f).clone()
    return mixed


@torch.no_grad()
def _logits(classifier: nn.Module, images: Tensor, preprocess, batch_size: int = 256) -> Tensor:
    """classifier(preprocess(images)) on uint8 images (B, 3, H, W), in eval mode: (B, K) on the CPU."""
    classifier.eval()
    device = _device(classifier)
    return torch.cat([classifier(preprocess(chunk.to(device))).float().cpu() for chunk in images.split(batch_size)])


def _mean(xs) -> float:
    return sum(xs) / len(xs)


def _check_shifted(dataset: str, shifted: Sequence[str]) -> None:
    """Refuse shifted datasets whose classes are not the task's: accuracy under shift is read with the task's head."""
    for name in (dataset, *shifted):
        if name not in SHAPEWORLD:
            raise ValueError(f"unknown ShapeWorld dataset {name!r}; choose among {', '.join(SHAPEWORLD)}")
    if not shifted:
        raise ValueError("shifted is empty; name at least one dataset with the task's classes, e.g. ('count-cartoon',)")
    spec = SHAPEWORLD[dataset]
    for name in shifted:
        other = SHAPEWORLD[name]
        if (other.task, other.pairs) != (spec.task, spec.pairs):
            same = [n for n, s in SHAPEWORLD.items() if (s.task, s.pairs) == (spec.task, spec.pairs) and n != dataset]
            raise ValueError(f"{name!r} classifies {other.task} ({other.pairs} pairs) but {dataset!r} classifies "
                             f"{spec.task} ({spec.pairs} pairs): a shift must keep the classes; choose among {same}")


def wise_ft(model, tokenizer, preprocess, out, dataset: str = "count-photo",
            shifted: Sequence[str] = ("count-cartoon",), alphas: Sequence[float] = (0, 0.25, 0.5, 0.75, 1.0),
            steps: int = 150, batch_size: int = 64, lr: float = 3e-4,
            sizes: Sizes = Sizes(train=1000, val=30, test=500), seed: int = 0) -> dict:
    """The WiSE-FT experiment on a ShapeWorld task: zero-shot, linear probe, fine-tuned and their weight averages.

    1. Render the task (train and test splits) and the shifted datasets (test splits) of minclip.suite.
    2. Zero-shot: minclip's zero-shot path on the test splits.
    3. Linear probe on frozen features (minclip.probe.linear_probe, C swept on a part of the train split), scored
       on the task's test split and on the shifted ones: the other way to adapt CLIP to a task.
    4. Fine-tune the zero-shot classifier (zeroshot_head + the image tower) end to end on the train split, through
       minclip's training loop into the run folder `out` (reused if it holds the finished run).
    5. For each alpha: interpolate the two and score on the task and under shift.
    The model is not modified. Accuracies are top-1 fractions in [0, 1]; under_shift is the mean over `shifted`.

    Returns: {"dataset", "shifted", "alphas", "on_task": [per alpha], "under_shift": [per alpha],
        "zeroshot": {"on_task", "under_shift"}, "linear_probe": {...}, "finetuned": {...},
        "best_alpha_under_shift"} (ties go to the smaller alpha), plain JSON-able numbers.
    """
    _check_shifted(dataset, shifted)
    if not alphas:
        raise ValueError("alphas is empty; pass the mixing weights to try, e.g. (0, 0.25, 0.5, 0.75, 1.0)")
    image_size = model.config.vision.image_size
    task = shapeworld_dataset(dataset, image_size, sizes, seed)
    shifts = [shapeworld_dataset(name, image_size, sizes, seed) for name in shifted]
    for name, data in zip(shifted, shifts):
        if data.classnames != task.classnames:
            raise ValueError(f"{name!r} has classes {data.classnames} but {dataset!r} has {task.classnames} (a class "
                             "absent from one train split?); raise sizes.train so that every class occurs in both")
    train_x, train_y = task.splits["train"]
    evals = [task.splits["test"]] + [data.splits["test"] for data in shifts]  # [(images, labels)]: task, then shifts
    feats = [image_features(model, x, preprocess).cpu() for x, _ in evals]  # frozen (B, E), for zero-shot and probe

    def scores(logits: list) -> dict:
        """(B, K) logits of each evaluation set -> {"on_task", "under_shift" (the mean over the shifted sets)}."""
        accs = [logits_accuracy(s, y)[1] for s, (_, y) in zip(logits, evals)]  # top-1 of each set
        return {"on_task": accs[0], "under_shift": _mean(accs[1:])}

    zeroshot = scores([zeroshot_logits(model, tokenizer, x, task.classnames, task.templates, preprocess, features=f)
                       for (x, _), f in zip(evals, feats)])
    # the probe's columns are the classes 0..K-1 in order: shapeworld_dataset's labels index the classes its train
    # split holds, so every class is in the probe's training set
    probe = linear_probe(image_features(model, train_x, preprocess).cpu(), train_y, feats[0], evals[0][1], seed=seed)
    probed = scores([probe.classifier.logits(f) for f in feats])

    head = zeroshot_head(model, tokenizer, task.classnames, task.templates)
    zs = ImageClassifier(model, head)
    ft = finetune(zs, train_x, train_y, preprocess, out, steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    zs_state, ft_state = zs.state_dict(), ft.state_dict()
    mixed = ImageClassifier(model, head)
    on_task, under_shift = [], []
    for alpha in alphas:
        mixed.load_state_dict(interpolate(zs_state, ft_state, alpha))
        result = scores([_logits(mixed, x, preprocess) for x, _ in evals])
        on_task.append(result["on_task"])
        under_shift.append(result["under_shift"])
    return {"dataset": dataset, "shifted": list(shifted), "alphas": [float(a) for a in alphas],
            "on_task": on_task, "under_shift": under_shift, "zeroshot": zeroshot, "linear_probe": probed,
            "finetuned": scores([_logits(ft, x, preprocess) for x, _ in evals]),
            "best_alpha_under_shift": float(alphas[max(range(len(alphas)), key=lambda i: (under_shift[i], -i))])}
