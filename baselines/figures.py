"""The comparison's figures (baselines/compare.py); the robustness scatter is minclip.plots.robustness_scatter.

Each function takes the per-model metrics of `baselines.evaluate.evaluate` ({model name: metrics}) and returns a
matplotlib Figure built without pyplot, as minclip/plots.py does; save it with `fig.savefig(path)`.
"""
import seaborn as sns
from matplotlib.figure import Figure

from minclip.plots import STYLE

BARS = (("linear_probe", "linear probe"), ("knn", "kNN"), ("shots", "4-shot probe"), ("zeroshot", "zero-shot"))


def accuracy_bars(models: dict) -> Figure:
    """Grouped bars, one group per model: linear probe, kNN, 4-shot probe and (where there is text) zero-shot."""
    names, kinds, values = [], [], []
    for name, m in models.items():
        for key, label in BARS:
            if key in m:
                names.append(name)
                kinds.append(label)
                values.append(m[key][4] if key == "shots" else m[key])
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(1.2 + 1.1 * len(models), 4.2))
        ax = fig.subplots()
        sns.barplot(x=names, y=values, hue=kinds, ax=ax)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy (color_shape, photo)")
        ax.tick_params(axis="x", labelrotation=30)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        ax.legend(fontsize=8, ncols=len(BARS), loc="upper center", bbox_to_anchor=(0.5, 1.12))
        fig.tight_layout()
    return fig


def low_shot_lines(models: dict, pool_shots: float) -> Figure:
    """Probe accuracy against examples per class for every model (the full pool at `pool_shots`), and each
    model's zero-shot accuracy as a dashed line in its colour: where a curve crosses its line, k labelled images
    are worth the class names (CLIP §3.1.5, Fig. 6)."""
    palette = sns.color_palette("tab10", len(models))
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        for color, (name, m) in zip(palette, models.items()):
            shots = sorted(m["shots"], key=float)
            xs = [float(k) for k in shots] + [pool_shots]
            ax.plot(xs, [m["shots"][k] for k in shots] + [m["linear_probe"]], marker="o", color=color, label=name)
            if "zeroshot" in m:
                ax.axhline(m["zeroshot"], color=color, linestyle="--", linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.set_xlabel("labelled training images per class (dashed: zero-shot, no labels)")
        ax.set_ylabel("test accuracy (color_shape, photo)")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.tight_layout()
    return fig
