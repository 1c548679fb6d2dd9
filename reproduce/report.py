"""REPORT.md and results.json from the claims: a verdict table first, then one section per claim.

Each section: the figure (a PNG beside REPORT.md), what the paper reports, what we measure here, and "agree? why
or why not". results.json holds the seeds, the budget, the timing and every claim's numbers.
"""
import json
import os
from dataclasses import asdict
from pathlib import Path

from .figures import FIGURES


def figure_file(key: str) -> str:
    """'Fig. 10' -> 'fig10.png', 'WiSE-FT' -> 'wise-ft.png'."""
    return key.lower().replace(". ", "").replace(" ", "-") + ".png"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write(out: Path, claims: list, budget, meta: dict) -> Path:
    """Write OUT/REPORT.md, OUT/results.json and one PNG per claim; returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for claim in claims:
        FIGURES[claim.key](claim.numbers).savefig(out / figure_file(claim.key), dpi=100, bbox_inches="tight")
    seconds = meta["seconds"]
    lines = [
        "# minclip reproduces CLIP's results at small scale",
        "",
        f"Made by `{meta['command']}` on {meta['date']}, {meta['machine']}. Budget `{budget.name}`: "
        f"{budget.steps} steps of {budget.batch_size} for every model, seeds {', '.join(map(str, budget.seeds))}. "
        f"Compute: training {seconds['train'] / 60:.1f} minutes, evaluation {seconds['evaluate'] / 60:.1f} (summed "
        f"over every run, resumed ones included; this invocation took {seconds['this_invocation'] / 60:.1f} minutes of wall "
        "clock, reusing what earlier invocations into the same folder trained and evaluated); by "
        "family: " + ", ".join(f"{f} {v / 60:.1f}" for f, v in seconds["by_family"].items()) + ".",
        "",
        "A comparison is judged over the seeds: two numbers closer than their spread (the larger standard "
        "deviation over seeds) are called tied.",
        "",
    ]
    if budget.name == "smoke":
        lines += ["**A smoke run**: every stage at toy size. It checks the pipeline and this report's structure; "
                  "its numbers mean nothing.", ""]
    lines += ["## Verdict", "", "| claim | figure | verdict | the number |", "|---|---|---|---|"]
    lines += [f"| {c.title} | [{c.key}](#{_anchor(c)}) | **{c.verdict}** | {c.summary} |" for c in claims]
    for c in claims:
        lines += ["", f"## {c.key}: {c.title}", "", f"![{c.key}]({figure_file(c.key)})", "",
                  f"**What the paper reports.** {c.paper}", "", f"**What we measure here.** {c.measured}", "",
                  f"**Agree? Why or why not.** {c.verdict.capitalize()}. {c.agree}"]
    path = out / "REPORT.md"
    _atomic_write(path, "\n".join(lines) + "\n")
    results = {"seeds": list(budget.seeds), "budget": asdict(budget), **meta,
               "claims": {c.key: {"verdict": c.verdict, "summary": c.summary, **c.numbers} for c in claims}}
    _atomic_write(out / "results.json", json.dumps(results, indent=1, default=_plain))
    return path


def _anchor(claim) -> str:
    """GitHub's anchor of the claim's section heading."""
    heading = f"{claim.key}: {claim.title}".lower()
    return "".join(ch if ch.isalnum() or ch in "- " else "" for ch in heading).replace(" ", "-")


def _plain(value):
    """JSON for what json does not know: tuples are lists already; sets and NamedTuples become lists/dicts."""
    if hasattr(value, "_asdict"):
        return value._asdict()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"results.json cannot hold a {type(value).__name__}")
