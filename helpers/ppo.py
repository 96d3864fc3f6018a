"""Proximal Policy Optimization (PPO): advantages, rollouts, the clipped update and a training loop.

The PPO chapter shows every function of this module on its page; they live here so that the chapter can
re-run the whole algorithm for several seeds and ablations (clipping on/off) without copying code, and so
that other chapters can reuse the pieces (A2C's n-step returns are :func:`compute_gae` with ``lam=1``).

Conventions (gymnasium API): arrays are *time-major*, shape ``(T, num_envs)``; ``terminated`` means the
episode reached a terminal state (no future reward, do not bootstrap); ``truncated`` means it was cut off
by a time limit (the state still has a value, bootstrap from it). Vector environments here use gymnasium's
default ``NEXT_STEP`` autoreset: the step that ends an episode returns the true last observation, and the
*next* call to ``step`` ignores its action and only resets that copy. :func:`collect_rollout` marks those
reset steps as invalid (``valid == False``) so that they never enter the loss.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from .rl import ActorCritic, evaluate_policy, make_vector_env, torch_policy

ArrayLike = Any  # numpy array or torch tensor


def compute_gae(
    rewards: ArrayLike,
    values: ArrayLike,
    next_values: ArrayLike,
    terminated: ArrayLike,
    dones: ArrayLike,
    gamma: float = 0.99,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates GAE(gamma, lambda) and the critic's targets (lambda-returns).

    Signature: ``compute_gae(rewards, values, next_values, terminated, dones, gamma, lam) -> (advantages, returns)``.
    All five inputs have the same time-major shape ``(T,)`` or ``(T, num_envs)`` (numpy arrays or tensors);
    index ``t`` describes the transition ``(s_t, a_t, r_t, s_{t+1})``:

    - ``rewards[t]``: the reward r_t received after taking a_t in s_t;
    - ``values[t]``: the critic's V(s_t);
    - ``next_values[t]``: V(s_{t+1}) of the *true* next observation. For a truncated episode that is the last
      observation before the reset (it still has a future, so we bootstrap from it); where ``terminated[t]`` it
      is ignored;
    - ``terminated[t]``: 1 if s_{t+1} is terminal: the TD error is ``r_t - V(s_t)``, no bootstrap;
    - ``dones[t]``: 1 if the episode ended after step t for *any* reason (terminated or truncated): the
      recursion is cut there, so that the next episode's rewards never leak into this one's advantages.

    The recursion, backwards from the end of the rollout (``A_T = 0``: the rollout's last step bootstraps from
    ``next_values`` through its TD error)::

        delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t)
        A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1}

    ``returns = advantages + values`` are the lambda-return targets of the value loss. ``lam=1`` gives the
    n-step (Monte-Carlo until the rollout's end) advantage used by A2C; ``lam=0`` the one-step TD error.
    Both outputs are float32 tensors with the shape of ``rewards``.
    """

    def as_float(x: ArrayLike) -> torch.Tensor:
        return torch.as_tensor(
            np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32
        )

    rewards, values, next_values = (
        as_float(rewards),
        as_float(values),
        as_float(next_values),
    )
    terminated, dones = as_float(terminated), as_float(dones)
    if not (
        rewards.shape
        == values.shape
        == next_values.shape
        == terminated.shape
        == dones.shape
    ):
        raise ValueError(
            "rewards, values, next_values, terminated and dones must have the same shape, got "
            f"{[tuple(x.shape) for x in (rewards, values, next_values, terminated, dones)]}"
        )
    ends = torch.maximum(
        dones, terminated
    )  # a terminated step is always the end of an episode
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        running = deltas[t] + gamma * lam * (1.0 - ends[t]) * running
        advantages[t] = running
    return advantages, advantages + values


def clipped_surrogate_loss(
    new_log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float | None,
) -> torch.Tensor:
    """PPO's policy loss: minus the clipped surrogate objective, averaged over the batch.

    ``L = -mean(min(rho * A, clip(rho, 1 - eps, 1 + eps) * A))`` with the probability ratio
    ``rho = pi_new(a|s) / pi_old(a|s)``. The minimum makes the objective a pessimistic bound: once the ratio
    has moved more than ``eps`` in the direction the advantage favours, the gradient of that sample is zero,
    so many epochs on the same rollout cannot push the policy far. ``clip_eps=None`` gives the plain
    (unclipped) importance-sampled policy-gradient surrogate, used by the chapter's ablation.
    """
    ratio = torch.exp(new_log_prob - old_log_prob)
    surrogate = ratio * advantages
    if clip_eps is None:
        return -surrogate.mean()
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    return -torch.min(surrogate, clipped).mean()


class RunningMeanStd(nn.Module):
    """Running mean and variance of a stream of vectors (Chan et al.'s parallel update).

    As a module it *normalises* its input with the statistics so far, ``(x - mean) / sqrt(var + eps)``,
    clipped to ``[-clip, clip]``. Statistics change only through :meth:`update`, which the training loop calls
    once per rollout; keeping them as buffers puts them in the ``state_dict`` next to the network, so the
    greedy policy evaluated later sees exactly the normalisation it was trained with.
    """

    def __init__(
        self, shape: tuple[int, ...] = (), eps: float = 1e-8, clip: float = 10.0
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(1e-4))
        self.eps, self.clip = eps, clip

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = torch.as_tensor(x, dtype=torch.float32).reshape(-1, *self.mean.shape)
        batch_mean, batch_var, n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, total = batch_mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.var.copy_(
            (self.var * self.count + batch_var * n + delta**2 * self.count * n / total)
            / total
        )
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(
            (x - self.mean) / torch.sqrt(self.var + self.eps), -self.clip, self.clip
        )


@dataclass
class PPOConfig:
    """PPO's hyper-parameters. Defaults suit CartPole-v1; the chapter changes a few for Pendulum-v1.

    A rollout has ``num_envs * num_steps`` transitions; each update runs ``epochs`` passes over it in
    ``minibatches`` shuffled minibatches. ``clip_eps=None`` switches clipping off (ablation).
    """

    num_envs: int = 8
    num_steps: int = 128
    epochs: int = 4
    minibatches: int = 4
    lr: float = 2.5e-3
    anneal_lr: bool = True
    gamma: float = 0.99
    lam: float = 0.95
    clip_eps: float | None = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    norm_obs: bool = False
    norm_reward: bool = False
    hidden: int = 64
    log_std_init: float = 0.0


@dataclass
class Rollout:
    """One rollout, time-major ``(T, num_envs, ...)``; ``obs`` are stored *as the network saw them* (normalised)."""

    obs: torch.Tensor
    raw_obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    next_values: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    dones: torch.Tensor
    valid: torch.Tensor


@torch.no_grad()
def collect_rollout(
    envs: gym.vector.VectorEnv,
    model: ActorCritic,
    obs_norm: nn.Module,
    obs: np.ndarray,
    prev_done: np.ndarray,
    num_steps: int,
) -> tuple[Rollout, np.ndarray, np.ndarray, list]:
    """Run the current stochastic policy for ``num_steps`` steps in every copy of ``envs``.

    Returns the rollout, the observation and done flags to continue from, and the finished training episodes
    as ``(copy, step_in_rollout, return, length)`` tuples. With ``NEXT_STEP`` autoreset the observation after
    a finished episode is its true last observation, so ``next_values[t]`` is simply ``values[t + 1]`` (and
    V of the final observation for the last step); the following reset step is marked ``valid = False``.
    """
    n = envs.num_envs
    raw_buf, obs_buf, act_buf, logp_buf, val_buf = [], [], [], [], []
    rew = np.zeros((num_steps, n), np.float32)
    term = np.zeros((num_steps, n), np.float32)
    done = np.zeros((num_steps, n), np.float32)
    valid = np.zeros((num_steps, n), bool)
    episodes = []
    space = envs.single_action_space
    for t in range(num_steps):
        raw = torch.as_tensor(obs, dtype=torch.float32)
        x = obs_norm(raw)
        raw_buf.append(raw)
        dist = model.distribution(x)
        action = dist.sample()
        (
            obs_buf.append(x),
            act_buf.append(action),
            logp_buf.append(dist.log_prob(action)),
        )
        val_buf.append(model.value(x))
        env_action = action.numpy()
        if isinstance(
            space, gym.spaces.Box
        ):  # the Gaussian is unbounded; the environment is not
            env_action = np.clip(env_action, space.low, space.high)
        obs, r, terminated, truncated, info = envs.step(env_action)
        rew[t], term[t], done[t] = r, terminated, terminated | truncated
        valid[t] = ~prev_done
        prev_done = terminated | truncated
        if "episode" in info:
            for i in np.flatnonzero(info["_episode"]):
                episodes.append(
                    (
                        int(i),
                        t,
                        float(info["episode"]["r"][i]),
                        int(info["episode"]["l"][i]),
                    )
                )
    last_value = model.value(obs_norm(torch.as_tensor(obs, dtype=torch.float32)))
    values = torch.stack(val_buf)
    rollout = Rollout(
        obs=torch.stack(obs_buf),
        raw_obs=torch.stack(raw_buf),
        actions=torch.stack(act_buf),
        log_probs=torch.stack(logp_buf),
        values=values,
        next_values=torch.cat([values[1:], last_value[None]]),
        rewards=torch.from_numpy(rew),
        terminated=torch.from_numpy(term),
        dones=torch.from_numpy(done),
        valid=torch.from_numpy(valid),
    )
    return rollout, obs, prev_done, episodes


def ppo_update(
    model: ActorCritic,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    cfg: PPOConfig,
    policy_loss_fn: Callable[..., torch.Tensor] = clipped_surrogate_loss,
) -> dict[str, float]:
    """Several epochs of minibatch gradient steps on one rollout; returns diagnostics of the update.

    Loss per minibatch: clipped policy loss + ``vf_coef`` * value loss - ``ent_coef`` * entropy. The
    advantages are normalised per minibatch (zero mean, unit std), which makes the step size independent of
    the reward scale. ``approx_kl`` estimates KL(pi_old || pi_new) over the whole rollout after the update with
    the low-variance estimator ``mean((rho - 1) - log rho)`` on actions sampled from pi_old; ``max_ratio`` is
    the largest ratio rho after the update (clipping does not bound it); ``clip_fraction`` the share of minibatch
    samples whose ratio was outside ``[1 - eps, 1 + eps]`` when their gradient was taken (``eps = 0.2`` for the
    unclipped ablation, so the numbers stay comparable).
    """
    keep = rollout.valid.flatten()  # drop the reset steps of NEXT_STEP autoreset
    obs = rollout.obs.flatten(0, 1)[keep]
    actions = rollout.actions.flatten(0, 1)[keep]
    old_log_probs = rollout.log_probs.flatten()[keep]
    adv_all, ret_all = advantages.flatten()[keep], returns.flatten()[keep]
    size = len(obs)
    mb_size = max(1, size // cfg.minibatches)
    clipped, count = 0.0, 0
    for _ in range(cfg.epochs):
        order = torch.randperm(size)
        for start in range(0, size - mb_size + 1, mb_size):
            idx = order[start : start + mb_size]
            dist = model.distribution(obs[idx])
            new_log_probs = dist.log_prob(actions[idx])
            adv = adv_all[idx]
            if cfg.norm_adv:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            policy_loss = policy_loss_fn(
                new_log_probs, old_log_probs[idx], adv, cfg.clip_eps
            )
            value_loss = 0.5 * (model.value(obs[idx]) - ret_all[idx]).pow(2).mean()
            entropy = dist.entropy().mean()
            loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                eps = cfg.clip_eps if cfg.clip_eps is not None else 0.2
                clipped += (
                    ((new_log_probs - old_log_probs[idx]).exp().sub(1).abs() > eps)
                    .float()
                    .sum()
                    .item()
                )
                count += len(idx)
    with torch.no_grad():
        log_ratio = model.distribution(obs).log_prob(actions) - old_log_probs
        approx_kl = ((log_ratio.exp() - 1) - log_ratio).mean().item()
        explained = 1 - (ret_all - model.value(obs)).var() / (ret_all.var() + 1e-8)
    return {
        "policy_loss": policy_loss.item(),
        "value_loss": value_loss.item(),
        "entropy": entropy.item(),
        "approx_kl": approx_kl,
        "clip_fraction": clipped / max(count, 1),
        "explained_variance": explained.item(),
        "max_ratio": log_ratio.exp().max().item(),
    }


@dataclass
class PPOResult:
    """What :func:`train_ppo` returns: the trained network, its observation normaliser, and the curves."""

    model: ActorCritic
    obs_norm: nn.Module
    episode_steps: list[int] = field(
        default_factory=list
    )  # env step at which each training episode ended
    episode_returns: list[float] = field(default_factory=list)
    updates: list[dict[str, float]] = field(
        default_factory=list
    )  # ppo_update's diagnostics, plus "step"
    eval_steps: list[int] = field(
        default_factory=list
    )  # periodic greedy evaluations during training
    eval_returns: list[float] = field(
        default_factory=list
    )  # (mean return over eval_episodes)
    env_steps: int = 0
    wall_time: float = 0.0  # seconds of training, without the periodic evaluations
    eval_time: float = 0.0  # seconds spent in the periodic evaluations

    def policy(self, env_id: str) -> Callable[[np.ndarray], int | np.ndarray]:
        """The greedy policy (arg-max logits, or the Gaussian mean clipped to the action bounds) for
        :func:`helpers.rl.evaluate_policy`."""
        space = gym.make(env_id).action_space
        net = nn.Sequential(self.obs_norm, self.model).eval()
        if isinstance(space, gym.spaces.Box):
            act = torch_policy(net, continuous=True)
            return lambda obs: np.clip(act(obs), space.low, space.high)
        return torch_policy(net)

    def steps_to_reach(self, threshold: float) -> int | None:
        """First periodic evaluation step whose mean greedy return was >= ``threshold`` (None if never); the
        same measure as the DQN chapter's, so the two can be compared."""
        return next(
            (s for s, r in zip(self.eval_steps, self.eval_returns) if r >= threshold),
            None,
        )

    def curve(self) -> tuple[list[int], list[float]]:
        """``(steps, returns)``: one seed's entry for :func:`helpers.rl.plot_returns`."""
        return self.episode_steps, self.episode_returns


def train_ppo(
    env_id: str,
    total_steps: int,
    cfg: PPOConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    desc: str | None = None,
    eval_every: int | None = None,
    eval_episodes: int = 10,
    eval_seed: int = 50_000,
    stop_return: float | None = None,
    gae_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]] = compute_gae,
    policy_loss_fn: Callable[..., torch.Tensor] = clipped_surrogate_loss,
) -> PPOResult:
    """Train PPO on ``env_id`` for (about) ``total_steps`` environment steps, counted over all copies.

    Seeds torch's global generator and the environments with ``seed``, so a call is reproducible on CPU.
    Optional observation normalisation (running mean/std) and reward scaling (rewards divided by the running
    std of the discounted return) help on tasks with badly scaled inputs or rewards such as Pendulum.
    With ``eval_every`` the greedy policy is evaluated on ``eval_episodes`` episodes (seeds from ``eval_seed``,
    apart from the chapter's final evaluation) after the first update that passes each multiple of
    ``eval_every`` steps; the final policy is returned either way (no checkpoint selection). ``stop_return`` ends
    the run at the first such evaluation whose mean return reaches it (as in :func:`helpers.dqn.train_dqn`; the
    learning-rate schedule still refers to ``total_steps``), which is how "steps until solved" is measured.
    ``gae_fn`` and ``policy_loss_fn`` (defaults :func:`compute_gae`, :func:`clipped_surrogate_loss`) are the
    parts of the algorithm the chapter writes on its page: it hands in its own, and this function keeps the
    plumbing.
    Everything runs on the CPU, whatever ``helpers.get_device()`` says: the model, the rollouts and
    the updates (networks of two 64-unit layers fed 8 observations at a time gain nothing on a GPU).
    """
    from tqdm.auto import tqdm

    cfg = cfg or PPOConfig()
    torch.manual_seed(seed)
    envs = make_vector_env(env_id, cfg.num_envs, seed=seed)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    continuous = isinstance(act_space, gym.spaces.Box)
    act_dim = int(np.prod(act_space.shape)) if continuous else int(act_space.n)
    model = ActorCritic(
        int(np.prod(obs_space.shape)),
        act_dim,
        continuous=continuous,
        hidden=cfg.hidden,
        log_std_init=cfg.log_std_init,
    )
    obs_norm: nn.Module = (
        RunningMeanStd(obs_space.shape) if cfg.norm_obs else nn.Identity()
    )
    ret_rms = RunningMeanStd(())
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=1e-5)
    result = PPOResult(model=model, obs_norm=obs_norm)
    batch = cfg.num_envs * cfg.num_steps
    num_updates = max(
        1, -(-total_steps // batch)
    )  # round up: at least total_steps, like SB3
    obs, _ = envs.reset(seed=[seed + i for i in range(cfg.num_envs)])
    prev_done = np.zeros(cfg.num_envs, bool)
    disc_return = np.zeros(cfg.num_envs)
    start = time.perf_counter()
    bar = tqdm(
        range(num_updates),
        desc=desc or f"PPO {env_id} seed {seed}",
        disable=not progress,
    )
    for update in bar:
        if cfg.anneal_lr:
            optimizer.param_groups[0]["lr"] = cfg.lr * (1.0 - update / num_updates)
        rollout, obs, prev_done, episodes = collect_rollout(
            envs, model, obs_norm, obs, prev_done, cfg.num_steps
        )
        for env_i, t, ep_return, _ in sorted(episodes, key=lambda e: (e[1], e[0])):
            result.episode_steps.append(result.env_steps + (t + 1) * cfg.num_envs)
            result.episode_returns.append(ep_return)
        result.env_steps += batch
        if (
            cfg.norm_reward
        ):  # scale rewards by the running std of the discounted return (not its mean)
            rets = []
            for t in range(cfg.num_steps):
                disc_return = disc_return * cfg.gamma + rollout.rewards[t].numpy()
                rets.append(disc_return.copy())
                disc_return[rollout.dones[t].numpy() > 0] = 0.0
            ret_rms.update(torch.as_tensor(np.array(rets)))
            rollout.rewards = rollout.rewards / torch.sqrt(ret_rms.var + 1e-8)
        advantages, returns = gae_fn(
            rollout.rewards,
            rollout.values,
            rollout.next_values,
            rollout.terminated,
            rollout.dones,
            cfg.gamma,
            cfg.lam,
        )
        if cfg.norm_obs:  # statistics move between rollouts, never within one
            obs_norm.update(rollout.raw_obs[rollout.valid])
        stats = ppo_update(
            model, optimizer, rollout, advantages, returns, cfg, policy_loss_fn
        )
        stats["step"] = result.env_steps
        result.updates.append(stats)
        if eval_every and (
            result.env_steps // eval_every > (result.env_steps - batch) // eval_every
            or update == num_updates - 1
        ):
            eval_start = time.perf_counter()
            score = evaluate_policy(
                result.policy(env_id), env_id, episodes=eval_episodes, seed=eval_seed
            ).mean()
            result.eval_time += time.perf_counter() - eval_start
            result.eval_steps.append(result.env_steps)
            result.eval_returns.append(float(score))
        if result.episode_returns:
            bar.set_postfix(
                ret=f"{np.mean(result.episode_returns[-10:]):.1f}",
                kl=f"{stats['approx_kl']:.4f}",
            )
        if (
            stop_return is not None
            and result.eval_returns
            and result.eval_steps[-1] == result.env_steps
            and result.eval_returns[-1] >= stop_return
        ):
            break
    result.wall_time = time.perf_counter() - start - result.eval_time
    envs.close()
    return result
