"""Model architectures shared between chapters.

A chapter shows the code of the model it teaches on its own page; the classes here are the same
models kept importable so later chapters (and tests) can reuse them, e.g. the capsule-network
chapter compares against :class:`CNNModel`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters: the usual measure of a model's size."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class MLP(nn.Module):
    """Multi-layer perceptron: flatten, then ``Linear -> ReLU`` blocks, then a linear read-out.

    ``MLP(784, 10)`` is the MLP chapter's model (one hidden layer of 64 units). ``hidden`` sets the
    widths of the hidden layers and ``dropout`` adds dropout after each, for regularisation.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        hidden: Sequence[int] = (64,),
        dropout: float = 0.0,
    ):
        super().__init__()
        if input_dim < 1 or output_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(
                f"layer sizes must be positive: input {input_dim}, hidden {tuple(hidden)}, output {output_dim}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = input_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, output_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNNModel(nn.Module):
    """The CNN chapter's model (LeNet-like): two ``conv 3x3 -> ReLU -> max-pool 2`` stages and two linear layers.

    For 28x28 MNIST digits the feature map entering the classifier is 32x5x5; it is measured with a
    dummy forward pass instead of being hard-coded, so other image sizes and channel counts work.
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28
    ):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        with torch.no_grad():
            flat = self.features(
                torch.zeros(1, in_channels, image_size, image_size)
            ).numel()
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(), nn.Linear(128, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def conv_bn(c_in: int, c_out: int, pool: bool = False) -> nn.Sequential:
    """``conv 3x3 -> batch norm -> ReLU`` (then a 2x2 max-pool): the building block of :class:`ResNet9`."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """``x + f(x)``: the skip connection that lets deep networks train (He et al., 2016)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.inner(x)


class ResNet9(nn.Module):
    """A 9-layer residual CNN for 32x32 images, the fast CIFAR-10 design popularised by DAWNBench entries.

    Widths are ``width, 2w, 4w, 8w`` (``width=64`` is the standard model, 6.6 M parameters); a smaller
    ``width`` trades accuracy for speed, which is how quick mode keeps CPU runs short.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 64):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            conv_bn(in_channels, w),
            conv_bn(w, 2 * w, pool=True),
            Residual(nn.Sequential(conv_bn(2 * w, 2 * w), conv_bn(2 * w, 2 * w))),
            conv_bn(2 * w, 4 * w, pool=True),
            conv_bn(4 * w, 8 * w, pool=True),
            Residual(nn.Sequential(conv_bn(8 * w, 8 * w), conv_bn(8 * w, 8 * w))),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Linear(8 * w, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
