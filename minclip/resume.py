"""Resuming a run, and stopping one that diverged: which settings a resume may change, how the training state is
put back, and what to tell the user when the loss or the weights stop being finite (minclip/loop.py uses these)."""
from dataclasses import fields
from pathlib import Path

from . import checkpoint
from .cli import flag


def resume_config(cfg, saved: dict, resumable: tuple):
    """The saved run's settings (a dict of `type(cfg)`'s fields), with the `resumable` fields that `cfg` sets taken
    from it; any other field set to a value other than the run's is refused (a resumed run cannot change its model,
    data, batch or seed).

    "Sets": given on the command line (parse_flags records which); for a TrainConfig built in Python, any field that
    differs from its default."""
    kind = type(cfg)
    defaults, names = kind(), {f.name for f in fields(kind)}
    given = getattr(cfg, "flags_given", None)
    given = names if given is None else given
    run = kind(**{**{k: v for k, v in saved.items() if k in names}, "resume": True, "out": cfg.out})
    for name in sorted(given & names - {"resume", "out"}):
        value = getattr(cfg, name)
        if value == getattr(run, name) or ("flags_given" not in vars(cfg) and value == getattr(defaults, name)):
            continue  # what the run already has, or (built in Python) left at its default
        if name not in resumable:
            may = ", ".join(flag(n) for n in resumable)
            raise ValueError(f"{flag(name)} {value!r}: the run in {cfg.out} has {flag(name)} {getattr(run, name)!r}, "
                             f"and a resumed run keeps it; only {may} may change on --resume. To train with "
                             f"{flag(name)} {value!r}, start a new run in another --out")
        setattr(run, name, value)
    return run


def restore(state: dict, model, optimizer, scheduler, scaler) -> tuple:
    """Load a checkpoint into the run's objects; returns (step, training seconds so far).

    The learning rate is recomputed from the schedule at the saved step, so that a resume with a new --lr or --steps
    continues on the new schedule (with neither, it is the saved learning rate, to the bit)."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])  # its step count; the schedule itself (a function) is the new run's
    peak = optimizer.defaults["lr"]
    scheduler.base_lrs = [peak for _ in optimizer.param_groups]
    for group, schedule in zip(optimizer.param_groups, scheduler.lr_lambdas):
        group["initial_lr"], group["lr"] = peak, peak * schedule(scheduler.last_epoch)
    if scaler is not None:
        scaler.load_state_dict(state["scaler"])
    checkpoint.set_rng_state(state["rng"])
    return state["step"], state.get("extra", {}).get("train_seconds", 0.0)


def diverged(cfg, what: str, step: int, saved: int) -> FloatingPointError:
    """The error for a run whose loss or weights stopped being finite after `step` steps: the likely cause (and
    only the remedies that apply to this run) and how to go on."""
    causes = [f"the learning rate is too high for this batch (--lr {cfg.lr:g})"]
    if cfg.amp == "fp16":
        causes.append("fp16 overflowed (--amp bf16 has float32's range; start a new run to change --amp)")
    if cfg.grad_clip == 0:
        causes.append("no gradient clipping (add --grad-clip 1)")
    lower = f"--lr {cfg.lr / 10:g}"
    if saved:
        fix = (f"the last good checkpoint is {Path(cfg.out) / 'checkpoint.pt'} (after step {saved}); continue from it "
               f"with a lower learning rate: {cfg.COMMAND} --out {cfg.out} --resume {lower}")
    else:
        fix = (f"no checkpoint was written yet (one is written every --save-every {cfg.save_every} steps); start again "
               f"with a lower learning rate, e.g. {lower} (the same --out is fine: it holds no checkpoint)")
    return FloatingPointError(f"after step {step}: {what}. Likely cause: {'; or '.join(causes)}. {fix}")
