"""Batch grading of the auto-checked exercises in the notebooks students hand back.

``python -m helpers grade SUBMISSIONS [--out grades.csv] [--timeout 60] [--points 1]`` finds every notebook under
``SUBMISSIONS`` and writes one CSV row per student and exercise: ``student, notebook, exercise, points,
max_points, cases, feedback``. The student is the folder right under ``SUBMISSIONS`` (``alice/dqn.ipynb``) or
else the file's name (``alice.ipynb``).

How a notebook is graded: its exercise cells are the code cells that call ``check("name", fn)``
(:mod:`helpers.exercises`; the assignments' own: :mod:`helpers.course`). Each notebook runs in a
fresh Python process with an IPython shell (magics work), one exercise after the other, each in an
empty namespace holding only the import lines it uses (from the notebook's cells above it), then
the exercise's cell, under a time limit. ``check`` writes its verdict to a
file there (``DLBOOK_GRADE_LOG``); the points are ``max_points`` times the fraction of test cases passed, and the
feedback is the first failing case's message. If the cell never called ``check`` (it failed first, or the call
was deleted) the function it defined is checked anyway. A cell that runs past the limit is stopped and gets 0
points; one that cannot be interrupted (e.g. a bare ``except:`` swallowing the time limit) is killed with its
process, and the notebook's remaining exercises continue in a new one. An exercise listed in the notebook's
metadata (written by :mod:`helpers.student`) whose cell is gone gets 0 points and says so.

The time limit uses ``SIGALRM``: the grader runs on Linux or macOS (or in WSL). It runs the students' code with
your permissions: run it in a container or a throw-away account.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .student import CHECK_CALL, cell_source

STARTUP_LIMIT_S = (
    300.0  # the worker imports torch and the helpers before the first exercise
)
SETUP_LIMIT_S = (
    120.0  # an exercise's import lines (first imports of gymnasium, sklearn, ...)
)
KILL_GRACE_S = (
    2.0  # after its time limit, a cell that ignores the interruption is killed
)
ONLY_THIS_CELL = (
    " (the grader runs only this cell and the import lines above it: define everything the function "
    "needs in the cell)"
)
FIELDS = [
    "student",
    "notebook",
    "exercise",
    "points",
    "max_points",
    "cases",
    "feedback",
]


@dataclass
class Task:
    """One exercise of one notebook: the cell to run (``None`` when it is missing) and what it needs."""

    exercise: str
    function: str
    cell: str | None
    setup: list[str] = field(default_factory=list)


@dataclass
class Row:
    student: str
    notebook: str
    exercise: str
    points: float
    max_points: float
    cases: str
    feedback: str


class GraderError(RuntimeError):
    """The grader itself could not run (its environment), as opposed to a student's code failing."""


def student_name(path: Path, root: Path) -> str:
    """``root/alice/dqn.ipynb`` -> ``alice``; ``root/alice.ipynb`` -> ``alice``."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = (path.name,)
    return parts[0] if len(parts) > 1 else path.stem


def _python(source: str) -> str:
    """A cell's source as plain Python (IPython's magics and shell escapes become function calls)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # plain Python cells still work
        return source
    return TransformerManager().transform_cell(source)


def import_lines(source: str) -> list[str]:
    """The top-level ``import`` statements of a code cell (IPython syntax allowed), as source text."""
    source = _python(source)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [
        ast.get_source_segment(source, node)
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]


def names_used(source: str) -> set[str] | None:
    """The names a cell reads (``None`` when it does not parse: then it needs nothing, it fails anyway)."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return None
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _binds(line: str) -> set[str] | None:
    """The names an import line binds (``None`` for ``from m import *``)."""
    node = ast.parse(line).body[0]
    if any(alias.name == "*" for alias in node.names):
        return None
    return {alias.asname or alias.name.split(".")[0] for alias in node.names}


def setup_for(cell: str, imports: list[str]) -> list[str]:
    """The import lines (from the cells above) that an exercise cell needs: those binding a name it uses."""
    used = names_used(cell)
    if used is None:
        return []
    needed = []
    for line in dict.fromkeys(imports):
        bound = _binds(line)
        if bound is None or bound & used:
            needed.append(line)
    return needed


def find_tasks(nb: dict) -> list[Task]:
    """The exercises to grade in a notebook, with each one's import lines (from the code cells above it)."""
    from .course import (
        ALL_CHECKS as CHECKS,
    )  # the chapters' exercises and the assignments'

    code = [cell_source(c) for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    tasks: dict[str, Task] = {}
    setup: list[str] = []
    for src in code:
        calls = [m for m in CHECK_CALL.finditer(src) if m.group("name") in CHECKS]
        for m in calls:
            tasks.setdefault(
                m.group("name"),
                Task(m.group("name"), m.group("fn"), src, setup_for(src, setup)),
            )
        if not calls:
            setup += import_lines(src)
    expected = nb.get("metadata", {}).get("dlbook", {}).get("exercises", {})
    for name, function in expected.items():
        if name in tasks or name not in CHECKS:
            continue
        # The check(...) call was deleted: grade a cell that still defines the function, if there is one.
        cell = next(
            (i for i, src in enumerate(code) if f"def {function}(" in src), None
        )
        if cell is None:
            tasks[name] = Task(name, function, None)
        else:
            above = [line for src in code[:cell] for line in import_lines(src)]
            tasks[name] = Task(name, function, code[cell], setup_for(code[cell], above))
    return list(tasks.values())


# --- the worker: runs in a fresh process, one notebook's exercises one after the other ----------------------


class _TimeLimit(BaseException):
    """Raised in the student's code when its time is up (a BaseException: ``except Exception`` cannot stop it)."""


def _on_alarm(signum, frame):
    raise _TimeLimit()


def _describe(err: BaseException) -> str:
    if isinstance(err, SyntaxError):
        return f"{type(err).__name__}: {err.msg} (line {err.lineno})"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def _worker(spec_path: str, progress_path: str) -> None:
    """Grade the exercises listed in ``spec_path``, reporting each step as a JSON line in ``progress_path``."""
    from IPython.core.interactiveshell import InteractiveShell

    import helpers
    from helpers import course, exercises

    spec = json.loads(Path(spec_path).read_text())
    shell = InteractiveShell.instance()
    signal.signal(signal.SIGALRM, _on_alarm)
    with (
        open(progress_path, "a", buffering=1, encoding="utf-8") as progress,
        open(os.devnull, "w", encoding="utf-8") as quiet,
    ):

        def emit(**event) -> None:
            progress.write(json.dumps(event) + "\n")

        sys.stdout = quiet  # what the students' cells print is not graded
        emit(event="ready")
        for item in spec["tasks"]:
            index, task = item["index"], Task(**item["task"])
            emit(event="setup", index=index)
            shell.reset(new_session=False)
            setup_errors = []
            for line in task.setup:
                try:
                    exec(line, shell.user_ns)
                except (
                    Exception
                ) as err:  # an import the grader's environment lacks: say so, go on
                    setup_errors.append(f"{line.strip()}: {_describe(err)}")
            log = Path(spec_path).with_name(f"verdict-{index}.jsonl")
            os.environ[exercises.GRADE_LOG_ENV] = str(log)

            def verdicts(log=log, name=task.exercise) -> list[dict]:
                lines = (
                    log.read_text(encoding="utf-8").splitlines() if log.exists() else []
                )
                return [v for v in map(json.loads, lines) if v["exercise"] == name]

            helpers.seed_everything(0)
            emit(event="start", index=index)
            start, error, timed_out, fallback = time.monotonic(), None, False, None
            try:
                signal.setitimer(signal.ITIMER_REAL, spec["timeout"])
                result = shell.run_cell(task.cell, store_history=False, silent=True)
                err = result.error_before_exec or result.error_in_exec
                timed_out = isinstance(err, _TimeLimit)
                error = None if err is None or timed_out else _describe(err)
                fn = shell.user_ns.get(task.function)
                if not timed_out and not verdicts() and callable(fn):
                    # the cell never called check(): check the function it defined
                    verdict = course.grade(task.exercise, fn)
                    fallback = {**asdict(verdict), "score": verdict.score}
            except _TimeLimit:
                timed_out = True
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            found = verdicts()
            emit(
                event="done",
                index=index,
                verdict=found[-1] if found else fallback,
                error=error,
                timed_out=timed_out,
                fallback=fallback is not None,
                setup_errors=setup_errors,
                seconds=round(time.monotonic() - start, 2),
            )
        sys.stdout = sys.__stdout__


# --- the parent: one worker per notebook, restarted after a kill -------------------------------------------


def _feedback(task: Task, done: dict | None, timeout: float) -> tuple[float, str, str]:
    """(score in [0, 1], "passed/total", feedback) of one exercise from the worker's report."""
    if task.cell is None:
        return (
            0.0,
            "",
            f'missing: no cell defines {task.function}() or calls check("{task.exercise}", ...)',
        )
    if done is None or done["event"] == "lost":
        if done is None or done["killed"]:
            return (
                0.0,
                "",
                (
                    f"stopped after {timeout:g} s: the cell did not finish, and could not be "
                    "interrupted (an endless loop with a bare `except:` inside it?)"
                ),
            )
        return (
            0.0,
            "",
            f"the cell ended the Python process (exit code {done['returncode']})",
        )
    verdict, error = done.get("verdict"), done.get("error")
    notes = []
    if done.get("setup_errors"):
        notes.append(
            "the notebook's imports failed here: " + "; ".join(done["setup_errors"])
        )
    if verdict is None:
        if done.get("timed_out"):
            text = f"stopped after {timeout:g} s: the cell did not finish (an endless loop, or far too slow?)"
        elif error:
            text = f"the cell raised {error}, and defined no function {task.function}() to check"
        else:
            text = f"no function {task.function}() defined (keep the name of the stub)"
        if error and "NameError" in error:
            text += ONLY_THIS_CELL
        return 0.0, "", "; ".join([text, *notes])
    score = float(verdict.get("score", 0.0))
    text = verdict.get("message") or "correct on every test case"
    if "NameError" in text:
        text += ONLY_THIS_CELL
    if done.get("fallback") and error:
        text = f"the cell raised {error} (graded the function it defined): {text}"
    if done.get("timed_out"):
        text += f" (then the cell ran past the {timeout:g} s limit)"
    return score, f"{verdict['passed']}/{verdict['total']}", "; ".join([text, *notes])


def _worker_env(tmp: Path) -> dict:
    env = dict(os.environ)
    env.pop("DLBOOK_GRADE_LOG", None)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.update(
        DLBOOK_QUICK="1",
        MPLBACKEND="Agg",
        TQDM_DISABLE="1",
        DLBOOK_RESULTS=str(tmp / "results"),
    )
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _run_worker(
    tasks: list[tuple[int, Task]], timeout: float, tmp: Path
) -> dict[int, dict]:
    """Run one worker process on ``tasks``: the report of each exercise it finished, and a ``lost`` report for
    the one it was killed in (or that ended the process). Raises :class:`GraderError` when it cannot start."""
    spec, progress, out = tmp / "spec.json", tmp / "progress.jsonl", tmp / "worker.log"
    spec.write_text(
        json.dumps(
            {
                "timeout": timeout,
                "tasks": [{"index": i, "task": t.__dict__} for i, t in tasks],
            }
        )
    )
    progress.write_text("")
    # os._exit: threads a student's cell left running must not keep the process alive
    run = "import os, sys; from helpers.grading import _worker; _worker(*sys.argv[1:]); os._exit(0)"
    cmd = [sys.executable, "-c", run, str(spec), str(progress)]
    reports: dict[int, dict] = {}
    seen: set[tuple] = set()
    ready, current, phase, since = False, None, None, time.monotonic()

    def update() -> None:
        nonlocal ready, current, phase, since
        for line in progress.read_text(encoding="utf-8").split("\n")[
            :-1
        ]:  # whole lines only
            event = json.loads(line)
            key = (event["event"], event.get("index"))
            if key in seen:
                continue
            seen.add(key)
            now = time.monotonic()
            if event["event"] == "ready":
                ready, since = True, now
            elif event["event"] == "done":
                reports[event["index"]] = event
                current, phase, since = None, None, now
            else:  # "setup", then "start": the cell runs
                current, phase, since = event["index"], event["event"], now

    killed = False
    with open(out, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=tmp,
            env=_worker_env(tmp),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        while proc.poll() is None:
            time.sleep(0.1)
            update()
            limit = (
                STARTUP_LIMIT_S
                if not ready or current is None
                else SETUP_LIMIT_S
                if phase == "setup"
                else timeout + KILL_GRACE_S
            )
            if time.monotonic() - since > limit:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                killed = True
    update()
    if not ready:
        tail = out.read_text(errors="replace")[-2000:]
        raise GraderError(
            f"the grading process did not start (exit code {proc.returncode}):\n{tail}"
        )
    if current is not None:
        reports[current] = {
            "event": "lost",
            "killed": killed,
            "returncode": proc.returncode,
        }
    return reports


def grade_notebook(
    path: Path, student: str, name: str, timeout: float = 60.0, max_points: float = 1.0
) -> list[Row]:
    """Grade one submitted notebook: one :class:`Row` per exercise."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return [
            Row(
                student,
                name,
                "-",
                0.0,
                max_points,
                "",
                f"not a readable notebook: {_describe(err)}",
            )
        ]
    tasks = find_tasks(nb)
    if not tasks:
        return [
            Row(
                student,
                name,
                "-",
                0.0,
                max_points,
                "",
                "no auto-checked exercise found in this notebook",
            )
        ]
    reports: dict[int, dict] = {}
    todo = [(i, t) for i, t in enumerate(tasks) if t.cell is not None]
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        while (
            todo
        ):  # a new process for what is left after an exercise killed the last one
            got = _run_worker(todo, timeout, Path(tmp))
            if not got:  # no progress at all: give up on the rest rather than loop
                got = {todo[0][0]: {"event": "lost", "killed": True}}
            reports.update(got)
            todo = [(i, t) for i, t in todo if i not in reports]
    rows = []
    for i, task in enumerate(tasks):
        score, cases, feedback = _feedback(task, reports.get(i), timeout)
        rows.append(
            Row(
                student,
                name,
                task.exercise,
                round(score * max_points, 2),
                max_points,
                cases,
                feedback,
            )
        )
    return rows


def find_submissions(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(
        p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )


def grade_folder(
    root: Path, timeout: float = 60.0, max_points: float = 1.0, jobs: int = 1
) -> list[Row]:
    """Grade every notebook under ``root`` (``jobs`` notebooks at a time)."""
    root = Path(root)
    paths = find_submissions(root)
    base = root if root.is_dir() else root.parent

    def one(path: Path) -> list[Row]:
        rel = path.relative_to(base).as_posix()
        return grade_notebook(path, student_name(path, base), rel, timeout, max_points)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return [row for rows in pool.map(one, paths) for row in rows]


def write_csv(rows: Iterable[Row], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row.__dict__)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers grade",
        description="Grade the auto-checked exercises of submitted notebooks.",
    )
    parser.add_argument(
        "submissions", type=Path, help="a folder of notebooks (or one notebook)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("grades.csv"),
        help="the CSV to write (grades.csv)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per exercise cell (60)"
    )
    parser.add_argument(
        "--points",
        type=float,
        default=1.0,
        help="points of a fully correct exercise (1)",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="notebooks graded at the same time (1)"
    )
    args = parser.parse_args(argv)
    if not args.submissions.exists():
        parser.error(f"{args.submissions} does not exist")
    try:
        rows = grade_folder(args.submissions, args.timeout, args.points, args.jobs)
    except GraderError as err:
        print(f"grading failed: {err}", file=sys.stderr)
        return 1
    write_csv(rows, args.out)
    totals: dict[str, list[float]] = {}
    for row in rows:
        got = totals.setdefault(row.student, [0.0, 0.0])
        got[0] += row.points
        got[1] += row.max_points
    for student, (points, most) in sorted(totals.items()):
        print(f"{student}: {points:g} / {most:g}")
    print(f"{len(rows)} exercises of {len(totals)} students graded -> {args.out}")
    return 0
