"""One figure per claim, drawn from the claim's numbers (reproduce/claims.py), without pyplot (as minclip/plots.py).

    FIGURES["Fig. 2"](claim.numbers).savefig("report/fig2.png")
"""
import math
import statistics

import seaborn as sns
from matplotlib.figure import Figure

from minclip.plots import STYLE, robustness_scatter
from minclip.robustness import RobustnessLine


def _figure(width: float = 6.5, height: float = 4.0, panels: int = 1):
    fig = Figure(figsize=(width * panels, height))
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def _finish(fig: Figure, ax, xlabel: str, ylabel: str, log: str = "") -> Figure:
    """Axis labels, log scales ("x", "y" or "xy"), a small legend, and a tight layout."""
    for axis in log:
        getattr(ax, f"set_{axis}scale")("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def why_contrastive(numbers: dict) -> Figure:
    with sns.axes_style(STYLE):
        fig, (ax,) = _figure()
        for (objective, curve), style in zip(numbers["curves"].items(), ("v:", "s--", "o-.", "D-")):
            ax.plot([x / 1000 for x, _ in curve], [100 * y for _, y in curve], style, label=objective)
        return _finish(fig, ax, "thousands of images seen", "zero-shot accuracy, seen pairs (%, mean of seeds)")


def prompts(numbers: dict) -> Figure:
    with sns.axes_style(STYLE):
        fig, (ax,) = _figure()
        for prompt, marker in (("class name", "v"), ("one template", "o"), ("ensemble", "*")):
            ax.scatter([p["gflops"] for p in numbers["points"]], [100 * p[prompt] for p in numbers["points"]],
                       marker=marker, label=prompt)
        return _finish(fig, ax, "forward GFLOPs per image", "mean zero-shot on shapeworld-12 (%)", log="x")


def zeroshot_vs_probe(numbers: dict) -> Figure:
    deltas = sorted(((statistics.mean(v), d) for d, v in numbers["deltas"].items()), reverse=True)
    with sns.axes_style(STYLE):
        fig, (ax,) = _figure(6.5, 7)
        ax.barh([d for _, d in deltas], [100 * m for m, _ in deltas],
                color=["tab:green" if m > 0 else "tab:red" for m, _ in deltas])
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel(f"zero-shot {numbers['clip']} minus linear probe on {numbers['probe']} (points)")
        fig.tight_layout()
    return fig


def low_shot(numbers: dict) -> Figure:
    with sns.axes_style(STYLE):
        fig, (ax,) = _figure()
        for family, curve in numbers["curves"].items():
            ks = sorted(curve, key=int)
            ax.plot([int(k) for k in ks], [100 * statistics.mean(curve[k]) for k in ks], "o-", label=f"{family} probe")
        ax.axhline(100 * statistics.mean(numbers["zeroshot"]), color="black", linestyle="--", label="zero-shot CLIP")
        ax.set_xscale("log", base=2)
        return _finish(fig, ax, "labelled images per class", "mean accuracy on shapeworld-27 (%)")


def scaling(numbers: dict) -> Figure:
    with sns.axes_style(STYLE):
        fig, (ax,) = _figure()
        for family, points in numbers["points"].items():
            ax.scatter([g for g, _, _ in points], [100 * err for _, err, _ in points], label=family)
            if family in numbers["fits"]:
                slope, intercept = numbers["fits"][family]
                xs = sorted({g for g, _, _ in points})
                ax.plot(xs, [100 * math.exp(intercept) * x ** slope for x in xs], "--")
        return _finish(fig, ax, "forward GFLOPs per image", "mean zero-shot error on shapeworld-27 (%)", log="xy")


def probe_efficiency(numbers: dict) -> Figure:
    with sns.axes_style(STYLE):
        fig, axes = _figure(5, 4, panels=2)
        for ax, (suite, families) in zip(axes, numbers["points"].items()):
            for family, points in families.items():
                sizes = sorted({g for g, _, _ in points})
                means = [100 * statistics.mean(v for g, v, _ in points if g == x) for x in sizes]
                ax.plot(sizes, means, "o-", label=family)
            ax.set_xscale("log")
            ax.set_xlabel("forward GFLOPs per image")
            ax.set_title(f"linear probe, mean over {suite}", fontsize=10)
        axes[0].set_ylabel("accuracy (%, mean of seeds)")
        axes[1].legend(fontsize=7)
        fig.tight_layout()
    return fig


def robustness(numbers: dict) -> Figure:
    points = {name: (p["in_distribution"], p["shifted"]) for name, p in numbers["points"].items()}
    if not points:  # no line could be fitted (the claim says why): an empty figure, so the report still has one
        fig, (ax,) = _figure()
        ax.text(0.5, 0.5, "no robustness line: see the text", ha="center")
        return fig
    return robustness_scatter(points, RobustnessLine(**numbers["line"]))


def wise_ft(numbers: dict) -> Figure:
    with sns.axes_style(STYLE):
        fig, (ax,) = _figure()
        alphas = numbers["alphas"]
        for key, label in (("on_task", "on the task"), ("under_shift", "under shift")):
            runs = numbers[key]  # one list per seed
            ax.plot(alphas, [100 * statistics.mean(r[i] for r in runs) for i in range(len(alphas))], "o-",
                    label=f"WiSE-FT, {label}")
        for where, color in (("on_task", "tab:blue"), ("under_shift", "tab:orange")):  # the frozen model's probe
            ax.axhline(100 * statistics.mean(r[where] for r in numbers["linear_probe"]), color=color, linestyle=":",
                       label=f"linear probe, {where.replace('_', ' ')}")
        return _finish(fig, ax, "mixing weight alpha (0: zero-shot, 1: fine-tuned)", "accuracy (%, mean of seeds)")


FIGURES = {"Fig. 2": why_contrastive, "Fig. 4": prompts, "Fig. 5": zeroshot_vs_probe, "Fig. 6": low_shot,
           "Fig. 9": scaling, "Fig. 10": probe_efficiency, "Fig. 13": robustness, "WiSE-FT": wise_ft}
