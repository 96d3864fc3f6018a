"""Turn a chapter notebook into a reveal.js slide deck: ``python -m helpers.slides NOTEBOOK [OUT.html] [--vendor DIR]``.

A lecturer gets one deck per chapter without maintaining a second copy of the material:

- every ``##`` section starts a new slide, and every other cell a sub-slide below it (reveal.js' vertical
  navigation);
- the slides show what a lecturer projects (headings, lists, equations, tables, figures, code); the chapter's
  prose paragraphs become the **speaker notes** of their slide (press ``s`` in the deck);
- no slide is longer than :data:`MAX_LINES` lines: long text is split over several slides, and a long code cell is
  folded (its first lines, then a pointer to an appendix slide that shows it whole);
- the Colab setup cell, the quality-gate section, ``assert`` and ``results.record`` cells, and the exercise
  solutions are left out;
- MyST roles the slide renderer does not know are simplified (``{cite}`key``` -> ``[key]``).

Use an *executed* notebook to get the plots: ``make notebooks`` leaves one per chapter in ``_build/executed``
(``make slides NB=...`` picks it up automatically). With ``--vendor DIR`` (``make slides`` fills
``_build/slides/vendor`` from npm's reveal.js, jQuery, RequireJS and MathJax 2 packages) the deck loads everything
from that folder and opens offline; without it, from public CDNs.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

MAX_LINES = 20  # lines of source per slide (a projected slide holds about this many)
FOLD_AT = (
    MAX_LINES - 2
)  # lines of a long code cell shown before the pointer to its appendix slide
MAX_OUTPUT_LINES = 8  # lines of printed output kept on a slide

_SOLUTION = re.compile(r"<details class=\"solution\">.*?</details>\n?", re.S)
_ROLE = re.compile(r"\{(cite|cite:[a-z]+)\}`([^`]+)`")
_DOC = re.compile(r"\{doc\}`([^`<]+?)\s*<[^`]+>`")
_SECTION = re.compile(r"^(?=## )", re.M)
_BOOK_ONLY_CODE = re.compile(
    r"google\.colab|helpers\.results\.record\(|^assert\b", re.M
)


def _clean_markdown(text: str) -> str:
    text = _SOLUTION.sub("*(solution in the book)*\n", text)
    text = _ROLE.sub(lambda m: "[" + m.group(2) + "]", text)
    return _DOC.sub(lambda m: m.group(1), text)


def _blocks(text: str) -> list[str]:
    """Markdown split into blocks at blank lines, keeping fenced code, ``$$`` math and directives whole."""
    blocks, current, fence = [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        if fence is None and not stripped:
            if current:
                blocks.append("\n".join(current))
                current = []
            continue
        current.append(line)
        opener = re.match(r"^(```+|~~~+|:::+|\$\$)", stripped)
        if (
            fence is None
            and opener
            and not (
                opener.group(1) == "$$"
                and stripped.endswith("$$")
                and len(stripped) > 2
            )
        ):
            fence = opener.group(1)
        elif fence is not None and stripped.startswith(fence) and len(current) > 1:
            fence = None
    if current:
        blocks.append("\n".join(current))
    return blocks


def _is_prose(block: str) -> bool:
    """A paragraph of running text: speaker notes. Headings, lists, equations, tables, figures, code stay."""
    first = block.lstrip()
    return not re.match(r"^(#|[-*+] |\d+\. |\$\$|\||!\[|```|~~~|:::|<|>)", first)


def _chunks(blocks: Sequence[str], limit: int = MAX_LINES) -> list[str]:
    """Group blocks into slides of at most ``limit`` lines; a block longer than that is cut at line boundaries."""
    slides, current = [], []
    for block in blocks:
        lines = block.splitlines()
        while len(lines) > limit:  # e.g. a long list: cut it
            if current:
                slides.append("\n\n".join(current))
                current = []
            slides.append("\n".join(lines[:limit]))
            lines = lines[limit:]
        size = sum(len(b.splitlines()) + 1 for b in current) + len(lines)
        if current and size > limit:
            slides.append("\n\n".join(current))
            current = []
        current.append("\n".join(lines))
    if current:
        slides.append("\n\n".join(current))
    return slides


def _cell(kind: str, source: str, slide_type: str) -> nbformat.NotebookNode:
    cell = (
        nbformat.v4.new_markdown_cell(source)
        if kind == "markdown"
        else nbformat.v4.new_code_cell(source)
    )
    cell.metadata["slideshow"] = {"slide_type": slide_type}
    return cell


def _markdown_slides(text: str, first_type: str) -> list[nbformat.NotebookNode]:
    """One markdown section as slides (lists, math, figures) with its prose as their speaker notes."""
    blocks = _blocks(_clean_markdown(text))
    shown = [b for b in blocks if not _is_prose(b)]
    notes = [b for b in blocks if _is_prose(b)]
    if notes and all(
        b.lstrip().startswith("#") for b in shown
    ):  # only a heading: show the opening sentence too
        sentence = re.split(r"(?<=[.!?])\s", notes[0].replace("\n", " "), maxsplit=1)[0]
        shown.append(sentence if len(sentence) < 400 else sentence[:400] + " …")
    cells = []
    for i, chunk in enumerate(_chunks(shown)):
        cells.append(_cell("markdown", chunk, first_type if i == 0 else "subslide"))
        if i == 0 and notes:
            cells.append(_cell("markdown", "\n\n".join(notes), "notes"))
    if not cells and notes:
        cells.append(_cell("markdown", "\n\n".join(notes), "notes"))
    return cells


def _short_outputs(outputs: list) -> list:
    kept = []
    for out in outputs:
        out = nbformat.from_dict(out)
        if out.get("output_type") == "stream":
            lines = out.text.splitlines()
            if len(lines) > MAX_OUTPUT_LINES:
                out.text = "\n".join(
                    lines[:MAX_OUTPUT_LINES]
                    + [f"… ({len(lines) - MAX_OUTPUT_LINES} more lines)"]
                )
        kept.append(out)
    return kept


def to_slides(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` as reveal.js slides: slide types set, prose as speaker notes, long cells split or folded,
    and the parts that belong to the book only (setup, quality gates, solutions) removed."""
    nb = nbformat.from_dict(nb)
    nb.metadata.pop("widgets", None)  # widget state would load its manager from a CDN
    kept, appendix, in_gates = [], [], False
    for i, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        if "hide-cell" in tags or "remove-cell" in tags:
            continue
        if cell.cell_type == "markdown":
            for section in _SECTION.split(cell.source):
                if not section.strip():
                    continue
                if section.startswith("## "):
                    in_gates = section.startswith("## Quality gates")
                if in_gates:
                    continue
                first = (
                    "slide"
                    if section.startswith("## ") or (i == 0 and not kept)
                    else "subslide"
                )
                kept += _markdown_slides(section, first)
            continue
        if in_gates or cell.cell_type != "code" or _BOOK_ONLY_CODE.search(cell.source):
            continue
        lines = cell.source.splitlines()
        code = _cell("code", cell.source, "subslide")
        code.outputs = _short_outputs(cell.get("outputs", []))
        if len(lines) > MAX_LINES:
            k = len(appendix) + 1
            code.source = "\n".join(
                lines[:FOLD_AT]
                + [f"# … {len(lines) - FOLD_AT} more lines: appendix A{k}"]
            )
            step = MAX_LINES - 4  # a title, a blank line and the fence take four
            parts = ["\n".join(lines[j : j + step]) for j in range(0, len(lines), step)]
            for j, part in enumerate(parts):
                title = f"### A{k}" + (
                    f" (part {j + 1} of {len(parts)})" if len(parts) > 1 else ""
                )
                appendix.append(
                    _cell("markdown", f"{title}\n\n```python\n{part}\n```", "subslide")
                )
        kept.append(code)
    if appendix:
        kept.append(_cell("markdown", "## Appendix: long code cells in full", "slide"))
        kept += appendix
    nb.cells = kept
    return nb


def export(
    notebook: str | Path,
    out: str | Path | None = None,
    vendor: str | Path | None = None,
) -> Path:
    """Write the deck of ``notebook`` to ``out`` (default ``_build/slides/<name>.slides.html``); return its path.

    ``vendor``: a folder made by :func:`vendor` (or ``make slides``); the deck then refers to it by a relative path
    and opens without network.
    """
    from nbconvert import SlidesExporter

    notebook = Path(notebook)
    if notebook.suffix != ".ipynb" or not notebook.exists():
        raise ValueError(f"expected an existing .ipynb file, got {notebook}")
    out = (
        Path(out) if out else Path("_build") / "slides" / f"{notebook.stem}.slides.html"
    )
    nb = to_slides(nbformat.read(notebook, as_version=4))
    # "white" ships its fonts with reveal.js; several other themes load theirs from Google Fonts (not offline)
    options = {"reveal_scroll": True, "reveal_theme": "white"}
    if vendor is not None:
        vendor = Path(vendor).resolve()
        missing = [p for p in VENDOR_FILES if not (vendor / p).exists()]
        if missing:
            raise FileNotFoundError(
                f"{vendor} lacks {missing}: run helpers.slides.vendor({str(vendor)!r}) first"
            )
        rel = Path(os.path.relpath(vendor, out.resolve().parent))
        options.update(
            reveal_url_prefix=str(rel / "reveal.js"),
            require_js_url=str(rel / "requirejs/require.js"),
            jquery_url=str(rel / "jquery/dist/jquery.min.js"),
            mathjax_url=str(rel / "mathjax/MathJax.js") + "?config=TeX-AMS_CHTML",
            extra_template_paths=[str(Path(__file__).parent / "slides_templates")],
            template_file="offline.html.j2",
        )
    html, _ = SlidesExporter(**options).from_notebook_node(nb)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html)
    return out


# What an offline deck loads, relative to the vendor folder.
VENDOR_FILES = (
    "reveal.js/dist/reveal.js",
    "reveal.js/dist/reveal.css",
    "reveal.js/plugin/notes/notes.js",
    "reveal.js/dist/theme/white.css",
    "requirejs/require.js",
    "jquery/dist/jquery.min.js",
    "mathjax/MathJax.js",
)
_PACKAGES = {
    "reveal.js": "reveal.js@4",
    "requirejs": "requirejs@2",
    "jquery": "jquery@3",
    "mathjax": "mathjax@2",
}
# MathJax 2 is large; a deck needs its TeX input, HTML output and fonts only.
_MATHJAX_KEEP = (
    "MathJax.js",
    "config/",
    "jax/input/TeX/",
    "jax/output/CommonHTML/",
    "jax/element/",
    "extensions/",
    "fonts/HTML-CSS/TeX/woff/",
    "localization/en/",
)


def vendor(folder: str | Path) -> Path:
    """Fill ``folder`` with reveal.js, RequireJS, jQuery and MathJax 2 from the npm registry (``npm pack``)."""
    import shutil
    import subprocess
    import tarfile
    import tempfile

    folder = Path(folder)
    if all((folder / p).exists() for p in VENDOR_FILES):
        return folder
    if shutil.which("npm") is None:
        raise RuntimeError(
            "npm is needed to fetch reveal.js for offline decks (Debian: apt install npm)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in _PACKAGES.items():
            result = subprocess.run(
                ["npm", "pack", "--silent", spec],
                cwd=tmp,
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise RuntimeError(
                    f"npm pack {spec} failed: {result.stderr.strip()[-500:]}"
                )
            tgz = Path(tmp) / result.stdout.strip().splitlines()[-1]
            target = folder / name
            shutil.rmtree(target, ignore_errors=True)
            with tarfile.open(tgz) as archive:
                for member in archive.getmembers():
                    rel = member.name.removeprefix("package/")
                    if not member.isfile() or (
                        name == "mathjax" and not rel.startswith(_MATHJAX_KEEP)
                    ):
                        continue
                    dest = target / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(archive.extractfile(member).read())
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    vendor_dir = None
    if "--vendor" in args:
        i = args.index("--vendor")
        vendor_dir = vendor(args[i + 1]) if i + 1 < len(args) else None
        del args[i : i + 2]
        if vendor_dir is None:
            args = []
    if not 1 <= len(args) <= 2:
        print(__doc__.splitlines()[0])
        return 2
    path = export(*args, vendor=vendor_dir)
    print(
        f"slides: {path} (open it in a browser; arrows move between slides, s opens the speaker notes)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
