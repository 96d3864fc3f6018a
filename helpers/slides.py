"""Turn a chapter notebook into a reveal.js slide deck: ``python -m helpers.slides NOTEBOOK [OUT.html]``.

A lecturer gets one deck per chapter without maintaining a second copy of the material:

- every ``##`` section starts a new slide, and every other cell becomes a sub-slide below it (reveal.js' vertical
  navigation), so long code and plots never overflow one slide;
- the Colab setup cell, the quality-gate section and the hidden exercise solutions are left out;
- MyST roles the slide renderer does not know are simplified (``{cite}`key``` -> ``[key]``).

Use an *executed* notebook to get the plots: ``make notebooks`` leaves one per chapter in ``_build/executed``
(``make slides NB=...`` picks it up automatically). The deck loads reveal.js from a CDN when opened.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

_SOLUTION = re.compile(r"<details class=\"solution\">.*?</details>\n?", re.S)
_ROLE = re.compile(r"\{(cite|cite:[a-z]+)\}`([^`]+)`")
_DOC = re.compile(r"\{doc\}`([^`<]+?)\s*<[^`]+>`")


def _clean_markdown(text: str) -> str:
    text = _SOLUTION.sub("*(solution in the book)*\n", text)
    text = _ROLE.sub(lambda m: "[" + m.group(2) + "]", text)
    return _DOC.sub(lambda m: m.group(1), text)


def to_slides(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with reveal.js slide types set and the parts that belong to the book only removed."""
    nb = nbformat.from_dict(nb)
    kept, in_gates = [], False
    for i, cell in enumerate(nb.cells):
        source = cell.source
        if cell.cell_type == "markdown":
            in_gates = source.lstrip().startswith("## Quality gates") or (in_gates and not source.startswith("## "))
        tags = cell.metadata.get("tags", [])
        if in_gates or "hide-cell" in tags or "remove-cell" in tags:
            continue
        if cell.cell_type == "markdown":
            cell.source = _clean_markdown(source)
            first = source.lstrip()
            kind = "slide" if i == 0 or first.startswith("## ") else "subslide"
        else:
            kind = "subslide"
        cell.metadata["slideshow"] = {"slide_type": kind}
        kept.append(cell)
    nb.cells = kept
    return nb


def export(notebook: str | Path, out: str | Path | None = None) -> Path:
    """Write the deck of ``notebook`` to ``out`` (default ``_build/slides/<name>.slides.html``); return its path."""
    from nbconvert import SlidesExporter

    notebook = Path(notebook)
    if notebook.suffix != ".ipynb" or not notebook.exists():
        raise ValueError(f"expected an existing .ipynb file, got {notebook}")
    out = Path(out) if out else Path("_build") / "slides" / f"{notebook.stem}.slides.html"
    nb = to_slides(nbformat.read(notebook, as_version=4))
    html, _ = SlidesExporter().from_notebook_node(nb)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 2:
        print(__doc__.splitlines()[0])
        return 2
    path = export(*args)
    print(f"slides: {path} (open it in a browser; arrows move between slides)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
