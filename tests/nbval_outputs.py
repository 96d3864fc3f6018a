"""pytest plugin: keep the outputs of the notebooks that nbval re-runs, so the website can be built from them.

``make test`` re-runs every notebook with ``pytest --nbval-lax`` and then builds the quick website. Without this
plugin the build would execute every notebook a second time, doubling CI time. With ``-p tests.nbval_outputs``
and ``DLBOOK_EXECUTED=<folder>``, each notebook nbval ran is written to ``<folder>/<its path>`` with the outputs
nbval received from the kernel; the website is then built from those copies with execution turned off.
The outputs are the real ones of the test run: what the site shows is exactly what was tested. Works with
pytest-xdist's ``--dist loadfile`` (each notebook runs whole on one worker, which writes it).

It also prints, at the end of the run, each notebook's time: the sum of its cells' times (kernel start-up not
included), longest first, so that a chapter that outgrows the CI budget is seen at a glance.
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


def notebook_times(cell_seconds: dict[str, list[float]]) -> list[str]:
    """One line per notebook, longest first, then the total."""
    rows = sorted(cell_seconds.items(), key=lambda kv: -sum(kv[1]))
    lines = [f"{sum(s):7.1f} s  {len(s):3d} cells  {path}" for path, s in rows]
    total = sum(sum(s) for s in cell_seconds.values())
    return lines + [f"{total:7.1f} s  in all, the notebooks one after the other"]


def pytest_terminal_summary(terminalreporter) -> None:
    """The cells' times from the reports pytest keeps anyway (as its --durations list does; with xdist the
    controller holds every worker's reports)."""
    if hasattr(terminalreporter.config, "workerinput"):
        return  # an xdist worker: the controller prints the table
    cell_seconds: dict[str, list[float]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            path = getattr(report, "nodeid", "").split("::", 1)[0]
            if getattr(report, "when", None) == "call" and path.endswith(".ipynb"):
                cell_seconds.setdefault(path, []).append(report.duration)
    if cell_seconds:
        terminalreporter.write_sep("=", "time per notebook (sum of its cells)")
        for line in notebook_times(cell_seconds):
            terminalreporter.write_line(line)
