"""baselines/compare.py: the smoke comparison runs end to end and writes sane results, a table and figures; the
table says what was measured; every model has its own run folder."""
import json

import pytest

from baselines import compare
from baselines.evaluate import robustness

EVERY_MODEL = ("CLIP", "FLIP", "SLIP", "SimCLR", "MAE", "supervised", "LiT (SimCLR)", "LiT (MAE)", "LiT (supervised)")
WITH_TEXT = {"CLIP", "FLIP", "SLIP", "LiT (SimCLR)", "LiT (MAE)", "LiT (supervised)"}


def test_every_model_is_compared_in_its_own_folder(tmp_path):
    assert set(compare.MODELS) == set(EVERY_MODEL)
    names = list(compare.MODELS) + [f"supervised {w}x{l}, {f:g} steps" for w, l, f in compare.FAMILY]
    names += [f"fine-tune {tower}" for tower in ("scratch",) + compare.TOWERS]
    folders = {compare.run_dir(tmp_path, name) for name in names}
    assert len(folders) == len(names) and all(f.parent == tmp_path / "runs" for f in folders)


def test_budgets_are_equal_for_every_model():
    cpu = compare.BUDGETS["cpu"]
    assert compare.BUDGETS["gpu"].steps > cpu.steps and compare.BUDGETS["smoke"].steps < cpu.steps
    assert cpu.n_train >= 56 * 16  # a 16-shot probe needs 16 images of each of the 56 seen pairs


def fake_metrics(accuracy, text=False, head=False):
    domains = {"photo": accuracy, "sketch": accuracy / 2, "blur": accuracy / 2}
    m = {"linear_probe": accuracy, "knn": accuracy, "shots": {1: 0.1, 4: 0.2, 16: 0.3}, "probe_domains": domains,
         "train_seconds": 10.0}
    if text:
        m.update(zeroshot=accuracy, zeroshot_unseen=0.25, zeroshot_domains=domains)
    if head:
        m["head_domains"] = domains
    m["robustness"] = robustness(m)._asdict()
    m["effective_robustness"] = 0.05
    return m


def test_table_reports_each_models_own_classifier():
    models = {name: fake_metrics(0.5, text=name in WITH_TEXT, head=name == "supervised") for name in EVERY_MODEL}
    report = {"models": models, "budget": vars(compare.BUDGETS["smoke"]), "machine": "test", "date": "2026-11-28",
              "training_domains": "photo",
              "supervised_family": {"a": {}, "b": {}}, "line": {"slope": 1.0, "intercept": 0.0},
              "finetuned": {"scratch": {"head_domains": {"photo": 0.125}}}}
    models["MAE"]["finetuned"] = 0.75
    table = compare.table(report)
    rows = {line.split(" | ")[0][2:]: line for line in table.splitlines() if line.startswith("| ")}
    assert set(EVERY_MODEL) <= set(rows)
    assert "(zero-shot)" in rows["CLIP"] and "(head)" in rows["supervised"] and "(probe)" in rows["MAE"]
    assert "50.0 / 25.0" in rows["SLIP"] and "| – |" in rows["SimCLR"]
    assert "10 + 10" in rows["LiT (MAE)"]  # the locked tower's training time counts too
    assert "50.0 → 25.0" in rows["CLIP"] and "+5.0" in rows["CLIP"]
    assert "| 75.0 |" in rows["MAE"] and "from scratch: 12.5" in table


@pytest.mark.slow
def test_smoke_comparison_writes_sane_results(tmp_path):
    compare.main(["--smoke", "--out", str(tmp_path)])
    for name in ("results.json", "results.md", "accuracy.png", "low_shot.png", "robustness.png"):
        assert (tmp_path / name).stat().st_size > 100, name
    report = json.loads((tmp_path / "results.json").read_text())
    assert list(report["models"]) == list(EVERY_MODEL)
    for name, m in report["models"].items():
        accuracies = [m["linear_probe"], m["knn"], *m["shots"].values(), *m["probe_domains"].values()]
        assert all(0 <= a <= 1 for a in accuracies), name
        assert ("zeroshot" in m) == (name in WITH_TEXT), name
        assert m["train_seconds"] > 0 and m["wall_seconds"] >= m["train_seconds"], name
        assert -1 < m["effective_robustness"] < 1, name
    assert "head_domains" in report["models"]["supervised"] and len(report["supervised_family"]) == len(compare.FAMILY)
    assert set(report["finetuned"]) == {"scratch", *compare.TOWERS}
    assert all(0 <= report["models"][t]["finetuned"] <= 1 for t in compare.TOWERS)
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {name} |" in table for name in EVERY_MODEL)
    # running again reuses a finished run rather than training it again
    checkpoint = compare.run_dir(tmp_path, "MAE") / "checkpoint.pt"
    before = checkpoint.stat().st_mtime
    timing = compare.train_model("MAE", tmp_path, compare.BUDGETS["smoke"], seed=0)
    assert timing["train_seconds"] == report["models"]["MAE"]["train_seconds"] and checkpoint.stat().st_mtime == before
