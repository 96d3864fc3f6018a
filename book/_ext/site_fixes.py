"""Sphinx extension: two small fixes that keep the browser console of every page free of errors.

1. sphinx-thebe 0.3 (and sphinx-togglebutton) register inline scripts in a way that reaches the page twice with
   Sphinx 7; the second ``const THEBE_JS_URL = ...`` is a JavaScript error ("Identifier 'THEBE_JS_URL' has already
   been declared"). We keep the first copy of each identical script.
2. On a reader's first visit the theme finds no light/dark mode stored and logs "Got invalid theme mode". We set
   the default mode (light: the book's figures have white backgrounds) before the theme's script reads it.

The browser test (tests/test_browser.py) fails on any console error, so a regression here is caught.
"""

from __future__ import annotations

DEFAULT_MODE = """if (!document.documentElement.dataset.mode) { document.documentElement.dataset.mode = "light"; }"""


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # Same file and attributes (an inline script's body is an attribute; its file name is None or ""), whatever
        # the priority.
        key = (str(getattr(script, "filename", script) or ""), tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def setup(app):
    app.add_js_file(None, body=DEFAULT_MODE, priority=100)
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
