"""The student edition (`make student`): no solution left, every other cell the book's own, and it runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.student import (
    SOLUTION_BLOCK,
    SOLUTION_TAG,
    YOUR_TURN,
    student_notebook,
    write_edition,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(
    p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
)


def source(cell: dict) -> str:
    return "".join(cell["source"])


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    """The student edition of the whole book (written in this process: cheap, so each test worker has its own)."""
    out = tmp_path_factory.mktemp("student")
    assert len(write_edition(out)) == len(NOTEBOOKS)
    return out


def test_make_student(tmp_path):
    """The command `make student` runs: every notebook, and a README listing them and how to grade."""
    done = subprocess.run(
        [sys.executable, "-m", "helpers", "student", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"{len(NOTEBOOKS)} notebooks" in done.stdout
    assert sorted(tmp_path.rglob("*.ipynb")) == sorted(
        tmp_path / p.relative_to(ROOT / "book") for p in NOTEBOOKS
    )
    readme = (tmp_path / "README.md").read_text()
    assert all(
        f"`{p.relative_to(ROOT / 'book').as_posix()}`" in readme for p in NOTEBOOKS
    )
    assert "python -m helpers grade" in readme


def copy_of(edition: Path, path: Path) -> dict:
    return load(edition / path.relative_to(ROOT / "book"))


def is_your_turn_code(cell: dict) -> bool:
    lines = source(cell).strip().splitlines()
    return (
        cell["cell_type"] == "code"
        and len(lines) == 1
        and lines[0].startswith(f"# {YOUR_TURN}")
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_solution_text_left(edition, path):
    """No line of any solution block is in the student copy, unless the chapter also has it outside a solution."""
    book = load(path)
    markdown = [source(c) for c in book["cells"] if c["cell_type"] == "markdown"]
    solutions = [m.group(0) for text in markdown for m in SOLUTION_BLOCK.finditer(text)]
    assert solutions
    outside_text = "\n".join(SOLUTION_BLOCK.sub("", source(c)) for c in book["cells"])
    outside = {line.strip() for line in outside_text.splitlines()}
    secret = (
        {line.strip() for block in solutions for line in block.splitlines()}
        - outside
        - {""}
    )
    assert secret, "a solution with no line of its own?"
    student = copy_of(edition, path)
    text = "\n".join(source(c) for c in student["cells"])
    lines = {line.strip() for line in text.splitlines()}
    assert not secret & lines, (
        f"solution lines left in the student copy: {sorted(secret & lines)[:3]}"
    )
    assert not [
        s for s in secret if len(s) >= 20 and s in text and s not in outside_text
    ]
    assert "<details" not in text and "</details>" not in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_other_cell_is_the_books(edition, path):
    """Code cells: the book's (outputs cleared), plus empty your-turn cells and a comment on each check() cell;
    so the copy runs wherever the chapter runs (CI runs every chapter). One your-turn note per solution."""
    book, student = load(path), copy_of(edition, path)
    tagged = [c for c in book["cells"] if SOLUTION_TAG in c["metadata"].get("tags", [])]
    book_code = [
        source(c) for c in book["cells"] if c["cell_type"] == "code" and c not in tagged
    ]
    student_code = []
    for cell in student["cells"]:
        if cell["cell_type"] != "code" or is_your_turn_code(cell):
            continue
        assert cell["outputs"] == [] and cell["execution_count"] is None
        src = source(cell)
        if src.startswith(f"# {YOUR_TURN}: replace `raise NotImplementedError`"):
            src = src.split("\n", 1)[1]
            assert "raise NotImplementedError" in src and re.search(
                r"\bcheck\(\"\w+\"", src
            )
        student_code.append(src)
    assert student_code == book_code
    first = next(c for c in student["cells"] if c["cell_type"] == "code")
    assert (
        "google.colab" in source(first) and "hide-cell" in first["metadata"]["tags"]
    ), "the install cell first"
    notes = [
        c
        for c in student["cells"]
        if c["cell_type"] == "markdown" and "✏️ **Your turn**" in source(c)
    ]
    blocks = sum(
        len(SOLUTION_BLOCK.findall(source(c)))
        for c in book["cells"]
        if c["cell_type"] == "markdown"
    )
    assert len(notes) == blocks + len(
        [c for c in tagged if c["cell_type"] == "markdown"]
    )
    assert len({c["id"] for c in student["cells"]}) == len(student["cells"]), (
        "cell ids must be unique"
    )
    nbformat = pytest.importorskip("nbformat")
    nbformat.validate(nbformat.from_dict(student))
    meta = student["metadata"]["dlbook"]
    chapter = path.relative_to(ROOT / "book").with_suffix("").as_posix()
    assert meta["edition"] == "student" and meta["chapter"] == chapter
    assert meta["exercises"] == {
        m[0]: m[1]
        for m in re.findall(r"\bcheck\(\"(\w+)\", (\w+)", "\n".join(book_code))
    }


def nb(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def md(text: str, **meta) -> dict:
    return {
        "cell_type": "markdown",
        "id": f"m{abs(hash(text))}",
        "metadata": meta,
        "source": text,
    }


def code(text: str, **meta) -> dict:
    return {
        "cell_type": "code",
        "id": f"c{abs(hash(text))}",
        "metadata": meta,
        "source": text,
        "outputs": [{"output_type": "stream", "name": "stdout", "text": "old"}],
        "execution_count": 3,
    }


def test_solution_cells_and_inline_solutions():
    """A cell tagged `solution` goes; a solution inside an exercise's text goes, the text stays."""
    book = nb(
        md("# T"),
        md(
            '1. Do this.\n\n<details class="solution">\n<summary>Solution</summary>\n\nSECRET A\n\n'
            "</details>\n\n2. Then that.\n"
        ),
        code("secret_b = 1", tags=["solution"]),
        md("SECRET C", tags=["solution"]),
        code("x = 1"),
    )
    copy, removed = student_notebook(book, "part/t")
    text = "\n".join(source(c) for c in copy["cells"])
    assert removed == 3 and "SECRET" not in text and "secret_b" not in text
    assert "1. Do this." in text and "2. Then that." in text and "(exercise 1)" in text
    assert (
        copy["cells"][-1]["source"] == ["x = 1"] and copy["cells"][-1]["outputs"] == []
    )
    assert copy["cells"][-1]["execution_count"] is None


def test_an_unclosed_solution_is_an_error():
    with pytest.raises(ValueError, match="without its </details>"):
        student_notebook(nb(md("# T"), md('<details class="solution">\nSECRET')), "t")
