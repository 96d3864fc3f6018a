"""helpers.slides: a chapter becomes a reveal.js deck; book-only parts are left out, prose goes to the notes."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from helpers import slides

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(
    p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
)


def chapter() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    setup = nbformat.v4.new_code_cell("%pip install x")
    setup.metadata["tags"] = ["hide-cell"]
    long_code = "\n".join(f"x{i} = {i}" for i in range(30))
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# Title\n\nIntro citing {cite}`lecun1998`. More prose here."
        ),
        setup,
        nbformat.v4.new_markdown_cell(
            "## Model\n\nSee {doc}`the CNN <cnn>`.\n\n- a point\n- another\n\n$$\nE = mc^2\n$$"
        ),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell(long_code),
        nbformat.v4.new_markdown_cell(
            '## Exercises\n\n1. Do it.\n\n<details class="solution">\n'
            "<summary>Solution</summary>\n\nsecret answer\n\n</details>\n\n"
            "## Quality gates\n\nAsserts."
        ),
        nbformat.v4.new_code_cell("helpers.results.record('x', {})\nassert x == 1"),
    ]
    return nb


def test_to_slides_sets_types_and_drops_book_only_parts():
    deck = slides.to_slides(chapter())
    kinds = [c.metadata["slideshow"]["slide_type"] for c in deck.cells]
    assert (
        kinds[:2] == ["slide", "notes"] and kinds.count("slide") == 4
    )  # title, model, exercises, appendix
    text = "\n".join(c.source for c in deck.cells)
    assert "[lecun1998]" in text
    assert "secret answer" not in text and "solution in the book" in text
    assert "%pip" not in text and "assert" not in text and "results.record" not in text
    assert "Asserts." not in text  # the quality-gate section, even inside another cell
    notes = [
        c.source for c in deck.cells if c.metadata["slideshow"]["slide_type"] == "notes"
    ]
    assert any("See the CNN." in n for n in notes)  # prose becomes speaker notes ...
    model = next(c.source for c in deck.cells if c.source.startswith("## Model"))
    assert (
        "- a point" in model and "E = mc^2" in model
    )  # ... lists and equations stay on the slide


def test_long_code_is_folded_with_the_whole_cell_in_an_appendix():
    deck = slides.to_slides(chapter())
    folded = next(
        c for c in deck.cells if c.cell_type == "code" and "x0 = 0" in c.source
    )
    assert (
        len(folded.source.splitlines()) == slides.FOLD_AT + 1
        and "appendix A1" in folded.source
    )
    appendix = "\n".join(c.source for c in deck.cells if c.source.startswith("### A1"))
    assert all(f"x{i} = {i}" in appendix for i in range(30))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chapter_makes_a_clean_deck(path):
    deck = slides.to_slides(nbformat.read(path, as_version=4))
    shown = [c for c in deck.cells if c.metadata["slideshow"]["slide_type"] != "notes"]
    for cell in shown:
        assert len(cell.source.splitlines()) <= slides.MAX_LINES, (
            f"{path.stem}: a slide is too long:\n{cell.source}"
        )
    code = "\n".join(c.source for c in deck.cells if c.cell_type == "code")
    assert not re.search(r"^assert\b", code, re.M), (
        f"{path.stem}: a quality-gate assert is on a slide"
    )
    assert "results.record(" not in code and "google.colab" not in code
    text = "\n".join(c.source for c in deck.cells)
    assert "<details" not in text and "## Quality gates" not in text
    assert (
        sum(c.metadata["slideshow"]["slide_type"] == "notes" for c in deck.cells) >= 5
    ), "no speaker notes"


def test_export_writes_a_reveal_deck(tmp_path):
    src = tmp_path / "chapter.ipynb"
    nbformat.write(chapter(), src)
    out = slides.export(src, tmp_path / "deck.html")
    soup = BeautifulSoup(out.read_text(), "html.parser")
    assert "reveal" in out.read_text().lower()
    assert (
        len(soup.select("div.slides > section")) == 4
    )  # title, model, exercises, appendix
    assert soup.select("aside.notes"), "speaker notes missing"


def test_offline_deck_refers_only_to_the_vendor_folder(tmp_path):
    vendor = tmp_path / "decks" / "vendor"
    for rel in slides.VENDOR_FILES:
        (vendor / rel).parent.mkdir(parents=True, exist_ok=True)
        (vendor / rel).write_text("")
    src = tmp_path / "chapter.ipynb"
    nbformat.write(chapter(), src)
    out = slides.export(src, tmp_path / "decks" / "deck.html", vendor=vendor)
    soup = BeautifulSoup(out.read_text(), "html.parser")
    urls = [t.get("src") for t in soup.find_all("script") if t.get("src")]
    urls += [t.get("href") for t in soup.find_all("link") if t.get("href")]
    assert urls and all(u.startswith("vendor/") for u in urls), urls
    assert "vendor/reveal.js/dist/reveal.js" in out.read_text()
    with pytest.raises(FileNotFoundError, match="vendor"):
        slides.export(src, tmp_path / "deck2.html", vendor=tmp_path / "empty")
