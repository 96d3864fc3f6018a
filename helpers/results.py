"""Measured results: each chapter records its numbers in a small JSON file; the book's results page collects them.

Why: a number in the book's tables must come from a real run, never be typed by hand. A chapter calls
:func:`record` in its quality-gate cell with the values it asserts; the file also notes the mode, the device,
the wall time since ``helpers`` was imported (about the notebook's run time) and the library versions.
``python -m helpers results OUT.md`` turns all files into the tables and comparison plots of the results page
(``make`` does this before building the website).

Files go to ``$DLBOOK_RESULTS/<mode>/<chapter>.json`` (default folder ``~/.cache/dlbook/results``).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
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
    return Path(
        os.environ.get("DLBOOK_RESULTS", Path.home() / ".cache" / "dlbook" / "results")
    ).expanduser()


def _plain(value):
    """JSON-friendly copy: NumPy/PyTorch scalars and arrays become Python numbers and lists, and a
    non-finite number becomes None (JSON has no NaN: strict parsers, browsers' included, reject it)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _commit() -> str | None:
    """The book's commit when ``helpers`` runs from a git checkout (None elsewhere, e.g. a wheel in Colab).

    ``DLBOOK_COMMIT`` names it where the checkout travelled without its ``.git`` (a copy sent to a GPU machine).
    """
    if os.environ.get("DLBOOK_COMMIT"):
        return os.environ["DLBOOK_COMMIT"]
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def record(
    chapter: str,
    metrics: Mapping[str, Value],
    *,
    data: str = "",
    curves: Mapping[str, Sequence] | None = None,
    device: torch.device | None = None,
) -> None:
    """Write a chapter's measured numbers to ``<results_dir>/<mode>/<chapter>.json``.

    ``metrics`` are the headline numbers (accuracy, return, ...), ``data`` says what they were measured on
    (e.g. "MNIST, 60,000 training images"), ``curves`` optional series for comparison plots (e.g. return vs
    environment steps). Recording twice overwrites: the file always describes the latest run. Returns
    nothing, so that the call, the last line of a chapter's cell, adds no output (a path) to the page.
    """
    if not chapter or not chapter.replace("_", "").isalnum():
        raise ValueError(
            f"chapter must be a simple name like 'cnn_cifar10', got {chapter!r}"
        )
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
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": _commit(),
    }
    path = results_dir() / mode() / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry, indent=1))


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


# How a metric's name reads on the results page: its words, with these spelled as a reader knows them.
_WORDS = {
    "acc": "accuracy",
    "val": "validation",
    "auc": "ROC AUC",
    "mse": "MSE",
    "rmse": "RMSE",
    "psnr": "PSNR",
    "kl": "KL",
    "lm": "language model",
    "char": "character",
    "seq": "sequence",
    "nats": "(nats)",
    "env": "environment",
    "eval": "evaluation",
    "knn": "k-NN",
    "pca": "PCA",
    "sklearn": "scikit-learn",
    "q": "Q",
    "s": "(s)",
    "n": "number of",
    "2d": "2-D",
    "grad": "gradient",
    "db": "diabetes",
    "frechet": "Fréchet distance",
    "sb3": "Stable-Baselines3",
    "cpu": "CPU",
    "cuda": "CUDA",
    "bert": "BERT",
    "mnist": "MNIST",
    "frozenlake": "FrozenLake",
    "cartpole": "CartPole",
    "sarsa": "SARSA",
    "reinforce": "REINFORCE",
    "seed0": "seed 0",
    "dcgan": "DCGAN",
    "ddqn": "Double DQN",
    **{
        w: w.upper()
        for w in (
            "mlp",
            "cnn",
            "rnn",
            "lstm",
            "gru",
            "gan",
            "dbn",
            "rbm",
            "dqn",
            "ppo",
            "a2c",
            "a3c",
        )
    },
    "capsnet": "CapsNet",
    "transformer": "Transformer",
    "autoencoder": "autoencoder",
}


def label(key: str) -> str:
    """A recorded metric's name in words, e.g. ``reinforce_median_steps_to_195`` -> "REINFORCE median steps to 195"."""
    words = [
        _WORDS.get(w, _WORDS.get(w.lower(), w))
        for w in key.replace(" ", "_").split("_")
        if w
    ]
    text = " ".join(words)
    return text[:1].upper() + text[1:] if text else key


def _value(value: Value) -> str:
    """A recorded value for the page: None (an infinite or missing measurement) reads as "not reached"."""
    return "not reached / not measured" if value is None else _fmt(value)


def markdown_tables(results: Sequence[Mapping]) -> str:
    """The results page's tables: one overview row per chapter, then every recorded metric per chapter."""
    if not results:
        return "No results recorded yet: run the notebooks (`make book` or `make notebooks`).\n"
    lines = [
        "| chapter | mode | data | wall time (s) | device | torch |",
        "|---|---|---|---:|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['chapter']} | {r['mode']} | {r['data']} | {r['wall_time_s']:.0f} | {r['device']} "
            f"| {r['versions']['torch']} |"
        )
    for r in results:
        lines += [
            "",
            f"**{r['chapter']}** ({r['mode']} mode, {r['finished']})",
            "",
            "| metric | value |",
            "|---|---:|",
        ]
        lines += [f"| {label(k)} | {_value(v)} |" for k, v in r["metrics"].items()]
    return "\n".join(lines) + "\n"


# The landing page's "headline result" of each chapter: which recorded metric, and how to say it.
HEADLINES = {
    "mlp": ("mnist_test_acc", "MNIST test accuracy {:.4f}"),
    "cnn": ("cnn_test_acc", "MNIST test accuracy {:.4f}"),
    "cnn_cifar10": ("test_acc", "CIFAR-10 test accuracy {:.4f}"),
    "rnn": ("char_lm_val_loss_nats", "character LM validation loss {:.3f} nats"),
    "lstm": ("seq_mnist_test_acc", "row-by-row MNIST test accuracy {:.4f}"),
    "gru": ("gru_test_acc", "row-by-row MNIST test accuracy {:.4f}"),
    "transformer": (
        "lm_val_loss_transformer",
        "character LM validation loss {:.3f} nats",
    ),
    "autoencoder": ("anomaly_auc_conv", "anomaly detection ROC AUC {:.3f}"),
    "gan": (
        "frechet_dcgan",
        "DCGAN Fréchet distance {:.2f} (real data {frechet_real_floor:.2f})",
    ),
    "dbn": ("dbn_test_acc", "MNIST test accuracy {:.4f}"),
    "capsnet": ("capsnet_test_acc", "MNIST test accuracy {:.4f}"),
    "q_learning": (
        "frozenlake_slippery_greedy_value_ratio",
        "slippery FrozenLake: {:.1%} of the optimal value",
    ),
    "dqn": ("greedy_return_mean", "CartPole greedy return {:.1f} / 500"),
    "ppo": ("cartpole_greedy_return", "CartPole greedy return {:.1f} / 500"),
    "a2c": ("greedy_return", "CartPole greedy return {:.1f} / 500"),
    "a3c": ("greedy_return", "CartPole greedy return {:.1f} / 500"),
}


def _headline(r: Mapping) -> str:
    key, text = HEADLINES.get(r["chapter"], (None, ""))
    value = r["metrics"].get(key) if key else None
    return (
        text.format(value, **r["metrics"])
        if isinstance(value, (int, float))
        else "see the results page"
    )


def _book_order(results: Sequence[Mapping]) -> list[Mapping]:
    order = list(HEADLINES)  # the book's order; chapters not listed go last
    return sorted(
        results,
        key=lambda r: (
            order.index(r["chapter"]) if r["chapter"] in order else len(order)
        ),
    )


def _where(r: Mapping) -> str:
    """Device, date and commit of a record: enough to find the run again."""
    commit = f", commit {r['commit']}" if r.get("commit") else ""
    return f"{r['device']}, {r['finished'][:10]}{commit}"


def headline_table(results: Sequence[Mapping], records: Sequence[Mapping] = ()) -> str:
    """One row per chapter: its headline result, mode, run time and device (the landing page's algorithm map);
    with ``records`` (committed full-mode runs), the latest full-mode headline beside it, with where it ran."""
    if not results and not records:
        return "No results recorded yet: run the notebooks (`make book`).\n"
    full = {r["chapter"]: r for r in records}
    extra = bool(full) and any(r["mode"] != "full" for r in results)
    lines = [
        "| chapter | headline result | mode | run time | device |"
        + (" latest full-mode record |" if extra else ""),
        "|---|---|---|---:|---|" + ("---|" if extra else ""),
    ]
    for r in _book_order(results):
        minutes = r["wall_time_s"] / 60
        row = f"| {r['chapter']} | {_headline(r)} | {r['mode']} | {minutes:.1f} min | {r['device']} |"
        if extra:
            f = full.get(r["chapter"])
            row += f" {_headline(f)} ({_where(f)}) |" if f else " not recorded yet |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def load_record(path: Path) -> dict:
    """A committed full-mode record (``<chapter>.json``), with what its run printed (``<chapter>.out.txt``, kept by
    the book's runner beside the record) under ``"printed"`` where that file exists."""
    record = json.loads(path.read_text())
    printed = path.with_name(f"{path.stem}.out.txt")
    if printed.exists():
        record["printed"] = printed.read_text()
    return record


def records_table(records: Sequence[Mapping]) -> str:
    """The committed full-mode records: what each chapter reached with the real budgets, and where it ran; below
    the table, what each run printed (folded), so that every number a chapter quotes from it can be checked."""
    if not records:
        return "No full-mode record committed yet (`make gpu-check` on a GPU machine records them).\n"
    lines = [
        "| chapter | headline result | data | run time | device, date, commit |",
        "|---|---|---|---:|---|",
    ]
    for r in _book_order(records):
        lines.append(
            f"| {r['chapter']} | {_headline(r)} | {r['data']} | {r['wall_time_s'] / 60:.1f} min "
            f"| {_where(r)} |"
        )
    fence = "`" * 3
    for r in _book_order(records):
        if r.get("printed"):
            lines += [
                "",
                "<details>",
                f"<summary>{r['chapter']}: what the full-mode run printed ({_where(r)})</summary>",
                "",
                f"{fence}text",
                r["printed"].rstrip().replace(fence, "'''"),
                fence,
                "",
                "</details>",
            ]
    return "\n".join(lines) + "\n"


# Comparison plots of the results page. A chapter takes part by recording a curve under one of these names, as a
# dict of two equal-length lists (x and y) and an optional legend label, e.g.
# ``curves={"cartpole_return": {"label": "DQN", "steps": [...], "return": [...]}}``.
COMPARISONS = {
    "cartpole_return": {
        "x": "steps",
        "y": "return",
        "smooth": 20,
        "file": "_results_cartpole.png",
        "title": "CartPole-v1: training-episode return vs environment steps (each chapter's main run)",
        "xlabel": "environment steps",
        "ylabel": "episode return (moving average of 20)",
    },
    "recall_accuracy": {
        "x": "memory_length",
        "y": "accuracy",
        "smooth": 1,
        "file": "_results_recall.png",
        "title": "Delayed recall: test accuracy vs memory length (each chapter's own model and budget)",
        "xlabel": "memory length L (steps between the cue and the question)",
        "ylabel": "test accuracy (chance 0.125)",
    },
}


def comparison_plots(results: Sequence[Mapping], folder: Path) -> list[tuple[str, str]]:
    """Draw each comparison that at least one chapter recorded a curve for; returns ``(file name, title)`` pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = []
    for key, spec in COMPARISONS.items():
        series = [
            (r["chapter"], r["curves"][key])
            for r in results
            if key in r.get("curves", {})
        ]
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(8, 4.2))
        for chapter, curve in series:
            x, y = (
                np.asarray(curve[spec["x"]], float),
                np.asarray(curve[spec["y"]], float),
            )
            w = min(spec["smooth"], len(y))
            if w > 1:  # moving average, shown from the first full window
                y = np.convolve(y, np.ones(w) / w, mode="valid")
                x = x[w - 1 :]
            ax.plot(
                x,
                y,
                "-" if spec["smooth"] > 1 else "o-",
                label=curve.get("label", chapter),
            )
        ax.set(title=spec["title"], xlabel=spec["xlabel"], ylabel=spec["ylabel"])
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / spec["file"], dpi=100)
        plt.close(fig)
        drawn.append((spec["file"], spec["title"]))
    return drawn


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers results OUT.md [MODE] [--records DIR]``: write the results tables of MODE (default:
    current) to OUT.md, the comparison plots and the landing page's ``_headlines.md`` beside it; with
    ``--records``, the committed full-mode records in DIR (``<chapter>.json``) too, in ``_records.md``."""
    args = list(sys.argv[1:] if argv is None else argv)
    records: list[dict] = []
    if "--records" in args:
        i = args.index("--records")
        folder = Path(args[i + 1]) if i + 1 < len(args) else None
        if folder is None:
            print(main.__doc__)
            return 2
        records = [load_record(p) for p in sorted(folder.glob("*.json"))]
        del args[i : i + 2]
    if not args:
        print(main.__doc__)
        return 2
    results = load_results(args[1] if len(args) > 1 else None)
    out = Path(args[0])
    plots = comparison_plots(results, out.parent)
    figures = "".join(f"\n![{title}]({name})\n" for name, title in plots)
    out.write_text(
        (
            f"## Comparisons across chapters\n{figures}\n## Every chapter\n\n"
            if plots
            else ""
        )
        + markdown_tables(results)
    )
    (out.parent / "_headlines.md").write_text(
        headline_table(results, records)
    )  # included by the landing page
    (out.parent / "_records.md").write_text(
        records_table(records)
    )  # included by the results page
    print(f"{len(results)} chapter results, {len(plots)} comparison plots -> {out}")
    return 0
