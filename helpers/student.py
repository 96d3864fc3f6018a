"""The student edition: every chapter without its solutions, ready to hand out or open in Colab.

``python -m helpers student OUT_DIR`` (or ``make student``) writes ``OUT_DIR/<part>/<chapter>.ipynb`` for every
notebook of the book, and ``OUT_DIR/README.md`` listing the exercises. In each copy:

- every ``<details class="solution">`` block is replaced by a *your turn* note (a Markdown cell the student
  writes in) and an empty *your turn* code cell; the exercise's text stays where it was;
- a cell tagged ``solution`` (a solution written as a cell of its own) is replaced by a *your turn* cell;
- an auto-checked exercise keeps its stub (``raise NotImplementedError``) and its ``check(...)`` call, under a
  *your turn* comment: the cell runs, and ``check`` says what is still wrong, without stopping the notebook;
- outputs and execution counts are cleared. Every other cell, the Colab install cell first, is the book's own,
  so the copy runs from top to bottom like the chapter.

The notebook's metadata records the edition, the chapter and its auto-checked exercises (``"dlbook"``): the
grader (:mod:`helpers.grading`) uses it to report an exercise a student deleted. The instructor edition is the book
itself.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

YOUR_TURN = "✏️ Your turn"
SOLUTION_TAG = "solution"
SOLUTION_BLOCK = re.compile(
    r"[ \t]*<details\s+class=[\"']solution[\"'][^>]*>(?P<body>.*?)</details>[ \t]*\n?",
    re.S,
)
SOLUTION_OPEN = re.compile(r"<details\s+class=[\"']solution[\"']")
CHECK_CALL = re.compile(r"\bcheck\(\s*[\"'](?P<name>\w+)[\"']\s*,\s*(?P<fn>\w+)")
STUDENT_NOTE = (
    "**Student edition.** The solutions are left out of this copy: the cells marked ✏️ *Your turn* are yours. "
    "Run the cells from the top; an auto-checked exercise prints ✅ or ❌ with what is still wrong."
)


def cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def find_exercises(cells: list[dict]) -> dict[str, str]:
    """The auto-checked exercises of a notebook: ``{exercise name: the student's function name}``."""
    found: dict[str, str] = {}
    for cell in cells:
        if cell["cell_type"] == "code":
            for m in CHECK_CALL.finditer(cell_source(cell)):
                found.setdefault(m.group("name"), m.group("fn"))
    return found


def solution_blocks(text: str) -> list[str]:
    """The ``<details class="solution">`` blocks of a Markdown text, whole."""
    return [m.group(0) for m in SOLUTION_BLOCK.finditer(text)]


@dataclass
class _Builder:
    """Turns the cells of one chapter into the student's cells, numbering the new cells' ids."""

    stem: str
    cells: list[dict] = field(default_factory=list)
    removed: int = 0
    counter: int = 0

    def _id(self) -> str:
        self.counter += 1
        return f"{self.stem[:40]}-your-turn-{self.counter}"

    def markdown(self, text: str, cell_id: str | None = None) -> None:
        self.cells.append(
            {
                "cell_type": "markdown",
                "id": cell_id or self._id(),
                "metadata": {},
                "source": _lines(text),
            }
        )

    def code(
        self, text: str, cell_id: str | None = None, metadata: dict | None = None
    ) -> None:
        self.cells.append(
            {
                "cell_type": "code",
                "execution_count": None,
                "id": cell_id or self._id(),
                "metadata": metadata or {},
                "outputs": [],
                "source": _lines(text),
            }
        )

    def your_turn(self, label: str, kind: str = "answer") -> None:
        """The note that replaces a solution. ``kind``: "answer" (a note to write in, and an empty code cell),
        "text" (the note only) or "check" (the next cell is an auto-checked stub)."""
        what = f" ({label})" if label else ""
        notes = {
            "answer": "Double-click to write your answer here; put your code in the cell below.",
            "text": "Double-click to write your answer here.",
            "check": "Complete the function in the next cell and run it: `check` tells you what is "
            "still wrong.",
        }
        self.markdown(f"> ✏️ **Your turn**{what}. *{notes[kind]}*")
        if kind == "answer":
            self.code(
                f"# {YOUR_TURN}{what}: your code, if the exercise asks for some.\n"
            )


def _label(block: str, before: str) -> str:
    """'exercise 3' from the solution's summary ('Solution 3') or from the list item just above it."""
    m = re.search(r"<summary>\s*Solution\s+(\d+)", block)
    if m is None:
        items = re.findall(r"^\s*(\d+)\.\s", before, re.M)
        return f"exercise {items[-1]}" if items else ""
    return f"exercise {m.group(1)}"


def student_cells(cells: list[dict], stem: str) -> tuple[list[dict], int]:
    """The student's version of a chapter's cells, and how many solutions were removed."""
    out = _Builder(stem)
    for index, cell in enumerate(cells):
        src = cell_source(cell)
        tags = cell.get("metadata", {}).get("tags", [])
        next_is_check = (
            index + 1 < len(cells)
            and cells[index + 1]["cell_type"] == "code"
            and CHECK_CALL.search(cell_source(cells[index + 1])) is not None
        )
        if SOLUTION_TAG in tags:  # a solution written as a cell of its own
            out.removed += 1
            if cell["cell_type"] == "code":
                out.code(f"# {YOUR_TURN}: your code here.\n", cell.get("id"))
            else:
                out.your_turn("", "text")
            continue
        if cell["cell_type"] == "code":
            metadata = cell.get("metadata", {})
            if CHECK_CALL.search(src):
                src = (
                    f"# {YOUR_TURN}: replace `raise NotImplementedError` by your code, then run the cell.\n"
                    + src
                )
            out.code(src, cell.get("id"), metadata)
            continue
        if cell["cell_type"] != "markdown" or not SOLUTION_BLOCK.search(src):
            out.cells.append(dict(cell))
            continue
        # Split the Markdown at its solution blocks: the text stays, each block becomes a your-turn note.
        pieces = SOLUTION_BLOCK.split(
            src
        )  # text, body, text, body, ..., text (the body group is captured)
        blocks = list(SOLUTION_BLOCK.finditer(src))
        text_before = ""
        for i, match in enumerate(blocks):
            text = pieces[2 * i]
            text_before += text
            if text.strip():
                out.markdown(text.strip("\n"), cell.get("id") if i == 0 else None)
            last = i == len(blocks) - 1 and not pieces[-1].strip()
            out.your_turn(
                _label(match.group(0), text_before),
                "check" if last and next_is_check else "answer",
            )
            out.removed += 1
        if pieces[-1].strip():
            out.markdown(pieces[-1].strip("\n"))
    for cell in out.cells:
        if SOLUTION_OPEN.search(cell_source(cell)):
            raise ValueError(
                f'{stem}: a <details class="solution"> block without its </details>'
            )
    return out.cells, out.removed


def student_notebook(nb: dict, chapter: str) -> tuple[dict, int]:
    """A student copy of a notebook (a new dict), and how many solutions were removed."""
    cells, removed = student_cells(nb["cells"], Path(chapter).name)
    if cells and cells[0]["cell_type"] == "markdown":
        cells.insert(
            1,
            {
                "cell_type": "markdown",
                "id": f"{Path(chapter).name[:40]}-student-edition",
                "metadata": {},
                "source": _lines(STUDENT_NOTE),
            },
        )
    metadata = dict(nb.get("metadata", {}))
    metadata["dlbook"] = {
        "edition": "student",
        "chapter": chapter,
        "exercises": find_exercises(nb["cells"]),
    }
    return {**nb, "metadata": metadata, "cells": cells}, removed


def default_book() -> Path:
    here = Path(__file__).resolve().parents[1] / "book"
    return here if here.is_dir() else Path("book")


def write_edition(
    out_dir: Path, book: Path | None = None, notebooks: list[Path] | None = None
) -> list[dict]:
    """Write the student copy of every notebook under ``book`` (or of ``notebooks``) into ``out_dir``.

    Returns one summary per notebook: its chapter, output path, solutions removed and auto-checked exercises.
    """
    book = Path(book or default_book())
    paths = notebooks or sorted(
        p for p in book.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )
    summary = []
    for path in paths:
        path = Path(path)
        try:
            rel = path.resolve().relative_to(book.resolve())
        except ValueError:
            rel = Path(path.name)
        nb = json.loads(path.read_text(encoding="utf-8"))
        copy, removed = student_notebook(nb, rel.with_suffix("").as_posix())
        target = Path(out_dir) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            json.dumps(copy, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        summary.append(
            {
                "chapter": rel.with_suffix("").as_posix(),
                "path": target,
                "removed": removed,
                "exercises": list(copy["metadata"]["dlbook"]["exercises"]),
            }
        )
    _write_readme(Path(out_dir), summary)
    return summary


def _write_readme(out_dir: Path, summary: list[dict]) -> None:
    rows = "\n".join(
        f"| `{s['chapter']}.ipynb` | {s['removed']} | "
        f"{', '.join(f'`{e}`' for e in s['exercises']) or '-'} |"
        for s in summary
    )
    (out_dir / "README.md").write_text(
        f"""# Student edition

Every chapter of the book with its solutions left out: each solution is replaced by a cell marked
"{YOUR_TURN}" for the student's answer, and outputs are cleared. Open a notebook in Jupyter, or upload it to
Colab: its first cell installs the book's `helpers` package there.

Auto-checked exercises print a verdict when their cell runs. To grade returned notebooks in batch (one folder
per student, or one file per student named after the student):

    python -m helpers grade submissions/ --out grades.csv

| notebook | exercises to answer | auto-checked |
|---|---:|---|
{rows}
""",
        encoding="utf-8",
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers student", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "out_dir",
        type=Path,
        help="folder for the student notebooks, e.g. _build/student",
    )
    parser.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        help="only these notebooks (default: the whole book)",
    )
    parser.add_argument(
        "--book", type=Path, default=None, help="the book's folder (default: book/)"
    )
    args = parser.parse_args(argv)
    summary = write_edition(args.out_dir, args.book, args.notebooks or None)
    removed = sum(s["removed"] for s in summary)
    checked = sum(len(s["exercises"]) for s in summary)
    print(
        f"student edition: {len(summary)} notebooks, {removed} solutions replaced by '{YOUR_TURN}' cells, "
        f"{checked} auto-checked exercises -> {args.out_dir}"
    )
    return 0
