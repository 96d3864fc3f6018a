"""Unit tests for helpers.generative: shapes, PSNR on known arrays, Fréchet distance in closed form. Runs in seconds."""

import math

import numpy as np
import pytest
import torch

from helpers import CNNModel
from helpers import generative as gen


def test_autoencoder_shapes_and_range():
    x = torch.rand(5, 1, 28, 28)
    for model in (gen.Autoencoder(), gen.ConvAutoencoder()):
        out = model(x)
        assert out.shape == x.shape
        assert model.encode(x).shape == (5, 64)
        assert 0.0 <= out.min() and out.max() <= 1.0  # Sigmoid output: pixels in [0, 1]
    assert gen.Autoencoder(latent_dim=2).encode(x).shape == (5, 2)
    colour = gen.ConvAutoencoder(in_channels=3, image_size=32)
    assert colour(torch.rand(2, 3, 32, 32)).shape == (2, 3, 32, 32)
    assert gen.Autoencoder(input_dim=3072)(torch.rand(2, 3, 32, 32)).shape == (
        2,
        3,
        32,
        32,
    )


def test_gan_shapes():
    z = torch.randn(6, 16)
    g, d = gen.Generator(16, 784), gen.Discriminator(784)
    fake = g(z)
    assert fake.shape == (6, 784) and fake.abs().max() <= 1.0  # Tanh output
    assert d(fake).shape == (6,) and d(fake.view(6, 1, 28, 28)).shape == (6,)
    dg, dd = gen.DCGANGenerator(16, width=8), gen.DCGANDiscriminator(width=8)
    img = dg(z)
    assert img.shape == (6, 1, 28, 28)
    assert dd(img).shape == (6,)


def test_train_autoencoder_lowers_the_loss():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28) * 0.2
    losses = gen.train_autoencoder(
        gen.Autoencoder(), x, epochs=5, batch_size=32, lr=1e-2
    )
    assert len(losses) == 5 and losses[-1] < losses[0]
    calls = []
    gen.train_autoencoder(
        gen.Autoencoder(),
        x,
        epochs=2,
        noise_std=0.3,
        on_epoch_end=lambda e, m: calls.append(e),
    )
    assert calls == [0, 1]
    assert gen.reconstruction_errors(gen.Autoencoder(), x).shape == (64,)


def test_add_noise_stays_in_range():
    x = torch.rand(10, 1, 4, 4)
    noisy = gen.add_noise(x, 0.5, torch.Generator().manual_seed(0))
    assert noisy.min() >= 0 and noisy.max() <= 1 and not torch.equal(noisy, x)


def test_psnr_known_values():
    x = torch.zeros(2, 1, 4, 4)
    y = torch.full((2, 1, 4, 4), 0.1)  # MSE 0.01 -> 20 dB
    assert torch.allclose(gen.psnr(y, x), torch.tensor([20.0, 20.0]))
    y2 = y.clone()
    y2[1] = 0.01  # MSE 1e-4 -> 40 dB
    assert torch.allclose(gen.psnr(y2, x), torch.tensor([20.0, 40.0]))
    assert torch.allclose(
        gen.psnr(torch.full((1, 3), 25.5), torch.zeros(1, 3), data_range=255.0),
        torch.tensor([20.0]),
    )
    assert math.isinf(gen.psnr(x, x)[0].item())
    with pytest.raises(ValueError):
        gen.psnr(x, torch.zeros(2, 1, 4, 5))


def test_frechet_distance_one_dimensional_closed_form():
    # For 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2
    d = gen.frechet_distance(
        np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]])
    )
    assert d == pytest.approx(9.0 + 1.0)


def test_frechet_distance_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 1.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert gen.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(
        expected
    )
    assert gen.frechet_distance(mu1, np.diag(s1), mu1, np.diag(s1)) == pytest.approx(
        0.0, abs=1e-9
    )


def test_frechet_distance_of_samples_and_singular_covariances():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    b = rng.normal(loc=1.0, size=(4000, 3))
    d = gen.frechet_distance(*gen.gaussian_stats(a), *gen.gaussian_stats(b))
    assert d == pytest.approx(
        3.0, abs=0.15
    )  # means differ by 1 in each of 3 dimensions
    few = rng.normal(size=(3, 10))  # fewer samples than dimensions: singular covariance
    assert np.isfinite(
        gen.frechet_distance(
            *gen.gaussian_stats(few), *gen.gaussian_stats(few[::-1] + 0.5)
        )
    )
    with pytest.raises(ValueError):
        gen.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_classifier_features_histogram_and_coverage():
    model = CNNModel()
    feats, preds = gen.classifier_features(
        model, torch.randn(7, 1, 28, 28), batch_size=3
    )
    assert feats.shape == (7, 128) and preds.shape == (7,)
    hist = gen.class_histogram(torch.tensor([0, 0, 1, 9, 9, 9]))
    assert hist.tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert gen.classes_covered(hist, min_share=0.2) == 2
    assert gen.classes_covered(np.ones(10), min_share=0.05) == 10


def test_frechet_distance_matches_scipy_sqrtm_on_full_covariances():
    from scipy import linalg

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2, m1, m2 = a @ a.T, b @ b.T, rng.normal(size=5), rng.normal(size=5)
    reference = np.sum((m1 - m2) ** 2) + np.trace(
        s1 + s2 - 2 * np.real(linalg.sqrtm(s1 @ s2))
    )
    assert gen.frechet_distance(m1, s1, m2, s2) == pytest.approx(reference, rel=1e-8)
