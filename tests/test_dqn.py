"""Unit tests for helpers.dqn: replay buffer, TD target (terminated vs truncated), the update step, the trainer."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from helpers import dqn, rl


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: one thread is faster, and avoids thread contention on a busy CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fill(buffer: dqn.ReplayBuffer, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        buffer.add(
            np.full(3, i, np.float32),
            i % 2,
            float(i),
            np.full(3, i + 1, np.float32),
            i % 5 == 0,
        )


def test_buffer_shapes_and_dtypes():
    buffer = dqn.ReplayBuffer(10, obs_shape=3, seed=0)
    with pytest.raises(ValueError):
        buffer.sample(4)
    fill(buffer, 4)
    assert len(buffer) == 4
    batch = buffer.sample(6)
    assert batch.obs.shape == batch.next_obs.shape == (6, 3)
    assert batch.actions.shape == batch.rewards.shape == batch.terminated.shape == (6,)
    assert (
        batch.actions.dtype == torch.int64
        and batch.obs.dtype == batch.rewards.dtype == torch.float32
    )
    # every sampled row is one stored transition, fields kept together
    assert torch.equal(batch.next_obs[:, 0], batch.obs[:, 0] + 1)
    assert torch.equal(batch.rewards, batch.obs[:, 0])
    with pytest.raises(ValueError):
        dqn.ReplayBuffer(0, obs_shape=3)


def test_buffer_wraps_around_and_overwrites_oldest():
    buffer = dqn.ReplayBuffer(5, obs_shape=3, seed=0)
    fill(buffer, 7)  # transitions 0..6 into 5 slots: 0 and 1 are overwritten
    assert len(buffer) == 5 and buffer.pos == 2
    assert sorted(buffer.rewards.tolist()) == [2, 3, 4, 5, 6]
    assert buffer.obs[0, 0] == 5 and buffer.obs[1, 0] == 6
    seen = set(buffer.sample(500).rewards.tolist())
    assert seen == {
        2.0,
        3.0,
        4.0,
        5.0,
        6.0,
    }  # uniform sampling reaches every stored slot, nothing else


def test_buffer_sampling_is_seeded():
    a, b = dqn.ReplayBuffer(50, 3, seed=1), dqn.ReplayBuffer(50, 3, seed=1)
    fill(a, 30), fill(b, 30)
    assert torch.equal(a.sample(8).rewards, b.sample(8).rewards)


class ConstantQ(torch.nn.Module):
    """Q(s, .) = fixed values whatever the state: makes TD targets easy to compute by hand."""

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.values = torch.tensor(values)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.values.expand(len(obs), -1)


def make_batch(terminated: list[float]) -> dqn.Batch:
    n = len(terminated)
    return dqn.Batch(
        torch.zeros(n, 2),
        torch.zeros(n, dtype=torch.int64),
        torch.ones(n),
        torch.zeros(n, 2),
        torch.tensor(terminated),
    )


def test_td_target_bootstraps_unless_terminated():
    target = ConstantQ([2.0, 5.0])
    y = dqn.td_target(make_batch([0.0, 1.0]), target, gamma=0.9)
    # not terminated (a truncated step is stored like this): r + gamma * max Q = 1 + 0.9 * 5; terminated: r only
    assert torch.allclose(y, torch.tensor([1 + 0.9 * 5, 1.0]))


def test_truncated_steps_are_stored_as_not_terminated():
    buffer = dqn.ReplayBuffer(4, obs_shape=2, seed=0)
    obs = np.zeros(2, np.float32)
    buffer.add(
        obs, 0, 1.0, obs, terminated=False
    )  # what train_dqn stores for a time-limit truncation
    y = dqn.td_target(buffer.sample(1), ConstantQ([3.0, 1.0]), gamma=0.5)
    assert torch.allclose(y, torch.tensor([1 + 0.5 * 3]))


def test_double_dqn_target_uses_online_argmax_and_target_values():
    target, online = (
        ConstantQ([2.0, 5.0]),
        ConstantQ([9.0, 0.0]),
    )  # online prefers action 0, target values it 2
    y = dqn.td_target(make_batch([0.0]), target, gamma=0.5, online_net=online)
    assert torch.allclose(
        y, torch.tensor([1 + 0.5 * 2.0])
    )  # DQN would give 1 + 0.5 * 5


def test_one_update_lowers_the_loss_on_the_same_batch():
    torch.manual_seed(0)
    q_net = dqn.QNetwork(4, 2, hidden=(32, 32))
    target_net = copy.deepcopy(q_net)
    buffer = dqn.ReplayBuffer(64, 4, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(64):
        buffer.add(
            rng.normal(size=4),
            int(rng.integers(2)),
            1.0,
            rng.normal(size=4),
            bool(rng.random() < 0.1),
        )
    batch = buffer.sample(64)
    optimizer = torch.optim.SGD(q_net.parameters(), lr=0.05)
    before = [p.clone() for p in target_net.parameters()]
    first = dqn.dqn_update(q_net, target_net, optimizer, batch, gamma=0.99)
    second = dqn.dqn_update(q_net, target_net, optimizer, batch, gamma=0.99)
    assert second < first
    assert all(torch.equal(a, b) for a, b in zip(before, target_net.parameters())), (
        "target net must not move"
    )


def test_soft_update_and_linear_schedule():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    expected = 0.25 * b.weight.detach() + 0.75 * a.weight.detach()
    dqn.soft_update(a, b, tau=0.25)
    assert torch.allclose(a.weight, expected)
    dqn.soft_update(a, b, tau=1.0)
    assert torch.equal(a.weight, b.weight)
    assert dqn.linear_schedule(1.0, 0.1, 10, 0) == 1.0
    assert dqn.linear_schedule(1.0, 0.1, 10, 5) == pytest.approx(0.55)
    assert dqn.linear_schedule(1.0, 0.1, 10, 50) == pytest.approx(0.1)
    assert dqn.linear_schedule(1.0, 0.1, 0, 3) == 0.1


def test_q_network_shape():
    q = dqn.QNetwork(4, 3, hidden=(16,))
    assert q(torch.zeros(5, 4)).shape == (5, 3)
    with pytest.raises(ValueError):
        dqn.QNetwork(0, 2)


def test_train_dqn_runs_and_records():
    config = dqn.DQNConfig(
        total_steps=600,
        learning_starts=200,
        batch_size=32,
        buffer_size=500,
        eval_every=300,
        eval_episodes=2,
        hidden=(16,),
        train_freq=4,
        target_update=100,
        seed=0,
    )
    result = dqn.train_dqn(config, progress=False)
    assert result.steps_done == 600 and result.eval_steps == [300, 600]
    assert (
        len(result.losses) == (600 - 200) // 4
        and len(result.episode_steps) == len(result.episode_returns) > 0
    )
    assert result.best_eval == max(result.eval_returns)
    assert 0 < result.eval_time_s < result.wall_time_s
    again = dqn.train_dqn(config, progress=False)
    assert (
        again.eval_returns == result.eval_returns and again.losses == result.losses
    )  # seeded
    double = dqn.train_dqn(
        dqn.DQNConfig(**{**dqn.config_dict(config), "double": True, "tau": 0.1}),
        progress=False,
    )
    assert len(double.losses) == 100
    # the zoo's schedule: gradient_steps updates in a burst every train_freq steps
    burst = dqn.train_dqn(
        dqn.DQNConfig(
            **{**dqn.config_dict(config), "train_freq": 100, "gradient_steps": 8}
        ),
        progress=False,
    )
    assert len(burst.losses) == 8 * ((600 - 200) // 100)


def test_batched_greedy_returns_match_evaluate_policy():
    torch.manual_seed(1)
    q = dqn.QNetwork(4, 2, hidden=(8,))
    fast = dqn.greedy_returns(q, "CartPole-v1", episodes=4, seed=7)
    assert np.array_equal(
        fast, rl.evaluate_policy(rl.torch_policy(q), "CartPole-v1", episodes=4, seed=7)
    )


def test_pixel_buffer_stores_bytes_and_samples_floats():
    buf = dqn.ReplayBuffer(10, (10, 10, 4), seed=0, dtype=np.uint8)
    frame = np.zeros((10, 10, 4), dtype=bool)
    frame[3, 4, 1] = True
    for i in range(5):
        buf.add(frame, i % 3, 1.0, frame, False)
    assert buf.obs.dtype == np.uint8 and buf.obs.nbytes == 10 * 400
    batch = buf.sample(4)
    assert batch.obs.shape == (4, 10, 10, 4) and batch.obs.dtype == torch.float32
    assert float(batch.obs[:, 3, 4, 1].min()) == 1.0
    assert dqn.ReplayBuffer(5, 4).obs.shape == (5, 4)  # vectors as before


def test_q_network_fits_the_observations():
    image = dqn.q_network((10, 10, 4), 3, (128,))
    assert isinstance(image, dqn.ConvQNetwork)
    assert image(torch.zeros(2, 10, 10, 4)).shape == (2, 3)
    assert isinstance(dqn.q_network((4,), 2, (64,)), dqn.QNetwork)


def test_train_dqn_learns_from_pixels_without_errors():
    pytest.importorskip("minatar")
    cfg = dqn.DQNConfig(
        env_id="MinAtar/Breakout-v1",
        total_steps=600,
        learning_starts=200,
        buffer_size=1_000,
        batch_size=16,
        hidden=(32,),
        eval_every=600,
        eval_episodes=2,
    )
    res = dqn.train_dqn(cfg, progress=False)
    assert isinstance(res.q_net, dqn.ConvQNetwork) and len(res.losses) > 0
    assert res.steps_done == 600 and len(res.eval_returns) == 1
