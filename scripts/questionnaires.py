"""Put each notebook's questionnaire at its end, from the teacher's answer key: `python scripts/questionnaires.py`.

notebooks/answers/NAME.md holds the numbered questions, each with its answer; it is the teacher's side and never goes
into the hand-out (scripts/make_student.py). This script writes the questions alone into the last cell of
notebooks/NAME.ipynb ("## Questionnaire"), replacing the cell if it is there. tests/test_exercises.py checks that
the two agree.
"""
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
QUESTION = re.compile(r"^(\d+)\. \*\*(.+)\*\*\s*$", re.M)
HEADING = "## Questionnaire"


def questions(answer_key: Path) -> list:
    """The questions of an answer key, in order."""
    found = QUESTION.findall(answer_key.read_text())
    if [int(n) for n, _ in found] != list(range(1, len(found) + 1)):
        raise ValueError(f"{answer_key}: questions must be numbered 1, 2, 3, ... in order")
    return [q for _, q in found]


def questionnaire_cell(qs: list) -> str:
    lines = [HEADING, "", "Answer each in a few sentences, from this notebook; your teacher has the answer key.", ""]
    return "\n".join(lines + [f"{i}. {q}" for i, q in enumerate(qs, 1)])


def main(root=ROOT) -> None:
    for key in sorted((Path(root) / "notebooks" / "answers").glob("[0-9][0-9]_*.md")):
        path = Path(root) / "notebooks" / f"{key.stem}.ipynb"
        nb = nbformat.read(path, as_version=4)
        source = questionnaire_cell(questions(key))
        if nb.cells and nb.cells[-1].cell_type == "markdown" and nb.cells[-1].source.startswith(HEADING):
            nb.cells[-1].source = source
        else:
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        nbformat.write(nb, path)
        print(f"{path.name}: {len(questions(key))} questions")


if __name__ == "__main__":
    main(*sys.argv[1:])
