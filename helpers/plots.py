"""Plots with one consistent, labelled style: learning curves, image grids, confusion matrices.

Every function returns the matplotlib ``Figure`` so a notebook can tweak or save it; none calls
``plt.show()`` (Jupyter shows a figure returned by the last line of a cell).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .training import History

_LABELS = {
    "loss": "loss",
    "acc": "accuracy",
    "mae": "mean absolute error",
    "mse": "mean squared error",
}


def set_style() -> None:
    """The book's plot style: readable sizes, light grid, no top/right spines."""
    plt.rcParams.update(
        {
            "figure.figsize": (7.0, 4.0),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "legend.frameon": False,
        }
    )


def plot_history(
    histories: History | Mapping[str, History],
    metrics: Sequence[str] = ("loss", "acc"),
    title: str | None = None,
) -> Figure:
    """Learning curves: one panel per metric, train (dashed) and validation (solid) per run.

    Pass one ``History`` or a ``{"label": history}`` mapping to compare runs on the same axes.
    """
    runs = {"": histories} if isinstance(histories, History) else dict(histories)
    if not runs:
        raise ValueError("no history to plot")
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(5.0 * len(metrics), 3.6), squeeze=False
    )
    for ax, metric in zip(axes[0], metrics):
        for i, (label, hist) in enumerate(runs.items()):
            color = f"C{i}"
            for split, style in (("train", "--"), ("val", "-")):
                key = f"{split}_{metric}"
                if key in hist:
                    name = f"{label} {split}".strip() if label else split
                    ax.plot(hist["epoch"], hist[key], style, color=color, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(_LABELS.get(metric, metric))
        ax.set_title(_LABELS.get(metric, metric).capitalize())
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_images(
    images: torch.Tensor,
    labels: Sequence[str] | None = None,
    *,
    ncols: int = 8,
    title: str | None = None,
    cmap: str = "gray",
    size: float = 1.3,
) -> Figure:
    """A grid of images ``(N, C, H, W)`` or ``(N, H, W)`` with values in [0, 1], each with an optional caption."""
    images = torch.as_tensor(images).detach().cpu().float()
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"expected images of shape (N, 1|3, H, W), got {tuple(images.shape)}"
        )
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(size * ncols, size * nrows + (0.4 if title else 0)),
        squeeze=False,
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i].permute(1, 2, 0).numpy()
        ax.imshow(
            img[..., 0] if img.shape[-1] == 1 else img.clip(0, 1),
            cmap=cmap if img.shape[-1] == 1 else None,
        )
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(
    targets: torch.Tensor, predictions: torch.Tensor, num_classes: int
) -> np.ndarray:
    """Counts ``C[i, j]`` of items of true class ``i`` predicted as ``j``."""
    targets, predictions = (
        torch.as_tensor(targets).long().cpu(),
        torch.as_tensor(predictions).long().cpu(),
    )
    if targets.shape != predictions.shape:
        raise ValueError(
            f"targets {tuple(targets.shape)} and predictions {tuple(predictions.shape)} differ in shape"
        )
    idx = targets * num_classes + predictions
    return (
        torch.bincount(idx, minlength=num_classes**2)
        .reshape(num_classes, num_classes)
        .numpy()
    )


def plot_confusion_matrix(
    targets: torch.Tensor,
    predictions: torch.Tensor,
    class_names: Sequence[str],
    *,
    title: str = "Confusion matrix (test set)",
    normalize: bool = True,
) -> Figure:
    """Heat map of the confusion matrix; with ``normalize`` each row shows recall per true class (in %)."""
    k = len(class_names)
    cm = confusion_matrix(targets, predictions, k).astype(float)
    if normalize:
        cm = 100 * cm / cm.sum(axis=1, keepdims=True).clip(min=1)
    fig, ax = plt.subplots(figsize=(0.55 * k + 2.5, 0.55 * k + 1.8))
    im = ax.imshow(cm, cmap="Blues")
    ax.grid(False)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    for i in range(k):
        for j in range(k):
            if cm[i, j] >= (0.05 if normalize else 0.5):
                ax.text(
                    j,
                    i,
                    f"{cm[i, j]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 2 else "black",
                )
    fig.colorbar(im, ax=ax, label="% of true class" if normalize else "count")
    fig.tight_layout()
    return fig


def plot_filters(
    weight: torch.Tensor, *, title: str = "Learned filters", ncols: int = 8
) -> Figure:
    """First-layer convolution kernels ``(out, in, kH, kW)``, each rescaled to its own [0, 1] range."""
    w = weight.detach().cpu().float()
    if w.ndim != 4:
        raise ValueError(
            f"expected conv weights (out, in, kH, kW), got shape {tuple(w.shape)}"
        )
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    w = (w - lo) / (hi - lo).clamp(min=1e-8)
    if w.shape[1] not in (1, 3):
        w = w[:, :1]
    return show_images(
        w, [f"#{i}" for i in range(len(w))], ncols=ncols, title=title, size=0.9
    )


def plot_shift_rotation(
    shifts: Sequence[float],
    shift_acc: Mapping[str, Sequence[float]],
    angles: Sequence[float],
    rotate_acc: Mapping[str, Sequence[float]],
    examples: torch.Tensor,
    example_title: str,
) -> Figure:
    """Robustness curves: test accuracy of each model vs shift (pixels) and vs rotation (degrees), beside a strip
    of ``examples`` ``(K, H, W)`` showing what the transformed digits look like (CNN and CapsNet chapters)."""
    fig, axes = plt.subplots(
        1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [1, 1, 1.1]}
    )
    for i, name in enumerate(shift_acc):
        axes[0].plot(shifts, shift_acc[name], "o-", color=f"C{i}", label=name)
        axes[1].plot(angles, rotate_acc[name], "o-", color=f"C{i}", label=name)
    axes[0].set(
        xlabel="shift (pixels)", ylabel="test accuracy", title="Shifted test digits"
    )
    axes[1].set(
        xlabel="rotation (degrees)", ylabel="test accuracy", title="Rotated test digits"
    )
    for ax in axes[:2]:
        ax.set_ylim(0, 1.02)
        ax.legend()
    axes[2].imshow(torch.cat(list(examples.detach().cpu()), dim=1), cmap="gray")
    axes[2].set(title=example_title)
    axes[2].axis("off")
    fig.tight_layout()
    return fig


def show_source(obj: object) -> None:
    """Show the syntax-highlighted source of a class or function from ``helpers``, so a chapter can
    show the code of a shared model on its page without keeping a second copy of it.

    It displays at once rather than returning the code: a returned object appears only when it is
    the cell's last expression, so a cell showing two classes would silently show one."""
    import inspect

    from IPython.display import Code, display

    display(Code(inspect.getsource(obj), language="python"))
