"""Unit tests for helpers.rl: seeded environments, greedy evaluation, curves and the actor-critic network."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from helpers import rl


def test_make_env_is_seeded_and_records_episodes():
    a, b = rl.make_env("CartPole-v1", seed=3), rl.make_env("CartPole-v1", seed=3)
    assert np.allclose(a.reset()[0], b.reset()[0])
    done, info = False, {}
    while not done:
        _, _, terminated, truncated, info = a.step(0)
        done = terminated or truncated
    assert "episode" in info and info["episode"]["r"] > 0


def test_vector_env_seeds_each_copy_differently():
    envs = rl.make_vector_env("CartPole-v1", 3, seed=0)
    obs, _ = envs.reset(seed=[0, 1, 2])
    assert obs.shape == (3, 4) and not np.allclose(obs[0], obs[1])
    with pytest.raises(ValueError):
        rl.make_vector_env("CartPole-v1", 0)


def test_evaluate_policy_is_deterministic_and_tells_good_from_bad():
    always_left = rl.evaluate_policy(lambda obs: 0, "CartPole-v1", episodes=5)
    assert np.array_equal(
        always_left, rl.evaluate_policy(lambda obs: 0, "CartPole-v1", episodes=5)
    )
    # Push the cart towards the side the pole leans to: a classic hand-written controller that balances longer.
    lean = rl.evaluate_policy(
        lambda obs: int(obs[2] + 0.5 * obs[3] > 0), "CartPole-v1", episodes=5
    )
    assert always_left.mean() < 20 < lean.mean()
    with pytest.raises(ValueError):
        rl.evaluate_policy(lambda obs: 0, "CartPole-v1", episodes=0)


def test_torch_policy_greedy_and_continuous():
    q = torch.nn.Linear(4, 2)
    with torch.no_grad():
        q.weight.zero_(), q.bias.copy_(torch.tensor([0.0, 1.0]))
    assert rl.torch_policy(q)(np.zeros(4, dtype=np.float32)) == 1
    mean = rl.torch_policy(torch.nn.Linear(3, 1), continuous=True)(
        np.zeros(3, dtype=np.float32)
    )
    assert isinstance(mean, np.ndarray) and mean.shape == (1,)


def test_moving_average_and_mean_std():
    assert np.allclose(rl.moving_average([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    assert rl.mean_std([1, 3]) == "2.0 ± 1.0 (n=2)"
    assert rl.mean_std([0.98, 0.996], digits=3) == "0.988 ± 0.008 (n=2)"
    with pytest.raises(ValueError):
        rl.moving_average([1.0], 0)


def test_plot_returns_draws_mean_band_and_target():
    runs = {
        "a": [([10, 20, 30], [1, 2, 3]), ([15, 25, 35], [2, 3, 4])],
        "b": [([10, 20], [5, 5])],
    }
    fig = rl.plot_returns(runs, title="t", target=4)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "environment steps" and ax.get_title() == "t"
    assert (
        len(ax.lines) == 3 and len(ax.collections) == 1
    )  # two means + target line, one std band
    plt.close(fig)


@pytest.mark.parametrize("continuous", [False, True])
def test_actor_critic_shapes_and_gradients(continuous):
    torch.manual_seed(0)
    net = rl.ActorCritic(4, 2, continuous=continuous)
    obs = torch.randn(5, 4)
    dist = net.distribution(obs)
    action = dist.sample()
    assert dist.log_prob(action).shape == (5,) and net.value(obs).shape == (5,)
    assert net(obs).shape == (5, 2)
    (dist.log_prob(action).mean() + net.value(obs).mean()).backward()
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(ValueError):
        rl.ActorCritic(0, 2)


def test_curve_area_is_the_mean_height_and_defined_for_every_run():
    # One episode of return 10 ending at step 0, then one of 30 at step 50: with window 1 the
    # curve rises linearly from 10 to 30 over [0, 50] and stays at 30 until the budget 100.
    area = rl.curve_area([0, 50], [10, 30], budget=100, window=1, points=1001)
    assert area == pytest.approx((20 * 50 + 30 * 50) / 100, abs=0.05)
    # A run that never reaches a target still gets a number, and a faster learner a larger one.
    slow = rl.curve_area([100, 200, 300], [20, 20, 40], budget=300, window=1)
    fast = rl.curve_area([100, 200, 300], [20, 40, 40], budget=300, window=1)
    assert 0 < slow < fast
    assert rl.curve_area([], [], budget=10) == 0.0
    with pytest.raises(ValueError):
        rl.curve_area([1], [1], budget=0)


def test_module_device_and_torch_policy_follow_the_model():
    assert rl.module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert rl.module_device(lambda x: x) == torch.device("cpu")
    net = torch.nn.Linear(4, 2).to("meta")
    assert rl.module_device(net) == torch.device("meta")
    seen = []

    def spy(obs):
        seen.append(obs.device)
        return torch.zeros(1, 2)

    rl.torch_policy(spy, device="cpu")(np.zeros(4, dtype=np.float32))
    assert seen == [torch.device("cpu")]


def _square_seeded(seed: int, scale: float = 1.0) -> float:
    """A stand-in for a training run: seeds itself, so where it runs does not change its result."""
    return float(np.random.default_rng(seed).normal() * scale)


def test_run_many_gives_the_sequential_results_in_order(monkeypatch):
    calls = [{"seed": s, "scale": 2.0} for s in range(5)]
    want = [_square_seeded(**c) for c in calls]
    assert rl.run_many(_square_seeded, calls, jobs=1) == want
    assert rl.run_many(_square_seeded, calls, jobs=2) == want  # two spawned workers

    def edited(
        seed: int, scale: float = 1.0
    ) -> float:  # defined where it is used, like a notebook cell
        return _square_seeded(seed, scale) + 1.0

    assert rl.run_many(edited, calls, jobs=2) == [w + 1.0 for w in want]


def _pid(seed: int) -> int:
    return os.getpid()


def test_run_many_keeps_accelerator_runs_in_this_process():
    # on a GPU one process per run would start CUDA in each: the runs stay here, one after the other
    calls = [{"seed": s} for s in range(3)]
    assert rl.run_many(_pid, calls, jobs=2, device="meta") == [os.getpid()] * 3
    assert os.getpid() not in rl.run_many(_pid, calls, jobs=2, device="cpu")


def test_parallel_jobs_follows_the_thread_budget(monkeypatch):
    monkeypatch.delenv("DLBOOK_JOBS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert rl.parallel_jobs(5) == 1  # CI: several notebooks share the cores
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    assert rl.parallel_jobs(5) == 5 and rl.parallel_jobs(20) == 8
    monkeypatch.setenv("DLBOOK_JOBS", "3")
    assert rl.parallel_jobs(5) == 3


def test_minatar_games_play_from_pixels_with_a_time_limit():
    pytest.importorskip("minatar")
    env = rl.make_env("MinAtar/Breakout-v1", seed=0)
    obs, _ = env.reset()
    assert obs.shape == (10, 10, 4) and env.action_space.n == 3
    assert env.spec.max_episode_steps == 10_000  # MinAtar itself has no time limit
    stay = rl.evaluate_policy(lambda o: 0, "MinAtar/Breakout-v1", episodes=2, seed=1)
    again = rl.evaluate_policy(lambda o: 0, "MinAtar/Breakout-v1", episodes=2, seed=1)
    assert np.array_equal(stay, again)  # seeded: sticky actions and the ball repeat
    envs = rl.make_vector_env("MinAtar/Freeway-v1", num_envs=2, seed=0)
    assert envs.observation_space.shape == (2, 10, 10, 7)


def test_usable_cores_is_what_parallel_jobs_uses(monkeypatch):
    monkeypatch.delenv("DLBOOK_JOBS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert rl.usable_cores() >= 1
    assert rl.parallel_jobs(1_000) == rl.usable_cores()
