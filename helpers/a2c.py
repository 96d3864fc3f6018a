"""Advantage actor-critic (A2C) and REINFORCE, the code behind the A2C chapter (and reused by the A3C chapter).

The chapter shows the core pieces on its page with ``helpers.show_source``: :func:`n_step_returns` (the targets),
:func:`a2c_loss` (policy gradient with the advantage, value loss, entropy bonus) and :func:`reinforce_loss`.
The rest is plumbing kept here so that several seeds and ablations can be run with one call:

- :func:`collect_rollout`: ``n_steps`` steps of a vectorised environment with the current policy;
- :func:`train_a2c`: the synchronous A2C loop on ``helpers.rl.make_vector_env``;
- :func:`run_episodes` / :func:`train_reinforce`: Monte-Carlo policy gradient on whole episodes;
- :func:`policy_gradient` / :func:`gradient_variance`: the spread of the gradient estimate at fixed parameters.

Everything follows gymnasium's API: ``terminated`` (the episode really ended, the future is worth 0) is kept apart
from ``truncated`` (a time limit cut it: the future is still worth V(s'), so we bootstrap).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import rl


def n_step_returns(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    next_values: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Bootstrapped n-step returns of a rollout, computed backwards in time; all inputs have shape ``(T, ...)``.

    ``next_values[t]`` is V(s_{t+1}), the critic's value of the observation that followed step ``t`` (for a step
    that ended an episode: the episode's *final* observation, not the next episode's first one). Then

    G_t = r_t + gamma * (1 - terminated_t) * (V(s_{t+1}) if step t ended the episode or the rollout, else G_{t+1}).

    Why both flags: at a *termination* the future is worth exactly 0; at a *truncation* (time limit) the state
    still has a future, so we bootstrap from V(s_{t+1}) instead of pretending it was a terminal state. The first
    step of a rollout of length n looks n steps ahead before bootstrapping, the last one step. With no critic
    (``next_values`` all zero) and no cut inside an episode this is the Monte-Carlo return of REINFORCE.
    """
    if not (rewards.shape == terminated.shape == truncated.shape == next_values.shape):
        raise ValueError(
            "rewards, terminated, truncated and next_values must have the same shape, got "
            f"{tuple(rewards.shape)}, {tuple(terminated.shape)}, {tuple(truncated.shape)}, "
            f"{tuple(next_values.shape)}"
        )
    returns = torch.zeros_like(rewards, dtype=torch.float32)
    future = next_values[-1].float()  # the rollout's last step bootstraps from V(s_T)
    for t in reversed(range(rewards.shape[0])):
        ended = terminated[t].bool() | truncated[t].bool()
        following = torch.where(ended, next_values[t].float(), future)
        returns[t] = rewards[t] + gamma * (~terminated[t].bool()).float() * following
        future = returns[t]
    return returns


@dataclass
class Transitions:
    """Time-major transitions: ``obs[t]``, ``actions[t]``, ``rewards[t]``, the two end flags of step ``t``, and
    ``next_obs[t]``, the observation after step ``t`` (at an episode's end: its final observation)."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    next_obs: torch.Tensor


@dataclass
class Rollout(Transitions):
    """``n_steps`` transitions of ``n_envs`` environments, tensors of shape ``(T, N, ...)``.

    ``mask`` is 0 for the steps that only restarted an environment (gymnasium's vector environments reset a
    finished copy on the step *after* it ended and ignore that step's action), so they take no part in the loss.
    """

    mask: torch.Tensor


def a2c_loss(
    model: rl.ActorCritic,
    batch: Rollout,
    gamma: float = 0.99,
    ent_coef: float = 0.01,
    vf_coef: float = 0.5,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The A2C objective on one rollout: policy-gradient term, value loss and entropy bonus.

    - target:     G_t = n-step return (:func:`n_step_returns`), bootstrapped with the critic, no gradient;
    - advantage:  A_t = G_t - V(s_t), *detached*: the actor must not move the critic's estimate;
    - actor:      L_pi = -mean_t[ log pi(a_t|s_t) * A_t ]  (its gradient is the policy-gradient estimate);
    - critic:     L_V = mean_t[ (G_t - V(s_t))^2 ];
    - entropy:    H = mean_t[ H(pi(.|s_t)) ], subtracted to keep the policy exploring.

    Returns ``loss = L_pi + vf_coef * L_V - ent_coef * H`` and the parts as floats for logging.
    """
    mask = batch.mask.float()
    denom = mask.sum().clamp_min(1.0)
    values = model.value(batch.obs)  # V(s_t), with gradient
    with torch.no_grad():
        next_values = model.value(batch.next_obs)  # V(s_{t+1}), a fixed target
        returns = n_step_returns(
            batch.rewards, batch.terminated, batch.truncated, next_values, gamma
        )
    advantages = returns - values.detach()
    dist = model.distribution(batch.obs)
    policy_loss = -(dist.log_prob(batch.actions) * advantages * mask).sum() / denom
    value_loss = ((returns - values).pow(2) * mask).sum() / denom
    entropy = (dist.entropy() * mask).sum() / denom
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy
    return loss, {
        "policy_loss": policy_loss.item(),
        "value_loss": value_loss.item(),
        "entropy": entropy.item(),
        "mean_value": (values.detach() * mask).sum().item() / denom.item(),
    }


@dataclass
class RolloutState:
    """What a vectorised rollout carries from one call to the next: the current observations and which copies
    ended an episode on the previous step (their next step is a reset step, see :class:`Rollout`)."""

    obs: np.ndarray
    ended: np.ndarray
    step: int = 0  # environment steps taken so far (all copies, reset steps excluded)
    episodes: list[tuple[int, float]] = field(
        default_factory=list
    )  # (step at the end, return) per episode


@torch.no_grad()
def collect_rollout(
    envs: gym.vector.VectorEnv, model: rl.ActorCritic, state: RolloutState, n_steps: int
) -> Rollout:
    """Step all copies ``n_steps`` times with actions sampled from the current policy,
    updating ``state``. The rollout's tensors live on the model's device."""
    device = rl.module_device(model)
    obs_l, act_l, rew_l, term_l, trunc_l, next_l, mask_l = [], [], [], [], [], [], []
    for _ in range(n_steps):
        obs = torch.as_tensor(state.obs, dtype=torch.float32, device=device)
        actions = model.distribution(obs).sample()
        stepped = envs.step(actions.cpu().numpy())
        next_obs, rewards, terminated, truncated, info = stepped
        valid = ~state.ended
        state.step += int(valid.sum())
        if "episode" in info:
            for i in np.flatnonzero(info["_episode"]):
                state.episodes.append((state.step, float(info["episode"]["r"][i])))
        obs_l.append(obs)
        act_l.append(actions)
        next_l.append(torch.as_tensor(next_obs, dtype=torch.float32, device=device))
        rew_l.append(torch.as_tensor(rewards, dtype=torch.float32, device=device))
        term_l.append(torch.as_tensor(terminated, device=device))
        trunc_l.append(torch.as_tensor(truncated, device=device))
        mask_l.append(torch.as_tensor(valid, device=device))
        state.obs, state.ended = next_obs, terminated | truncated
    return Rollout(
        torch.stack(obs_l),
        torch.stack(act_l),
        torch.stack(rew_l),
        torch.stack(term_l),
        torch.stack(trunc_l),
        torch.stack(next_l),
        torch.stack(mask_l),
    )


@dataclass
class TrainResult:
    """What a training run returns: the model, every training episode, timing and the update statistics."""

    model: rl.ActorCritic
    episode_steps: list[int]
    episode_returns: list[float]
    wall_time: float
    total_steps: int
    stats: dict[str, list[float]] = field(default_factory=dict)
    checkpoints: dict[int, dict] = field(default_factory=dict)
    episode_times: list[float] = field(
        default_factory=list
    )  # seconds since the start, when each episode ended
    eval_steps: list[int] = field(
        default_factory=list
    )  # periodic greedy evaluations (``eval_every``)
    eval_returns: list[float] = field(default_factory=list)  # their mean returns
    eval_time: float = 0.0  # seconds spent in them (not in ``wall_time``)

    @property
    def curve(self) -> tuple[list[int], list[float]]:
        """``(steps, returns)``, the format of ``helpers.rl.plot_returns``."""
        return self.episode_steps, self.episode_returns

    def steps_to(self, threshold: float, window: int = 20) -> int | None:
        """First environment step at which the mean return of the last ``window`` episodes reached ``threshold``."""
        return first_crossing(
            self.episode_steps, self.episode_returns, threshold, window
        )

    def steps_to_reach(self, threshold: float) -> int | None:
        """First periodic greedy evaluation step whose mean return was >= ``threshold`` (None if never); the
        measure of :class:`helpers.dqn.DQNResult` and :class:`helpers.ppo.PPOResult`."""
        return next(
            (s for s, r in zip(self.eval_steps, self.eval_returns) if r >= threshold),
            None,
        )

    def time_to(self, threshold: float, window: int = 20) -> float | None:
        """Wall-clock seconds after which the mean return of the last ``window`` episodes reached ``threshold``."""
        return first_crossing(
            self.episode_times, self.episode_returns, threshold, window
        )


def make_optimizer(
    model: rl.ActorCritic, actor_lr: float, critic_lr: float
) -> torch.optim.Adam:
    """Adam with one learning rate for the actor and another for the critic (and the Gaussian log-std, if any).

    Two rates because the two networks solve different problems: the critic regresses returns in the tens or
    hundreds, the actor nudges probabilities; the chapter's instability experiment varies the critic's alone.
    """
    actor = list(model.actor.parameters()) + (
        [model.log_std] if model.continuous else []
    )
    return torch.optim.Adam(
        [
            {"params": actor, "lr": actor_lr},
            {"params": model.critic.parameters(), "lr": critic_lr},
        ]
    )


def clip_and_step(
    model: rl.ActorCritic, optimizer: torch.optim.Optimizer, max_grad_norm: float | None
) -> None:
    """Clip the actor's and the critic's gradient norms *separately*, then step.

    One joint clip would let a large value-loss gradient (returns of a few hundred) shrink the policy's step.
    """
    if max_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.actor.parameters(), max_grad_norm)
        nn.utils.clip_grad_norm_(model.critic.parameters(), max_grad_norm)
    optimizer.step()


def gradient_step(
    model: rl.ActorCritic,
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    max_grad_norm: float | None,
    lrs: list[float] | None = None,
) -> None:
    """One optimiser step on ``loss``: set the (decayed) learning rates ``lrs`` of the parameter groups if given,
    back-propagate, clip the actor's and the critic's gradients separately, and step."""
    if lrs is not None:
        for group, lr in zip(optimizer.param_groups, lrs):
            group["lr"] = lr
    optimizer.zero_grad()
    loss.backward()
    clip_and_step(model, optimizer, max_grad_norm)


def _env_dims(env_id: str) -> tuple[int, int]:
    env = gym.make(env_id)
    dims = int(np.prod(env.observation_space.shape)), int(env.action_space.n)
    env.close()
    return dims


def train_a2c(
    env_id: str = "CartPole-v1",
    *,
    seed: int = 0,
    total_steps: int = 200_000,
    n_envs: int = 8,
    n_steps: int = 5,
    gamma: float = 0.99,
    actor_lr: float = 1e-3,
    critic_lr: float = 1e-3,
    ent_coef: float = 0.01,
    vf_coef: float = 0.5,
    max_grad_norm: float | None = 0.5,
    lr_decay: bool = True,
    hidden: int = 64,
    checkpoint_steps: tuple[int, ...] = (),
    stop_return: float | None = None,
    window: int = 20,
    eval_every: int | None = None,
    eval_episodes: int = 10,
    eval_seed: int = 50_000,
    stop_eval_return: float | None = None,
    progress: bool = True,
    desc: str | None = None,
    loss_fn: Callable[..., tuple[torch.Tensor, dict[str, float]]] = a2c_loss,
    make_model: Callable[[], nn.Module] | None = None,
    reward_scale: float = 1.0,
) -> TrainResult:
    """Synchronous A2C: ``n_envs`` copies step together, every ``n_steps`` steps one gradient step on the batch.

    ``lr_decay`` lowers both learning rates linearly to 0 over the run, which keeps a solved policy from drifting
    away in the last updates. ``checkpoint_steps`` keeps copies of the model's parameters at those step counts.
    ``stop_return`` ends the run early once the mean return of the last ``window`` training episodes reaches it
    (used to time "how long until ..." comparisons; the learning-rate schedule still refers to ``total_steps``).
    ``eval_every`` evaluates the greedy policy on ``eval_episodes`` episodes (seeds from ``eval_seed``) after the
    first update past each multiple of ``eval_every`` steps, and ``stop_eval_return`` ends the run at the first
    evaluation that reaches it: the "steps until solved" measure of the DQN and PPO trainers. Evaluation time is
    kept out of ``wall_time``. ``loss_fn`` (default :func:`a2c_loss`) is the objective: a chapter hands in its own,
    written and edited on the page, and this function keeps the plumbing.

    ``make_model()`` (called after seeding) replaces the default ``rl.ActorCritic(..., hidden=hidden)``; a model
    with ``continuous = True`` (a Gaussian policy) trains on :func:`make_continuous_vector_env` with
    ``reward_scale``, is evaluated with :func:`greedy_return_continuous`, and ``stats["std"]`` follows its
    standard deviation (mean over action dimensions).
    """
    rl_seed(seed)
    if make_model is None:
        obs_dim, n_actions = _env_dims(env_id)
        model = rl.ActorCritic(obs_dim, n_actions, hidden=hidden)
    else:
        model = make_model()
    continuous = getattr(model, "continuous", False)
    optimizer = make_optimizer(model, actor_lr, critic_lr)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    if continuous:
        envs = make_continuous_vector_env(env_id, n_envs, seed, reward_scale)
    else:
        envs = rl.make_vector_env(env_id, n_envs, seed=seed)
    obs, _ = envs.reset(seed=[seed + i for i in range(n_envs)])
    state = RolloutState(obs, np.zeros(n_envs, dtype=bool))
    stats: dict[str, list[float]] = {}
    checkpoints: dict[int, dict] = {}
    pending = sorted(checkpoint_steps)
    times: list[float] = []
    eval_steps: list[int] = []
    eval_returns: list[float] = []
    eval_time = 0.0
    start = time.perf_counter()
    bar = tqdm(
        total=total_steps,
        desc=desc or f"A2C seed {seed}",
        disable=not progress,
        leave=False,
    )
    while state.step < total_steps:
        while pending and state.step >= pending[0]:
            checkpoints[pending.pop(0)] = {
                k: v.clone() for k, v in model.state_dict().items()
            }
        before, n_episodes = state.step, len(state.episodes)
        batch = collect_rollout(envs, model, state, n_steps)
        times.extend([time.perf_counter() - start] * (len(state.episodes) - n_episodes))
        loss, parts = loss_fn(model, batch, gamma, ent_coef, vf_coef)
        gradient_step(
            model,
            optimizer,
            loss,
            max_grad_norm,
            [lr * max(0.0, 1.0 - state.step / total_steps) for lr in base_lrs]
            if lr_decay
            else None,
        )
        if continuous:
            parts = {**parts, "std": model.log_std.detach().exp().mean().item()}
        for k, v in {**parts, "step": state.step}.items():
            stats.setdefault(k, []).append(v)
        bar.update(state.step - before)
        if state.episodes:
            recent = [r for _, r in state.episodes[-window:]]
            bar.set_postfix(ret=f"{np.mean(recent):.0f}", refresh=False)
            if (
                stop_return is not None
                and len(recent) == window
                and np.mean(recent) >= stop_return
            ):
                break
        if eval_every and (
            state.step // eval_every > before // eval_every or state.step >= total_steps
        ):
            eval_start = time.perf_counter()
            evaluate = greedy_return_continuous if continuous else greedy_return
            eval_returns.append(
                float(evaluate(model, env_id, eval_episodes, eval_seed).mean())
            )
            eval_steps.append(state.step)
            eval_time += time.perf_counter() - eval_start
            if stop_eval_return is not None and eval_returns[-1] >= stop_eval_return:
                break
    bar.close()
    envs.close()
    steps, returns = zip(*state.episodes) if state.episodes else ((), ())
    return TrainResult(
        model,
        list(steps),
        list(returns),
        time.perf_counter() - start - eval_time,
        state.step,
        stats,
        checkpoints,
        times,
        eval_steps,
        eval_returns,
        eval_time,
    )


def rl_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (the same as ``helpers.seed_everything``) for one run."""
    from .settings import seed_everything

    seed_everything(seed)


# ----------------------------------------------------------------------------------------------------------------
# REINFORCE: whole episodes, Monte-Carlo returns
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Episodes(Transitions):
    """A batch of complete episodes concatenated along time (shape ``(T, ...)``), and each episode's return."""

    returns: list[float]

    @property
    def steps(self) -> int:
        return int(self.rewards.numel())


@torch.no_grad()
def run_episodes(envs: list[gym.Env], model: rl.ActorCritic) -> Episodes:
    """Play one episode in each environment (in lockstep, one batched forward pass per step) with the policy.

    Each environment keeps its own random stream (``helpers.rl.make_env`` seeds it once), so repeated calls give
    fresh, reproducible episodes. The batch's tensors live on the model's device.
    """
    device = rl.module_device(model)
    n = len(envs)
    obs = np.stack([env.reset()[0] for env in envs])
    active = np.ones(n, dtype=bool)
    per_env: list[list[tuple]] = [[] for _ in range(n)]
    while active.any():
        idx = np.flatnonzero(active)
        o = torch.as_tensor(obs[idx], dtype=torch.float32, device=device)
        actions = model.distribution(o).sample().cpu().numpy()
        for j, i in enumerate(idx):
            nxt, r, term, trunc, _ = envs[i].step(actions[j])
            per_env[i].append((obs[i].copy(), actions[j], float(r), term, trunc, nxt))
            obs[i] = nxt
            if term or trunc:
                active[i] = False
    flat = [step for ep in per_env for step in ep]
    cols = list(zip(*flat))

    def t(x, dtype=None) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)

    return Episodes(
        t(np.stack(cols[0]), torch.float32),
        t(cols[1]),
        t(cols[2], torch.float32),
        t(cols[3]),
        t(cols[4]),
        t(np.stack(cols[5]), torch.float32),
        [sum(s[2] for s in ep) for ep in per_env],
    )


def episode_advantages(
    model: rl.ActorCritic,
    batch: Episodes,
    estimator: str,
    gamma: float = 0.99,
    n: int = 5,
) -> torch.Tensor:
    """The weight Psi_t that multiplies grad log pi(a_t|s_t) in each policy-gradient estimator (no gradient).

    - ``"reinforce"``: the Monte-Carlo return G_t (the reward-to-go) itself;
    - ``"baseline"``:  G_t - V(s_t), REINFORCE with the critic as a baseline, except that where the time
      limit cut an episode G_t also adds the critic's discounted value of the last state, as A2C does
      (:func:`reinforce_loss` with ``baseline=True`` does not);
    - ``"a2c"``:       the n-step return minus V(s_t), cut every ``n`` steps as A2C's rollouts of length ``n`` do.

    All three use :func:`n_step_returns`; the estimators differ only in where they bootstrap.
    """
    with torch.no_grad():
        if estimator == "reinforce":
            zeros = torch.zeros_like(batch.rewards)
            return n_step_returns(
                batch.rewards, batch.terminated, batch.truncated, zeros, gamma
            )
        values, next_values = model.value(batch.obs), model.value(batch.next_obs)
        if estimator == "baseline":
            # Truncation (the 500-step limit) still bootstraps: the only cut is where the environment cut.
            return (
                n_step_returns(
                    batch.rewards, batch.terminated, batch.truncated, next_values, gamma
                )
                - values
            )
        if estimator == "a2c":
            ends = batch.terminated | batch.truncated
            # position of each step inside its episode
            pos = torch.zeros(len(ends), dtype=torch.long, device=ends.device)
            count = 0
            for t in range(len(ends)):
                pos[t] = count
                count = 0 if ends[t] else count + 1
            cut = batch.truncated | (
                (pos + 1) % n == 0
            )  # a rollout boundary every n steps
            return (
                n_step_returns(batch.rewards, batch.terminated, cut, next_values, gamma)
                - values
            )
    raise ValueError(
        f"unknown estimator {estimator!r}: use 'reinforce', 'baseline' or 'a2c'"
    )


def reinforce_loss(
    model: rl.ActorCritic,
    batch: Episodes,
    gamma: float = 0.99,
    baseline: bool = False,
    ent_coef: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """REINFORCE: L = -mean_t[ log pi(a_t|s_t) * Psi_t ] with Psi_t = G_t (or G_t - V(s_t) with ``baseline``);
    with a baseline the critic also regresses the Monte-Carlo returns, (G_t - V(s_t))^2."""
    with torch.no_grad():
        zeros = torch.zeros_like(batch.rewards)
        mc = n_step_returns(
            batch.rewards, batch.terminated, batch.truncated, zeros, gamma
        )
    dist = model.distribution(batch.obs)
    if baseline:
        values = model.value(batch.obs)
        psi = mc - values.detach()
        value_loss = (mc - values).pow(2).mean()
    else:
        psi, value_loss = mc, mc.new_zeros(())
    policy_loss = -(dist.log_prob(batch.actions) * psi).mean()
    entropy = dist.entropy().mean()
    loss = policy_loss + 0.5 * value_loss - ent_coef * entropy
    return loss, {
        "policy_loss": policy_loss.item(),
        "value_loss": value_loss.item(),
        "entropy": entropy.item(),
    }


def train_reinforce(
    env_id: str = "CartPole-v1",
    *,
    seed: int = 0,
    total_steps: int = 200_000,
    episodes_per_batch: int = 8,
    gamma: float = 0.99,
    lr: float = 1e-3,
    critic_lr: float = 1e-3,
    baseline: bool = False,
    ent_coef: float = 0.0,
    max_grad_norm: float | None = 0.5,
    lr_decay: bool = True,
    hidden: int = 64,
    progress: bool = True,
    desc: str | None = None,
) -> TrainResult:
    """REINFORCE (optionally with a learned baseline): one gradient step per batch of complete episodes.

    Only the steps of the episodes used count as environment steps, so the budget compares with A2C's.
    """
    rl_seed(seed)
    obs_dim, n_actions = _env_dims(env_id)
    model = rl.ActorCritic(obs_dim, n_actions, hidden=hidden)
    optimizer = make_optimizer(model, lr, critic_lr)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    envs = [rl.make_env(env_id, seed=seed + i) for i in range(episodes_per_batch)]
    step, ep_steps, ep_returns, stats = 0, [], [], {}
    start = time.perf_counter()
    bar = tqdm(
        total=total_steps,
        desc=desc or f"REINFORCE seed {seed}",
        disable=not progress,
        leave=False,
    )
    while step < total_steps:
        batch = run_episodes(envs, model)
        for ret in (
            batch.returns
        ):  # episodes of one batch end "together" at the batch's last step
            ep_returns.append(ret)
        step += batch.steps
        ep_steps.extend([step] * len(batch.returns))
        loss, parts = reinforce_loss(model, batch, gamma, baseline, ent_coef)
        gradient_step(
            model,
            optimizer,
            loss,
            max_grad_norm,
            [lr * max(0.0, 1.0 - step / total_steps) for lr in base_lrs]
            if lr_decay
            else None,
        )
        for k, v in {**parts, "step": step}.items():
            stats.setdefault(k, []).append(v)
        bar.update(batch.steps)
        bar.set_postfix(ret=f"{np.mean(ep_returns[-20:]):.0f}", refresh=False)
    bar.close()
    for env in envs:
        env.close()
    return TrainResult(
        model, ep_steps, ep_returns, time.perf_counter() - start, step, stats
    )


# ----------------------------------------------------------------------------------------------------------------
# The variance of the policy-gradient estimate
# ----------------------------------------------------------------------------------------------------------------


def policy_gradient(
    model: rl.ActorCritic, batch: Episodes, psi: torch.Tensor
) -> torch.Tensor:
    """The actor's gradient of -mean_t[log pi(a_t|s_t) Psi_t] on one batch, flattened into one vector."""
    model.zero_grad()
    loss = -(model.distribution(batch.obs).log_prob(batch.actions) * psi).mean()
    grads = torch.autograd.grad(loss, list(model.actor.parameters()))
    return torch.cat([g.flatten() for g in grads])


def gradient_variance(
    model: rl.ActorCritic,
    env_id: str = "CartPole-v1",
    *,
    n_batches: int = 30,
    episodes_per_batch: int = 8,
    estimators: tuple[str, ...] = ("reinforce", "baseline", "a2c"),
    gamma: float = 0.99,
    n: int = 5,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Spread of each estimator's policy gradient across ``n_batches`` independent batches at *fixed* parameters.

    Every estimator sees the same episodes, so the differences come from Psi_t alone. Reported per estimator:
    ``total_variance`` = sum over parameters of the variance across batches (the expected squared distance of
    one batch's gradient from the mean gradient), ``mean_norm2`` = squared norm of the mean gradient (the
    signal), and ``noise_to_signal`` = their ratio, comparable even where the estimators' means differ in scale.
    """
    envs = [rl.make_env(env_id, seed=seed + i) for i in range(episodes_per_batch)]
    grads: dict[str, list[torch.Tensor]] = {e: [] for e in estimators}
    gen_state = torch.get_rng_state()
    torch.manual_seed(seed)
    for _ in range(n_batches):
        batch = run_episodes(envs, model)
        for e in estimators:
            grads[e].append(
                policy_gradient(
                    model, batch, episode_advantages(model, batch, e, gamma, n)
                )
            )
    torch.set_rng_state(gen_state)
    out = {}
    for e, gs in grads.items():
        g = torch.stack(gs)
        total_var = g.var(dim=0).sum().item()
        mean_norm2 = g.mean(dim=0).pow(2).sum().item()
        out[e] = {
            "total_variance": total_var,
            "mean_norm2": mean_norm2,
            "noise_to_signal": total_var / max(mean_norm2, 1e-12),
        }
    return out


def greedy_return(
    model: rl.ActorCritic,
    env_id: str = "CartPole-v1",
    episodes: int = 100,
    seed: int = 10_000,
) -> np.ndarray:
    """Returns of the greedy (arg-max) policy on fresh episodes: ``helpers.rl.evaluate_policy`` on the actor."""
    return rl.evaluate_policy(
        rl.torch_policy(model), env_id, episodes=episodes, seed=seed
    )


def first_crossing(at: list, returns: list[float], threshold: float, window: int = 20):
    """``at[i]`` (a step count or a time) of the first episode ``i`` at which the mean return of the last ``window``
    training episodes reached ``threshold``; ``None`` if it never did."""
    if len(returns) < window:
        return None
    ma = rl.moving_average(returns, window)[window - 1 :]
    hit = np.flatnonzero(ma >= threshold)
    return at[window - 1 + hit[0]] if hit.size else None


# ----------------------------------------------------------------------------------------------------------------
# Continuous actions: the same loop on a Box action space (the chapter's Pendulum section)
# ----------------------------------------------------------------------------------------------------------------


def make_continuous_vector_env(
    env_id: str, num_envs: int, seed: int = 0, reward_scale: float = 1.0
) -> gym.vector.VectorEnv:
    """``helpers.rl.make_vector_env`` for a Box action space, with two wrappers *outside* the episode statistics.

    - ``ClipAction``: a Gaussian sample can fall outside the bounds; the environment receives the clipped action,
      while the rollout keeps the sampled one, whose log-probability the policy gradient needs.
    - ``TransformReward``: the rollout's rewards are multiplied by ``reward_scale`` (the critic then regresses
      returns of order 1); the recorded episode returns stay in the environment's own units.
    """
    envs = rl.make_vector_env(env_id, num_envs, seed=seed)
    envs = gym.wrappers.vector.ClipAction(envs)
    if reward_scale != 1.0:
        envs = gym.wrappers.vector.TransformReward(
            envs, lambda r: (r * reward_scale).astype(np.float32)
        )
    return envs


def greedy_return_continuous(
    model: nn.Module,
    env_id: str = "Pendulum-v1",
    episodes: int = 10,
    seed: int = 10_000,
) -> np.ndarray:
    """Returns of the deterministic policy "act with the Gaussian's mean, clipped to the bounds" on fresh episodes
    (``helpers.rl.evaluate_policy``); ``model(obs)`` must return the mean action."""
    env = gym.make(env_id)
    low, high = env.action_space.low, env.action_space.high
    env.close()
    mean_action = rl.torch_policy(model, continuous=True)
    return rl.evaluate_policy(
        lambda obs: np.clip(mean_action(obs), low, high), env_id, episodes, seed
    )


def train_a2c_continuous(
    make_model: Callable[[], nn.Module],
    env_id: str = "Pendulum-v1",
    *,
    seed: int = 0,
    total_steps: int = 100_000,
    n_envs: int = 8,
    n_steps: int = 8,
    gamma: float = 0.9,
    actor_lr: float = 1e-3,
    critic_lr: float = 1e-3,
    ent_coef: float = 0.0,
    vf_coef: float = 0.5,
    max_grad_norm: float | None = 0.5,
    lr_decay: bool = True,
    reward_scale: float = 1.0,
    eval_every: int | None = None,
    eval_episodes: int = 5,
    eval_seed: int = 50_000,
    progress: bool = True,
    desc: str | None = None,
    loss_fn: Callable[..., tuple[torch.Tensor, dict[str, float]]] = a2c_loss,
) -> TrainResult:
    """Synchronous A2C for continuous actions: :func:`train_a2c` with a Gaussian policy and Pendulum's defaults.

    ``make_model()`` builds the actor-critic after the run is seeded (an object with ``actor``, ``critic``,
    ``log_std``, ``continuous = True``, ``value``, ``distribution`` and ``forward`` returning the mean action, as
    ``helpers.rl.ActorCritic(..., continuous=True)``); rollouts come from :func:`collect_rollout` and the objective
    is ``loss_fn`` (default :func:`a2c_loss`: a diagonal Gaussian's ``log_prob`` and ``entropy`` slot into the same
    formula). ``stats["std"]`` follows the policy's standard deviation (mean over action dimensions). With
    ``eval_every`` the mean-action policy is evaluated on ``eval_episodes`` episodes (:func:`greedy_return_continuous`)
    after the first update past each multiple of ``eval_every`` steps and at the end; that time is kept out of
    ``wall_time``.
    """
    return train_a2c(
        env_id,
        seed=seed,
        total_steps=total_steps,
        n_envs=n_envs,
        n_steps=n_steps,
        gamma=gamma,
        actor_lr=actor_lr,
        critic_lr=critic_lr,
        ent_coef=ent_coef,
        vf_coef=vf_coef,
        max_grad_norm=max_grad_norm,
        lr_decay=lr_decay,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        eval_seed=eval_seed,
        progress=progress,
        desc=desc,
        loss_fn=loss_fn,
        make_model=make_model,
        reward_scale=reward_scale,
    )


__all__ = [
    "n_step_returns",
    "Transitions",
    "Rollout",
    "a2c_loss",
    "RolloutState",
    "collect_rollout",
    "TrainResult",
    "make_optimizer",
    "clip_and_step",
    "gradient_step",
    "train_a2c",
    "Episodes",
    "run_episodes",
    "episode_advantages",
    "reinforce_loss",
    "train_reinforce",
    "policy_gradient",
    "gradient_variance",
    "greedy_return",
    "first_crossing",
    "make_continuous_vector_env",
    "greedy_return_continuous",
    "train_a2c_continuous",
]
