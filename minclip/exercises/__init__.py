"""Auto-checks for the notebooks' exercises: `from minclip.exercises import check_<name>`; `check_<name>(your_fn)`.

Each check calls the student's function on hidden random cases and compares it with minclip's own implementation.
It prints a short success line, or raises an ExerciseError (an AssertionError) that says what differed and what to
look at: the usual mistakes by name ("only the image→text direction"), anything else with a hint that grows with
each failed attempt (core.hint: the concept, then more, then the formula). Rules an exercise states are enforced by
reading the student's function (core.forbid, core.uses_minclip). One module per notebook (loss.py for
02_contrastive_loss, ...); every `check_*` they define is exported here. `make student` replaces each solution with
a stub; tests/test_exercises.py checks that every stub fails its check with a helpful message, every solution passes,
and each listed wrong answer fails with a message that names it.
"""
import importlib
import pkgutil

from .core import ExerciseError

for _module in pkgutil.iter_modules(__path__):
    _mod = importlib.import_module(f"{__name__}.{_module.name}")
    globals().update({k: v for k, v in vars(_mod).items() if k.startswith("check_")})
