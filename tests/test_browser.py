"""The built website opened in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`).

Run by `make site-quick` after the build (marker `site`; `DLBOOK_SITE` names the HTML folder). For every chapter
page: no console errors, every figure present and decoded, math typeset by MathJax, a solution toggle that opens,
and a Colab launch link to the chapter's notebook in the repository. Screenshots of two pages are saved in
`DLBOOK_SCREENSHOTS` (default `_build/screenshots`).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("DLBOOK_SITE", ROOT / "_build" / "html"))
SHOTS = Path(os.environ.get("DLBOOK_SCREENSHOTS", ROOT / "_build" / "screenshots"))
REPO = re.search(
    r"^repository:\n  url: https://github.com/(\S+)",
    (ROOT / "_config.yml").read_text(),
    re.M,
).group(1)
CHAPTERS = sorted(
    p.relative_to(ROOT).with_suffix("").as_posix()
    for p in (ROOT / "book").rglob("*.ipynb")
    if ".ipynb_checkpoints" not in p.parts
)
SCREENSHOT_PAGES = CHAPTERS[:1] + CHAPTERS[-1:]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """Serve the site over HTTP on a free local port (file:// URLs behave differently for scripts)."""
    if not (SITE / "index.html").exists():
        pytest.fail(
            f"no built site in {SITE}: run `make site-quick` (or set DLBOOK_SITE)"
        )
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output readable
        pass


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail(
            "Chromium not found: install Debian's packages `chromium` and `chromium-driver` (apt)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Give the driver path explicitly: Selenium would otherwise try to download one (no internet in CI).
    drv = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=driver)
    )
    drv.set_page_load_timeout(60)
    drv.set_script_timeout(60)
    yield drv
    drv.quit()


def _open(browser, base_url: str, rel: str) -> None:
    browser.get(f"{base_url}/{rel}.html")
    browser.execute_script(
        "localStorage.clear(); sessionStorage.clear();"
    )  # every page as on a first visit
    browser.get_log("browser")  # drop the messages of earlier loads
    browser.refresh()


# Resolve when MathJax has typeset the page, then report how many formulas it rendered.
_MATH = """const done = arguments[arguments.length - 1];
if (!window.MathJax || !MathJax.startup) { done(-1); return; }
MathJax.startup.promise.then(() => done(document.querySelectorAll('mjx-container').length), () => done(-2));"""

# Load every output image eagerly and decode it; report [src, naturalWidth] per image (0 = broken).
_IMAGES = """const done = arguments[arguments.length - 1];
const imgs = Array.from(document.querySelectorAll('div.cell_output img'));
Promise.all(imgs.map(img => { img.loading = 'eager';
    return img.decode().then(() => [img.src, img.naturalWidth], () => [img.src, 0]); })).then(done);"""


@pytest.mark.parametrize("rel", CHAPTERS)
def test_chapter_page_in_browser(browser, base_url, rel):
    _open(browser, base_url, rel)
    assert browser.find_elements("css selector", "h1"), f"{rel}: page has no title"

    formulas = browser.execute_async_script(_MATH)
    assert formulas > 0, f"{rel}: math not rendered by MathJax (result {formulas})"

    images = browser.execute_async_script(_IMAGES)
    assert len(images) >= 3, (
        f"{rel}: expected the chapter's figures, found {len(images)}"
    )
    broken = [src for src, width in images if width <= 0]
    assert not broken, f"{rel}: figures that do not decode: {broken}"

    toggles = browser.find_elements("css selector", "details.solution > summary")
    assert len(toggles) >= 3, f"{rel}: expected solution toggles, found {len(toggles)}"
    solution = toggles[0].find_element("xpath", "..")
    body = solution.find_elements("css selector", "p, div.highlight")[-1]
    assert not body.is_displayed(), f"{rel}: solutions must start hidden"
    browser.execute_script(
        "arguments[0].scrollIntoView({block: 'center'});", toggles[0]
    )
    toggles[0].click()
    try:  # the toggle animates open
        WebDriverWait(browser, 5).until(lambda _: body.is_displayed())
    except TimeoutException:
        pytest.fail(f"{rel}: clicking the toggle did not open the solution")

    colab = f"https://colab.research.google.com/github/{REPO}/blob/main/{rel}.ipynb"
    links = [
        a.get_attribute("href")
        for a in browser.find_elements("css selector", "a[href*='colab']")
    ]
    assert colab in links, f"{rel}: no Colab launch link to {colab} (found {links})"

    errors = [
        m["message"] for m in browser.get_log("browser") if m["level"] == "SEVERE"
    ]
    assert not errors, f"{rel}: console errors: {errors}"

    if rel in SCREENSHOT_PAGES:
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.execute_script("window.scrollTo(0, 0);")
        assert browser.save_screenshot(str(SHOTS / f"{rel.replace('/', '_')}.png"))


DECK = Path(
    os.environ.get("DLBOOK_DECK", ROOT / "_build" / "slides" / "cnn.slides.html")
)

# Resolve when reveal.js is ready (it marks .reveal with "ready"; RequireJS keeps its module off window): slides,
# slides including sub-slides, speaker notes, and MathJax 2's rendered formulas.
_DECK = """const done = arguments[arguments.length - 1];
const report = () => done([document.querySelectorAll('.slides > section').length,
                           document.querySelectorAll('.slides section:not(.stack)').length,
                           document.querySelectorAll('aside.notes').length,
                           document.querySelectorAll('.MJXc-display, .mjx-chtml').length]);
const ready = () => document.querySelector('.reveal.ready') !== null;
const wait = (n) => ready() ? setTimeout(report, 3000) : (n > 0 ? setTimeout(() => wait(n - 1), 250) : done(null));
wait(120);"""


def test_slide_deck_opens_offline(browser):
    """A chapter's deck (make slides), opened from disk as a lecturer would in a lecture hall without network:
    reveal.js starts, speaker notes are there, the math is typeset, and nothing fails to load."""
    if not DECK.exists():
        pytest.fail(
            f"no slide deck at {DECK}: make slides NB=book/deep_learning/cnn.ipynb (or set DLBOOK_DECK)"
        )
    browser.get(DECK.resolve().as_uri())
    state = browser.execute_async_script(_DECK)
    errors = [
        m["message"] for m in browser.get_log("browser") if m["level"] == "SEVERE"
    ]
    assert state is not None, f"reveal.js did not start (console: {errors})"
    slides, total, notes, formulas = state
    assert slides >= 8 and total > slides, (
        f"expected sections with sub-slides, got {slides} / {total}"
    )
    assert notes >= 5, f"speaker notes missing ({notes})"
    assert formulas > 0, "MathJax did not typeset the slides' equations"
    errors += [
        m["message"] for m in browser.get_log("browser") if m["level"] == "SEVERE"
    ]
    assert not errors, f"console errors in the deck: {errors}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SHOTS / "slides_cnn.png"))
