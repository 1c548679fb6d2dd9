"""minclip/cli.py: flags from a dataclass, the run log, and Ctrl-C handled between steps."""
import json
import os
import signal
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from minclip.cli import GracefulStop, Logger, arg, parse_flags


@dataclass
class Flags:
    lr: float = arg(3e-3, "peak learning rate")
    quiet: bool = arg(False, "no bar")


def test_flags_come_from_the_dataclass_and_say_which_were_given():
    flags = parse_flags(Flags, ["--lr", "0.003"])
    assert flags == Flags(lr=0.003) and flags.flags_given == {"lr"}  # given, though it is the default
    assert parse_flags(Flags, ["--quiet"]).flags_given == {"quiet"}
    assert parse_flags(Flags, ["--lr", "0.1", "--quiet"]) == Flags(lr=0.1, quiet=True)
    with pytest.raises(SystemExit):
        parse_flags(Flags, ["--lr", "fast"])


def test_ctrl_c_sets_a_flag_and_a_second_one_stops_at_once():
    before = signal.getsignal(signal.SIGINT)
    with GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # the old handler is back


def test_a_resumed_log_drops_the_records_after_its_checkpoint(tmp_path):
    lines = [{"step": s, "loss": 1.0 / s} for s in range(1, 8)] + [{"step": 5, "zeroshot_seen": 0.5}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 8, "lo')
    cfg = SimpleNamespace(log_every=1, steps=10, quiet=True, tensorboard=False)
    log = Logger(tmp_path, cfg, active=True, start=5, seconds=12.5)
    kept = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in kept] == [1, 2, 3, 4, 5, 5] and log.seconds == 12.5
    Logger(tmp_path, cfg, active=True, start=0)  # a fresh run: a fresh log
    assert (tmp_path / "metrics.jsonl").read_text() == ""
