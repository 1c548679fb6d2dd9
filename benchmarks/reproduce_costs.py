"""What each job of a `python -m reproduce` plan costs on this machine: seconds per training step, and the wall
time of its evaluation, so that a budget can be fitted to its time before the long run.

    .venv/bin/python benchmarks/reproduce_costs.py --budget cpu --steps 30      # one line of JSON per model

Each model trains for --steps steps at the budget's batch size (a short run: its features are weaker than a
finished model's, which makes the probes slower, so the evaluation times are an upper bound), then is evaluated as
the plan evaluates it. Estimate of a full seed: sum of (s_per_step x the budget's steps + eval_wall).
"""
import argparse
import dataclasses
import json
import tempfile
import time
import warnings
from pathlib import Path

from reproduce import plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="cpu", choices=list(plan.BUDGETS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--only", default="", help="comma-separated model names (default: every model)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    full = plan.BUDGETS[args.budget]
    budget = dataclasses.replace(full, steps=args.steps, warmup=min(full.warmup, args.steps // 2), seeds=(0,),
                                 eval_every=args.steps)
    wanted = set(filter(None, args.only.split(",")))
    total = 0.0
    with tempfile.TemporaryDirectory() as out:
        for spec in plan.models(budget):
            if wanted and spec.name not in wanted:
                continue
            t0 = time.perf_counter()
            plan.train(spec, budget, 0, Path(out))
            t1 = time.perf_counter()
            summary = json.loads((plan.run_dir(Path(out), spec, 0) / "summary.json").read_text())
            plan.evaluate(spec, budget, 0, Path(out))
            row = {"model": spec.name, "s_per_step": round(summary["train_seconds"] / args.steps, 3),
                   "train_wall": round(t1 - t0, 1), "eval_wall": round(time.perf_counter() - t1, 1)}
            row["seed_estimate_s"] = round(row["s_per_step"] * full.steps + row["eval_wall"], 1)
            total += row["seed_estimate_s"]
            print(json.dumps(row), flush=True)
    print(json.dumps({"budget": args.budget, "one_seed_estimate_min": round(total / 60, 1),
                      "all_seeds_estimate_min": round(total * len(full.seeds) / 60, 1)}))


if __name__ == "__main__":
    main()
