"""Write student copies of the course: `make student` -> notebooks/student/*.ipynb.

In a solution cell, everything between `### BEGIN SOLUTION` and `### END SOLUTION` is replaced by a stub that
raises NotImplementedError (the indentation is kept). Outputs are cleared, so students see no answers.
"""
import re
import sys
from pathlib import Path

import nbformat

SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*$", re.S | re.M)


def stub(source: str) -> str:
    """Replace every solution block in a cell's source with a stub of the same indentation."""
    return SOLUTION.sub(lambda m: f'{m.group(1)}# YOUR CODE HERE\n{m.group(1)}raise NotImplementedError("exercise")',
                        source)


def student_copy(src: Path, dst: Path) -> int:
    nb = nbformat.read(src, as_version=4)
    n = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            new = stub(cell.source)
            n += new != cell.source
            cell.source, cell.outputs, cell.execution_count = new, [], None
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)
    return n


def main(root="notebooks") -> None:
    root = Path(root)
    for src in sorted(root.glob("[0-9][0-9]_*.ipynb")):
        n = student_copy(src, root / "student" / src.name)
        print(f"{src.name}: {n} exercise cells stubbed")


if __name__ == "__main__":
    main(*sys.argv[1:])
