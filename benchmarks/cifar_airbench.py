"""CIFAR-10 training speed on a GPU: the book's fastest recipe vs the ``airbench`` package's 94 % baseline.

Ours is the ResNet-9 recipe of the CNN chapter's CIFAR-10 section (``book/deep_learning/cnn_cifar10.ipynb``),
executed in full mode exactly as a reader runs it; the notebook records its per-epoch training seconds and test
accuracy, from which the time to 94 % is read (``None`` if it never gets there: then its final accuracy and time
are the comparison). airbench's ``train94`` runs on the same images: the CIFAR-10 copy that ``helpers`` finds
(``DLBOOK_DATA``) is written in airbench's own file format first, so neither side downloads anything.

Without a CUDA GPU the comparison is skipped and says so: it is a GPU benchmark (airbench needs CUDA).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from . import book_times, report

TARGET = 0.94
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "deep_learning" / "cnn_cifar10.ipynb"


def ours(results_dir: Path) -> dict:
    """Execute the chapter in full mode; return its per-epoch curve and final accuracy from its results record."""
    run = book_times.execute(NOTEBOOK, "full", results_dir)
    if not run["passed"]:
        raise RuntimeError(f"{NOTEBOOK.name} failed in full mode: {run['error']}")
    rec = json.loads((results_dir / "full" / "cnn_cifar10.json").read_text())
    times, accs = rec["curves"]["epoch_train_time_s"], rec["curves"]["epoch_test_acc"]
    return {
        "time_to_target_s": report.time_to_target(times, accs, TARGET),
        "final_acc": rec["metrics"]["test_acc"],
        "train_s": sum(times),
        "epochs": len(times),
        "notebook_s": run["wall_s"],
        "data": rec["data"],
    }


def _write_airbench_data(folder: Path) -> None:
    """airbench reads ``<folder>/train.pt`` and ``test.pt`` (uint8 NHWC images, labels, classes)."""
    import torch

    import helpers

    folder.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        ds = helpers.load_cifar10(
            train=train
        )  # uint8 (N, C, H, W) images and their labels
        torch.save(
            {
                "images": ds.images.permute(0, 2, 3, 1).contiguous(),
                "labels": ds.labels.clone(),
                "classes": list(helpers.CIFAR10_CLASSES),
            },
            folder / ("train.pt" if train else "test.pt"),
        )


def airbench_run(workdir: Path) -> dict:
    """airbench's 94 % baseline in a child process (it reads ./cifar10 at import), after one warm-up run."""
    _write_airbench_data(workdir / "cifar10")
    code = (
        "import json, time, torch, airbench\n"
        "airbench.warmup94(verbose=False)\n"
        "torch.cuda.synchronize(); t = time.perf_counter()\n"
        "model = airbench.train94(verbose=False)\n"
        "torch.cuda.synchronize(); s = time.perf_counter() - t\n"
        "test = airbench.CifarLoader('cifar10', train=False, batch_size=2000)\n"
        "print(json.dumps({'train_s': s, 'final_acc': airbench.evaluate(model, test, tta_level=2)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {
            "skipped": "no CUDA GPU on this machine: this comparison only runs on a GPU"
        }
    try:
        import airbench  # noqa: F401
    except ImportError:
        return {
            "skipped": "the airbench package is not installed (pip install airbench)"
        }
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "ours": ours(Path(tmp) / "results"),
            "airbench": airbench_run(Path(tmp)),
        }
    a, o = result["airbench"], result["ours"]
    result["ratio_time_to_target"] = (
        (o["time_to_target_s"] / a["train_s"]) if o["time_to_target_s"] else None
    )
    result["target"] = TARGET
    return result


def markdown(result: Mapping) -> list[str]:
    lines = ["### CIFAR-10 training speed: the book vs airbench (GPU)", ""]
    if "skipped" in result:
        return lines + [
            f"Skipped on {report.describe(result['machine'])}: {result['skipped']}."
        ]
    o, a = result["ours"], result["airbench"]
    rows = [
        [
            "book (ResNet-9, cnn_cifar10 chapter)",
            f"{o['final_acc']:.4f}",
            f"{o['train_s']:.1f}",
            f"{o['time_to_target_s']:.1f}" if o["time_to_target_s"] else "not reached",
        ],
        [
            "airbench94",
            f"{a['final_acc']:.4f}",
            f"{a['train_s']:.1f}",
            f"{a['train_s']:.1f}",
        ],
    ]
    lines += [
        f"Measured on {report.describe(result['machine'])}; data: {o['data']}.",
        "",
    ]
    lines += report.table(
        ["recipe", "final test accuracy", "training s", f"s to {result['target']:.0%}"],
        rows,
    )
    ratio = result["ratio_time_to_target"]
    lines += [
        "",
        f"Time to {result['target']:.0%}, book / airbench: "
        + (f"{ratio:.1f}x" if ratio else "the book's recipe does not reach it"),
    ]
    return lines
