"""Means, spreads and the words the report uses for them: every claim rests on several seeds.

    mean_sd([0.81, 0.79, 0.84])          -> (0.8133, 0.0252)    the sample standard deviation over seeds
    versus([0.81, 0.79], [0.70, 0.72])   -> "higher"            "tied" when the gap is within the spread
"""
import math
import statistics
from typing import Optional, Sequence


def mean_sd(values: Sequence[float]) -> tuple:
    """(mean, sample standard deviation); the deviation of one value is 0."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_sd of no values: the plan produced no evaluation for this claim")
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def versus(a: Sequence[float], b: Sequence[float]) -> str:
    """"higher", "lower" or "tied": a's mean against b's, tied when they differ by less than the larger spread (the
    report's rule: a gap smaller than the seeds' own scatter is no finding)."""
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    if abs(ma - mb) <= max(sa, sb):
        return "tied"
    return "higher" if ma > mb else "lower"


def pct(mean: float, sd: Optional[float] = None) -> str:
    """0.8133, 0.0252 -> '81.3 ± 2.5%'."""
    return f"{100 * mean:.1f}%" if sd is None else f"{100 * mean:.1f} ± {100 * sd:.1f}%"


def fmt(values: Sequence[float]) -> str:
    """Fractions over seeds -> '81.3 ± 2.5% (81.0, 79.0, 84.0)'."""
    return pct(*mean_sd(values)) + " (" + ", ".join(f"{100 * v:.1f}" for v in values) + ")"


def loglog_fit(x: Sequence[float], y: Sequence[float]) -> tuple:
    """Least squares of log y = slope * log x + intercept -> (slope, intercept); needs two distinct x."""
    lx, ly = [math.log(v) for v in x], [math.log(max(v, 1e-6)) for v in y]
    mx, my = statistics.mean(lx), statistics.mean(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        raise ValueError("a log-log fit needs models of at least two different sizes")
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx
    return slope, my - slope * mx


def images_to_reach(curve: Sequence[tuple], target: float, start: float = 0.0) -> Optional[float]:
    """The images seen at which a curve [(images, accuracy), ...] first reaches `target`, interpolated linearly
    between evaluations, from (0, start) (start: the untrained model's accuracy, chance); None if it never does."""
    previous = (0.0, start)
    for images, acc in curve:
        if acc >= target:
            (x0, y0), (x1, y1) = previous, (images, acc)
            return x0 + (x1 - x0) * (target - y0) / (y1 - y0) if y1 > y0 else x1
        previous = (images, acc)
    return None
