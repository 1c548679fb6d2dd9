"""minclip/loop.py: the one training loop, driven by the smallest objective there is (least squares on 4 numbers),
so that what is tested is the loop: checkpoints, resume, the log, the summary, the shared flags."""
import json
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minclip import loop
from minclip.cli import arg
from minclip.pairs import step_seed
from minclip.parallel import Parallel

TRUE = torch.tensor([1.0, -2.0, 3.0, 0.5])


@dataclass
class ToyRun(loop.RunConfig):
    COMMAND: ClassVar[str] = "python -m toy"
    noise: float = arg(0.1, "standard deviation of the noise on the targets")


class Toy(loop.Objective):
    """y = x . TRUE + noise; the model is one linear layer."""
    method = "toy"

    def __init__(self, cfg: ToyRun, state, par):
        self.cfg = cfg
        self.model = nn.Linear(4, 1).to(par.device)
        self.model_config = {"in": 4}

    def loss(self, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(step_seed(self.cfg.seed, step))  # batch `step` from (seed, step) only
        x = torch.randn(self.cfg.batch_size, 4, generator=g)
        y = x @ TRUE + self.cfg.noise * torch.randn(self.cfg.batch_size, generator=g)
        return F.mse_loss(self.model(x).squeeze(1), y)


def toy(tmp_path, name="run", **kw) -> ToyRun:
    return ToyRun(**{"steps": 60, "batch_size": 16, "lr": 0.3, "warmup": 2, "weight_decay": 0.0, "save_every": 10, "log_every": 1,
                     "quiet": True, "out": str(tmp_path / name), **kw})


def test_an_objective_trains_and_writes_its_run_folder(tmp_path):
    summary = loop.run(toy(tmp_path), Toy)
    out = tmp_path / "run"
    assert {p.name for p in out.iterdir()} >= {"config.json", "metrics.jsonl", "checkpoint.pt", "summary.json"}
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["method"] == "toy" and summary["steps"] == 60 and summary["final_loss"] < 0.1
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "toy" and config["model"] == {"in": 4} and config["train"]["noise"] == 0.1
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 61)) and "images_per_s" in records[0]
    assert records[-1]["loss"] < records[0]["loss"] / 10
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["method"] == "toy" and state["step"] == 60 and "tokenizer" not in state


def test_a_crashed_run_resumes_bit_identically(tmp_path, crash_after):
    loop.run(toy(tmp_path, "straight"), Toy)
    with crash_after(15):
        loop.run(toy(tmp_path, "split"), Toy)
    assert torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["step"] == 10
    loop.run(ToyRun(out=str(tmp_path / "split"), resume=True), Toy)  # the saved run's settings
    a, b = (torch.load(tmp_path / n / "checkpoint.pt", weights_only=True) for n in ("straight", "split"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    lines = lambda n: [{k: v for k, v in json.loads(line).items() if k not in ("time", "images_per_s")}  # noqa: E731
                       for line in (tmp_path / n / "metrics.jsonl").read_text().splitlines()]
    assert lines("straight") == lines("split")


def test_a_resume_keeps_the_runs_settings_and_refuses_other_ones(tmp_path, capsys):
    loop.run(toy(tmp_path, steps=10), Toy)
    with pytest.raises(ValueError, match="--noise 0.5: the run .* has --noise 0.1"):
        loop.run(ToyRun(out=str(tmp_path / "run"), resume=True, noise=0.5), Toy)
    summary = loop.run(ToyRun(out=str(tmp_path / "run"), resume=True), Toy)
    assert summary["steps"] == 10 and "finished at step 10" in capsys.readouterr().err
    assert loop.run(ToyRun(out=str(tmp_path / "run"), resume=True, steps=12), Toy)["steps"] == 12


def test_minutes_become_steps_and_calibration_leaves_the_weights_as_they_were(tmp_path):
    summary = loop.run(toy(tmp_path, steps=0, minutes=0.02), Toy)  # 1.2 s of steps
    assert summary["steps"] > 20
    objective = Toy(toy(tmp_path), None, Parallel(0, 1, torch.device("cpu")))
    before = {k: v.clone() for k, v in objective.model.state_dict().items()}
    cfg = toy(tmp_path, "calibrated", steps=0, minutes=0.01)
    rng = torch.get_rng_state()
    assert loop.calibrate_steps(objective, cfg, Parallel(0, 1, torch.device("cpu")), torch.autocast("cpu", enabled=False)) > 0
    assert all(torch.equal(objective.model.state_dict()[k], before[k]) for k in before)
    assert torch.equal(torch.get_rng_state(), rng)


def test_the_main_entry_says_what_is_wrong_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match="error: give exactly one of --steps N or --minutes M"):
        loop.main(ToyRun(out=str(tmp_path / "x")), Toy)


def test_a_fresh_run_does_not_take_an_old_summary_for_its_own(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text('{"steps": 60, "final_loss": 123.0}')  # an earlier run's
    assert loop.run(toy(tmp_path), Toy)["final_loss"] < 1.0


def test_the_baselines_refuse_several_ranks():
    from baselines import simclr
    with pytest.raises(ValueError, match="one process; torchrun is for minclip.train"):
        simclr.SimCLRObjective(simclr.SimCLRRun(steps=1).resolved(), None, Parallel(0, 2, torch.device("cpu")))
