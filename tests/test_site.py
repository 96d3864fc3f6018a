"""Checks on the built HTML book (run by `make site-quick` after the build; marker `site`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib.image as mpimg
import pytest
from bs4 import BeautifulSoup

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("DLBOOK_SITE", ROOT / "_build" / "html"))
REPO_URL = re.search(
    r"^repository:\n  url: (\S+)", (ROOT / "_config.yml").read_text(), re.M
).group(1)
CHAPTERS = sorted(
    p.relative_to(ROOT).with_suffix("")
    for p in (ROOT / "book").rglob("*.ipynb")
    if ".ipynb_checkpoints" not in p.parts
)


def page(rel: Path) -> BeautifulSoup:
    html = SITE / rel.with_suffix(".html")
    assert html.exists(), (
        f"{html} was not built (build the book first: make book-quick)"
    )
    return BeautifulSoup(html.read_text(), "html.parser")


def test_site_was_built():
    assert (SITE / "index.html").exists(), f"no book in {SITE}: run the build first"
    assert (SITE / "book" / "references.html").exists()


@pytest.mark.parametrize("rel", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_shows_its_figures(rel):
    soup = page(rel)
    images = [
        img
        for img in soup.select("div.cell_output img")
        if img.get("src", "").endswith(".png")
    ]
    assert len(images) >= 3, (
        f"{rel}: expected the chapter's plots in the page, found {len(images)}"
    )
    html_dir = (SITE / rel).parent
    for img in images:
        png = (html_dir / img["src"]).resolve()
        pixels = mpimg.imread(png)  # decodes the file: a broken image raises
        assert pixels.shape[0] > 10 and pixels.shape[1] > 10, png


@pytest.mark.parametrize("rel", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_ran_cleanly(rel):
    soup = page(rel)
    outputs = " ".join(o.get_text() for o in soup.select("div.cell_output"))
    # Outputs may quote source code that mentions errors (helpers.show_source), so look for real error output:
    # a rendered exception, or Python's traceback and warning formats.
    assert not soup.select(
        "div.cell_output .traceback, div.cell_output .output.error"
    ), f"{rel}: an exception"
    assert "Traceback (most recent call last)" not in outputs, (
        f"{rel}: a traceback is printed in the outputs"
    )
    stderr = [
        o.get_text()[:200]
        for o in soup.select("div.cell_output .stderr, div.cell_output .output.stderr")
    ]
    assert not stderr, (
        f"{rel}: warnings or other stderr output left in the page: {stderr}"
    )
    assert not re.search(r"^\S+:\d+: \w*Warning: ", outputs, re.M), (
        f"{rel}: a warning is printed in the outputs"
    )


@pytest.mark.parametrize("rel", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_has_math_solutions_and_colab_link(rel):
    soup = page(rel)
    assert soup.select(".math"), f"{rel}: no rendered math"
    assert len(soup.select("details.solution")) >= 3, f"{rel}: solution toggles missing"
    colab = f"https://colab.research.google.com/github/{REPO_URL.removeprefix('https://github.com/')}/blob/main/{rel.as_posix()}.ipynb"
    links = [a.get("href") for a in soup.find_all("a")]
    assert colab in links, f"{rel}: no Colab launch link {colab}"


@pytest.mark.parametrize("rel", CHAPTERS, ids=lambda p: p.stem)
def test_quick_site_says_so_on_every_chapter(rel):
    """The test site is built in quick mode: each chapter says its numbers are from a small run, and where the
    full-mode numbers are."""
    note = page(rel).select_one("div.quick-mode-note")
    assert note is not None, f"{rel}: no quick-mode note"
    link = note.find("a")
    assert link is not None and "results.html#full-mode-records" in link.get("href", "")


def test_results_page_lists_every_chapter():
    """The results page is generated from the records the notebooks wrote in this run (helpers.results)."""
    soup = page(Path("book/results"))
    table = soup.select_one("table")
    assert table is not None, (
        "the results page has no table: did the notebooks record their results?"
    )
    recorded = {
        row.select("td")[0].get_text(strip=True) for row in table.select("tbody tr")
    }
    missing = sorted(rel.stem for rel in CHAPTERS if rel.stem not in recorded)
    assert not missing, (
        f"chapters without recorded results (call helpers.results.record in the gate cell): {missing}"
    )


def test_results_page_has_comparison_plots_and_benchmarks():
    """The cross-chapter plots (from the chapters' recorded curves) and the committed benchmark tables."""
    soup = page(Path("book/results"))
    html_dir = (SITE / "book" / "results.html").parent
    plots = [img for img in soup.select("img") if "_results_" in img.get("src", "")]
    assert len(plots) >= 2, (
        f"expected the RL and sequence-model comparison plots, found {[i.get('src') for i in plots]}"
    )
    for img in plots:
        assert mpimg.imread((html_dir / img["src"]).resolve()).shape[0] > 100
    headings = " ".join(h.get_text() for h in soup.select("h2, h3"))
    assert "Stable-Baselines3" in headings and "plain PyTorch loop" in headings, (
        headings
    )


def test_instructor_page_has_a_syllabus_and_run_times_per_notebook():
    soup = page(Path("book/instructors"))
    text = " ".join(t.get_text(" ", strip=True) for t in soup.select("table"))
    missing = sorted(rel.stem for rel in CHAPTERS if rel.stem not in text)
    assert not missing, f"chapters missing from the instructor page's tables: {missing}"
    assert "quick mode (s)" in text, (
        "no run-time table (benchmarks/results/book_times.md) on the instructor page"
    )


def test_landing_page_shows_every_chapters_headline_result():
    soup = page(Path("book/intro"))
    rows = {
        tr.select("td")[0].get_text(strip=True): tr.get_text(" ", strip=True)
        for table in soup.select("table")
        for tr in table.select("tbody tr")
        if tr.select("td")
    }
    missing = sorted(rel.stem for rel in CHAPTERS if rel.stem not in rows)
    assert not missing, (
        f"chapters without a headline result on the landing page: {missing}"
    )
    assert all(re.search(r"\d", rows[rel.stem]) for rel in CHAPTERS), (
        "a headline row without a measured number"
    )
