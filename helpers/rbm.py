"""Restricted Boltzmann Machines and Deep Belief Networks in plain PyTorch.

An RBM is an energy-based model of binary visible units ``v`` and binary hidden units ``h``:
``E(v, h) = -b^T v - c^T h - h^T W v``. Because there are no visible-visible or hidden-hidden
connections, both conditionals factorise (``p(h|v)`` and ``p(v|h)`` are products of sigmoids), so
block Gibbs sampling is two matrix products, which is why the whole module is a few tensor operations
and runs on any device PyTorch supports.

Training uses contrastive divergence (CD-k, Hinton 2002) or persistent CD (Tieleman 2008). We write the
update as the gradient of ``mean F(v_data) - mean F(v_model)``, with ``F`` the free energy: its gradient
with respect to ``W, b, c`` is exactly the CD estimate of the negative log-likelihood gradient (with binary
negative samples; :func:`cd_step` uses their probabilities, less noisy and slightly biased), so any
PyTorch optimiser (momentum, weight decay) can apply it.

A DBN (Hinton, Osindero & Teh 2006) is a stack of RBMs trained greedily, each on the hidden
probabilities of the one below; :meth:`DBN.to_classifier` turns the stack into a sigmoid MLP for
supervised fine-tuning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm


class RBM(nn.Module):
    """A Bernoulli-Bernoulli RBM with ``n_visible`` visible and ``n_hidden`` hidden units.

    ``W`` has shape ``(n_hidden, n_visible)`` so that ``F.linear(v, W, c)`` gives the hidden pre-activations
    and each row of ``W`` is one hidden unit's *filter*, viewable as an image.
    """

    def __init__(self, n_visible: int, n_hidden: int, init_std: float = 0.01):
        super().__init__()
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(
                f"sizes must be positive, got {n_visible} visible and {n_hidden} hidden units"
            )
        self.W = nn.Parameter(torch.randn(n_hidden, n_visible) * init_std)
        self.v_bias = nn.Parameter(torch.zeros(n_visible))
        self.h_bias = nn.Parameter(torch.zeros(n_hidden))

    @property
    def n_visible(self) -> int:
        return self.W.shape[1]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[0]

    # --- conditionals and sampling --------------------------------------------------------------------
    def p_h(self, v: torch.Tensor) -> torch.Tensor:
        """``p(h_j = 1 | v) = sigmoid(c_j + W_j v)`` for every hidden unit: the RBM's features."""
        return torch.sigmoid(F.linear(v, self.W, self.h_bias))

    def p_v(self, h: torch.Tensor) -> torch.Tensor:
        """``p(v_i = 1 | h) = sigmoid(b_i + (W^T h)_i)``: the same weights used top-down."""
        return torch.sigmoid(F.linear(h, self.W.t(), self.v_bias))

    def sample_h(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden probabilities and a binary sample of them."""
        p = self.p_h(v)
        return p, torch.bernoulli(p)

    def sample_v(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Visible probabilities and a binary sample of them."""
        p = self.p_v(h)
        return p, torch.bernoulli(p)

    def gibbs(self, v: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` steps of block Gibbs sampling ``v -> h -> v``; returns the last binary sample and its probabilities."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        p_v = v
        for _ in range(k):
            _, h = self.sample_h(v)
            p_v, v = self.sample_v(h)
        return v, p_v

    # --- energies -------------------------------------------------------------------------------------
    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``E(v, h) = -b^T v - c^T h - h^T W v`` for every row of a batch."""
        return (
            -(v @ self.v_bias)
            - (h @ self.h_bias)
            - (F.linear(v, self.W) * h).sum(dim=1)
        )

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``F(v) = -log sum_h exp(-E(v, h)) = -b^T v - sum_j softplus(c_j + W_j v)``.

        Summing out the binary hidden units in closed form is what makes ``p(v) = exp(-F(v)) / Z`` tractable
        up to the partition function ``Z``.
        """
        return -(v @ self.v_bias) - F.softplus(F.linear(v, self.W, self.h_bias)).sum(
            dim=1
        )

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """Features of ``v``: the hidden probabilities (what the next RBM of a DBN is trained on)."""
        return self.p_h(v)

    @torch.no_grad()
    def reconstruct(self, v: torch.Tensor) -> torch.Tensor:
        """Mean-field reconstruction ``p(v | p(h | v))``: its squared error is the usual training monitor."""
        return self.p_v(self.p_h(v))


def cd_step(
    rbm: RBM,
    v0: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    k: int = 1,
    chain: torch.Tensor | None = None,
) -> tuple[float, torch.Tensor]:
    """One CD-k (or persistent CD) update on a mini-batch ``v0`` of visible vectors in [0, 1].

    The negative ("model") sample comes from ``k`` Gibbs steps started at the data (CD-k) or at the
    persistent ``chain`` (PCD). The loss ``mean F(v0) - mean F(v_k)`` is not a likelihood, but its
    gradient is the CD estimate of the likelihood gradient:
    ``dW = <h v^T>_data - <h v^T>_model`` with the sign flipped for minimisation.
    Returns the batch's mean squared reconstruction error (before the update) and the chain's new state.
    """
    with torch.no_grad():
        start = v0 if chain is None else chain
        v_k, p_vk = rbm.gibbs(start, k)
        recon_error = (
            F.mse_loss(rbm.reconstruct(v0), v0, reduction="none")
            .sum(dim=1)
            .mean()
            .item()
        )
    # probabilities instead of binary samples in the negative phase: less noise, at the price of a small bias
    # (the free energy is not linear in v, so this is not the same expectation)
    loss = rbm.free_energy(v0).mean() - rbm.free_energy(p_vk).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return recon_error, v_k


def train_rbm(
    rbm: RBM,
    data: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 0.05,
    momentum: float = 0.5,
    weight_decay: float = 1e-4,
    k: int = 1,
    persistent: bool = False,
    seed: int = 0,
    desc: str = "RBM",
    progress: bool = True,
    cd_fn: Callable[..., tuple[float, torch.Tensor]] = cd_step,
) -> list[float]:
    """Train ``rbm`` on ``data`` (N, n_visible) in [0, 1] with CD-k or PCD-k and SGD with momentum.

    Returns the mean squared reconstruction error (summed over pixels, averaged over images) of every
    epoch: not the objective CD optimises, but the cheap, standard sign that learning is progressing.
    ``cd_fn`` (default :func:`cd_step`) is the update: the chapter hands in the one written on its page.
    """
    if data.ndim != 2 or data.shape[1] != rbm.n_visible:
        raise ValueError(f"data must be (N, {rbm.n_visible}), got {tuple(data.shape)}")
    if data.device != rbm.W.device:
        raise ValueError(
            f"data is on {data.device} but the RBM on {rbm.W.device}: "
            f"move one of them, e.g. rbm.to(data.device)"
        )
    optimizer = torch.optim.SGD(
        rbm.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    g = torch.Generator(device=data.device).manual_seed(seed)
    n = len(data)
    chain = (
        torch.bernoulli(
            torch.full((batch_size, rbm.n_visible), 0.5, device=data.device)
        )
        if persistent
        else None
    )
    errors: list[float] = []
    steps = -(-n // batch_size)
    with tqdm(
        total=epochs * steps, desc=desc, unit="batch", disable=not progress
    ) as bar:
        for _ in range(epochs):
            order = torch.randperm(n, generator=g, device=data.device)
            total = 0.0
            for i in range(steps):
                batch = data[order[i * batch_size : (i + 1) * batch_size]]
                use_chain = chain[: len(batch)] if chain is not None else None
                err, v_k = cd_fn(rbm, batch, optimizer, k=k, chain=use_chain)
                if chain is not None:
                    chain[: len(batch)] = v_k
                total += err * len(batch)
                bar.update()
            errors.append(total / n)
            bar.set_postfix(recon_error=f"{errors[-1]:.2f}")
    return errors


class DBN(nn.Module):
    """A Deep Belief Network: RBMs of sizes ``sizes[0] -> sizes[1] -> ...`` trained greedily, layer by layer."""

    def __init__(self, sizes: Sequence[int]):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(
                f"a DBN needs at least two layer sizes, got {tuple(sizes)}"
            )
        self.sizes = tuple(sizes)
        self.rbms = nn.ModuleList(RBM(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def pretrain(
        self, data: torch.Tensor, *, epochs: int, **kwargs: object
    ) -> list[list[float]]:
        """Greedy layer-wise pretraining: train RBM 1 on the data, RBM 2 on RBM 1's hidden probabilities, ...

        Each new layer models the distribution of the features below it. Hinton et al. (2006) show that adding a
        layer cannot lower a variational bound on the data's log-likelihood when it starts from the transposed
        weights of the layer below and is trained by maximum likelihood on posterior samples; this greedy CD
        version keeps the idea, not the guarantee. Returns each RBM's reconstruction errors.
        """
        histories = []
        x = data
        for i, rbm in enumerate(self.rbms):
            histories.append(
                train_rbm(
                    rbm,
                    x,
                    epochs=epochs,
                    desc=f"RBM {i + 1} ({rbm.n_visible}->{rbm.n_hidden})",
                    **kwargs,
                )
            )  # type: ignore[arg-type]
            with torch.no_grad():
                x = rbm.p_h(x)
        return histories

    @torch.no_grad()
    def transform(self, v: torch.Tensor) -> torch.Tensor:
        """The top layer's features: hidden probabilities passed up through every RBM."""
        for rbm in self.rbms:
            v = rbm.p_h(v)
        return v

    def to_classifier(self, num_classes: int) -> nn.Sequential:
        """A sigmoid MLP initialised with the RBMs' weights and hidden biases, plus a new linear read-out."""
        return sigmoid_mlp(self.sizes, num_classes, rbms=list(self.rbms))


def sigmoid_mlp(
    sizes: Sequence[int], num_classes: int, rbms: Sequence[RBM] | None = None
) -> nn.Sequential:
    """``Flatten -> (Linear -> Sigmoid) x L -> Linear``: the network a DBN is fine-tuned as.

    With ``rbms`` the hidden layers start from the pretrained weights; without, from PyTorch's default
    random initialisation: the same architecture, so a comparison isolates the effect of pretraining.
    The network is built on the device of the ``rbms`` (the CPU without them).
    """
    device = rbms[0].W.device if rbms else torch.device("cpu")
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(a, b, device=device)
        if rbms is not None:
            with torch.no_grad():
                linear.weight.copy_(rbms[i].W)
                linear.bias.copy_(rbms[i].h_bias)
        layers += [linear, nn.Sigmoid()]
    layers.append(nn.Linear(sizes[-1], num_classes, device=device))
    return nn.Sequential(*layers)
