"""Data sets for the book: MNIST, Fashion-MNIST and CIFAR-10, offline first.

Where the data comes from is decided by one environment variable, ``DLBOOK_DATA``, naming a folder, or several
separated by ``os.pathsep`` and searched in order (default: ``~/.cache/dlbook/data``). For each data set
we look, in order, for

1. torchvision's own layout in that folder (``MNIST/raw/...``, ``FashionMNIST/raw/...``,
   ``cifar-10-batches-py/...``), as left by an earlier download;
2. a NumPy archive in the format of the project's verified offline copies
   (``mnist.npz``, ``fashion_mnist.npz``, ``cifar10_jpeg.npz`` with ``x_train, y_train, x_test, y_test``);
3. a download by torchvision, but only after a quick check that the server can be reached.

With no copy and no network we raise :class:`DataNotFoundError` at once, naming the variable and the
files it should hold, instead of letting a download hang and end in a pile of tracebacks.

Every loader returns an :class:`ImageArrayDataset`: the whole data set as one ``uint8`` tensor in
memory (MNIST is 47 MB, CIFAR-10 150 MB), normalised on the fly. That keeps one code path for every
source and lets :class:`TensorLoader` serve batches without per-image Python work.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset, random_split

from .settings import get_device

# Per-channel statistics of the original training sets (the usual values in the literature).
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

#: Size of each official training split: a chapter compares against it to know whether it runs on
#: the full data (full-data quality gates) or on a subset such as the offline MNIST copy.
FULL_TRAIN_SIZE = {"mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000}

_SPECS = {
    "mnist": dict(
        title="MNIST",
        tv_dir="MNIST",
        npz="mnist.npz",
        classes=MNIST_CLASSES,
        mean=MNIST_MEAN,
        std=MNIST_STD,
        host=("ossci-datasets.s3.amazonaws.com", 443),
        tv_files=(
            "MNIST/raw/train-images-idx3-ubyte",
            "MNIST/raw/train-labels-idx1-ubyte",
            "MNIST/raw/t10k-images-idx3-ubyte",
            "MNIST/raw/t10k-labels-idx1-ubyte",
        ),
    ),
    "fashion_mnist": dict(
        title="Fashion-MNIST",
        tv_dir="FashionMNIST",
        npz="fashion_mnist.npz",
        classes=FASHION_MNIST_CLASSES,
        mean=FASHION_MNIST_MEAN,
        std=FASHION_MNIST_STD,
        host=("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80),
        tv_files=(
            "FashionMNIST/raw/train-images-idx3-ubyte",
            "FashionMNIST/raw/train-labels-idx1-ubyte",
            "FashionMNIST/raw/t10k-images-idx3-ubyte",
            "FashionMNIST/raw/t10k-labels-idx1-ubyte",
        ),
    ),
    "cifar10": dict(
        title="CIFAR-10",
        tv_dir="cifar-10-batches-py",
        npz="cifar10_jpeg.npz",
        classes=CIFAR10_CLASSES,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        host=("www.cs.toronto.edu", 443),
        tv_files=("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"),
    ),
}


class DataNotFoundError(RuntimeError):
    """The data set is neither in ``DLBOOK_DATA`` nor downloadable. The message says what to put where."""


def data_dirs() -> list[Path]:
    """The data folders, searched in order: ``DLBOOK_DATA`` (one folder, or several separated by ``os.pathsep``,
    e.g. ``complete:offline-subset``), else ``~/.cache/dlbook/data``.

    Several folders let one setting serve every data set from wherever it is kept, complete copies first.
    """
    parts = [
        p.strip()
        for p in os.environ.get("DLBOOK_DATA", "").split(os.pathsep)
        if p.strip()
    ]
    if not parts:
        return [Path.home() / ".cache" / "dlbook" / "data"]
    return [Path(p).expanduser().resolve() for p in parts]


def data_dir() -> Path:
    """The first data folder: where a download goes when no folder holds the data set (see :func:`data_dirs`)."""
    return data_dirs()[0]


class ImageArrayDataset(Dataset):
    """Images held as one ``uint8`` tensor ``(N, C, H, W)``, returned as normalised ``float32``.

    ``transform`` (e.g. random crops) sees the image scaled to [0, 1], before normalisation, so
    padding fills with black as in the original papers. ``source`` says where the data came from.
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor | Sequence[int],
        mean: Sequence[float],
        std: Sequence[float],
        *,
        classes: Sequence[str] = (),
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        source: str = "arrays",
    ):
        images = torch.as_tensor(np.asarray(images))
        if images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (0..255), got {images.dtype}")
        if images.ndim == 3:  # (N, H, W): grey-scale
            images = images.unsqueeze(1)
        elif (
            images.ndim == 4
            and images.shape[-1] in (1, 3)
            and images.shape[1] not in (1, 3)
        ):
            images = images.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        if images.ndim != 4 or images.shape[1] != len(mean):
            raise ValueError(
                f"images of shape {tuple(images.shape)} do not match {len(mean)} channel(s)"
            )
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"{images.shape[0]} images but labels of shape {tuple(labels.shape)}"
            )
        self.images = images.contiguous()
        self.labels = labels
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.classes = tuple(classes)
        self.transform = transform
        self.source = source

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.images[index].float().div_(255)
        if self.transform is not None:
            x = self.transform(x)
        return (x - self.mean) / self.std, int(self.labels[index])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images normalised (no augmentation) and all labels, for :class:`TensorLoader`."""
        x = self.images.float().div_(255)
        return (x - self.mean) / self.std, self.labels.clone()

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation, back to [0, 1], for plotting."""
        return (x.cpu() * self.std + self.mean).clamp(0, 1)


def load_dataset(
    name: str,
    train: bool = True,
    *,
    augment: bool = False,
    root: str | Path | None = None,
) -> ImageArrayDataset:
    """Load ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"`` (train or test split) as an :class:`ImageArrayDataset`.

    ``augment=True`` adds the standard augmentation of the training split: random crops with 4 pixels
    of padding, plus horizontal flips for CIFAR-10 (a flipped digit is a different symbol, so not for MNIST).
    """
    if name not in _SPECS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(_SPECS)}")
    spec = _SPECS[name]
    folders = [Path(root).expanduser().resolve()] if root is not None else data_dirs()
    images, labels, source = _load_arrays(name, spec, folders, train)
    transform = _augmentation(name) if augment else None
    return ImageArrayDataset(
        images,
        labels,
        spec["mean"],
        spec["std"],
        classes=spec["classes"],
        transform=transform,
        source=source,
    )


def load_mnist(
    train: bool = True, *, augment: bool = False, root: str | Path | None = None
) -> ImageArrayDataset:
    """MNIST handwritten digits, 28x28 grey-scale. See :func:`load_dataset`."""
    return load_dataset("mnist", train, augment=augment, root=root)


def load_fashion_mnist(
    train: bool = True, *, augment: bool = False, root: str | Path | None = None
) -> ImageArrayDataset:
    """Fashion-MNIST clothing images, 28x28 grey-scale. See :func:`load_dataset`."""
    return load_dataset("fashion_mnist", train, augment=augment, root=root)


def load_cifar10(
    train: bool = True, *, augment: bool = False, root: str | Path | None = None
) -> ImageArrayDataset:
    """CIFAR-10 colour images, 32x32x3. See :func:`load_dataset`."""
    return load_dataset("cifar10", train, augment=augment, root=root)


def is_full_data(name: str, train_set: Dataset) -> bool:
    """True when ``train_set`` is the complete official training split (not e.g. the 5,000-image offline copy)."""
    return len(train_set) >= FULL_TRAIN_SIZE[name]


def _load_arrays(
    name: str, spec: dict, folders: list[Path], train: bool
) -> tuple[np.ndarray, np.ndarray, str]:
    for folder in folders:  # the first folder that holds the data set wins; in it, torchvision's files first
        if all((folder / f).exists() for f in spec["tv_files"]):
            return _from_torchvision(name, folder, train, download=False) + (
                f"torchvision files in {folder}",
            )
        npz = folder / spec["npz"]
        if npz.exists():
            npz = _follow_text_link(npz)
            with _open_archive(npz) as archive:
                split = "train" if train else "test"
                return (
                    archive[f"x_{split}"],
                    archive[f"y_{split}"],
                    f"offline copy {npz}",
                )
    folder = folders[0]
    if not _reachable(*spec["host"]):
        raise DataNotFoundError(_missing_message(spec, folders)) from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return _from_torchvision(name, folder, train, download=True) + (
            f"torchvision download into {folder}",
        )
    except Exception as err:  # network dropped mid-way, disk full, mirror gone, ...
        raise DataNotFoundError(
            f"downloading {spec['title']} failed ({err}).\n"
            + _missing_message(spec, folders)
        ) from None


def _follow_text_link(path: Path) -> Path:
    """The file a symbolic link stored as text points to, else ``path`` itself.

    Copies made without symlink support (git with ``core.symlinks=false``, e.g. on Windows, or
    some archive and sync tools) turn a link into a tiny text file holding the target's path.
    Following it keeps a shared data folder working instead of failing deep inside NumPy.
    """
    if path.stat().st_size > 4096:
        return path
    try:
        target = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        return path
    if not target or "\n" in target:
        return path
    resolved = (path.parent / target).resolve()
    return resolved if resolved.is_file() and resolved != path.resolve() else path


def _open_archive(path: Path) -> np.lib.npyio.NpzFile:
    """``np.load`` of an offline copy, with a clear error when the file is not a NumPy archive."""
    try:
        archive = np.load(path)
    except (OSError, ValueError) as err:  # truncated download, text file, pickle, ...
        raise DataNotFoundError(
            f"{path} ({path.stat().st_size:,} bytes) is not a NumPy .npz archive ({err}). "
            "Replace it with a complete copy, or delete it so that the next folder is used."
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataNotFoundError(f"{path} holds one array, not an .npz archive of four")
    return archive


def _from_torchvision(
    name: str, folder: Path, train: bool, download: bool
) -> tuple[np.ndarray, np.ndarray]:
    from torchvision import datasets

    cls = {
        "mnist": datasets.MNIST,
        "fashion_mnist": datasets.FashionMNIST,
        "cifar10": datasets.CIFAR10,
    }[name]
    ds = cls(str(folder), train=train, download=download)
    return np.asarray(ds.data), np.asarray(ds.targets)


def _missing_message(spec: dict, folders: list[Path]) -> str:
    env = os.environ.get("DLBOOK_DATA")
    where = (
        f"DLBOOK_DATA={env}"
        if env
        else "DLBOOK_DATA is not set, so the default folder was used"
    )
    tv = ", ".join(spec["tv_files"])
    return (
        f"{spec['title']} is not in {os.pathsep.join(map(str, folders))} ({where}) and cannot be downloaded: "
        f"no network.\n"
        f"Fix: set the environment variable DLBOOK_DATA to a folder (or several, separated by "
        f"'{os.pathsep}') that holds either\n"
        f"  - torchvision's files: {tv}, or\n"
        f"  - {spec['npz']} with uint8 arrays x_train, y_train, x_test, y_test;\n"
        f"or run once with internet access so torchvision can download it."
    )


def _reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    """Can we open a TCP connection to ``host``? Bounded in time even when DNS itself hangs."""

    def connect() -> bool:
        with socket.create_connection((host, port), timeout=timeout):
            return True

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(connect).result(timeout=timeout + 1)
    except Exception:
        return False
    finally:
        pool.shutdown(wait=False)


def _augmentation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    from torchvision.transforms import v2

    size = 32 if name == "cifar10" else 28
    steps = [v2.RandomCrop(size, padding=4)]
    if name == "cifar10":
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)


# --- splitting and batching ------------------------------------------------------------------------


def load_train_test(
    name: str = "mnist", *, verbose: bool = True
) -> tuple[ImageArrayDataset, ImageArrayDataset, bool]:
    """The training and test splits of ``name`` and whether the training split is complete.

    Chapters set their quality gates by that flag: on a subset such as the 5,000-image offline MNIST copy the
    accuracies are lower than published ones, and the reader is told so here, where the data is loaded.
    """
    train, test = load_dataset(name, train=True), load_dataset(name, train=False)
    full = is_full_data(name, train)
    if verbose:
        title = _SPECS[name]["title"]
        print(f"data source: {train.source}")
        print(
            f"training images available: {len(train):,}  (complete {title} training split: {full})"
        )
        if not full:
            print(
                f"NOTE: this is a subset of the {title} training split (e.g. an offline copy), so accuracies\n"
                f"      are lower than with all {FULL_TRAIN_SIZE[name]:,} images; the quality gates take that into account."
            )
    return train, test, full


def affine_images(
    x: torch.Tensor,
    angle_deg: float | torch.Tensor = 0.0,
    shift_px: Sequence[float] | torch.Tensor = (0.0, 0.0),
    background: float = 0.0,
) -> torch.Tensor:
    """Rotate images ``(N, C, H, W)`` by ``angle_deg`` about their centre, then shift them by ``shift_px = (right,
    down)`` pixels; angles ``(N,)`` and shifts ``(N, 2)`` may differ per image.

    Pixels that come in from outside the image get the value ``background``: for *normalised* images a black
    pixel is ``(0 - mean) / std``, not 0, and padding with 0 would add a grey frame (``torch.roll`` would wrap the
    digit around the border instead). Used for the robustness tests of the CNN and CapsNet chapters.
    """
    n, _, h, w = x.shape
    angle = (
        torch.as_tensor(angle_deg, dtype=x.dtype, device=x.device).expand(n).deg2rad()
    )
    shift = torch.as_tensor(shift_px, dtype=x.dtype, device=x.device).expand(n, 2)
    cos, sin = angle.cos(), angle.sin()
    # affine_grid maps output coordinates to input ones, in units where the image spans [-1, 1]: input = R^T (out - t)
    tx, ty = 2 * shift[:, 0] / w, 2 * shift[:, 1] / h
    rot = torch.stack(
        [torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1
    )  # R^T (inverse rotation)
    offset = -(rot @ torch.stack([tx, ty], 1).unsqueeze(-1))
    grid = F.affine_grid(
        torch.cat([rot, offset], dim=2), list(x.shape), align_corners=False
    )
    return (
        F.grid_sample(
            x - background,
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        + background
    )


def take_subset(dataset: Dataset, n: int | None, seed: int = 0) -> Dataset:
    """A random subset of ``n`` items (all of them if ``n`` is None or not smaller): quick mode's data shrinker."""
    if n is None or n >= len(dataset):
        return dataset
    if n < 1:
        raise ValueError(f"subset size must be positive, got {n}")
    g = torch.Generator().manual_seed(seed)
    return Subset(dataset, torch.randperm(len(dataset), generator=g)[:n].tolist())


def train_val_split(
    dataset: Dataset, val_size: int | float, seed: int = 0
) -> tuple[Subset, Subset]:
    """Hold out a validation set (a count, or a fraction in (0, 1)) for model selection; the test set stays untouched."""
    n = len(dataset)
    n_val = int(round(val_size * n)) if isinstance(val_size, float) else int(val_size)
    if not 0 < n_val < n:
        raise ValueError(
            f"validation size {val_size!r} leaves no data on one side of a set of {n}"
        )
    g = torch.Generator().manual_seed(seed)
    train, val = random_split(dataset, [n - n_val, n_val], generator=g)
    return train, val


def make_loader(
    dataset: Dataset,
    batch_size: int = 128,
    *,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int | None = None,
    device: torch.device | None = None,
) -> DataLoader:
    """A ``DataLoader`` with sensible defaults: seeded shuffling, pinned memory and workers only on a GPU.

    On a CPU with two cores, worker processes cost more than they save for in-memory data sets.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = device or get_device()
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1) if device.type == "cuda" else 0
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
    )


class TensorLoader:
    """Batches cut straight from tensors already in memory (optionally on the GPU).

    For small images a ``DataLoader`` spends more time in per-image Python than the model spends
    computing; slicing whole batches removes that overhead. ``transform`` acts on a whole batch
    (e.g. :func:`random_crop_flip`). Works anywhere a ``DataLoader`` of ``(x, y)`` pairs does.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int = 128,
        *,
        shuffle: bool = False,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        drop_last: bool = False,
        seed: int = 0,
    ):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.transform, self.drop_last = (
            batch_size,
            shuffle,
            transform,
            drop_last,
        )
        self.generator = torch.Generator(device=x.device).manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        order = (
            torch.randperm(n, device=self.x.device, generator=self.generator)
            if self.shuffle
            else torch.arange(n, device=self.x.device)
        )
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            xb = self.x[idx]
            yield (self.transform(xb) if self.transform else xb), self.y[idx]


def random_crop_flip(
    x: torch.Tensor, padding: int = 4, flip: bool = True
) -> torch.Tensor:
    """Standard CIFAR augmentation on a whole batch ``(N, C, H, W)`` at once, on whatever device it lives.

    Each image is zero-padded by ``padding`` pixels, cropped back at a random offset, and mirrored with
    probability 1/2. (On normalised inputs the padding value 0 is the mean colour, not black.)
    """
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[
        :, None, :, None
    ]  # (N, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[
        :, None, None, :
    ]  # (N, 1, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    out = padded[batch, chans, rows, cols]
    if flip:
        mirror = torch.rand(n, device=x.device) < 0.5
        out = torch.where(mirror[:, None, None, None], out.flip(3), out)
    return out
