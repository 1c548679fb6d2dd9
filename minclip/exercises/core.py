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


class NotYet(ExerciseError):
    """The student's function is still the stub (not counted as an attempt)."""


FAILURES = collections.Counter()  # check name -> how many different attempts have failed it in this kernel
_LAST_FAILED = {}  # check name -> the fingerprint of the code that failed it last
_LEVEL = []  # the hint level of the check now running: how many earlier attempts failed (a stack)


def exercise(check):
    """Decorate every check_*: count its failed attempts, so that hint() can say more at each new one. The stub, and
    the same code run again unchanged, are not new attempts (the same code gets the same hint)."""
    @functools.wraps(check)
    def run(fn, *args, **kwargs):
        name, attempt = check.__name__, _fingerprint(fn)
        again = _LAST_FAILED.get(name) == attempt
        _LEVEL.append(FAILURES[name] - again)
        try:
            return check(fn, *args, **kwargs)
        except NotYet:
            raise
        except ExerciseError:
            FAILURES[name] += not again
            _LAST_FAILED[name] = attempt
            raise
        finally:
            _LEVEL.pop()
    return run


def hint(concept: str, more: str, formula: str) -> str:
    """A graduated hint: the concept at the first failure, more at the second, the formula from the third on."""
    tries = _LEVEL[-1] if _LEVEL else 2
    if tries == 0:
        return f"Hint: {concept} (Run the check again after a change: a second failure says more.)"
    if tries == 1:
        return f"Hint: {concept} {more} (A third failure gives the formula.)"
    return f"Hint: {concept} {more} The formula: {formula}"


# The rules an exercise states ("no minclip inside", "no autograd") are checked by reading the student's function:
# the bytecode says which attributes it touches (x.backward) and which global or enclosing names it loads, and those
# names are looked up to see what they are (a function from minclip, a module of torch.autograd, ...).

def student_function(fn):
    """The Python function behind what the student passed: fn, unwrapped from decorators (@torch.no_grad()),
    functools.partial, a bound method, or a callable object (its __call__, or an nn.Module's forward)."""
    while not inspect.isfunction(fn):
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif inspect.ismethod(fn):
            fn = fn.__func__
        elif hasattr(fn, "__wrapped__"):
            fn = fn.__wrapped__
        elif inspect.isfunction(method := getattr(type(fn), "forward" if isinstance(fn, torch.nn.Module) else
                                                  "__call__", None)):
            fn = method
        else:
            raise ExerciseError(f"the check cannot read a {type(fn).__name__} to see whether it keeps the exercise's "
                                f"rule: pass a plain function (def ...)")
    return inspect.unwrap(fn)


def _fingerprint(fn):
    """What identifies an attempt: the code of the student's function (not where it sits in memory)."""
    def of(code):
        return code.co_code, code.co_names, tuple(of(c) if isinstance(c, types.CodeType) else repr(c)
                                                  for c in code.co_consts)
    try:
        return of(student_function(fn).__code__)
    except ExerciseError:
        return id(fn)


def references(fn):
    """What fn's code reaches: (the attribute, keyword and imported names it mentions, {global or enclosing name:
    the object it refers to}), in fn, the functions nested in it, and the notebook's own functions that it calls."""
    names, objects, seen, todo = set(), {}, set(), [student_function(fn)]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        closure = {}
        for var, cell in zip(f.__code__.co_freevars, f.__closure__ or ()):
            try:
                closure[var] = cell.cell_contents
            except ValueError:  # an empty cell: a variable not assigned yet
                pass
        found = {}  # name -> object, for this function
        codes = [f.__code__]
        while codes:
            code = codes.pop()
            for ins in dis.get_instructions(code):
                if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and ins.argval in f.__globals__:
                    found[ins.argval] = f.__globals__[ins.argval]
                elif ins.opname == "LOAD_DEREF" and ins.argval in closure:  # not a local variable: an enclosing one
                    found[ins.argval] = closure[ins.argval]
                elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD", "IMPORT_NAME", "IMPORT_FROM"):
                    names.add(ins.argval)
            for const in code.co_consts:
                if isinstance(const, types.CodeType):
                    codes.append(const)
                elif isinstance(const, tuple) and all(isinstance(x, str) for x in const):
                    names.update(const)  # keyword arguments' names (requires_grad=True)
        defaults = list(f.__defaults__ or ()) + list((f.__kwdefaults__ or {}).values())
        found.update({f"a default argument of {f.__name__}": v for v in defaults})
        objects.update(found)
        for value in found.values():  # follow the notebook's own helpers
            helper = inspect.unwrap(value) if inspect.isfunction(value) else None
            if helper is not None and helper.__globals__ is f.__globals__:
                todo.append(helper)
    return names, objects


def _module(value) -> str:
    """The module a value comes from ("" if none)."""
    value = inspect.unwrap(value) if inspect.isfunction(value) else value
    if inspect.ismodule(value):
        return value.__name__
    return getattr(value, "__module__", None) or ""


def uses_from(fn, packages: tuple) -> list:
    """The names in fn's code that refer to (or import) something from one of `packages` ("minclip", ...)."""
    def inside(module: str) -> bool:
        return any(module == p or module.startswith(p + ".") for p in packages)
    names, objects = references(fn)
    return sorted({n for n in names if inside(n)} | {n for n, v in objects.items() if inside(_module(v))})


def uses_minclip(fn) -> list:
    """The names in fn's code that refer to something from minclip (the package, a module, a function, a class)."""
    return uses_from(fn, ("minclip",))


def forbid(fn, name: str, why: str, attributes: set = frozenset(), packages: tuple = ()) -> None:
    """Enforce an exercise's rule: raise an ExerciseError if fn's code touches one of the attributes (x.backward) or
    uses anything from one of the packages (torch.autograd)."""
    used = sorted(references(fn)[0] & set(attributes)) + uses_from(fn, packages)
    if used:
        raise ExerciseError(f"{name} uses {', '.join(dict.fromkeys(used))}: {why}")


def call(fn, *args, name: str = "your function", expected: str = ""):
    """Call the student's function; turn "not implemented yet" and crashes into an explanation (`expected`: the
    shapes the exercise works with, said when the student's code crashes, often on a shape)."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise NotYet(f"{name} is not implemented yet: replace the `raise NotImplementedError` line with your "
                            f"code, run the cell again, and the check will tell you how it went.") from None
    except ExerciseError:
        raise
    except Exception as error:  # the student's bug: show it, with the inputs' shapes
        shapes = ", ".join(str(tuple(a.shape)) if isinstance(a, torch.Tensor) else type(a).__name__ for a in args)
        about_shapes = any(word in str(error) for word in ("size of tensor", "shape", "dimension", "broadcast"))
        raise ExerciseError(f"{name} raised {type(error).__name__}: {error} (called with {shapes})"
                            + (f". The shapes: {expected}" if expected and about_shapes else "")) from error


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
