"""pytest plugin: keep the outputs of the notebooks that nbval re-runs, so the website can be built from them.

``make test`` re-runs every notebook with ``pytest --nbval-lax`` and then builds the quick website. Without this
plugin the build would execute every notebook a second time, doubling CI time. With ``-p tests.nbval_outputs``
and ``DLBOOK_EXECUTED=<folder>``, each notebook nbval ran is written to ``<folder>/<its path>`` with the outputs
nbval received from the kernel; the website is then built from those copies with execution turned off.
The outputs are the real ones of the test run: what the site shows is exactly what was tested. Works with
pytest-xdist's ``--dist loadfile`` (each notebook runs whole on one worker, which writes it).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest


def pytest_sessionfinish(session: pytest.Session) -> None:
    folder = os.environ.get("DLBOOK_EXECUTED")
    if not folder:
        return
    notebooks = {}
    for item in session.items:
        cell, outputs = getattr(item, "cell", None), getattr(item, "test_outputs", None)
        if cell is None or not hasattr(item.parent, "nb"):
            continue
        cell.outputs = list(outputs or [])
        cell.execution_count = item.cell_num + 1 if outputs is not None else None
        if (
            outputs is not None
        ):  # with pytest-xdist a worker collects every notebook but runs only its own
            notebooks[Path(str(item.parent.path))] = item.parent.nb
    root = Path(str(session.config.rootpath))
    for path, nb in notebooks.items():
        target = Path(folder) / path.resolve().relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
