"""Tests for minclip/robustness.py: the logit-space line fit, effective robustness, and per-domain accuracy."""
import math

import pytest
import torch

from minclip.robustness import (EPS, RobustnessLine, domain_accuracies, effective_robustness, fit_robustness_line,
                                id_and_shifted)


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def logit(p):
    return math.log(p / (1 - p))


def test_fit_recovers_a_known_line():
    slope, intercept = 0.8, -0.6
    id_acc = [0.3, 0.45, 0.6, 0.72, 0.85, 0.93]
    ood_acc = [sigmoid(slope * logit(a) + intercept) for a in id_acc]
    line = fit_robustness_line(id_acc, ood_acc)
    assert line.slope == pytest.approx(slope, abs=1e-9) and line.intercept == pytest.approx(intercept, abs=1e-9)
    assert line.predict(0.5) == pytest.approx(sigmoid(intercept))
    assert effective_robustness(line, 0.72, ood_acc[3]) == pytest.approx(0.0, abs=1e-12)
    above = sigmoid(slope * logit(0.72) + intercept) + 0.15
    assert effective_robustness(line, 0.72, above) == pytest.approx(0.15)


def test_fit_is_least_squares_in_logit_space():
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(-2, 2, 12, dtype=torch.float64)
    y = 0.5 * x - 1 + 0.2 * torch.randn(12, generator=g, dtype=torch.float64)
    line = fit_robustness_line(torch.sigmoid(x).tolist(), torch.sigmoid(y).tolist())
    A = torch.stack([x, torch.ones_like(x)], dim=1)
    expected = torch.linalg.lstsq(A, y[:, None]).solution.flatten()
    assert line.slope == pytest.approx(expected[0].item()) and line.intercept == pytest.approx(expected[1].item())


def test_accuracies_of_0_and_1_are_clipped_not_infinite():
    line = fit_robustness_line([0.0, 0.5, 1.0], [0.0, 0.5, 1.0])
    assert line.slope == pytest.approx(1.0) and line.intercept == pytest.approx(0.0, abs=1e-12)
    assert line.predict(1.0) == pytest.approx(1 - EPS)
    assert math.isfinite(RobustnessLine(1.0, 0.0).predict(0.0))


def test_fit_errors():
    with pytest.raises(ValueError, match="one pair per model"):
        fit_robustness_line([0.5, 0.6], [0.4])
    with pytest.raises(ValueError, match="at least two models"):
        fit_robustness_line([0.5, 0.5], [0.4, 0.3])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 93.0, -0.1])
def test_accuracies_that_are_not_fractions_are_refused(bad):
    # logit() clips to [EPS, 1 - EPS], so a percentage passed as 93.0 used to count as 99.9%, and a NaN gave a NaN line
    with pytest.raises(ValueError, match=r"id_acc\[1\] is .*fractions in \[0, 1\] \(divide a percentage by 100"):
        fit_robustness_line([0.5, bad, 0.7], [0.4, 0.5, 0.6])
    with pytest.raises(ValueError, match=r"ood_acc\[2\] is "):
        fit_robustness_line([0.5, 0.6, 0.7], [0.4, 0.5, bad])
    line = RobustnessLine(1.0, 0.0)
    with pytest.raises(ValueError, match="id_acc is .*fractions"):
        effective_robustness(line, bad, 0.5)
    with pytest.raises(ValueError, match="ood_acc is .*fractions"):
        effective_robustness(line, 0.5, bad)
    with pytest.raises(ValueError, match="id_acc is .*fractions"):
        line.predict(bad)


def test_one_model_is_not_a_line():
    with pytest.raises(ValueError, match="at least two models"):
        fit_robustness_line([0.7], [0.5])
    with pytest.raises(ValueError, match="at least two models"):
        fit_robustness_line([], [])


class FakeWorld:
    """Images carry their label in pixel (0, 0, 0); the 'noisy' domain corrupts every other label."""
    domains = ["photo", "noisy"]

    def classification(self, task, split="test", domain="photo", n=1000, seed=0):
        g = torch.Generator().manual_seed(seed)
        labels = torch.randint(0, 4, (n,), generator=g)
        images = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
        images[:, 0, 0, 0] = labels
        if domain == "noisy":
            images[::2, 0, 0, 0] = (labels[::2] + 1) % 4
        return images, labels, ["a", "b", "c", "d"]


def test_domain_accuracies_on_a_fake_world():
    def read_pixel(images):
        return images[:, 0, 0, 0].long()

    out = domain_accuracies(read_pixel, FakeWorld(), n=100)
    assert out == {"photo": 1.0, "noisy": 0.5}
    assert domain_accuracies(read_pixel, FakeWorld(), domains=["noisy"], n=10) == {"noisy": 0.5}
    with pytest.raises(ValueError, match="unknown domains"):
        domain_accuracies(read_pixel, FakeWorld(), domains=["sketch"])
    with pytest.raises(ValueError, match="one label per image"):
        domain_accuracies(lambda images: torch.zeros(3), FakeWorld(), n=10)


@pytest.mark.slow
def test_domain_accuracies_on_shapeworld():
    from minclip.data import ShapeWorld

    world = ShapeWorld(seed=0)
    out = domain_accuracies(lambda images: torch.zeros(len(images), dtype=torch.long), world, task="shape", n=64)
    assert list(out) == list(world.domains)
    _, labels, _ = world.classification("shape", split="test", domain="photo", n=64, seed=0)
    assert all(v == pytest.approx((labels == 0).float().mean().item()) for v in out.values())  # same labels
    with pytest.raises(ValueError, match="task"):
        domain_accuracies(lambda images: images, world, task="no_such_task", n=8)


def test_shifted_is_the_mean_over_every_domain_but_photo_grayscale_included():
    accs = {"photo": 0.9, "sketch": 0.5, "cartoon": 0.6, "grayscale": 0.1}
    assert id_and_shifted(accs) == (0.9, pytest.approx((0.5 + 0.6 + 0.1) / 3))
    with pytest.raises(ValueError, match="need the accuracy on 'photo'"):
        id_and_shifted({"sketch": 0.5, "cartoon": 0.6})
    with pytest.raises(ValueError, match="at least one other domain"):
        id_and_shifted({"photo": 0.9})
