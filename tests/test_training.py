import pytest
import torch
from torch import nn

from helpers import (
    MLP,
    CNNModel,
    History,
    TensorLoader,
    accuracy,
    evaluate,
    fit,
    load_checkpoint,
    predict,
    save_checkpoint,
    train_one_epoch,
)


def tiny_problem(n: int = 64):
    """Two well-separated blobs: any working loop must drive the loss down on them."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.randn(n, 4, generator=g) + 3 * y[:, None].float()
    return TensorLoader(x, y, batch_size=16, shuffle=True)


def test_fit_lowers_the_loss_and_records_history():
    loader = tiny_problem()
    model = MLP(4, 2, hidden=(16,))
    history = fit(
        model,
        loader,
        val_loader=loader,
        epochs=15,
        lr=1e-2,
        progress=False,
        device="cpu",
    )
    assert isinstance(history, History) and len(history) == 15
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert history.last("val_acc") > 0.95
    assert {"epoch", "time_s", "lr", "train_acc", "val_loss"} <= set(history.keys())
    assert all(t > 0 for t in history["time_s"])


def test_cnn_loss_falls_on_one_tiny_batch():
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8) % 10
    model = CNNModel()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = [(x, y)]
    first = train_one_epoch(
        model, loader, opt, nn.CrossEntropyLoss(), metrics={"acc": accuracy}
    )["loss"]
    for _ in range(30):
        last = train_one_epoch(model, loader, opt, nn.CrossEntropyLoss())["loss"]
    assert last < 0.1 * first


def test_regression_with_custom_loss_and_no_metrics():
    x = torch.linspace(-1, 1, 64).view(-1, 1)
    loader = TensorLoader(x, 2 * x, batch_size=16)
    history = fit(
        MLP(1, 1, hidden=(8,)),
        loader,
        epochs=30,
        lr=3e-2,
        loss_fn=nn.MSELoss(),
        metrics={},
        progress=False,
        device="cpu",
    )
    assert "train_acc" not in history and history.last("train_loss") < 0.05


def test_scheduler_per_batch_and_per_epoch():
    loader = tiny_problem()
    model = MLP(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = fit(
        model,
        loader,
        epochs=3,
        optimizer=opt,
        scheduler=sched,
        progress=False,
        device="cpu",
    )
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=len(loader) * 2
    )
    fit(
        model,
        loader,
        epochs=2,
        optimizer=opt,
        scheduler=sched,
        scheduler_step="batch",
        progress=False,
        device="cpu",
    )


def test_evaluate_and_predict_agree():
    loader = tiny_problem()
    model = MLP(4, 2)
    metrics = evaluate(model, loader)
    outputs, targets = predict(model, loader)
    assert outputs.shape == (64, 2) and targets.shape == (64,)
    assert metrics["acc"] == pytest.approx(
        (outputs.argmax(1) == targets).float().mean().item()
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(epochs=0), "epochs"),
        (dict(epochs=1, scheduler_step="step"), "scheduler_step"),
    ],
)
def test_bad_arguments_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit(MLP(4, 2), tiny_problem(), progress=False, **kwargs)


def test_empty_loader_is_a_value_error():
    with pytest.raises(ValueError, match="no batches"):
        fit(MLP(4, 2), [], epochs=1, progress=False, device="cpu")


def test_diverging_loss_is_reported():
    model = MLP(4, 2)
    with torch.no_grad():
        model.net[1].weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="learning rate"):
        fit(model, tiny_problem(), epochs=1, progress=False, device="cpu")


def test_checkpoint_round_trip(tmp_path):
    model = MLP(4, 2)
    opt = torch.optim.Adam(model.parameters())
    fit(model, tiny_problem(), epochs=1, optimizer=opt, progress=False, device="cpu")
    path = save_checkpoint(
        tmp_path / "ckpt" / "mlp.pt", model, opt, epoch=1, test_acc=0.5
    )
    clone, clone_opt = MLP(4, 2), torch.optim.Adam(MLP(4, 2).parameters())
    clone_opt = torch.optim.Adam(clone.parameters())
    extra = load_checkpoint(path, clone, clone_opt)
    assert extra == {"epoch": 1, "test_acc": 0.5}
    for a, b in zip(model.state_dict().values(), clone.state_dict().values()):
        assert torch.equal(a, b)
    assert clone_opt.state_dict()["state"], "optimiser state should be restored"
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt", clone)


def test_checkpoint_refuses_pickled_code(tmp_path):
    """weights_only=True: a file carrying arbitrary objects is rejected instead of executed."""
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "optimizer": None, "extra": {"obj": object()}}, path)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_checkpoint(path, MLP(4, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fit_on_gpu_with_mixed_precision():
    history = fit(
        MLP(4, 2), tiny_problem(), epochs=5, lr=1e-2, progress=False, device="cuda"
    )
    assert history.last("train_loss") < history["train_loss"][0]
