"""Where benchmark results go and how they become the Markdown the results page includes.

Each comparison writes one JSON file to ``benchmarks/results/<name>.json`` with its rows, its verdicts on the
goals, the settings and the machine; :func:`benchmarks.pages.write_markdown` turns every file present into
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
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import stable_baselines3

        info["stable_baselines3"] = stable_baselines3.__version__
    except ImportError:
        pass
    return info


def describe(m: Mapping) -> str:
    """One line for a table caption."""
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    return (
        f"{m['cpu']}, {m['cores']} cores{gpu}; Python {m['python']}, torch {m['torch']}"
    )


def save(name: str, payload: Mapping, folder: Path | None = None) -> Path:
    """Write ``payload`` (plus the machine and the date) to ``<folder>/<name>.json``."""
    folder = Path(folder or RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    entry = {
        "name": name,
        **payload,
        "machine": machine(),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
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
    return (
        text if len(vals) == len(values) else f"{text} ({len(vals)}/{len(values)} runs)"
    )


def time_to_target(
    seconds: Sequence[float], accuracies: Sequence[float], target: float
) -> float | None:
    """Training seconds summed over epochs up to the first whose accuracy reaches ``target`` (None if none does)."""
    total = 0.0
    for t, acc in zip(seconds, accuracies):
        total += t
        if acc >= target:
            return total
    return None


def table(
    header: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None
) -> list[str]:
    """A Markdown table; ``align`` is one character per column (``l`` or ``r``), default: first left, rest right."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines
