"""Evaluate any image tower the same way: linear probe, kNN, k-shot probes, zero-shot where there is a text tower,
and the accuracy of each on every ShapeWorld domain.

Every number reads frozen features `model.encode_image(images)` (B, E), the same place for every method, on the
color_shape task: the probes train on photo images of the seen colour-shape pairs, and are tested on fresh images
of the same pairs, in the photo domain (in distribution) and in the others (distribution shift).

    data = eval_data(n_train=2240, n_test=1000)
    metrics = evaluate(model, preprocess, data, tokenizer)   # tokenizer None for image-only models

    python -m baselines.evaluate runs/simclr runs/mae          # any baseline or minclip runs; prints JSON lines
"""
import argparse
import json
from typing import NamedTuple

import torch

from baselines import common
from baselines.supervised import Supervised
from minclip.cli import HelpFormatter
from minclip.data import ShapeWorld
from minclip.probe import knn_accuracy, linear_probe, low_shot_curve
from minclip.robustness import IN_DISTRIBUTION, id_and_shifted
from minclip.zeroshot import image_features, logits_accuracy, zeroshot_classifier

TASK = "color_shape"
# The probe's C grid for standardised features: half decades around the OpenAI README's 0.316. minclip.probe's
# default grid reaches C = 1000, where near-separable fits run to max_iter and cost most of the evaluation.
PROBE_CS = tuple(10 ** (e / 2) for e in range(-4, 5))  # 0.01 .. 100


class EvalData(NamedTuple):
    train: tuple  # (images uint8 (B, 3, H, W), labels (B,), classnames): the probes' training pool, photo
    test: dict  # {domain: (images, labels, classnames)}: fresh images of the seen pairs, every domain
    unseen: tuple  # (images, labels, classnames): the held-out pairs, photo; only zero-shot can name them


def eval_data(n_train: int = 2240, n_test: int = 1000, image_size: int = 32, seed: int = 0) -> EvalData:
    """The fixed evaluation images: world 0 (the held-out pairs every model was trained without), seeded."""
    world = ShapeWorld(seed=0, image_size=image_size)
    test = {d: world.classification(TASK, "test", d, n=n_test, seed=seed + 1) for d in world.domains}
    return EvalData(world.classification(TASK, "train", IN_DISTRIBUTION, n=n_train, seed=seed),
                    test, world.classification(TASK, "unseen", IN_DISTRIBUTION, n=n_test, seed=seed + 2))


def _accuracy(predicted, labels) -> float:
    """A probe's hard predictions (B,) against labels (B,); scores (B, K) go to logits_accuracy instead."""
    return (predicted.cpu() == labels.cpu()).float().mean().item()


def evaluate(model, preprocess, data: EvalData, tokenizer=None, shots=(1, 4, 16), trials: int = 3,
             knn_k: int = 20) -> dict:
    """All the comparison's numbers for one model (accuracies as fractions):

    linear_probe (photo) and its swept probe_C, knn (photo), shots {k: mean k-shot probe accuracy}, probe_domains {domain: accuracy of
    the photo-trained probe}; with a tokenizer also zeroshot (photo), zeroshot_unseen and zeroshot_domains; for a
    supervised model also head_domains (its own classifier).
    """
    train_x, train_y, classnames = data.train
    train_f = image_features(model, train_x, preprocess)  # (B, E), L2-normalised
    test_f = {d: image_features(model, x, preprocess) for d, (x, _, _) in data.test.items()}
    test_y = {d: y for d, (_, y, _) in data.test.items()}
    # Probes read standardised features, as MAE puts a BatchNorm without affine before its linear probe (§A.2):
    # the methods' features differ in scale, and this lets one C grid (PROBE_CS) fit every model.
    mean, std = train_f.mean(0), train_f.std(0).clamp_min(1e-6)
    z_train, z_test = (train_f - mean) / std, {d: (f - mean) / std for d, f in test_f.items()}
    probe = linear_probe(z_train, train_y, z_test[IN_DISTRIBUTION], test_y[IN_DISTRIBUTION], Cs=PROBE_CS)
    curve = low_shot_curve(z_train, train_y, z_test[IN_DISTRIBUTION], test_y[IN_DISTRIBUTION], shots=shots,
                           trials=trials)
    metrics = {
        "linear_probe": probe.accuracy,
        "probe_C": probe.C,
        # kNN on the cosine geometry of the raw features, as lightly's benchmarks (k = 200 there, with 5,000
        # images a class; k = 20 here, with 16 to 80)
        "knn": knn_accuracy(train_f, train_y, test_f[IN_DISTRIBUTION], test_y[IN_DISTRIBUTION], k=knn_k),
        "shots": {int(k): acc for k, acc in zip(curve.shots, curve.mean)},
        "probe_domains": {d: _accuracy(probe.classifier.predict(z), test_y[d]) for d, z in z_test.items()},
    }
    if tokenizer is not None:
        weights = zeroshot_classifier(model, tokenizer, classnames, ShapeWorld.templates(TASK))  # (E, K): all 64
        metrics["zeroshot_domains"] = {d: logits_accuracy(f @ weights, test_y[d])[1]  # (B, E) @ (E, K)
                                       for d, f in test_f.items()}
        metrics["zeroshot"] = metrics["zeroshot_domains"][IN_DISTRIBUTION]
        unseen_x, unseen_y, _ = data.unseen
        unseen_f = image_features(model, unseen_x, preprocess)  # (B, E)
        metrics["zeroshot_unseen"] = logits_accuracy(unseen_f @ weights, unseen_y)[1]
    if isinstance(model, Supervised):
        metrics["head_domains"] = head_accuracies(model, preprocess, data)
    return metrics


@torch.no_grad()
def head_accuracies(model: Supervised, preprocess, data: EvalData, batch_size: int = 512) -> dict:
    """{domain: accuracy} of a supervised model's own classifier on the test images of every domain."""
    model.eval()
    device = next(model.parameters()).device
    accuracies = {}
    for domain, (images, labels, _) in data.test.items():
        logits = torch.cat([model(preprocess(x.to(device))) for x in images.split(batch_size)])  # (B, K)
        accuracies[domain] = logits_accuracy(logits, labels)[1]
    return accuracies


class Robustness(NamedTuple):
    classifier: str  # "zero-shot", "head" or "probe": the model's own way of classifying
    in_distribution: float  # its accuracy on photo
    shifted: float  # its mean accuracy over the other domains


def robustness(metrics: dict) -> Robustness:
    """In-distribution and mean shifted accuracy of the model's own classifier: zero-shot if it has a text tower
    (CLIP Fig. 13 plots zero-shot CLIP), its head if it was trained with labels, else the photo-trained probe."""
    for key, name in (("zeroshot_domains", "zero-shot"), ("head_domains", "head"), ("probe_domains", "probe")):
        if key in metrics:
            return Robustness(name, *id_and_shifted(metrics[key]))  # minclip's one definition of shifted
    raise ValueError("metrics hold no per-domain accuracies; pass the dict `evaluate` returns")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m baselines.evaluate", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders or checkpoints (baselines or minclip.train)")
    parser.add_argument("--n-train", type=int, default=2240, help="the probes' training pool (>= 896 for 16 shots)")
    parser.add_argument("--n-test", type=int, default=1000, help="test images per domain")
    parser.add_argument("--seed", type=int, default=0, help="seeds the evaluation images and the probes")
    args = parser.parse_args(argv)
    data = eval_data(args.n_train, args.n_test, seed=args.seed)
    for run in args.runs:
        model, tokenizer, preprocess = common.load(run)
        metrics = evaluate(model, preprocess, data, tokenizer)
        print(json.dumps({"run": run, **metrics, "robustness": robustness(metrics)._asdict()}), flush=True)


if __name__ == "__main__":
    main()
