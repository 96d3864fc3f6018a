"""Unit tests for helpers.rbm: energies, a CD update that learns, shapes of the DBN pieces."""

import itertools

import pytest
import torch

from helpers import rbm as R


def test_free_energy_equals_log_sum_over_hidden_states():
    torch.manual_seed(0)
    model = R.RBM(6, 4, init_std=0.5)
    v = torch.bernoulli(torch.full((5, 6), 0.5))
    hs = torch.tensor(
        list(itertools.product([0.0, 1.0], repeat=4))
    )  # all 16 hidden states
    energies = torch.stack(
        [model.energy(v, h.expand(5, 4)) for h in hs], dim=1
    )  # (5, 16)
    expected = -torch.logsumexp(-energies, dim=1)
    torch.testing.assert_close(model.free_energy(v), expected, rtol=1e-5, atol=1e-5)


def test_conditionals_match_energy_differences():
    torch.manual_seed(1)
    model = R.RBM(5, 3, init_std=0.5)
    v = torch.bernoulli(torch.full((1, 5), 0.5))
    h0, h1 = torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    # p(h_0 = 1 | v, rest) = sigmoid(E(h0) - E(h1)) since the hidden units are conditionally independent
    expected = torch.sigmoid(model.energy(v, h0) - model.energy(v, h1))
    torch.testing.assert_close(model.p_h(v)[:, 0], expected)


@pytest.mark.parametrize("persistent", [False, True])
def test_cd_training_lowers_reconstruction_error(persistent):
    torch.manual_seed(0)
    prototypes = torch.tensor([[1.0] * 8 + [0.0] * 8, [0.0] * 8 + [1.0] * 8])
    data = prototypes[torch.randint(0, 2, (64,))]
    model = R.RBM(16, 4)
    errors = R.train_rbm(
        model,
        data,
        epochs=30,
        batch_size=16,
        lr=0.1,
        persistent=persistent,
        progress=False,
    )
    assert len(errors) == 30
    assert errors[-1] < 0.5 * errors[0]


def test_single_cd_step_moves_toward_the_data():
    torch.manual_seed(0)
    data = torch.tensor([[1.0, 1.0, 0.0, 0.0]] * 8)
    model = R.RBM(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    before = ((model.reconstruct(data) - data) ** 2).sum(1).mean()
    err, chain = R.cd_step(model, data, opt, k=1)
    after = ((model.reconstruct(data) - data) ** 2).sum(1).mean()
    assert err == pytest.approx(before.item(), rel=1e-5)
    assert after < before and chain.shape == data.shape


def test_shapes_and_classifier_initialisation():
    dbn = R.DBN([12, 8, 5])
    x = torch.rand(7, 12)
    assert dbn.transform(x).shape == (7, 5)
    v, p = dbn.rbms[0].gibbs(x, k=3)
    assert v.shape == p.shape == (7, 12) and set(v.unique().tolist()) <= {0.0, 1.0}
    clf = dbn.to_classifier(3)
    assert clf(x).shape == (7, 3)
    torch.testing.assert_close(clf[1].weight, dbn.rbms[0].W)
    torch.testing.assert_close(
        torch.sigmoid(clf[3](clf[2](clf[1](x)))), dbn.transform(x)
    )
    plain = R.sigmoid_mlp([12, 8, 5], 3)
    assert [p.shape for p in plain.parameters()] == [p.shape for p in clf.parameters()]


def test_invalid_arguments():
    with pytest.raises(ValueError):
        R.RBM(0, 3)
    with pytest.raises(ValueError):
        R.DBN([5])
    with pytest.raises(ValueError):
        R.train_rbm(R.RBM(4, 2), torch.rand(3, 5), epochs=1)


def test_devices_are_checked_and_kept():
    # no GPU needed: the "meta" device holds shapes only, which is enough to check placement
    with pytest.raises(ValueError, match="device|on meta"):
        R.train_rbm(
            R.RBM(4, 2), torch.rand(3, 4, device="meta"), epochs=1, progress=False
        )
    dbn = R.DBN([4, 3, 2]).to("meta")
    assert {p.device.type for p in dbn.to_classifier(2).parameters()} == {"meta"}
    assert {p.device.type for p in R.sigmoid_mlp([4, 3], 2).parameters()} == {"cpu"}


def test_train_rbm_and_pretrain_use_the_update_they_are_given():
    # the chapter hands in its own CD step; the same one gives the same weights
    calls = []

    def own_step(rbm, v0, optimizer, k=1, chain=None):
        calls.append(len(v0))
        return R.cd_step(rbm, v0, optimizer, k=k, chain=chain)

    data = torch.bernoulli(torch.full((40, 12), 0.3))
    weights = []
    for fn in (R.cd_step, own_step):
        torch.manual_seed(0)
        dbn = R.DBN([12, 6, 4])
        dbn.pretrain(data, epochs=1, batch_size=20, progress=False, cd_fn=fn)
        weights.append(torch.cat([p.detach().flatten() for p in dbn.parameters()]))
    assert calls == [20, 20, 20, 20]  # two batches per layer, two layers
    assert torch.equal(weights[0], weights[1])
