"""Run settings shared by every chapter: device, seeding, quick mode.

Three environment variables steer a run without editing a notebook:

* ``DLBOOK_QUICK=1`` shrinks data and epochs so the whole book runs on a 2-core CPU in minutes
  (CI uses it). Unset, a chapter runs in *full mode*: the numbers the website shows.
* ``DLBOOK_DEVICE`` forces a device (``cpu``, ``cuda``, ``cuda:1``, ``mps``); unset, the fastest one present wins.
* ``DLBOOK_DATA`` names the data folder (see :mod:`helpers.data`).
"""

from __future__ import annotations

import os
import random
import sys
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}


def is_quick() -> bool:
    """True when ``DLBOOK_QUICK`` asks for the small, fast version of every experiment."""
    return os.environ.get("DLBOOK_QUICK", "").strip().lower() in _TRUE


def mode() -> str:
    """``"quick"`` or ``"full"``: printed by chapters so a reader knows which numbers they are looking at."""
    return "quick" if is_quick() else "full"


def pick(full: T, quick: T) -> T:
    """Choose a setting by mode, e.g. ``epochs = pick(full=20, quick=2)``.

    Keeping both values side by side in the notebook shows the reader exactly what quick mode changes.
    """
    return quick if is_quick() else full


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``prefer``, else ``DLBOOK_DEVICE``, else CUDA, then Apple MPS, then CPU.

    An explicit request for a device that is not present raises ``ValueError`` instead of silently
    falling back, so a run never claims GPU numbers it did not get.
    """
    wanted = prefer if prefer is not None else os.environ.get("DLBOOK_DEVICE") or None
    if wanted is not None:
        device = torch.device(wanted)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device {device} requested, but CUDA is not available on this machine"
            )
        if device.type == "mps" and not _mps_available():
            raise ValueError(
                f"device {device} requested, but Apple MPS is not available on this machine"
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def seed_everything(
    seed: int = 0, deterministic: bool = True, tf32: bool = False
) -> int:
    """Seed Python, NumPy and PyTorch (all devices) so a chapter re-runs to the same numbers.

    With ``deterministic=True`` cuDNN picks deterministic kernels too. Some GPU kernels have no
    deterministic version; we do not force ``torch.use_deterministic_algorithms`` because it would
    make those chapters crash rather than be slightly non-reproducible on GPU. On CPU runs repeat exactly.

    TF32 (NVIDIA's float32 mode with a 10-bit mantissa) is set explicitly rather than left to PyTorch's
    defaults, which differ between matrix products (off) and cuDNN convolutions and RNNs (on). Off by default,
    so that float32 means float32 on every device and a hand-written layer can be compared with ``torch.nn``;
    training that wants GPU speed asks for it through mixed precision (``helpers.fit`` does) or ``tf32=True``.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    return seed


def in_colab() -> bool:
    """True inside Google Colab, where the setup cell installs ``helpers`` from the repository."""
    return "google.colab" in sys.modules


def describe_run(device: torch.device | None = None) -> str:
    """One line saying what this run is: mode, device, library versions. Printed at the top of every chapter."""
    device = device or get_device()
    name = device.type
    if device.type == "cuda":
        name = f"cuda ({torch.cuda.get_device_name(device)})"
    return (
        f"mode={mode()}  device={name}  torch={torch.__version__}  "
        f"threads={torch.get_num_threads()}"
    )
