"""Unit tests for helpers.a2c: n-step returns by hand, the loss, rollouts with autoreset, tiny training runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import a2c, rl


def test_n_step_returns_by_hand_with_terminated_and_truncated():
    g = 0.5
    # Two environments, four steps. Env 0 terminates at t=1; env 1 is truncated (time limit) at t=2.
    rewards = torch.tensor([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [4.0, 1.0]])
    terminated = torch.tensor(
        [[False, False], [True, False], [False, False], [False, False]]
    )
    truncated = torch.tensor(
        [[False, False], [False, False], [False, True], [False, False]]
    )
    next_values = torch.tensor([[10.0, 20.0], [11.0, 21.0], [12.0, 22.0], [13.0, 23.0]])
    out = a2c.n_step_returns(rewards, terminated, truncated, next_values, g)
    # env 0: t=3 bootstraps from V(s_4)=13; t=2 continues into it; t=1 is terminal (future 0); t=0 continues.
    e0_3 = 4 + g * 13
    e0_2 = 3 + g * e0_3
    e0_1 = 2.0
    e0_0 = 1 + g * e0_1
    # env 1: t=3 bootstraps from 23; t=2 truncated -> bootstrap from the final observation's value 22 (not 0,
    # and not the next episode's return); t=1 and t=0 continue.
    e1_3 = 1 + g * 23
    e1_2 = 1 + g * 22
    e1_1 = 1 + g * e1_2
    e1_0 = 1 + g * e1_1
    expected = torch.tensor([[e0_0, e1_0], [e0_1, e1_1], [e0_2, e1_2], [e0_3, e1_3]])
    assert torch.allclose(out, expected)


def test_n_step_returns_without_critic_is_monte_carlo():
    rewards = torch.ones(5)
    terminated = torch.tensor([False, False, False, False, True])
    out = a2c.n_step_returns(
        rewards, terminated, torch.zeros(5, dtype=torch.bool), torch.zeros(5), 0.9
    )
    expected = torch.tensor([sum(0.9**k for k in range(5 - t)) for t in range(5)])
    assert torch.allclose(out, expected)


def test_n_step_returns_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        a2c.n_step_returns(
            torch.ones(3), torch.zeros(3), torch.zeros(3), torch.zeros(4), 0.9
        )


def test_rollout_masks_the_reset_step_and_loss_has_gradients():
    envs = rl.make_vector_env("CartPole-v1", 2, seed=0)
    obs, _ = envs.reset(seed=[0, 1])
    model = rl.ActorCritic(4, 2)
    state = a2c.RolloutState(obs, np.zeros(2, dtype=bool))
    batch = a2c.collect_rollout(
        envs, model, state, 60
    )  # a random policy ends CartPole episodes in ~20 steps
    ended = batch.terminated | batch.truncated
    assert ended[:-1].any()
    # the step right after an episode ended is the reset step: masked out, reward 0
    t, i = torch.nonzero(ended[:-1])[0]
    assert not batch.mask[t + 1, i] and batch.rewards[t + 1, i] == 0
    assert batch.mask.sum() == state.step and len(state.episodes) >= 1
    loss, parts = a2c.a2c_loss(model, batch)
    loss.backward()
    assert all(
        p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters()
    )
    assert set(parts) >= {"policy_loss", "value_loss", "entropy"}
    envs.close()


def test_episode_advantages_reinforce_is_reward_to_go():
    envs = [rl.make_env("CartPole-v1", seed=i) for i in range(2)]
    model = rl.ActorCritic(4, 2)
    batch = a2c.run_episodes(envs, model)
    assert batch.steps == sum(batch.returns)  # CartPole pays 1 per step
    psi = a2c.episode_advantages(model, batch, "reinforce", gamma=1.0)
    first_len = int(batch.returns[0])
    assert (
        psi[0] == first_len and psi[first_len - 1] == 1.0
    )  # undiscounted reward-to-go
    for estimator in ("baseline", "a2c"):
        assert (
            a2c.episode_advantages(model, batch, estimator).shape == batch.rewards.shape
        )
    with pytest.raises(ValueError):
        a2c.episode_advantages(model, batch, "nope")


def test_tiny_training_runs_and_gradient_variance():
    res = a2c.train_a2c(
        total_steps=400, n_envs=4, n_steps=5, progress=False, checkpoint_steps=(0, 200)
    )
    assert (
        res.total_steps >= 400
        and len(res.episode_returns) > 0
        and set(res.checkpoints) == {0, 200}
    )
    assert len(res.episode_times) == len(res.episode_returns)
    again = a2c.train_a2c(total_steps=400, n_envs=4, n_steps=5, progress=False)
    assert again.episode_returns == res.episode_returns  # seeded: the same run twice
    rf = a2c.train_reinforce(total_steps=300, episodes_per_batch=4, progress=False)
    assert rf.total_steps >= 300 and len(rf.episode_steps) == len(rf.episode_returns)
    var = a2c.gradient_variance(res.model, n_batches=3, episodes_per_batch=2)
    assert set(var) == {"reinforce", "baseline", "a2c"}
    assert all(v["total_variance"] > 0 for v in var.values())
    assert a2c.first_crossing([1, 2, 3], [1.0, 5.0, 9.0], 4.0, window=2) == 3
    assert a2c.first_crossing([1, 2], [1.0, 1.0], 4.0, window=2) is None


def test_periodic_greedy_evaluation_and_stop_at_a_return():
    res = a2c.train_a2c(
        total_steps=600,
        n_envs=4,
        n_steps=5,
        eval_every=200,
        eval_episodes=2,
        progress=False,
    )
    assert (
        len(res.eval_steps) == 3
        and res.eval_steps[0] >= 200
        and res.eval_steps[-1] >= 600
    )
    assert res.eval_time > 0 and all(9 <= r <= 500 for r in res.eval_returns)
    assert (
        res.steps_to_reach(0.0) == res.eval_steps[0]
        and res.steps_to_reach(501.0) is None
    )
    stopped = a2c.train_a2c(
        total_steps=600,
        n_envs=4,
        n_steps=5,
        eval_every=200,
        eval_episodes=2,
        stop_eval_return=0.0,
        progress=False,
    )  # any return reaches 0: stop at the first
    assert stopped.eval_steps == res.eval_steps[:1] and stopped.total_steps < 400


def test_n_step_returns_agree_with_gae_at_lambda_one():
    """GAE with lambda = 1 over a rollout is the n-step advantage: the PPO chapter's helper must agree with ours."""
    ppo = pytest.importorskip("helpers.ppo")
    gen = torch.Generator().manual_seed(0)
    rewards = torch.rand(6, 3, generator=gen)
    values, next_values = (
        torch.rand(6, 3, generator=gen),
        torch.rand(6, 3, generator=gen),
    )
    terminated = torch.rand(6, 3, generator=gen) < 0.2
    truncated = (torch.rand(6, 3, generator=gen) < 0.2) & ~terminated
    ends = terminated | truncated
    values[1:] = torch.where(
        ends[:-1], values[1:], next_values[:-1]
    )  # V(s_{t+1}) is the next step's V(s_t)
    ours = a2c.n_step_returns(rewards, terminated, truncated, next_values, 0.9)
    _, theirs = ppo.compute_gae(
        rewards, values, next_values, terminated, ends, gamma=0.9, lam=1.0
    )
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_train_a2c_uses_the_loss_it_is_given():
    # a chapter hands in its own (edited) objective; the default is a2c_loss, so the same one gives the same run
    calls = []

    def own_loss(model, batch, gamma, ent_coef, vf_coef):
        calls.append(batch.rewards.shape)
        return a2c.a2c_loss(model, batch, gamma, ent_coef, vf_coef)

    kw = dict(seed=3, total_steps=400, n_envs=2, n_steps=5, progress=False)
    default = a2c.train_a2c("CartPole-v1", **kw)
    mine = a2c.train_a2c("CartPole-v1", loss_fn=own_loss, **kw)
    assert calls and calls[0] == (5, 2)
    for p, q in zip(default.model.parameters(), mine.model.parameters()):
        assert torch.equal(p, q)


def test_continuous_env_clips_actions_and_scales_rewards():
    envs = a2c.make_continuous_vector_env("Pendulum-v1", 2, seed=0, reward_scale=0.1)
    raw = rl.make_vector_env("Pendulum-v1", 2, seed=0)
    envs.reset(seed=[0, 1])
    raw.reset(seed=[0, 1])
    big = np.array([[50.0], [-50.0]], dtype=np.float32)  # far outside [-2, 2]
    _, r_scaled, *_ = envs.step(big)
    _, r_raw, *_ = raw.step(np.clip(big, -2.0, 2.0))
    assert np.allclose(r_scaled, 0.1 * r_raw, atol=1e-5)
    envs.close()
    raw.close()


def test_train_a2c_continuous_runs_and_is_seeded():
    def make_model():
        return rl.ActorCritic(3, 1, continuous=True, log_std_init=-1.0)

    kw = dict(
        seed=1, total_steps=600, n_envs=2, n_steps=8, reward_scale=0.1, progress=False
    )
    res = a2c.train_a2c_continuous(make_model, "Pendulum-v1", eval_every=300, **kw)
    assert res.total_steps >= 600 and len(res.episode_returns) >= 2  # 200-step episodes
    assert all(-2000 < r < 0 for r in res.episode_returns)  # raw, unscaled returns
    assert len(res.eval_steps) == 2 and all(r < 0 for r in res.eval_returns)
    assert len(res.stats["std"]) == len(res.stats["step"]) > 0
    assert res.stats["std"][-1] != pytest.approx(np.exp(-1.0), abs=1e-6)  # it learns
    again = a2c.train_a2c_continuous(make_model, "Pendulum-v1", **kw)
    assert again.episode_returns == res.episode_returns
    greedy = a2c.greedy_return_continuous(res.model, "Pendulum-v1", episodes=1)
    assert greedy.shape == (1,) and greedy[0] < 0
