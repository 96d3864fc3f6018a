"""The Markdown the book includes: every benchmark's JSON in ``benchmarks/results`` turned into one page.

Kept apart from :mod:`benchmarks.report` (the helpers every benchmark uses) so that the modules depend in one
direction only: ``report`` <- each benchmark <- ``pages``.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import (
    a3c_scaling,
    book_times,
    cifar_airbench,
    devices,
    mnist_loop,
    rl_ablation,
    rl_sb3,
)
from .report import RESULTS

ORDER = [
    "devices",
    "rl_sb3",
    "rl_a2c_ablation",
    "a3c_scaling",
    "mnist_loop",
    "mnist_loop_cuda",
    "cifar_airbench",
    "book_times",
]  # sections of the Markdown page


def write_markdown(folder: Path | None = None) -> Path:
    """Collect every ``<name>.json`` in ``folder`` into ``benchmarks.md`` (sections in :data:`ORDER`); each section
    is also written alone to ``<name>.md``."""
    renderers = {
        "devices": devices.markdown,
        "rl_sb3": rl_sb3.markdown,
        "rl_a2c_ablation": rl_ablation.markdown,
        "a3c_scaling": a3c_scaling.markdown,
        "mnist_loop": mnist_loop.markdown,
        "mnist_loop_cuda": mnist_loop.markdown,
        "cifar_airbench": cifar_airbench.markdown,
        "book_times": book_times.markdown,
    }
    folder = Path(folder or RESULTS)
    folder.mkdir(parents=True, exist_ok=True)  # `--out` of a run that saved no JSON
    found = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    lines: list[str] = []
    for name in ORDER:
        if name in found:
            section = renderers[name](found[name]) + [""]
            (folder / f"{name}.md").write_text(
                "\n".join(section)
            )  # one section alone (the instructor page)
            if (
                name == "devices"
            ):  # and the course's lab time per week, from the same matrix
                from helpers.course import lab_times_markdown

                (folder / "lab_times.md").write_text(lab_times_markdown(found[name]))
            if name != "devices":  # its own section of the results page
                lines += section
    if not lines:
        lines = [
            "No benchmark has been run yet: `make bench` (CPU part) or `make bench-book`.",
            "",
        ]
    out = folder / "benchmarks.md"
    out.write_text("\n".join(lines))
    return out
