"""The course's exercises (minclip/exercises, scripts/make_student.py): every solution passes its check, every
student stub fails it with a helpful message, and the committed student copies are up to date.

Convention (see notebooks/README.md): an exercise cell is self-contained (its own imports and inputs), holds its
solution between `### BEGIN SOLUTION` and `### END SOLUTION`, and ends by calling `check_<name>(...)`.
"""
import sys
from pathlib import Path

import nbformat
import torch
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from make_student import stub  # noqa: E402

from minclip.exercises import ExerciseError  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CELLS = [(nb.stem, i, cell.source) for nb in NOTEBOOKS
         for i, cell in enumerate(nbformat.read(nb, as_version=4).cells)
         if cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source]
IDS = [f"{name}-cell{i}" for name, i, _ in CELLS]


def run(source: str) -> None:
    exec(compile(source, "<exercise cell>", "exec"), {"__name__": "__exercise__"})


def test_every_notebook_has_three_checked_exercises():
    for nb in NOTEBOOKS:
        cells = [s for name, _, s in CELLS if name == nb.stem]
        assert len(cells) >= 3, f"{nb.name} has {len(cells)} exercise cells, want >= 3"
        assert all("check_" in s for s in cells), f"{nb.name}: an exercise cell does not call a check_ function"


@pytest.mark.parametrize("name, index, source", CELLS, ids=IDS)
def test_solution_passes_its_check(name, index, source, capsys):
    run(source)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("name, index, source", CELLS, ids=IDS)
def test_stub_fails_with_a_helpful_message(name, index, source):
    with pytest.raises(ExerciseError) as error:
        run(stub(source))
    assert "not implemented yet" in str(error.value)


def test_student_copies_are_current():
    for nb in NOTEBOOKS:
        copy = ROOT / "notebooks" / "student" / nb.name
        assert copy.exists(), f"no student copy of {nb.name}: run `make student`"
        want = [stub(c.source) for c in nbformat.read(nb, as_version=4).cells]
        got = [c.source for c in nbformat.read(copy, as_version=4).cells]
        assert got == want, f"{copy} is stale: run `make student`"
        assert not any(c.get("outputs") for c in nbformat.read(copy, as_version=4).cells if c.cell_type == "code")


def test_stub_keeps_indentation():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\ncheck(f)\n"
    assert stub(src) == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError(\"exercise\")\ncheck(f)\n"


def test_nearest_neighbour_checks_explain_the_usual_mistakes():
    from minclip.exercises.prompts import check_zeroshot_predict
    from minclip.exercises.quickstart import check_retrieval
    with pytest.raises(ExerciseError, match="plain dot products: normalise the image embeddings"):
        check_retrieval(lambda images, texts: (texts @ images.T).argmax(dim=1))
    with pytest.raises(ExerciseError, match="plain dot products: normalise the class embeddings"):
        check_zeroshot_predict(lambda images, classes: (images @ classes.T).argmax(dim=1))
    with pytest.raises(ExerciseError, match=r"one image index per caption, shape \(4,\)"):
        check_retrieval(lambda images, texts: texts @ images.T)
    with pytest.raises(ExerciseError, match="with every class, then argmax over the classes"):
        check_zeroshot_predict(lambda images, classes: torch.zeros(len(images), dtype=torch.long) + 1)
