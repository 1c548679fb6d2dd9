"""The machinery every check shares: call the student's function safely, compare, and explain failures."""
import torch
import torch.nn.functional as F


class ExerciseError(AssertionError):
    """A check failed; the message says what to fix."""


def call(fn, *args, name: str = "your function"):
    """Call the student's function; turn "not implemented yet" and crashes into an explanation."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise ExerciseError(f"{name} is not implemented yet: replace the `raise NotImplementedError` line with your "
                            f"code, run the cell again, and the check will tell you how it went.") from None
    except ExerciseError:
        raise
    except Exception as error:  # the student's bug: show it, with the inputs' shapes
        shapes = ", ".join(str(tuple(a.shape)) if isinstance(a, torch.Tensor) else type(a).__name__ for a in args)
        raise ExerciseError(f"{name} raised {type(error).__name__}: {error} (called with {shapes})") from error


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
