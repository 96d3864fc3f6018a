"""Which settings decide how many environment steps the A2C chapter's agent needs on CartPole-v1.

``python -m benchmarks a2c-ablation`` runs variants of the chapter's recipe, and Stable-Baselines3's A2C with the
rl-baselines3-zoo settings as the yardstick, under the protocol of :mod:`benchmarks.rl_sb3` (budget 500,000 steps,
greedy evaluation of 10 episodes every 5,000 steps, stop at a mean of 475), each on many seeds.

Why many seeds: with the chapter's recipe one run needed anywhere from 10,000 to 70,000 steps depending on its seed
(SB3: 5,000 to 85,000), so the 5 seeds of the side-by-side comparison cannot tell two recipes apart, or ours from
SB3's. Every variant ran on
``SELECT_SEEDS``; the most promising ones (and the chapter's recipe and SB3) ran again on ``CONFIRM_SEEDS``, chosen
after the first look, to check on seeds that played no part in picking them. Each variant changes the arguments of
``helpers.a2c.train_a2c``, whose defaults are the chapter's recipe.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from . import report, rl_sb3

SELECT_SEEDS, CONFIRM_SEEDS = range(25), range(25, 50)
# name -> (what it is, the arguments of helpers.a2c.train_a2c that differ from its defaults)
VARIANTS: dict[str, tuple[str, dict]] = {
    "chapter": ("the chapter's recipe: Adam, learning rates 1e-3, entropy 0.01", {}),
    "no entropy": (
        "without the entropy bonus (the zoo's ent_coef 0)",
        dict(ent_coef=0.0),
    ),
    "actor 2e-3": ("actor learning rate 2e-3", dict(actor_lr=2e-3)),
    "critic 2e-3": ("critic learning rate 2e-3", dict(critic_lr=2e-3)),
    "critic 3e-3": ("critic learning rate 3e-3", dict(critic_lr=3e-3)),
    "lr 1.5e-3": ("learning rates 1.5e-3", dict(actor_lr=1.5e-3, critic_lr=1.5e-3)),
    "lr 2e-3": ("learning rates 2e-3", dict(actor_lr=2e-3, critic_lr=2e-3)),
    "lr 2.5e-3": ("learning rates 2.5e-3", dict(actor_lr=2.5e-3, critic_lr=2.5e-3)),
    "lr 3e-3": ("learning rates 3e-3", dict(actor_lr=3e-3, critic_lr=3e-3)),
    "lr 2e-3, no entropy": (
        "learning rates 2e-3, no entropy bonus",
        dict(actor_lr=2e-3, critic_lr=2e-3, ent_coef=0.0),
    ),
    "lr 2e-3, entropy 0.005": (
        "learning rates 2e-3, entropy bonus 0.005",
        dict(actor_lr=2e-3, critic_lr=2e-3, ent_coef=0.005),
    ),
    "lr 2e-3, 4 copies": (
        "learning rates 2e-3, 4 environment copies",
        dict(actor_lr=2e-3, critic_lr=2e-3, n_envs=4),
    ),
    "lr 2e-3, 10 steps": (
        "learning rates 2e-3, 10 steps per update",
        dict(actor_lr=2e-3, critic_lr=2e-3, n_steps=10),
    ),
}


def run_variant(name: str, seed: int, budget_scale: float = 1.0) -> int | None:
    """Steps to the gate of one run: SB3 (``name == "sb3"``) or a variant of the chapter's A2C; ``budget_scale``
    < 1 shrinks the budget, not the evaluation interval (smoke tests only, as in :func:`benchmarks.rl_sb3.run`)."""
    import torch

    torch.set_num_threads(1)
    budget = max(1, int(rl_sb3.BUDGET["A2C"] * budget_scale))
    every = rl_sb3.EVAL_EVERY["A2C"]
    if name == "sb3":
        out = rl_sb3.run_sb3("A2C", seed, budget, every)
        steps, returns = out["eval_steps"], out["eval_returns"]
    else:
        from helpers import a2c

        res = a2c.train_a2c(
            rl_sb3.ENV_ID,
            seed=seed,
            total_steps=budget,
            stop_eval_return=rl_sb3.TARGET,
            progress=False,
            eval_every=every,
            eval_episodes=rl_sb3.EVAL_EPISODES,
            eval_seed=rl_sb3.EVAL_SEED,
            **VARIANTS[name][1],
        )
        steps, returns = res.eval_steps, res.eval_returns
    return next((s for s, r in zip(steps, returns) if r >= rl_sb3.TARGET), None)


def _task(args: tuple[str, int, float]) -> dict:
    return {"name": args[0], "seed": args[1], "steps": run_variant(*args)}


def run(
    names: Sequence[str] = ("sb3", *VARIANTS),
    seeds: Sequence[int] = (*SELECT_SEEDS, *CONFIRM_SEEDS),
    jobs: int = 2,
    budget_scale: float = 1.0,
) -> dict:
    """Every (variant, seed): the steps to 475 of each run, and a summary per variant. An A2C run took a few
    seconds and an SB3 run up to about 20 on one thread of the record's 2-core machine, so everything is roughly
    half an hour with 2 jobs; the runs are independent, so more jobs divide that."""
    tasks = [(n, s, budget_scale) for s in seeds for n in names]
    if jobs > 1:
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            runs = list(pool.map(_task, tasks))
    else:
        runs = [_task(t) for t in tasks]
    return {"runs": runs, "summary": summarise(runs), "settings": _settings()}


def _settings() -> dict:
    return {
        "env": rl_sb3.ENV_ID,
        "target": rl_sb3.TARGET,
        "budget": rl_sb3.BUDGET["A2C"],
        "eval_every": rl_sb3.EVAL_EVERY["A2C"],
        "eval_episodes": rl_sb3.EVAL_EPISODES,
        "select_seeds": list(SELECT_SEEDS),
        "confirm_seeds": list(CONFIRM_SEEDS),
        "variants": {k: {"label": v[0], "args": v[1]} for k, v in VARIANTS.items()},
    }


def summarise(runs: Sequence[Mapping]) -> dict:
    """Per variant and seed group: runs, how many reached 475, mean, std and median of the steps (a run that never
    reached it counted as the whole budget, as in :func:`benchmarks.rl_sb3.summarise`)."""
    budget = rl_sb3.BUDGET["A2C"]
    groups = {"select": set(SELECT_SEEDS), "confirm": set(CONFIRM_SEEDS)}
    out: dict = {}
    for name in dict.fromkeys(r["name"] for r in runs):
        out[name] = {}
        for group, members in {**groups, "all": None}.items():
            steps = [
                r["steps"]
                for r in runs
                if r["name"] == name and (members is None or r["seed"] in members)
            ]
            if not steps:
                continue
            x = np.array([budget if s is None else s for s in steps], float)
            out[name][group] = {
                "n": len(steps),
                "reached": sum(s is not None for s in steps),
                "mean": float(x.mean()),
                "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
                "median": float(np.median(x)),
            }
    return out


def ratio_to_sb3(runs: Sequence[Mapping], name: str) -> float | None:
    """Mean steps of ``name`` over mean steps of SB3, on the seeds both ran (misses counted as the budget)."""
    budget = rl_sb3.BUDGET["A2C"]
    steps = {(r["name"], r["seed"]): r["steps"] for r in runs}
    seeds = [s for (n, s) in steps if n == name and ("sb3", s) in steps]
    if not seeds:
        return None

    def mean(n: str) -> float:
        return float(
            np.mean([budget if steps[n, s] is None else steps[n, s] for s in seeds])
        )

    return mean(name) / mean("sb3")


def markdown(result: Mapping) -> list[str]:
    st, summary = result["settings"], result["summary"]
    labels = {"sb3": "Stable-Baselines3, the zoo's recipe"} | {
        k: v["label"] for k, v in st["variants"].items()
    }

    def cell(name: str, group: str) -> str:
        s = summary[name].get(group)
        if s is None:
            return "—"
        return f"{s['mean']:,.0f} ± {s['std']:,.0f} ({s['reached']}/{s['n']})"

    def ratio(name: str) -> str:
        value = ratio_to_sb3(result["runs"], name) if name != "sb3" else None
        return "—" if value is None else f"{value:.2f}"

    rows = [
        [
            labels.get(name, name),
            cell(name, "select"),
            cell(name, "confirm"),
            f"{summary[name]['all']['median']:,.0f}",
            ratio(name),
        ]
        for name in summary
    ]
    sel, conf = st["select_seeds"], st["confirm_seeds"]
    return [
        "### A2C on CartPole-v1: what decides the steps to 475",
        "",
        f"The protocol of the comparison above (budget {st['budget']:,} steps, evaluation every "
        f"{st['eval_every']:,} steps, stop at {st['target']:.0f}), each variant of the A2C chapter's recipe on many "
        f"seeds. Steps to 475 as mean ± std over seeds (runs that reached it / runs); every variant ran on seeds "
        f"{sel[0]}-{sel[-1]} (or some of them), the most promising ones, the chapter's recipe and "
        f"Stable-Baselines3 again on seeds {conf[0]}-{conf[-1]}, chosen after the first look. Ratio: mean steps "
        "over Stable-Baselines3's on the seeds both ran.",
        "",
        *report.table(
            [
                "recipe",
                f"seeds {sel[0]}-{sel[-1]}",
                f"seeds {conf[0]}-{conf[-1]}",
                "median, all seeds",
                "ratio to SB3",
            ],
            rows,
        ),
    ]
