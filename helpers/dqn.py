"""Deep Q-Network (DQN) pieces for the DQN chapter: replay buffer, Q-network, TD target, update step, trainer.

The chapter shows :func:`td_target` and :func:`dqn_update` on its page next to the math; they live here so that
the unit tests (``tests/test_dqn.py``) and :func:`train_dqn` (used for the seeds and hyper-parameter sweeps) run
exactly the code the reader sees. Everything uses gymnasium's API: a transition stores ``terminated`` (the
episode really ended, the future is worth 0) and never ``truncated`` (a time limit cut it; the future still
counts and is bootstrapped).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import rl


@dataclass
class Batch:
    """A mini-batch of transitions as tensors: ``obs``/``next_obs`` (B, *obs_shape) float32, the rest (B,)."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


class ReplayBuffer:
    """Fixed-size circular store of transitions ``(s, a, r, s', terminated)`` with uniform sampling.

    Why: consecutive transitions of one episode are strongly correlated, and a network trained on them in order
    forgets what it learned a few hundred steps ago. Sampling mini-batches uniformly from the last ``capacity``
    transitions breaks the correlation and re-uses every transition many times. Storage is pre-allocated NumPy
    arrays (one write per step, one fancy-indexing gather per batch), which is much faster than a deque of tuples.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: int | Sequence[int],
        seed: int | None = None,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        """``obs_shape``: an int for vector observations, a shape for images. ``dtype``: how
        observations are stored; ``np.uint8`` for pixels keeps a 100,000-frame buffer small,
        and :meth:`sample` still hands out float32."""
        shape = (obs_shape,) if isinstance(obs_shape, int) else tuple(obs_shape)
        if capacity < 1 or not shape or min(shape) < 1:
            raise ValueError(
                f"capacity and obs_shape must be positive, got {capacity} and {obs_shape}"
            )
        self.capacity = capacity
        self.obs = np.zeros((capacity, *shape), dtype=dtype)
        self.next_obs = np.zeros((capacity, *shape), dtype=dtype)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.pos = 0  # where the next transition is written
        self.size = 0  # how many slots hold data (<= capacity)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        action: int,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
    ) -> None:
        """Store one transition, overwriting the oldest once the buffer is full."""
        i = self.pos
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, float(terminated)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> Batch:
        """``batch_size`` transitions drawn uniformly with replacement from those stored."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = self.rng.integers(0, self.size, size=batch_size)

        def t(a: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
            return torch.as_tensor(a[idx], dtype=dtype, device=device)

        return Batch(
            t(self.obs, torch.float32),
            t(self.actions),
            t(self.rewards),
            t(self.next_obs, torch.float32),
            t(self.terminated),
        )


def _mlp_head(width: int, hidden: Sequence[int], n_actions: int) -> list[nn.Module]:
    """Linear + ReLU layers of the ``hidden`` sizes from ``width`` inputs, then one output per action."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return [*layers, nn.Linear(width, n_actions)]


class QNetwork(nn.Module):
    """An MLP mapping an observation to one Q-value per discrete action: ``Q(s, .) = net(s)``.

    One forward pass gives the values of all actions at once, so the greedy action and the max in the TD target
    cost a single evaluation (the design of Mnih et al., 2015, instead of feeding the action in as an input).
    """

    def __init__(
        self, obs_dim: int, n_actions: int, hidden: Sequence[int] = (128, 128)
    ) -> None:
        super().__init__()
        if obs_dim < 1 or n_actions < 1:
            raise ValueError(
                f"obs_dim and n_actions must be positive, got {obs_dim} and {n_actions}"
            )
        self.net = nn.Sequential(*_mlp_head(obs_dim, hidden, n_actions))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values, shape ``(batch, n_actions)``."""
        return self.net(obs)


class ConvQNetwork(nn.Module):
    """A Q-network that reads an image: one 3x3 convolution, then an MLP to one Q-value per action.

    Observations arrive as gymnasium gives them, ``(batch, height, width, channels)``; the network
    moves the channels first for the convolution. The shape follows the MinAtar paper (Young & Tian,
    2019): 16 filters and 128 hidden units are enough for its 10x10 games, and train on a CPU.
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        n_actions: int,
        hidden: Sequence[int] = (128,),
        channels: int = 16,
    ) -> None:
        super().__init__()
        height, width, in_channels = obs_shape
        conv = nn.Conv2d(in_channels, channels, kernel_size=3)  # 3x3, no padding
        size = channels * (height - 2) * (width - 2)
        self.net = nn.Sequential(
            conv, nn.ReLU(), nn.Flatten(), *_mlp_head(size, hidden, n_actions)
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values, shape ``(batch, n_actions)``, for images ``(batch, H, W, C)``."""
        return self.net(obs.permute(0, 3, 1, 2))


def q_network(
    obs_shape: Sequence[int], n_actions: int, hidden: Sequence[int]
) -> nn.Module:
    """The Q-network that fits the observations: an MLP for vectors, a CNN for images (H, W, C)."""
    if len(obs_shape) == 3:
        return ConvQNetwork(obs_shape, n_actions, hidden)
    return QNetwork(obs_shape[0], n_actions, hidden)


@torch.no_grad()
def td_target(
    batch: Batch,
    target_net: nn.Module,
    gamma: float,
    online_net: nn.Module | None = None,
) -> torch.Tensor:
    """The bootstrapped TD target y = r + gamma * (1 - terminated) * Q_target(s', a*).

    DQN: a* = argmax_a Q_target(s', a), i.e. the max of the target network.
    Double DQN (pass ``online_net``): a* = argmax_a Q_online(s', a), *evaluated* by the target network.
    ``terminated`` (not ``truncated``) zeroes the future: a time-limit cut is not the end of the task.
    """
    next_q = target_net(batch.next_obs)  # (B, n_actions)
    if online_net is None:
        next_value = next_q.max(dim=1).values  # DQN
    else:
        best = online_net(batch.next_obs).argmax(
            dim=1, keepdim=True
        )  # Double DQN: online net picks ...
        next_value = next_q.gather(1, best).squeeze(1)  # ... target net evaluates
    return batch.rewards + gamma * (1.0 - batch.terminated) * next_value


def dqn_update(
    q_net: nn.Module,
    target_net: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    gamma: float,
    double: bool = False,
    max_grad_norm: float | None = 10.0,
) -> float:
    """One gradient step on the Huber loss between Q(s, a) and the TD target; returns the loss.

    Why Huber: a TD error is a noisy, moving target; the squared loss would let one large error produce a huge
    gradient, while Huber's gradient is capped at 1 in absolute value beyond |delta| > 1. Gradient-norm
    clipping caps the whole step on top of that.
    """
    y = td_target(
        batch, target_net, gamma, online_net=q_net if double else None
    )  # no gradient through y
    q = (
        q_net(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
    )  # Q(s, a) of actions taken
    loss = nn.functional.smooth_l1_loss(q, y)  # Huber loss, delta = 1
    optimizer.zero_grad()
    loss.backward()
    if max_grad_norm is not None:
        nn.utils.clip_grad_norm_(q_net.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def soft_update(target_net: nn.Module, q_net: nn.Module, tau: float) -> None:
    """Polyak averaging theta_target <- tau * theta + (1 - tau) * theta_target; tau = 1 is a hard copy."""
    for tp, p in zip(target_net.parameters(), q_net.parameters()):
        tp.lerp_(p, tau)


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """Value at step ``t`` of a straight line from ``start`` (t = 0) to ``end`` (t >= duration), then flat."""
    if duration <= 0:
        return end
    return start + (end - start) * min(t / duration, 1.0)


@dataclass
class DQNConfig:
    """Every knob of a DQN run; the defaults are the chapter's recipe for CartPole-v1.

    Learning rate and exploration follow rl-baselines3-zoo's CartPole recipe, and the
    update schedule (one gradient step every 2 environment steps, a target refresh every
    256) has its numbers of updates and refreshes per environment step; with them every
    seed reaches 475 within the zoo's 50,000-step budget (the chapter's ablation).
    ``train_freq`` and ``gradient_steps`` can also express the zoo's own schedule (128
    gradient steps every 256 environment steps).
    """

    env_id: str = "CartPole-v1"
    total_steps: int = 100_000  # environment steps
    lr: float = 2.3e-3
    gamma: float = 0.99
    batch_size: int = 64
    buffer_size: int = 50_000
    # epsilon-greedy steps (epsilon near 1) that fill the buffer before the first update
    learning_starts: int = 1_000
    train_freq: int = 2  # gradient_steps updates every train_freq environment steps
    gradient_steps: int = 1
    target_update: int = (
        256  # hard copy of the online net every target_update env steps (if tau == 1)
    )
    tau: float = (
        1.0  # < 1: Polyak update after every gradient step instead of hard copies
    )
    eps_start: float = 1.0
    eps_end: float = 0.04
    eps_decay_steps: int = (
        8_000  # epsilon falls linearly from eps_start to eps_end over these env steps
    )
    hidden: tuple[int, ...] = (128, 128)
    double: bool = False
    max_grad_norm: float | None = 10.0
    eval_every: int = (
        5_000  # greedy evaluation of the current network every eval_every steps
    )
    eval_episodes: int = 10
    eval_seed: int = 50_000  # evaluation episodes used for checkpoint selection (not the reported ones)
    stop_return: float | None = (
        None  # stop early once the periodic evaluation reaches this mean return
    )
    seed: int = 0


@dataclass
class DQNResult:
    """What :func:`train_dqn` returns: the networks, the curves and how long it took."""

    config: DQNConfig
    q_net: nn.Module  # the best network found by the periodic greedy evaluation
    last_net: nn.Module  # the network at the end of training
    episode_steps: list[int] = field(
        default_factory=list
    )  # env step at which each training episode ended
    episode_returns: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_returns: list[float] = field(
        default_factory=list
    )  # mean greedy return at each evaluation
    losses: list[float] = field(default_factory=list)  # one per gradient step
    best_step: int = 0
    best_eval: float = float("-inf")
    steps_done: int = 0
    wall_time_s: float = 0.0  # seconds of the whole run, periodic evaluations included
    eval_time_s: float = (
        0.0  # seconds of those evaluations (subtract for the cost of learning alone)
    )

    def steps_to_reach(self, threshold: float) -> int | None:
        """First evaluation step whose mean greedy return was >= threshold (None if never)."""
        return next(
            (s for s, r in zip(self.eval_steps, self.eval_returns) if r >= threshold),
            None,
        )


@torch.no_grad()
def greedy_returns(
    q_net: nn.Module,
    env_id: str,
    episodes: int,
    seed: int,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Returns of ``episodes`` greedy episodes (episode i reset with ``seed + i``), all run side by side.

    Gives the same numbers as ``rl.evaluate_policy(rl.torch_policy(q_net), env_id, episodes, seed)``, but feeds the
    observations of all unfinished episodes through the network as one batch: for the periodic evaluation inside
    training this is several times cheaper than one forward pass per step and episode.
    Observations go to ``device``, by default the device of the network's parameters.
    """
    if device is None:
        device = rl.module_device(q_net)
    rl.ensure_registered(env_id)
    envs = [gym.make(env_id) for _ in range(episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    returns = np.zeros(episodes)
    alive = np.ones(episodes, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        actions = (
            q_net(torch.as_tensor(obs[idx], dtype=torch.float32, device=device))
            .argmax(dim=1)
            .cpu()
            .numpy()
        )
        for i, a in zip(idx, actions):
            obs[i], reward, terminated, truncated, _ = envs[i].step(int(a))
            returns[i] += float(reward)
            alive[i] = not (terminated or truncated)
    for env in envs:
        env.close()
    return returns


UpdateFn = Callable[..., float]


def train_dqn(
    config: DQNConfig,
    update_fn: UpdateFn = dqn_update,
    progress: bool = True,
    device: torch.device | str = "cpu",
) -> DQNResult:
    """Train DQN (or Double DQN with ``config.double``) and keep the best network by periodic greedy evaluation.

    The loop is the one written out in the chapter: act epsilon-greedily, store the
    transition (with ``terminated``, not ``truncated``), and after ``learning_starts``
    do ``gradient_steps`` :func:`dqn_update` calls every ``train_freq`` steps, updating
    the target network by hard copy or Polyak averaging. Every ``eval_every``
    steps the greedy policy is evaluated on ``eval_episodes`` episodes seeded apart from the chapter's final
    evaluation; the best network so far is kept (model selection, like SB3's ``EvalCallback``), because DQN's
    greedy policy can get worse again late in training.
    """
    c = config
    torch.manual_seed(c.seed)
    env = rl.make_env(c.env_id, seed=c.seed)
    obs_shape, n_actions = env.observation_space.shape, int(env.action_space.n)
    q_net = q_network(obs_shape, n_actions, c.hidden).to(device)
    target_net = copy.deepcopy(q_net)
    optimizer = torch.optim.Adam(q_net.parameters(), lr=c.lr)
    pixels = env.observation_space.dtype in (np.bool_, np.uint8)
    buffer = ReplayBuffer(
        c.buffer_size, obs_shape, seed=c.seed, dtype=np.uint8 if pixels else np.float32
    )
    rng = np.random.default_rng(c.seed)
    result = DQNResult(config=c, q_net=copy.deepcopy(q_net), last_net=q_net)
    greedy = rl.torch_policy(q_net, device)

    start = time.perf_counter()
    obs, _ = env.reset()
    bar = tqdm(
        range(1, c.total_steps + 1),
        desc=f"DQN seed {c.seed}" if not c.double else f"DDQN seed {c.seed}",
        unit="step",
        mininterval=1.0,
        disable=not progress,
    )
    for step in bar:
        eps = linear_schedule(c.eps_start, c.eps_end, c.eps_decay_steps, step)
        action = int(rng.integers(n_actions)) if rng.random() < eps else greedy(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        buffer.add(
            obs, action, float(reward), next_obs, terminated
        )  # truncated is NOT stored as an end
        obs = next_obs
        if terminated or truncated:
            result.episode_steps.append(step)
            result.episode_returns.append(float(info["episode"]["r"]))
            obs, _ = env.reset()

        if step > c.learning_starts and step % c.train_freq == 0:
            for _ in range(c.gradient_steps):
                batch = buffer.sample(c.batch_size, device)
                result.losses.append(
                    update_fn(
                        q_net,
                        target_net,
                        optimizer,
                        batch,
                        c.gamma,
                        double=c.double,
                        max_grad_norm=c.max_grad_norm,
                    )
                )
                if c.tau < 1.0:
                    soft_update(target_net, q_net, c.tau)
        if c.tau >= 1.0 and step % c.target_update == 0:
            target_net.load_state_dict(q_net.state_dict())

        if step % c.eval_every == 0 or step == c.total_steps:
            eval_start = time.perf_counter()
            score = float(
                greedy_returns(
                    q_net, c.env_id, c.eval_episodes, c.eval_seed, device
                ).mean()
            )
            result.eval_time_s += time.perf_counter() - eval_start
            result.eval_steps.append(step)
            result.eval_returns.append(score)
            if score > result.best_eval:
                result.best_eval, result.best_step = score, step
                result.q_net.load_state_dict(q_net.state_dict())
            bar.set_postfix(
                eval=f"{score:.0f}", best=f"{result.best_eval:.0f}", eps=f"{eps:.2f}"
            )
            if c.stop_return is not None and score >= c.stop_return:
                break
    bar.close()
    env.close()
    result.steps_done = step
    result.wall_time_s = time.perf_counter() - start
    return result


def config_dict(config: DQNConfig) -> dict:
    """The configuration as a plain dict (for printing a run's settings in one line)."""
    return asdict(config)
