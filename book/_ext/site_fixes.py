"""Sphinx extension: two small fixes that keep the browser console of every page free of errors, and the
quick-mode note.

1. sphinx-thebe 0.3 (and sphinx-togglebutton) register inline scripts in a way that reaches the page twice with
   Sphinx 7; the second ``const THEBE_JS_URL = ...`` is a JavaScript error ("Identifier 'THEBE_JS_URL' has already
   been declared"). We keep the first copy of each identical script.
2. On a reader's first visit the theme finds no light/dark mode stored and logs "Got invalid theme mode". We set
   the default mode (light: the book's figures have white backgrounds) before the theme's script reads it.

The browser test (tests/test_browser.py) fails on any console error, so a regression here is caught.

3. A site built in quick mode (``DLBOOK_QUICK=1``: small data, few epochs) says so at the top of every chapter and
   points to the full-mode numbers, so that no reader takes a quick run's numbers for what the algorithm can do.
"""

from __future__ import annotations

import os

from docutils import nodes

DEFAULT_MODE = """if (!document.documentElement.dataset.mode) { document.documentElement.dataset.mode = "light"; }"""


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # Same file and attributes (an inline script's body is an attribute; its file name is None or ""), whatever
        # the priority.
        key = (
            str(getattr(script, "filename", script) or ""),
            tuple(sorted(getattr(script, "attributes", {}).items())),
        )
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


CHAPTER_FOLDERS = ("book/deep_learning/", "book/reinforcement_learning/")


def _quick_mode_note(app, doctree, docname) -> None:
    if os.environ.get("DLBOOK_QUICK", "").strip().lower() not in {
        "1",
        "true",
        "yes",
        "on",
    }:
        return
    if not docname.startswith(CHAPTER_FOLDERS) or docname.endswith("/index"):
        return
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        return
    note = nodes.admonition(classes=["note", "quick-mode-note"])
    note += nodes.title(text="Quick-mode run")
    text = nodes.paragraph()
    text += nodes.Text(
        "The outputs on this page come from quick mode: small data and few epochs, so that the whole "
        "book runs on a 2-core CPU in minutes. They show that the code works, not what the algorithm "
        "can do, and the prose may quote the larger full-mode budgets. The full-mode numbers of "
        "every chapter are on the "
    )
    uri = app.builder.get_relative_uri(docname, "book/results") + "#full-mode-records"
    text += nodes.reference("", "results page", refuri=uri, internal=True)
    text += nodes.Text(".")
    note += text
    section.insert(1, note)


def setup(app):
    app.add_js_file(None, body=DEFAULT_MODE, priority=100)
    app.connect("doctree-resolved", _quick_mode_note)
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
