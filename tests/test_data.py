import os
import time

import numpy as np
import pytest
import torch

from helpers import (
    DataNotFoundError,
    ImageArrayDataset,
    TensorLoader,
    is_full_data,
    load_cifar10,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    make_loader,
    random_crop_flip,
    take_subset,
    train_val_split,
)
from helpers import data as data_module
from helpers.data import affine_images


@pytest.mark.parametrize(
    "loader, shape",
    [
        (load_mnist, (1, 28, 28)),
        (load_fashion_mnist, (1, 28, 28)),
        (load_cifar10, (3, 32, 32)),
    ],
)
def test_offline_archives_load_with_the_right_shapes(
    fake_data_dir, monkeypatch, loader, shape
):
    monkeypatch.setenv("DLBOOK_DATA", str(fake_data_dir))
    train, test = loader(train=True), loader(train=False)
    assert (len(train), len(test)) == (20, 8)
    x, y = train[0]
    assert x.shape == shape and x.dtype == torch.float32 and isinstance(y, int)
    assert "offline copy" in train.source and len(train.classes) == 10
    assert not is_full_data("mnist", train)


def test_normalisation_and_unnormalize_round_trip(fake_data_dir):
    ds = load_cifar10(root=fake_data_dir)
    x, _ = ds.tensors()
    raw = ds.images.float() / 255
    assert torch.allclose(ds.unnormalize(x), raw, atol=1e-6)
    assert torch.allclose(x[0], ds[0][0])


def test_augmentation_keeps_shape_and_changes_pixels(fake_data_dir):
    ds = load_cifar10(root=fake_data_dir, augment=True)
    outs = torch.stack([ds[0][0] for _ in range(8)])
    assert outs.shape == (8, 3, 32, 32)
    assert not all(torch.equal(outs[0], o) for o in outs[1:]), (
        "random crops/flips should vary"
    )


def test_no_copy_and_no_network_is_one_fast_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DLBOOK_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(
        data_module, "_reachable", lambda host, port, timeout=3.0: False
    )
    start = time.perf_counter()
    with pytest.raises(DataNotFoundError) as err:
        load_mnist()
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert (
        "DLBOOK_DATA" in message
        and "mnist.npz" in message
        and "MNIST/raw/train-images-idx3-ubyte" in message
    )
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_several_data_folders_are_searched_in_order(
    fake_data_dir, tmp_path, monkeypatch
):
    """DLBOOK_DATA=complete:subset serves each data set from the first folder that holds it."""
    first = tmp_path / "complete"
    first.mkdir()
    rng = np.random.default_rng(1)
    np.savez(
        first / "mnist.npz",
        x_train=rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        y_train=np.zeros(30, np.uint8),
        x_test=rng.integers(0, 256, (8, 28, 28), dtype=np.uint8),
        y_test=np.zeros(8, np.uint8),
    )
    monkeypatch.setenv(
        "DLBOOK_DATA",
        os.pathsep.join([str(tmp_path / "absent"), str(first), str(fake_data_dir)]),
    )
    assert (
        data_module.data_dirs()[1] == first
        and data_module.data_dir() == tmp_path / "absent"
    )
    assert (
        len(load_mnist()) == 30 and str(first) in load_mnist().source
    )  # from the second folder
    assert (
        len(load_cifar10()) == 20 and str(fake_data_dir) in load_cifar10().source
    )  # only in the third
    monkeypatch.setattr(
        data_module, "_reachable", lambda host, port, timeout=3.0: False
    )
    monkeypatch.setenv(
        "DLBOOK_DATA", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")])
    )
    with pytest.raises(DataNotFoundError, match="b"):
        load_mnist()


def test_a_link_stored_as_text_is_followed_and_a_broken_archive_is_named(
    fake_data_dir, tmp_path, monkeypatch
):
    """A symlink copied as a text file (git without symlinks) still serves the data set;
    a file that is no archive at all is one clear error naming it."""
    linked = tmp_path / "linked"
    linked.mkdir()
    target = os.path.relpath(fake_data_dir / "cifar10_jpeg.npz", linked)
    (linked / "cifar10_jpeg.npz").write_text(target + "\n")
    monkeypatch.setenv("DLBOOK_DATA", str(linked))
    assert len(load_cifar10()) == 20
    (linked / "cifar10_jpeg.npz").write_text("not an archive")
    with pytest.raises(DataNotFoundError, match="cifar10_jpeg.npz.*not a NumPy"):
        load_cifar10()


def test_unreachable_host_check_is_bounded_in_time():
    start = time.perf_counter()
    assert (
        data_module._reachable("192.0.2.1", 9, timeout=0.5) is False
    )  # TEST-NET-1: never answers
    assert time.perf_counter() - start < 3


def test_unknown_dataset_and_bad_arrays_are_value_errors():
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="uint8"):
        ImageArrayDataset(np.zeros((2, 28, 28), np.float32), [0, 1], (0.5,), (0.5,))
    with pytest.raises(ValueError, match="labels"):
        ImageArrayDataset(np.zeros((2, 28, 28), np.uint8), [0, 1, 2], (0.5,), (0.5,))
    with pytest.raises(ValueError, match="channel"):
        ImageArrayDataset(np.zeros((2, 32, 32, 3), np.uint8), [0, 1], (0.5,), (0.5,))


def test_real_offline_mnist(real_data_dir):
    train, test = (
        load_mnist(root=real_data_dir),
        load_mnist(train=False, root=real_data_dir),
    )
    assert len(test) == 10_000 and len(train) >= 5_000
    assert abs(float(test.tensors()[0].mean())) < 0.1, (
        "normalised data should be roughly zero-mean"
    )
    assert sorted(torch.bincount(test.labels).tolist()) == sorted(
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    )


def test_real_offline_cifar10(real_data_dir):
    if (
        not (real_data_dir / "cifar10_jpeg.npz").exists()
        and not (real_data_dir / "cifar-10-batches-py").exists()
    ):
        pytest.skip("no CIFAR-10 copy")
    test = load_cifar10(train=False, root=real_data_dir)
    assert len(test) == 10_000 and test[0][0].shape == (3, 32, 32)


def test_subset_and_split_are_seeded_and_disjoint(fake_data_dir):
    ds = load_mnist(root=fake_data_dir)
    assert take_subset(ds, None) is ds and take_subset(ds, 100) is ds
    a, b = take_subset(ds, 5, seed=1), take_subset(ds, 5, seed=1)
    assert a.indices == b.indices and len(a) == 5
    train, val = train_val_split(ds, 0.25, seed=0)
    assert (
        len(train) == 15 and len(val) == 5 and not set(train.indices) & set(val.indices)
    )
    with pytest.raises(ValueError):
        train_val_split(ds, 20)
    with pytest.raises(ValueError):
        take_subset(ds, 0)


def test_loaders_cover_every_sample_once():
    x, y = torch.arange(10).float().view(10, 1), torch.arange(10)
    loader = TensorLoader(x, y, batch_size=4, shuffle=True)
    seen = torch.cat([yb for _, yb in loader])
    assert len(loader) == 3 and sorted(seen.tolist()) == list(range(10))
    assert len(TensorLoader(x, y, batch_size=4, drop_last=True)) == 2
    with pytest.raises(ValueError):
        TensorLoader(x, y[:5])
    dl = make_loader(
        torch.utils.data.TensorDataset(x, y),
        batch_size=3,
        shuffle=True,
        device=torch.device("cpu"),
    )
    assert sorted(torch.cat([yb for _, yb in dl]).tolist()) == list(range(10))
    with pytest.raises(ValueError):
        make_loader(torch.utils.data.TensorDataset(x, y), batch_size=0)


def test_random_crop_flip_shifts_content():
    x = torch.zeros(64, 3, 8, 8)
    x[:, :, 4, 4] = 1.0
    out = random_crop_flip(x, padding=2)
    assert out.shape == x.shape
    positions = {
        tuple((img[0] == 1).nonzero()[0].tolist()) for img in out if (img[0] == 1).any()
    }
    assert len(positions) > 3, "crops should move the bright pixel around"
    assert torch.equal(random_crop_flip(x, padding=0, flip=False), x)


def test_affine_images_identity_shift_and_rotation():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 10, 12] = 1.0
    torch.testing.assert_close(affine_images(x), x)
    shifted = affine_images(x, shift_px=(3.0, 2.0))
    assert shifted[0, 0, 12, 15] == pytest.approx(1.0)
    turned = affine_images(affine_images(x, 90.0), -90.0)
    assert turned[0, 0, 10, 12] == pytest.approx(1.0, abs=1e-4)
    background = -0.42  # a normalised black pixel: what comes in from outside
    moved = affine_images(
        torch.full((1, 1, 8, 8), background), shift_px=(3.0, 0.0), background=background
    )
    torch.testing.assert_close(moved, torch.full_like(moved, background))


def test_load_train_test_flags_a_subset_and_says_so(capsys):
    try:
        train, test, full = data_module.load_train_test("mnist")
    except DataNotFoundError:
        pytest.skip("no MNIST copy here")
    out = capsys.readouterr().out
    assert len(test) == 10_000 and full == (len(train) == 60_000)
    assert "data source:" in out and ("NOTE" in out) == (not full)
