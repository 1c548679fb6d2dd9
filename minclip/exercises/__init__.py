"""Auto-checks for the notebooks' exercises: `from minclip.exercises import check_<name>`; `check_<name>(your_fn)`.

Each check calls the student's function on hidden random cases and compares it with minclip's own implementation.
It prints a short success line, or raises an ExerciseError (an AssertionError) that says what differed and what to
look at. One module per notebook (loss.py for 02_contrastive_loss, ...); every `check_*` they define is exported here.
`make student` replaces each solution with a stub; tests/test_exercises.py checks that every stub fails its check
with a helpful message and every solution passes.
"""
import importlib
import pkgutil

from .core import ExerciseError

for _module in pkgutil.iter_modules(__path__):
    _mod = importlib.import_module(f"{__name__}.{_module.name}")
    globals().update({k: v for k, v in vars(_mod).items() if k.startswith("check_")})
