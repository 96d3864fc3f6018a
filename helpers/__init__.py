"""Shared code for the book: run settings, data, models, the training loop and plots.

Import what a chapter needs, e.g. ``from helpers import fit, load_mnist, get_device``.
Each module is small and can be read on its own: :mod:`helpers.settings`, :mod:`helpers.data`,
:mod:`helpers.training`, :mod:`helpers.models`, :mod:`helpers.plots`, :mod:`helpers.results` (measured
numbers for the results page), :mod:`helpers.exercises` (auto-checked exercises), and for reinforcement learning
:mod:`helpers.rl` (imported on its own: ``from helpers import rl``).
"""

# isort: off
# imported first: its clock measures a notebook's run time from here
from . import results  # noqa: F401

# isort: on
from . import exercises  # noqa: F401
from .data import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    FULL_TRAIN_SIZE,
    MNIST_CLASSES,
    DataNotFoundError,
    ImageArrayDataset,
    TensorLoader,
    affine_images,
    data_dir,
    is_full_data,
    load_cifar10,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    load_train_test,
    make_loader,
    random_crop_flip,
    take_subset,
    train_val_split,
)
from .models import MLP, CNNModel, ResNet9, count_parameters
from .plots import (
    plot_confusion_matrix,
    plot_filters,
    plot_history,
    plot_shift_rotation,
    set_style,
    show_images,
    show_source,
)
from .settings import (
    describe_run,
    get_device,
    in_colab,
    is_quick,
    mode,
    pick,
    seed_everything,
)
from .training import (
    History,
    accuracy,
    evaluate,
    fit,
    load_checkpoint,
    predict,
    save_checkpoint,
    train_one_epoch,
)

__version__ = "0.1.0"

__all__ = [
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "FULL_TRAIN_SIZE",
    "MNIST_CLASSES",
    "DataNotFoundError",
    "ImageArrayDataset",
    "TensorLoader",
    "affine_images",
    "data_dir",
    "is_full_data",
    "load_cifar10",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "load_train_test",
    "make_loader",
    "random_crop_flip",
    "take_subset",
    "train_val_split",
    "MLP",
    "CNNModel",
    "ResNet9",
    "count_parameters",
    "plot_confusion_matrix",
    "plot_filters",
    "plot_history",
    "plot_shift_rotation",
    "set_style",
    "show_images",
    "show_source",
    "describe_run",
    "get_device",
    "in_colab",
    "is_quick",
    "mode",
    "pick",
    "seed_everything",
    "History",
    "accuracy",
    "evaluate",
    "fit",
    "load_checkpoint",
    "predict",
    "save_checkpoint",
    "train_one_epoch",
]
