"""MNIST CNN: time to 99 % test accuracy with ``helpers.fit`` vs a plain PyTorch loop written the usual way.

The question is whether the book's training loop costs anything. Both sides train the CNN chapter's model
(``helpers.CNNModel``) with the chapter's recipe (Adam 1e-3, cosine decay per batch, batch 128) from the same
initial weights on the same batches (one :class:`helpers.TensorLoader` each, same seed), and evaluate on the test
set after every epoch. So they compute the same numbers, and any difference in time is the loop's own overhead:
its progress bar, metrics and bookkeeping. The run alternates which side goes first over ``repeats`` rounds, so
drifts in the machine's speed hit both alike.

Device: the fastest one present (``helpers.get_device``: CUDA, then MPS, then CPU), or the one passed.
On CUDA both sides train in the same mixed precision (bfloat16 autocast, as ``helpers.fit`` does by
default) and the timed regions end with ``torch.cuda.synchronize``, so the clock measures finished GPU
work, not queued kernels.

Time to target = training seconds (evaluation excluded, as ``helpers.fit`` reports them) summed up to the first
epoch whose test accuracy reaches the target. 99 % needs the full 60,000 training images; on the 5,000-image
offline subset the target is lowered (``SUBSET_TARGET``) and the table says so.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from . import report

TARGET, SUBSET_TARGET = 0.99, 0.96
BATCH, LR = 128, 1e-3


def _tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=len(dataset))
    x, y = next(iter(loader))
    return x, y


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loop(
    model: torch.nn.Module,
    train_loader,
    test_loader,
    epochs: int,
    device: torch.device = torch.device("cpu"),
) -> list[dict]:
    """The loop as most tutorials write it: no helpers. Returns one row per epoch (training seconds, test acc).

    On CUDA it uses mixed precision the usual way (autocast; a gradient scaler only for float16).
    """
    model.to(device)
    amp = device.type == "cuda"
    dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and dtype == torch.float16)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=epochs * len(train_loader)
    )
    rows = []
    for epoch in range(epochs):
        model.train()
        _sync(device)
        start = time.perf_counter()
        running_loss = 0.0
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=dtype, enabled=amp):
                loss = F.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            running_loss += loss.item()
        _sync(device)
        train_s = time.perf_counter() - start
        model.eval()
        correct = total = 0
        with (
            torch.no_grad(),
            torch.autocast(device.type, dtype=dtype, enabled=amp),
        ):
            for x, y in test_loader:
                x, y = x.to(device), y.to(device)
                correct += (model(x).argmax(dim=1) == y).sum().item()
                total += len(y)
        rows.append(
            {
                "epoch": epoch + 1,
                "train_s": train_s,
                "test_acc": correct / total,
                "train_loss": running_loss / len(train_loader),
            }
        )
    return rows


def helpers_loop(
    model: torch.nn.Module,
    train_loader,
    test_loader,
    epochs: int,
    device: torch.device = torch.device("cpu"),
) -> list[dict]:
    """The same training through ``helpers.fit``, exactly as the CNN chapter calls it."""
    import helpers

    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=epochs * len(train_loader)
    )
    history = helpers.fit(
        model,
        train_loader,
        epochs=epochs,
        val_loader=test_loader,
        optimizer=optimizer,
        scheduler=scheduler,
        scheduler_step="batch",
        device=device,
        progress=False,
    )
    return [
        {"epoch": e, "train_s": t, "test_acc": a, "train_loss": loss}
        for e, t, a, loss in zip(
            history["epoch"],
            history["time_s"],
            history["val_acc"],
            history["train_loss"],
        )
    ]


def run(
    epochs: int = 8,
    repeats: int = 4,
    threads: int | None = None,
    n_train: int | None = None,
    device: torch.device | str | None = None,
) -> dict:
    """Train both sides ``repeats`` times (alternating which goes first) for ``epochs`` epochs each.

    The data sit on ``device`` (default: the fastest one present) as tensors before either side starts.
    """
    import helpers

    device = helpers.get_device(device)
    if threads:
        torch.set_num_threads(threads)
    train = (
        helpers.data.take_subset(helpers.load_mnist(train=True), n_train)
        if n_train
        else helpers.load_mnist(True)
    )
    full = helpers.is_full_data("mnist", train)
    target = TARGET if full else SUBSET_TARGET
    x_train, y_train = (t.to(device) for t in _tensors(train))
    x_test, y_test = (t.to(device) for t in _tensors(helpers.load_mnist(train=False)))
    sides = {"helpers.fit": helpers_loop, "plain loop": plain_loop}
    runs: dict[str, list[list[dict]]] = {name: [] for name in sides}
    wall: dict[str, list[float]] = {name: [] for name in sides}
    for rep in range(repeats):
        order = list(sides) if rep % 2 == 0 else list(sides)[::-1]
        for name in order:
            helpers.seed_everything(0)
            model = helpers.CNNModel()
            train_loader = helpers.TensorLoader(
                x_train, y_train, BATCH, shuffle=True, seed=0
            )
            test_loader = helpers.TensorLoader(x_test, y_test, 1000)
            start = time.perf_counter()
            runs[name].append(
                sides[name](model, train_loader, test_loader, epochs, device)
            )
            wall[name].append(time.perf_counter() - start)
            last = runs[name][-1][-1]
            print(
                f"{name:12s} round {rep + 1}: {wall[name][-1]:.1f} s, test acc {last['test_acc']:.4f}",
                flush=True,
            )
    summary = {}
    for name in sides:
        reach = [
            report.time_to_target(
                [row["train_s"] for row in r], [row["test_acc"] for row in r], target
            )
            for r in runs[name]
        ]
        summary[name] = {
            "time_to_target_s": reach,
            "wall_s": wall[name],
            "epoch_train_s": [row["train_s"] for r in runs[name] for row in r],
            "test_acc": [row["test_acc"] for row in runs[name][0]],
        }
    ours, plain = summary["helpers.fit"], summary["plain loop"]
    ratio_epoch = float(
        np.mean(ours["epoch_train_s"]) / np.mean(plain["epoch_train_s"])
    )
    ratio_target = (
        float(np.mean(ours["time_to_target_s"]) / np.mean(plain["time_to_target_s"]))
        if None not in ours["time_to_target_s"] + plain["time_to_target_s"]
        else None
    )
    return {
        "summary": summary,
        "target": target,
        "full_data": full,
        "n_train": len(train),
        "epochs": epochs,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "device": device.type,
        "device_name": _device_name(device),
        "ratio_time_to_target": ratio_target,
        "ratio_epoch": ratio_epoch,
        # bit-identical on a CPU; GPU kernels may sum in another order from run to run
        "same_accuracies": bool(
            np.allclose(ours["test_acc"], plain["test_acc"], atol=_tolerance(device))
        ),
        "max_acc_difference": float(
            np.max(np.abs(np.subtract(ours["test_acc"], plain["test_acc"])))
        ),
        "goal_met": ratio_target is not None and ratio_target <= 1.05,
    }


def result_name(result: Mapping) -> str:
    """``mnist_loop`` for the CPU run, ``mnist_loop_cuda`` for a GPU run: one never overwrites the other."""
    return "mnist_loop" if result.get("device", "cpu") == "cpu" else "mnist_loop_cuda"


def _tolerance(device: torch.device) -> float:
    """How far the two loops' test accuracies may differ: 0 on a CPU (same arithmetic), a few
    images in 10,000 on a GPU, whose atomics and autotuned kernels are not bit-reproducible."""
    return 1e-4 if device.type == "cpu" else 2e-3


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type}, {torch.get_num_threads()} threads"


def markdown(result: Mapping) -> list[str]:
    s, m = result["summary"], result["machine"]
    data = (
        "all 60,000 training images"
        if result["full_data"]
        else f"{result['n_train']:,} training images (subset)"
    )
    lines = [
        "### MNIST CNN: the book's training loop vs a plain PyTorch loop"
        + ("" if result.get("device", "cpu") == "cpu" else ", on a GPU"),
        "",
        f"The CNN chapter's model and recipe, {result['epochs']} epochs, {data}, target {result['target']:.0%} "
        f"test accuracy; {result['repeats']} rounds per side, alternating which goes first; "
        f"trained on {_where(result)}. Measured on {report.describe(m)}.",
        "",
    ]
    rows = [
        [
            name,
            report.mean_std(d["time_to_target_s"], "{:.1f}"),
            report.mean_std(d["epoch_train_s"], "{:.2f}"),
            " / ".join(f"{a:.4f}" for a in d["test_acc"]),
        ]
        for name, d in s.items()
    ]
    lines += report.table(
        [
            "loop",
            f"seconds to {result['target']:.0%}",
            "seconds per epoch (training)",
            "test accuracy after each epoch",
        ],
        rows,
        "lrrr",
    )
    rt = result["ratio_time_to_target"]
    to_target = (
        f"time to target **{rt:.3f}**"
        if rt is not None
        else "time to target: not reached by both"
    )
    lines += [
        "",
        f"Ratio helpers.fit / plain loop: {to_target}, training time per epoch {result['ratio_epoch']:.3f}; "
        f"goal (≤ 1.05) {'met' if result['goal_met'] else '**not met**'}. Both loops compute the same "
        f"accuracies: {'yes' if result['same_accuracies'] else 'no'}.",
    ]
    return lines


def _where(result: Mapping) -> str:
    """The device line of the table; results written before the device field say CPU."""
    if result.get("device", "cpu") == "cpu":
        return f"the CPU, {result['threads']} threads"
    return f"{result.get('device_name', result['device'])} (mixed precision)"
