"""Pre-train CLIP: `python -m minclip.train --preset tiny --data shapeworld --minutes 3 --out runs/demo`.

One step: a batch of (image, caption) pairs -> CLIP.forward -> clip_loss -> backward -> AdamW -> clamp the
temperature (CLIP §2.5). Multi-GPU: `torchrun --nproc_per_node 8 -m minclip.train ...`; each rank encodes its share
of the batch and the loss sees all of it through gather-with-grad (minclip/loss.py).
"""
import copy
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from . import checkpoint
from .cli import GracefulStop, Logger, arg, flag, parse_flags, parse_flags_or_exit
from .config import CLIPConfig
from .loss import clip_loss, distributed_clip_loss
from .model import CLIP
from .optim import adamw, warmup_cosine
from .pairs import PairSource, make_tokenizer
from .data.transforms import clip_preprocess
from .io import RunFolderBusy, RunLock
from .parallel import Parallel, resolve_device
from .resume import diverged, restore, resume_config


# The flags a resumed run may change: how long it trains, its learning rate and clipping, and what it logs where.
# Every other flag describes the run itself (model, data, batch, seed) and stays as the run began.
RESUMABLE = ("steps", "lr", "grad_clip", "save_every", "log_every", "eval_every", "tensorboard", "quiet", "device",
             "compile", "on_bad_image")
RESUMABLE_FLAGS = ", ".join(flag(name) for name in RESUMABLE)


@dataclass
class TrainConfig:
    preset: str = arg("tiny", "model preset: " + ", ".join(CLIPConfig.presets()))
    data: str = arg("shapeworld", "'shapeworld' (offline, rendered on the fly) or 'csv' (an image-caption CSV)")
    csv: str = arg("", "--data csv: a CSV/TSV file with (path, caption) rows")
    image_root: str = arg("", "--data csv: the folder image paths are relative to")
    on_bad_image: str = arg("error", "--data csv: a missing or undecodable image stops the run ('error', naming the "
                            "file and its line) or is skipped ('skip': counted, and the first ones named in a warning)")
    domains: str = arg("photo", "--data shapeworld: comma-separated domains to train on, or 'mix' for ShapeWorld's "
                       "7-domain mix (the demo trains on photos, the domain its zero-shot test uses)")
    objects: str = arg("1,1", "--data shapeworld: fewest,most objects per training image (the demo: one, like its "
                       "zero-shot test; 1,3 for crowded scenes)")
    captions: str = arg("varied", "--data shapeworld: caption style, 'varied' (alt-text-like) or 'simple'")
    steps: int = arg(0, "optimiser steps (give --steps or --minutes)")
    minutes: float = arg(0.0, "training budget in minutes: timed on the first steps, then fixed as --steps")
    batch_size: int = arg(256, "pairs per step across all ranks: the contrastive batch (paper: 32,768)")
    lr: float = arg(0.0, "peak learning rate (0 = the preset's default: 3e-3 tiny, 1e-3 small, 5e-4 else)")
    warmup: int = arg(100, "linear warm-up steps (paper: 2,000 at 32 epochs)")
    weight_decay: float = arg(-1.0, "AdamW decoupled weight decay on weight matrices (-1 = the preset's: 1.0 for tiny, "
                              "whose held-out pairs need the stronger prior, else the paper's 0.2)")
    beta2: float = arg(0.0, "Adam beta2 (0 = 0.98 for ViTs, 0.999 for ResNets, as the paper)")
    eps: float = arg(0.0, "Adam eps (0 = 1e-6 for ViTs, 1e-8 for ResNets)")
    grad_clip: float = arg(1.0, "clip the gradient norm to this (0 = off)")
    amp: str = arg("none", "mixed precision: none, bf16 (CPU or GPU) or fp16 (GPU, with a GradScaler)")
    accum_steps: int = arg(1, "encode the batch in this many chunks (GradCache: the loss still sees the whole batch)")
    compile: bool = arg(False, "torch.compile both towers")
    patch_dropout: float = arg(0.0, "FLIP: fraction of image patches dropped while training (e.g. 0.5)")
    seed: int = arg(0, "seeds the model init, the data stream and every random draw")
    out: str = arg("runs/clip", "run folder: config.json, metrics.jsonl, checkpoint.pt, zeroshot.json")
    resume: bool = arg(False, "continue from OUT/checkpoint.pt (bit-identical on CPU); the run keeps its settings, "
                       f"except {RESUMABLE_FLAGS}, which may change")
    save_every: int = arg(50, "write the checkpoint every this many steps (atomically)")
    log_every: int = arg(10, "append to metrics.jsonl every this many steps")
    eval_every: int = arg(0, "zero-shot evaluation on held-out ShapeWorld images every this many steps (0 = 4 times)")
    tensorboard: bool = arg(False, "also log to OUT/tensorboard")
    device: str = arg("auto", "auto, cpu, cuda, cuda:1, mps ...")
    quiet: bool = arg(False, "no progress bar (metrics.jsonl is still written)")

    def check(self) -> None:
        """Refuse bad values before any work starts, naming the flag and the fix."""
        def need(ok, msg):
            if not ok:
                raise ValueError(msg)
        def finite(*names):  # inf and nan pass a `>= 0` check (nan fails it with a misleading message)
            for name in names:
                need(math.isfinite(getattr(self, name)), f"{flag(name)} {getattr(self, name)} must be a finite number")
        need(self.preset in CLIPConfig.presets(), f"--preset {self.preset!r} is unknown; choose one of {CLIPConfig.presets()}")
        need(self.data in ("shapeworld", "csv"), f"--data {self.data!r} is unknown; use shapeworld or csv")
        need(self.data != "csv" or Path(self.csv).is_file(), f"--data csv needs --csv FILE; {self.csv!r} is not a file")
        need(self.on_bad_image in ("error", "skip"), f"--on-bad-image {self.on_bad_image!r}: use error or skip")
        lo_hi = self.objects.split(",")
        need(len(lo_hi) == 2 and all(k.strip().isdigit() for k in lo_hi) and 1 <= int(lo_hi[0]) <= int(lo_hi[1]) <= 3,
             f"--objects {self.objects!r}: give fewest,most with 1 <= fewest <= most <= 3, e.g. 1,3")
        need(self.captions in ("varied", "simple"), f"--captions {self.captions!r}: use varied or simple")
        from .data.render import DOMAINS
        bad = [d for d in self.domains.split(",") if d not in DOMAINS] if self.domains != "mix" else []
        need(not bad, f"--domains: unknown {bad}; use 'mix' or some of {list(DOMAINS)}")
        finite("minutes", "lr", "weight_decay", "beta2", "eps", "grad_clip", "patch_dropout")
        need((self.steps > 0) != (self.minutes > 0) or self.resume,
             f"give exactly one of --steps N or --minutes M (got steps={self.steps}, minutes={self.minutes})")
        need(self.steps >= 0 and self.minutes >= 0, "--steps and --minutes must not be negative")
        need(self.batch_size >= 2, f"--batch-size {self.batch_size}: a contrastive batch needs at least 2 pairs")
        need(self.accum_steps >= 1 and self.batch_size % self.accum_steps == 0,
             f"--batch-size {self.batch_size} must split into --accum-steps {self.accum_steps} equal chunks")
        need(self.lr >= 0 and self.warmup >= 0, "--lr and --warmup must be >= 0")
        need(self.weight_decay >= 0 or self.weight_decay == -1, "--weight-decay must be >= 0 (or -1: the preset's)")
        need(0 <= self.beta2 < 1, f"--beta2 {self.beta2} must be in (0, 1), e.g. 0.98 (or 0: the preset's)")
        need(self.eps >= 0, f"--eps {self.eps} must be > 0, e.g. 1e-6 (or 0: the preset's)")
        need(self.grad_clip >= 0, f"--grad-clip {self.grad_clip} must be >= 0 (0 turns clipping off)")
        need(0 <= self.seed < 2 ** 63, f"--seed {self.seed} must be in [0, 2**63): numpy's seed sequences take "
             "non-negative integers and torch's take 64-bit ones, e.g. --seed 0")
        need(self.amp in ("none", "bf16", "fp16"), f"--amp {self.amp!r}: use none, bf16 or fp16")
        device = resolve_device(self.device)  # raises if the device is not there
        need(self.amp != "fp16" or device.type == "cuda", f"--amp fp16 needs a CUDA GPU (this run is on {device}, "
             "where fp16 is slow and needs loss scaling); use --amp bf16 on a CPU")
        need(0 <= self.patch_dropout < 1, f"--patch-dropout {self.patch_dropout} must be in [0, 1)")
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


def train_step(model, images, tokens, loss_fn, accum_steps: int = 1, autocast=None, scaler=None):
    """Forward and backward for one batch; gradients are left in .grad. Returns the loss (detached).

    With accum_steps = k the batch is encoded in k chunks, GradCache-style (Gao et al. 2021), and the loss is exactly
    the full batch's: 1. embed every chunk without a graph; 2. compute the loss on all the embeddings and its gradient
    with respect to them; 3. re-encode each chunk with a graph and push those gradients through it. Memory is one
    chunk's activations; compute is one extra forward.
    """
    autocast = autocast or torch.autocast("cpu", enabled=False)
    scale = scaler.scale if scaler is not None else (lambda x: x)
    if accum_steps == 1:
        with autocast:
            out = model(images, tokens)
            loss = loss_fn(_wide(out.image_embeds), _wide(out.text_embeds), _wide(out.logit_scale))
        scale(loss).backward()
        return loss.detach()
    chunks = list(zip(images.chunk(accum_steps), tokens.chunk(accum_steps)))
    rng, cached = [], []
    with torch.no_grad():  # 1.
        for x, t in chunks:
            rng.append(checkpoint.rng_state())  # patch dropout must draw the same patches again in 3.
            with autocast:
                cached.append((model.encode_image(x), model.encode_text(t)))
    image_embeds = _wide(torch.cat([i for i, _ in cached])).requires_grad_()  # (B, E)
    text_embeds = _wide(torch.cat([t for _, t in cached])).requires_grad_()  # (B, E)
    loss = loss_fn(image_embeds, text_embeds, model.logit_scale.exp().clamp(max=100.0))  # 2.
    scale(loss).backward()  # fills image_embeds.grad, text_embeds.grad and model.logit_scale.grad
    grads = zip(image_embeds.grad.chunk(accum_steps), text_embeds.grad.chunk(accum_steps))
    for (x, t), state, (gi, gt) in zip(chunks, rng, grads):  # 3.
        checkpoint.set_rng_state(state)
        with autocast:
            i, e = model.encode_image(x), model.encode_text(t)
        torch.autograd.backward([_wide(i), _wide(e)], [gi, gt])
    return loss.detach()


def _wide(x):
    """The loss in float32 at least: bf16/fp16 activations (autocast) are widened, float64 stays float64."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def resolve(cfg: TrainConfig, model_config: CLIPConfig) -> TrainConfig:
    """Fill the preset-dependent defaults (lr, Adam betas) so config.json records what actually ran."""
    cfg = copy.copy(cfg)
    resnet = model_config.vision.kind == "resnet"
    cfg.lr = cfg.lr or {"tiny": 3e-3, "small": 1e-3}.get(cfg.preset, 5e-4)
    # tiny: 1.0, not 0.2. Measured on the demo's 1,000-1,150 steps (zero-shot on held-out pairs, 2,000 images):
    # 0.05 -> 83%, 0.2 -> 87-89%, 0.5 -> 85%, 1.0 -> 91-92%; seen pairs ~100% throughout.
    cfg.weight_decay = cfg.weight_decay if cfg.weight_decay >= 0 else {"tiny": 1.0}.get(cfg.preset, 0.2)
    cfg.beta2 = cfg.beta2 or (0.999 if resnet else 0.98)
    cfg.eps = cfg.eps or (1e-8 if resnet else 1e-6)
    return cfg


def make_optimizer(model, cfg: TrainConfig) -> tuple:
    """AdamW on the paper's parameter groups and its schedule: linear warm-up, then cosine to 0 at cfg.steps."""
    optimizer = adamw(model, cfg.lr, cfg.weight_decay, (0.9, cfg.beta2), cfg.eps)
    schedule = warmup_cosine(min(cfg.warmup, cfg.steps // 2), cfg.steps)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def update(model, optimizer, scheduler, cfg: TrainConfig, par: Parallel, scaler=None) -> None:
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
    model.clamp_logit_scale()  # §2.5: keep the temperature's scale <= 100


def calibrate_steps(model, source, tokenizer, preprocess, cfg, loss_fn, par, autocast=None) -> int:
    """How many steps fit in --minutes: time whole training steps (data, forward, backward, the loss read, update) on
    a throwaway copy of the model, without touching any RNG. The median step time (after 4 warm-up steps) sets the
    count, over at least 20 steps and min(10 s, 5% of the budget): a burst of other work shorter than half of that
    window does not move a median, while a machine that stays busy gets fewer steps, as it should. (A lower quantile
    would ignore longer bursts but, on a shared machine whose speed jitters, it counts the fast moments and the run
    overshoots its budget: measured +46% with the 25th percentile, benchmarks/RESULTS.md.)"""
    probe = copy.deepcopy(model)
    optimizer, scheduler = make_optimizer(probe, replace(cfg, steps=10 ** 9))  # cfg.steps is what we measure: not set
    scaler = torch.amp.GradScaler() if cfg.amp == "fp16" else None
    times, window = [], min(10.0, 0.05 * cfg.minutes * 60)
    cuda = [par.device.index or 0] if par.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        # every rank runs the same number of steps (each step has collectives): rank 0 alone cannot stop early
        while par.any(len(times) < 20 or sum(times[4:]) < window):
            t0 = time.perf_counter()
            images, tokens = source.batch(len(times), tokenizer, preprocess, par.device)
            train_step(probe, images, tokens, loss_fn, cfg.accum_steps, autocast, scaler).item()
            update(probe, optimizer, scheduler, cfg, par, scaler)
            times.append(time.perf_counter() - t0)
    per_step = sorted(times[4:])[len(times[4:]) // 2]
    return max(1, int(cfg.minutes * 60 / per_step))


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) one training run; returns the final zero-shot metrics (also in OUT/zeroshot.json).

    The run folder is locked while the run writes it (a second run into the same --out is refused). Ctrl-C finishes
    the current step, saves a checkpoint and raises KeyboardInterrupt with the command that resumes it."""
    cfg.check()
    par = Parallel.setup(cfg.device)
    lock, busy = RunLock(cfg.out), None
    if par.is_main:  # rank 0 writes the folder, so rank 0 holds its lock
        try:
            lock.__enter__()
        except RunFolderBusy as error:
            busy = error
    if par.any(busy is not None):  # every rank stops, or the others would wait for rank 0 forever
        raise busy or RunFolderBusy(f"{cfg.out} is being written by another run (rank 0 could not lock it)")
    try:
        result = _run(cfg, par)
    except BaseException:
        par.close(wait=False)
        raise
    finally:
        if par.is_main:
            lock.__exit__()
    par.close()
    return result


def _run(cfg: TrainConfig, par: Parallel) -> dict:
    out = Path(cfg.out)
    cfg.check_folder()  # again, under the lock: another run may have finished into this folder since check()
    resumable = ("model", "model_config", "tokenizer", "optimizer", "scheduler", "rng", "step", "train_config")
    state = checkpoint.read_checkpoint(out / "checkpoint.pt", needs=resumable) if cfg.resume else None
    if state is not None:  # the saved run decides everything but what RESUMABLE lets change
        cfg = resume_config(cfg, state["train_config"], RESUMABLE)
    torch.manual_seed(cfg.seed)
    model_config = CLIPConfig.preset(cfg.preset)
    model_config.vision.patch_dropout = cfg.patch_dropout
    cfg = resolve(cfg, model_config)
    source = PairSource(cfg, model_config, par.rank, par.world)
    tokenizer = make_tokenizer(model_config, state, source.corpus)
    model = CLIP(model_config).to(par.device)
    preprocess = clip_preprocess(model_config.vision.image_size)
    loss_fn = distributed_clip_loss if par.world > 1 else clip_loss
    autocast = torch.autocast(par.device.type, dtype=torch.bfloat16 if cfg.amp == "bf16" else torch.float16,
                              enabled=cfg.amp != "none")
    if cfg.steps == 0:  # --minutes: time a few steps on this machine, then train a fixed number of them
        cfg.steps = par.broadcast_int(calibrate_steps(model, source, tokenizer, preprocess, cfg, loss_fn, par, autocast))
    optimizer, scheduler = make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler() if cfg.amp == "fp16" else None
    start, seconds = restore(state, model, optimizer, scheduler, scaler) if state is not None else (0, 0.0)
    if start > cfg.steps:
        raise ValueError(f"--steps {cfg.steps}: the run in {out} is already at step {start}; pass --steps N with "
                         f"N > {start} to train it longer")
    final = json.loads((out / "zeroshot.json").read_text()) if (out / "zeroshot.json").exists() else {}
    if start == cfg.steps and (final.get("steps") == start or cfg.data != "shapeworld"):
        print(f"{out} finished at step {start}; to train it longer pass --resume --steps N with N > {start}",
              file=sys.stderr)
        return {k: final[k] for k in ("seen", "unseen")} if cfg.data == "shapeworld" else {}
    if cfg.compile:
        model.visual.compile()
        model.text.compile()
    log = Logger(out, cfg, par.is_main, start, seconds)
    if par.is_main:  # rewritten on a resume too: config.json says what the run trains with now (e.g. a new --lr)
        (out / "config.json").write_text(json.dumps({"model": model_config.to_dict(), "train": asdict(cfg)}, indent=2))
        tokenizer.save(out / "tokenizer.json")
    eval_every = cfg.eval_every or max(1, cfg.steps // 4)
    saved = start if state is not None else 0  # the step of the last good checkpoint on disk (0: none yet)

    def save(step: int) -> None:
        nonlocal saved
        bad = checkpoint.nonfinite_weight(model)  # on every rank (their weights are equal), so that all stop
        if bad is not None:  # a diverged step never overwrites the last good checkpoint
            raise diverged(cfg, f"weight {bad} holds NaN or inf", step, saved)
        if par.is_main and saved != step:
            checkpoint.save_checkpoint(out / "checkpoint.pt", model, tokenizer, step, optimizer, scheduler,
                                       asdict(cfg), scaler, extra={"train_seconds": log.seconds})
        saved = step

    model.train()
    with log, GracefulStop() as stop:  # the log is closed (TensorBoard flushed) however the run ends
        for step in range(start, cfg.steps):
            # the batch of this step depends on (seed, step) only: a resumed run sees the same data (minclip/pairs.py)
            t0 = time.perf_counter()
            images, tokens = source.batch(step, tokenizer, preprocess, par.device)
            loss = train_step(model, images, tokens, loss_fn, cfg.accum_steps, autocast, scaler)
            if not math.isfinite(loss.item()):  # stop before a NaN reaches the weights (and then the checkpoint)
                raise diverged(cfg, f"the loss is {loss.item()}", step + 1, saved)
            update(model, optimizer, scheduler, cfg, par, scaler)
            log.step(step + 1, loss.item(), model.logit_scale.exp().item(), scheduler.get_last_lr()[0],
                     time.perf_counter() - t0, cfg.batch_size)
            # evaluate before saving: a checkpoint at step s means every record of step s is in metrics.jsonl
            if par.is_main and cfg.data == "shapeworld" and ((step + 1) % eval_every == 0 or step + 1 == cfg.steps):
                log.eval(step + 1, source.zeroshot(model, tokenizer, preprocess, n=500))
            if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
                save(step + 1)
            if par.any(stop.requested):  # Ctrl-C (on any rank): keep this step's work, then stop
                save(step + 1)
                raise KeyboardInterrupt(f"stopped after step {step + 1} of {cfg.steps}; saved {out / 'checkpoint.pt'}."
                                        f" Continue with: python -m minclip.train --out {out} --resume")
        result = {}
        if par.is_main and cfg.data == "shapeworld":
            result = source.zeroshot(model, tokenizer, preprocess, n=2000)
            (out / "zeroshot.json").write_text(json.dumps({**result, "steps": cfg.steps, "train_seconds": log.seconds}))
            log.eval(cfg.steps, result, final=True)
            from .plots import save_run_figures  # matplotlib and seaborn load only for the run's figures
            save_run_figures(out, source.shapeworld, model, tokenizer, preprocess)
    return result


def parse_args(argv=None) -> TrainConfig:
    return parse_flags(TrainConfig, argv, prog="python -m minclip.train", description=__doc__)


def main(argv=None) -> None:
    cfg = parse_flags_or_exit(TrainConfig, argv, prog="python -m minclip.train", description=__doc__)
    try:
        result = train(cfg)
    except KeyboardInterrupt as stop:  # Ctrl-C: a one-line message (what was saved, how to resume), no traceback
        ckpt = Path(cfg.out) / "checkpoint.pt"
        print(str(stop) or (f"interrupted; the last checkpoint, {ckpt}, is whole: continue with python -m "
                            f"minclip.train --out {cfg.out} --resume" if ckpt.exists() else
                            "interrupted before the first checkpoint; nothing was saved"), file=sys.stderr)
        sys.exit(130)
    except (ValueError, OSError, FloatingPointError, RunFolderBusy) as error:  # bad input (a flag, a file, an image)
        sys.exit(f"error: {error}")  # or a diverged run: the message says what to do, and a traceback would bury it
    if result:  # the main process of a ShapeWorld run
        print(f"zero-shot on 2,000 fresh photos, 64 classes: seen pairs {result['seen']:.1%}, held-out pairs "
              f"{result['unseen']:.1%}. Figures: {Path(cfg.out) / 'similarity.png'}, {Path(cfg.out) / 'predictions.png'}")


if __name__ == "__main__":
    main()
