"""Autoencoders, GANs and the numbers that judge them, for the Autoencoder and GAN chapters.

Import it on its own: ``from helpers import generative as gen``. Images here live in pixel units, not in the
normalised units of :mod:`helpers.data`: autoencoders reconstruct ``[0, 1]`` pixels (Sigmoid output), GAN
generators produce ``[-1, 1]`` pixels (Tanh output), so a reconstruction error or a PSNR means the same thing
for every model.

Public API
----------
Models
    ``Autoencoder(input_dim=784, hidden_dim=128, latent_dim=64)``        MLP, Sigmoid output, ``encode``/``decode``
    ``ConvAutoencoder(in_channels=1, latent_dim=64, image_size=28)``      strided convs, same bottleneck size
    ``Generator(noise_dim, output_dim)`` / ``Discriminator(input_dim)``   MLP GAN (Tanh images, logit output)
    ``DCGANGenerator(noise_dim=64, channels=1, width=64)`` / ``DCGANDiscriminator(channels=1, width=64)``  28x28
Training and data
    ``add_noise(x, std, generator=None)``: Gaussian pixel noise, clipped back to [0, 1]
    ``train_autoencoder(model, x, *, epochs, ...) -> list[float]`` (training loss per epoch)
    ``reconstruction_errors(model, x) -> Tensor (N,)`` (mean squared error per image)
Metrics
    ``psnr(x, y, data_range=1.0) -> Tensor (N,)`` in dB, per image
    ``gaussian_stats(features) -> (mu, sigma)``; ``frechet_distance(mu1, sigma1, mu2, sigma2) -> float``
    ``classifier_features(model, x) -> (features, predictions)`` for a :class:`helpers.CNNModel`
    ``class_histogram(predictions, num_classes=10)``; ``classes_covered(hist, min_share=0.02)``
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

# --- models -----------------------------------------------------------------------------------------


class Autoencoder(nn.Module):
    """The classic fully connected autoencoder, 784 -> 128 -> 64 -> 128 -> 784.

    The code layer has no activation, so a 2-D bottleneck (``latent_dim=2``) can spread out freely for plots.
    The Sigmoid output matches pixels in [0, 1]. ``forward`` accepts images of any shape with ``input_dim``
    values each and returns reconstructions of the same shape, so it drops into image code unchanged.
    """

    def __init__(
        self, input_dim: int = 784, hidden_dim: int = 128, latent_dim: int = 64
    ):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(input_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, input_dim),
            nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x)).view_as(x)


class ConvAutoencoder(nn.Module):
    """A convolutional autoencoder with the *same* bottleneck size as :class:`Autoencoder`.

    Two stride-2 convolutions halve the image twice (28 -> 14 -> 7), a linear layer maps to the code, and
    transposed convolutions mirror the path back. Keeping ``latent_dim`` equal makes the comparison with
    the MLP about the architecture (locality, weight sharing), not about a wider code. The flatten size is
    measured with a dummy pass, so 32x32 colour images work too.
    """

    def __init__(
        self, in_channels: int = 1, latent_dim: int = 64, image_size: int = 28
    ):
        super().__init__()
        conv = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        with torch.no_grad():
            shape = conv(torch.zeros(1, in_channels, image_size, image_size)).shape[1:]
        flat = int(np.prod(shape))
        self.encoder = nn.Sequential(conv, nn.Flatten(), nn.Linear(flat, latent_dim))
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, flat),
            nn.ReLU(),
            nn.Unflatten(1, tuple(shape)),
            nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(
                32, in_channels, 3, stride=2, padding=1, output_padding=1
            ),
            nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class Generator(nn.Module):
    """MLP generator: noise ``z`` (``noise_dim``) -> an image with ``output_dim`` pixels in [-1, 1] (Tanh)."""

    def __init__(
        self, noise_dim: int, output_dim: int, hidden: tuple[int, ...] = (256, 512)
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = noise_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            width = h
        self.net = nn.Sequential(*layers, nn.Linear(width, output_dim), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """MLP discriminator: an image (any shape, ``input_dim`` pixels) -> one logit, "real" when positive.

    It returns the logit, not a probability, so the losses can use ``binary_cross_entropy_with_logits``,
    which stays accurate when the discriminator is very sure (a Sigmoid followed by a log would round to -inf).
    """

    def __init__(self, input_dim: int, hidden: tuple[int, ...] = (512, 256)):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = input_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            width = h
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class DCGANGenerator(nn.Module):
    """DCGAN-style generator for 28x28 images: linear to 7x7 maps, two stride-2 transposed convolutions.

    Batch normalisation and ReLU inside, Tanh at the output, no pooling: the recipe of Radford et al. (2016),
    scaled down so that it trains on a CPU.
    """

    def __init__(self, noise_dim: int = 64, channels: int = 1, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(noise_dim, 2 * width * 7 * 7, bias=False),
            nn.BatchNorm1d(2 * width * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (2 * width, 7, 7)),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    """DCGAN-style discriminator: stride-2 convolutions with LeakyReLU (no pooling), one logit out."""

    def __init__(self, channels: int = 1, width: int = 64, image_size: int = 28):
        super().__init__()
        conv = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = conv(torch.zeros(2, channels, image_size, image_size)).shape[1]
        self.net = nn.Sequential(conv, nn.Linear(flat, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


# --- autoencoder training ---------------------------------------------------------------------------


def add_noise(
    x: torch.Tensor, std: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x`` plus Gaussian noise of standard deviation ``std``, clipped to the valid pixel range [0, 1]."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + std * noise).clamp(0.0, 1.0)


def train_autoencoder(
    model: nn.Module,
    x: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    noise_std: float = 0.0,
    seed: int = 0,
    desc: str = "autoencoder",
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
) -> list[float]:
    """Train ``model`` to output the clean image ``x`` (pixels in [0, 1]) with the mean squared error and Adam.

    With ``noise_std > 0`` the *input* is corrupted by fresh noise every batch while the target stays clean:
    a denoising autoencoder. ``on_epoch_end(epoch, model)`` lets a chapter measure something after every
    epoch (e.g. a linear probe) without rewriting the loop. Returns the mean training loss of every epoch.
    """
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator(device=x.device).manual_seed(seed)
    losses = []
    for epoch in tqdm(range(epochs), desc=desc, leave=False):
        model.train()
        order = torch.randperm(len(x), generator=g, device=x.device)
        total = 0.0
        for i in range(0, len(x), batch_size):
            clean = x[order[i : i + batch_size]]
            inputs = add_noise(clean, noise_std, g) if noise_std > 0 else clean
            loss = nn.functional.mse_loss(model(inputs.to(device)), clean.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(clean)
        losses.append(total / len(x))
        if on_epoch_end is not None:
            model.eval()
            on_epoch_end(epoch, model)
    model.eval()
    return losses


@torch.no_grad()
def reconstruction_errors(
    model: nn.Module, x: torch.Tensor, batch_size: int = 1000
) -> torch.Tensor:
    """Mean squared reconstruction error of every image: the anomaly score of an autoencoder."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        ((model(xb.to(device)) - xb.to(device)) ** 2).flatten(1).mean(1).cpu()
        for xb in x.split(batch_size)
    ]
    return torch.cat(out)


# --- metrics ----------------------------------------------------------------------------------------


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, ``10 log10(data_range^2 / MSE)`` in dB (higher is better).

    Computed per image (then averaged by the caller) because that is what a viewer judges; +10 dB means the
    squared error fell tenfold. Identical images give ``inf``.
    """
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    mse = ((x.float() - y.float()) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def gaussian_stats(
    features: torch.Tensor | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean vector and covariance matrix of feature rows ``(N, D)``, in float64 for a stable square root."""
    f = np.asarray(torch.as_tensor(features).detach().cpu().double())
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need at least two feature rows (N, D), got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Squared Fréchet (2-Wasserstein) distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``: the formula behind FID.
    The trace of the matrix square root equals ``sum(sqrt(eig(A sigma2 A)))`` with ``A = sigma1^(1/2)``, and
    ``A sigma2 A`` is symmetric positive semi-definite, so we compute it with two symmetric eigen-decompositions
    (negative round-off eigenvalues clipped to 0). Unlike a general ``sqrtm`` of ``sigma1 @ sigma2`` this stays
    accurate when the covariances are singular, which is the rule for ReLU features with dead units.
    """
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, float)),
        np.atleast_1d(np.asarray(mu2, float)),
    )
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, float)),
        np.atleast_2d(np.asarray(sigma2, float)),
    )
    if (
        mu1.shape != mu2.shape
        or sigma1.shape != sigma2.shape
        or sigma1.shape != (len(mu1), len(mu1))
    ):
        raise ValueError(
            "means and covariances must have matching shapes (D,) and (D, D)"
        )

    def sym(m):
        return (m + m.T) / 2

    w, v = np.linalg.eigh(sym(sigma1))
    root1 = (v * np.sqrt(w.clip(min=0))) @ v.T
    trace_covmean = np.sqrt(
        np.linalg.eigvalsh(sym(root1 @ sigma2 @ root1)).clip(min=0)
    ).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_covmean)


@torch.no_grad()
def classifier_features(
    model: nn.Module, x: torch.Tensor, batch_size: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate-layer features and predicted classes of a :class:`helpers.CNNModel` for inputs ``x``.

    The features (the activations right before the last linear layer) are what the Fréchet distance
    compares; ``x`` must already be normalised the way the classifier was trained.
    """
    model.eval()
    device = next(model.parameters()).device
    feats, preds = [], []
    for xb in x.split(batch_size):
        h = model.classifier[:-1](model.features(xb.to(device)))
        feats.append(h.cpu())
        preds.append(model.classifier[-1](h).argmax(1).cpu())
    return torch.cat(feats), torch.cat(preds)


def class_histogram(
    predictions: torch.Tensor | np.ndarray, num_classes: int = 10
) -> np.ndarray:
    """How many samples fall into each class: mode coverage of a generator, as judged by a classifier."""
    p = np.asarray(torch.as_tensor(predictions).cpu()).astype(int).ravel()
    return np.bincount(p, minlength=num_classes)[:num_classes]


def classes_covered(hist: np.ndarray, min_share: float = 0.02) -> int:
    """Number of classes holding at least ``min_share`` of the samples (a uniform generator gets all of them)."""
    hist = np.asarray(hist, float)
    return int((hist / hist.sum() >= min_share).sum())
