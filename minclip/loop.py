"""The one training loop. CLIP and SigLIP (minclip/train.py) and every baseline (baselines/) train through `run`.

An objective brings what is its own: a model, and the loss of batch `step`. The loop brings everything a run has in
common, in this order:

    cfg.check()                          refuse bad flags before any work
    lock OUT; read OUT/checkpoint.pt      a run folder has one writer; --resume takes the saved run's settings
    objective = make(cfg, state, par)     the model, its data, its loss
    --minutes -> --steps                  time whole steps on this machine
    AdamW, warm-up + cosine schedule      (minclip/optim.py)
    for step in range(start, steps):
        loss = objective.backward(step)   forward, loss, backward
        update()                          average the ranks' gradients, clip, AdamW, schedule, clamp the temperature
        log; evaluate; checkpoint         metrics.jsonl, atomic checkpoint.pt
    objective.finish()                    the final evaluation -> OUT/summary.json

A new objective is one small file: a config (a RunConfig subclass with its own flags), an Objective subclass whose
__init__ builds the model and whose `loss(step)` returns a scalar, and `main()`. The README's Design section shows
the smallest real one (baselines/simclr.py).
"""
import contextlib
import copy
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, ClassVar

import torch
import torch.nn as nn

from . import checkpoint
from .cli import GracefulStop, Logger, arg, flag
from .io import RunFolderBusy, RunLock, atomic_write_text
from .optim import adamw, warmup_cosine
from .parallel import Parallel, resolve_device
from .resume import diverged, restore, resume_config


@dataclass
class RunConfig:
    """The flags every run shares. An objective's config subclasses this one and adds its own flags."""
    COMMAND: ClassVar[str] = "python -m minclip.train"  # how the user runs it: error messages say how to resume
    # The flags a resumed run may change: how long it trains, its learning rate and clipping, and what it logs where.
    # Every other flag describes the run itself (model, data, batch, seed) and stays as the run began.
    RESUMABLE: ClassVar[tuple] = ("steps", "lr", "grad_clip", "save_every", "log_every", "eval_every", "tensorboard",
                                  "quiet", "device", "compile")

    steps: int = arg(0, "optimiser steps (give --steps or --minutes)")
    minutes: float = arg(0.0, "training budget in minutes: timed on the first steps, then fixed as --steps")
    batch_size: int = arg(256, "examples per step across all ranks (for contrastive objectives: the batch of "
                               "negatives; CLIP's paper: 32,768)")
    lr: float = arg(3e-3, "peak learning rate")
    warmup: int = arg(100, "linear warm-up steps (CLIP's paper: 2,000 at 32 epochs)")
    weight_decay: float = arg(0.05, "AdamW decoupled weight decay on weight matrices")
    beta2: float = arg(0.98, "Adam beta2")
    eps: float = arg(1e-6, "Adam eps")
    grad_clip: float = arg(1.0, "clip the gradient norm to this (0 = off)")
    amp: str = arg("none", "mixed precision: none, bf16 (CPU or GPU) or fp16 (GPU, with a GradScaler)")
    compile: bool = arg(False, "torch.compile the model")
    seed: int = arg(0, "seeds the model init, the data stream and every random draw")
    out: str = arg("runs/run", "run folder: config.json, metrics.jsonl, checkpoint.pt, summary.json")
    resume: bool = arg(False, "continue from OUT/checkpoint.pt (bit-identical on CPU); the run keeps its settings, "
                              "but for the flags marked [may change on --resume]")
    save_every: int = arg(50, "write the checkpoint every this many steps (atomically)")
    log_every: int = arg(10, "append to metrics.jsonl every this many steps")
    eval_every: int = arg(0, "evaluate every this many steps, for objectives that evaluate while training "
                             "(0 = 4 times)")
    tensorboard: bool = arg(False, "also log to OUT/tensorboard")
    device: str = arg("auto", "auto, cpu, cuda, cuda:1, mps ...")
    quiet: bool = arg(False, "no progress bar (metrics.jsonl is still written)")

    def check(self) -> None:
        """Refuse bad values before any work starts, naming the flag and the fix. Subclasses add their own."""
        def need(ok, msg):
            if not ok:
                raise ValueError(msg)
        for name in ("minutes", "lr", "weight_decay", "beta2", "eps", "grad_clip"):
            value = getattr(self, name)  # inf and nan pass a `>= 0` check (nan fails it with a misleading message)
            need(value is None or math.isfinite(value), f"{flag(name)} {value} must be a finite number")
        need((self.steps > 0) != (self.minutes > 0) or self.resume,
             f"give exactly one of --steps N or --minutes M (got steps={self.steps}, minutes={self.minutes})")
        need(self.steps >= 0 and self.minutes >= 0, "--steps and --minutes must not be negative")
        need(self.batch_size >= 2, f"--batch-size {self.batch_size}: a batch needs at least 2 examples")
        unset = " (or leave the flag out for its default)"
        need(self.lr is None or self.lr > 0, f"--lr {self.lr} must be > 0, e.g. 3e-3{unset}")
        need(self.warmup >= 0, f"--warmup {self.warmup} must be >= 0")
        need(self.weight_decay is None or self.weight_decay >= 0, f"--weight-decay must be >= 0{unset}")
        need(self.beta2 is None or 0 < self.beta2 < 1, f"--beta2 {self.beta2} must be in (0, 1), e.g. 0.98{unset}")
        need(self.eps is None or self.eps > 0, f"--eps {self.eps} must be > 0, e.g. 1e-6{unset}")
        need(self.grad_clip >= 0, f"--grad-clip {self.grad_clip} must be >= 0 (0 turns clipping off)")
        need(0 <= self.seed < 2 ** 63, f"--seed {self.seed} must be in [0, 2**63): numpy's seed sequences take "
             "non-negative integers and torch's take 64-bit ones, e.g. --seed 0")
        need(self.amp in ("none", "bf16", "fp16"), f"--amp {self.amp!r}: use none, bf16 or fp16")
        device = resolve_device(self.device)  # raises if the device is not there
        need(self.amp != "fp16" or device.type == "cuda", f"--amp fp16 needs a CUDA GPU (this run is on {device}, "
             "where fp16 is slow and needs loss scaling); use --amp bf16 on a CPU")
        need(self.save_every > 0 and self.log_every > 0 and self.eval_every >= 0, "--*-every must be positive")
        self.check_folder()

    def check_folder(self) -> None:
        """--out is a folder that holds a run exactly when --resume says it does (checked again under the lock)."""
        has_ckpt = (Path(self.out) / "checkpoint.pt").exists()
        if Path(self.out).is_file():
            raise ValueError(f"--out {self.out} is a file; a run folder must be a folder: pick another --out")
        if has_ckpt and not self.resume:
            raise ValueError(f"{self.out} already holds a run; pass --resume to continue it or pick another --out")
        if self.resume and not has_ckpt:
            raise ValueError(f"--resume: no checkpoint at {self.out}/checkpoint.pt")

    def resolved(self) -> "RunConfig":
        """The config with every value the flags leave to something else filled in (minclip.train: the preset's
        learning rate and Adam settings), so that config.json records what actually ran."""
        return copy.copy(self)


class Objective:
    """What one training method brings to the loop. Subclass it: __init__(cfg, state, par) builds `model` (on
    par.device), `model_config` (a plain dict the model is rebuilt from) and its data; `loss(step)` is the loss of
    batch `step`. That batch, and every augmentation or mask drawn for it, must depend only on (seed, step)
    (minclip/pairs.py): then a resumed run is the uninterrupted one. Set `method` (the run's name for what trained
    it) and, for a model that is not a minclip.CLIP, `builder`: the module whose `build(model_config)` rebuilds the
    model, so that minclip.load (and `python -m minclip.eval`) opens every run folder."""
    method = ""  # the training method: "clip" (minclip.train), or a baseline's name ("simclr", "captioning", ...)
    builder = ""  # the module whose build(model_config) rebuilds the model; "" = minclip.CLIP (checkpoint.load)
    unit = "images"  # what one example of the batch is, for the throughput in metrics.jsonl ("pairs" for CLIP)
    model: nn.Module
    model_config: dict  # what `method` rebuilds the model from (saved in config.json and the checkpoint)
    tokenizer = None  # saved with the checkpoint when the model reads text

    def loss(self, step: int) -> torch.Tensor:
        """The scalar loss of batch `step`, with its graph: every objective defines it (or overrides backward)."""
        raise TypeError(f"{type(self).__name__} defines neither loss(step) nor backward(step, autocast, scaler); "
                        "an Objective must say what it minimises")

    def backward(self, step: int, autocast, scaler) -> torch.Tensor:
        """Forward, loss and backward of batch `step`; gradients are left in .grad. Returns the loss, detached.
        (CLIP overrides this for GradCache: it encodes a batch in chunks.)"""
        with autocast:
            loss = self.loss(step)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        return loss.detach()

    def logged(self) -> dict:
        """Values shown beside the loss and written to metrics.jsonl: the temperature (and SigLIP's bias)."""
        values = {}
        if isinstance(getattr(self.model, "logit_scale", None), nn.Parameter):
            values["logit_scale"] = self.model.logit_scale.exp().item()
        if getattr(self.model, "logit_bias", None) is not None:
            values["logit_bias"] = self.model.logit_bias.item()
        return values

    def evaluate(self) -> dict:
        """Metrics every --eval-every steps (CLIP: zero-shot accuracy on fresh images); {} for none."""
        return {}

    def finish(self, out: Path, summary: dict) -> dict:
        """The final evaluation: its metrics join OUT/summary.json; it may write files into OUT (CLIP's figures)."""
        return {}

    def compile(self) -> None:
        """torch.compile every submodule (towers, heads): objectives call them directly, not only model.forward."""
        for module in self.model.children():
            module.compile()

    def train_mode(self) -> None:
        """Put the model in training mode before the first step (LiT keeps its locked tower in eval mode)."""
        self.model.train()


def run(cfg: RunConfig, make: Callable) -> dict:
    """Train (or resume) one run: `make(cfg, state, par)` -> the Objective. Returns the summary (OUT/summary.json).

    The run folder is locked while the run writes it (a second run into the same --out is refused). Ctrl-C finishes
    the current step, saves a checkpoint and raises KeyboardInterrupt with the command that resumes it."""
    cfg.check()
    par = Parallel.setup(cfg.device)
    try:
        with _locked(cfg.out, par):
            summary = _start(cfg, make, par)
    except BaseException:
        par.close(wait=False)  # a failed rank must not wait for the others at the exit barrier
        raise
    par.close()
    return summary


@contextlib.contextmanager
def _locked(out: str, par: Parallel):
    """Rank 0 writes the folder, so rank 0 holds its lock; if it cannot, every rank stops (or the others would wait
    for rank 0 forever)."""
    lock, busy = RunLock(out), None
    if par.is_main:
        try:
            lock.__enter__()
        except RunFolderBusy as error:
            busy = error
    if par.any(busy is not None):
        raise busy or RunFolderBusy(f"{out} is being written by another run (rank 0 could not lock it)")
    try:
        yield
    finally:
        if par.is_main:
            lock.__exit__()


RESUME_NEEDS = ("model", "model_config", "optimizer", "scheduler", "rng", "step", "train_config")


def _start(cfg: RunConfig, make: Callable, par: Parallel) -> dict:
    """Everything before the first step: resume, build, calibrate, optimiser. Then the loop."""
    out = Path(cfg.out)
    cfg.check_folder()  # again, under the lock: another run may have finished into this folder since check()
    state = checkpoint.read_checkpoint(out / "checkpoint.pt", needs=RESUME_NEEDS) if cfg.resume else None
    if state is not None:  # the saved run decides everything but what RESUMABLE lets change
        cfg = resume_config(cfg, state["train_config"], cfg.RESUMABLE)
    cfg = cfg.resolved()
    torch.manual_seed(cfg.seed)  # the model's initial weights are a function of --seed
    objective = make(cfg, state, par)
    autocast = torch.autocast(par.device.type, dtype=torch.bfloat16 if cfg.amp == "bf16" else torch.float16,
                              enabled=cfg.amp != "none")
    if cfg.steps == 0:  # --minutes: time a few steps on this machine, then train a fixed number of them
        cfg.steps = par.broadcast_int(calibrate_steps(objective, cfg, par, autocast))
    optimizer, scheduler = make_optimizer(objective.model, cfg)
    scaler = torch.amp.GradScaler() if cfg.amp == "fp16" else None
    start, seconds = restore(state, objective.model, optimizer, scheduler, scaler) if state is not None else (0, 0.0)
    if start > cfg.steps:
        raise ValueError(f"--steps {cfg.steps}: the run in {out} is already at step {start}; pass --steps N with "
                         f"N > {start} to train it longer")
    if state is None and par.is_main:  # a fresh run: a summary left by an earlier run here is not this run's
        (out / "summary.json").unlink(missing_ok=True)
    summary = _read_summary(out / "summary.json")
    if start == cfg.steps and summary.get("steps") == start:  # the final evaluation ran: nothing is left to do
        print(f"{out} finished at step {start}; to train it longer pass --resume --steps N with N > {start}",
              file=sys.stderr)
        return summary
    if cfg.compile:
        objective.compile()
    return _loop(cfg, objective, par, optimizer, scheduler, scaler, autocast, start, seconds)


def _read_summary(path: Path) -> dict:
    """OUT/summary.json, written last (atomically) by a finished run; {} if there is none or it cannot be read."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _loop(cfg, objective, par, optimizer, scheduler, scaler, autocast, start: int, seconds: float) -> dict:
    out, model = Path(cfg.out), objective.model
    log = Logger(out, cfg, par.is_main, start, seconds)
    if par.is_main:  # rewritten on a resume too: config.json says what the run trains with now (e.g. a new --lr)
        (out / "config.json").write_text(json.dumps(
            {"method": objective.method, "builder": objective.builder, "model": objective.model_config,
             "train": asdict(cfg)}, indent=2))
        if objective.tokenizer is not None:
            objective.tokenizer.save(out / "tokenizer.json")
    saver = _Saver(cfg, objective, optimizer, scheduler, scaler, par, saved=start)
    eval_every = cfg.eval_every or max(1, cfg.steps // 4)
    loss = None
    objective.train_mode()  # dropout, BatchNorm and patch dropout on; evaluation turns them off and back on
    with log, GracefulStop() as stop:  # the log is closed (TensorBoard flushed) however the run ends
        for step in range(start, cfg.steps):
            t0 = time.perf_counter()
            # forward and backward on batch `step`, which depends on (seed, step) only: a resumed run sees the same
            # data. The loss is read here, once, since .item() waits for the device.
            loss = objective.backward(step, autocast, scaler).item()
            # stop before a NaN reaches the weights (and then the checkpoint); every rank stops, or the others would
            # wait for this one in the gradient average
            if par.any(not math.isfinite(loss)):
                raise diverged(cfg, f"the loss is {loss}", step + 1, saver.saved)
            update(model, optimizer, scheduler, cfg, par, scaler)
            log.step(step + 1, {"loss": loss, **objective.logged(), "lr": scheduler.get_last_lr()[0]},
                     time.perf_counter() - t0, cfg.batch_size, objective.unit)
            # evaluate before saving: a checkpoint at step s means every record of step s is in metrics.jsonl
            if par.is_main and ((step + 1) % eval_every == 0 or step + 1 == cfg.steps):
                metrics = objective.evaluate()
                if metrics:
                    log.eval(step + 1, metrics)
            # atomically, every --save-every steps and at the end: a crash loses at most --save-every steps
            if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
                saver.save(step + 1, log.seconds)
            if par.any(stop.requested):  # Ctrl-C (on any rank): keep this step's work, then stop
                saver.save(step + 1, log.seconds)
                raise KeyboardInterrupt(f"stopped after step {step + 1} of {cfg.steps}; saved {out / 'checkpoint.pt'}."
                                        f" Continue with: {cfg.COMMAND} --out {out} --resume")
        summary = {"method": objective.method, "steps": cfg.steps, "batch_size": cfg.batch_size,
                   "train_seconds": log.seconds, "final_loss": loss}
        if par.is_main:  # the final evaluation, then summary.json: its presence says the run is finished
            metrics = objective.finish(out, summary)
            if metrics:
                log.eval(cfg.steps, metrics, final=True)
            summary.update(metrics)
            atomic_write_text(out / "summary.json", json.dumps(summary))
    return summary


class _Saver:
    """Writes OUT/checkpoint.pt, and knows the step of the last good one on disk (0: none yet)."""

    def __init__(self, cfg, objective, optimizer, scheduler, scaler, par, saved: int):
        self.cfg, self.objective, self.par, self.saved = cfg, objective, par, saved
        self.optimizer, self.scheduler, self.scaler = optimizer, scheduler, scaler

    def save(self, step: int, seconds: float) -> None:
        model = self.objective.model
        bad = checkpoint.nonfinite_weight(model)  # on every rank (their weights are equal), so that all stop
        if bad is not None:  # a diverged step never overwrites the last good checkpoint
            raise diverged(self.cfg, f"weight {bad} holds NaN or inf", step, self.saved)
        if self.par.is_main and self.saved != step:
            checkpoint.save_checkpoint(Path(self.cfg.out) / "checkpoint.pt", model, self.objective.tokenizer, step,
                                       self.optimizer, self.scheduler, asdict(self.cfg), self.scaler,
                                       extra={"train_seconds": seconds, "world_size": self.par.world},
                                       method=self.objective.method,
                                       builder=self.objective.builder, model_config=self.objective.model_config)
        self.saved = step


def make_optimizer(model: nn.Module, cfg: RunConfig) -> tuple:
    """AdamW on the paper's parameter groups (no decay on gains, biases, embeddings, the temperature; nothing for a
    frozen parameter) and its schedule: linear warm-up, then cosine to 0 at cfg.steps."""
    optimizer = adamw(model, cfg.lr, cfg.weight_decay, (0.9, cfg.beta2), cfg.eps)
    schedule = warmup_cosine(min(cfg.warmup, cfg.steps // 2), cfg.steps)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def update(model, optimizer, scheduler, cfg: RunConfig, par: Parallel, scaler=None) -> None:
    """Everything after backward: average the ranks' gradients, clip, step AdamW and the schedule, clamp t."""
    # each rank holds the gradient of its own rows; their average is the whole batch's (minclip/parallel.py)
    par.average_gradients(model)
    if scaler is not None:  # fp16: clip the true gradient, not the scaled one
        scaler.unscale_(optimizer)
    if cfg.grad_clip > 0:  # one bad batch cannot throw the weights far (the global norm, all parameters)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    if scaler is not None:
        scaler.step(optimizer)  # skips the step if the fp16 gradient overflowed
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)  # free the gradients' memory until the next backward
    # CLIP §2.5: the scale exp(t) is clipped at 100 "to prevent training instability" (a huge scale makes the softmax
    # one-hot and its gradients explode); CLIP-like models (CLIP, SigLIP, LiT, SLIP) have one
    if hasattr(model, "clamp_logit_scale"):
        model.clamp_logit_scale()


def calibrate_steps(objective: Objective, cfg: RunConfig, par: Parallel, autocast) -> int:
    """How many steps fit in --minutes: time whole training steps (data, forward, backward, the loss read, update)
    with a throwaway optimiser, then put the weights back, without touching any RNG. The median step time (after 4
    warm-up steps) sets the count, over at least 20 steps and min(10 s, 5% of the budget): a burst of other work
    shorter than half of that window does not move a median, while a machine that stays busy gets fewer steps, as
    it should. (A lower quantile would ignore longer bursts but, on a shared machine whose speed jitters, it counts
    the fast moments and the run overshoots its budget: measured +46% with the 25th percentile,
    benchmarks/RESULTS.md.)"""
    model = objective.model
    weights = copy.deepcopy(model.state_dict())  # BatchNorm's running statistics too
    optimizer, scheduler = make_optimizer(model, replace(cfg, steps=10 ** 9))  # cfg.steps is what we measure: not set
    scaler = torch.amp.GradScaler() if cfg.amp == "fp16" else None
    times, window = [], min(10.0, 0.05 * cfg.minutes * 60)
    cuda = [par.device.index or 0] if par.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        # every rank runs the same number of steps (each step has collectives): rank 0 alone cannot stop early
        while par.any(len(times) < 20 or sum(times[4:]) < window):
            t0 = time.perf_counter()
            objective.backward(len(times), autocast, scaler).item()
            update(model, optimizer, scheduler, cfg, par, scaler)
            times.append(time.perf_counter() - t0)
    model.load_state_dict(weights)
    per_step = sorted(times[4:])[len(times[4:]) // 2]
    return max(1, int(cfg.minutes * 60 / per_step))


def main(cfg: RunConfig, make: Callable) -> dict:
    """`python -m ...` after its flags are parsed: train; bad input, a diverged run or Ctrl-C end with one line that
    says what happened and what to do (exit 1, or 130 for Ctrl-C), not a traceback."""
    try:
        return run(cfg, make)
    except KeyboardInterrupt as stop:
        ckpt = Path(cfg.out) / "checkpoint.pt"
        print(str(stop) or (f"interrupted; the last checkpoint, {ckpt}, is whole: continue with {cfg.COMMAND} "
                            f"--out {cfg.out} --resume" if ckpt.exists() else
                            "interrupted before the first checkpoint; nothing was saved"), file=sys.stderr)
        sys.exit(130)
    except (ValueError, OSError, FloatingPointError, RunFolderBusy) as error:  # bad input (a flag, a file, an image)
        sys.exit(f"error: {error}")  # or a diverged run: the message says what to do, and a traceback would bury it
