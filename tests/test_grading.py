"""The batch grader (`python -m helpers grade`): right, wrong, partial, crashing and hanging submissions of three
chapters' auto-checked exercises, and of the DQN and PPO chapters' four, graded through the real command line;
and every chapter's own solution."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.exercises import grade
from helpers.grading import find_tasks, import_lines, student_name
from helpers.student import SOLUTION_BLOCK, student_notebook

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(
    p for p in BOOK.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
)
STUB = "raise NotImplementedError  # your code here"
TIMEOUT = 3  # seconds per exercise cell: the right answers need milliseconds

# The three exercises, by chapter, and the body a student wrote in place of the stub's `raise`.
CHAPTERS = {
    "conv_output_size": "deep_learning/cnn",
    "q_learning_update": "reinforcement_learning/q_learning",
    "dqn_target": "reinforcement_learning/dqn",
}
CHAPTER_OF = {
    **CHAPTERS,
    "double_dqn_target": "reinforcement_learning/dqn",
    "clipped_surrogate": "reinforcement_learning/ppo",
    "gae": "reinforcement_learning/ppo",
}
RIGHT = {
    "conv_output_size": "return (size + 2 * padding - kernel) // stride + 1",
    "q_learning_update": "target = r if terminated else r + gamma * Q[s_next].max()\n"
    "Q[s, a] += alpha * (target - Q[s, a])",
    "dqn_target": "return rewards + gamma * (~terminated).float() * next_q.max(dim=1).values",
}
WRONG = {  # every test case fails
    "conv_output_size": "return size - kernel",
    "q_learning_update": "Q[s, a] = r",
    "dqn_target": "return next_q.max(dim=1).values",
}
PARTIAL = {  # the typical mistake: some cases pass
    "conv_output_size": "return -(-(size + 2 * padding - kernel) // stride) + 1",  # rounds up
    "q_learning_update": "Q[s, a] += alpha * (r + gamma * Q[s_next].max() - Q[s, a])",  # ignores terminal
    "dqn_target": "return rewards + gamma * next_q.max(dim=1).values",  # ignores terminal
}
CRASHING = {  # and dqn_target's cell imports a module that does not exist (see below)
    "conv_output_size": "return (size + 2 * padding - kernel) // stride +",  # SyntaxError
    "q_learning_update": "Q[s, a] += alpha * (target - Q[s, a])",  # NameError
}


def source(cell: dict) -> str:
    return (
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    )


def student_copy(chapter: str) -> dict:
    book = json.loads((BOOK / f"{chapter}.ipynb").read_text())
    return student_notebook(book, chapter)[0]


def exercise_cell(exercise: str, body: str) -> tuple[str, list[str]]:
    """The exercise's cell, from its chapter's student copy, with ``body`` in place of the stub, and the import
    lines it needs."""
    nb = student_copy(CHAPTER_OF[exercise])
    (task,) = [t for t in find_tasks(nb) if t.exercise == exercise]
    indent = re.search(rf"^( *){re.escape(STUB)}", task.cell, re.M).group(1)
    return task.cell.replace(
        f"{indent}{STUB}", "\n".join(indent + line for line in body.splitlines())
    ), task.setup


def submission(cells: list[tuple[str, str]], exercises: list[str]) -> dict:
    """A small notebook: the chapters' import lines, then exercise cells (as a student copy has them)."""
    setup = []
    for name in exercises:
        if name in CHAPTERS:
            setup += exercise_cell(name, "pass")[1]
    nb_cells = [
        {
            "cell_type": "code",
            "id": "imports",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": "\n".join(dict.fromkeys(setup)),
        }
    ]
    for i, (kind, text) in enumerate(cells):
        nb_cells.append(
            {
                "cell_type": kind,
                "id": f"cell-{i}",
                "metadata": {},
                "source": text,
                **({"outputs": [], "execution_count": None} if kind == "code" else {}),
            }
        )
    return {
        "cells": nb_cells,
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3",
                "language": "python",
            },
            "dlbook": {"edition": "student", "exercises": {e: e for e in exercises}},
        },
    }


def answers(bodies: dict[str, str]) -> list[tuple[str, str]]:
    return [("code", exercise_cell(name, body)[0]) for name, body in bodies.items()]


def write(path: Path, nb: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1))


def grade_a_class(root: Path) -> tuple[dict[tuple[str, str], dict], str]:
    """Hand in six students' notebooks and grade them through the command line: the CSV's rows by
    (student, exercise), and what the command printed."""
    names = list(CHAPTERS)
    # alice hands in the whole q-learning chapter (one folder per student) plus two cells of other chapters
    alice = student_copy(CHAPTERS["q_learning_update"])
    for cell in alice["cells"]:
        if STUB in source(cell):
            cell["source"] = exercise_cell(
                "q_learning_update", RIGHT["q_learning_update"]
            )[0]
    extra = submission(
        answers({n: RIGHT[n] for n in ("conv_output_size", "dqn_target")}), names
    )
    alice["cells"] += extra["cells"]
    alice["metadata"]["dlbook"]["exercises"] = {n: n for n in names}
    write(root / "alice" / "q_learning.ipynb", alice)
    write(root / "bob.ipynb", submission(answers(WRONG), names))
    write(root / "carol.ipynb", submission(answers(PARTIAL), names))
    dave = answers(CRASHING)
    typo = "import numpyy  # a typo\nfrom helpers.exercises import check"
    dave.append(
        (
            "code",
            exercise_cell("dqn_target", RIGHT["dqn_target"])[0].replace(
                "from helpers.exercises import check", typo
            ),
        )
    )
    write(root / "dave.ipynb", submission(dave, names))
    erin = answers(
        {"conv_output_size": "while True:\n    pass"}
    )  # hangs inside check(): interrupted
    erin.append(
        (
            "code",
            (
                "import time\n\nwhile True:  # hangs, and swallows the interruption: killed\n"
                "    try:\n        time.sleep(1)\n    except:\n        pass\n"
                'check("q_learning_update", q_learning_update)'
            ),
        )
    )
    right_dqn = exercise_cell("dqn_target", RIGHT["dqn_target"])[0]
    erin.append(
        (
            "code",
            right_dqn.replace(
                'check("dqn_target", dqn_target)',  # no check() call, and a crash
                "print(dqn_target(None, None, None, 0.9))",
            ),
        )
    )
    write(
        root / "erin" / "homework.ipynb",
        submission(erin, [*names, "softmax_cross_entropy"]),
    )
    frank = student_copy(CHAPTERS["dqn_target"])  # handed back untouched
    write(root / "frank.ipynb", frank)
    out = root / "grades.csv"
    stdout = run_grader(root, out)
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "student",
        "notebook",
        "exercise",
        "points",
        "max_points",
        "cases",
        "feedback",
    ]
    return {(r["student"], r["exercise"]): r for r in rows}, stdout


def points(grades, student, exercise) -> float:
    return float(grades[(student, exercise)]["points"])


def run_grader(folder, out) -> str:
    """``python -m helpers grade`` on a folder of submissions, as an instructor runs it; its output."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers",
            "grade",
            str(folder),
            "--out",
            str(out),
            "--timeout",
            str(TIMEOUT),
            "--points",
            "10",
            "--jobs",
            "2",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_grading_a_class_through_the_command_line(tmp_path):
    """One test, so that the class is graded once even when the tests run on several workers."""
    grades, printed = grade_a_class(tmp_path)

    # right answers: full points (alice's whole chapter, and two cells of other chapters)
    for name in CHAPTERS:
        row = grades[("alice", name)]
        assert (
            float(row["points"]) == 10.0
            and row["feedback"] == "correct on every test case"
        ), row
    assert "alice: 30 / 30" in printed and "carol: 16.67 / 30" in printed

    # wrong answers: nothing, and what is wrong
    hints = {
        "conv_output_size": "expected 26, got 25",
        "q_learning_update": "should become",
        "dqn_target": "just r where the episode terminated",
    }
    for name, hint in hints.items():
        row = grades[("bob", name)]
        assert (
            float(row["points"]) == 0.0
            and row["cases"].startswith("0/")
            and hint in row["feedback"]
        ), row

    # the typical mistakes: partial credit, the fraction of test cases passed, and the case that fails
    expected = {
        "conv_output_size": (4, 6, "round down"),
        "q_learning_update": (2, 3, "no future"),
        "dqn_target": (1, 3, "terminated"),
    }
    for name, (passed, total, hint) in expected.items():
        row = grades[("carol", name)]
        assert row["cases"] == f"{passed}/{total}" and hint in row["feedback"], row
        assert points(grades, "carol", name) == round(10 * passed / total, 2)

    # crashes: nothing, and the error
    assert "SyntaxError" in grades[("dave", "conv_output_size")]["feedback"]
    assert "raised NameError" in grades[("dave", "q_learning_update")]["feedback"]
    assert "ModuleNotFoundError" in grades[("dave", "dqn_target")]["feedback"]
    assert all(points(grades, "dave", n) == 0 for n in CHAPTERS)

    # an endless loop inside the function is interrupted at the time limit; one that swallows the interruption
    # is killed, and the notebook's next exercise still runs (in a new process)
    assert "stopped after 3 s" in grades[("erin", "conv_output_size")]["feedback"]
    assert (
        "could not be interrupted" in grades[("erin", "q_learning_update")]["feedback"]
    )
    assert all(
        points(grades, "erin", n) == 0
        for n in ("conv_output_size", "q_learning_update")
    )
    row = grades[
        ("erin", "dqn_target")
    ]  # check() deleted and the cell crashed: the function is graded
    assert float(row["points"]) == 10.0 and "the cell raised" in row["feedback"], row
    row = grades[
        ("erin", "softmax_cross_entropy")
    ]  # listed in the notebook's metadata, cell deleted
    assert float(row["points"]) == 0 and row["feedback"].startswith("missing"), row

    # a student copy handed back untouched
    row = grades[("frank", "dqn_target")]
    assert float(row["points"]) == 0 and "not implemented yet" in row["feedback"], row
    assert grades[("frank", "double_dqn_target")]["feedback"].startswith(
        "not implemented yet"
    )
    assert (
        len(grades) == 3 * 5 + 3
    )  # frank's dqn copy has a second exercise, double_dqn_target


# --- the two longer exercises (Double DQN target, GAE) beside the short ones of their chapters ---------------

LONG = {  # exercise -> (right, the typical mistake, cases it passes of the total, words of its feedback)
    "double_dqn_target": (
        "with torch.no_grad():\n"
        "    best = online_net(next_obs).argmax(dim=1, keepdim=True)\n"
        "    value = target_net(next_obs).gather(1, best).squeeze(1)\n"
        "return rewards + gamma * (~terminated).float() * value",
        "best = online_net(next_obs).argmax(dim=1, keepdim=True)      # no torch.no_grad()\n"
        "value = target_net(next_obs).gather(1, best).squeeze(1)\n"
        "return rewards + gamma * (~terminated).float() * value",
        (6, 7),
        "require grad",
    ),
    "gae": (
        "alive = (~dones).float()\n"
        "next_values = torch.cat([values[1:], last_values[None]])\n"
        "deltas = rewards + gamma * alive * next_values - values\n"
        "advantages, running = torch.zeros_like(rewards), torch.zeros_like(last_values)\n"
        "for t in reversed(range(len(rewards))):\n"
        "    running = deltas[t] + gamma * lam * alive[t] * running\n"
        "    advantages[t] = running\n"
        "return advantages, advantages + values",
        "alive = (~dones).float()\n"
        "next_values = torch.cat([values[1:], last_values[None]])\n"
        "deltas = rewards + gamma * alive * next_values - values\n"
        "advantages, running = torch.zeros_like(rewards), torch.zeros_like(last_values)\n"
        "for t in reversed(range(len(rewards))):\n"
        "    running = deltas[t] + gamma * lam * running          # runs across the episode's end\n"
        "    advantages[t] = running\n"
        "return advantages, advantages + values",
        (3, 7),
        "the recursion runs across the episode's end",
    ),
    "dqn_target": (RIGHT["dqn_target"], PARTIAL["dqn_target"], (1, 3), "terminated"),
    "clipped_surrogate": (
        "return -torch.min(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages).mean()",
        "return -(ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages).mean()     # no minimum",
        (1, 4),
        "minimum",
    ),
}


def filled_chapter(chapter: str, bodies: dict[str, str]) -> dict:
    """A chapter's student copy handed back with ``bodies`` in place of its exercises' stubs."""
    nb = student_copy(chapter)
    for task in find_tasks(nb):
        if task.exercise in bodies:
            (cell,) = [c for c in nb["cells"] if source(c) == task.cell]
            cell["source"] = exercise_cell(task.exercise, bodies[task.exercise])[0]
    return nb


def test_grading_the_long_exercises(tmp_path):
    """Three students hand back the DQN chapter and the PPO chapter's exercises: right answers, the typical
    mistakes (partial credit) and wrong or crashing answers; the CSV has each one's points and a feedback that
    names the mistake."""
    dqn, ppo = CHAPTER_OF["double_dqn_target"], CHAPTER_OF["gae"]
    students = {
        "ann": {name: right for name, (right, *_) in LONG.items()},
        "ben": {name: mistake for name, (_, mistake, *_) in LONG.items()},
        "cy": {
            "double_dqn_target": "return rewards + gamma * (1 - terminated) * target_net(next_obs).max(1)[0]",
            "dqn_target": WRONG["dqn_target"],
            "gae": LONG["gae"][0].replace(
                "return advantages, advantages + values",
                "return advantages + values, advantages",
            ),
            "clipped_surrogate": "return -torch.min(ratio * advantages,",
        },  # SyntaxError
    }
    for (
        student,
        bodies,
    ) in (
        students.items()
    ):  # the DQN chapter, with the PPO chapter's exercise cells pasted
        nb, more = filled_chapter(dqn, bodies), filled_chapter(ppo, bodies)
        nb["cells"] += [
            c
            for c in more["cells"]
            if c["cell_type"] == "code" and "check(" in source(c)
        ]
        nb["metadata"]["dlbook"]["exercises"].update(
            more["metadata"]["dlbook"]["exercises"]
        )
        write(tmp_path / f"{student}.ipynb", nb)
    out = tmp_path / "grades.csv"
    stdout = run_grader(tmp_path, out)
    with open(out, newline="", encoding="utf-8") as f:
        grades = {(r["student"], r["exercise"]): r for r in csv.DictReader(f)}
    assert len(grades) == 3 * len(LONG)

    for name, (_, _, (passed, total), words) in LONG.items():
        row = grades[("ann", name)]
        assert float(row["points"]) == 10.0 and row["cases"] == f"{total}/{total}", row
        assert row["feedback"] == "correct on every test case", row
        row = grades[("ben", name)]  # partial credit: the share of cases passed
        assert row["cases"] == f"{passed}/{total}" and float(row["points"]) == round(
            10 * passed / total, 2
        ), row
        assert words in row["feedback"], row
    assert "ann: 40 / 40" in stdout

    cy = {name: grades[("cy", name)] for name in LONG}
    assert all(float(row["points"]) == 0.0 for row in cy.values()), cy
    assert (
        "bool tensor" in cy["double_dqn_target"]["feedback"]
    )  # 1 - terminated: torch refuses
    assert "not implemented" not in cy["double_dqn_target"]["feedback"]
    assert "advantages first, returns" in cy["gae"]["feedback"]
    assert cy["gae"]["cases"] == "0/7"
    assert "just r where the episode terminated" in cy["dqn_target"]["feedback"]
    assert "SyntaxError" in cy["clipped_surrogate"]["feedback"]


# --- without a process: the pieces -------------------------------------------------------------------------


def test_student_names(tmp_path):
    assert student_name(tmp_path / "alice" / "x" / "dqn.ipynb", tmp_path) == "alice"
    assert student_name(tmp_path / "bob.ipynb", tmp_path) == "bob"


def test_import_lines_of_a_cell_with_magics():
    cell = "%matplotlib inline\nimport torch\nfrom helpers import rl, pick\nx = 1\nif x:\n    import os\n!ls"
    assert import_lines(cell) == ["import torch", "from helpers import rl, pick"]
    assert import_lines("def broken(:\n") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chapters_solution_gets_full_points(path, capsys):
    """The chapter's own solution, put in its student copy's exercise cell and run after the import lines the
    grader gives that cell, passes every test case: the setup is enough, and the checkers agree with the book."""
    chapter = path.relative_to(BOOK).with_suffix("").as_posix()
    book = json.loads(path.read_text())
    blocks = [
        block
        for c in book["cells"]
        if c["cell_type"] == "markdown"
        for block in SOLUTION_BLOCK.findall(source(c))
    ]
    fences = [
        fence
        for block in blocks
        for fence in re.findall(r"```python\n(.*?)```", block, re.S)
    ]
    nb = student_copy(chapter)
    for task in find_tasks(nb):
        # cnn_cifar10's written exercise calls the function smoothed_ce
        defines = {"label_smoothing_loss": "smoothed_ce"}.get(
            task.exercise, task.function
        )
        fence = next(
            (f for f in fences if re.search(rf"^def {defines}\(", f, re.M)), None
        )
        assert fence, (
            f"{chapter}: no ```python block of a solution defines {defines}(), to check it with"
        )
        call = re.search(r"^.*\bcheck\(.*$", task.cell, re.M).group(0)
        answer = task.cell.replace(
            call, f"{fence}\n{task.function} = {defines}\n{call}"
        )
        (cell,) = [c for c in nb["cells"] if source(c) == task.cell]
        cell["source"] = answer
        (graded,) = [t for t in find_tasks(nb) if t.exercise == task.exercise]
        namespace: dict = {}
        for line in graded.setup:
            exec(line, namespace)
        exec(graded.cell, namespace)
        assert "✅" in capsys.readouterr().out
        assert grade(task.exercise, namespace[task.function]).correct, chapter
