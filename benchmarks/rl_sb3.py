"""DQN, PPO and A2C on CartPole-v1: the book's implementations against Stable-Baselines3 (SB3).

Protocol, the same for both sides:

* **Recipes.** SB3 runs with the rl-baselines3-zoo hyper-parameters for CartPole-v1 (``ZOO`` below, copied from
  the zoo's ``hyperparams/{dqn,ppo,a2c}.yml``); ours with the settings of the book's chapters.
* **Budget.** The zoo's ``n_timesteps`` for both (DQN 50k, PPO 100k, A2C 500k environment steps), same seeds.
* **Gate.** Every ``EVAL_EVERY`` steps (at the first update boundary past each multiple) the greedy policy plays
  ``EVAL_EPISODES`` episodes with fixed seeds; the run stops at the first evaluation with a mean return >= 475.
  "Steps to 475" is that step count; a run that never gets there counts as not reached.
* **Final return.** The greedy policy at the stop plays 20 fresh episodes (other seeds).
* **Speed.** Wall-clock seconds of training per 10,000 environment steps, evaluations excluded, one CPU thread per
  run; with ``jobs=2`` the two sides of a seed run at the same time, one per core, so they share the machine alike.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from . import report

ENV_ID = "CartPole-v1"
TARGET = 475.0
EVAL_EPISODES, EVAL_SEED = (
    10,
    50_000,
)  # gate evaluations (as in the DQN and PPO chapters)
FINAL_EPISODES, FINAL_SEED = 20, 10_000  # the reported final return
BUDGET = {"DQN": 50_000, "PPO": 100_000, "A2C": 500_000}  # the zoo's n_timesteps
EVAL_EVERY = {"DQN": 1_000, "PPO": 1_000, "A2C": 5_000}
ZOO = {  # rl-baselines3-zoo, hyperparams/*.yml, CartPole-v1 (lin_x = linear decay from x to 0)
    "DQN": dict(
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1000,
        gamma=0.99,
        target_update_interval=10,
        train_freq=256,
        gradient_steps=128,
        exploration_fraction=0.16,
        exploration_final_eps=0.04,
        policy_kwargs=dict(net_arch=[256, 256]),
    ),
    "PPO": dict(
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate="lin_0.001",
        clip_range="lin_0.2",
    ),
    "A2C": dict(ent_coef=0.0),
}
ZOO_ENVS = {"DQN": 1, "PPO": 8, "A2C": 8}


def _linear(start: float):
    return lambda progress_remaining: progress_remaining * start


def _sb3_kwargs(algo: str) -> dict:
    kwargs = dict(ZOO[algo])
    for key, value in kwargs.items():
        if isinstance(value, str) and value.startswith("lin_"):
            kwargs[key] = _linear(float(value[4:]))
    return kwargs


def _final_return(policy) -> float:
    from helpers import rl

    return float(
        rl.evaluate_policy(
            policy, ENV_ID, episodes=FINAL_EPISODES, seed=FINAL_SEED
        ).mean()
    )


def run_sb3(algo: str, seed: int, budget: int, eval_every: int) -> dict:
    """One SB3 run with the zoo's recipe, stopped at the gate; evaluations happen at rollout boundaries, when the
    model has been trained on every step counted (the same moment as in our trainers)."""
    import stable_baselines3 as sb3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from helpers import rl

    class Gate(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.steps: list[int] = []
            self.returns: list[float] = []
            self.eval_time, self.stop, self.next_eval = 0.0, False, eval_every

        def _evaluate(self) -> None:
            start = time.perf_counter()
            policy = lambda obs: int(self.model.predict(obs, deterministic=True)[0])  # noqa: E731
            score = float(
                rl.evaluate_policy(
                    policy, ENV_ID, episodes=EVAL_EPISODES, seed=EVAL_SEED
                ).mean()
            )
            self.eval_time += time.perf_counter() - start
            self.steps.append(self.num_timesteps)
            self.returns.append(score)
            self.next_eval = (self.num_timesteps // eval_every + 1) * eval_every
            self.stop = score >= TARGET

        def _on_rollout_start(self) -> None:
            if self.num_timesteps >= self.next_eval:
                self._evaluate()

        def _on_step(self) -> bool:
            return not self.stop

        def _on_training_end(self) -> None:
            if not self.stop and (
                not self.steps or self.steps[-1] < self.num_timesteps
            ):
                self._evaluate()

    env = make_vec_env(ENV_ID, n_envs=ZOO_ENVS[algo], seed=seed)
    model = getattr(sb3, algo)(
        "MlpPolicy", env, seed=seed, device="cpu", verbose=0, **_sb3_kwargs(algo)
    )
    gate = Gate()
    start = time.perf_counter()
    model.learn(total_timesteps=budget, callback=gate)
    wall = time.perf_counter() - start - gate.eval_time
    env.close()
    final = _final_return(lambda obs: int(model.predict(obs, deterministic=True)[0]))
    return {
        "eval_steps": gate.steps,
        "eval_returns": gate.returns,
        "steps_done": int(model.num_timesteps),
        "train_s": wall,
        "final_return": final,
    }


def run_ours(algo: str, seed: int, budget: int, eval_every: int) -> dict:
    """One run of the book's implementation (``helpers``) with its chapter's settings, stopped at the gate."""
    from helpers import a2c, dqn, ppo, rl

    common = dict(
        eval_every=eval_every, eval_episodes=EVAL_EPISODES, eval_seed=EVAL_SEED
    )
    if algo == "DQN":
        res = dqn.train_dqn(
            dqn.DQNConfig(
                env_id=ENV_ID,
                total_steps=budget,
                stop_return=TARGET,
                seed=seed,
                **common,
            ),
            progress=False,
        )
        steps, returns, done = res.eval_steps, res.eval_returns, res.steps_done
        train_s, policy = (
            res.wall_time_s - res.eval_time_s,
            rl.torch_policy(res.last_net),
        )
    elif algo == "PPO":
        cfg = ppo.PPOConfig(
            epochs=10
        )  # the PPO chapter's CartPole recipe (other fields are the defaults)
        res = ppo.train_ppo(
            ENV_ID, budget, cfg, seed=seed, progress=False, stop_return=TARGET, **common
        )
        steps, returns, done, train_s, policy = (
            res.eval_steps,
            res.eval_returns,
            res.env_steps,
            res.wall_time,
            res.policy(ENV_ID),
        )
    elif algo == "A2C":
        res = a2c.train_a2c(
            ENV_ID,
            seed=seed,
            total_steps=budget,
            stop_eval_return=TARGET,
            progress=False,
            **common,
        )
        steps, returns, done, train_s, policy = (
            res.eval_steps,
            res.eval_returns,
            res.total_steps,
            res.wall_time,
            rl.torch_policy(res.model),
        )
    else:
        raise ValueError(f"unknown algorithm {algo!r}")
    return {
        "eval_steps": list(steps),
        "eval_returns": list(returns),
        "steps_done": int(done),
        "train_s": train_s,
        "final_return": _final_return(policy),
    }


def _task(args: tuple) -> dict:
    impl, algo, seed, budget, eval_every = args
    import torch

    torch.set_num_threads(1)
    out = (run_ours if impl == "ours" else run_sb3)(algo, seed, budget, eval_every)
    reached = next(
        (s for s, r in zip(out["eval_steps"], out["eval_returns"]) if r >= TARGET), None
    )
    return {
        "impl": impl,
        "algo": algo,
        "seed": seed,
        "budget": budget,
        "steps_to_target": reached,
        "s_per_10k_steps": 1e4 * out["train_s"] / max(out["steps_done"], 1),
        **out,
    }


def run(
    seeds: Sequence[int] = range(5),
    algos: Sequence[str] = ("DQN", "PPO", "A2C"),
    jobs: int = 2,
    budget_scale: float = 1.0,
    progress: bool = True,
) -> dict:
    """Run every (algorithm, implementation, seed) and summarise; ``budget_scale`` < 1 only for smoke tests."""
    tasks = [
        (impl, algo, seed, max(1, int(BUDGET[algo] * budget_scale)), EVAL_EVERY[algo])
        for algo in algos
        for seed in seeds
        for impl in ("ours", "sb3")
    ]
    start = time.perf_counter()
    runs = []
    if jobs > 1:
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            for r in pool.map(_task, tasks):
                runs.append(r)
                if progress:
                    _print_run(r)
    else:
        for t in tasks:
            runs.append(_task(t))
            if progress:
                _print_run(runs[-1])
    return {
        "runs": runs,
        "summary": summarise(runs),
        "settings": {
            "env": ENV_ID,
            "target": TARGET,
            "seeds": list(seeds),
            "budget": {a: BUDGET[a] * budget_scale for a in algos},
            "eval_every": {a: EVAL_EVERY[a] for a in algos},
            "eval_episodes": EVAL_EPISODES,
            "final_episodes": FINAL_EPISODES,
            "jobs": jobs,
            "zoo": {a: ZOO[a] for a in algos},
        },
        "total_wall_s": time.perf_counter() - start,
    }


def _print_run(r: Mapping) -> None:
    print(
        f"{r['algo']} {r['impl']:4s} seed {r['seed']}: steps to {TARGET:.0f} {r['steps_to_target']}, final "
        f"{r['final_return']:.1f}, {r['s_per_10k_steps']:.2f} s / 10k steps",
        flush=True,
    )


def summarise(runs: Sequence[Mapping]) -> dict:
    """Per algorithm: both sides' steps to the gate, final return and speed, their ratios and the two goals."""
    out = {}
    for algo in dict.fromkeys(r["algo"] for r in runs):
        side = {
            impl: [r for r in runs if r["algo"] == algo and r["impl"] == impl]
            for impl in ("ours", "sb3")
        }
        s = {}
        for impl, rs in side.items():
            budget = rs[0]["budget"]
            steps = [r["steps_to_target"] for r in rs]
            s[impl] = {
                "steps": steps,
                "reached": sum(x is not None for x in steps),
                "n": len(rs),
                # a run that never reached the gate counts as the whole budget (a lower bound on its cost)
                "steps_or_budget_mean": float(
                    np.mean([x if x is not None else budget for x in steps])
                ),
                "final_return": [r["final_return"] for r in rs],
                "s_per_10k": [r["s_per_10k_steps"] for r in rs],
            }
        steps_ratio = (
            s["ours"]["steps_or_budget_mean"] / s["sb3"]["steps_or_budget_mean"]
        )
        speed_ratio = float(
            np.mean(s["ours"]["s_per_10k"]) / np.mean(s["sb3"]["s_per_10k"])
        )
        s["steps_ratio"], s["time_ratio"] = steps_ratio, speed_ratio
        s["goal_steps_met"] = (
            s["ours"]["reached"] >= s["sb3"]["reached"] and steps_ratio <= 1.0
        )
        s["goal_speed_met"] = speed_ratio <= 1.0
        out[algo] = s
    return out


def markdown(result: Mapping) -> list[str]:
    st, m = result["settings"], result["machine"]
    lines = [
        "### DQN, PPO and A2C on CartPole-v1: the book vs Stable-Baselines3",
        "",
        f"{len(st['seeds'])} seeds per side; SB3 {m.get('stable_baselines3', '?')} with the rl-baselines3-zoo "
        f"hyper-parameters, ours with the chapters' settings; the same budget (the zoo's) for both; greedy "
        f"evaluation ({st['eval_episodes']} episodes) every {', '.join(f'{a} {v:,}' for a, v in st['eval_every'].items())} "
        f"steps, stop at a mean of {st['target']:.0f}. Speed: seconds of training per 10,000 environment steps on "
        f"one CPU thread, evaluations excluded. Measured on {report.describe(m)}; {result['total_wall_s'] / 60:.1f} "
        f"min for all runs.",
        "",
    ]
    rows = []
    for algo, s in result["summary"].items():
        for impl, label in (("ours", "ours"), ("sb3", "SB3")):
            d = s[impl]
            rows.append(
                [
                    f"{algo} ({label})",
                    f"{d['reached']}/{d['n']}",
                    report.mean_std(d["steps"]),
                    report.mean_std(d["final_return"], "{:.1f}"),
                    report.mean_std(d["s_per_10k"], "{:.2f}"),
                    f"{st['budget'][algo]:,.0f}",
                ]
            )
    lines += report.table(
        [
            "algorithm",
            "reached 475",
            "steps to 475",
            "final greedy return",
            "s / 10k steps",
            "budget",
        ],
        rows,
    )
    lines += [
        "",
        "Ratios ours / SB3 (steps: mean over seeds, a run that never reached 475 counted as the whole "
        "budget) and the two goals of the comparison:",
        "",
    ]
    rows = [
        [
            algo,
            f"{s['steps_ratio']:.2f}",
            "met" if s["goal_steps_met"] else "**not met**",
            f"{s['time_ratio']:.2f}",
            "met" if s["goal_speed_met"] else "**not met**",
        ]
        for algo, s in result["summary"].items()
    ]
    lines += report.table(
        [
            "algorithm",
            "steps ratio",
            "no more steps than SB3",
            "time ratio per step",
            "at least as fast",
        ],
        rows,
        "lrlrl",
    )
    return lines
