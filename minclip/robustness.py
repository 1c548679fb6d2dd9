"""Robustness to distribution shift: accuracy on every ShapeWorld domain, and effective robustness.

CLIP §3.3 and Fig. 13 use Taori et al. (2020): across models trained on one distribution, accuracy under shift is
close to a line of in-distribution accuracy when both axes are logit-scaled. A model's *effective robustness* is
how far above that line it sits; zero-shot CLIP closes up to 75% of the "robustness gap" ImageNet models leave.

    line = fit_robustness_line(id_accs, ood_accs)  # supervised models trained in-distribution only
    effective_robustness(line, clip_id_acc, clip_ood_acc)  # > 0: more robust than its ID accuracy predicts
"""
import math
from typing import Callable, NamedTuple, Optional, Sequence

import torch

EPS = 1e-3  # accuracies are clipped to [EPS, 1 - EPS] before the logit: 1 error in 1,000, a test set's resolution
IN_DISTRIBUTION = "photo"  # the domain the supervised models train on: ImageNet's place in Fig. 13


def id_and_shifted(accuracies: dict) -> tuple:
    """{domain: accuracy} -> (in-distribution, shifted): photo's accuracy, and the mean over every other domain.

    minclip's one definition of "shifted", used by baselines/evaluate.py, `make reproduce` and notebook 06.
    Grayscale counts: it deletes the colour, half of a colour-shape label, so no model is robust to it. It lowers
    every model's shifted accuracy, supervised and CLIP alike, and the line fitted over the supervised models
    absorbs that; leaving it out would be another, equally defensible definition, but only one may be used.
    """
    if IN_DISTRIBUTION not in accuracies or len(accuracies) < 2:
        raise ValueError(f"need the accuracy on {IN_DISTRIBUTION!r} and on at least one other domain, got "
                         f"{sorted(accuracies)}; pass domain_accuracies(...)'s dict")
    shifted = [acc for domain, acc in accuracies.items() if domain != IN_DISTRIBUTION]
    return accuracies[IN_DISTRIBUTION], sum(shifted) / len(shifted)


def logit(acc: float) -> float:
    """log(p / (1 - p)) of an accuracy clipped to [EPS, 1 - EPS], so that 0% and 100% stay finite."""
    p = min(max(float(acc), EPS), 1 - EPS)
    return math.log(p / (1 - p))


def _check_accuracy(acc: float, name: str) -> float:
    """acc as a float, refused unless a fraction in [0, 1]: logit() clips, so a percentage (93.0) or a NaN would
    otherwise pass silently as 99.9% or poison the fit."""
    acc = float(acc)
    if not 0 <= acc <= 1:  # also False for NaN
        raise ValueError(f"{name} is {acc}; accuracies are fractions in [0, 1] (divide a percentage by 100; a NaN "
                         "means the evaluation itself failed)")
    return acc


class RobustnessLine(NamedTuple):
    slope: float
    intercept: float  # logit(ood) = slope * logit(id) + intercept

    def predict(self, id_acc: float) -> float:
        """The shifted accuracy the line expects of a model with in-distribution accuracy id_acc."""
        return 1 / (1 + math.exp(-(self.slope * logit(_check_accuracy(id_acc, "id_acc")) + self.intercept)))


def fit_robustness_line(id_acc: Sequence[float], ood_acc: Sequence[float]) -> RobustnessLine:
    """Least-squares line through (logit(id), logit(ood)), over models trained only in-distribution (Taori et al.).

    Args: id_acc, ood_acc: one accuracy (a fraction) per model, at least two models with different id_acc.
    """
    if len(id_acc) != len(ood_acc):
        raise ValueError(f"{len(id_acc)} in-distribution accuracies but {len(ood_acc)} shifted ones; pass one pair "
                         "per model")
    x = torch.tensor([logit(_check_accuracy(a, f"id_acc[{i}]")) for i, a in enumerate(id_acc)], dtype=torch.float64)
    y = torch.tensor([logit(_check_accuracy(a, f"ood_acc[{i}]")) for i, a in enumerate(ood_acc)], dtype=torch.float64)
    if len(x) < 2 or float(x.max() - x.min()) == 0:
        raise ValueError("a line needs at least two models with different in-distribution accuracies; train more "
                         "baselines (other sizes or training lengths)")
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / (x - x.mean()).square().sum())
    return RobustnessLine(slope, float(y.mean() - slope * x.mean()))


def effective_robustness(line: RobustnessLine, id_acc: float, ood_acc: float) -> float:
    """Shifted accuracy above what the line predicts from in-distribution accuracy, in accuracy units (0.1 = 10 pt)."""
    return _check_accuracy(ood_acc, "ood_acc") - line.predict(id_acc)


def domain_accuracies(predict: Callable, shapeworld, task: str = "color_shape", split: str = "test",
                      domains: Optional[Sequence[str]] = None, n: int = 1000, seed: int = 0) -> dict:
    """Accuracy of a classifier on every ShapeWorld domain (photo, sketch, noisy, ...): the same classes and
    seed in each, only the rendering shifts.

    Args: predict, any callable uint8 images (B, 3, H, W) -> predicted labels (B,), e.g. zero-shot:
        `lambda x: (image_features(model, x, preprocess) @ classifier).argmax(1)`;
        shapeworld, a minclip.data.ShapeWorld; domains, a subset of shapeworld.domains (default all).
    Returns: {domain: accuracy}.
    """
    domains = list(shapeworld.domains if domains is None else domains)
    unknown = [d for d in domains if d not in shapeworld.domains]
    if unknown or not domains:
        raise ValueError(f"unknown domains {unknown}; choose from {list(shapeworld.domains)}")
    out = {}
    for domain in domains:
        images, labels, _ = shapeworld.classification(task, split=split, domain=domain, n=n, seed=seed)
        labels = torch.as_tensor(labels)
        predicted = torch.as_tensor(predict(images)).cpu()
        if predicted.shape != labels.shape:
            raise ValueError(f"predict returned shape {tuple(predicted.shape)} for {len(labels)} images; it should "
                             "return one label per image, (B,)")
        out[domain] = (predicted == labels).float().mean().item()
    return out
