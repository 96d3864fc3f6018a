"""CIFAR-10 training speed on a GPU: the book's speed recipe, ingredient by ingredient, vs airbench.

Ours is :mod:`helpers.fast_cifar`: every row of its :data:`~helpers.fast_cifar.ABLATION` adds one
published ingredient to the CIFAR-10 chapter's ResNet-9 recipe, up to the final recipe. Each row
trains once on all 50,000 training images and is scored on the 10,000 test images (the speed-run
protocol: hyper-parameters fixed in advance, test accuracy at the end; the per-epoch test accuracy
only serves to read off the time to a target). airbench's ``train94`` runs in the same process
tree, on the same images: the CIFAR-10 copy that ``helpers`` finds (``DLBOOK_DATA``) is written in
airbench's own file format first, so neither side downloads anything.

The target is airbench's accuracy as measured here (the mean of :data:`REPEATS` runs, with its
test-time augmentation), not its published 94 %, since the book's copy of the images may be a
lossier JPEG re-encoding. The final recipe also runs :data:`REPEATS` times; the goal: it reaches that
accuracy within :data:`GOAL_RATIO` times airbench's mean training time.

Without a CUDA GPU the comparison is skipped and says so: it is a GPU benchmark (airbench needs CUDA).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import report

TARGET = 0.94  # airbench's published accuracy on the original images
GOAL_RATIO = 1.5  # final recipe's time to airbench's accuracy / airbench's time
REPEATS = 5  # runs of airbench and of the final recipe (one of each ablation row)


def _data():
    """The whole CIFAR-10 copy as ``uint8`` tensors, and its name for the table."""
    import helpers
    from helpers import fast_cifar

    train, test = helpers.load_cifar10(train=True), helpers.load_cifar10(train=False)
    name = "CIFAR-10 (JPEG copy)" if "cifar10_jpeg" in train.source else "CIFAR-10"
    data = fast_cifar.CifarTensors(train.images, train.labels, test.images, test.labels)
    return data, f"{name}, {len(train):,} training and {len(test):,} test images"


def _summary(runs: Sequence[Mapping], added: str, target: float) -> dict:
    """One table row from one or more runs of a recipe: mean curve, times to the targets."""
    n = len(runs)
    epochs = min(len(r["epoch_train_s"]) for r in runs)
    secs = [sum(r["epoch_train_s"][e] for r in runs) / n for e in range(epochs)]
    accs = [sum(r["epoch_tta_acc"][e] for r in runs) / n for e in range(epochs)]
    finals = [r["final_acc"] for r in runs]
    return {
        "added": added,
        "runs": n,
        "final_acc": sum(finals) / n,
        "final_accs": finals,
        "train_s": sum(sum(r["epoch_train_s"]) for r in runs) / n,
        "time_to_airbench_s": report.time_to_target(secs, accs, target),
        "time_to_94_s": report.time_to_target(secs, accs, TARGET),
        "epoch_train_s": secs,
        "epoch_tta_acc": accs,
        "epoch_acc": [sum(r["epoch_acc"][e] for r in runs) / n for e in range(epochs)],
    }


def ours(target: float, repeats: int = REPEATS, device: str = "cuda") -> dict:
    """Train every ablation row (the final one ``repeats`` times, seeds 0, 1, ...), each after an
    untimed warm-up of a few steps (cuDNN's kernel search, like airbench's ``warmup94``)."""
    from helpers import fast_cifar

    data, name = _data()
    data = data.to(device)
    rows = []
    for k, config in enumerate(fast_cifar.ABLATION):
        fast_cifar.train(config, data, device, max_steps=5, eval_every_epoch=False)
        n = repeats if k == len(fast_cifar.ABLATION) - 1 else 1
        runs = [fast_cifar.train(config, data, device, seed=s) for s in range(n)]
        rows.append(_summary(runs, config.added, target))
        print(
            f"{rows[-1]['final_acc']:.4f} {rows[-1]['train_s']:.1f} s  {config.added}"
        )
    return {"rows": rows, "data": name}


def _write_airbench_data(folder: Path) -> None:
    """airbench reads ``<folder>/train.pt`` and ``test.pt`` (uint8 NHWC images, labels, classes)."""
    import torch

    import helpers

    folder.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        ds = helpers.load_cifar10(train=train)  # uint8 (N, C, H, W) images and labels
        torch.save(
            {
                "images": ds.images.permute(0, 2, 3, 1).contiguous(),
                "labels": ds.labels.clone(),
                "classes": list(helpers.CIFAR10_CLASSES),
            },
            folder / ("train.pt" if train else "test.pt"),
        )


def airbench_run(workdir: Path, repeats: int = REPEATS) -> dict:
    """airbench's 94 % recipe ``repeats`` times in a child process (it reads ./cifar10 at import),
    after one warm-up run; the time is the wall time of ``train94`` (which includes its setup)."""
    _write_airbench_data(workdir / "cifar10")
    code = (
        "import json, time, torch, airbench\n"
        "airbench.warmup94(verbose=False)\n"
        "test = airbench.CifarLoader('cifar10', train=False, batch_size=2000)\n"
        f"for run in range({repeats}):\n"
        "    torch.cuda.synchronize(); t = time.perf_counter()\n"
        "    model = airbench.train94(verbose=False)\n"
        "    torch.cuda.synchronize(); s = time.perf_counter() - t\n"
        "    acc = airbench.evaluate(model, test, tta_level=2)\n"
        "    print(json.dumps({'train_s': s, 'final_acc': acc}), flush=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    runs = [
        json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")
    ]
    return {
        "runs": runs,
        "train_s": sum(r["train_s"] for r in runs) / len(runs),
        "final_acc": sum(r["final_acc"] for r in runs) / len(runs),
    }


def verdict(result: dict) -> dict:
    """Add the ratio (final recipe's time to airbench's accuracy / airbench's time) and the goal."""
    a, final = result["airbench"], result["ours"]["rows"][-1]
    t = final["time_to_airbench_s"]
    result["ratio_time_to_airbench"] = (t / a["train_s"]) if t is not None else None
    result["goal_ratio"] = GOAL_RATIO
    result["goal_met"] = t is not None and t / a["train_s"] <= GOAL_RATIO
    result["target"] = TARGET
    return result


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
        airbench = airbench_run(Path(tmp))
    result = {"airbench": airbench, "ours": ours(airbench["final_acc"])}
    return verdict(result)


def _s(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "not reached"


def markdown(result: Mapping) -> list[str]:
    lines = [
        "### CIFAR-10 training speed: what each ingredient buys, vs airbench (GPU)",
        "",
    ]
    if "skipped" in result:
        return lines + [
            f"Skipped on {report.describe(result['machine'])}: {result['skipped']}."
        ]
    a, o = result["airbench"], result["ours"]
    target = a["final_acc"]
    lines += [
        f"Measured on {report.describe(result['machine'])}; data: {o['data']}. "
        "Each row adds one ingredient to the row above (the first is the CIFAR-10 "
        "chapter's ResNet-9 recipe), trains on all training images and is scored on "
        "the test images; times are training seconds (setup included, evaluation "
        "excluded); the time to a target is read off the test accuracy after each "
        "epoch. Accuracies include the row's test-time augmentation, if any. The "
        "target is airbench's accuracy (with its test-time augmentation) measured in "
        f"the same run ({target:.4f}, mean of {len(a['runs'])} runs).",
        "",
    ]
    rows = [
        [
            f"{i}. {r['added']}"
            + (f" (mean of {r['runs']} runs)" if r["runs"] > 1 else ""),
            f"{r['final_acc']:.4f}",
            f"{r['train_s']:.1f}",
            _s(r["time_to_airbench_s"]),
            _s(r["time_to_94_s"]),
        ]
        for i, r in enumerate(o["rows"])
    ]
    rows.append(
        [
            f"airbench94 (mean of {len(a['runs'])} runs)",
            f"{a['final_acc']:.4f}",
            f"{a['train_s']:.1f}",
            f"{a['train_s']:.1f}",
            f"{a['train_s']:.1f}" if a["final_acc"] >= result["target"] else "",
        ]
    )
    lines += report.table(
        [
            "ingredient added",
            "final test accuracy",
            "training s",
            f"s to {target:.4f} (airbench)",
            f"s to {result['target']:.0%}",
        ],
        rows,
    )
    ratio = result["ratio_time_to_airbench"]
    goal = result["goal_ratio"]
    lines += [
        "",
        "Time to airbench's accuracy, final recipe / airbench: "
        + (f"{ratio:.2f}x" if ratio is not None else "not reached")
        + f"; goal <= {goal}x: {'met' if result['goal_met'] else 'not met'}.",
    ]
    return lines
