"""The machinery every check shares: call the student's function safely, compare, explain failures with hints that
grow with each failed attempt, and enforce an exercise's rules ("no minclip inside", "no autograd").
"""
import collections
import dis
import functools
import inspect
import types

import torch
import torch.nn.functional as F


class ExerciseError(AssertionError):
    """A check failed; the message says what to fix."""


FAILURES = collections.Counter()  # check name -> how many times it has failed in this kernel
_RUNNING = []  # the check now running (a stack: hint() reads its top)


def exercise(check):
    """Decorate every check_*: count its failures, so that hint() can say more at each new attempt."""
    @functools.wraps(check)
    def run(*args, **kwargs):
        _RUNNING.append(check.__name__)
        try:
            return check(*args, **kwargs)
        except ExerciseError:
            FAILURES[check.__name__] += 1
            raise
        finally:
            _RUNNING.pop()
    return run


def hint(concept: str, more: str, formula: str) -> str:
    """A graduated hint: the concept at the first failure, more at the second, the formula from the third on."""
    tries = FAILURES[_RUNNING[-1]] if _RUNNING else 2
    if tries == 0:
        return f"Hint: {concept} (Run the check again after a change: a second failure says more.)"
    if tries == 1:
        return f"Hint: {concept} {more} (A third failure gives the formula.)"
    return f"Hint: {concept} {more} The formula: {formula}"


def names_used(fn, only_globals: bool = False) -> set:
    """The names that fn's code mentions (globals, attributes, imports), in fn, in the functions nested in it, and in
    the functions of fn's own module (the notebook's helpers) that it calls. only_globals: the global names and the
    imported modules only, not attributes (`x.T` mentions the attribute T, not a global T)."""
    kinds = {"LOAD_GLOBAL", "LOAD_NAME", "IMPORT_NAME", "LOAD_DEREF"}  # LOAD_DEREF: a variable of an enclosing function
    names, seen, todo = set(), set(), [fn]
    while todo:
        f = todo.pop()
        if not inspect.isfunction(f) or f in seen:
            continue
        seen.add(f)
        codes, mine = [f.__code__], set()
        while codes:
            code = codes.pop()
            mine.update(i.argval for i in dis.get_instructions(code) if i.opname in kinds
                        or not only_globals and isinstance(i.argval, str) and i.argval in code.co_names)
            codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
        names |= mine
        todo += [v for n in mine if inspect.isfunction(v := f.__globals__.get(n)) and v.__module__ == f.__module__]
    return names


def uses_minclip(fn) -> list:
    """The global names in fn's code that come from minclip (the package, a module, a function or a class)."""
    def from_minclip(value) -> bool:
        where = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None) or ""
        return where == "minclip" or where.startswith("minclip.")
    scope = {**fn.__globals__, **inspect.getclosurevars(fn).nonlocals}
    return sorted(n for n in names_used(fn, only_globals=True)
                  if n.split(".")[0] == "minclip" or n in scope and from_minclip(scope[n]))


def forbid(fn, forbidden: set, name: str, why: str) -> None:
    """Enforce an exercise's rule: raise an ExerciseError if fn's code uses any of the forbidden names."""
    used = sorted(names_used(fn) & forbidden)
    if used:
        raise ExerciseError(f"{name} uses {', '.join(used)}: {why}")


def call(fn, *args, name: str = "your function", expected: str = ""):
    """Call the student's function; turn "not implemented yet" and crashes into an explanation (`expected`: the
    shapes the exercise works with, said when the student's code crashes, often on a shape)."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise ExerciseError(f"{name} is not implemented yet: replace the `raise NotImplementedError` line with your "
                            f"code, run the cell again, and the check will tell you how it went.") from None
    except ExerciseError:
        raise
    except Exception as error:  # the student's bug: show it, with the inputs' shapes
        shapes = ", ".join(str(tuple(a.shape)) if isinstance(a, torch.Tensor) else type(a).__name__ for a in args)
        raise ExerciseError(f"{name} raised {type(error).__name__}: {error} (called with {shapes})"
                            + (f". The shapes: {expected}" if expected else "")) from error


def expect_close(got, want, what: str, hint: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Raise an ExerciseError naming `what` if got != want (shape first, then values)."""
    got = torch.as_tensor(got)
    want = torch.as_tensor(want)
    if got.shape != want.shape:
        raise ExerciseError(f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}. {hint}")
    if not torch.allclose(got.double(), want.double(), atol=atol, rtol=rtol):
        worst = (got.double() - want.double()).abs().max().item()
        raise ExerciseError(f"{what}: values differ from the reference by up to {worst:.3g}. {hint}")


def expect_nearest(got, queries, keys, name: str, per: str, over: str) -> None:
    """Check a "most similar key for each query" answer: got (Q,) must be argmax_k cos(query, key).

    Explains the two usual mistakes: the wrong shape, and plain dot products where cosines were asked for (then the
    longest key vector wins, whatever its direction). `per` and `over` name the queries and keys ("image", "class").
    """
    want = (F.normalize(queries, dim=1) @ F.normalize(keys, dim=1).T).argmax(dim=1)  # (Q,)
    overs = over + ("es" if over.endswith("s") else "s")  # images, classes
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        raise ExerciseError(f"{name} should return one {over} index per {per}, shape ({len(want)},), got "
                            f"{getattr(got, 'shape', type(got).__name__)}: argmax over the {overs} (dim=1)")
    if not torch.equal(got.long(), want):
        dot = (queries @ keys.T).argmax(dim=1)
        hint = (f"these are the argmaxes of plain dot products: normalise the {over} embeddings first, or the "
                f"longest {over} vector wins whatever its direction" if torch.equal(got.long(), dot) else
                f"compute the cosine similarities of every {per} with every {over}, then argmax over the {overs}")
        raise ExerciseError(f"{name} gave {got.tolist()}, expected {want.tolist()}: {hint}")


def passed(name: str, detail: str = "") -> bool:
    print(f"✓ {name}: correct{(' — ' + detail) if detail else ''}")
    return True
