"""Checks for notebooks/06_robustness: the logit-space line fit, effective robustness, and the share of the
robustness gap a model closes (CLIP §3.3, Fig. 13; Taori et al. 2020).

Each check runs the student's function on hidden seeded cases and compares it with minclip/robustness.py
(logit, fit_robustness_line, RobustnessLine.predict, effective_robustness).
"""
import torch

from minclip.robustness import RobustnessLine, effective_robustness, fit_robustness_line

from .core import ExerciseError, call, exercise, expect_close, passed


def _family(seed: int, n: int = 6):
    """Accuracies of a made-up family of supervised models: (id_acc list, ood_acc list), a noisy logit-linear trend."""
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(-1.0, 3.0, n) + 0.2 * torch.rand(n, generator=g)  # logit(id)
    y = 0.8 * x - 1.2 + 0.15 * torch.randn(n, generator=g)  # logit(ood)
    return torch.sigmoid(x).tolist(), torch.sigmoid(y).tolist()


@exercise
def check_fit_logit_line(fn) -> None:
    """fn(id_acc, ood_acc) -> (slope, intercept) of the least-squares line logit(ood) = slope * logit(id) + intercept,
    accuracies clipped to [1e-3, 1 - 1e-3] before the logit (minclip.robustness.fit_robustness_line)."""
    cases = [_family(seed) for seed in range(3)]
    cases.append(([0.5, 0.9, 0.99, 1.0], [0.2, 0.5, 0.8, 0.95]))  # 100% must stay finite: clip before the logit
    for id_acc, ood_acc in cases:
        got = call(fn, list(id_acc), list(ood_acc), name="fit_logit_line")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise ExerciseError(f"fit_logit_line should return (slope, intercept), got {got!r}")
        want = fit_robustness_line(id_acc, ood_acc)
        why = ("take logit(p) = log(p / (1 - p)) of both accuracies (clip p to [1e-3, 1 - 1e-3] first, or 100% "
               "becomes infinite), then fit y = slope * x + intercept by least squares: "
               "slope = cov(x, y) / var(x), intercept = mean(y) - slope * mean(x)")
        expect_close(torch.tensor([float(g) for g in got]), torch.tensor([want.slope, want.intercept]),
                     f"(slope, intercept) for id {[round(a, 3) for a in id_acc]}", why)
    passed("fit_logit_line", "matches minclip.robustness.fit_robustness_line")


@exercise
def check_effective_robustness(fn) -> None:
    """fn(slope, intercept, id_acc, ood_acc) -> ood_acc minus the shifted accuracy the line predicts at id_acc."""
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        slope, intercept = 0.5 + torch.rand(1, generator=g).item(), torch.randn(1, generator=g).item()
        id_acc, ood_acc = (0.05 + 0.9 * torch.rand(2, generator=g)).tolist()
        got = call(fn, slope, intercept, id_acc, ood_acc, name="effective_robustness")
        want = effective_robustness(RobustnessLine(slope, intercept), id_acc, ood_acc)
        expect_close(torch.tensor(float(got)), torch.tensor(want),
                     f"effective robustness at id {id_acc:.3f}, ood {ood_acc:.3f}, line ({slope:.2f}, {intercept:.2f})",
                     "predict the shifted accuracy from the line, which lives in logit space, map it back to an "
                     "accuracy with the sigmoid, and subtract it from ood_acc; in accuracy "
                     "units (not logits)")
    passed("effective_robustness", "matches minclip.robustness.effective_robustness")


@exercise
def check_gap_closed(fn) -> None:
    """fn(slope, intercept, id_acc, ood_acc) -> the share of the robustness gap closed:
    (ood - line(id)) / (id - line(id)); 0 on the line, 1 on y = x (a perfectly robust model)."""
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        line = RobustnessLine(0.6 + 0.4 * torch.rand(1, generator=g).item(), -1.0 - torch.rand(1, generator=g).item())
        id_acc = 0.3 + 0.6 * torch.rand(1, generator=g).item()
        predicted = line.predict(id_acc)
        ood_acc = predicted + (id_acc - predicted) * torch.rand(1, generator=g).item()
        got = call(fn, line.slope, line.intercept, id_acc, ood_acc, name="gap_closed")
        want = (ood_acc - predicted) / (id_acc - predicted)
        expect_close(torch.tensor(float(got)), torch.tensor(want), f"gap closed at id {id_acc:.3f}, ood {ood_acc:.3f}",
                     "the gap is what the line loses, id_acc - line(id_acc); the model recovers ood_acc - line(id_acc) "
                     "of it (its effective robustness); divide the second by the first")
    passed("gap_closed", "the paper's 'closes up to 75% of the robustness gap', measured")
