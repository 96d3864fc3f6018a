"""A3C on CartPole-v1: does throughput grow with the number of worker processes?

Asynchronous workers only pay off if k of them collect experience about k times as fast as one. This
benchmark runs the A3C chapter's configuration (``helpers.a3c``, real ``spawn`` processes) with 1, 2, 4, 8, ...
workers and records, per run:

* **throughput**: environment steps of all workers per second of training (start-up excluded), over a fixed
  step budget with no early stop, so every worker count is timed over the same amount of work;
* **time to target**: seconds (and steps) until the average training return of the last 20 episodes reaches
  ``TARGET``, in a second run per seed, as in the chapter.

Goal (from the comparison's brief): the throughput of k workers is at least ``0.6 * k`` times one worker's,
up to the number of cores. The record keeps the machine's core count and its load average at the start: on a
machine busy with other work no parallel program scales, and the numbers must say so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from . import report

TARGET = 195.0  # the chapter's full-mode timing target (20-episode training average)
GOAL = 0.6  # throughput of k workers >= GOAL * k * one worker's


def run(
    worker_counts: Sequence[int] = (1, 2, 4, 8),
    seeds: Sequence[int] = (0, 1),
    throughput_steps: int = 100_000,
    target_budget: int = 200_000,
    target: float | None = TARGET,
    timeout_s: float = 600.0,
) -> dict:
    """Time every worker count on every seed; ``target=None`` skips the time-to-target runs."""
    import torch

    from helpers import a3c, rl

    torch.set_num_threads(1)  # the runner only waits; the workers set 1 thread each
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    rows = []
    for seed in seeds:
        for k in worker_counts:
            cfg = a3c.A3CConfig(total_steps=throughput_steps, seed=seed)
            res = a3c.run_a3c(cfg, k, timeout_s=timeout_s, progress=False)
            row = {
                "workers": k,
                "seed": seed,
                "backend": res.backend,
                "steps": res.total_steps,
                "train_s": res.wall_time,
                "startup_s": res.startup_time,
                "steps_per_s": res.total_steps / res.wall_time,
                "staleness": res.mean_staleness,
            }
            if target is not None:
                cfg = a3c.A3CConfig(total_steps=target_budget, seed=seed)
                hit = a3c.run_a3c(
                    cfg, k, target=target, timeout_s=timeout_s, progress=False
                )
                row |= {
                    "time_to_target_s": hit.time_to_target,
                    "steps_to_target": hit.steps_to_target,
                }
            rows.append(row)
            print(
                f"A3C {k} worker(s), seed {seed}: {row['steps_per_s']:,.0f} steps/s"
                + (
                    f", target after {row['time_to_target_s']:.1f} s"
                    if row.get("time_to_target_s") is not None
                    else ""
                ),
                flush=True,
            )
    return {
        "rows": rows,
        "summary": summarise(rows),
        "worker_counts": list(worker_counts),
        "seeds": list(seeds),
        "throughput_steps": throughput_steps,
        "target": target,
        "target_budget": target_budget,
        "usable_cores": rl.usable_cores(),
        "load_average_at_start": list(load) if load else None,
        "goal": GOAL,
    }


def summarise(rows: Sequence[Mapping]) -> list[dict]:
    """Median over seeds per worker count, the speed-up over one worker and whether the goal is met."""
    counts = sorted({r["workers"] for r in rows})
    rate = {
        k: float(np.median([r["steps_per_s"] for r in rows if r["workers"] == k]))
        for k in counts
    }
    out = []
    for k in counts:
        times = [
            r["time_to_target_s"]
            for r in rows
            if r["workers"] == k and r.get("time_to_target_s") is not None
        ]
        speedup = rate[k] / rate[counts[0]] * counts[0]
        out.append(
            {
                "workers": k,
                "steps_per_s": rate[k],
                "speedup": speedup,
                "goal_met": speedup >= GOAL * k,
                "time_to_target_s": float(np.median(times)) if times else None,
                "reached": len(times),
                "runs": sum(r["workers"] == k for r in rows),
            }
        )
    return out


def markdown(result: Mapping) -> list[str]:
    cores, load = result["usable_cores"], result.get("load_average_at_start")
    busy = (
        f"; load average {load[0]:.1f} when it started"
        + (
            " (other work was running: read the numbers as a lower bound)"
            if load[0] > 1
            else ""
        )
        if load
        else ""
    )
    lines = [
        "### A3C: throughput and time to target against the number of workers",
        "",
        f"The A3C chapter's configuration on CartPole-v1, real worker processes (spawn), seeds "
        f"{', '.join(map(str, result['seeds']))}; medians over the seeds. Throughput over "
        f"{result['throughput_steps']:,} environment steps with no early stop; "
        + (
            f"time to a training average of {result['target']:g} in a second run "
            f"(budget {result['target_budget']:,} steps). "
            if result["target"] is not None
            else "no time-to-target runs. "
        )
        + f"{cores} usable cores{busy}. Measured on {report.describe(result['machine'])}.",
        "",
    ]
    rows = [
        [
            str(s["workers"]),
            f"{s['steps_per_s']:,.0f}",
            f"{s['speedup']:.2f}x",
            f"≥ {result['goal'] * s['workers']:.1f}x: "
            + ("met" if s["goal_met"] else "**not met**")
            + (" (more workers than cores)" if s["workers"] > cores else ""),
            (
                "—"
                if result["target"] is None
                else f"{s['time_to_target_s']:.1f} s ({s['reached']}/{s['runs']})"
                if s["time_to_target_s"] is not None
                else f"not reached (0/{s['runs']})"
            ),
        ]
        for s in result["summary"]
    ]
    lines += report.table(
        [
            "workers",
            "steps / s",
            "speed-up",
            "goal",
            "time to target (reached)",
        ],
        rows,
        "rrrlr",
    )
    return lines
