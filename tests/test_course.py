"""The course kit (book/instructors.md, book/course/, helpers/course.py): the assignments'
own checkers accept a right answer and reject the typical wrong one; the lab-time table is
the one the device matrix gives; the syllabus covers every chapter once; the starter
notebooks run with their stubs and a class's notebooks grade as they should."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from helpers import course, exercises
from helpers.course import ALL_CHECKS, CHECKS, WEEKS, check, grade

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
STARTERS = sorted((BOOK / "course" / "starters").glob("assignment*.py"))
PAGES = sorted((BOOK / "course").glob("*.md"))
CHAPTERS = sorted(
    p for p in BOOK.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
)
INSTRUCTORS = (BOOK / "instructors.md").read_text(encoding="utf-8")


# --- the assignments' own checkers ---------------------------------------------------


def linear_right(x, W, grad_out):
    return grad_out @ W, grad_out.T @ x, grad_out.sum(dim=0)


def linear_wrong(x, W, grad_out):  # averages the bias gradient over the batch
    return grad_out @ W, grad_out.T @ x, grad_out.mean(dim=0)


def pe_right(max_len, d_model):
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    freq = 10_000 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe


def pe_wrong(max_len, d_model):  # sines, then cosines, not interleaved
    pe = pe_right(max_len, d_model)
    return torch.cat([pe[:, 0::2], pe[:, 1::2]], dim=1)


def disc_right(real_logits, fake_logits, real_label=1.0):
    real = F.binary_cross_entropy_with_logits(
        real_logits, torch.full_like(real_logits, real_label)
    )
    return real + F.binary_cross_entropy_with_logits(
        fake_logits, torch.zeros_like(fake_logits)
    )


def disc_wrong(real_logits, fake_logits, real_label=1.0):  # sigmoid, then log: unstable
    p_real, p_fake = torch.sigmoid(real_logits), torch.sigmoid(fake_logits)
    real = -(real_label * p_real.log() + (1 - real_label) * (1 - p_real).log()).mean()
    return real - (1 - p_fake).log().mean()


def pg_right(log_probs, advantages):
    return -(log_probs * advantages.detach()).mean()


def pg_wrong(log_probs, advantages):  # trains the critic through the policy's loss
    return -(log_probs * advantages).mean()


def not_done(*args, **kwargs):
    raise NotImplementedError


ANSWERS = {
    "linear_backward": (linear_right, linear_wrong, "a sum, not a mean"),
    "positional_encoding": (pe_right, pe_wrong, "interleave"),
    "discriminator_loss": (disc_right, disc_wrong, "from logits"),
    "policy_gradient_loss": (pg_right, pg_wrong, "detach"),
}


def test_every_course_check_has_answers():
    assert set(ANSWERS) == set(CHECKS)


def test_course_checks_stay_out_of_the_chapters_table():
    """The chapters' table is unchanged; the course's view sees both, live."""
    assert not set(CHECKS) & set(exercises.CHECKS)
    assert set(ALL_CHECKS) == set(CHECKS) | set(exercises.CHECKS)


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_right_and_wrong_answers(name, capsys):
    right, wrong, hint = ANSWERS[name]
    assert check(name, right) is True
    assert "✅" in capsys.readouterr().out
    assert check(name, wrong) is False
    out = capsys.readouterr().out
    assert "❌" in out and hint in out, out
    assert check(name, not_done) is False
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_partial_credit_counts_test_cases(name):
    right, wrong, _ = ANSWERS[name]
    good, bad, empty = grade(name, right), grade(name, wrong), grade(name, not_done)
    assert good.total >= 3 and good.total == bad.total == empty.total
    assert good.correct and good.score == 1.0
    assert 0.0 <= bad.score < 1.0 and bad.message
    assert empty.score == 0.0 and empty.message.startswith("not implemented yet")


@pytest.mark.parametrize(
    "answer",
    [
        lambda *a, **k: None,
        lambda *a, **k: "text",
        lambda *a, **k: (1.0, 2.0),
        lambda *a, **k: torch.ones(50),
    ],
)
def test_nonsense_answers_never_raise(answer):
    for name in CHECKS:
        assert grade(name, answer).score < 1.0


def test_course_check_knows_the_chapters_exercises_and_logs_for_the_grader(
    tmp_path, monkeypatch
):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(exercises.GRADE_LOG_ENV, str(log))
    assert check("psnr", lambda x, y: 10 * torch.log10(1 / ((x - y) ** 2).mean()))
    assert check("linear_backward", linear_right)
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [v["exercise"] for v in logged] == ["psnr", "linear_backward"]
    assert all(v["score"] == 1.0 for v in logged)
    with pytest.raises(ValueError, match="unknown exercise"):
        grade("nope", linear_right)
    with pytest.raises(
        ValueError, match="unknown exercise"
    ):  # not a chapter's exercise
        exercises.grade("linear_backward", linear_right)


# --- the syllabus and the lab times ----------------------------------------------------


def test_weeks_cover_every_chapter_once():
    assert [w.number for w in WEEKS] == list(range(1, 13))
    names = [n for w in WEEKS for n in (*w.chapters, *w.optional)]
    assert sorted(names) == sorted(p.stem for p in CHAPTERS) and len(set(names)) == len(
        names
    )
    week_of = {n: w.number for w in WEEKS for n in w.chapters}
    assert week_of["a2c"] < week_of["ppo"], "the policy-gradient week comes before PPO"
    assert {n for w in WEEKS for n in w.optional} == {"capsnet", "dbn", "a3c"}
    assert all(len(w.chapters) >= 1 for w in WEEKS)


def _doc_targets(text: str) -> list[str]:
    return [
        m.group(2) or m.group(1)
        for m in re.finditer(r"\{doc\}`(?:([^`<]+?)|[^`<]*<([^`>]+)>)`", text)
    ]


def test_syllabus_table_agrees_with_the_weeks():
    """The instructor page's syllabus links each week's chapters and optional reading."""
    rows = {
        int(m.group(1)): m.group(0)
        for m in re.finditer(r"^\| (\d+) \|.*$", INSTRUCTORS, re.M)
    }
    assert sorted(rows) == list(range(1, 13))
    for week in WEEKS:
        cells = [c.strip() for c in rows[week.number].strip().strip("|").split("|")]
        main, _, extra = cells[2].partition("(optional:")
        chapters = [Path(t).name for t in _doc_targets(main) if Path(t).name != "index"]
        optional = [Path(t).name for t in _doc_targets(extra)]
        assert (chapters, optional) == (list(week.chapters), list(week.optional)), week


def test_every_chapter_has_both_editions_on_the_instructor_page():
    for path in CHAPTERS:
        rel = path.relative_to(BOOK).with_suffix("").as_posix()
        assert (
            f"| {path.stem} | {{doc}}`{rel}` | `book/{rel}.ipynb` | "
            f"`_build/student/{rel}.ipynb` |" in INSTRUCTORS
        ), rel
    assert "make student" in INSTRUCTORS and "colab" in INSTRUCTORS.lower()


def _run(
    notebook: str,
    mode: str,
    wall: float,
    *,
    device: str = "GPU X",
    passed=True,
    jobs: int = 4,
    **extra,
) -> dict:
    return {
        "notebook": notebook,
        "mode": mode,
        "wall_s": wall,
        "passed": passed,
        "device": device,
        "seed": 0,
        "jobs": jobs,
        "date": "2026-11-27",
        "error": None,
        **extra,
    }


def test_lab_time_is_the_sum_of_a_weeks_notebooks():
    weeks = (
        course.Week(1, "a", ("lstm", "gru")),
        course.Week(2, "b", ("gan",), ("dbn",)),
    )
    runs = [
        _run("lstm", "quick", 100.0),
        _run("gru", "quick", 50.0),
        _run("gan", "quick", 30.0),
        _run("dbn", "quick", 20.0, passed=False, error="AssertionError"),
        _run("lstm", "full", 300.0),
        _run("gru", "full", 450.2, passed=False, stopped=True, error="stopped"),
        _run("gan", "quick", 99.0, device="CPU Y", jobs=1),
        _run("gan", "quick", 5.0, seed=3),
    ]  # another seed: not counted
    text = course.lab_times_markdown({"runs": runs}, weeks)
    assert (
        "| week | notebooks | CPU Y, quick mode | GPU X, quick mode | GPU X, full mode |"
        in text
    )
    assert "| 1 | lstm, gru | — | 2.5 min | > 12.5 min (unfinished) |" in text
    assert "| 2 | gan | 1.6 min | 30 s | — |" in text
    assert "| 2 (optional) | dbn | — | 20 s ✗ | — |" in text
    assert "| **all weeks** | main chapters | — | 3.0 min | — |" in text
    assert "GPU X, full mode: measured 2026-11-27 with 4 notebooks at a time" in text
    assert (
        "upper bounds" in text
        and "CPU Y, quick mode: measured 2026-11-27 with 1 notebook at a time." in text
    )
    assert "gru did not finish within 450 s" in text
    assert "— not measured on GPU X in full mode: gan, dbn." in text
    assert "Colab" in text


def test_committed_lab_times_are_the_device_matrixs():
    """benchmarks/results/lab_times.md is what the committed matrix gives (make course, or
    any re-run of the matrix, rewrites it)."""
    devices = json.loads((ROOT / "benchmarks/results/devices.json").read_text())
    committed = (ROOT / "benchmarks/results/lab_times.md").read_text(encoding="utf-8")
    assert committed == course.lab_times_markdown(devices), (
        "stale lab times: run `python -m helpers course lab-times`"
    )
    assert "```{include} ../benchmarks/results/lab_times.md" in INSTRUCTORS


def test_benchmark_pages_rewrite_the_lab_times(tmp_path):
    from benchmarks import pages, report

    row = _run("mlp", "quick", 42.0, commit="abc", torch="2.x")
    report.save("devices", {"runs": [row]}, tmp_path)
    pages.write_markdown(tmp_path)
    assert "| 1 | mlp | 42 s |" in (tmp_path / "lab_times.md").read_text()


# --- the pages ----------------------------------------------------------------------------


def _resolves(page: Path, target: str) -> bool:
    base = BOOK if target.startswith("/") else page.parent
    stem = (base / target.lstrip("/")).resolve()
    return any(stem.with_suffix(s).exists() for s in (".md", ".ipynb"))


@pytest.mark.parametrize(
    "page", [*PAGES, BOOK / "instructors.md"], ids=lambda p: p.stem
)
def test_pages_are_in_the_toc_and_their_references_resolve(page):
    text = page.read_text(encoding="utf-8")
    rel = page.relative_to(ROOT).with_suffix("").as_posix()
    assert f"file: {rel}\n" in (ROOT / "_toc.yml").read_text()
    targets = _doc_targets(text)
    assert targets or page.stem == "instructors"
    assert not [t for t in targets if not _resolves(page, t)]
    for m in re.finditer(
        r"```\{(?:literalinclude|include)\} (\S+)\n((?::\w+: .*\n)*)", text
    ):
        source = page.parent / m.group(1)
        assert source.exists(), m.group(1)
        pyobject = re.search(r":pyobject: (\w+)", m.group(2))
        if pyobject:
            assert re.search(rf"^def {pyobject.group(1)}\(", source.read_text(), re.M)
    assert len(re.findall(r"^# ", text, re.M)) == 1, "one title per page"


def _points(cell: str, part: str) -> int:
    value = int(re.match(r"\d+", cell.strip()).group(0))
    span = re.fullmatch(r"(\d+)-(\d+)", part.strip())
    return (
        value * (int(span.group(2)) - int(span.group(1)) + 1)
        if "each" in cell and span
        else value
    )


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_assignment_pages_have_brief_starter_tests_rubric_worth_100(n):
    page = (BOOK / "course" / f"assignment{n}.md").read_text(encoding="utf-8")
    sections = re.findall(r"^## (.+)$", page, re.M)
    assert sections == ["Brief", "Starter", "Tests", "Rubric"]
    rubric = page.split("## Rubric")[1]
    rows = [
        r.split(" | ") for r in re.findall(r"^\| (?!part\b|---)(.+) \|$", rubric, re.M)
    ]
    assert sum(_points(r[1], r[0]) for r in rows if r[0] != "bonus") == 100
    brief = page.split("## Brief")[1].split("**Chapters")[0]
    parts = [
        r.split(" | ") for r in re.findall(r"^\| (?!part\b|---)(.+) \|$", brief, re.M)
    ]
    assert sum(int(p[2]) for p in parts if p[0] != "bonus") == 100
    checked = re.findall(
        r'check\("(\w+)"', (BOOK / "course/starters" / f"assignment{n}.py").read_text()
    )
    automatic = [p[1] for p in parts if p[3] == "automatically" and p[0] != "bonus"]
    assert [re.match(r"`(\w+)`", a).group(1) for a in automatic] == [
        c for c in checked if c not in ("double_dqn_target", "gae")
    ]
    assert "python -m helpers grade" in INSTRUCTORS and "--points 10" in INSTRUCTORS


def test_the_project_list():
    page = (BOOK / "course" / "projects.md").read_text(encoding="utf-8")
    projects = re.findall(r"^\d+\. \*\*(.+?)\*\*", page, re.M)
    assert 8 <= len(projects) <= 12
    items = re.split(r"^\d+\. ", page.split("## Projects")[1], flags=re.M)[1:]
    for item in items:
        assert (
            "{doc}`../" in item and "*Data:*" in item and "*A good report*" in item
        ), item[:60]


# --- the starter notebooks ---------------------------------------------------------------


def test_starters_become_notebooks_with_the_colab_cell(tmp_path):
    paths = course.write_starters(tmp_path)
    assert [p.name for p in paths] == [f"assignment{n}.ipynb" for n in (1, 2, 3, 4)]
    url = course.repo_url()
    for path, script in zip(paths, STARTERS):
        nb = json.loads(path.read_text())
        cells = nb["cells"]
        assert cells[0]["cell_type"] == "markdown" and "".join(
            cells[0]["source"]
        ).startswith("# ")
        setup = "".join(cells[1]["source"])
        assert f'REPO_URL = "{url}"' in setup and "google.colab" in setup
        assert cells[1]["metadata"]["tags"] == ["hide-cell"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
        checked = re.findall(r'check\("(\w+)", (\w+)\)', script.read_text())
        assert nb["metadata"]["dlbook"]["exercises"] == dict(checked)
        assert all(
            len(line) <= 88 for line in script.read_text(encoding="utf-8").splitlines()
        )


def test_starters_run_to_the_end_with_their_stubs(tmp_path):
    """What a student gets runs from top to bottom (as CI runs a chapter): every
    unfinished part says so. One process runs the four, in quick mode."""
    run = (
        "import runpy, sys\n"
        "for path in sys.argv[1:]:\n"
        "    print('== ' + path, flush=True)\n"
        "    runpy.run_path(path, run_name='__main__')\n"
    )
    env = {
        "DLBOOK_QUICK": "1",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
        "DLBOOK_RESULTS": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", run, *map(str, STARTERS)],
        cwd=tmp_path,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outputs = done.stdout.split("== ")[1:]
    assert len(outputs) == 4
    for out, script in zip(outputs, STARTERS):
        n_checks = len(re.findall(r'^check\("\w+", \w+\)$', script.read_text(), re.M))
        assert n_checks >= 3 and out.count("not implemented yet") >= n_checks + 1, out
        assert "no results to plot yet" in out


# --- grading a class ----------------------------------------------------------------------

RIGHT = {  # the bodies of the automatically graded functions
    "softmax_cross_entropy": "m = logits.max(dim=1, keepdim=True).values\n"
    "lse = (logits - m).exp().sum(dim=1).log() + m.squeeze(1)\n"
    "return (lse - logits[torch.arange(len(targets)), targets]).mean()",
    "linear_backward": "return grad_out @ W, grad_out.T @ x, grad_out.sum(dim=0)",
    "conv_output_size": "return (size + 2 * padding - kernel) // stride + 1",
    "lstm_step": "i, f, g, o = (x @ W_ih.T + h @ W_hh.T + b).chunk(4, dim=1)\n"
    "c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)\n"
    "return torch.sigmoid(o) * torch.tanh(c), c",
    "scaled_dot_product_attention": "scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
    "if mask is not None:\n"
    "    scores = scores.masked_fill(~mask, float('-inf'))\n"
    "return scores.softmax(dim=-1) @ v",
    "positional_encoding": "pos = torch.arange(max_len, dtype=torch.float32)[:, None]\n"
    "freq = 10_000 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)\n"
    "pe = torch.zeros(max_len, d_model)\n"
    "pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)\n"
    "return pe",
    "psnr": "return 10 * torch.log10(1 / ((x - y) ** 2).mean())",
    "generator_loss": "return F.softplus(-d_fake_logits).mean()",
    "discriminator_loss": "target = torch.full_like(real_logits, real_label)\n"
    "return (F.binary_cross_entropy_with_logits(real_logits, target)\n"
    "        + F.softplus(fake_logits).mean())",
    "q_learning_update": "target = r if terminated else r + gamma * Q[s_next].max()\n"
    "Q[s, a] += alpha * (target - Q[s, a])",
    "dqn_target": "return rewards + gamma * (~terminated).float() * next_q.max(dim=1).values",
    "discounted_returns": "g = 0.0 if terminated else float(last_value)\n"
    "out = []\n"
    "for r in reversed(rewards.tolist()):\n"
    "    g = r + gamma * g\n"
    "    out.append(g)\n"
    "return torch.tensor(out[::-1])",
    "policy_gradient_loss": "return -(log_probs * advantages.detach()).mean()",
}


def solved(nb: dict) -> dict:
    """The notebook with every required function's stub replaced by a right answer."""
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        for name, body in RIGHT.items():
            stub = re.search(
                rf"^def {name}\(.*?\n(    raise NotImplementedError\n)",
                src,
                re.S | re.M,
            )
            if stub and cell["cell_type"] == "code" and f'check("{name}"' in src:
                answer = "".join(f"    {line}\n" for line in body.splitlines())
                src = src[: stub.start(1)] + answer + src[stub.end(1) :]
        cell["source"] = src
    return nb


def test_grading_a_class_of_starter_notebooks(tmp_path):
    """Through the real command line: right answers score every point, the untouched
    starter scores 0 with 'not implemented', the bonus parts appear where checked."""
    starters = {
        p.stem: json.loads(p.read_text()) for p in course.write_starters(tmp_path)
    }
    sub = tmp_path / "submissions"
    for stem, nb in starters.items():
        (sub / "alice").mkdir(parents=True, exist_ok=True)
        (sub / "alice" / f"{stem}.ipynb").write_text(json.dumps(solved(nb)))
    (sub / "bob.ipynb").write_text(json.dumps(starters["assignment1"]))
    out = tmp_path / "grades.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers",
            "grade",
            str(sub),
            "--out",
            str(out),
            "--points",
            "10",
            "--timeout",
            "30",
            "--jobs",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    alice = {r["exercise"]: r for r in rows if r["student"] == "alice"}
    bonus = {"double_dqn_target", "gae"}
    assert set(alice) - bonus == set(RIGHT)
    assert all(float(alice[name]["points"]) == 10.0 for name in RIGHT), {
        n: alice[n]["feedback"] for n in RIGHT if float(alice[n]["points"]) != 10.0
    }
    assert all(float(alice[name]["points"]) == 0.0 for name in set(alice) & bonus)
    assert set(alice) & bonus == bonus & set(exercises.CHECKS)
    bob = [r for r in rows if r["student"] == "bob"]
    assert [r["exercise"] for r in bob] == [
        "softmax_cross_entropy",
        "linear_backward",
        "conv_output_size",
    ]
    assert all(
        float(r["points"]) == 0 and "not implemented" in r["feedback"] for r in bob
    )
    assert "alice: 130 / " in done.stdout and "bob: 0 / 30" in done.stdout
