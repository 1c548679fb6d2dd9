"""minclip/eval.py: every task runs from the CLI on a saved checkpoint and writes its table, JSON and figure."""
import json
import subprocess
import sys

import pytest
import torch

from minclip import CLIP, CLIPConfig
from minclip.checkpoint import save_checkpoint
from minclip.eval import TASKS, main
from minclip.pairs import make_tokenizer


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
def test_every_task_writes_json_and_png(task, run_dir, tmp_path, capsys):
    main(["--checkpoint", str(run_dir), "--task", task, "--n", "192", "--out", str(tmp_path)])
    result = json.loads((tmp_path / f"eval_{task}.json").read_text())
    assert result and (tmp_path / f"eval_{task}.png").stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out
    flat = [v for x in result.values() for v in (x.values() if isinstance(x, dict) else [x])]
    accuracies = [v for v in flat if isinstance(v, float) and "C" not in str(v)]
    assert all(-1 <= v <= 1000 for v in accuracies)


def test_zeroshot_result_keys(run_dir, tmp_path):
    main(["--checkpoint", str(run_dir), "--task", "zeroshot", "--n", "128", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "eval_zeroshot.json").read_text())
    for key in ("color_shape seen", "color_shape unseen", "count", "prompts: ensemble"):
        assert 0.0 <= result[key] <= 1.0, key


@pytest.mark.parametrize("argv, message", [
    (["--task", "dance"], "unknown --task"),
    (["--n", "10"], "too small"),
])
def test_bad_arguments_are_refused(argv, message, run_dir):
    r = subprocess.run([sys.executable, "-m", "minclip.eval", "--checkpoint", str(run_dir), *argv],
                       capture_output=True, text=True)
    assert r.returncode != 0 and message in r.stderr


def test_missing_checkpoint_is_refused(tmp_path):
    r = subprocess.run([sys.executable, "-m", "minclip.eval", "--checkpoint", str(tmp_path / "nope")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "no run or checkpoint" in r.stderr
