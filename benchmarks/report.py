"""Where benchmark results go and how they become the Markdown the results page includes.

Each comparison writes one JSON file to ``benchmarks/results/<name>.json`` with its rows, its verdicts on the
issue's goals, the settings and the machine; :func:`write_markdown` turns every file present into
``benchmarks/results/benchmarks.md``. Both are committed: they are measurements of a named machine, like the
tables of a paper, and re-running a comparison on another machine overwrites them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
ORDER = ["devices", "rl_sb3", "mnist_loop", "cifar_airbench", "book_times"]   # sections of the Markdown page


def machine() -> dict:
    """The machine a number was measured on: CPU, cores, GPU (if any) and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    try:
        import stable_baselines3
        info["stable_baselines3"] = stable_baselines3.__version__
    except ImportError:
        pass
    return info


def describe(m: Mapping) -> str:
    """One line for a table caption."""
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    return f"{m['cpu']}, {m['cores']} cores{gpu}; Python {m['python']}, torch {m['torch']}"


def save(name: str, payload: Mapping, folder: Path | None = None) -> Path:
    """Write ``payload`` (plus the machine and the date) to ``<folder>/<name>.json``."""
    folder = Path(folder or RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"name": name, **payload, "machine": machine(),
             "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(entry, indent=1, default=_plain))
    return path


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def mean_std(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """``"mean ± std"`` of the values that are not None, with how many there were if some are missing."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "—"
    text = f"{fmt.format(np.mean(vals))} ± {fmt.format(np.std(vals))}"
    return text if len(vals) == len(values) else f"{text} ({len(vals)}/{len(values)} runs)"


def time_to_target(seconds: Sequence[float], accuracies: Sequence[float], target: float) -> float | None:
    """Training seconds summed over epochs up to the first whose accuracy reaches ``target`` (None if none does)."""
    total = 0.0
    for t, acc in zip(seconds, accuracies):
        total += t
        if acc >= target:
            return total
    return None


def table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> list[str]:
    """A Markdown table; ``align`` is one character per column (``l`` or ``r``), default: first left, rest right."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def write_markdown(folder: Path | None = None) -> Path:
    """Collect every ``<name>.json`` in ``folder`` into ``benchmarks.md`` (sections in :data:`ORDER`); each section
    is also written alone to ``<name>.md``."""
    from . import book_times, cifar_airbench, devices, mnist_loop, rl_sb3

    renderers = {"devices": devices.markdown, "rl_sb3": rl_sb3.markdown, "mnist_loop": mnist_loop.markdown,
                 "cifar_airbench": cifar_airbench.markdown, "book_times": book_times.markdown}
    folder = Path(folder or RESULTS)
    found = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    lines: list[str] = []
    for name in ORDER:
        if name in found:
            section = renderers[name](found[name]) + [""]
            (folder / f"{name}.md").write_text("\n".join(section))    # one section alone (the instructor page)
            if name != "devices":                                    # its own section of the results page
                lines += section
    if not lines:
        lines = ["No benchmark has been run yet: `make bench` (CPU part) or `make bench-book`.", ""]
    out = folder / "benchmarks.md"
    out.write_text("\n".join(lines))
    return out
