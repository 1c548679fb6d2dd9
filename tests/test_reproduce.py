"""reproduce/: the statistics against numpy and statistics, and the smoke run end to end (the CI's copy of
`python -m reproduce --budget smoke`): the report's structure, and a killed run that continues where it stopped."""
import json
import math
import re
import statistics
import subprocess
import sys

import numpy as np
import pytest

from minclip.suite import SUITES
from reproduce import claims, plan
from reproduce.claims import CLAIMS
from reproduce.stats import images_to_reach, loglog_fit, mean_sd, versus

KEYS = ("Fig. 2", "Fig. 4", "Fig. 5", "Fig. 6", "Fig. 9", "Fig. 10", "Fig. 13", "WiSE-FT")


def test_mean_and_spread_are_the_sample_statistics():
    values = [0.81, 0.79, 0.84]
    assert mean_sd(values) == pytest.approx((statistics.mean(values), statistics.stdev(values)), abs=1e-15)
    assert mean_sd([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError, match="no values"):
        mean_sd([])


def test_a_gap_within_the_spread_is_tied():
    assert versus([0.80, 0.82, 0.84], [0.70, 0.71, 0.72]) == "higher"
    assert versus([0.70, 0.71, 0.72], [0.80, 0.82, 0.84]) == "lower"
    assert versus([0.80, 0.70, 0.90], [0.78, 0.79, 0.80]) == "tied"  # 2 points apart, 10 points of spread
    assert versus([0.80], [0.80]) == "tied"


def test_the_loglog_fit_is_numpys_polyfit_in_log_space():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0.01, 10, 7), rng.uniform(0.05, 0.9, 7)
    slope, intercept = loglog_fit(x, y)
    expected = np.polyfit(np.log(x), np.log(y), 1)
    assert (slope, intercept) == pytest.approx(tuple(expected), rel=1e-12)
    with pytest.raises(ValueError, match="two different sizes"):
        loglog_fit([1.0, 1.0], [0.5, 0.4])


def test_images_to_reach_interpolates_between_evaluations():
    curve = [(100, 0.2), (200, 0.6), (300, 0.9)]
    assert images_to_reach(curve, 0.4) == pytest.approx(150)
    assert images_to_reach(curve, 0.1) == pytest.approx(50)  # from (0, 0) to the first evaluation
    assert images_to_reach(curve, 0.95) is None


def test_every_claim_of_the_issue_is_in_the_plan_and_every_budget_names_its_models():
    assert len(CLAIMS) == len(KEYS)
    for budget in plan.BUDGETS.values():
        names = [spec.name for spec in plan.models(budget)]
        assert len(names) == len(set(names))
        assert {s.family for s in plan.models(budget)} >= {"CLIP-ViT", "CLIP-ResNet", "supervised ResNet",
                                                            "EfficientNet", "SimCLR", "MAE"}
        main = budget.main  # the models Figs. 2 and 6 and WiSE-FT compare at one size
        needed = {f"clip-{main}", f"simclr-{main}", f"mae-{main}", f"supervised-{main}-rn", f"captioning-{main}"}
        assert needed <= set(names)
    cpu = plan.BUDGETS["cpu"]
    assert len(cpu.seeds) >= 3 and len(cpu.clip_vit) >= 3 and len(cpu.clip_rn) >= 3 and cpu.shots == (1, 2, 4, 8, 16)


def test_a_bad_budget_is_refused_by_name():
    run = subprocess.run([sys.executable, "-m", "reproduce", "--budget", "laptop"], capture_output=True, text=True)
    assert run.returncode != 0 and "--budget 'laptop' is unknown; choose one of smoke, cpu, gpu" in run.stderr


def test_ctrl_c_says_how_to_continue(monkeypatch, capsys):
    import reproduce.__main__ as cli

    def interrupted(cfg, argv):
        raise KeyboardInterrupt("stopped after step 3 of 10")
    monkeypatch.setattr(cli, "reproduce", interrupted)
    with pytest.raises(SystemExit) as stop:
        cli.main(["--budget", "smoke", "--out", "somewhere"])
    assert stop.value.code == 130
    assert "Continue with the same command: python -m reproduce --budget smoke --out somewhere" in capsys.readouterr().err


@pytest.mark.slow
def test_the_smoke_run_writes_the_report_and_a_killed_run_continues(tmp_path):
    out = tmp_path / "report"
    command = [sys.executable, "-m", "reproduce", "--budget", "smoke", "--out", str(out), "--quiet"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    text = (out / "REPORT.md").read_text()
    for key in KEYS:
        assert f"## {key}: " in text
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert len(images) == len(KEYS) and all((out / image).is_file() for image in images)
    verdicts = [line for line in text.splitlines() if re.match(r"\| .* \| \*\*(reproduced|partly|not reproduced|"
                                                                r"tied)\*\* \|", line)]
    assert len(verdicts) == len(KEYS)
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [0, 1] and set(results["claims"]) == set(KEYS)
    # "killed": one model unfinished, one evaluation missing; the rest is reused, not retrained
    kept = out / "runs" / "clip-tiny-s1" / "checkpoint.pt"
    before = kept.stat().st_mtime_ns
    (out / "runs" / "simclr-tiny-s0" / "summary.json").unlink()
    (out / "evals" / "simclr-tiny-s0.json").unlink()
    (out / "evals" / "wise-ft-s1.json").unlink()
    wise_ckpt = out / "runs" / "wise-ft-s1" / "checkpoint.pt"  # WiSE-FT fine-tunes through the loop, in a run folder
    wise_before = wise_ckpt.stat().st_mtime_ns
    second = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert kept.stat().st_mtime_ns == before and wise_ckpt.stat().st_mtime_ns == wise_before  # finished: reused
    assert (out / "evals" / "simclr-tiny-s0.json").is_file() and (out / "evals" / "wise-ft-s1.json").is_file()
    again = json.loads((out / "results.json").read_text())
    for key in ("Fig. 5", "Fig. 6", "WiSE-FT"):  # the same models, evaluated again: the same numbers
        assert again["claims"][key] == results["claims"][key], key


# ---- the verdicts, on made-up evaluations whose answer is known ------------------------------------------------

def suite_rows(zero_shot: float, probe: float, shots: dict) -> list:
    rows = []
    for d in SUITES["shapeworld-27"]:
        rows += [{"dataset": d, "task": "zeroshot_classification", "value": zero_shot},
                 {"dataset": d, "task": "linear_probe", "value": probe}]
        rows += [{"dataset": d, "task": f"linear_probe_{k}shot", "value": v} for k, v in shots.items()]
    return rows


def made_up(name, kind, family, seed, **fields):
    return {"name": name, "kind": kind, "family": family, "seed": seed, **fields}


def test_robustness_is_reproduced_above_the_supervised_line_and_tied_on_it():
    budget = plan.BUDGETS["smoke"]
    below = lambda acc, by: 1 / (1 + math.exp(-(math.log(acc / (1 - acc)) - by)))  # noqa: E731  (logit axes)
    line = [made_up(f"supervised-{i}", "supervised", "supervised ResNet", s,
                    robustness={"in_distribution": a, "shifted": below(a, 1.0)})
            for i, a in enumerate((0.5, 0.7, 0.9)) for s in (0, 1)]

    def clip(shifted):
        return [made_up("clip-tiny", "clip", "CLIP-ViT", s, robustness={"in_distribution": 0.7, "shifted": x})
                for s, x in enumerate(shifted)]

    assert claims.robustness(line + clip([0.6, 0.61]), budget).verdict == "reproduced"
    on_line = below(0.7, 1.0)
    assert claims.robustness(line + clip([on_line - 0.02, on_line + 0.02]), budget).verdict == "tied"
    assert claims.robustness(line + clip([0.2, 0.21]), budget).verdict == "not reproduced"


def test_low_shot_agrees_when_the_other_probes_catch_up_only_at_the_largest_k():
    budget = plan.BUDGETS["smoke"]  # shots (1, 2)
    main = budget.main
    names = [f"clip-{main}", f"simclr-{main}", f"mae-{main}", f"supervised-{main}-rn",
             f"supervised-{budget.efficientnet[0]}"]

    def evals(other_at_2, own_at_2=0.62):
        out = []
        for s in (0, 1):
            zero_shot = suite_rows(0.6 + 0.01 * s, 0.8, {1: 0.4, 2: own_at_2})
            out.append(made_up(names[0], "clip", "CLIP-ViT", s, suite=zero_shot))
            out += [made_up(n, "x", "x", s, suite=suite_rows(0, 0.7, {1: 0.3, 2: other_at_2 + 0.01 * s}))
                    for n in names[1:]]
        return out

    assert claims.low_shot(evals(0.45), budget).verdict == "reproduced"  # zero-shot beats every k
    assert claims.low_shot(evals(0.605), budget).verdict == "reproduced"  # caught up only at k = 2, the largest
    assert claims.low_shot(evals(0.605), budget).numbers["crossover"]["SimCLR"] == 2
    assert claims.low_shot(evals(0.9), budget).numbers["crossover"]["SimCLR"] == 2  # (1-shot 0.3: still below)
    # CLIP's own probe must match its zero-shot at 2-8 shots (the paper's 4): never, at k <= 2, is only partly
    assert claims.low_shot(evals(0.45, own_at_2=0.5), budget).verdict == "partly"
    assert claims.low_shot(evals(0.45, own_at_2=0.5), budget).numbers["own_match"] is None


def test_probe_efficiency_reads_a_growing_gap_from_the_rise_per_decade():
    budget = plan.BUDGETS["smoke"]
    families = ("CLIP-ViT", "CLIP-ResNet", "EfficientNet", "supervised ResNet", "SimCLR", "MAE")

    def evals(clip_rise, efficientnet_12=0.5):
        out = []
        for f in families:
            for size, gflops in enumerate((0.01, 0.1)):
                for s in (0, 1):
                    clip = f.startswith("CLIP")
                    value = 0.6 + (clip_rise if clip else 0.02) * size + 0.001 * s + (0.1 if clip else 0)
                    if f == "CLIP-ResNet":
                        value -= 0.05
                    rows = suite_rows(0.5, value, {})
                    if f == "EfficientNet":  # above CLIP-ResNet on the 12 only
                        rows = [dict(r, value=efficientnet_12) if r["dataset"] in claims.STANDARD else r for r in rows]
                    out.append(made_up(f"{f}-{size}", "x", f, s, suite=rows, gflops={"image": gflops}))
        return out

    grows = claims.probe_efficiency(evals(0.1, efficientnet_12=0.9), budget)
    assert grows.numbers["checks"] == {"CLIP-ResNet below EfficientNet on the 12": True,
                                       "CLIP-ViT above every other family on the 12": False,
                                       "both CLIPs above every non-CLIP family on the 27": True,
                                       "the gap on the 27 grows with compute": True}
    assert grows.verdict == "partly"
    assert grows.numbers["rise_per_decade"]["CLIP-ViT"] == pytest.approx([0.1, 0.1])
    assert not claims.probe_efficiency(evals(0.02), budget).numbers["checks"]["the gap on the 27 grows with compute"]


def wise_runs(on_task: dict, under_shift: dict) -> list:
    """Made-up WiSE-FT evaluations: accuracies at alpha = 0, 0.5, 1 (zero-shot ... fine-tuned), two seeds."""
    return [made_up("wise-ft", "wise-ft", "WiSE-FT", s, alphas=[0.0, 0.5, 1.0], dataset="count", shifted=["cartoon"],
                    on_task=[v + 0.001 * s for v in on_task], under_shift=[v + 0.001 * s for v in under_shift],
                    zeroshot={"on_task": on_task[0], "under_shift": under_shift[0]}, linear_probe={
                        "on_task": 0.5, "under_shift": 0.4},
                    finetuned={"on_task": on_task[-1] + 0.001 * s, "under_shift": under_shift[-1] + 0.001 * s})
            for s in (0, 1)]


def test_wise_ft_tests_the_task_gain_the_robustness_cost_and_the_sweet_spot():
    budget = plan.BUDGETS["smoke"]
    paper = claims.wise_ft(wise_runs([0.3, 0.9, 0.9], [0.3, 0.5, 0.4]), budget)
    assert paper.verdict == "reproduced" and paper.numbers["loses_robustness"]
    robust_tuning = claims.wise_ft(wise_runs([0.3, 0.85, 0.9], [0.3, 0.8, 0.9]), budget)  # gains as much under shift
    assert robust_tuning.verdict == "partly" and not robust_tuning.numbers["loses_robustness"]
    assert claims.wise_ft(wise_runs([0.9, 0.8, 0.7], [0.9, 0.8, 0.7]), budget).verdict == "not reproduced"


def test_a_folder_of_another_plan_is_refused(tmp_path):
    plan.check_plan(tmp_path, plan.BUDGETS["smoke"])
    plan.check_plan(tmp_path, plan.BUDGETS["smoke"])  # the same plan again: fine
    with pytest.raises(ValueError, match=r"holds a run of another plan \(budget 'smoke'.*pass another --out"):
        plan.check_plan(tmp_path, plan.BUDGETS["cpu"])
