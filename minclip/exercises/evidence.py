"""Checks for notebooks/10_the_evidence: reading a claim over seeds, and a power law's exponent (CLIP Fig. 9).

The oracles are the standard library's and numpy's: statistics.mean / statistics.stdev (the sample standard
deviation, n - 1) for the seeds' rule, numpy.polyfit in log-log space for the exponent. reproduce/stats.py
(`versus`, `loglog_fit`) implements the same two for the report; tests/test_reproduce.py tests it against these.
"""
import math
import statistics

import numpy as np
import torch

from .core import ExerciseError, call, exercise, expect_close, passed

VERDICTS = ("higher", "lower", "tied")


def _verdict(a, b) -> str:
    """The report's rule, from its definition: a gap no larger than the larger sample standard deviation is a tie."""
    sa = statistics.stdev(a) if len(a) > 1 else 0.0
    sb = statistics.stdev(b) if len(b) > 1 else 0.0
    gap = statistics.mean(a) - statistics.mean(b)
    return "tied" if abs(gap) <= max(sa, sb) else "higher" if gap > 0 else "lower"


@exercise
def check_seed_verdict(fn) -> None:
    """fn(a, b) -> "higher", "lower" or "tied": a's mean against b's over seeds, tied when the gap is no larger than
    the larger of the two sample standard deviations."""
    cases = [
        ([0.80, 0.82, 0.81], [0.70, 0.71, 0.69], "a clear win"),
        ([0.60, 0.61, 0.59], [0.70, 0.71, 0.69], "a clear loss"),
        ([0.80, 0.70, 0.90], [0.76, 0.77, 0.75], "a gap smaller than a's spread"),
        ([0.75, 0.76, 0.77], [0.70, 0.80, 0.60], "a gap smaller than b's spread (the larger one counts)"),
        # mean gap 0.09; sample sd 0.1, population sd 0.0816: only the sample (n - 1) deviation calls it a tie
        ([0.80, 0.70, 0.90], [0.71, 0.71, 0.71], "a gap between the population and the sample deviation"),
        # gap 0.06; each sd 0.05: the sum of the spreads (0.10) would call it a tie, the larger one (0.05) does not
        ([0.81, 0.76, 0.86], [0.75, 0.70, 0.80], "a gap above the larger spread but below their sum"),
        ([0.42], [0.40], "one seed each: no spread, so any gap counts"),
    ]
    for a, b, what in cases:
        want = _verdict(a, b)
        got = call(fn, list(a), list(b), name="seed_verdict")
        if got not in VERDICTS:
            raise ExerciseError(f"seed_verdict should return one of {VERDICTS}, got {got!r}")
        if got != want:
            pop = max(float(np.std(a)), float(np.std(b)))
            why = ("the spread is the *sample* standard deviation (divide by n - 1, statistics.stdev), not the "
                   "population one (np.std's default)" if abs(statistics.mean(a) - statistics.mean(b)) > pop
                   and want == "tied" else
                   "compare the gap with the *larger* of the two spreads, not their sum or the smaller one"
                    if len(a) > 1 else
                    "one seed has no spread (a deviation of 0): then any gap decides")
            raise ExerciseError(f"{what}: a = {a}, b = {b} should be {want!r}, got {got!r}: {why}")
    passed("seed_verdict", "the report's rule: a gap within the seeds' own scatter is no finding")


@exercise
def check_power_law_exponent(fn) -> None:
    """fn(gflops, errors) -> the exponent s of error ~ gflops ** s: the slope of the least-squares line through
    (log gflops, log error)."""
    g = torch.Generator().manual_seed(9)
    for n, slope in ((3, -0.3), (5, -0.12), (9, 0.05)):
        x = (10 ** (-3 + 3 * torch.rand(n, generator=g, dtype=torch.float64))).tolist()
        y = [0.6 * v ** slope * math.exp(0.05 * float(e)) for v, e in zip(x, torch.randn(n, generator=g))]
        want = float(np.polyfit(np.log(x), np.log(y), 1)[0])
        got = call(fn, list(x), list(y), name="power_law_exponent")
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise ExerciseError(f"power_law_exponent should return one number, the slope; got {got!r}") from None
        linear = float(np.polyfit(x, y, 1)[0])
        why = ("that is the slope of error against GFLOPs on linear axes: a power law is a straight line on log-log "
               "axes, so fit log(error) against log(gflops)" if math.isclose(got, linear, rel_tol=1e-6) else
               "take the log of both axes, then the least-squares slope: cov(log x, log y) / var(log x) (any log "
               "base gives the same slope)")
        expect_close(torch.tensor(got, dtype=torch.float64), torch.tensor(want, dtype=torch.float64),
                     f"the exponent for {n} models", why, atol=1e-9, rtol=1e-9)
    passed("power_law_exponent", "matches numpy.polyfit in log-log space")
