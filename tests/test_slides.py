"""helpers.slides: a chapter becomes a reveal.js deck; book-only parts are left out."""

from __future__ import annotations

from pathlib import Path

import nbformat
from bs4 import BeautifulSoup

from helpers import slides

ROOT = Path(__file__).resolve().parents[1]


def chapter() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    setup = nbformat.v4.new_code_cell("%pip install x")
    setup.metadata["tags"] = ["hide-cell"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title\n\nIntro citing {cite}`lecun1998`."),
        setup,
        nbformat.v4.new_markdown_cell("## Model\n\nSee {doc}`the CNN <cnn>`."),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("## Exercises\n\n1. Do it.\n\n<details class=\"solution\">\n"
                                      "<summary>Solution</summary>\n\nsecret answer\n\n</details>\n"),
        nbformat.v4.new_markdown_cell("## Quality gates\n\nAsserts."),
        nbformat.v4.new_code_cell("assert x == 1"),
    ]
    return nb


def test_to_slides_sets_types_and_drops_book_only_parts():
    deck = slides.to_slides(chapter())
    kinds = [c.metadata["slideshow"]["slide_type"] for c in deck.cells]
    assert kinds == ["slide", "slide", "subslide", "slide"]
    text = "\n".join(c.source for c in deck.cells)
    assert "[lecun1998]" in text and "See the CNN." in text
    assert "secret answer" not in text and "solution in the book" in text
    assert "%pip" not in text and "assert" not in text


def test_export_writes_a_reveal_deck(tmp_path):
    src = tmp_path / "chapter.ipynb"
    nbformat.write(chapter(), src)
    out = slides.export(src, tmp_path / "deck.html")
    soup = BeautifulSoup(out.read_text(), "html.parser")
    assert "reveal" in out.read_text().lower()
    assert len(soup.select("div.slides > section")) == 3  # title, model, exercises


def test_every_chapter_converts(tmp_path):
    """One command per chapter must work for every chapter (issue: the course kit)."""
    for path in sorted((ROOT / "book").rglob("*.ipynb")):
        out = slides.export(path, tmp_path / f"{path.stem}.html")
        assert out.stat().st_size > 10_000
