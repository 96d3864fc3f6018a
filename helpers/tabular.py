"""Tabular reinforcement learning tools: exact answers from a known model, greedy policies, grid pictures, binning.

The Q-learning chapter learns a table of action values from experience alone. To *check* what it learned we
need the exact answer, and the toy-text environments of gymnasium give it to us: they publish their whole
transition model as ``env.unwrapped.P[s][a] = [(probability, next_state, reward, terminated), ...]``.
This module turns that model into arrays and solves it (value iteration, exact policy evaluation), so a chapter
can compare a learned greedy policy with the true optimum instead of with a noisy estimate. It also draws
policies and value tables on the grid, and bins continuous observations so a table can be tried on CartPole.

The learning algorithms themselves (Q-learning, SARSA) are written out in the chapter, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np

# Grid moves (row change, column change) of each environment's actions. The numbering differs between
# environments (FrozenLake counts LEFT, DOWN, RIGHT, UP; CliffWalking UP, RIGHT, DOWN, LEFT), which is an easy
# way to draw a correct policy with wrong arrows, so it is written down once here.
ACTION_DELTAS: dict[str, dict[int, tuple[int, int]]] = {
    "FrozenLake": {0: (0, -1), 1: (1, 0), 2: (0, 1), 3: (-1, 0)},
    "CliffWalking": {0: (-1, 0), 1: (0, 1), 2: (1, 0), 3: (0, -1)},
    "Taxi": {0: (1, 0), 1: (-1, 0), 2: (0, 1), 3: (0, -1)},
}


def tabular_model(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    """The environment's model as arrays ``(T, R)``: ``T[s, a, s']`` and ``R[s, a]``.

    ``T[s, a, s']`` is the probability of moving to ``s'`` *and the episode going on*; transitions that
    terminate are left out of ``T`` (their row sums to less than one). That single convention encodes the
    rule every RL update must follow: after a true termination there is nothing to bootstrap from, so
    ``Q(s, a) = R(s, a) + gamma * T[s, a] @ V`` is the Bellman equation with terminal states handled.
    ``R[s, a]`` is the expected immediate reward. Time limits (truncation) are not part of the model.
    """
    base = env.unwrapped
    if not hasattr(base, "P"):
        raise ValueError(
            f"{base} publishes no transition model P (only the toy-text environments do)"
        )
    n_states, n_actions = int(env.observation_space.n), int(env.action_space.n)
    T = np.zeros((n_states, n_actions, n_states))
    R = np.zeros((n_states, n_actions))
    for s in range(n_states):
        for a in range(n_actions):
            for prob, s_next, reward, terminated in base.P[s][a]:
                R[s, a] += prob * reward
                if not terminated:
                    T[s, a, int(s_next)] += prob
    return T, R


def value_iteration(
    T: np.ndarray,
    R: np.ndarray,
    gamma: float,
    tol: float = 1e-10,
    max_iter: int = 100_000,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The optimal values ``(V*, Q*, iterations)`` by repeating the Bellman optimality update until it stops moving.

    ``Q(s, a) <- R(s, a) + gamma * sum_s' T(s, a, s') max_a' Q(s', a')``. For ``gamma < 1`` this is a
    contraction and converges from any start; with ``gamma = 1`` it still converges from zero on the
    shortest-path problems used in the book (every step costs, and the goal can be reached from everywhere).
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    V = np.zeros(T.shape[0])
    for it in range(1, max_iter + 1):
        Q = R + gamma * T @ V
        V_new = Q.max(axis=1)
        if np.max(np.abs(V_new - V)) < tol:
            return V_new, Q, it
        V = V_new
    raise RuntimeError(
        f"value iteration did not converge in {max_iter} iterations (gamma={gamma})"
    )


def policy_evaluation(
    T: np.ndarray, R: np.ndarray, actions: Sequence[int] | np.ndarray, gamma: float
) -> np.ndarray:
    """Exact values ``V^pi`` of a deterministic policy (one action per state), by solving a linear system.

    Why exact: the value of a learned greedy policy estimated from sampled episodes is noisy (a FrozenLake
    success rate over 1,000 episodes still wobbles by about 1.5 points); solving
    ``(I - gamma T_pi) V = R_pi`` gives the number itself, so small gaps to the optimum are visible.
    With ``gamma = 1`` every state must reach a terminal state under the policy, otherwise the system is singular.
    """
    actions = np.asarray(actions, dtype=int)
    idx = np.arange(T.shape[0])
    A = np.eye(T.shape[0]) - gamma * T[idx, actions]
    try:
        return np.linalg.solve(A, R[idx, actions])
    except np.linalg.LinAlgError as err:
        raise ValueError(
            "the policy never terminates from some state; use gamma < 1"
        ) from err


def greedy_actions(Q: np.ndarray) -> np.ndarray:
    """``argmax_a Q(s, a)`` for every state (the first best action where several tie)."""
    return np.asarray(Q).argmax(axis=1)


def as_policy(
    actions: Sequence[int] | np.ndarray, encode: Callable[[object], int] | None = None
) -> Callable[[object], int]:
    """A table of actions as a policy ``observation -> action`` for :func:`helpers.rl.evaluate_policy`.

    ``encode`` maps an observation to a table index (e.g. a :class:`Discretiser`); the default is the
    observation itself, which is what the toy-text environments return.
    """
    table = np.asarray(actions, dtype=int)
    if encode is None:
        return lambda obs: int(table[int(obs)])
    return lambda obs: int(table[encode(obs)])


def optimal_action_share(
    Q: np.ndarray,
    Q_star: np.ndarray,
    states: Sequence[int] | np.ndarray | None = None,
    tol: float = 1e-6,
) -> float:
    """Share of ``states`` (default: all) where the greedy action of ``Q`` is optimal under ``Q_star``.

    An action counts as optimal when its true value is within ``tol`` of the best one, so states where
    several actions are equally good (or where nothing matters, e.g. a hole) are not counted as errors.
    """
    states = np.arange(Q.shape[0]) if states is None else np.asarray(states, dtype=int)
    chosen = greedy_actions(Q)[states]
    best = Q_star[states].max(axis=1)
    return float(np.mean(Q_star[states, chosen] >= best - tol))


def reachable_states(
    T: np.ndarray, start_states: Sequence[int] | np.ndarray
) -> np.ndarray:
    """The states an episode can visit from ``start_states`` under *some* policy (sorted).

    Used to judge a learned table only where it can matter: Taxi's 500 states include 100 in which the
    passenger already sits at the destination, which no episode ever reaches (delivery ends the episode).
    """
    seen = np.zeros(T.shape[0], dtype=bool)
    frontier = np.unique(np.asarray(start_states, dtype=int))
    seen[frontier] = True
    while frontier.size:
        nxt = np.flatnonzero(T[frontier].sum(axis=(0, 1)) > 0)
        frontier = nxt[~seen[nxt]]
        seen[frontier] = True
    return np.flatnonzero(seen)


def greedy_path(
    env_id: str,
    actions: Sequence[int] | np.ndarray,
    max_steps: int = 200,
    seed: int = 0,
    **kwargs,
) -> tuple[list[int], float]:
    """Follow a table of actions from the start state: the visited states and the return.

    Used to draw the route a policy takes in a deterministic grid world (it stops after ``max_steps``
    when a policy walks in circles, which an untrained one does).
    """
    env = gym.make(env_id, **kwargs)
    s, _ = env.reset(seed=seed)
    path, total = [int(s)], 0.0
    for _ in range(max_steps):
        s, reward, terminated, truncated, _ = env.step(int(actions[int(s)]))
        path.append(int(s))
        total += float(reward)
        if terminated or truncated:
            break
    env.close()
    return path, total


@dataclass
class GridLayout:
    """What is needed to draw a policy on a grid world: its shape, arrow directions, cell labels, walls."""

    shape: tuple[int, int]
    deltas: dict[int, tuple[int, int]]
    labels: dict[int, str] = field(
        default_factory=dict
    )  # cell index -> letter (S, G, H, C, ...)
    no_arrow: set[int] = field(
        default_factory=set
    )  # cells where the action does not matter
    cell_colors: dict[int, str] = field(default_factory=dict)
    walls: list[tuple[tuple[float, float], tuple[float, float]]] = field(
        default_factory=list
    )


def grid_layout(env: gym.Env) -> GridLayout:
    """The :class:`GridLayout` of FrozenLake, CliffWalking or Taxi (the 5 x 5 taxi positions)."""
    base = env.unwrapped
    name = type(base).__name__
    if name == "FrozenLakeEnv":
        desc = base.desc.astype(str)
        labels = {i: ch for i, ch in enumerate(desc.flat) if ch in "SHG"}
        colors = {
            i: {"H": "#9ecae1", "G": "#a1d99b"}[ch]
            for i, ch in labels.items()
            if ch in "HG"
        }
        return GridLayout(
            desc.shape,
            ACTION_DELTAS["FrozenLake"],
            labels,
            {i for i, ch in labels.items() if ch in "HG"},
            colors,
        )
    if name == "CliffWalkingEnv":
        rows, cols = base.shape
        start, goal = (rows - 1) * cols, rows * cols - 1
        cliff = set(range(start + 1, goal))
        labels = {start: "S", goal: "G", **{c: "C" for c in cliff}}
        colors = {goal: "#a1d99b", **{c: "#bdbdbd" for c in cliff}}
        return GridLayout(
            (rows, cols), ACTION_DELTAS["CliffWalking"], labels, cliff | {goal}, colors
        )
    if name == "TaxiEnv":
        labels = {r * 5 + c: "RGYB"[i] for i, (r, c) in enumerate(base.locs)}
        desc = base.desc.astype(str)
        walls = [
            (
                (c - 0.5, r - 0.5),
                (c - 0.5, r + 0.5),
            )  # a '|' between column c-1 and c of row r
            for r in range(5)
            for c in range(1, 5)
            if desc[r + 1, 2 * c] == "|"
        ]
        return GridLayout((5, 5), ACTION_DELTAS["Taxi"], labels, set(), {}, walls)
    raise ValueError(f"no grid layout for {name}")


def taxi_slice(table: np.ndarray, passenger: int, destination: int) -> np.ndarray:
    """The 25 entries of a Taxi table (one per taxi position) for one passenger location and destination.

    Taxi's 500 states are ``((row * 5 + col) * 5 + passenger) * 4 + destination``; fixing the last two
    leaves a 5 x 5 grid that can be drawn like any other.
    """
    cells = np.arange(25)
    return np.asarray(table)[(cells * 5 + passenger) * 4 + destination]


def plot_grid_policy(
    layout: GridLayout,
    actions: Sequence[int] | np.ndarray | None = None,
    *,
    values: np.ndarray | None = None,
    paths: Mapping[str, Sequence[int]] | None = None,
    action_text: Mapping[int, str] | None = None,
    title: str = "Greedy policy",
    value_label: str = "state value",
    ax: plt.Axes | None = None,
) -> plt.Figure:
    """Draw a policy as one arrow per cell, optionally over a colour map of state values, and/or routes.

    ``actions`` holds one action per cell (row-major); actions without a grid move (Taxi's pickup and
    drop-off) are written as ``action_text[a]``. ``paths`` maps a label to a list of visited cells, each drawn
    as a line through the cell centres, so the routes of several policies can be compared on one picture.
    """
    rows, cols = layout.shape
    if ax is None:
        fig, ax = plt.subplots(
            figsize=(max(3.0, 0.6 * cols + 1.5), max(2.5, 0.6 * rows + 0.8))
        )
    else:
        fig = ax.figure
    ax.grid(False)
    if values is not None and not ax.images:
        shown = np.asarray(values, dtype=float).reshape(rows, cols).copy()
        mask = np.zeros_like(shown, dtype=bool)
        for cell in layout.cell_colors:
            mask.flat[cell] = True
        im = ax.imshow(np.ma.masked_array(shown, mask), cmap="viridis")
        fig.colorbar(im, ax=ax, label=value_label, shrink=0.8)
    elif not ax.images:
        ax.imshow(np.zeros(layout.shape), cmap="Greys", vmin=0, vmax=1)
    for cell, color in layout.cell_colors.items():
        r, c = divmod(cell, cols)
        ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, color=color, zorder=1))
    for cell, letter in layout.labels.items():
        r, c = divmod(cell, cols)
        ax.text(
            c - 0.32,
            r - 0.22,
            letter,
            fontsize=8,
            fontweight="bold",
            ha="center",
            va="center",
            zorder=3,
        )
    if actions is not None:
        text = dict(action_text or {})
        for cell, a in enumerate(np.asarray(actions, dtype=int)):
            if cell in layout.no_arrow:
                continue
            r, c = divmod(cell, cols)
            if a in layout.deltas:
                dr, dc = layout.deltas[a]
                ax.annotate(
                    "",
                    xy=(c + 0.3 * dc, r + 0.3 * dr),
                    xytext=(c - 0.3 * dc, r - 0.3 * dr),
                    arrowprops=dict(
                        arrowstyle="->",
                        lw=1.5,
                        color="white" if values is not None else "k",
                    ),
                    zorder=4,
                )
            else:
                ax.text(
                    c,
                    r,
                    text.get(int(a), str(a)),
                    ha="center",
                    va="center",
                    fontsize=10,
                    fontweight="bold",
                    color="white" if values is not None else "k",
                    zorder=4,
                )
    for i, (label, path) in enumerate((paths or {}).items()):
        rc = np.array([divmod(int(s), cols) for s in path], dtype=float)
        offset = 0.08 * (
            i - (len(paths) - 1) / 2
        )  # side by side where two routes share cells
        ax.plot(
            rc[:, 1] + offset,
            rc[:, 0] + offset,
            "-o",
            color=f"C{i}",
            lw=2.5,
            ms=4,
            label=label,
            zorder=5,
        )
    if paths:
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=len(paths), fontsize=9
        )
    for (x0, y0), (x1, y1) in layout.walls:
        ax.plot([x0, x1], [y0, y1], color="k", lw=4, zorder=6)
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_title(title)
    return fig


class Discretiser:
    """Map a continuous observation to one table index by cutting each dimension into equal bins.

    Values outside ``[low, high]`` fall into the first or last bin. The table then has ``prod(bins)`` rows,
    which is exactly why tabular methods do not scale: with 4 dimensions, 10 bins each give 10,000 states
    and 20 bins give 160,000, each of which must be visited many times to be learned.
    """

    def __init__(
        self, low: Sequence[float], high: Sequence[float], bins: int | Sequence[int]
    ) -> None:
        self.low = np.asarray(low, dtype=float)
        self.high = np.asarray(high, dtype=float)
        if self.low.shape != self.high.shape or self.low.ndim != 1:
            raise ValueError("low and high must be 1-D and of the same length")
        if np.any(self.high <= self.low):
            raise ValueError("every high must be larger than its low")
        self.bins = np.broadcast_to(np.asarray(bins, dtype=int), self.low.shape).copy()
        if np.any(self.bins < 1):
            raise ValueError(f"bins must be positive, got {bins}")
        self._scale = self.bins / (self.high - self.low)

    @property
    def n_states(self) -> int:
        """Number of table rows: the product of the bins of all dimensions."""
        return int(np.prod(self.bins))

    def cell(self, obs: Sequence[float] | np.ndarray) -> np.ndarray:
        """The bin of each dimension, clipped to ``[0, bins - 1]``."""
        idx = np.floor((np.asarray(obs, dtype=float) - self.low) * self._scale).astype(
            int
        )
        return np.clip(idx, 0, self.bins - 1)

    def __call__(self, obs: Sequence[float] | np.ndarray) -> int:
        """The table index of an observation (row-major over the dimensions' bins)."""
        return int(np.ravel_multi_index(tuple(self.cell(obs)), tuple(self.bins)))
