"""Shared fixtures: every test runs quick, seeded and offline-safe."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_configure(config):
    """One intra-op thread per test process. The suite runs one xdist worker per core on networks of a few thousand
    weights: extra threads buy nothing there, and two workers with two threads each oversubscribe two cores so that
    every tiny operation waits for a busy core (tests/test_a2c.py took 69 s that way, 4 s with one thread)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seeded(monkeypatch):
    from helpers import seed_everything

    monkeypatch.delenv("DLBOOK_DEVICE", raising=False)
    seed_everything(0)


@pytest.fixture
def fake_data_dir(tmp_path: Path) -> Path:
    """A data folder holding tiny synthetic archives in the offline-copy format (shapes of the real sets)."""
    rng = np.random.default_rng(0)
    for name, shape in (
        ("mnist.npz", (28, 28)),
        ("fashion_mnist.npz", (28, 28)),
        ("cifar10_jpeg.npz", (32, 32, 3)),
    ):
        np.savez(
            tmp_path / name,
            x_train=rng.integers(0, 256, (20, *shape), dtype=np.uint8),
            y_train=rng.integers(0, 10, 20, dtype=np.uint8),
            x_test=rng.integers(0, 256, (8, *shape), dtype=np.uint8),
            y_test=rng.integers(0, 10, 8, dtype=np.uint8),
        )
    return tmp_path


@pytest.fixture
def real_data_dir() -> Path:
    """The verified offline copy (DLBOOK_DATA or ../shared/data); tests that need it skip where it is absent."""
    env = os.environ.get("DLBOOK_DATA", str(SHARED_DATA))
    for part in env.split(os.pathsep):  # DLBOOK_DATA may list several folders
        path = Path(part).expanduser().resolve()  # absolute: subprocesses cd
        if (path / "mnist.npz").exists() or (path / "MNIST").exists():
            return path
    pytest.skip(f"no offline data copy in {env}")
