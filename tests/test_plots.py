import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from helpers import (
    History,
    plot_confusion_matrix,
    plot_filters,
    plot_history,
    set_style,
    show_images,
    show_source,
)
from helpers.plots import confusion_matrix


def make_history(n=3):
    h = History()
    for e in range(1, n + 1):
        h.append(
            {
                "epoch": e,
                "train_loss": 1 / e,
                "val_loss": 1.2 / e,
                "train_acc": 0.5 + e / 10,
                "val_acc": 0.4 + e / 10,
            }
        )
    return h


def test_plot_history_labels_every_panel():
    set_style()
    fig = plot_history({"a": make_history(), "b": make_history(4)}, title="runs")
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel() and ax.get_title()
        assert len(ax.get_lines()) == 4
    plt.close(fig)
    with pytest.raises(ValueError):
        plot_history({})


def test_show_images_grid_and_checks():
    fig = show_images(
        torch.rand(10, 1, 28, 28), [str(i) for i in range(10)], ncols=5, title="digits"
    )
    assert len(fig.axes) == 10 and fig.axes[3].get_title() == "3"
    plt.close(fig)
    plt.close(show_images(torch.rand(3, 3, 32, 32)))
    with pytest.raises(ValueError):
        show_images(torch.rand(3, 5, 8, 8))
    with pytest.raises(ValueError):
        show_images(torch.rand(3, 1, 8, 8), ["a"])


def test_confusion_matrix_counts():
    cm = confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 2]), 3)
    assert np.array_equal(cm, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    fig = plot_confusion_matrix(
        torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 2]), ["a", "b", "c"]
    )
    assert fig.axes[0].get_xlabel() == "predicted class"
    plt.close(fig)
    with pytest.raises(ValueError):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 2)


def test_plot_filters_and_show_source(monkeypatch):
    fig = plot_filters(torch.randn(16, 1, 3, 3))
    assert len(fig.axes) == 16
    plt.close(fig)
    with pytest.raises(ValueError):
        plot_filters(torch.randn(16, 3))
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    assert show_source(History) is None and show_source(plot_filters) is None
    assert "class History" in shown[0].data and "def plot_filters" in shown[1].data
