"""Unit tests for helpers.tabular: the exact solvers, greedy policies, grid drawings and the discretiser."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import pytest

from helpers import rl, tabular


def chain_mdp() -> tuple[np.ndarray, np.ndarray]:
    """Two states; action 1 in state 1 ends the episode with reward 1, everything else costs nothing.

    From state 0, action 1 moves to state 1; action 0 stays. Optimal: Q*(1,1) = 1, Q*(0,1) = gamma.
    """
    T = np.zeros((2, 2, 2))
    R = np.zeros((2, 2))
    T[0, 0, 0] = T[0, 1, 1] = T[1, 0, 1] = 1.0  # (1, 1) terminates: no row in T
    R[1, 1] = 1.0
    return T, R


def test_value_iteration_solves_a_hand_made_mdp():
    T, R = chain_mdp()
    V, Q, iterations = tabular.value_iteration(T, R, gamma=0.9)
    assert np.allclose(V, [0.9, 1.0]) and np.allclose(Q, [[0.81, 0.9], [0.9, 1.0]])
    assert iterations < 10
    assert list(tabular.greedy_actions(Q)) == [1, 1]
    with pytest.raises(ValueError):
        tabular.value_iteration(T, R, gamma=1.5)


def test_policy_evaluation_is_exact_and_rejects_endless_policies():
    T, R = chain_mdp()
    assert np.allclose(tabular.policy_evaluation(T, R, [1, 1], gamma=0.9), [0.9, 1.0])
    assert np.allclose(
        tabular.policy_evaluation(T, R, [0, 1], gamma=0.9), [0.0, 1.0]
    )  # stays in state 0 forever
    with pytest.raises(ValueError):
        tabular.policy_evaluation(T, R, [0, 0], gamma=1.0)


def test_tabular_model_drops_terminal_transitions():
    T, R = tabular.tabular_model(gym.make("FrozenLake-v1", is_slippery=False))
    assert T.shape == (16, 4, 16) and R.shape == (16, 4)
    assert (
        np.isclose(R[14, 2], 1.0) and T[14, 2].sum() == 0.0
    )  # stepping right onto the goal terminates
    assert np.isclose(T[0, 2, 1], 1.0)
    with pytest.raises(ValueError):
        tabular.tabular_model(gym.make("CartPole-v1"))


def test_cliff_walking_optimum_is_the_13_step_path():
    env = gym.make("CliffWalking-v1")
    T, R = tabular.tabular_model(env)
    V, Q, _ = tabular.value_iteration(T, R, gamma=1.0)
    assert np.isclose(V[36], -13.0)
    path, ret = tabular.greedy_path("CliffWalking-v1", tabular.greedy_actions(Q))
    assert ret == -13.0 and path[0] == 36 and path[-1] == 47 and len(path) == 14
    assert tabular.optimal_action_share(Q, Q) == 1.0
    assert (
        tabular.optimal_action_share(-Q, Q, states=[36]) == 0.0
    )  # the worst action is not optimal


def test_optimal_policy_of_slippery_frozen_lake_beats_random():
    env = gym.make("FrozenLake-v1")
    T, R = tabular.tabular_model(env)
    V, Q, _ = tabular.value_iteration(T, R, gamma=0.99)
    best = tabular.greedy_actions(Q)
    assert np.isclose(tabular.policy_evaluation(T, R, best, 0.99)[0], V[0])
    success = rl.evaluate_policy(tabular.as_policy(best), "FrozenLake-v1", episodes=200)
    assert (
        success.mean() > 0.6
    )  # the optimum is about 0.74; a random policy about 0.015


def test_reachable_states_of_taxi_leave_out_delivered_passengers():
    env = gym.make("Taxi-v4")
    T, _ = tabular.tabular_model(env)
    starts = np.flatnonzero(env.unwrapped.initial_state_distrib)
    reach = tabular.reachable_states(T, starts)
    assert len(starts) == 300 and len(reach) == 400
    assert 0 not in reach  # taxi at R, passenger at R = its destination R


def test_taxi_slice_picks_one_passenger_and_destination():
    table = np.arange(500)
    sl = tabular.taxi_slice(table, passenger=2, destination=3)
    env = gym.make("Taxi-v4").unwrapped
    assert sl.shape == (25,) and sl[7] == env.encode(1, 2, 2, 3)


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "CliffWalking-v1", "Taxi-v4"])
def test_plot_grid_policy_draws_arrows_values_and_paths(env_id):
    env = gym.make(env_id)
    layout = tabular.grid_layout(env)
    cells = layout.shape[0] * layout.shape[1]
    actions = np.arange(cells) % (5 if env_id == "Taxi-v4" else 4)
    fig = tabular.plot_grid_policy(
        layout,
        actions,
        values=np.linspace(0, 1, cells),
        action_text={4: "P"},
        title="t",
    )
    ax = fig.axes[0]
    assert ax.get_title() == "t" and ax.get_xlabel() and ax.get_ylabel()
    assert len(fig.axes) == 2  # the grid and its colour bar
    plt.close(fig)
    fig = tabular.plot_grid_policy(
        layout, paths={"a": [0, 1, 2], "b": [0, 1]}, title="paths"
    )
    assert len(fig.axes[0].get_lines()) >= 2 and fig.axes[0].get_legend() is not None
    plt.close(fig)
    with pytest.raises(ValueError):
        tabular.grid_layout(gym.make("CartPole-v1"))


def test_layouts_know_each_environments_arrows():
    cliff = tabular.grid_layout(gym.make("CliffWalking-v1"))
    assert cliff.shape == (4, 12) and cliff.labels[36] == "S" and 40 in cliff.no_arrow
    lake = tabular.grid_layout(gym.make("FrozenLake-v1"))
    assert (
        lake.deltas[0] == (0, -1) and lake.labels[5] == "H"
    )  # FrozenLake's action 0 is LEFT
    taxi = tabular.grid_layout(gym.make("Taxi-v4"))
    assert len(taxi.walls) == 6 and taxi.labels[24 - 1] == "B"


def test_discretiser_bins_clips_and_counts():
    d = tabular.Discretiser([-1.0, 0.0], [1.0, 10.0], bins=[2, 5])
    assert d.n_states == 10
    assert d([-0.5, 0.1]) == 0 and d([0.5, 9.9]) == 9
    assert d([-5.0, 100.0]) == 4  # clipped into the outer bins
    assert np.array_equal(d.cell([0.5, 4.0]), [1, 2])
    assert tabular.Discretiser([0, 0, 0, 0], [1, 1, 1, 1], 10).n_states == 10_000
    with pytest.raises(ValueError):
        tabular.Discretiser([0.0], [0.0], 3)
    with pytest.raises(ValueError):
        tabular.Discretiser([0.0], [1.0], 0)


def test_as_policy_with_an_encoder():
    d = tabular.Discretiser([0.0], [1.0], 2)
    policy = tabular.as_policy([7, 9], encode=d)
    assert policy(np.array([0.2])) == 7 and policy(np.array([0.8])) == 9
    assert tabular.as_policy([3, 4])(1) == 4
