"""Capsule Network (Sabour, Frosst & Hinton 2017) written from the paper, in plain PyTorch.

A *capsule* is a group of neurons whose activity vector stands for one entity: its length is the
probability that the entity is present, its direction the entity's pose (position, stroke thickness,
skew, ...). Lower capsules vote for the pose of higher capsules through learned matrices, and
*routing by agreement* sends each vote preferentially to the higher capsule it agrees with.

The pieces, in the order of the paper: :func:`squash` (the capsule non-linearity), :class:`PrimaryCaps`
(a convolution cut into 8-D capsules), :func:`dynamic_routing` and :class:`DigitCaps` (one 16-D capsule
per class), :class:`CapsNet` (with the masked reconstruction decoder), :func:`margin_loss` and
:func:`capsule_loss`. (The robustness tests shift and rotate images with :func:`helpers.data.affine_images`.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def squash(s: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """``v = |s|^2 / (1 + |s|^2) * s / |s|``: keeps the direction, maps the length into [0, 1).

    Short vectors shrink to almost zero and long ones to just below one, so a length can be read as a
    probability. ``eps`` keeps the gradient finite for an all-zero vector.
    """
    sq_norm = (s * s).sum(dim=dim, keepdim=True)
    return sq_norm / (1.0 + sq_norm) * s / torch.sqrt(sq_norm + eps)


def dynamic_routing(
    u_hat: torch.Tensor, iterations: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Routing by agreement (Procedure 1 of the paper).

    ``u_hat`` holds the predictions ``u_hat[b, i, j] = W_ij u_i`` of every input capsule ``i`` for every
    output capsule ``j``, shape ``(B, n_in, n_out, d_out)``. The logits ``b_ij`` start at zero (every input
    splits its vote evenly); each iteration forms ``s_j = sum_i c_ij u_hat_j|i`` with ``c_ij = softmax_j(b_ij)``,
    squashes it to ``v_j`` and raises ``b_ij`` by the agreement ``u_hat_j|i . v_j``.
    Returns the output capsules ``(B, n_out, d_out)`` and the final coupling coefficients ``(B, n_in, n_out)``.
    """
    if iterations < 1:
        raise ValueError(f"routing needs at least one iteration, got {iterations}")
    logits = torch.zeros(u_hat.shape[:3], device=u_hat.device, dtype=u_hat.dtype)
    for r in range(iterations):
        c = logits.softmax(dim=2)  # each input capsule distributes over output capsules
        v = squash((c.unsqueeze(-1) * u_hat).sum(dim=1))  # (B, n_out, d_out)
        if r < iterations - 1:
            logits = logits + (u_hat * v.unsqueeze(1)).sum(dim=-1)
    return v, c


class PrimaryCaps(nn.Module):
    """A convolution whose ``channels * dim`` output maps are read as ``channels`` capsule types of ``dim``
    numbers at every position: ``32 x 6 x 6 = 1152`` capsules of 8-D for MNIST in the paper."""

    def __init__(
        self,
        in_channels: int,
        channels: int = 32,
        dim: int = 8,
        kernel_size: int = 9,
        stride: int = 2,
    ):
        super().__init__()
        self.channels, self.dim = channels, dim
        self.conv = nn.Conv2d(in_channels, channels * dim, kernel_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)  # (B, channels*dim, H, W)
        b, _, h, w = out.shape
        out = out.view(b, self.channels, self.dim, h, w).permute(0, 1, 3, 4, 2)
        return squash(out.reshape(b, self.channels * h * w, self.dim))


class DigitCaps(nn.Module):
    """One ``out_dim`` capsule per class, computed from every input capsule by a learned pose matrix
    ``W_ij`` (``out_dim x in_dim``) and :func:`dynamic_routing`."""

    def __init__(
        self,
        n_in: int,
        in_dim: int = 8,
        n_out: int = 10,
        out_dim: int = 16,
        iterations: int = 3,
        routing: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
    ):
        super().__init__()
        self.iterations = iterations
        self.routing = routing or dynamic_routing  # a chapter may hand in its own
        self.W = nn.Parameter(0.01 * torch.randn(n_in, n_out, out_dim, in_dim))

    def predictions(self, u: torch.Tensor) -> torch.Tensor:
        """The votes ``u_hat[b, i, j] = W_ij u[b, i]``, shape ``(B, n_in, n_out, out_dim)``."""
        return torch.einsum("ijdk,bik->bijd", self.W, u)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.routing(self.predictions(u), self.iterations)


class CapsNet(nn.Module):
    """The three-layer CapsNet: ``conv 9x9 -> PrimaryCaps -> DigitCaps``, plus a reconstruction decoder.

    Defaults are the paper's MNIST model (256 conv channels, 32 primary capsule types of 8-D, 16-D digit
    capsules, 3 routing iterations, decoder 512-1024-784). Smaller ``conv_channels`` / ``primary_channels``
    give a reduced model for CPU runs. The number of primary capsules is measured with a dummy input.
    ``forward`` returns the capsule lengths (class scores), the reconstruction and the digit capsules.
    ``routing`` (default :func:`dynamic_routing`) is the routing procedure: the chapter hands in its own.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        conv_channels: int = 256,
        primary_channels: int = 32,
        primary_dim: int = 8,
        digit_dim: int = 16,
        routing_iterations: int = 3,
        decoder_hidden: Sequence[int] = (512, 1024),
        routing: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
    ):
        super().__init__()
        self.num_classes, self.image_shape = (
            num_classes,
            (in_channels, image_size, image_size),
        )
        self.conv = nn.Sequential(nn.Conv2d(in_channels, conv_channels, 9), nn.ReLU())
        self.primary = PrimaryCaps(conv_channels, primary_channels, primary_dim)
        with torch.no_grad():
            n_primary = self.primary(
                self.conv(torch.zeros(1, *self.image_shape))
            ).shape[1]
        self.digits = DigitCaps(
            n_primary, primary_dim, num_classes, digit_dim, routing_iterations, routing
        )
        layers: list[nn.Module] = []
        width = num_classes * digit_dim
        for h in decoder_hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers += [
            nn.Linear(width, in_channels * image_size * image_size),
            nn.Sigmoid(),
        ]
        self.decoder = nn.Sequential(*layers)

    def capsules(self, x: torch.Tensor) -> torch.Tensor:
        """The digit capsules ``(B, num_classes, digit_dim)`` of images ``x`` in [0, 1]."""
        v, _ = self.digits(self.primary(self.conv(x)))
        return v

    def decode(self, v: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Reconstruct images from the digit capsules with every capsule but the ``labels`` one masked to 0."""
        mask = F.one_hot(labels, self.num_classes).to(v.dtype).unsqueeze(-1)
        return self.decoder((v * mask).flatten(1)).view(-1, *self.image_shape)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Lengths (class scores), reconstruction (masked by ``labels`` in training, by the longest capsule
        otherwise) and the digit capsules."""
        v = self.capsules(x)
        lengths = v.norm(dim=-1)
        recon = self.decode(v, labels if labels is not None else lengths.argmax(dim=1))
        return lengths, recon, v


def margin_loss(
    lengths: torch.Tensor,
    targets: torch.Tensor,
    m_plus: float = 0.9,
    m_minus: float = 0.1,
    lam: float = 0.5,
) -> torch.Tensor:
    """``L_k = T_k max(0, m+ - |v_k|)^2 + lam (1 - T_k) max(0, |v_k| - m-)^2``, summed over classes,
    averaged over the batch. A separate loss per class allows several digits in one image; ``lam`` stops
    the absent classes from shrinking every capsule early in training."""
    t = F.one_hot(targets, lengths.shape[1]).to(lengths.dtype)
    loss = (
        t * F.relu(m_plus - lengths) ** 2
        + lam * (1 - t) * F.relu(lengths - m_minus) ** 2
    )
    return loss.sum(dim=1).mean()


def capsule_loss(
    lengths: torch.Tensor,
    recon: torch.Tensor,
    images: torch.Tensor,
    targets: torch.Tensor,
    recon_weight: float = 0.0005,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Margin loss plus ``recon_weight`` times the summed squared reconstruction error (the paper's 0.0005,
    small so that reconstruction regularises the capsules without dominating classification).
    Returns the total, the margin part and the reconstruction part."""
    margin = margin_loss(lengths, targets)
    recon_err = ((recon - images) ** 2).flatten(1).sum(dim=1).mean()
    return margin + recon_weight * recon_err, margin, recon_err
