"""Tests for minclip/probe.py: parity with sklearn's LogisticRegression, k-shot sampling, crossover, kNN vs lightly."""
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from minclip.probe import (DEFAULT_CS, crossover, knn_accuracy, linear_probe, low_shot_curve, sample_k_shot,
                           stratified_split)


def blobs(n, d, k, spread, seed, normalize=False):
    """Gaussian class clusters, overlapping enough that C matters; optionally L2-normalised like encode_image."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * spread
    y = torch.randint(0, k, (n,), generator=g)
    x = centers[y] + torch.randn(n, d, generator=g)
    return (F.normalize(x, dim=1) if normalize else x), y


def sklearn_accuracy(model, x, y, xt, yt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning at max_iter is part of what we compare with
        model.fit(x.numpy(), y.numpy())
    return float((model.predict(xt.numpy()) == yt.numpy()).mean())


@pytest.mark.parametrize("n, d, k, spread, C", [(600, 32, 5, 0.5, 0.316), (900, 48, 8, 0.4, 3.16)])
def test_parity_with_sklearn_same_C(n, d, k, spread, C):
    x, y = blobs(n, d, k, spread, seed=1)
    m = n * 3 // 4
    ours = linear_probe(x[:m], y[:m], x[m:], y[m:], C=C)
    theirs = sklearn_accuracy(LogisticRegression(C=C, max_iter=1000), x[:m], y[:m], x[m:], y[m:])
    assert abs(ours.accuracy - theirs) <= 0.005
    assert ours.C == C and ours.sweep == {}
    assert ours.classifier.weight.shape == (d, k) and ours.classifier.bias.shape == (k,)


def test_parity_on_unit_norm_features_with_the_converged_optimum():
    # On L2-normalised features sklearn's default tol=1e-4 stops early (the gradient starts near 1e-3); we stop
    # later, so the oracle is sklearn run to convergence.
    x, y = blobs(1000, 64, 10, 0.25, seed=2, normalize=True)
    ours = linear_probe(x[:750], y[:750], x[750:], y[750:], C=10.0)
    theirs = sklearn_accuracy(LogisticRegression(C=10.0, tol=1e-6, max_iter=5000), x[:750], y[:750], x[750:], y[750:])
    assert abs(ours.accuracy - theirs) <= 0.005


def test_standardize_matches_sklearn_pipeline_and_takes_raw_features():
    x, y = blobs(600, 24, 4, 0.5, seed=3)
    x = x * torch.linspace(0.1, 10, 24) + 3.0  # badly scaled features
    ours = linear_probe(x[:450], y[:450], x[450:], y[450:], C=0.316, standardize=True)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.316, max_iter=1000))
    assert abs(ours.accuracy - sklearn_accuracy(pipe, x[:450], y[:450], x[450:], y[450:])) <= 0.005
    manual = (ours.classifier.predict(x[450:]) == y[450:]).float().mean().item()
    assert manual == pytest.approx(ours.accuracy)


@pytest.mark.slow
def test_sweep_picks_the_best_validation_C_and_refits():
    x, y = blobs(800, 32, 6, 0.4, seed=4)
    r = linear_probe(x[:600], y[:600], x[600:], y[600:])
    assert list(r.sweep) == sorted(DEFAULT_CS) and len(r.sweep) >= 8
    best = max(r.sweep.values())
    assert r.sweep[r.C] == best and all(v < best for c, v in r.sweep.items() if c < r.C)  # ties go to smaller C
    refit = linear_probe(x[:600], y[:600], x[600:], y[600:], C=r.C)  # the same fit from a cold start
    assert abs(refit.accuracy - r.accuracy) <= 0.01
    assert 0.0 <= r.accuracy <= 1.0
    with pytest.warns(UserWarning, match="end of the grid"):  # accuracy still rising at the largest C
        linear_probe(x[:600], y[:600], x[600:], y[600:], Cs=[1e-4, 1e-3, 1e-2])


def test_a_given_validation_split_chooses_C_and_joins_the_refit():
    x, y = blobs(800, 32, 6, 0.4, seed=4)
    r = linear_probe(x[:400], y[:400], x[600:], y[600:], val_feats=x[400:600], val_labels=y[400:600],
                     Cs=[0.01, 0.1, 1.0, 10.0])
    for C in r.sweep:  # each C scored on the given validation split, fitted on the training split only
        fit = linear_probe(x[:400], y[:400], x[400:600], y[400:600], C=C)
        assert abs(r.sweep[C] - fit.accuracy) <= 0.015  # 3 of 200: the sweep's fits are warm-started, these cold
    joined = linear_probe(x[:600], y[:600], x[600:], y[600:], C=r.C)  # the refit: training + validation
    assert abs(joined.accuracy - r.accuracy) <= 0.005
    with pytest.raises(ValueError, match="val_feats and val_labels together"):
        linear_probe(x[:400], y[:400], x[600:], y[600:], val_feats=x[400:600])


def test_labels_need_not_be_contiguous():
    x, y = blobs(400, 16, 4, 0.6, seed=5)
    plain = linear_probe(x[:300], y[:300], x[300:], y[300:], C=1.0)
    odd = linear_probe(x[:300], 10 * y[:300] + 7, x[300:], 10 * y[300:] + 7, C=1.0)
    assert odd.classifier.classes.tolist() == [7, 17, 27, 37]
    assert odd.accuracy == plain.accuracy
    assert set(odd.classifier.predict(x[300:]).tolist()) <= {7, 17, 27, 37}


def test_sample_k_shot_balanced_and_deterministic():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 7, (300,), generator=g)
    idx = sample_k_shot(labels, 4, seed=1)
    assert torch.equal(torch.bincount(labels[idx], minlength=7), torch.full((7,), 4))
    assert len(set(idx.tolist())) == 28 and torch.equal(idx, idx.sort().values)
    assert torch.equal(idx, sample_k_shot(labels, 4, seed=1))
    assert not torch.equal(idx, sample_k_shot(labels, 4, seed=2))
    with pytest.raises(ValueError, match="fewer than k=1000"):
        sample_k_shot(labels, 1000, seed=0)


def test_stratified_split_holds_out_each_class_in_proportion():
    labels = torch.arange(5).repeat_interleave(torch.tensor([10, 20, 30, 1, 40]))
    train, val = stratified_split(labels, 0.2, seed=0)
    assert sorted(train.tolist() + val.tolist()) == list(range(101))
    assert torch.bincount(labels[val], minlength=5).tolist() == [2, 4, 6, 0, 8]  # the single example stays in train
    assert torch.equal(val, stratified_split(labels, 0.2, seed=0)[1])


def test_crossover_on_synthetic_curves():
    shots, accs = [1, 2, 4, 8, 16], [0.2, 0.4, 0.6, 0.8, 0.9]
    assert crossover(shots, accs, 0.5) == pytest.approx(2 ** 1.5)  # halfway between 2 and 4 in log2(k)
    assert crossover(shots, accs, 0.6) == pytest.approx(4.0)  # exactly on a point
    assert crossover(shots, accs, 0.85) == pytest.approx(2 ** 3.5)
    assert crossover(shots, accs, 0.1) == 1.0  # the first point already beats zero-shot
    assert crossover(shots, accs, 0.95) is None  # never reached
    assert crossover([1, 2, 4], [0.3, 0.2, 0.5], 0.4) == pytest.approx(2 ** (1 + 2 / 3))  # first upward crossing
    with pytest.raises(ValueError, match="ascending"):
        crossover([4, 2], [0.1, 0.2], 0.15)


@pytest.mark.slow
def test_low_shot_curve_shapes_means_and_crossover():
    x, y = blobs(900, 24, 5, 0.6, seed=6)
    curve = low_shot_curve(x[:600], y[:600], x[600:], y[600:], shots=(None, 1, 4), trials=3, seed=0,
                           zeroshot_accuracy=0.5)
    assert curve.shots[:2] == [1.0, 4.0] and curve.shots[2] == pytest.approx(600 / 5)
    assert len(curve.mean) == len(curve.std) == 3 and curve.std[2] == 0.0
    manual = [linear_probe(x[:600][i], y[:600][i], x[600:], y[600:], C=0.316).accuracy
              for i in (sample_k_shot(y[:600], 1, s) for s in range(3))]
    assert curve.mean[0] == pytest.approx(sum(manual) / 3)
    assert curve.std[0] == pytest.approx(torch.tensor(manual).std().item())
    assert curve.mean[2] > curve.mean[0]
    assert curve.crossover == crossover(curve.shots, curve.mean, 0.5)


def knn_reference(bank, bank_labels, queries, k, temperature, K):
    """One query at a time, as written in Wu et al. 2018."""
    bank = F.normalize(bank, dim=1)
    preds = []
    for q in F.normalize(queries, dim=1):
        sim = bank @ q
        nearest = sim.argsort(descending=True)[:k]
        scores = [sum(math.exp(sim[i] / temperature) for i in nearest if bank_labels[i] == c) for c in range(K)]
        preds.append(max(range(K), key=lambda c: scores[c]))
    return torch.tensor(preds)


def test_knn_matches_reference_lightly_and_sklearn():
    from lightly.utils.benchmarking import knn_predict

    x, y = blobs(260, 12, 4, 0.7, seed=7)
    bank, labels, queries, truth = x[:200], y[:200], x[200:], y[200:]
    ref = knn_reference(bank, labels, queries, k=20, temperature=0.1, K=4)
    assert knn_accuracy(bank, labels, queries, truth, k=20, temperature=0.1, batch_size=7) == pytest.approx(
        (ref == truth).float().mean().item())
    lightly_pred = knn_predict(F.normalize(queries, dim=1), F.normalize(bank, dim=1).T, labels, 4, 200, 0.1)[:, 0]
    assert knn_accuracy(bank, labels, queries, truth) == pytest.approx((lightly_pred == truth).float().mean().item())
    sk = KNeighborsClassifier(n_neighbors=15, metric="cosine", algorithm="brute").fit(bank.numpy(), labels.numpy())
    sk_acc = float((sk.predict(queries.numpy()) == truth.numpy()).mean())
    assert knn_accuracy(bank, labels, queries, truth, k=15, temperature=math.inf) == pytest.approx(sk_acc)


def test_bad_inputs_have_clear_errors():
    x, y = blobs(100, 8, 3, 0.5, seed=8)
    with pytest.raises(ValueError, match="one label per feature row"):
        linear_probe(x, y[:90], x, y, C=1.0)
    with pytest.raises(ValueError, match="same model"):
        linear_probe(x, y, x[:, :4], y, C=1.0)
    with pytest.raises(ValueError, match="two or more"):
        linear_probe(x, torch.zeros(100, dtype=torch.long), x, y, C=1.0)
    with pytest.raises(ValueError, match="integer class ids"):
        linear_probe(x, y.float(), x, y, C=1.0)
    with pytest.raises(ValueError, match="positive"):
        linear_probe(x, y, x, y, C=0.0)
    with pytest.raises(ValueError, match="validation split is empty"):
        linear_probe(x[:3], torch.arange(3), x, y)
    with pytest.raises(ValueError, match="one label per feature row"):
        knn_accuracy(x, y, x, y[:5])


def with_nan_rows(x, rows):
    x = x.clone()
    x[rows] = float("nan")
    return x


def test_non_finite_features_are_refused_by_every_readout():
    x, y = blobs(120, 8, 3, 0.5, seed=9)
    bad_train, bad_test = with_nan_rows(x[:90], [4, 7]), with_nan_rows(x[90:], [0])
    for fn in (lambda *a: linear_probe(*a, C=1.0), knn_accuracy,
               lambda *a: low_shot_curve(*a, shots=(1,), trials=1, C=1.0)):
        with pytest.raises(ValueError, match=r"train_feats: 2 of 90 rows hold NaN or inf .*row 4\).*diverged"):
            fn(bad_train, y[:90], x[90:], y[90:])
        with pytest.raises(ValueError, match=r"test_feats: 1 of 30 rows hold NaN or inf"):
            fn(x[:90], y[:90], bad_test, y[90:])
    inf_feats = x[:90].clone()
    inf_feats[3, 2] = float("inf")
    with pytest.raises(ValueError, match="1 of 90 rows"):
        linear_probe(inf_feats, y[:90], x[90:], y[90:], C=1.0)


def test_labels_out_of_range_are_refused():
    x, y = blobs(120, 8, 3, 0.5, seed=10)
    unlabelled = y[:90].clone()
    unlabelled[[5, 6]] = -1  # -1: "no label" in many datasets
    for fn in (lambda *a: linear_probe(*a, C=1.0), knn_accuracy):
        with pytest.raises(ValueError, match=r"train_labels has 2 negative labels \(the first: -1 at row 5\)"):
            fn(x[:90], unlabelled, x[90:], y[90:])
        with pytest.raises(ValueError, match="test_labels has 1 negative"):
            fn(x[:90], y[:90], x[90:], torch.cat([y[90:119], torch.tensor([-3])]))
        # class 3 never occurs in training: the probe could never predict it, so each of its examples is an error
        with pytest.raises(ValueError, match=r"test_labels hold classes that train_labels lack: \[3\]"):
            fn(x[:90], y[:90], x[90:], torch.cat([y[90:110], torch.full((10,), 3)]))
    with pytest.raises(ValueError, match="classes that train_labels lack"):
        low_shot_curve(x[:90], y[:90], x[90:], y[90:] + 10, shots=(1,), trials=1, C=1.0)
    with pytest.raises(ValueError, match="test_feats is empty"):
        linear_probe(x[:90], y[:90], x[:0], y[:0], C=1.0)  # used to give accuracy NaN


@pytest.mark.parametrize("temperature", [0.0, -0.1, float("nan")])
def test_knn_refuses_a_temperature_that_is_not_positive(temperature):
    x, y = blobs(60, 8, 3, 0.5, seed=11)
    with pytest.raises(ValueError, match=r"pass a positive temperature .* or math\.inf for a plain majority vote"):
        knn_accuracy(x[:40], y[:40], x[40:], y[40:], k=5, temperature=temperature)


def test_knn_at_a_small_temperature_does_not_overflow():
    # exp(sim / 0.005) reaches e^200, inf in float32: without the max-shift every class with an inf vote ties
    x, y = blobs(260, 12, 4, 0.7, seed=7)
    ref = knn_reference(x[:200].double(), y[:200], x[200:].double(), k=20, temperature=0.005, K=4)  # e^200 fits
    assert knn_accuracy(x[:200], y[:200], x[200:], y[200:], k=20, temperature=0.005) == pytest.approx(
        (ref == y[200:]).float().mean().item())
