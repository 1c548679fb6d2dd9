"""Linear probes, k-shot curves and kNN: how much a frozen representation knows, read out by simple classifiers.

CLIP §3.2 and Appendix A.3 fit an L2-regularised logistic regression on frozen image features with L-BFGS and
sweep its strength C on a validation split; §3.1.5 compares zero-shot with k-shot probes ("zero-shot matches a
4-shot probe", averaged over 20 datasets). The SSL baselines are read out with a weighted kNN instead.

    r = linear_probe(train_feats, train_labels, test_feats, test_labels)  # C swept on a validation split
    r.accuracy, r.C, r.classifier.predict(feats)
"""
import math
import warnings
from contextlib import contextmanager
from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .zeroshot import check_finite

# 1e-3 .. 1e4 in half decades (15 values), 0.316 among them. On unit-norm features with hundreds of examples per
# class the best C is often 1e3 (notebook 05, benchmarks/probe_speed.py), so the grid goes one decade beyond it.
DEFAULT_CS = tuple(10 ** (e / 2) for e in range(-6, 9))
FEW_SHOT_C = 0.316  # the OpenAI README's probe C, used for k-shot fits where no validation split is possible


class LinearClassifier(NamedTuple):
    weight: Tensor  # (D, K)
    bias: Tensor  # (K,)
    classes: Tensor  # (K,) the label each column stands for

    def logits(self, feats: Tensor) -> Tensor:
        """(B, D) features -> (B, K) scores, column k for label classes[k]."""
        return torch.addmm(self.bias, feats.to(self.weight), self.weight)

    def predict(self, feats: Tensor) -> Tensor:
        """(B, D) features -> (B,) labels."""
        return self.classes[self.logits(feats).argmax(dim=1)]


class ProbeResult(NamedTuple):
    accuracy: float  # fraction of test_labels predicted right, in [0, 1]
    C: float  # the inverse regularisation strength used for the final fit
    classifier: LinearClassifier
    sweep: dict  # {C: validation accuracy} of the sweep; empty when C was given


def _check_pair(feats: Tensor, labels: Tensor, name: str) -> None:
    if feats.ndim != 2:
        raise ValueError(f"{name}_feats should be (B, D), got shape {tuple(feats.shape)}")
    if labels.ndim != 1 or labels.dtype.is_floating_point:
        raise ValueError(f"{name}_labels should be (B,) integer class ids, got {labels.dtype} {tuple(labels.shape)}")
    if len(feats) != len(labels):
        raise ValueError(f"{name}_feats has {len(feats)} rows but {name}_labels has {len(labels)}; pass one label "
                         "per feature row")
    if len(labels) == 0:
        raise ValueError(f"{name}_feats is empty; pass at least one example")
    negative = (labels < 0).nonzero().flatten()
    if len(negative):
        i = int(negative[0])
        raise ValueError(f"{name}_labels has {len(negative)} negative labels (the first: {int(labels[i])} at row {i}); "
                         "class ids are >= 0 (-1 often marks an unlabelled example: drop those rows)")
    check_finite(feats, f"{name}_feats")


def _check_seen(train_labels: Tensor, test_labels: Tensor) -> None:
    """A probe predicts only classes it was trained on: a test class missing from training would be an error on
    every one of its examples, however good the features."""
    test_classes = test_labels.unique()
    unseen = test_classes[~torch.isin(test_classes, train_labels.to(test_classes.device))]
    if len(unseen):
        raise ValueError(f"test_labels hold classes that train_labels lack: {unseen[:10].tolist()}; the probe cannot "
                         "predict them, so every such example would count as wrong: drop them from the test set, or "
                         "add training examples of them")


def _shuffle_by_class(labels: Tensor, seed: int):
    """A seeded permutation of 0..B-1 grouped by class (random order inside each class), with per-class counts."""
    g = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    perm = torch.randperm(len(labels), generator=g)
    order = perm[labels[perm].argsort(stable=True)]  # (B,) class by class, shuffled within
    classes, counts = labels.unique(return_counts=True)
    return order, classes, counts


def sample_k_shot(labels: Tensor, k: int, seed: int) -> Tensor:
    """Exactly k examples of every class, seeded: (K*k,) sorted indices into labels."""
    order, classes, counts = _shuffle_by_class(labels, seed)
    if k < 1:
        raise ValueError(f"k={k}; pass k >= 1 examples per class")
    if counts.min() < k:
        c = int(counts.argmin())
        raise ValueError(f"class {int(classes[c])} has {int(counts[c])} examples, fewer than k={k}; lower k")
    starts = counts.cumsum(0) - counts  # (K,) where each class begins in `order`
    return order[(starts[:, None] + torch.arange(k)).flatten()].sort().values.to(labels.device)  # (K*k,)


class Split(NamedTuple):
    train: Tensor  # indices into the labels
    val: Tensor


def stratified_split(labels: Tensor, val_fraction: float, seed: int) -> Split:
    """Seeded train/validation indices with val_fraction of every class held out (at least one kept to train)."""
    order, _, counts = _shuffle_by_class(labels, seed)
    n_val = (counts * val_fraction).round().long().minimum(counts - 1)  # (K,)
    position = torch.arange(len(order)) - (counts.cumsum(0) - counts).repeat_interleave(counts)  # rank within class
    is_val = position < n_val.repeat_interleave(counts)
    return Split(order[~is_val].to(labels.device), order[is_val].to(labels.device))


def feature_stats(x: Tensor) -> tuple:
    """Per-feature mean and standard deviation of x (B, D), as sklearn's StandardScaler: -> (D,), (D,)."""
    return x.mean(dim=0), x.std(dim=0, correction=0).clamp_min(1e-8)  # a constant feature keeps std 1e-8, z = 0


def standardize(fit_on: Tensor, *others: Tensor) -> tuple:
    """Zero mean, unit variance per feature, with the statistics of `fit_on` (B, D): -> (fit_on standardised,
    *others standardised), each (B_i, D)."""
    mean, std = feature_stats(fit_on)
    return tuple((x - mean) / std for x in (fit_on, *others))


@contextmanager
def _one_thread_if_small(x: Tensor, K: int):
    """Small CPU fits run on one thread: below ~10 MFLOP a step, OpenMP's start-up on every op costs more than the
    parallel work saves (measured on a busy 2-core machine: 750 x 64 x 10 in 0.23 s on one thread, 1.5 s on two)."""
    threads = torch.get_num_threads()
    if x.device.type == "cpu" and x.numel() * K < 2 ** 23:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _loss_and_grads(x: Tensor, y: Tensor, W: Tensor, b: Tensor, lam: float) -> tuple:
    """mean(CE(x W + b, y)) + 0.5 * lam * ||W||^2 and its gradients for W (D, K) and b (K,), written out by hand:
    d loss / d logits = (softmax - onehot) / n, a third cheaper than autograd here."""
    n = len(x)
    rows = torch.arange(n, device=x.device)
    log_p = torch.addmm(b, x, W).log_softmax(dim=1)  # (B, K)
    loss = -log_p[rows, y].mean() + 0.5 * lam * W.square().sum()
    d_logits = log_p.exp_()
    d_logits[rows, y] -= 1
    d_logits /= n
    return loss, torch.addmm(W, x.T, d_logits, beta=lam), d_logits.sum(dim=0)  # W grad (D, K) = X^T dZ + lam W


def _fit_logistic(x: Tensor, y: Tensor, C: float, init: tuple, max_iter: int) -> tuple:
    """Multinomial logistic regression, the objective of sklearn's LogisticRegression(C), by full-batch L-BFGS.

    sklearn minimises C * sum(CE) + 0.5 * ||W||^2 (bias free). Dividing by C * n gives mean(CE) + 0.5 * lam * ||W||^2
    with lam = 1 / (C * n): the same minimiser, at the scale of sklearn's stopping rule max|grad| <= 1e-4.
    We stop at max|grad| <= min(1e-4, 1e-3 * max|grad at W=0|): sklearn's rule, tightened when the features are
    small. L2-normalised 512-d features have max|grad at 0| ~ 2e-3; there sklearn's absolute 1e-4 stops far from
    the optimum, and a warm-started fit barely moves (benchmarks/probe_speed.py, validation accuracy: 82.5% instead
    of 91.0% at C=1000 from a cold start, 85.9% instead of 89.9% at C=100 warm-started).
    x (B, D) float32, y (B,) in 0..K-1, init (W (D, K), b (K,)).
    """
    lam = 1.0 / (C * len(x))
    W, b = init[0].clone(), init[1].clone()
    _, grad_W, grad_b = _loss_and_grads(x, y, torch.zeros_like(W), torch.zeros_like(b), lam)
    tol = min(1e-4, 1e-3 * max(grad_W.abs().max().item(), grad_b.abs().max().item()))
    # history 10 and a strong-Wolfe line search, as scipy's L-BFGS-B in sklearn: the unit step is accepted at
    # almost every iteration, so one iteration costs about one function evaluation.
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, max_eval=2 * max_iter, tolerance_grad=tol,
                            tolerance_change=1e-9, history_size=10, line_search_fn="strong_wolfe")

    def closure():
        loss, W.grad, b.grad = _loss_and_grads(x, y, W, b, lam)
        return loss

    opt.step(closure)
    W.grad = b.grad = None
    return W, b


def _sweep(x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor, Cs: list, init: tuple,
           max_iter: int) -> tuple:
    """Fit every C (ascending, each warm-started from the last) on the training part and score it on the validation
    part; -> (best C, its (W, b), {C: validation accuracy}). Ties go to the smaller C, the stronger regularisation."""
    if not Cs or Cs[0] <= 0:
        raise ValueError(f"sweep Cs={Cs}: pass positive Cs")
    if len(y_val) == 0:
        raise ValueError("the validation split is empty (too few examples per class); pass C= to skip the sweep")
    params, scores, best = init, {}, None
    for C in Cs:
        params = _fit_logistic(x_train, y_train, C, params, max_iter)
        scores[C] = (torch.addmm(params[1], x_val, params[0]).argmax(1) == y_val).float().mean().item()
        if best is None or scores[C] > scores[best]:
            best, best_params = C, params
    if len(Cs) > 1 and (best == Cs[-1] or best == Cs[0] and scores[Cs[0]] > scores[Cs[1]]):  # still rising
        warnings.warn(f"the best C, {best:g}, is at the end of the grid {Cs[0]:g}..{Cs[-1]:g}; pass a wider Cs")
    return best, best_params, scores


def linear_probe(train_feats: Tensor, train_labels: Tensor, test_feats: Tensor, test_labels: Tensor,
                 C: Optional[float] = None, Cs: Optional[Sequence[float]] = None, val_fraction: float = 0.2,
                 seed: int = 0, max_iter: int = 1000, standardize: bool = False, val_feats: Optional[Tensor] = None,
                 val_labels: Optional[Tensor] = None) -> ProbeResult:
    """A linear probe: L2-regularised multinomial logistic regression on frozen features.

    Features: post-projection `model.encode_image` embeddings (E wide), as the OpenAI README's probe; the paper
    probed the pre-projection features. They are used as given (standardize=False, like the README's sklearn
    recipe); standardize=True rescales each feature to zero mean, unit variance on the training set first (the
    returned classifier includes that step and takes raw features).
    The fit minimises sklearn's LogisticRegression(C) objective by L-BFGS in float32 on the features' device (CPU
    or GPU), stopping where sklearn does or later (see _fit_logistic); its accuracy matches sklearn's within 0.5
    points (tests/test_probe.py).

    With C=None, C is swept over Cs (default DEFAULT_CS, small to large) on a validation split: val_feats and
    val_labels if given (a dataset's own validation split), else a seeded stratified val_fraction of the training
    set. Each fit starts from the previous C's solution (a warm start: a third fewer iterations), the best
    validation accuracy wins (ties: the smaller C), and the probe is refitted on training and validation examples
    together (the paper's protocol, Appendix A.3).

    Args: train_feats (B, D), train_labels (B,), test_feats (B', D), test_labels (B',), val_feats (B'', D) and
        val_labels (B'',) optional; labels are class ids >= 0, and every test class must occur in training.
        Features must be finite.
    Returns: ProbeResult(accuracy on the test set, C, classifier, sweep).
    """
    _check_pair(train_feats, train_labels, "train")
    _check_pair(test_feats, test_labels, "test")
    if (val_feats is None) != (val_labels is None):
        raise ValueError("pass val_feats and val_labels together (a validation split), or neither")
    n_train = len(train_labels)  # with a validation split: rows [0, n_train) train, the rest validate
    if val_feats is not None:
        _check_pair(val_feats, val_labels, "val")
        train_feats, train_labels = torch.cat([train_feats, val_feats.to(train_feats)]), torch.cat(
            [train_labels, val_labels.to(train_labels)])
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f"train_feats have D={train_feats.shape[1]} but test_feats D={test_feats.shape[1]}; "
                         "extract both with the same model")
    x = train_feats.float()
    classes, y = train_labels.unique(return_inverse=True)  # K labels seen in training; y in 0..K-1
    if len(classes) < 2:
        raise ValueError(f"the training set holds only class {classes.tolist()}; a classifier needs two or more")
    _check_seen(train_labels, test_labels)
    if standardize:
        mean, std = feature_stats(x)
        x = (x - mean) / std
    if C is not None and C <= 0:
        raise ValueError(f"C={C}; pass a positive inverse regularisation strength (e.g. 0.316) or C=None to sweep")
    init, sweep = (x.new_zeros(x.shape[1], len(classes)), x.new_zeros(len(classes))), {}
    with _one_thread_if_small(x, len(classes)):
        if C is None:
            if val_feats is not None:
                train, val = torch.arange(n_train), torch.arange(n_train, len(y))
            elif 0 < val_fraction < 1:
                train, val = stratified_split(y, val_fraction, seed)
            else:
                raise ValueError(f"val_fraction={val_fraction}; pass 0 < val_fraction < 1, or val_feats/val_labels")
            C, init, sweep = _sweep(x[train], y[train], x[val], y[val], sorted(DEFAULT_CS if Cs is None else Cs),
                                    init, max_iter)
        W, b = _fit_logistic(x, y, C, init, max_iter)
    if standardize:  # fold the scaling into the weights: ((x - mean) / std) W + b = x (W / std) + (b - (mean / std) W)
        W, b = W / std[:, None], b - (mean / std) @ W
    classifier = LinearClassifier(W, b, classes)
    accuracy = (classifier.predict(test_feats) == test_labels.to(classes.device)).float().mean().item()
    return ProbeResult(accuracy, float(C), classifier, sweep)


class LowShotCurve(NamedTuple):
    shots: list  # examples per class; "all" (None) becomes the training set's mean count per class
    mean: list  # mean test accuracy over trials, per shot
    std: list  # sample standard deviation over trials (0 for "all", a single fit)
    zeroshot: Optional[float]  # the zero-shot accuracy the curve is compared with
    crossover: Optional[float]  # shots at which the probe matches zero-shot (see `crossover`)


def crossover(shots: Sequence[float], accuracies: Sequence[float], zeroshot_accuracy: float) -> Optional[float]:
    """The smallest k at which the probe's accuracy reaches zero-shot's, interpolated linearly in log2(k).

    CLIP §3.1.5 reads "zero-shot matches 4-shot" off such a curve. Returns shots[0] if the first point is already
    at or above zero-shot, None if no point reaches it. shots ascending and positive.
    """
    if len(shots) != len(accuracies) or not shots:
        raise ValueError(f"{len(shots)} shots but {len(accuracies)} accuracies; pass one accuracy per shot")
    if any(k <= 0 for k in shots) or list(shots) != sorted(shots):
        raise ValueError(f"shots should be positive and ascending, got {list(shots)}")
    if accuracies[0] >= zeroshot_accuracy:
        return float(shots[0])
    for k0, k1, a0, a1 in zip(shots, shots[1:], accuracies, accuracies[1:]):
        if a0 < zeroshot_accuracy <= a1:
            x0, x1 = math.log2(k0), math.log2(k1)
            return 2 ** (x0 + (zeroshot_accuracy - a0) / (a1 - a0) * (x1 - x0))
    return None


def low_shot_curve(train_feats: Tensor, train_labels: Tensor, test_feats: Tensor, test_labels: Tensor,
                   shots: Sequence[Optional[int]] = (1, 2, 4, 8, 16, None), trials: int = 3, seed: int = 0,
                   zeroshot_accuracy: Optional[float] = None, C: Optional[float] = None) -> LowShotCurve:
    """Linear-probe accuracy against examples per class, with zero-shot as the reference line (CLIP Fig. 6-7).

    Each k-shot point fits `trials` probes on balanced k-shot samples (seeds seed, seed+1, ...) and reports the
    mean and std; None means the whole training set (one fit). With C=None the "all" point sweeps C on a
    validation split and the k-shot points use FEW_SHOT_C: a validation split is impossible at k=1, and a strongly
    regularised probe predicts almost like the class-mean (prototype) classifier, a good few-shot rule.

    Args: train_feats (B, D), train_labels (B,), test_feats (B', D), test_labels (B',).
    """
    if trials < 1:
        raise ValueError(f"trials={trials}; pass trials >= 1")
    _check_pair(train_feats, train_labels, "train")
    xs, means, stds = [], [], []
    for k in sorted(shots, key=lambda k: math.inf if k is None else k):
        if k is None:
            accs = [linear_probe(train_feats, train_labels, test_feats, test_labels, C=C, seed=seed).accuracy]
            xs.append(len(train_labels) / len(train_labels.unique()))
        else:
            accs = []
            for t in range(trials):
                idx = sample_k_shot(train_labels, k, seed + t)
                accs.append(linear_probe(train_feats[idx], train_labels[idx], test_feats, test_labels,
                                         C=FEW_SHOT_C if C is None else C).accuracy)
            xs.append(float(k))
        means.append(sum(accs) / len(accs))
        stds.append(torch.tensor(accs).std().item() if len(accs) > 1 else 0.0)
    cross = None if zeroshot_accuracy is None else crossover(xs, means, zeroshot_accuracy)
    return LowShotCurve(xs, means, stds, zeroshot_accuracy, cross)


def knn_accuracy(train_feats: Tensor, train_labels: Tensor, test_feats: Tensor, test_labels: Tensor,
                 k: int = 200, temperature: float = 0.1, batch_size: int = 1024) -> float:
    """Weighted kNN accuracy, as lightly's benchmarks (after Wu et al. 2018): the k most cosine-similar training
    features vote for their class with weight exp(sim / temperature), temperature > 0. temperature=math.inf gives a
    plain majority vote.

    Args: train_feats (B, D), train_labels (B,) in 0..K-1, test_feats (B', D), test_labels (B',) among the
        training classes.
    Returns: the fraction of test features whose top-scoring class is their label.
    """
    _check_pair(train_feats, train_labels, "train")
    _check_pair(test_feats, test_labels, "test")
    _check_seen(train_labels, test_labels)
    if k < 1:
        raise ValueError(f"k={k}; pass k >= 1 neighbours")
    if not temperature > 0:  # `not >` also catches NaN
        raise ValueError(f"temperature={temperature}; pass a positive temperature (lightly's benchmarks use 0.1), or "
                         "math.inf for a plain majority vote")
    bank = F.normalize(train_feats.float(), dim=1)  # (B, D)
    K = int(train_labels.max()) + 1
    correct = 0
    for query, y in zip(test_feats.split(batch_size), test_labels.split(batch_size)):
        sim = F.normalize(query.to(bank), dim=1) @ bank.T  # (B', B)
        top_sim, top_idx = sim.topk(min(k, len(bank)), dim=1)  # (B', k)
        votes = torch.zeros(len(query), K, device=bank.device)
        # Shifting by each row's top similarity scales its votes by one factor, so the winner is the same, and keeps
        # exp <= 1: unshifted, exp(1 / 0.01) already overflows float32 to inf and ties every class that has one.
        weights = ((top_sim - top_sim[:, :1]) / temperature).exp()  # (B', k)
        votes.scatter_add_(1, train_labels.to(bank.device)[top_idx], weights)  # (B', K)
        correct += int((votes.argmax(dim=1) == y.to(bank.device)).sum())
    return correct / len(test_labels)
