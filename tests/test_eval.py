"""minclip/eval.py: every task runs from the CLI on a saved checkpoint and writes its table, JSON and figure."""
import json
import subprocess
import sys

import pytest
import torch

from minclip import CLIP, CLIPConfig
from minclip.checkpoint import save_checkpoint
from minclip.eval import MIN_N, TASKS, main
from minclip.tokenizer import make_tokenizer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """An untrained tiny CLIP saved as a run: evaluation must work on any checkpoint, good or bad."""
    out = tmp_path_factory.mktemp("run")
    config = CLIPConfig.preset("tiny")
    torch.manual_seed(0)
    save_checkpoint(out / "checkpoint.pt", CLIP(config), make_tokenizer(config), step=0)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_every_task_writes_json_and_png_at_its_smallest_n(task, run_dir, tmp_path, capsys):
    main(["--checkpoint", str(run_dir), "--task", task, "--n", str(MIN_N[task]), "--out", str(tmp_path)])
    stem = "binding" if task == "binding" else f"eval_{task}"  # the binding task's files are named by the issue
    result = json.loads((tmp_path / f"{stem}.json").read_text())
    assert result and (tmp_path / f"{stem}.png").stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out
    flat = [v for x in result.values() for v in (x.values() if isinstance(x, dict) else [x])]
    accuracies = [v for v in flat if isinstance(v, float) and "C" not in str(v)]
    assert all(-1 <= v <= 1000 for v in accuracies)


def test_zeroshot_result_keys(run_dir, tmp_path):
    main(["--checkpoint", str(run_dir), "--task", "zeroshot", "--n", "128", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "eval_zeroshot.json").read_text())
    for key in ("color_shape seen", "color_shape unseen", "count", "prompts: ensemble"):
        assert 0.0 <= result[key] <= 1.0, key


def refused(argv) -> str:
    """main(argv) must end with one line, `error: ...`, not a traceback; returns that line."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    message = str(stop.value.code)
    assert message.startswith("error: ") and "\n" not in message
    return message


@pytest.mark.parametrize("argv, message", [
    (["--task", "dance"], "unknown --task 'dance'"),
    (["--n", "10"], "too small"),
    (["--n", "many"], "argument --n: invalid int value: 'many'"),
    (["--seed", "-1"], "seeds are non-negative"),
    (["--device", "banana"], "not a device name"),
])
def test_bad_arguments_are_refused(argv, message, run_dir):
    assert message in refused(["--checkpoint", str(run_dir), *argv])


@pytest.mark.parametrize("task", TASKS)
def test_too_small_n_says_what_each_task_needs(task, run_dir):
    """The probes choose C on a validation split: each seen class needs 3 images (--n 64 crashed inside the probe)."""
    message = refused(["--checkpoint", str(run_dir), "--task", task, "--n", str(MIN_N[task] - 1)])
    assert f"needs --n >= {MIN_N[task]}" in message and "probe 168" in message


def test_out_that_is_a_file_is_refused_before_computing(run_dir, tmp_path, monkeypatch):
    out = tmp_path / "results.txt"
    out.write_text("earlier results")
    monkeypatch.setattr("minclip.eval.Evaluator.zeroshot", lambda self: pytest.fail("evaluated before checking --out"))
    assert "is a file" in refused(["--checkpoint", str(run_dir), "--out", str(out)])
    assert out.read_text() == "earlier results"


def test_empty_run_folder_is_refused(tmp_path):
    assert "has no checkpoint.pt" in refused(["--checkpoint", str(tmp_path)])


def test_missing_checkpoint_is_refused(tmp_path):
    r = subprocess.run([sys.executable, "-m", "minclip.eval", "--checkpoint", str(tmp_path / "nope")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "no run or checkpoint" in r.stderr
