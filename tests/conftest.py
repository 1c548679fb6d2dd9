import os

import pytest
import torch

# Tests are small; two threads match the CI machine and keep timings comparable.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def gen():
    """An explicit, seeded generator: no test depends on global RNG state."""
    return torch.Generator().manual_seed(0)


class Crash(Exception):
    """What `crash_after` raises: a run that dies between two checkpoints."""


@pytest.fixture
def crash_after(monkeypatch):
    """`with crash_after(3): run(...)`: the training loop raises Crash right after logging step 3 (a kill between
    checkpoints, for resume tests); the loop is itself again after the `with`."""
    import contextlib

    from minclip import cli
    step = cli.Logger.step

    @contextlib.contextmanager
    def crashing(n: int):
        def crash(self, at, *args):
            step(self, at, *args)
            if at == n:
                raise Crash
        with monkeypatch.context() as m:
            m.setattr(cli.Logger, "step", crash)
            with pytest.raises(Crash):
                yield
    return crashing
