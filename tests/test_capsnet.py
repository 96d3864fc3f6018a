"""Unit tests for helpers.capsnet: squash, routing, capsule layers, margin loss, image transforms."""

import pytest
import torch

from helpers import capsnet as C


def test_squash_keeps_direction_and_maps_length_below_one():
    torch.manual_seed(0)
    s = torch.randn(50, 16) * torch.logspace(-2, 2, 50).unsqueeze(1)
    v = C.squash(s)
    n_s, n_v = s.norm(dim=-1), v.norm(dim=-1)
    assert (n_v < 1).all() and (n_v > 0).all()
    torch.testing.assert_close(n_v, n_s**2 / (1 + n_s**2))
    torch.testing.assert_close(torch.cosine_similarity(s, v, dim=-1), torch.ones(50))
    assert C.squash(torch.zeros(2, 8)).abs().max() == 0


def test_routing_shapes_and_couplings_sum_to_one():
    torch.manual_seed(0)
    u_hat = torch.randn(4, 30, 10, 16)
    v, c = C.dynamic_routing(u_hat, iterations=3)
    assert v.shape == (4, 10, 16) and c.shape == (4, 30, 10)
    torch.testing.assert_close(c.sum(dim=2), torch.ones(4, 30))
    assert (v.norm(dim=-1) < 1).all()
    # one iteration = uniform couplings
    _, c1 = C.dynamic_routing(u_hat, iterations=1)
    torch.testing.assert_close(c1, torch.full_like(c1, 0.1))


def test_routing_sends_votes_to_the_capsule_they_agree_with():
    # 20 inputs all vote the same long vector for output 0 and random small ones for output 1
    torch.manual_seed(0)
    u_hat = torch.zeros(1, 20, 2, 4)
    u_hat[:, :, 0] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    u_hat[:, :, 1] = 0.3 * torch.randn(1, 20, 4)
    _, c = C.dynamic_routing(u_hat, iterations=3)
    assert (c[0, :, 0] > 0.5).all()


def test_capsnet_shapes_and_masking():
    torch.manual_seed(0)
    model = C.CapsNet(conv_channels=16, primary_channels=4, decoder_hidden=(32,))
    assert model.digits.W.shape[0] == 4 * 6 * 6
    x = torch.rand(3, 1, 28, 28)
    lengths, recon, v = model(x)
    assert (
        lengths.shape == (3, 10) and recon.shape == x.shape and v.shape == (3, 10, 16)
    )
    assert ((lengths >= 0) & (lengths < 1)).all() and (
        (recon >= 0) & (recon <= 1)
    ).all()
    y = torch.tensor([1, 2, 3])
    v2 = v.clone()
    v2[torch.arange(3), 5] += 1.0  # change a capsule that is masked out
    torch.testing.assert_close(model.decode(v, y), model.decode(v2, y))


def test_margin_loss_values():
    lengths = torch.tensor([[0.95, 0.05, 0.0], [0.5, 0.3, 0.0]])
    y = torch.tensor([0, 1])
    assert C.margin_loss(lengths[:1], y[:1]).item() == pytest.approx(0.0)
    # second row: present class 1 at 0.3 -> (0.9-0.3)^2 = 0.36; absent 0 at 0.5 -> 0.5*(0.4)^2 = 0.08
    assert C.margin_loss(lengths[1:], y[1:]).item() == pytest.approx(0.44)
    assert C.margin_loss(lengths, y).item() == pytest.approx(0.22)
    total, margin, recon = C.capsule_loss(
        lengths, torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2), y
    )
    assert recon.item() == pytest.approx(4.0) and total.item() == pytest.approx(
        0.22 + 0.0005 * 4.0
    )


def test_capsnet_uses_the_routing_it_is_given():
    # the chapter hands in its own routing procedure; the same one gives the same outputs
    calls = []

    def own_routing(u_hat, iterations):
        calls.append(iterations)
        return C.dynamic_routing(u_hat, iterations)

    x = torch.rand(2, 1, 28, 28)
    outputs = []
    for routing in (None, own_routing):
        torch.manual_seed(0)
        model = C.CapsNet(conv_channels=8, primary_channels=2, routing=routing)
        outputs.append(model(x)[0])
    assert calls == [3] and torch.equal(outputs[0], outputs[1])
