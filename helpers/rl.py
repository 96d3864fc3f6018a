"""Reinforcement-learning utilities shared by the RL chapters: environments, evaluation, curves, a policy net.

Everything uses gymnasium's API (``reset`` returns ``(obs, info)``, ``step`` returns
``(obs, reward, terminated, truncated, info)``). The algorithm a chapter teaches (the Q-learning update,
DQN's loss, PPO's clipped objective, ...) stays in its notebook or in its own module; this file only holds
what every RL chapter needs the same way, so that results are measured identically everywhere:

- :func:`make_env` / :func:`make_vector_env`: seeded environments (and :func:`register_minatar`: small
  Atari-like games played from pixels);
- :func:`evaluate_policy`: a *separate* greedy run on fresh episodes, the number every chapter reports;
- :func:`plot_returns`: mean ± std over seeds against environment steps;
- :func:`curve_area`: the area under one learning curve, a measure of learning speed;
- :class:`ActorCritic`: the small policy/value network used by the policy-gradient chapters;
- :func:`run_many`: independent training runs (seeds, settings) side by side, one CPU core each.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import cloudpickle  # installed with gymnasium
import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal
from tqdm.auto import tqdm

MINATAR_GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")


def register_minatar(max_episode_steps: int = 10_000) -> None:
    """Register the MinAtar games (``MinAtar/Breakout-v1``, ...) with gymnasium, each with a time limit.

    MinAtar (Young & Tian, 2019) shrinks five Atari games to 10x10 pixel grids, one channel per kind of
    object, so that learning from pixels fits on a CPU. Why register here: the package registers nothing
    when imported, and its games have no time limit, so a good greedy agent could play one episode
    forever. Versions ``-v1`` use each game's minimal action set. Needs the ``minatar`` package.
    """
    import minatar.gym  # noqa: F401  (fails clearly here if the package is missing)

    for game in MINATAR_GAMES:
        env_id = f"MinAtar/{game.title().replace('_', '')}-v1"
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="minatar.gym:BaseEnv",
                kwargs={"game": game, "use_minimal_action_set": True},
                max_episode_steps=max_episode_steps,
            )


def ensure_registered(env_id: str) -> None:
    """Register the environments of optional packages (MinAtar) before ``gym.make(env_id)`` needs them."""
    if env_id.startswith("MinAtar/"):
        register_minatar()


def make_env(env_id: str, seed: int | None = None, **kwargs) -> gym.Env:
    """Create a gymnasium environment that records episode returns and lengths in ``info["episode"]``.

    Seeding happens once here (reset and action space) so that a chapter re-run gives the same episodes;
    later ``env.reset()`` calls without a seed continue the same random stream.
    """
    ensure_registered(env_id)
    env = gym.wrappers.RecordEpisodeStatistics(gym.make(env_id, **kwargs))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def make_vector_env(
    env_id: str, num_envs: int, seed: int = 0, **kwargs
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of an environment stepped together in this process (no subprocesses: safe in notebooks).

    Copy ``i`` is seeded with ``seed + i``. Vector environments reset a finished copy automatically.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")
    ensure_registered(env_id)
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id, **kwargs) for _ in range(num_envs)]
    )
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    envs.reset(seed=[seed + i for i in range(num_envs)])
    envs.action_space.seed(seed)
    return envs


def evaluate_policy(
    policy: Callable[[np.ndarray], int | np.ndarray],
    env_id: str,
    episodes: int = 100,
    seed: int = 10_000,
    **kwargs,
) -> np.ndarray:
    """Returns of ``episodes`` complete episodes of ``policy`` (observation -> action), one seed per episode.

    Why a separate run: returns seen *during* training mix exploration noise and a policy that changes
    within the episode. The number a chapter reports is this one: the final policy, acting greedily
    (the caller passes a deterministic policy), on fresh episodes seeded apart from the training ones.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    ensure_registered(env_id)
    env = gym.make(env_id, **kwargs)
    returns = np.zeros(episodes)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            returns[i] += float(reward)
            done = terminated or truncated
    env.close()
    return returns


def module_device(model: object) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for anything else.

    Why: code that builds input tensors from NumPy observations must put them where the
    network lives, which on a GPU machine may be CUDA; asking the module itself avoids a
    second argument that is easy to forget.
    """
    if isinstance(model, nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            return tensor.device
    return torch.device("cpu")


def torch_policy(
    model: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device | str | None = None,
    continuous: bool = False,
) -> Callable[[np.ndarray], int | np.ndarray]:
    """Wrap a network that maps a batch of observations to action scores (or actions) into a greedy policy.

    For discrete actions the policy takes the arg-max of the scores (Q-values or logits); with
    ``continuous=True`` it returns the network's output itself (e.g. the mean of a Gaussian policy).
    Observations go to ``device``, by default the device of the model's parameters.
    """
    if device is None:
        device = module_device(model)

    @torch.no_grad()
    def act(obs: np.ndarray) -> int | np.ndarray:
        out = model(
            torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0)
        )[0]
        return out.cpu().numpy() if continuous else int(out.argmax())

    return act


def mean_std(values: Sequence[float] | np.ndarray, digits: int = 1) -> str:
    """``"mean ± std (n=...)"``: how every RL chapter prints a result over seeds or episodes.

    One decimal suits returns; pass more ``digits`` for values near 1 (ratios, success rates), where one decimal
    would show 0.988 as a perfect 1.0.
    """
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f} (n={v.size})"


def moving_average(x: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values (shorter at the start), same length as ``x``."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    x = np.asarray(x, dtype=float)
    csum = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    return (csum[idx] - csum[lo]) / (idx - lo)


def curve_area(
    steps: Sequence[float] | np.ndarray,
    returns: Sequence[float] | np.ndarray,
    budget: float,
    window: int = 20,
    points: int = 201,
) -> float:
    """Area under a learning curve divided by its length: the average height of the
    training return over environment steps 0 .. ``budget``, in return units.

    ``steps[i]`` is the environment step at which training episode ``i`` ended and
    ``returns[i]`` its return; the curve is their ``window``-episode moving average,
    read off at ``points`` evenly spaced steps (the first value holds before the
    first episode ends, the last one until ``budget``). Why this measure of learning
    speed: it is defined for every run, also for one that never reaches a target
    return, where "steps until the return first reached X" is undefined (two runs
    that both miss X would compare as equal, infinity against infinity); and it
    rewards reaching high returns early.
    A run without a finished episode has area 0.
    """
    if budget <= 0:
        raise ValueError(f"budget must be positive, got {budget}")
    steps, returns = np.asarray(steps, dtype=float), np.asarray(returns, dtype=float)
    if steps.size == 0:
        return 0.0
    grid = np.linspace(0.0, budget, points)
    return float(np.mean(np.interp(grid, steps, moving_average(returns, window))))


def plot_returns(
    runs: Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]],
    *,
    title: str,
    target: float | None = None,
    window: int = 10,
    points: int = 200,
    ax: plt.Axes | None = None,
) -> plt.Figure:
    """Episode return against environment steps: for each label, the mean over seeds with a ± std band.

    ``runs[label]`` is one ``(steps, returns)`` pair per seed: the environment step at which each training
    episode ended and its return. Each seed's curve is smoothed with a ``window``-episode moving average and
    interpolated onto a common step grid, because seeds finish episodes at different steps.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4))
    else:
        fig = ax.figure
    for i, (label, seeds) in enumerate(runs.items()):
        seeds = [
            (np.asarray(s, float), np.asarray(r, float)) for s, r in seeds if len(s) > 0
        ]
        if not seeds:
            continue
        end = min(s[-1] for s, _ in seeds)
        grid = np.linspace(0, end, points)
        curves = np.stack(
            [np.interp(grid, s, moving_average(r, window)) for s, r in seeds]
        )
        mean, std = curves.mean(0), curves.std(0)
        ax.plot(grid, mean, color=f"C{i}", label=f"{label} (n={len(seeds)})")
        if len(seeds) > 1:
            ax.fill_between(grid, mean - std, mean + std, color=f"C{i}", alpha=0.2)
    if target is not None:
        ax.axhline(target, color="k", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"episode return ({window}-episode moving average)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


class ActorCritic(nn.Module):
    """A policy (actor) and a state-value function (critic), two separate MLPs on the same observation.

    Separate networks are the robust default for small control tasks: the value loss, whose scale changes
    with the returns, cannot disturb the policy's features. For discrete actions the actor outputs logits of
    a categorical distribution; for continuous actions it outputs the mean of a Gaussian whose log standard
    deviation is a learned, state-independent parameter.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        *,
        continuous: bool = False,
        hidden: int = 64,
        log_std_init: float = 0.0,
    ) -> None:
        super().__init__()
        if obs_dim < 1 or action_dim < 1:
            raise ValueError(
                f"obs_dim and action_dim must be positive, got {obs_dim} and {action_dim}"
            )
        self.continuous = continuous

        def mlp(out: int, out_gain: float) -> nn.Sequential:
            net = nn.Sequential(
                nn.Linear(obs_dim, hidden),
                nn.Tanh(),
                nn.Linear(hidden, hidden),
                nn.Tanh(),
                nn.Linear(hidden, out),
            )
            # Orthogonal initialisation with a small last layer: the usual choice for PPO/A2C, which starts the
            # policy close to uniform and the value estimates close to zero.
            for layer in net:
                if isinstance(layer, nn.Linear):
                    nn.init.orthogonal_(
                        layer.weight, gain=out_gain if layer is net[-1] else np.sqrt(2)
                    )
                    nn.init.zeros_(layer.bias)
            return net

        self.actor = mlp(action_dim, 0.01)
        self.critic = mlp(1, 1.0)
        if continuous:
            self.log_std = nn.Parameter(torch.full((action_dim,), log_std_init))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """Estimated state value V(s), shape ``(batch,)``."""
        return self.critic(obs).squeeze(-1)

    def distribution(self, obs: torch.Tensor) -> Distribution:
        """The policy's action distribution pi(.|s); ``log_prob`` of an action gives one number per state."""
        out = self.actor(obs)
        if self.continuous:
            return Independent(Normal(out, self.log_std.exp().expand_as(out)), 1)
        return Categorical(logits=out)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The greedy action scores: logits (discrete) or the Gaussian mean (continuous)."""
        return self.actor(obs)


def usable_cores() -> int:
    """Cores this process may run on: the affinity mask (which containers and job schedulers narrow), else every
    core the operating system reports."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parallel_jobs(n_runs: int) -> int:
    """How many runs :func:`run_many` puts side by side: ``DLBOOK_JOBS`` if set, else the CPU threads this process
    was given (``OMP_NUM_THREADS``, as the book's runners and CI set it), else every core; at most ``n_runs``.

    One run per core: the RL networks are tiny, so a run is fastest on one thread, and runs that share nothing scale
    with the cores. Where several notebooks already share the machine (CI), the thread budget is 1: the runs stay
    in this process, one after the other, exactly as written.
    """
    setting = os.environ.get("DLBOOK_JOBS") or os.environ.get("OMP_NUM_THREADS")
    jobs = int(setting) if setting and setting.isdigit() else usable_cores()
    return max(1, min(jobs, n_runs))


def _one_thread() -> None:
    torch.set_num_threads(1)
    os.environ["TQDM_DISABLE"] = (
        "1"  # a worker's bars would go to the terminal, not to the notebook
    )


def _call(payload: bytes):
    fn, kwargs = cloudpickle.loads(payload)
    return fn(**kwargs)


def run_many(
    fn: Callable,
    calls: Sequence[Mapping],
    *,
    jobs: int | None = None,
    desc: str = "runs",
    device: torch.device | str | None = None,
) -> list:
    """``[fn(**kwargs) for kwargs in calls]``, computed by ``jobs`` processes side by side (default
    :func:`parallel_jobs`), in the order of ``calls``.

    ``device`` says where the runs train. Only CPU runs go side by side: on an accelerator they run one after
    the other in this process, since separate processes would each start the accelerator's runtime and then
    share one device anyway.

    Each run seeds itself from its arguments, so the results are the same as one after the other; only the wall
    time changes. The worker processes are *spawned* (fresh interpreters), which is safe in Jupyter on every
    platform, unlike forking a process that already runs PyTorch threads; ``fn`` and its arguments travel by
    ``cloudpickle``, so a function defined in the notebook (an edited loss, say) works too.
    """
    if device is not None and torch.device(device).type != "cpu":
        jobs = 1
    jobs = jobs or parallel_jobs(len(calls))
    if jobs <= 1:
        return [fn(**kwargs) for kwargs in tqdm(calls, desc=desc)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_one_thread) as pool:
        futures = [
            pool.submit(_call, cloudpickle.dumps((fn, dict(kwargs))))
            for kwargs in calls
        ]
        for _ in tqdm(
            as_completed(futures),
            total=len(futures),
            desc=f"{desc} ({jobs} side by side)",
        ):
            pass
        return [f.result() for f in futures]
