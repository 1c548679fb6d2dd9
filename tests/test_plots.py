"""Tests for minclip/plots.py: every figure draws on small inputs, returns a Figure, and labels its axes."""
import io

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from minclip import plots  # noqa: E402
from minclip.probe import LowShotCurve  # noqa: E402
from minclip.robustness import fit_robustness_line  # noqa: E402


def renders(fig):
    assert isinstance(fig, Figure)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")


def labelled(ax):
    return bool(ax.get_xlabel()) and bool(ax.get_ylabel())


@pytest.fixture
def images(gen):
    return torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=gen)


def test_similarity_matrix_with_captions_and_images(images, gen):
    sim = torch.rand(5, 5, generator=gen)
    fig = plots.similarity_matrix(sim, captions=[f"caption {i}" for i in range(5)], images=images)
    renders(fig)
    ax = fig.axes[0]
    assert labelled(ax) and [t.get_text() for t in ax.get_yticklabels()][:2] == ["caption 0", "caption 1"]
    renders(plots.similarity_matrix(torch.rand(3, 4, generator=gen)))  # no captions, no images, not square


def test_zeroshot_predictions_marks_the_true_class(images, gen):
    probs = torch.rand(5, 6, generator=gen).softmax(dim=1)
    fig = plots.zeroshot_predictions(images, probs, [f"class {k}" for k in range(6)], labels=probs.argmax(1), top=3)
    renders(fig)
    bars = [ax for ax in fig.axes if ax.patches]
    assert len(bars) == 5 and all(ax.get_xlabel() == "probability" for ax in bars)
    top_bar = max(bars[0].patches, key=lambda p: p.get_width())
    assert top_bar.get_facecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb("tab:green"))


def test_low_shot_curve_with_zeroshot_line_and_crossover():
    curve = LowShotCurve([1.0, 2.0, 4.0, 8.0, 16.0, 100.0], [0.2, 0.35, 0.5, 0.6, 0.7, 0.8], [0.05] * 5 + [0.0],
                         0.55, 5.66)
    fig = plots.low_shot_curve(curve)
    renders(fig)
    ax = fig.axes[0]
    assert labelled(ax) and ax.get_xscale() == "log"
    assert any("crossover" in t.get_text() for t in ax.get_legend().get_texts())
    renders(plots.low_shot_curve(curve._replace(zeroshot=None, crossover=None)))


def test_robustness_scatter_on_logit_axes():
    points = {"resnet-s": (0.6, 0.3), "resnet-m": (0.75, 0.42), "resnet-l": (0.85, 0.55), "clip": (0.8, 0.7)}
    line = fit_robustness_line([v[0] for k, v in points.items() if k != "clip"],
                               [v[1] for k, v in points.items() if k != "clip"])
    fig = plots.robustness_scatter(points, line)
    renders(fig)
    ax = fig.axes[0]
    assert labelled(ax) and ax.get_xscale() == ax.get_yscale() == "logit"
    assert len(ax.lines) == 2 and {t.get_text() for t in ax.texts} == set(points)
    renders(plots.robustness_scatter({"perfect": (1.0, 1.0), "chance": (0.0, 0.1)}))


def test_prompt_ablation_bars():
    fig = plots.prompt_ablation({"class name": 0.61, "one template": 0.66, "ensemble": 0.7})
    renders(fig)
    ax = fig.axes[0]
    assert labelled(ax) and len(ax.patches) == 3
    assert [round(p.get_height(), 2) for p in ax.patches] == [0.61, 0.66, 0.7]
