"""Whole book: the wall time of executing every notebook, one after the other, on the machine at hand.

Each notebook runs in a fresh kernel (nbclient) from its own folder, in ``full`` mode (the real budgets; meant for
a GPU: hours on a CPU) or ``quick`` mode (CI's budgets), and its time and outcome (passed = every cell ran and the
quality-gate asserts held) are written per mode, so a quick and a full table can stand side by side. Running a
subset (``notebooks=``) updates those rows and keeps the others.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import report

ROOT = Path(__file__).resolve().parents[1]


def notebooks_in_toc() -> list[Path]:
    """The book's notebooks in the order of ``_toc.yml``."""
    import yaml

    files: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


SEED_LINE = re.compile(r"^SEED = \d+", re.M)


def with_seed(nb, seed: int):
    """The notebook with its one ``SEED = ...`` line set to ``seed`` (ValueError if there is not exactly one)."""
    hits = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source, n = SEED_LINE.subn(f"SEED = {seed}", cell.source)
            hits += n
    if hits != 1:
        raise ValueError(f"expected one 'SEED = <int>' line, found {hits}")
    return nb


KERNEL_STARTS = 3


def died_at_start(err: BaseException) -> bool:
    """Whether the kernel died before it answered its first message, i.e. before any cell ran.

    Several kernels starting at once can race for the same ports: jupyter_client picks free ports, releases them and
    the kernel binds them a moment later (jupyter/jupyter_client#154, #487). The kernel then exits with "Address
    already in use" and nbclient raises this error. Nothing of the notebook ran, so starting it again is safe.
    """
    return isinstance(err, RuntimeError) and "before replying to kernel_info" in str(
        err
    )


def last_error_line(text: str) -> str:
    """The line that says what failed (``AssertionError: ...``) from nbclient's error text, ANSI codes removed."""
    lines = [
        ln.strip()
        for ln in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()
        if ln.strip()
    ]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", line):
            return line[:300]
    return lines[-1][:300] if lines else "failed"


def execute(
    path: Path,
    mode: str,
    results_dir: Path,
    *,
    seed: int | None = None,
    out: Path | None = None,
    cell_log: Path | None = None,
) -> dict:
    """Run one notebook in a fresh kernel; return its wall time, whether it passed, and the failing line if not.

    ``seed`` replaces the notebook's ``SEED = 0`` line; ``out`` keeps the executed notebook. ``cell_log`` gets one
    line per finished cell as it finishes (index, seconds, first line of code): when a run is stopped at a
    deadline, it still says where the time went. The environment variables it sets for the kernel are restored
    afterwards.
    """
    import nbformat
    from nbclient import NotebookClient

    # No MPLBACKEND here: set in the environment, it overrides the kernel's inline backend, and the executed
    # notebook (the one the website is rendered from) would hold no figures.
    env = {
        "DLBOOK_QUICK": "1" if mode == "quick" else "0",
        "DLBOOK_RESULTS": str(results_dir),
        "TQDM_DISABLE": "1",
        "MPLBACKEND": None,
    }
    old = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    error = None
    start = time.perf_counter()
    try:
        for attempt in range(1, KERNEL_STARTS + 1):
            nb = nbformat.read(path, as_version=4)
            if seed is not None:
                with_seed(nb, seed)
            try:
                NotebookClient(
                    nb,
                    timeout=-1,
                    kernel_name="python3",
                    resources={"metadata": {"path": str(path.parent)}},
                    **_cell_timer(cell_log),
                ).execute()
            except Exception as err:  # a failing cell: record it, go on with the next
                if died_at_start(err) and attempt < KERNEL_STARTS:
                    continue
                error = (
                    last_error_line(str(err))
                    if str(err).strip()
                    else type(err).__name__
                )
            break
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    wall = time.perf_counter() - start
    if out is not None:
        nbformat.write(nb, out)
    return {"wall_s": round(wall, 1), "passed": error is None, "error": error}


def _cell_timer(log: Path | None) -> dict:
    """nbclient hooks that append each cell's wall time to ``log`` the moment the cell finishes."""
    if log is None:
        return {}
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("cell\tseconds\tcode\n")
    started: dict[int, float] = {}

    def on_start(cell, cell_index, **_) -> None:
        started[cell_index] = time.perf_counter()

    def on_done(cell, cell_index, **_) -> None:
        first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")[:80]
        seconds = time.perf_counter() - started.get(cell_index, time.perf_counter())
        with log.open("a") as f:
            f.write(f"{cell_index}\t{seconds:.1f}\t{first}\n")

    return {"on_cell_start": on_start, "on_cell_executed": on_done}


def run(
    mode: str = "full",
    notebooks: Sequence[str] | None = None,
    previous: Mapping | None = None,
) -> dict:
    """Execute the notebooks (all, or those whose name is in ``notebooks``) and merge with ``previous`` results."""
    if mode not in ("full", "quick"):
        raise ValueError(f"mode must be 'full' or 'quick', got {mode!r}")
    paths = [p for p in notebooks_in_toc() if not notebooks or p.stem in notebooks]
    if notebooks and len(paths) != len(set(notebooks)):
        raise ValueError(
            f"unknown notebook in {list(notebooks)}; known: {[p.stem for p in notebooks_in_toc()]}"
        )
    modes = {k: dict(v) for k, v in (previous or {}).get("modes", {}).items()}
    rows = modes.setdefault(mode, {})
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            row = execute(path, mode, Path(tmp))
            row["notebook"] = str(path.relative_to(ROOT))
            row["machine"] = report.describe(report.machine())
            rows[path.stem] = row
            print(
                f"{mode} {path.stem}: {row['wall_s']:.0f} s, {'passed' if row['passed'] else row['error']}",
                flush=True,
            )
    return {"modes": modes, "order": [p.stem for p in notebooks_in_toc()]}


def markdown(result: Mapping) -> list[str]:
    lines = [
        "### The whole book: wall time per notebook",
        "",
        "Every notebook executed one after the other in a fresh kernel (`python -m benchmarks book --mode "
        "full|quick`). Full mode is the real training budget, meant for a GPU; quick mode is what CI runs on 2 "
        "CPU cores."
        + (
            f" Measured {result['finished'][:10]}: chapters changed since then take longer or shorter, and the "
            "device matrix has later timings."
            if result.get("finished")
            else ""
        ),
        "",
    ]
    modes = result["modes"]
    names = [n for n in result["order"] if any(n in rows for rows in modes.values())]
    header = ["notebook"] + [f"{m} mode (s)" for m in ("full", "quick") if m in modes]
    rows = []
    for name in names:
        cells = [name]
        for m in ("full", "quick"):
            if m in modes:
                r = modes[m].get(name)
                cells.append(
                    "not run"
                    if r is None
                    else f"{r['wall_s']:,.0f}" + ("" if r["passed"] else " (failed)")
                )
        rows.append(cells)
    totals = ["**total**"]
    for m in ("full", "quick"):
        if m in modes:
            done = [r["wall_s"] for r in modes[m].values()]
            missing = len(names) - len(done)
            totals.append(
                f"**{sum(done):,.0f}**" + (f" ({missing} not run)" if missing else "")
            )
    lines += report.table(header, rows + [totals])
    machines = sorted(
        {r["machine"] for rows_ in modes.values() for r in rows_.values()}
    )
    lines += ["", "Measured on: " + "; ".join(machines) + "."]
    absent = [m for m in ("full", "quick") if m not in modes]
    if absent:
        lines += [
            "",
            f"Not timed yet in {' or '.join(absent)} mode: `python -m benchmarks book --mode {absent[0]}` adds that column.",
        ]
    return lines
