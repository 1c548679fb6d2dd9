"""The evaluation figures: similarity matrix, zero-shot predictions, low-shot curve, robustness scatter, prompts,
suite bars.

Each function returns a matplotlib Figure built without pyplot (no global state, no double display in Jupyter,
no plt.show); save it with `fig.savefig(path)`. seaborn supplies the styling.
"""
import math
from pathlib import Path
from typing import Optional, Sequence

import seaborn as sns
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from torch import Tensor

from minclip.data import ShapeWorld
from minclip.probe import LowShotCurve
from minclip.robustness import EPS, RobustnessLine
from minclip.zeroshot import image_features, zeroshot_classifier

STYLE = "whitegrid"
LOGIT_TICKS = (0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99, 0.999)


def _hwc(image: Tensor):
    """(3, H, W) uint8 -> (H, W, 3) numpy, as imshow wants it."""
    return image.permute(1, 2, 0).cpu().numpy()


def similarity_matrix(sim: Tensor, captions: Optional[Sequence[str]] = None,
                      images: Optional[Tensor] = None) -> Figure:
    """Cosine similarity of every image (columns) with every caption (rows), as in OpenAI's CLIP notebook.

    Args: sim (B, M) image-caption similarities; captions, M strings for the rows; images (B, 3, H, W) uint8,
        drawn above their columns. A well-trained model makes the diagonal stand out.
    """
    sim = sim.detach().float().cpu()
    B, M = sim.shape
    with sns.axes_style("white"):
        fig = Figure(figsize=(1 + 0.8 * B + (3 if captions else 0), 1.5 + 0.6 * M))
        ax = fig.subplots()
        sns.heatmap(sim.T.numpy(), ax=ax, cmap="viridis", annot=B * M <= 144, fmt=".2f", square=True, cbar=True,
                    yticklabels=list(captions) if captions else "auto", xticklabels="auto")
        if images is not None:
            for i, image in enumerate(images):  # one thumbnail above each column, in data coordinates
                ax.imshow(_hwc(image), extent=(i + 0.05, i + 0.95, -0.05, -0.95), aspect="auto")
            ax.set_ylim(M, -1)
        ax.set_xlabel("image")
        ax.set_ylabel("caption")
        ax.set_title("cosine similarity")
        fig.tight_layout()
    return fig


def zeroshot_predictions(images: Tensor, probs: Tensor, classnames: Sequence[str],
                         labels: Optional[Tensor] = None, top: int = 3) -> Figure:
    """Each image beside a bar chart of its `top` most probable classes (green: the true class, if labels given).

    Args: images (B, 3, H, W) uint8; probs (B, K) zero-shot probabilities, e.g. (100 * feats @ classifier).softmax(1).
    """
    probs = probs.detach().float().cpu()
    B = len(images)
    cols = min(B, 4)
    rows = math.ceil(B / cols)
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(3.8 * cols, 1.8 * rows))
        axes = fig.subplots(rows, 2 * cols, squeeze=False, gridspec_kw={"width_ratios": [1, 1.6] * cols})
        for i in range(rows * cols):
            ax_img, ax_bar = axes[i // cols, 2 * (i % cols)], axes[i // cols, 2 * (i % cols) + 1]
            if i >= B:
                ax_img.axis("off")
                ax_bar.axis("off")
                continue
            ax_img.imshow(_hwc(images[i]))
            ax_img.axis("off")
            p, k = probs[i].topk(min(top, probs.shape[1]))
            names = [classnames[j] for j in k.tolist()]
            truth = None if labels is None else int(labels[i])
            colors = ["tab:green" if j == truth else "tab:blue" for j in k.tolist()]
            ax_bar.barh(range(len(names))[::-1], p.numpy(), color=colors)
            ax_bar.set_yticks(range(len(names))[::-1], names, fontsize=8)
            ax_bar.set_xlim(0, 1)
            ax_bar.set_xlabel("probability")
            if truth is not None:
                ax_img.set_title(classnames[truth], fontsize=8)
        fig.tight_layout()
    return fig


def low_shot_curve(curve: LowShotCurve) -> Figure:
    """Probe accuracy (mean ± std over trials) against examples per class on a log2 axis, zero-shot as a
    horizontal line, and the crossover where they meet (CLIP Fig. 6-7)."""
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(5.5, 4))
        ax = fig.subplots()
        ax.errorbar(curve.shots, curve.mean, yerr=curve.std, marker="o", capsize=3, label="linear probe")
        if curve.zeroshot is not None:
            ax.axhline(curve.zeroshot, color="tab:red", linestyle="--", label="zero-shot")
        if curve.crossover is not None:
            ax.axvline(curve.crossover, color="gray", linestyle=":", linewidth=1)
            ax.plot([curve.crossover], [curve.zeroshot], marker="*", markersize=14, color="tab:red",
                    label=f"crossover: {curve.crossover:.1f} shots")
        ax.set_xscale("log", base=2)
        ax.set_xticks(curve.shots, [f"{k:g}" for k in curve.shots])
        ax.set_xlabel("training examples per class")
        ax.set_ylabel("test accuracy")
        ax.set_title("zero-shot vs k-shot linear probe")
        ax.legend()
        fig.tight_layout()
    return fig


def robustness_scatter(points: dict, line: Optional[RobustnessLine] = None) -> Figure:
    """Shifted vs in-distribution accuracy on logit axes (Taori et al.; CLIP Fig. 13): models on y = x are
    perfectly robust; the fitted line is what in-distribution training buys; points above it are effectively robust.

    Args: points {model name: (in-distribution accuracy, shifted accuracy)}; line from fit_robustness_line.
    """
    xs = [min(max(a, EPS), 1 - EPS) for a, _ in points.values()]
    ys = [min(max(b, EPS), 1 - EPS) for _, b in points.values()]
    lo, hi = max(min(xs + ys) / 2, EPS), 1 - max(1 - max(xs + ys), EPS) / 2
    grid = [float(t) for t in torch.sigmoid(torch.linspace(math.log(lo / (1 - lo)), math.log(hi / (1 - hi)), 100))]
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(6.5, 6))
        ax = fig.subplots()
        ax.plot(grid, grid, color="gray", linestyle="--", label="y = x (perfectly robust)")
        if line is not None:
            sign = "-" if line.intercept < 0 else "+"
            ax.plot(grid, [line.predict(a) for a in grid], color="tab:red",
                    label=f"fit: logit(ood) = {line.slope:.2f} logit(id) {sign} {abs(line.intercept):.2f}")
        ax.scatter(xs, ys, zorder=3)
        for name, x, y in zip(points, xs, ys):
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ticks = [t for t in LOGIT_TICKS if lo <= t <= hi]
        for axis, scale, limits in ((ax.xaxis, ax.set_xscale, ax.set_xlim), (ax.yaxis, ax.set_yscale, ax.set_ylim)):
            scale("logit")
            limits(lo, hi)
            axis.set_ticks(ticks, [f"{100 * t:g}%" for t in ticks])
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("in-distribution accuracy (logit scale)")
        ax.set_ylabel("shifted accuracy (logit scale)")
        ax.legend(fontsize=8)
        fig.tight_layout()
    return fig


def prompt_ablation(results: dict) -> Figure:
    """Bars of top-1 accuracy per prompt strategy, e.g. the dict zeroshot.prompt_ablation returns (CLIP §3.1.4)."""
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(1.5 + 1.3 * len(results), 4))
        ax = fig.subplots()
        sns.barplot(x=list(results), y=list(results.values()), ax=ax, hue=list(results), legend=False)
        for i, v in enumerate(results.values()):
            ax.text(i, v, f"{100 * v:.1f}%", ha="center", va="bottom")
        ax.set_ylim(0, 1.08)
        ax.set_xlabel("prompt")
        ax.set_ylabel("zero-shot top-1 accuracy")
        fig.tight_layout()
    return fig


def suite_bars(rows: Sequence[dict]) -> Figure:
    """Accuracy per dataset: the rows of minclip.suite.evaluate_suite (dicts with model, dataset, task and value).

    One model: one panel, a bar per task (zero-shot, probe, k-shot) for each dataset. Several: a panel per task,
    a bar per model."""
    from minclip.suite import task_label as label  # here: the suite imports the datasets, which plots need not

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    panels = [(None, rows)] if len(models) == 1 else [
        (task, [r for r in rows if r["task"] == task]) for task in dict.fromkeys(r["task"] for r in rows)]
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(2 + 0.45 * len(datasets), 1.2 + 2.4 * len(panels)))
        axes = fig.subplots(len(panels), 1, squeeze=False, sharex=True)[:, 0]
        for ax, (task, mine) in zip(axes, panels):
            hue = [label(r["task"]) if task is None else r["model"] for r in mine]
            sns.barplot(x=[r["dataset"] for r in mine], y=[r["value"] for r in mine], hue=hue, order=datasets, ax=ax)
            ax.set_ylim(0, 1.02)
            ax.set_ylabel("accuracy" if task is None else label(task))
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        axes[-1].tick_params(axis="x", labelrotation=90, labelsize=8)
        axes[0].set_title(f"{models[0] if len(models) == 1 else 'models'}: each dataset's metric (top-1, or mean "
                          "per-class recall where the paper uses it)", fontsize=10)
        fig.tight_layout()
    return fig


@torch.no_grad()
def binding_bars(result: dict) -> Figure:
    """The binding benchmark (minclip/binding.py): per negative type, the model's accuracy in both directions on
    seen and held-out pairs, the blind text-only baseline, and chance."""
    kinds = list(result["types"])
    bars = {"seen pairs": lambda k: result["types"][k]["seen"],
            "held-out pairs": lambda k: result["types"][k]["unseen"],
            "blind (text only)": lambda k: result["blind"][k]["seen"]}
    fig = Figure(figsize=(8, 3.6))
    ax = fig.subplots()
    width = 0.8 / len(bars)
    for j, (label, get) in enumerate(bars.items()):
        values = [(get(k)["text"] + get(k)["image"]) / 2 for k in kinds]
        ax.bar([i + (j - 1) * width for i in range(len(kinds))], values, width, label=label,
               color=["tab:blue", "tab:orange", "0.7"][j], hatch="//" if j == 2 else None)
    ax.axhline(result["chance"], color="k", ls="--", lw=1, label="chance")
    ax.set_xticks(range(len(kinds)), [k.replace("_", " ") for k in kinds])
    ax.set_ylim(0, 1.05), ax.set_ylabel("true match wins (mean of both directions)")
    zs = result.get("single_object_zeroshot")
    title = "Binding: true caption vs a hard negative with the same words"
    ax.set_title(title + (f"\n(single-object zero-shot: {zs['seen']:.0%} seen, {zs['unseen']:.0%} held-out)"
                          if zs else ""), fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def save_run_figures(out, world, model, tokenizer, preprocess) -> None:
    """OUT/similarity.png: 8 fresh photos against their captions. OUT/predictions.png: zero-shot on 4 photos of seen
    colour-shape pairs and 4 of held-out pairs, with the top 3 classes (green: the true one)."""
    model.eval()
    images, captions = world.pretraining(8, seed=2024, domains=["photo"], objects=(1, 1))
    device = next(model.parameters()).device
    tokens = tokenizer(captions, context_length=model.context_length, truncate=True).to(device)
    sim = image_features(model, images, preprocess) @ model.encode_text(tokens, normalize=True).T  # (8, 8)
    similarity_matrix(sim, captions, images).savefig(Path(out) / "similarity.png", dpi=110, bbox_inches="tight")
    views = [world.classification("color_shape", split=split, n=4, seed=2024) for split in ("test", "unseen")]
    images, labels = torch.cat([v.images for v in views]), torch.cat([v.labels for v in views])  # (8, 3, H, W), (8,)
    classnames = views[0].classnames
    W = zeroshot_classifier(model, tokenizer, classnames, ShapeWorld.templates("color_shape"))  # (E, 64)
    probs = (model.logit_scale.exp() * image_features(model, images, preprocess) @ W).softmax(dim=1)  # (8, 64)
    figure = zeroshot_predictions(images, probs, classnames, labels)
    figure.savefig(Path(out) / "predictions.png", dpi=110, bbox_inches="tight")
