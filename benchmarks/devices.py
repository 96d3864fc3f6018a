"""Where every chapter was last run: the device matrix (``make gpu-check`` = ``python -m benchmarks devices``).

Every notebook is executed in quick and/or full mode on the machine at hand, several at a time, each in a fresh
kernel in its own process group (so a deadline can stop it, kernel included), and each outcome is written to
``benchmarks/results/devices.json``: passed, or the assertion that failed; wall time; device name; torch version;
commit; date. Rows are keyed by (device, mode, notebook, seed), so runs on a CPU and on a GPU, or with other seeds,
sit side by side and a new run replaces only its own rows. The results page shows the matrix.

``--seed N`` runs the notebooks with their one ``SEED = 0`` line changed to ``SEED = N`` (what a reader who changes
the seed gets); the quality gates must hold for any seed.

Without a GPU, full mode runs only the notebooks named with ``--full`` (it takes hours on a CPU for some chapters).

``make book`` uses the same runner to execute the chapters side by side into Jupyter Book's execution cache
(``--cache``), after printing what the run will cost on this machine (:func:`estimate`); the build then only renders.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from helpers.course import stopped_at_deadline

from . import report
from .book_times import execute, notebooks_in_toc

ROOT = Path(__file__).resolve().parents[1]


def printed_output(executed: Path) -> str:
    """What an executed notebook printed, cell by cell (standard output only: no plots, no progress bars).

    Kept beside a full-mode record as ``<chapter>.out.txt``: a chapter quotes numbers of its full-mode run (per-seed
    values, ranges) that the record's few metrics do not hold, and this is where a reader can check them.
    """
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    parts = []
    for cell in nb.cells:
        text = "".join(
            out.get("text", "")
            for out in cell.get("outputs", [])
            if out.get("output_type") == "stream" and out.get("name") == "stdout"
        )
        if text.strip():
            # headed by the cell's first line, which says which cell it is
            lines = cell.source.strip().splitlines()
            more = " ..." if len(lines) > 1 else ""
            parts.append(f">>> {lines[0]}{more}\n{text.rstrip()}\n")
    return "\n".join(parts)


def device_info() -> dict:
    """What the notebooks will run on here: ``helpers.get_device()``'s choice, named."""
    import torch

    import helpers

    device = helpers.get_device()
    m = report.machine()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{device.type.upper()} ({m['cpu']}, {m['cores']} cores)"
    return {
        "device": name,
        "device_type": device.type,
        "torch": torch.__version__,
        "python": m["python"],
        "cores": m["cores"],
    }


def commit() -> str:
    """The commit the notebooks came from, ``+changes`` if the book or helpers differ from it (``DLBOOK_COMMIT``
    names it where the checkout travelled without its ``.git``)."""
    if os.environ.get("DLBOOK_COMMIT"):
        return os.environ["DLBOOK_COMMIT"]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (
        "+changes" if git("status", "--porcelain", "book", "helpers") else ""
    )


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(
            proc.pid, signal.SIGKILL
        )  # the notebook's kernel is in the same process group
    except ProcessLookupError:
        pass


def run(
    modes: Sequence[str],
    notebooks: Sequence[str] | None = None,
    *,
    jobs: int = 2,
    threads: int | None = None,
    deadline_s: float | None = None,
    seed: int | None = None,
    full_on_cpu: Sequence[str] = (),
    previous: Mapping | None = None,
    keep: Path | None = None,
    paths: Sequence[Path] | None = None,
    cache: Path | None = None,
    results: Path | None = None,
    records: Path | None = None,
    heartbeat_s: float = 60.0,
) -> dict:
    """Execute every (notebook, mode), ``jobs`` at a time, and merge the rows into ``previous``.

    ``deadline_s`` bounds the whole run: what is still running then is stopped and reported as such, and what
    has not started is not run. ``threads`` (default: cores / jobs) sets each notebook's CPU threads.
    ``paths`` replaces the book's notebooks (tests). ``cache``: a jupyter-cache folder that receives every
    notebook that passed (run with its own seed), as Jupyter Book's ``execute_notebooks: cache`` finds them.
    ``results``: where the chapters record their numbers (default: a temporary folder). ``records``: a folder
    that keeps the record of every full-mode run that passed (the committed full-mode numbers of the book).
    """
    info = device_info()
    if paths is None:
        paths = [p for p in notebooks_in_toc() if not notebooks or p.stem in notebooks]
    if notebooks and len(paths) != len(set(notebooks)):
        raise ValueError(
            f"unknown notebook in {list(notebooks)}; known: {[p.stem for p in notebooks_in_toc()]}"
        )
    todo = []
    for mode in modes:
        for path in paths:
            cpu_ok = path.stem in full_on_cpu or "all" in full_on_cpu
            if mode == "full" and info["device_type"] == "cpu" and not cpu_ok:
                continue
            if cache is not None and seed is None and _in_cache(cache, path):
                print(
                    f"{mode:5s} {path.stem:12s} unchanged since its cached run: not run again",
                    flush=True,
                )
                continue
            todo.append((path, mode))
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, jobs))
    stamp = {
        **info,
        "commit": commit(),
        "date": dt.date.today().isoformat(),
        "jobs": jobs,
        "threads": threads,
    }
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    rows = {_key(r): r for r in (previous or {}).get("runs", [])}
    new: list[dict] = []
    start = time.perf_counter()
    running: list[tuple[subprocess.Popen, Path, str, Path, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if (cache is not None or records is not None) and keep is None:
            keep = tmp / "executed"
        beat = time.perf_counter()

        def finish(proc, path, mode, out_json, t0, killed=False):
            if killed:
                row = {
                    "wall_s": round(time.perf_counter() - t0, 1),
                    "passed": False,
                    "stopped": True,
                    "error": f"stopped at the deadline ({deadline_s:.0f} s)",
                }
            elif out_json.exists():
                row = json.loads(out_json.read_text())
            else:
                row = {
                    "wall_s": round(time.perf_counter() - t0, 1),
                    "passed": False,
                    "error": f"the runner exited with code {proc.returncode}",
                }
            row.update(
                notebook=path.stem, mode=mode, seed=0 if seed is None else seed, **stamp
            )
            rows[_key(row)] = row
            new.append(row)
            record = (results or tmp / "results") / "full" / f"{path.stem}.json"
            executed = keep / f"{mode}-{path.stem}.ipynb" if keep else None
            if (
                records is not None
                and mode == "full"
                and row["passed"]
                and seed is None
                and record.exists()
            ):
                records.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(record, records / record.name)
                printed = records / f"{path.stem}.out.txt"
                if executed.exists():
                    printed.write_text(printed_output(executed))
                else:  # never leave the printed output of an older run beside a new record
                    printed.unlink(missing_ok=True)
            if cache is not None and row["passed"] and seed is None:
                _add_to_cache(cache, path, executed, row["wall_s"])
            verdict = "passed" if row["passed"] else f"FAILED: {row['error']}"
            print(
                f"{mode:5s} {path.stem:12s} {row['wall_s']:7.1f} s  {verdict}",
                flush=True,
            )

        while todo or running:
            late = deadline_s is not None and time.perf_counter() - start > deadline_s
            while todo and len(running) < jobs and not late:
                path, mode = todo.pop(0)
                out_json = tmp / f"{mode}-{path.stem}.json"
                cmd = [
                    sys.executable,
                    "-m",
                    "benchmarks.devices",
                    "--one",
                    str(path),
                    "--mode",
                    mode,
                    "--results",
                    str(results or tmp / "results"),
                    "--row",
                    str(out_json),
                ]
                if seed is not None:
                    cmd += ["--seed", str(seed)]
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    cmd += [
                        "--keep",
                        str(keep / f"{mode}-{path.stem}.ipynb"),
                        "--cell-log",
                        str(keep / f"{mode}-{path.stem}.cells.tsv"),
                    ]
                proc = subprocess.Popen(
                    cmd,
                    cwd=ROOT,
                    env=env,
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                running.append((proc, path, mode, out_json, time.perf_counter()))
            if late:
                for item in running:
                    _kill(item[0])
                    finish(*item, killed=True)
                running = []
                for path, mode in todo:
                    print(f"{mode:5s} {path.stem:12s} not run (deadline)", flush=True)
                todo = []
                break
            for item in list(running):
                if item[0].poll() is not None:
                    running.remove(item)
                    finish(*item)
            if running and time.perf_counter() - beat > heartbeat_s:
                beat = time.perf_counter()
                now = ", ".join(
                    f"{p.stem} ({(beat - t0) / 60:.0f} min)"
                    for _, p, _, _, t0 in running
                )
                print(
                    f"[{(beat - start) / 60:.0f} min] running: {now}; {len(todo)} waiting",
                    flush=True,
                )
            time.sleep(0.5)
    result = {"runs": sorted(rows.values(), key=_key), "new": new}
    if previous and previous.get("notes"):
        result["notes"] = list(
            previous["notes"]
        )  # what the committed runs' conditions were, kept with them
    return result


def _in_cache(cache: Path, source: Path) -> bool:
    import nbformat
    from jupyter_cache import get_cache

    try:
        get_cache(str(cache)).match_cache_notebook(nbformat.read(source, as_version=4))
        return True
    except KeyError:
        return False


def _add_to_cache(cache: Path, source: Path, executed: Path, seconds: float) -> None:
    """Store an executed notebook in a jupyter-cache folder, keyed by its source's code (as myst-nb matches it)."""
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    # The key hashes the code cells with their metadata and the kernelspec, which execution changes (timings, the
    # kernel's own spec): store the source notebook as the build reads it, with the executed cells' outputs.
    nb = nbformat.read(source, as_version=4)
    run = nbformat.read(executed, as_version=4)
    for cell, done in zip(nb.cells, run.cells):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = done.outputs, done.execution_count
    get_cache(str(cache)).cache_notebook_bundle(
        CacheBundleIn(nb, str(source), data={"execution_seconds": seconds}),
        check_validity=False,
        overwrite=True,
    )


def estimate(
    mode: str,
    notebooks: Sequence[str] | None = None,
    jobs: int = 1,
    recorded: Mapping | None = None,
    lower_bound: bool = False,
) -> tuple[list[str], float | None, list[str]]:
    """What running the book in ``mode`` will cost here: per chapter, the latest recorded wall time on this kind
    of device (this machine's device name first, then any device of the same type), as printable lines; the whole
    run's time with ``jobs`` side by side (None if a chapter was never timed on such a device; with
    ``lower_bound``, the time of the timed chapters alone, which the whole run takes at least); and the chapters
    never timed on such a device, which is what makes the total unknown or a lower bound."""
    info = device_info()
    runs = [
        r
        for r in (recorded or {}).get("runs", [])
        if r["mode"] == mode and r.get("seed", 0) == 0
    ]
    lines, known, untimed = [], [], []
    for path in notebooks_in_toc():
        if notebooks and path.stem not in notebooks:
            continue
        same = [
            r
            for r in runs
            if r["notebook"] == path.stem and r["device"] == info["device"]
        ]
        kind = [
            r
            for r in runs
            if r["notebook"] == path.stem
            and r.get("device_type") == info["device_type"]
        ]
        pick = max(same or kind, key=lambda r: r["date"], default=None)
        if pick is None:
            lines.append(
                f"  {path.stem:12s} not yet timed on a {info['device_type'].upper()}"
            )
            untimed.append(path.stem)
        else:
            lines.append(
                f"  {path.stem:12s} {pick['wall_s'] / 60:6.1f} min  ({pick['device']}, {pick['date']})"
            )
            known.append(pick["wall_s"])
    total = (
        None
        if untimed and not (lower_bound and known)
        else max(sum(known) / max(1, jobs), max(known, default=0.0))
    )
    return lines, total, untimed


def _key(row: Mapping) -> tuple:
    return (row["device"], row["mode"], row["notebook"], row.get("seed", 0))


def _cell(row: Mapping | None) -> str:
    if row is None:
        return "—"
    if row["passed"]:
        return f"✓ {row['wall_s']:,.0f} s"
    return (
        f"unfinished > {row['wall_s']:,.0f} s ²"
        if stopped_at_deadline(row)
        else f"✗ {row['wall_s']:,.0f} s ¹"
    )


def markdown(result: Mapping) -> list[str]:
    """The matrix (notebooks × device and mode) for the committed seed, then the runs with other seeds."""
    runs = result.get("runs", [])
    order = [p.stem for p in notebooks_in_toc()]
    main = [r for r in runs if r.get("seed", 0) == 0]
    columns = sorted(
        {(r["device"], r["mode"]) for r in main}, key=lambda c: (c[0], c[1] != "quick")
    )
    lines = [
        "Every notebook executed in a fresh kernel, one or several at a time (the notes below say which), by "
        "`make gpu-check` or `make bench-book` (`python -m benchmarks devices`): ✓ passed every quality gate, "
        "✗ failed (the assertion is listed below the table), unfinished: stopped at the run's deadline (no "
        "verdict); the time is the notebook's wall time, with other notebooks beside it where several ran at a "
        "time.",
        "",
    ]
    if columns:
        header = ["notebook"] + [f"{dev}, {mode}" for dev, mode in columns]
        index = {(r["device"], r["mode"], r["notebook"]): r for r in main}
        lines += report.table(
            header,
            [
                [n] + [_cell(index.get((d, m, n))) for d, m in columns]
                for n in order
                if any((d, m, n) in index for d, m in columns)
            ],
        )
        lines += [
            "",
            "Runs: " + "; ".join(_describe(main, d, m) for d, m in columns) + ".",
        ]
        failed = [r for r in main if not r["passed"] and not stopped_at_deadline(r)]
        if failed:
            lines += ["", "¹ Failures:"] + [
                f"- {r['notebook']} ({r['device']}, {r['mode']}): `{r['error']}`"
                for r in failed
            ]
        stopped = [r for r in main if stopped_at_deadline(r)]
        if stopped:
            lines += [
                "",
                "² Stopped unfinished at the run's deadline: "
                + "; ".join(
                    f"{r['notebook']} ({r['device']}, {r['mode']})" for r in stopped
                )
                + ".",
            ]
    notes = result.get("notes", [])
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    other = [r for r in runs if r.get("seed", 0) != 0]
    if other:
        lines += [
            "",
            "**Other seeds.**",
            "",
            "The same notebooks with their one `SEED = 0` line changed: the quality gates must hold for "
            "any seed.",
            "",
        ]
        groups = sorted({(r["device"], r["mode"]) for r in other})
        for dev, mode in groups:
            rows = [r for r in other if (r["device"], r["mode"]) == (dev, mode)]
            seeds = sorted({r["seed"] for r in rows})
            index = {(r["notebook"], r["seed"]): r for r in rows}
            lines += [f"{dev}, {mode} mode:", ""]
            lines += report.table(
                ["notebook"] + [f"SEED = {s}" for s in seeds],
                [
                    [n] + [_cell(index.get((n, s))) for s in seeds]
                    for n in order
                    if any((n, s) in index for s in seeds)
                ],
            )
            lines += [
                "",
                "Runs: "
                + "; ".join(
                    f"SEED = {s}: {_conditions([r for r in rows if r['seed'] == s])}"
                    for s in seeds
                )
                + ".",
            ]
            failed = [r for r in rows if not r["passed"]]
            lines += [""] + [
                f"- {'²' if stopped_at_deadline(r) else '¹'} {r['notebook']}, SEED = {r['seed']}: `{r['error']}`"
                for r in failed
            ]
            lines += [""] if failed else []
    if not runs:
        lines += ["No run recorded yet: `make gpu-check`."]
    return lines


def _describe(rows: Sequence[Mapping], device: str, mode: str) -> str:
    """One column's runs: their dates, commits and torch versions (oldest first; a column
    collects runs of several sittings) and how many notebooks shared the machine."""
    sel = [r for r in rows if (r["device"], r["mode"]) == (device, mode)]
    return f"{device}, {mode} mode: {_conditions(sel)}"


def _conditions(rows: Sequence[Mapping]) -> str:
    """When, at which commits and with which torch some runs ran, and how many notebooks at a time."""
    sel = sorted(rows, key=lambda r: r["date"])

    def listed(key: str) -> str:
        return ", ".join(dict.fromkeys(str(r[key]) for r in sel))

    def span(values) -> str:  # "a", or "lowest to highest"
        v = sorted(set(values))
        return str(v[0]) if len(v) == 1 else f"{v[0]} to {v[-1]}"

    commits = listed("commit")
    jobs = span(int(r.get("jobs", 1)) for r in sel)
    return (
        f"{span(r['date'] for r in sel)}, "
        f"commit{'s' if ',' in commits else ''} {commits}, torch {listed('torch')}, "
        + ("one notebook at a time" if jobs == "1" else f"{jobs} notebooks at a time")
    )


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.devices")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="quick")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--results", type=Path)
    parser.add_argument("--row", type=Path)
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--cell-log", type=Path)
    args = parser.parse_args(argv)
    row = execute(
        args.one,
        args.mode,
        args.results,
        seed=args.seed,
        out=args.keep,
        cell_log=args.cell_log,
    )
    args.row.write_text(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
