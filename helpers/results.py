"""Measured results: each chapter records its numbers in a small JSON file; the book's results page collects them.

Why: a number in the book's tables must come from a real run, never be typed by hand. A chapter calls
:func:`record` in its quality-gate cell with the values it asserts; the file also notes the mode, the device,
the wall time since ``helpers`` was imported (about the notebook's run time) and the library versions.
``python -m helpers.results OUT.md`` turns all files into the Markdown tables of the results page
(``make`` does this before building the website).

Files go to ``$DLBOOK_RESULTS/<mode>/<chapter>.json`` (default folder ``~/.cache/dlbook/results``).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from .settings import get_device, mode

_IMPORTED_AT = time.perf_counter()

Value = float | int | str | bool | None


def results_dir() -> Path:
    """The folder named by ``DLBOOK_RESULTS`` (default ``~/.cache/dlbook/results``)."""
    return Path(os.environ.get("DLBOOK_RESULTS", Path.home() / ".cache" / "dlbook" / "results")).expanduser()


def _plain(value):
    """JSON-friendly copy: NumPy/PyTorch scalars and arrays become Python numbers and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def record(chapter: str, metrics: Mapping[str, Value], *, data: str = "", curves: Mapping[str, Sequence] | None = None,
           device: torch.device | None = None) -> Path:
    """Write a chapter's measured numbers to ``<results_dir>/<mode>/<chapter>.json`` and return the path.

    ``metrics`` are the headline numbers (accuracy, return, ...), ``data`` says what they were measured on
    (e.g. "MNIST, 60,000 training images"), ``curves`` optional series for comparison plots (e.g. return vs
    environment steps). Recording twice overwrites: the file always describes the latest run.
    """
    if not chapter or not chapter.replace("_", "").isalnum():
        raise ValueError(f"chapter must be a simple name like 'cnn_cifar10', got {chapter!r}")
    if not metrics:
        raise ValueError("record at least one metric")
    device = device or get_device()
    entry = {
        "chapter": chapter,
        "mode": mode(),
        "data": data,
        "metrics": _plain(dict(metrics)),
        "curves": _plain(dict(curves or {})),
        "wall_time_s": round(time.perf_counter() - _IMPORTED_AT, 1),
        "device": _device_name(device),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    path = results_dir() / mode() / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry, indent=1))
    return path


def load_results(run_mode: str | None = None, folder: Path | None = None) -> list[dict]:
    """All recorded results of one mode (default: the current one), sorted by chapter name."""
    folder = (folder or results_dir()) / (run_mode or mode())
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _fmt(value: Value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def markdown_tables(results: Sequence[Mapping]) -> str:
    """The results page's tables: one overview row per chapter, then every recorded metric per chapter."""
    if not results:
        return "No results recorded yet: run the notebooks (`make book` or `make notebooks`).\n"
    lines = ["| chapter | mode | data | wall time (s) | device | torch |", "|---|---|---|---:|---|---|"]
    for r in results:
        lines.append(f"| {r['chapter']} | {r['mode']} | {r['data']} | {r['wall_time_s']:.0f} | {r['device']} "
                     f"| {r['versions']['torch']} |")
    for r in results:
        lines += ["", f"**{r['chapter']}** ({r['mode']} mode, {r['finished']})", "", "| metric | value |",
                  "|---|---:|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in r["metrics"].items()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.results OUT.md [MODE]``: write the results tables of MODE (default: current) to OUT.md."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(main.__doc__)
        return 2
    results = load_results(args[1] if len(args) > 1 else None)
    Path(args[0]).write_text(markdown_tables(results))
    print(f"{len(results)} chapter results -> {args[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
