"""One training loop for every supervised chapter, built from small replaceable pieces.

``fit`` is the beginner's one call. Underneath it are :func:`train_one_epoch` and :func:`evaluate`,
which a reader can call from a loop of their own, and :func:`save_checkpoint` / :func:`load_checkpoint`
to keep a trained model. Nothing here hides the algorithm a chapter teaches: the model, loss and
optimiser are always built in the notebook and passed in.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .settings import get_device

Metric = Callable[
    [torch.Tensor, torch.Tensor], "float | torch.Tensor"
]  # batch mean (a 0-d tensor is faster)


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose highest score is the target class, as a 0-d tensor (``float(...)`` for a number).

    A tensor, not a float, so that the training loop can add it up on the GPU without waiting for it: turning
    it into a Python number forces the CPU to wait for the GPU, and doing that every batch costs real time.
    """
    return (outputs.argmax(dim=1) == targets).float().mean()


class History:
    """Per-epoch record of a run: ``history["val_acc"]`` is a list with one value per epoch.

    Keys: ``epoch``, ``train_loss``, ``val_loss`` and one ``train_<m>`` / ``val_<m>`` per metric,
    plus ``time_s`` (seconds of training in that epoch, validation excluded) and ``lr``.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def append(self, row: Mapping[str, float]) -> None:
        self.rows.append(dict(row))

    def __getitem__(self, key: str) -> list[float]:
        if not self.rows or key not in self.rows[-1]:
            raise KeyError(f"no {key!r} in history; keys are {self.keys()}")
        return [row[key] for row in self.rows]

    def __contains__(self, key: object) -> bool:
        return bool(self.rows) and key in self.rows[-1]

    def __len__(self) -> int:
        return len(self.rows)

    def keys(self) -> list[str]:
        return list(self.rows[-1]) if self.rows else []

    def last(self, key: str) -> float:
        return self[key][-1]

    def to_dict(self) -> dict[str, list[float]]:
        return {k: self[k] for k in self.keys()}

    def __repr__(self) -> str:
        return f"History({len(self)} epochs, keys={self.keys()})"


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA only: bfloat16 where the GPU has it (no loss scaling needed), else float16."""
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def _needs_scaler(device: torch.device, amp: bool) -> bool:
    return amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()


def _to(batch: Iterable[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    return [t.to(device, non_blocking=True) for t in batch]


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    device: torch.device | None = None,
    metrics: Mapping[str, Metric] | None = None,
    amp: bool = True,
    grad_clip: float | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    on_batch: Callable[[], None] | None = None,
) -> dict[str, float]:
    """One pass over ``loader`` with gradient steps; returns mean loss and metrics over the samples seen.

    ``scheduler``, if given, is stepped after every batch (e.g. ``OneCycleLR``); step per-epoch
    schedulers yourself. ``on_batch`` is called after each step (``fit`` uses it for the progress bar).
    Loss and metrics are summed as tensors and read once, at the end: no per-batch ``.item()``, which on a GPU
    would stall the pipeline every step. For the same reason a non-finite loss is reported at the end of the
    epoch in which it appeared, not at the batch.
    """
    device = device or next(model.parameters()).device
    metrics = metrics or {}
    model.train()
    totals: dict[str, float | torch.Tensor] = {
        "loss": 0.0,
        **{name: 0.0 for name in metrics},
    }
    seen = 0
    for x, y in loader:
        x, y = _to((x, y), device)
        with _autocast(device, amp):
            out = model(x)
            loss = loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n = y.shape[0]
        seen += n
        totals["loss"] = totals["loss"] + loss.detach().float() * n
        with torch.no_grad():
            for name, fn in metrics.items():
                totals[name] = totals[name] + fn(out.detach().float(), y) * n
        if on_batch is not None:
            on_batch()
    if seen == 0:
        raise ValueError("the training loader yielded no batches")
    means = {k: float(v) / seen for k, v in totals.items()}
    if not math.isfinite(means["loss"]):
        raise FloatingPointError(
            f"loss became {means['loss']}: lower the learning rate or clip gradients"
        )
    return means


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    *,
    metrics: Mapping[str, Metric] | None = None,
    device: torch.device | None = None,
    amp: bool = True,
) -> dict[str, float]:
    """Mean loss and metrics of ``model`` over ``loader``, in eval mode, without gradients.

    Defaults suit classification: cross-entropy loss and accuracy (key ``"acc"``).
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    metrics = {"acc": accuracy} if metrics is None else metrics
    device = device or next(model.parameters()).device
    model.eval()
    totals: dict[str, float | torch.Tensor] = {
        "loss": 0.0,
        **{name: 0.0 for name in metrics},
    }
    seen = 0
    for x, y in loader:
        x, y = _to((x, y), device)
        with _autocast(device, amp):
            out = model(x)
        out = out.float()
        n = y.shape[0]
        seen += n
        totals["loss"] = totals["loss"] + loss_fn(out, y) * n
        for name, fn in metrics.items():
            totals[name] = totals[name] + fn(out, y) * n
    if seen == 0:
        raise ValueError("the evaluation loader yielded no batches")
    return {k: float(v) / seen for k, v in totals.items()}


@torch.no_grad()
def predict(
    model: nn.Module, loader: Iterable, *, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model outputs and targets for a whole loader, on the CPU: the raw material of confusion matrices."""
    device = device or next(model.parameters()).device
    model.eval()
    outs, targets = [], []
    for x, y in loader:
        outs.append(model(x.to(device)).float().cpu())
        targets.append(y.cpu())
    return torch.cat(outs), torch.cat(targets)


def fit(
    model: nn.Module,
    train_loader: Iterable,
    *,
    epochs: int,
    val_loader: Iterable | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    metrics: Mapping[str, Metric] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scheduler_step: str = "epoch",
    device: torch.device | str | None = None,
    amp: bool = True,
    grad_clip: float | None = None,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_loader``; validate after each epoch.

    Beginner use: ``history = fit(model, train_loader, val_loader=val_loader, epochs=10)`` trains with
    Adam (``lr``), cross-entropy and accuracy on the fastest device. Pass your own ``optimizer``,
    ``loss_fn`` (e.g. ``nn.MSELoss()`` for regression, with ``metrics={}``) or ``scheduler``
    (``scheduler_step="batch"`` for one-cycle schedules) to change any piece.
    Mixed precision (``amp``) only applies on CUDA; CPU and MPS run in float32.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if scheduler_step not in ("epoch", "batch"):
        raise ValueError(
            f"scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}"
        )
    device = get_device(device)
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    metrics = {"acc": accuracy} if metrics is None else dict(metrics)
    scaler = torch.amp.GradScaler("cuda") if _needs_scaler(device, amp) else None
    history = History()
    try:
        steps_per_epoch = len(train_loader)  # type: ignore[arg-type]
    except TypeError:
        steps_per_epoch = None
    total = steps_per_epoch * epochs if steps_per_epoch else None
    # Only pass `disable` to turn the bar off: left unset, the TQDM_DISABLE environment variable still works.
    with tqdm(
        total=total, desc=desc, unit="batch", **({} if progress else {"disable": True})
    ) as bar:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            train = train_one_epoch(
                model,
                train_loader,
                optimizer,
                loss_fn,
                device=device,
                metrics=metrics,
                amp=amp,
                grad_clip=grad_clip,
                scaler=scaler,
                on_batch=bar.update,
                scheduler=scheduler if scheduler_step == "batch" else None,
            )
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            row = {
                "epoch": epoch,
                "time_s": time.perf_counter() - start,
                "lr": optimizer.param_groups[0]["lr"],
                **{f"train_{k}": v for k, v in train.items()},
            }
            if scheduler is not None and scheduler_step == "epoch":
                scheduler.step()
            if val_loader is not None:
                val = evaluate(
                    model, val_loader, loss_fn, metrics=metrics, device=device, amp=amp
                )
                row.update({f"val_{k}": v for k, v in val.items()})
            history.append(row)
            bar.set_postfix(
                {
                    k: f"{v:.4f}"
                    for k, v in row.items()
                    if k.startswith(("train_", "val_"))
                }
            )
    return history


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    **extra: object,
) -> Path:
    """Save weights (and optimiser state, and plain ``extra`` values such as the epoch) to ``path``.

    Only tensors and plain Python values are stored, so :func:`load_checkpoint` can read the file
    with ``weights_only=True``: loading a checkpoint never runs code from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "extra": extra,
        },
        path,
    )
    return path


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    device: torch.device | str | None = None,
) -> dict[str, object]:
    """Load a file written by :func:`save_checkpoint` into ``model`` (and ``optimizer``); return its ``extra``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location=device or "cpu", weights_only=True)
    model.load_state_dict(state["model"])
    if optimizer is not None:
        if state["optimizer"] is None:
            raise ValueError(f"{path} holds no optimiser state")
        optimizer.load_state_dict(state["optimizer"])
    return dict(state["extra"])
