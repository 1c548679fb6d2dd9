"""`python -m reproduce --budget cpu --out report/`: train the plan, evaluate it, test every claim, write the report.

    python -m reproduce --budget smoke --out /tmp/report   # every stage at toy size, a few minutes (CI runs it)
    python -m reproduce --budget cpu --out report/         # the committed report: about 2 hours on 2 CPU cores
    python -m reproduce --budget gpu --out report-gpu/     # larger steps and batches, bf16, the same plan

Models and evaluations go to OUT/runs and OUT/evals and are reused: run it again after a crash or a kill, and it
continues where it stopped.
"""
import datetime
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from minclip.cli import arg, parse_flags

from . import claims, plan, report


@dataclass
class ReproduceConfig:
    budget: str = arg("cpu", "smoke (every stage at toy size), cpu (the committed report, 2-core CPU) or gpu")
    out: str = arg("report", "where REPORT.md, results.json, the figures, runs/ and evals/ go")
    quiet: bool = arg(False, "no progress bar")

    def check(self) -> None:
        if self.budget not in plan.BUDGETS:
            raise ValueError(f"--budget {self.budget!r} is unknown; choose one of {', '.join(plan.BUDGETS)}")


def reproduce(cfg: ReproduceConfig, argv=None) -> Path:
    cfg.check()
    budget, out, started = plan.BUDGETS[cfg.budget], Path(cfg.out), time.perf_counter()
    done = plan.run(out, budget, progress=not cfg.quiet)
    found = [claim(done["evals"], budget) for claim in claims.CLAIMS]
    seconds = {**done["seconds"], "this_invocation": time.perf_counter() - started}
    meta = {"command": " ".join(["python -m reproduce"] + (sys.argv[1:] if argv is None else list(argv))),
            "date": datetime.date.today().isoformat(), "machine": plan.device_name(), "seconds": seconds}
    path = report.write(out, found, budget, meta)
    print(f"wrote {path}: " + ", ".join(f"{c.key} {c.verdict}" for c in found))
    return path


def main(argv=None) -> None:
    cfg = parse_flags(ReproduceConfig, argv, prog="python -m reproduce", description=__doc__)
    try:
        reproduce(cfg, argv)
    except ValueError as error:
        sys.exit(f"python -m reproduce: {error}")
    except KeyboardInterrupt:  # Ctrl-C: the run being trained saved a checkpoint, finished ones and evals are kept
        print(f"interrupted; {cfg.out} keeps every finished model and evaluation, and the interrupted run's last "
              f"checkpoint. Continue with the same command: python -m reproduce --budget {cfg.budget} --out "
              f"{cfg.out}", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
