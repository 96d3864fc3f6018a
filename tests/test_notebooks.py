"""Static checks that every chapter follows the template (CONTRIBUTING.md). nbval re-runs them separately."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(
    p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
)
CONFIG = (ROOT / "_config.yml").read_text()
REPO_URL = re.search(r"^repository:\n  url: (\S+)", CONFIG, re.M).group(1)


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks under book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    for cell in load(path)["cells"]:
        if cell["cell_type"] == "code":
            assert not cell["outputs"] and cell["execution_count"] is None, (
                f"{path.name}: strip outputs before committing (jupyter nbconvert --clear-output --inplace)"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_listed_in_toc(path):
    rel = path.relative_to(ROOT).with_suffix("").as_posix()
    assert f"file: {rel}\n" in (ROOT / "_toc.yml").read_text(), (
        f"{rel} is missing from _toc.yml"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_follows_the_chapter_template(path):
    nb = load(path)
    cells = nb["cells"]
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert cells[0]["cell_type"] == "markdown" and source(cells[0]).startswith("# ")
    markdown = "\n".join(source(c) for c in cells if c["cell_type"] == "markdown")
    assert len(re.findall(r"^# ", markdown, re.M)) == 1, (
        "exactly one title (H1) per chapter"
    )
    for heading in (
        "## Learning objectives",
        "## Claims checked",
        "## Exercises",
        "## Summary",
        "## References",
        "## Quality gates",
    ):
        assert re.search(rf"^{re.escape(heading)}\b", markdown, re.M), (
            f"{path.name}: missing section {heading!r}"
        )
    # An HTML <details> block renders collapsed in Jupyter, Colab and on the website alike; a MyST dropdown
    # would print its solution as plain text in Jupyter and Colab.
    assert markdown.count('<details class="solution">') >= 3, (
        "at least three exercises with hidden solutions"
    )
    assert markdown.count("<details") == markdown.count("</details>"), (
        "an unclosed <details> block"
    )
    assert ":class: dropdown" not in markdown, (
        "solutions go in <details>, not MyST dropdowns (shown in Colab)"
    )
    assert "{bibliography}" not in markdown, (
        "list citations with {cite:t}; the bibliography lives in book/references.md"
    )
    code_text = "\n".join(source(c) for c in cells if c["cell_type"] == "code")
    assert re.search(r"\bcheck\(\"\w+\"", code_text), (
        "at least one auto-checked exercise (helpers.exercises.check)"
    )
    assert "helpers.results.record(" in code_text, (
        "the gate cell records the chapter's numbers (helpers.results.record)"
    )
    code = [c for c in cells if c["cell_type"] == "code"]
    setup = code[0]
    assert f'REPO_URL = "{REPO_URL}"' in source(setup) and "google.colab" in source(
        setup
    ), (
        "the first code cell installs helpers in Colab from the repository in _config.yml (make repo-url)"
    )
    assert "hide-cell" in setup["metadata"].get("tags", [])
    assert any(re.search(r"^\s*assert\b", source(c), re.M) for c in code[-3:]), (
        "the last cells must assert the chapter's quality gates"
    )


# Words of the workshop that built the book, which readers cannot know: a page that says "the issue asks" or "the seed
# model" points at documents the reader never saw ("seed" also collides with random seeds).
WORKSHOP_WORDS = re.compile(
    r"\bissues?\b|\bseed models?\b|\bthe seed's\b|\btickets?\b|\bacceptance (list|criteria)\b",
    re.I,
)
PAGES = (
    sorted((ROOT / "book").rglob("*.md"))
    + NOTEBOOKS
    + sorted((ROOT / "helpers").glob("*.py"))
)


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_pages_speak_to_readers_without_workshop_words(path):
    # helpers' docstrings count: chapters show them on the page with helpers.show_source
    if path.suffix == ".ipynb":
        texts = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]]
    else:
        texts = [path.read_text()]
    hits = sorted({m.group(0) for t in texts for m in WORKSHOP_WORDS.finditer(t)})
    assert (
        WORKSHOP_WORDS.search("as the Issue asks, the seed model") is not None
    )  # the check can fail
    assert not hits, f"{path.name} uses words readers cannot know: {hits}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_has_a_unique_id(path):
    # nbformat 4.5: a missing id is a warning today (printed by every tool that reads the notebook) and
    # an error in future versions
    ids = [c.get("id") for c in load(path)["cells"]]
    assert None not in ids and len(set(ids)) == len(ids), (
        f"{path.stem}: missing or repeated cell ids"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_in_the_prose_fits_its_box_too(path):
    # ruff only sees code cells; the Python blocks of exercises and solutions are code a reader
    # copies as well, shown in the same 88-column boxes
    import re

    long = [
        (i, line)
        for i, c in enumerate(load(path)["cells"])
        if c["cell_type"] == "markdown"
        for block in re.findall(r"```python\n(.*?)```", source(c), flags=re.S)
        for line in block.splitlines()
        if len(line) > 88
    ]
    assert not long, f"{path.stem}: lines over 88 characters in Python blocks: {long}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_fits_one_screen(path):
    # ruff (make lint) keeps lines within 88 columns; here: no cell longer than a screen (40 lines): a long
    # function is split where its story splits (GAN: one cell per player's step; Q-learning: one episode)
    long = [
        (i, len(source(c).splitlines()))
        for i, c in enumerate(load(path)["cells"])
        if c["cell_type"] == "code" and len(source(c).splitlines()) > 40
    ]
    assert not long, (
        f"{path.stem}: code cells over 40 lines (cell index, lines): {long}"
    )


def test_the_nbval_plugin_adds_up_each_notebooks_cell_times():
    from tests.nbval_outputs import notebook_times

    lines = notebook_times({"book/a.ipynb": [1.0, 2.0], "book/b.ipynb": [5.0]})
    assert lines[0] == "    5.0 s    1 cells  book/b.ipynb"  # longest first
    assert lines[1] == "    3.0 s    2 cells  book/a.ipynb"
    assert lines[2] == "    8.0 s  in all, the notebooks one after the other"
