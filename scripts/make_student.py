"""Write the course's hand-out: `make student` -> notebooks/student/*.ipynb and dist/handout/ (+ dist/handout.zip).

In a solution cell, everything between `### BEGIN SOLUTION` and `### END SOLUTION` is replaced by a stub that
raises NotImplementedError (the indentation is kept). Outputs are cleared, so students see no answers. The Colab
badge at the top of each copy opens the student copy, not the solution notebook.

dist/handout/ is what a teacher gives out, self-contained: the student notebooks, the data they read that minclip
does not render itself (report/results.json for notebook 10), a README, and a wheel of minclip, which holds the
self-checks (minclip/exercises) and installs without the repository. No solution notebook goes in;
tests/test_exercises.py checks that no solution line does either.

    python scripts/make_student.py                     # badges open github.com/minclip/minclip's student copies
    python scripts/make_student.py --colab ORG/REPO/blob/main/notebooks   # your own published hand-out
    python scripts/make_student.py --no-wheel          # skip the wheel (`make test` does)
"""
import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*$", re.S | re.M)
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^)\s]*/notebooks/([0-9]{2}_[\w]+\.ipynb)")
COLAB = "minclip/minclip/blob/main/notebooks/student"  # where the committed student copies live on GitHub

HANDOUT_README = """# minclip: the course's hand-out

Eleven notebooks on CLIP, with exercises that check themselves. Nothing here holds a solution.

## Start

    python -m venv .venv && .venv/bin/pip install "$(ls minclip-*.whl)[dev]"
    .venv/bin/jupyter lab notebooks/

(or open a notebook's "Open in Colab" badge: its first cell installs minclip there). The wheel holds the
self-checks (`minclip.exercises`) and the library the notebooks read; its dependencies (torch, ...) come from PyPI.
Notebook `10_the_evidence` reads `report/results.json`, included here. The other data (ShapeWorld, the small
pretrained "zoo" models) is made on your machine the first time a notebook needs it: no download.

## Exercises

In each exercise cell, replace `raise NotImplementedError` with your code and run the cell: the check at its end
tests your function on random cases and says what differs. A second failed attempt gives a bigger hint, a third
the formula. Rules an exercise states ("no minclip inside", "no autograd") are checked too.
"""


def stub(source: str) -> str:
    """Replace every solution block in a cell's source with a stub of the same indentation."""
    return SOLUTION.sub(lambda m: f'{m.group(1)}# YOUR CODE HERE\n{m.group(1)}raise NotImplementedError("exercise")',
                        source)


def rebadge(source: str, colab: str = COLAB) -> str:
    """Point a markdown cell's Colab badge at the student copy, `colab` being its GitHub folder (ORG/REPO/blob/REF/...)."""
    return BADGE.sub(lambda m: f"https://colab.research.google.com/github/{colab}/{m.group(1)}", source)


def student_notebook(src: Path, colab: str = COLAB):
    """The student copy of one notebook: solutions stubbed, outputs cleared, the badge pointing at the copy."""
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source, cell.outputs, cell.execution_count = stub(cell.source), [], None
        else:
            cell.source = rebadge(cell.source, colab)
    return nb


def student_copy(src: Path, dst: Path, colab: str = COLAB) -> int:
    """Write the student copy of src to dst; -> the number of exercise cells stubbed."""
    n = sum(SOLUTION.search(c.source) is not None for c in nbformat.read(src, as_version=4).cells if c.cell_type == "code")
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(student_notebook(src, colab), dst)
    return n


def handout(out: Path, colab: str = COLAB, wheel: bool = True, root: Path = ROOT) -> Path:
    """Write the self-contained hand-out folder `out` and `out`.zip; -> the folder."""
    if out.exists():
        shutil.rmtree(out)
    for src in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        student_copy(src, out / "notebooks" / src.name, colab)
    (out / "report").mkdir(parents=True)
    shutil.copy(root / "report" / "results.json", out / "report" / "results.json")
    (out / "README.md").write_text(HANDOUT_README)
    if wheel:  # built as `pip install .` builds it (pip fetches setuptools for the build, as for any install)
        shutil.rmtree(root / "build", ignore_errors=True)  # setuptools' staging folder: no stale module gets in
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
                        "-w", str(out), str(root)], check=True)
    shutil.make_archive(str(out), "zip", out.parent, out.name)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--colab", default=COLAB, help="GitHub folder the hand-out's badges open (ORG/REPO/blob/REF/"
                                                      "PATH); default: this repository's notebooks/student")
    parser.add_argument("--out", default=str(ROOT / "dist" / "handout"), help="the hand-out folder")
    parser.add_argument("--no-wheel", action="store_true", help="leave the minclip wheel out of the hand-out")
    args = parser.parse_args(argv)
    for src in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        n = student_copy(src, ROOT / "notebooks" / "student" / src.name)
        print(f"{src.name}: {n} exercise cells stubbed")
    out = handout(Path(args.out), args.colab, wheel=not args.no_wheel)
    print(f"hand-out: {out} and {out}.zip")


if __name__ == "__main__":
    main()
