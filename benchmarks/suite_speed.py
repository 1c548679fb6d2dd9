"""The evaluation suites' cost, split into rendering, features, zero-shot and probes; and the suite's probe against
scikit-learn's LogisticRegression doing the same sweep on the same features.

    python benchmarks/suite_speed.py                        # the zoo's tiny CLIP (trained once, ~3 CPU-minutes)
    python benchmarks/suite_speed.py --checkpoint runs/demo --sklearn-datasets 4

Prints one JSON line per suite ({"bench": "suite_speed", "suite": ..., "seconds": ..., "render": ..., ...}) and one
for the probe comparison: for each of the first --sklearn-datasets datasets of shapeworld-12, minclip's sweep (C on
the validation split, refit on train + validation) and sklearn's (the same grid, warm-started L-BFGS, the same
refit), both timed in this run, with the two test accuracies.
"""
import argparse
import json
import time
import warnings

import torch

from minclip import suite, zoo
from minclip.checkpoint import load
from minclip.probe import standardize


def sklearn_sweep(ztr, ytr, zva, yva, zte, yte) -> tuple:
    """sklearn's LogisticRegression over suite.SUITE_CS, as minclip's sweep: -> (test accuracy, C, seconds)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    clf, best, best_score = LogisticRegression(max_iter=1000, warm_start=True), None, -1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for C in suite.SUITE_CS:
            clf.set_params(C=C).fit(ztr, ytr)
            score = clf.score(zva, yva)
            if score > best_score:
                best, best_score = C, score
        final = LogisticRegression(C=best, max_iter=1000).fit(torch.cat([ztr, zva]).numpy(),
                                                               torch.cat([ytr, yva]).numpy())
    return float(final.score(zte.numpy(), yte.numpy())), best, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="", help="a run folder (default: the zoo's clip-tiny-shapeworld)")
    parser.add_argument("--suites", default="shapeworld-12,shapeworld-27")
    parser.add_argument("--sklearn-datasets", type=int, default=4, help="datasets of shapeworld-12 to compare on")
    args = parser.parse_args()
    model, tokenizer, preprocess = load(args.checkpoint) if args.checkpoint else zoo.load("clip-tiny-shapeworld")
    for name in args.suites.split(","):
        t0 = time.perf_counter()
        result = suite.evaluate_suite(model, tokenizer, preprocess, name, progress=False)
        means = suite.summary(result.rows)["model"]
        print(json.dumps({"bench": "suite_speed", "suite": name, "seconds": round(time.perf_counter() - t0, 1),
                          **result.timing, "threads": torch.get_num_threads(),
                          "mean": {task: round(v, 4) for task, v in means.items()}}), flush=True)
    rows = []
    for name in suite.SUITES["shapeworld-12"][:args.sklearn_datasets]:
        data = suite.shapeworld_dataset(name, model.config.vision.image_size)
        features = suite._features(model, preprocess, data)
        t0 = time.perf_counter()
        ours = suite.evaluate_dataset(model, None, preprocess, name, data, features)[0]
        ours_s = time.perf_counter() - t0
        (ftr, ytr), (fva, yva), (fte, yte) = features
        z = standardize(torch.cat([ftr, fva]), ftr, fva, fte)[1:]
        accuracy, C, sk_s = sklearn_sweep(z[0], ytr, z[1], yva, z[2], yte)
        rows.append({"dataset": name, "minclip_s": round(ours_s, 2), "sklearn_s": round(sk_s, 2),
                     "minclip_acc": round(ours["top1"], 4), "sklearn_acc": round(accuracy, 4),
                     "minclip_C": ours["C"], "sklearn_C": C})
    total = lambda key: sum(r[key] for r in rows)
    print(json.dumps({"bench": "suite_probe_vs_sklearn", "rows": rows, "minclip_s": round(total("minclip_s"), 1),
                      "sklearn_s": round(total("sklearn_s"), 1),
                      "ratio": round(total("sklearn_s") / total("minclip_s"), 2),
                      "max_abs_diff_points": round(100 * max(abs(r["minclip_acc"] - r["sklearn_acc"])
                                                             for r in rows), 2)}), flush=True)


if __name__ == "__main__":
    main()
