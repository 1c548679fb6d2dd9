"""Checks for notebooks/05_linear_probe_and_low_shot: balanced k-shot sampling, the zero-shot crossover, and a
logistic-regression probe written in torch.

Each check runs the student's function on hidden seeded cases and compares it with minclip/probe.py
(sample_k_shot, crossover, linear_probe).
"""
import math

import torch
import torch.nn.functional as F

from minclip.probe import crossover, linear_probe, sample_k_shot

from .core import ExerciseError, call, exercise, expect_close, hint, passed


def _labels(counts, seed: int) -> torch.Tensor:
    """Shuffled labels with counts[c] examples of class c."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


@exercise
def check_sample_k_shot(fn) -> None:
    """fn(labels (B,), k, seed) -> indices: exactly k distinct examples of every class, the same for the same seed,
    a ValueError when a class has fewer than k (minclip.probe.sample_k_shot's semantics)."""
    labels = _labels([7, 3, 12, 5, 9], seed=0)
    for k in (1, 3):
        got = call(fn, labels, k, 0, name="sample_k_shot")
        got = torch.as_tensor(got)
        if got.dtype.is_floating_point or got.ndim != 1:
            raise ExerciseError(f"sample_k_shot should return a 1-d tensor of integer indices, got {got.dtype} "
                                f"{tuple(got.shape)}")
        want = sample_k_shot(labels, k, 0)
        if got.shape != want.shape:
            raise ExerciseError(f"k={k} with 5 classes should give {len(want)} indices (k per class), got "
                                f"{len(got)}")
        if len(got.unique()) != len(got):
            raise ExerciseError(f"k={k}: some indices repeat; sample without replacement inside each class")
        if got.min() < 0 or got.max() >= len(labels):
            raise ExerciseError(f"indices run over {int(got.min())}..{int(got.max())}; they must index labels "
                                f"(0..{len(labels) - 1})")
        per_class = torch.bincount(labels[got], minlength=5)
        if not (per_class == k).all():
            raise ExerciseError(f"k={k}: classes got {per_class.tolist()} examples; every class needs exactly k")
        if not torch.equal(torch.as_tensor(call(fn, labels, k, 0, name="sample_k_shot")), got):
            raise ExerciseError("the same seed gave different indices; draw every random number from a "
                                "torch.Generator().manual_seed(seed), never from the global RNG")
    # Random, not the first k of each class: over 40 seeds every example of a small class should come up.
    chosen = torch.zeros(len(labels), dtype=torch.bool)
    for seed in range(40):
        chosen[torch.as_tensor(call(fn, labels, 1, seed, name="sample_k_shot"))] = True
    if not chosen[labels == 1].all():
        raise ExerciseError("over 40 seeds, some examples of a 3-example class were never drawn at k=1; choose the "
                            "k examples at random within each class (e.g. a seeded torch.randperm)")
    try:
        call(fn, labels, 4, 0, name="sample_k_shot")
    except ExerciseError as error:
        if not isinstance(error.__cause__, ValueError):
            raise
    else:
        raise ExerciseError("k=4 but class 1 has only 3 examples: raise a ValueError that says so (as "
                            "minclip.probe.sample_k_shot does) instead of returning fewer or repeated examples")
    passed("sample_k_shot", "k per class, seeded, random within each class")


def _last_crossing(shots, accuracies, zeroshot_accuracy):
    """The mistake to recognise: interpolate in the last segment where the curve rises through zero-shot."""
    last = None
    for k0, k1, a0, a1 in zip(shots, shots[1:], accuracies, accuracies[1:]):
        if a0 < zeroshot_accuracy <= a1:
            t = (zeroshot_accuracy - a0) / (a1 - a0)
            last = 2 ** (math.log2(k0) + t * (math.log2(k1) - math.log2(k0)))
    return last


@exercise
def check_crossover(fn) -> None:
    """fn(shots, accuracies, zeroshot_accuracy) -> the interpolated k where the probe reaches zero-shot, or None."""
    shots = [1, 2, 4, 8, 16, 50]
    cases = [([0.3, 0.45, 0.6, 0.7, 0.8, 0.9], 0.65),  # between 4 and 8
             ([0.3, 0.45, 0.6, 0.7, 0.8, 0.9], 0.45),  # exactly on a point
             ([0.7, 0.75, 0.8, 0.85, 0.9, 0.95], 0.5),  # the first point is already above zero-shot
             ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 0.9),  # never reached
             ([0.3, 0.6, 0.5, 0.7, 0.8, 0.9], 0.55)]  # crosses at 1-2, falls back, crosses again: the first counts
    for accs, zs in cases:
        want = crossover(shots, accs, zs)
        got = call(fn, shots, accs, zs, name="crossover")
        where = f"shots {shots}, accuracies {accs}, zero-shot {zs}"
        if want is None:
            if got is not None:
                raise ExerciseError(f"{where}: no point reaches zero-shot, so return None (got {got})")
            continue
        if got is None:
            raise ExerciseError(f"{where}: expected about {want:.3g} shots, got None")
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise ExerciseError(f"crossover should return a number of shots (a float) or None, got "
                                f"{type(got).__name__}") from None
        last = _last_crossing(shots, accs, zs)
        if last is not None and abs(last - want) > 1e-6 and abs(got - last) < 1e-6 * last:
            raise ExerciseError(f"{where}: {got:.3g} is where the curve reaches zero-shot the last time; it first "
                                f"reaches it at {want:.3g} shots, and the question is how many labelled examples a "
                                f"probe needs to match zero-shot: stop at the first crossing")
        expect_close(got, want, f"crossover for {where}",
                     hint("the crossover is the first place where the probe's curve reaches the zero-shot line.",
                          "Walk the segments in order of k; in the first segment that brackets zero-shot, "
                          "interpolate linearly in log2(k), not in k; return shots[0] if the curve starts at or "
                          "above it.",
                          "for the first (k0, k1) with acc(k0) < zs <= acc(k1): t = (zs − acc(k0)) / "
                          "(acc(k1) − acc(k0)); return 2 ** (log2 k0 + t (log2 k1 − log2 k0))"))
    passed("crossover", "matches minclip.probe.crossover")


def _blobs(n_per_class: int, K: int, D: int, noise_seed: int):
    """Overlapping Gaussian classes (the same K centres for every noise_seed), L2-normalised like CLIP features:
    (K*n, D) features and (K*n,) labels."""
    centres = torch.randn(K, D, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(K).repeat_interleave(n_per_class)
    noise = torch.randn(len(labels), D, generator=torch.Generator().manual_seed(noise_seed))
    return F.normalize(centres[labels] + 1.5 * noise, dim=1), labels


@exercise
def check_logistic_probe(fn) -> None:
    """fn(feats (B, D), labels (B,), C) -> (W (D, K), b (K,)): sklearn's LogisticRegression(C) objective,
    C * sum(CE) + 0.5 * ||W||^2, minimised; its test accuracy must be within 2 points of minclip.probe.linear_probe."""
    train_x, train_y = _blobs(60, K=5, D=16, noise_seed=1)
    test_x, test_y = _blobs(100, K=5, D=16, noise_seed=2)
    for C in (0.316, 10.0):
        out = call(fn, train_x, train_y, C, name="logistic_probe")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ExerciseError(f"logistic_probe should return (W, b), got {type(out).__name__}")
        W, b = (torch.as_tensor(t).detach().float() for t in out)
        if W.shape != (16, 5) or b.shape != (5,):
            raise ExerciseError(f"expected W (D, K) = (16, 5) and b (K,) = (5,), got {tuple(W.shape)} and "
                                f"{tuple(b.shape)}")
        if not (torch.isfinite(W).all() and torch.isfinite(b).all()):
            raise ExerciseError(f"C={C}: W or b holds NaN or inf; lower the learning rate or use torch.optim.LBFGS")
        got = ((test_x @ W + b).argmax(1) == test_y).float().mean().item()
        ref = linear_probe(train_x, train_y, test_x, test_y, C=C)
        if abs(got - ref.accuracy) > 0.02:
            lam = 1 / (C * len(train_x))
            raise ExerciseError(f"C={C}: test accuracy {got:.1%}, but minclip's probe gets {ref.accuracy:.1%}. "
                                f"Minimise mean cross-entropy + 0.5 * lam * ||W||^2 with lam = 1 / (C * n) = "
                                f"{lam:.3g} (the bias is not penalised), to convergence")
        # The objective too, not only the accuracy: a weaker fit can predict the same labels.
        lam = 1 / (C * len(train_x))
        objective = lambda W, b: F.cross_entropy(train_x @ W + b, train_y).item() + 0.5 * lam * W.square().sum().item()
        mine = objective(ref.classifier.weight, ref.classifier.bias)
        if objective(W, b) > mine + max(1e-3, 1e-2 * abs(mine)):
            raise ExerciseError(f"C={C}: your objective is {objective(W, b):.4f}, minclip reaches {mine:.4f}; "
                                "optimise longer (more steps, or torch.optim.LBFGS) or check the penalty's scale")
    passed("logistic_probe", "same accuracy and objective as minclip.probe.linear_probe")

