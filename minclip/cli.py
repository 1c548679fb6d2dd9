"""What a training run takes on the command line and what it shows: `python -m minclip.train` and every
`python -m baselines.NAME` share this.

A run's settings are one dataclass whose fields carry their help text (`arg`); `parse_flags` turns the fields into
`--flags`, so the dataclass is the one list of options, for the command line, for notebooks and for config.json.
"""
import argparse
import json
import signal
import threading
import time
import typing
from dataclasses import field, fields
from pathlib import Path


def arg(default, help):
    """A dataclass field with its --help text: `lr: float = arg(3e-3, "peak learning rate")`."""
    return field(default=default, metadata={"help": help})


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows each flag's default and the module docstring as written (its diagrams intact). A flag whose
    default is None takes its value from elsewhere (the preset), and its help text says which values."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def flag(name: str) -> str:
    """The command-line flag of a config field: lr -> --lr, batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def parse_flags(config_class, argv=None, prog: str = "", description: str = ""):
    """An instance of `config_class` from command-line flags: one `--some-name` per field `some_name`; a bool field
    becomes a switch. Checking the values is the config's own job (its `check()`).

    The instance's `flags_given` is the set of fields named on the command line, so that a resumed run can tell
    `--batch-size 256` (refused: the run keeps its own) from no flag at all, even where 256 is the default."""
    config = config_class(**vars(_parser(config_class, prog, description).parse_args(argv)))
    named = _parser(config_class, prog, description, defaults=False).parse_args(argv)  # only the flags given
    config.flags_given = set(vars(named))
    return config


def _parser(config_class, prog: str, description: str, defaults: bool = True) -> argparse.ArgumentParser:
    """The parser of `config_class`'s fields; defaults=False leaves a flag that is not given out of the result."""
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    resumable = getattr(config_class, "RESUMABLE", ())  # the flags a resumed run may change (minclip/loop.py)
    for f in fields(config_class):
        default = f.default if defaults else argparse.SUPPRESS
        text = f.metadata["help"] + (" [may change on --resume]" if f.name in resumable else "")
        if f.type in ("bool", bool):
            parser.add_argument(flag(f.name), action="store_true", default=default, help=text)
        else:
            kind = {"int": int, "float": float, "str": str}.get(f.type, f.type)
            kind = next((t for t in typing.get_args(kind) if t is not type(None)), kind)  # Optional[float] -> float
            parser.add_argument(flag(f.name), type=kind, default=default, help=text)
    return parser


class Logger:
    """A tqdm bar (loss, temperature, throughput), metrics.jsonl and, optionally, TensorBoard.

    The log of a resumed run is the log an uninterrupted run writes (apart from timings): a fresh run starts
    metrics.jsonl anew, and a resumed one first drops the records after its checkpoint's step (written by the run that
    was killed after it), as TensorBoard's purge_step does for its events. `seconds` carries the training time across.
    """

    def __init__(self, out: Path, cfg, active: bool, start: int, seconds: float = 0.0):
        from tqdm.auto import tqdm
        self.active, self.every, self.seconds, self.out = active, cfg.log_every, seconds, out
        self.bar = tqdm(total=cfg.steps, initial=start, disable=not active or cfg.quiet, unit="step",
                        dynamic_ncols=True)
        self.tb = None
        if active:
            _trim_log(out / "metrics.jsonl", start)
        if active and cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(out / "tensorboard", purge_step=start)

    def write(self, record: dict) -> None:
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, record["step"])

    def step(self, step: int, values: dict, seconds: float, examples: int, unit: str = "pairs") -> None:
        """One optimiser step: `values` (loss, lr, the temperature ...) on the bar and, every --log-every steps, in
        metrics.jsonl with the throughput, `examples` per `seconds` as "{unit}_per_s"."""
        self.bar.update(1)
        self.seconds += seconds  # training time only: evaluation and checkpoints are not counted
        if not self.active:
            return
        per_s = examples / seconds
        self.bar.set_postfix({**{k: f"{v:.3g}" for k, v in values.items() if k != "lr"}, f"{unit}_s": f"{per_s:.0f}"})
        if step % self.every == 0:
            self.write({"step": step, **values, f"{unit}_per_s": per_s, "time": time.time()})

    def eval(self, step, metrics, final=False):
        if self.active:
            self.write({"step": step, **{f"zeroshot_{k}": v for k, v in metrics.items()}})
            self.bar.write(("final " if final else "") + f"step {step}: zero-shot " +
                           ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))

    def close(self):
        self.bar.close()
        if self.tb is not None:
            self.tb.close()

    def __enter__(self) -> "Logger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _trim_log(metrics: Path, start: int) -> None:
    """Keep the records of steps 1..start (none for a fresh run): what the run that reached `start` logged."""
    lines = metrics.read_text().splitlines() if start > 0 and metrics.exists() else []
    metrics.write_text("".join(line + "\n" for line in lines if _step(line) <= start))


def _step(line: str) -> float:
    """The step of one metrics.jsonl record; a line torn by a kill mid-write counts as after every step."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError):
        return float("inf")


class GracefulStop:
    """`with GracefulStop() as stop:` Ctrl-C (SIGINT) or SIGTERM sets `stop.requested` instead of raising at once,
    so that the training loop can finish its step, save and stop cleanly. A second Ctrl-C stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> "GracefulStop":
        self.requested, self.previous = False, {}
        if threading.current_thread() is threading.main_thread():  # Python lets only the main thread set handlers
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            if handler is not None:  # None: a handler set outside Python, which Python cannot put back
                signal.signal(s, handler)
