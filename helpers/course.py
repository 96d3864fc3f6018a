"""The course kit: a 12-week course taught from the book (the instructor page).

- :data:`WEEKS`: the syllabus's weeks, each with its chapters (optional ones apart).
  :func:`lab_times_markdown` turns the device matrix
  (``benchmarks/results/devices.json``) into the lab time of every week on every
  measured device and mode; ``benchmarks.pages`` rewrites
  ``benchmarks/results/lab_times.md`` with it whenever the matrix is re-run, so the
  instructor page never shows a typed number.
- The four graded assignments' auto-checked functions: every exercise of
  :mod:`helpers.exercises`, plus the four functions only the assignments ask for
  (:data:`CHECKS`: ``linear_backward``, ``positional_encoding``,
  ``discriminator_loss``, ``policy_gradient_loss``). :func:`check` and :func:`grade`
  accept both (:data:`ALL_CHECKS`); so does the batch grader, ``python -m helpers
  grade``.
- The assignments' starter notebooks, written from
  ``book/course/starters/assignment<N>.py`` (plain Python with ``# %%`` cell markers:
  the course pages show their functions, and the tests run them as scripts) by
  ``python -m helpers course starters OUT_DIR`` (``make course``).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from . import exercises
from .exercises import Case, Checker, Verdict, _close, _gen

ROOT = Path(__file__).resolve().parents[1]
STARTERS = ROOT / "book" / "course" / "starters"
DEVICES_JSON = ROOT / "benchmarks" / "results" / "devices.json"
LAB_TIMES_MD = ROOT / "benchmarks" / "results" / "lab_times.md"


# --- the syllabus ------------------------------------------------------------------


@dataclass(frozen=True)
class Week:
    """One week of the course: its main topic, the chapters (notebook names) it is
    taught from, and chapters offered as optional reading that week."""

    number: int
    topic: str
    chapters: tuple[str, ...]
    optional: tuple[str, ...] = ()


WEEKS: tuple[Week, ...] = (
    Week(1, "Training a neural network", ("mlp",)),
    Week(2, "Convolutional networks", ("cnn",)),
    Week(3, "Modern CNN training", ("cnn_cifar10",), ("capsnet",)),
    Week(4, "Recurrent networks", ("rnn",)),
    Week(5, "Gated recurrent networks: LSTM and GRU", ("lstm", "gru")),
    Week(6, "Attention and Transformers", ("transformer",)),
    Week(7, "Autoencoders", ("autoencoder",)),
    Week(8, "Generative adversarial networks", ("gan",), ("dbn",)),
    Week(9, "Tabular reinforcement learning: Q-learning", ("q_learning",)),
    Week(10, "Deep Q-networks", ("dqn",)),
    Week(11, "Policy gradients: REINFORCE and A2C", ("a2c",), ("a3c",)),
    Week(12, "Proximal policy optimisation", ("ppo",)),
)


def stopped_at_deadline(row: Mapping) -> bool:
    """A run of the device matrix stopped at its deadline: its time is a lower bound, it has no verdict.

    (The one definition: ``benchmarks.devices`` renders the matrix with it too.)"""
    error = str(row.get("error") or "")
    return bool(row.get("stopped")) or error.startswith("stopped at the deadline")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def _week_cell(rows: Sequence[Mapping | None]) -> str:
    """The lab time of notebooks on one device and mode: their summed wall times."""
    if not rows or any(r is None for r in rows):
        return "—"
    text = _duration(sum(float(r["wall_s"]) for r in rows))
    if any(stopped_at_deadline(r) for r in rows):
        return f"> {text} (unfinished)"
    if any(not r["passed"] for r in rows):
        return f"{text} ✗"
    return text


def _notes(
    runs: Sequence[Mapping],
    columns: Sequence[tuple[str, str]],
    index: Mapping[tuple, Mapping],
    weeks: Sequence[Week],
) -> list[str]:
    """How each column was measured, what was stopped, failed or not measured."""
    notes = []
    for d, m in columns:
        sel = [r for r in runs if (r["device"], r["mode"]) == (d, m)]
        jobs = sorted({int(r.get("jobs", 1)) for r in sel})
        what = str(jobs[0]) if len(jobs) == 1 else f"{jobs[0]} to {jobs[-1]}"
        shared = jobs[-1] > 1
        dates = sorted({r["date"] for r in sel})
        date = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
        notes.append(
            f"{d}, {m} mode: measured {date} with {what} "
            f"notebook{'s' if shared else ''} at a time"
            + (
                "; where other notebooks ran beside one, it would have run faster "
                "alone: read those times as upper bounds."
                if shared
                else "."
            )
        )
    stopped: dict[tuple[str, str], list[Mapping]] = {}
    for r in runs:
        if stopped_at_deadline(r):
            stopped.setdefault((r["device"], r["mode"]), []).append(r)
    for (d, m), sel in sorted(stopped.items()):
        limit = min(float(r["wall_s"]) for r in sel)
        names = ", ".join(sorted(r["notebook"] for r in sel))
        notes.append(
            f"Unfinished: {d}, {m} mode: {names} did not finish within {limit:.0f} s "
            "(stopped at the run's deadline): a week with one of them takes "
            "longer than shown."
        )
    failed = [r for r in runs if not r["passed"] and not stopped_at_deadline(r)]
    if failed:
        notes.append(
            "✗ failed a quality gate (the time is still its run time): "
            + "; ".join(
                f"{r['notebook']} ({r['device']}, {r['mode']} mode)" for r in failed
            )
            + "."
        )
    for d, m in columns:
        missing = [
            n
            for w in weeks
            for n in (*w.chapters, *w.optional)
            if (d, m, n) not in index
        ]
        if missing:
            notes.append(f"— not measured on {d} in {m} mode: {', '.join(missing)}.")
    notes.append(
        "Measured devices: "
        + "; ".join(sorted({d for d, _ in columns}))
        + ". Any other machine (a student's laptop, Colab's GPUs) has not "
        "been measured: time one week's notebooks there before relying on "
        "these numbers."
    )
    return notes


def lab_times_markdown(devices: Mapping, weeks: Sequence[Week] = WEEKS) -> str:
    """The lab time of every week on every device and mode of the device matrix.

    A week's lab time is the wall time of its notebooks run one after the other: the
    sum of their times in ``devices`` (the runs with ``SEED = 0``). The notes below the
    table say how each column was measured (how many notebooks shared the machine, so
    whether a time is an upper bound), which runs were stopped unfinished and what was
    not measured; all of it is read from ``devices``, nothing is typed.
    """
    runs = [r for r in devices.get("runs", []) if r.get("seed", 0) == 0]
    columns = sorted(
        {(r["device"], r["mode"]) for r in runs}, key=lambda c: (c[0], c[1] != "quick")
    )
    index = {(r["device"], r["mode"], r["notebook"]): r for r in runs}

    def cells(names: Sequence[str]) -> list[str]:
        return [_week_cell([index.get((d, m, n)) for n in names]) for d, m in columns]

    header = ["week", "notebooks"] + [f"{d}, {m} mode" for d, m in columns]
    rows = []
    for week in weeks:
        rows.append([str(week.number), ", ".join(week.chapters), *cells(week.chapters)])
        rows += [
            [f"{week.number} (optional)", name, *cells([name])]
            for name in week.optional
        ]
    main = [n for w in weeks for n in w.chapters]
    rows.append(["**all weeks**", "main chapters", *cells(main)])
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---", ":---"] + ["---:"] * len(columns)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += [
        "",
        "A week's lab time is the wall time of its notebooks run one after "
        "the other (the sum of their times with `SEED = 0` in the device matrix, "
        "`benchmarks/results/devices.json`).",
        "",
    ]
    lines += [f"- {n}" for n in _notes(runs, columns, index, weeks)]
    return "\n".join(lines) + "\n"


def write_lab_times(
    devices_json: Path = DEVICES_JSON, out: Path = LAB_TIMES_MD
) -> Path:
    """Rewrite the lab-time table from the device matrix (``benchmarks.pages`` does
    it too, whenever the matrix is re-run)."""
    out = Path(out)
    devices = json.loads(Path(devices_json).read_text(encoding="utf-8"))
    out.write_text(lab_times_markdown(devices), encoding="utf-8")
    return out


# --- the assignments' own checkers -------------------------------------------------


def _linear_backward(fn: Callable) -> Iterator[Case]:
    """fn(x (B, I), W (O, I), grad_out (B, O)) -> (grad_x, grad_W, grad_b) of the layer
    y = x W^T + b."""
    hint = (
        "dL/dx = grad_out @ W, dL/dW = grad_out^T @ x, dL/db = grad_out summed "
        "over the batch (a sum, not a mean: every example adds to the loss)"
    )

    def case(
        what: str, x: torch.Tensor, w: torch.Tensor, grad_out: torch.Tensor
    ) -> str | None:
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
        br = torch.zeros(w.shape[0], requires_grad=True)
        (xr @ wr.T + br).backward(grad_out)
        with torch.no_grad():
            got = fn(x.clone(), w.clone(), grad_out.clone())
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            return f"{what}: return (grad_x, grad_W, grad_b), got {got!r:.60}"
        for value, want, name in zip(
            got, (xr.grad, wr.grad, br.grad), ("grad_x", "grad_W", "grad_b")
        ):
            message = _close(value, want, f"{what}: {name}")
            if message:
                return f"{message} ({hint})"
        return None

    g = _gen(21)
    for batch, n_in, n_out in ((4, 3, 2), (1, 5, 3), (6, 2, 4)):
        x = torch.randn(batch, n_in, generator=g)
        w = torch.randn(n_out, n_in, generator=g)
        what = f"batch {batch}, {n_in} inputs, {n_out} outputs"
        yield partial(case, what, x, w, torch.randn(batch, n_out, generator=g))


def _sinusoidal(max_len: int, d_model: int) -> torch.Tensor:
    position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
    freq = 10_000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(position * freq), torch.cos(position * freq)
    return pe


def _positional_encoding(fn: Callable) -> Iterator[Case]:
    """fn(max_len, d_model) -> the (max_len, d_model) sinusoidal table of Vaswani et
    al. (2017)."""
    hint = (
        "PE[pos, 2i] = sin(pos / 10000^(2i / d_model)), PE[pos, 2i + 1] = "
        "cos(same): sines in the even columns, cosines in the odd ones"
    )

    def case(max_len: int, d_model: int) -> str | None:
        want = _sinusoidal(max_len, d_model)
        what = f"max_len={max_len}, d_model={d_model}"
        got = fn(max_len, d_model)
        message = _close(got, want, what, atol=1e-4)
        if message is None:
            return None
        halves = torch.cat([want[:, 0::2], want[:, 1::2]], dim=1)
        if _close(got, halves, "", atol=1e-4) is None:
            return (
                f"{what}: you put all the sines first, then all the cosines; "
                f"interleave them ({hint})"
            )
        return f"{message} ({hint})"

    for max_len, d_model in ((4, 2), (10, 8), (50, 16), (128, 64)):
        yield partial(case, max_len, d_model)


def _discriminator_loss(fn: Callable) -> Iterator[Case]:
    """fn(real_logits (N,), fake_logits (M,), real_label=1.0) -> BCE(real, real_label)
    + BCE(fake, 0), each a mean over its batch, from logits."""
    hint = (
        "the sum of two means: the binary cross-entropy of the real logits against "
        "real_label and of the fake logits against 0, computed from logits (e.g. "
        "F.binary_cross_entropy_with_logits), not from sigmoid() then log()"
    )

    def case(
        what: str, real: torch.Tensor, fake: torch.Tensor, label: float
    ) -> str | None:
        want = F.binary_cross_entropy_with_logits(
            real, torch.full_like(real, label)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        if label == 1.0:  # the default value of real_label
            got = fn(real.clone(), fake.clone())
        else:
            got = fn(real.clone(), fake.clone(), label)
        if not torch.is_tensor(got) or got.dim() != 0:
            return f"{what}: return one number (a 0-d tensor), got {got!r:.60}"
        if not torch.isfinite(got):
            return f"{what}: the loss is {got.item()} ({hint})"
        message = _close(got, want, what)
        return f"{message} ({hint})" if message else None

    g = _gen(22)
    yield partial(
        case,
        "5 real and 5 fake logits, real_label=1 (the default)",
        torch.randn(5, generator=g),
        torch.randn(5, generator=g),
        1.0,
    )
    yield partial(
        case,
        "4 real and 6 fake logits, label smoothing real_label=0.9",
        torch.randn(4, generator=g),
        torch.randn(6, generator=g),
        0.9,
    )
    yield partial(
        case,
        "confident logits of +-100 (numerical stability)",
        torch.tensor([100.0, -100.0, 30.0]),
        torch.tensor([-100.0, 100.0]),
        1.0,
    )


def _policy_gradient_loss(fn: Callable) -> Iterator[Case]:
    """fn(log_probs (T,), advantages (T,)) -> -mean(log_probs * advantages), with no
    gradient flowing into the advantages."""
    hint = (
        "loss = -mean(log pi(a_t | s_t) * A_t): minimising it makes actions with a "
        "positive advantage more likely"
    )

    def value_case(what: str, logp: torch.Tensor, adv: torch.Tensor) -> str | None:
        got = fn(logp.clone(), adv.clone())
        if not torch.is_tensor(got) or got.dim() != 0:
            return f"{what}: return one number (a 0-d tensor), got {got!r:.60}"
        message = _close(got, -(logp * adv).mean(), what)
        return f"{message} ({hint})" if message else None

    def gradient_case() -> str | None:
        what = "gradients (the advantages come from a critic and require grad)"
        logp = torch.tensor([-0.5, -1.2, -0.1, -2.0], requires_grad=True)
        adv = torch.tensor([1.0, -0.5, 2.0, 0.25], requires_grad=True)
        got = fn(logp, adv * 1.0)
        if not torch.is_tensor(got) or not got.requires_grad:
            return (
                f"{what}: the loss must be differentiable with respect to the "
                "log-probabilities (do not detach them, do not call .item())"
            )
        got.backward()
        if adv.grad is not None and adv.grad.abs().sum() > 0:
            return (
                f"{what}: your loss sends gradient into the advantages; .detach() "
                "them (the critic is trained by its own loss, not the policy's)"
            )
        message = _close(logp.grad, -adv.detach() / 4, f"{what}: d loss / d log_probs")
        return f"{message} ({hint})" if message else None

    g = _gen(23)
    yield partial(
        value_case,
        "5 steps, mixed advantages",
        -torch.rand(5, generator=g) * 3,
        torch.randn(5, generator=g),
    )
    yield partial(
        value_case,
        "a single step with a negative advantage",
        torch.tensor([-0.3]),
        torch.tensor([-2.0]),
    )
    yield gradient_case


#: The checkers of the functions only the assignments ask for (the chapters' are in
#: :data:`helpers.exercises.CHECKS`).
CHECKS: dict[str, Checker] = {
    "linear_backward": _linear_backward,
    "positional_encoding": _positional_encoding,
    "discriminator_loss": _discriminator_loss,
    "policy_gradient_loss": _policy_gradient_loss,
}

#: Every exercise a course notebook may check: the assignments' and the chapters' (a
#: live view: a checker added to :mod:`helpers.exercises` is here too).
ALL_CHECKS: Mapping[str, Checker] = ChainMap(CHECKS, exercises.CHECKS)


def grade(exercise: str, fn: Callable) -> Verdict:
    """:func:`helpers.exercises.grade` over :data:`ALL_CHECKS`."""
    return exercises.grade(exercise, fn, ALL_CHECKS)


def check(exercise: str, fn: Callable) -> bool:
    """:func:`helpers.exercises.check` over :data:`ALL_CHECKS`: prints the verdict
    (and logs it for the grader), returns whether every test case passed."""
    return exercises.check(exercise, fn, ALL_CHECKS)


# --- the starter notebooks ---------------------------------------------------------

CELL_MARK = re.compile(r"^# %%(?P<markdown> \[markdown\])?[ \t]*$")
COLAB_CELL = "\n".join(
    [
        "# Colab only: install the book's helpers from its repository (does nothing "
        "elsewhere).",
        "import sys",
        'REPO_URL = "{url}"  # the repository in the book\'s _config.yml',
        'if "google.colab" in sys.modules:',
        '    %pip install -q "git+{{REPO_URL}}"',
        "",
    ]
)


def repo_url(config: Path = ROOT / "_config.yml") -> str:
    """The book's repository URL (``repository.url`` in ``_config.yml``)."""
    found = re.search(r"^repository:\n  url: (\S+)", Path(config).read_text(), re.M)
    if found is None:
        raise ValueError(f"no repository url in {config}")
    return found.group(1)


def script_cells(text: str) -> list[tuple[str, str]]:
    """The cells of a script in the percent format: ``[(kind, source), ...]``.

    ``# %%`` starts a code cell and ``# %% [markdown]`` a Markdown cell, whose lines
    are comments (``# `` is removed). Text before the first marker is ignored.
    """
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        mark = CELL_MARK.match(line)
        if mark:
            cells.append(("markdown" if mark.group("markdown") else "code", []))
        elif cells:
            kind, lines = cells[-1]
            if kind == "markdown":
                line = line[2:] if line.startswith("# ") else line.lstrip("#")
            lines.append(line)
    return [
        (kind, "\n".join(lines).strip("\n"))
        for kind, lines in cells
        if "\n".join(lines).strip()
    ]


def starter_notebook(script: Path, url: str | None = None) -> dict:
    """A starter notebook from its script: the Colab install cell after the title (as
    in the chapters), outputs empty, and the metadata the grader reads (its
    exercises)."""
    from .student import find_exercises

    script = Path(script)
    cells = []
    text = script.read_text(encoding="utf-8")
    for i, (kind, source) in enumerate(script_cells(text)):
        cell = {
            "cell_type": kind,
            "id": f"{script.stem}-{i}",
            "metadata": {},
            "source": source.splitlines(keepends=True),
        }
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    install = COLAB_CELL.format(url=url or repo_url())
    cells.insert(
        1,
        {
            "cell_type": "code",
            "id": f"{script.stem}-colab",
            "execution_count": None,
            "metadata": {"tags": ["hide-cell"]},
            "outputs": [],
            "source": install.splitlines(keepends=True),
        },
    )
    kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
    dlbook = {
        "edition": "student",
        "chapter": f"course/{script.stem}",
        "exercises": find_exercises(cells),
    }
    return {
        "cells": cells,
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": kernel,
            "language_info": {"name": "python"},
            "dlbook": dlbook,
        },
    }


def write_starters(
    out_dir: Path, url: str | None = None, scripts: Sequence[Path] | None = None
) -> list[Path]:
    """Write every assignment's starter notebook into ``out_dir``; return the paths."""
    scripts = sorted(scripts or STARTERS.glob("assignment*.py"))
    if not scripts:
        raise FileNotFoundError(f"no starter scripts in {STARTERS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for script in scripts:
        target = out_dir / f"{Path(script).stem}.ipynb"
        text = json.dumps(starter_notebook(script, url), indent=1, ensure_ascii=False)
        target.write_text(text + "\n", encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers course",
        description="The course kit: starter notebooks, and the lab time per week.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    starters = sub.add_parser("starters", help="write the assignments' starters")
    starters.add_argument("out_dir", type=Path, help="e.g. _build/course")
    starters.add_argument(
        "--repo-url",
        help="the repository the Colab cell installs "
        "from (default: the one in _config.yml)",
    )
    lab = sub.add_parser("lab-times", help="rewrite the lab times from the matrix")
    lab.add_argument("--devices", type=Path, default=DEVICES_JSON)
    lab.add_argument("--out", type=Path, default=LAB_TIMES_MD)
    args = parser.parse_args(argv)
    if args.command == "starters":
        paths = write_starters(args.out_dir, args.repo_url)
        print(f"{len(paths)} starter notebooks -> {args.out_dir}")
    else:
        print(f"lab times -> {write_lab_times(args.devices, args.out)}")
    return 0
