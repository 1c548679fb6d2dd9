"""Peak extra memory and time of the CLIP loss, forward + backward: open_clip ClipLoss vs minclip clip_loss vs
minclip tiled_clip_loss, at B in {4096, 8192, 16384}, E = 512, fp32 on the CPU.

Each forward + backward pass runs in its own subprocess, so its peak RSS (ru_maxrss) belongs to that loss alone.
Extra memory is that peak minus the peak of a child that imports the same libraries and allocates the same inputs,
but computes no loss. The three losses run in turn, `--rounds` times; the time ratios are medians over rounds of
ratios within a round, so that a change of machine load between rounds cancels; the CPU-time ratio (process
time, all threads) is less sensitive still to other jobs on a shared machine. Prints one JSON line per B:

    .venv/bin/python benchmarks/loss_memory.py            # B = 4096, 8192, 16384 (about 5 minutes on 2 cores)
    .venv/bin/python benchmarks/loss_memory.py --quick    # B = 4096 only

Goals (issue 3): at B = 16384 the tiled loss takes >= 20x less extra memory than open_clip
(`open_clip_over_tiled_mem` >= 20), and is no slower (`tiled_over_open_clip_time` <= 1.0).
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

LOSSES = ("open_clip", "clip_loss", "tiled")


def child(B: int, name: str) -> None:
    """Allocate the inputs, run one forward + backward of the named loss, print its peak RSS, wall and CPU time."""
    import open_clip
    import torch
    import torch.nn.functional as F

    from minclip.loss import clip_loss, tiled_clip_loss

    g = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(B, 512, generator=g), dim=-1).requires_grad_()  # (B, E)
    text = F.normalize(torch.randn(B, 512, generator=g), dim=-1).requires_grad_()  # (B, E)
    scale = torch.tensor(100.0, requires_grad=True)
    loss_fn = {"none": None, "open_clip": open_clip.ClipLoss(), "clip_loss": clip_loss, "tiled": tiled_clip_loss}[name]
    start, start_cpu = time.perf_counter(), time.process_time()
    if loss_fn is not None:
        loss_fn(image, text, scale).backward()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(json.dumps({"peak_mb": peak_mb, "seconds": seconds, "cpu_seconds": cpu_seconds}))


def measure(B: int, name: str) -> dict:
    command = [sys.executable, __file__, "--child", str(B), name]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="B = 4096 only")
    parser.add_argument("--rounds", type=int, default=3, help="passes per loss; medians are reported")
    parser.add_argument("--child", nargs=2, metavar=("B", "LOSS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(int(args.child[0]), args.child[1])
    for B in (4096,) if args.quick else (4096, 8192, 16384):
        baseline = measure(B, "none")["peak_mb"]
        rounds = [{name: measure(B, name) for name in LOSSES} for _ in range(args.rounds)]
        extra = {name: max(statistics.median(r[name]["peak_mb"] for r in rounds) - baseline, 1.0) for name in LOSSES}
        seconds = {name: statistics.median(r[name]["seconds"] for r in rounds) for name in LOSSES}
        ratio = {(name, clock): statistics.median(r[name][clock] / r["open_clip"][clock] for r in rounds)
                 for name in LOSSES for clock in ("seconds", "cpu_seconds")}
        print(json.dumps({
            "bench": "loss_memory", "B": B, "E": 512, "dtype": "float32", "rounds": args.rounds,
            **{f"{name}_extra_mb": round(extra[name], 1) for name in LOSSES},
            **{f"{name}_s": round(seconds[name], 3) for name in LOSSES},
            "open_clip_over_tiled_mem": round(extra["open_clip"] / extra["tiled"], 1),
            "tiled_over_open_clip_time": round(ratio["tiled", "seconds"], 3),
            "clip_loss_over_open_clip_time": round(ratio["clip_loss", "seconds"], 3),
            "tiled_over_open_clip_cpu_time": round(ratio["tiled", "cpu_seconds"], 3),
        }), flush=True)


if __name__ == "__main__":
    main()
