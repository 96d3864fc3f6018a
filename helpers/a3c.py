"""Asynchronous advantage actor-critic (A3C): parallel workers, a global model in shared memory, Hogwild updates.

The pieces, each shown on the A3C chapter's page:

- :class:`SharedAdam`: Adam whose moment estimates live in shared memory, so every worker updates the same ones;
- :func:`worker`: one worker's loop (copy the global parameters, play ``n_steps`` steps in its own environment,
  then one :func:`push_update`);
- :func:`push_update`: the A3C update itself: the A2C loss of :func:`helpers.a2c.a2c_loss` on the worker's
  rollout, its gradients written into the global model, a step of the shared optimiser without a lock. A
  chapter may pass its own version (``run_a3c(update_fn=...)``);
- :func:`run_a3c`: starts the workers as processes with an explicit ``spawn`` context and falls back to threads
  in this process where processes cannot start; it never waits forever (time limits on start, training and join).

Why the worker lives here and not in the notebook: under the ``spawn`` start method (the default on macOS and
Windows, and the only safe one once PyTorch has started threads) a child process starts a fresh interpreter and
*imports* the function it runs; a function defined in a notebook cell cannot be imported. The update a chapter
writes on its page travels differently: :func:`run_a3c` serialises it by value with ``cloudpickle`` and every
worker loads it.
"""

from __future__ import annotations

import queue as queue_mod
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import cloudpickle  # installed with gymnasium
import numpy as np
import torch
import torch.multiprocessing as mp
from torch import nn
from tqdm.auto import tqdm

from . import a2c, rl


class SharedAdam(torch.optim.Adam):
    """Adam with its state (step count, first and second moments) created up front and moved to shared memory.

    Adam normally creates its state lazily at the first step, *inside* each process, so every worker would keep
    private moment estimates. Creating the state here and calling ``share_memory_()`` before the workers start
    makes all workers read and update one set of statistics, as in the A3C paper's shared RMSProp.
    ``foreach=False`` keeps the per-parameter update, which modifies the state tensors in place.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, foreach=False)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(
                    p, memory_format=torch.preserve_format
                )
                state["exp_avg_sq"] = torch.zeros_like(
                    p, memory_format=torch.preserve_format
                )
                for tensor in state.values():
                    tensor.share_memory_()


@dataclass
class A3CConfig:
    """Settings shared by all workers (a plain dataclass: it is pickled into each spawned process)."""

    env_id: str = "CartPole-v1"
    total_steps: int = 200_000  # environment steps of all workers together
    n_steps: int = 20  # steps per worker between two updates (t_max in the A3C paper)
    gamma: float = 0.99
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    lr_decay: bool = (
        True  # both rates fall linearly to 0 with the *global* step counter
    )
    hidden: int = 64
    seed: int = 0


class _Counter:
    """Thread-backend stand-in for ``multiprocessing.Value``: an integer ``value`` and ``get_lock()``."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def get_lock(self) -> threading.Lock:
        return self._lock


def make_shared(
    cfg: A3CConfig, obs_dim: int, n_actions: int
) -> tuple[rl.ActorCritic, SharedAdam]:
    """The global model (parameters moved to shared memory) and its shared optimiser, seeded by ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    model = rl.ActorCritic(obs_dim, n_actions, hidden=cfg.hidden)
    model.share_memory()
    optimizer = SharedAdam(
        [
            {"params": model.actor.parameters(), "lr": cfg.actor_lr},
            {"params": model.critic.parameters(), "lr": cfg.critic_lr},
        ]
    )
    return model, optimizer


def push_update(
    local: rl.ActorCritic,
    global_model: rl.ActorCritic,
    optimizer: SharedAdam,
    batch: a2c.Rollout,
    cfg: A3CConfig,
) -> float:
    """One A3C update from one worker's rollout; returns the loss.

    The loss is A2C's, computed with the worker's *local* copy; its gradients are handed to the global
    parameters (``.grad`` is private to each process, the parameters are shared) and the shared optimiser
    steps them, with no lock: two workers may write the same weights at once ("Hogwild"), and the
    occasional lost write costs less than making everyone wait.
    """
    loss, _ = a2c.a2c_loss(local, batch, cfg.gamma, cfg.ent_coef, cfg.vf_coef)
    local.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(local.actor.parameters(), cfg.max_grad_norm)
    nn.utils.clip_grad_norm_(local.critic.parameters(), cfg.max_grad_norm)
    for gp, lp in zip(global_model.parameters(), local.parameters()):
        gp.grad = lp.grad
    optimizer.step()
    return loss.item()


UpdateFn = Callable[
    [rl.ActorCritic, rl.ActorCritic, SharedAdam, a2c.Rollout, "A3CConfig"], float
]


def worker(
    rank: int,
    cfg: A3CConfig,
    global_model: rl.ActorCritic,
    optimizer: SharedAdam,
    counter,
    stop,
    messages,
    update: bytes | None = None,
) -> None:
    """One A3C worker: its own environment and local model, lock-free updates of the shared global model.

    ``counter`` (shared int with a lock) counts the environment steps of all workers; ``stop`` (an event) ends the
    loop early; ``messages`` (a queue) receives ``("ready" | "episode" | "done" | "error", rank, ...)`` tuples.
    ``update``: a cloudpickled update function to use instead of :func:`push_update`.
    """
    try:
        update_fn = push_update if update is None else cloudpickle.loads(update)
        torch.set_num_threads(
            1
        )  # N workers on N cores: one thread each, no oversubscription
        worker_seed = (
            cfg.seed * 1_000 + rank
        )  # different episodes and action samples in every worker
        torch.manual_seed(worker_seed)
        env = rl.make_env(cfg.env_id, seed=worker_seed)
        local = rl.ActorCritic(
            global_model.actor[0].in_features,
            global_model.actor[-1].out_features,
            hidden=cfg.hidden,
        )
        base_lrs = [g["lr"] for g in optimizer.param_groups]
        obs, _ = env.reset()
        episode_return, updates, staleness = 0.0, 0, 0
        step_count = next(iter(optimizer.state.values()))[
            "step"
        ]  # shared: global number of updates so far
        messages.put(("ready", rank, time.time()))
        cpu_start = time.thread_time()  # this worker's own CPU time (thread or process)
        parent = (
            mp.parent_process()
        )  # None in a thread; the runner's process in a spawned worker
        while not stop.is_set() and counter.value < cfg.total_steps:
            if parent is not None and not parent.is_alive():
                break  # the runner died (e.g. a killed notebook kernel): do not linger
            # 1. Fetch the current global parameters. Other workers keep changing them while we act: by the time
            #    our gradient arrives it may be a few updates old ("stale"), the price of not waiting.
            local.load_state_dict(global_model.state_dict())
            fetched_at = int(step_count)
            # 2. Act n_steps in our own environment with the local copy.
            cols: dict[str, list] = {
                k: [] for k in ("obs", "act", "rew", "term", "trunc", "next")
            }
            with torch.no_grad():
                for _ in range(cfg.n_steps):
                    o = torch.as_tensor(obs, dtype=torch.float32)
                    action = int(local.distribution(o.unsqueeze(0)).sample())
                    next_obs, reward, terminated, truncated, _ = env.step(action)
                    episode_return += float(reward)
                    for k, v in zip(
                        cols,
                        (
                            o,
                            action,
                            float(reward),
                            terminated,
                            truncated,
                            torch.as_tensor(next_obs, dtype=torch.float32),
                        ),
                    ):
                        cols[k].append(v)
                    obs = next_obs
                    if terminated or truncated:
                        with counter.get_lock():
                            step_now = counter.value + len(cols["rew"])
                        messages.put(
                            ("episode", rank, step_now, episode_return, time.time())
                        )
                        episode_return = 0.0
                        obs, _ = env.reset()
            n = len(cols["rew"])
            batch = a2c.Rollout(
                torch.stack(cols["obs"]).unsqueeze(1),
                torch.tensor(cols["act"]).unsqueeze(1),
                torch.tensor(cols["rew"]).unsqueeze(1),
                torch.tensor(cols["term"]).unsqueeze(1),
                torch.tensor(cols["trunc"]).unsqueeze(1),
                torch.stack(cols["next"]).unsqueeze(1),
                torch.ones(n, 1, dtype=torch.bool),
            )
            # 3. Count the steps and set this update's learning rate (both global).
            with counter.get_lock():
                counter.value += n
                done_frac = counter.value / cfg.total_steps
            if cfg.lr_decay:
                for group, lr in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = lr * max(0.0, 1.0 - done_frac)
            staleness += (
                int(step_count) - fetched_at
            )  # updates by other workers since our fetch
            # 4. The A3C update: A2C's loss on this rollout, pushed to the global model without a lock.
            update_fn(local, global_model, optimizer, batch, cfg)
            updates += 1
        env.close()
        cpu_s = time.thread_time() - cpu_start
        messages.put(("done", rank, updates, staleness, time.time(), cpu_s))
    except (
        BaseException
    ):  # report, never die silently: the runner would otherwise wait for this worker
        messages.put(("error", rank, traceback.format_exc(), time.time()))


@dataclass
class A3CResult:
    """One A3C run: the trained global model, which backend ran it, every episode and the timings."""

    model: rl.ActorCritic
    backend: str  # "process" or "thread"
    n_workers: int
    episode_steps: list[int] = field(default_factory=list)
    episode_returns: list[float] = field(default_factory=list)
    episode_workers: list[int] = field(default_factory=list)
    episode_times: list[float] = field(
        default_factory=list
    )  # seconds after training started
    startup_time: float = 0.0  # seconds from start() until every worker said "ready"
    wall_time: float = 0.0  # seconds of training (after start-up, until stop or budget)
    total_steps: int = 0
    updates: int = 0
    mean_staleness: float = (
        0.0  # average number of other workers' updates between fetch and push
    )
    cpu_time: float = (
        0.0  # CPU seconds of all workers' training loops (start-up excluded)
    )
    time_to_target: float | None = None
    steps_to_target: int | None = None
    fallback_reason: str | None = None
    timed_out: bool = False

    @property
    def curve(self) -> tuple[list[int], list[float]]:
        return self.episode_steps, self.episode_returns


def _start_processes(
    n_workers: int, args: tuple, update: bytes | None = None
) -> tuple[list, object, object, object]:
    """Start ``n_workers`` processes with an explicit ``spawn`` context; returns handles, counter, stop, queue."""
    ctx = mp.get_context("spawn")
    counter, stop, messages = ctx.Value("l", 0), ctx.Event(), ctx.Queue()
    handles = []
    try:
        for rank in range(n_workers):
            p = ctx.Process(
                target=worker,
                args=(rank, *args, counter, stop, messages, update),
                daemon=True,
            )
            p.start()
            handles.append(p)
    except BaseException:
        for p in handles:
            p.terminate()
        raise
    return handles, counter, stop, messages


def _start_threads(
    n_workers: int, args: tuple, update: bytes | None = None
) -> tuple[list, object, object, object]:
    """The fallback: the same worker function in threads of this process (PyTorch releases the GIL inside its
    kernels, but these networks are so small that Python dominates: expect little or no parallel speed-up)."""
    counter, stop, messages = _Counter(), threading.Event(), queue_mod.Queue()
    handles = [
        threading.Thread(
            target=worker,
            args=(rank, *args, counter, stop, messages, update),
            daemon=True,
        )
        for rank in range(n_workers)
    ]
    for t in handles:
        t.start()
    return handles, counter, stop, messages


def _drain_until_ready(
    messages, n_workers: int, timeout_s: float, handles: list
) -> tuple[list[str], list]:
    """Wait for every worker's "ready"; return error tracebacks and the other messages that arrived meanwhile (a
    fast worker may finish episodes before a slow one is ready); raise ``TimeoutError`` after ``timeout_s``."""
    ready, errors, early, deadline = set(), [], [], time.time() + timeout_s
    while len(ready) + len(errors) < n_workers:
        if time.time() > deadline:
            raise TimeoutError(
                f"only {len(ready)} of {n_workers} workers started within {timeout_s:.0f} s"
            )
        try:
            msg = messages.get(timeout=0.5)
        except queue_mod.Empty:
            if not any(h.is_alive() for h in handles):
                raise RuntimeError("every worker exited before it was ready") from None
            continue
        if msg[0] == "ready":
            ready.add(msg[1])
        elif msg[0] == "error":
            errors.append(msg[2])
        else:
            early.append(msg)
    return errors, early


def run_a3c(
    cfg: A3CConfig,
    n_workers: int,
    *,
    target: float | None = None,
    window: int = 20,
    backend: str = "process",
    start_timeout_s: float = 120.0,
    timeout_s: float = 600.0,
    join_timeout_s: float = 10.0,
    progress: bool = True,
    desc: str | None = None,
    update_fn: UpdateFn | None = None,
) -> A3CResult:
    """Train the global model with ``n_workers`` asynchronous workers until ``cfg.total_steps`` environment steps,
    or until the mean training return of the last ``window`` episodes (all workers) reaches ``target``.

    ``backend="process"`` uses real processes (spawn); if they cannot start, or do not report ready within
    ``start_timeout_s``, the run says why in ``fallback_reason`` and uses threads. ``timeout_s`` bounds the
    training itself (``timed_out`` says it was hit) and ``join_timeout_s`` each join; a worker's exception is
    re-raised here with its traceback. Nothing waits without a limit, so a broken setup fails instead of hanging.
    ``update_fn`` replaces :func:`push_update` in every worker (same arguments); it is sent by value
    (cloudpickle), so it may be defined in a notebook.
    """
    if n_workers < 1:
        raise ValueError(f"n_workers must be at least 1, got {n_workers}")
    if backend not in ("process", "thread"):
        raise ValueError(f"backend must be 'process' or 'thread', got {backend!r}")
    obs_dim, n_actions = a2c._env_dims(cfg.env_id)
    model, optimizer = make_shared(cfg, obs_dim, n_actions)
    args = (cfg, model, optimizer)
    # by value, so that a function written in a notebook cell reaches spawned workers
    update = None if update_fn is None else cloudpickle.dumps(update_fn)
    result = A3CResult(model=model, backend=backend, n_workers=n_workers)
    t_start = time.time()
    handles = []
    if backend == "process":
        try:
            handles, counter, stop, messages = _start_processes(n_workers, args, update)
            errors, early = _drain_until_ready(
                messages, n_workers, start_timeout_s, handles
            )
            if errors:
                raise RuntimeError("a worker failed while starting:\n" + errors[0])
        except Exception as exc:  # noqa: BLE001 -- any failure to start processes selects the fallback
            for p in handles:
                p.terminate()
                p.join(join_timeout_s)
            result.fallback_reason = f"{type(exc).__name__}: {exc}".strip()
            result.backend = backend = "thread"
            model, optimizer = make_shared(
                cfg, obs_dim, n_actions
            )  # fresh, untouched parameters
            args, result.model = (cfg, model, optimizer), model
            t_start = time.time()
    if backend == "thread":
        handles, counter, stop, messages = _start_threads(n_workers, args, update)
        errors, early = _drain_until_ready(
            messages, n_workers, start_timeout_s, handles
        )
        if errors:
            stop.set()
            raise RuntimeError("an A3C worker failed:\n" + errors[0])
    t0 = time.time()
    result.startup_time = t0 - t_start
    done, errors, stale_sum = set(), [], 0
    bar = tqdm(
        total=cfg.total_steps,
        desc=desc or f"A3C {n_workers} worker(s)",
        disable=not progress,
        leave=False,
    )
    shown = 0
    while len(done) + len(errors) < n_workers:
        if time.time() - t0 > timeout_s and not stop.is_set():
            result.timed_out = True
            stop.set()
        if time.time() - t0 > timeout_s + join_timeout_s:
            break  # workers did not react to stop: give up on them
        try:
            msg = early.pop(0) if early else messages.get(timeout=0.5)
        except queue_mod.Empty:
            if not any(h.is_alive() for h in handles):
                break
            continue
        kind, rank = msg[0], msg[1]
        if kind == "episode":
            _, _, step, ret, when = msg
            result.episode_steps.append(step)
            result.episode_returns.append(ret)
            result.episode_workers.append(rank)
            result.episode_times.append(when - t0)
            bar.update(max(0, min(step, cfg.total_steps) - shown))
            shown = max(shown, min(step, cfg.total_steps))
            recent = result.episode_returns[-window:]
            if (
                target is not None
                and result.time_to_target is None
                and len(recent) == window
                and np.mean(recent) >= target
            ):
                result.time_to_target, result.steps_to_target = when - t0, step
                stop.set()
        elif kind == "done":
            done.add(rank)
            result.updates += msg[2]
            stale_sum += msg[3]
            result.cpu_time += msg[5]
        elif kind == "error":
            errors.append(msg[2])
            stop.set()
    result.wall_time = time.time() - t0
    stop.set()
    bar.close()
    for h in handles:
        h.join(join_timeout_s)
        if hasattr(h, "terminate") and h.is_alive():  # threads cannot be killed
            h.terminate()
            h.join(join_timeout_s)
    result.total_steps = int(counter.value)
    result.mean_staleness = stale_sum / max(result.updates, 1)
    if errors:
        raise RuntimeError(
            f"an A3C worker failed ({result.backend} backend):\n" + errors[0]
        )
    alive = [h for h in handles if h.is_alive()]
    if alive:
        raise RuntimeError(
            f"{len(alive)} A3C worker(s) did not stop within {join_timeout_s} s"
        )
    if len(done) < n_workers and not result.timed_out:
        raise RuntimeError(
            f"only {len(done)} of {n_workers} A3C workers finished (did a process crash?)"
        )
    return result


__all__ = [
    "SharedAdam",
    "A3CConfig",
    "make_shared",
    "push_update",
    "worker",
    "A3CResult",
    "run_a3c",
]
