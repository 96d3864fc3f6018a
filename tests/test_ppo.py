"""Unit tests for helpers.ppo: GAE against hand-computed numbers, the clipped loss, rollouts and an update."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import ppo, rl

GAMMA, LAM = 0.9, 0.5
REWARDS = [1.0, 1.0, 1.0]
VALUES = [0.5, 0.4, 0.3]  # V(s_0), V(s_1), V(s_2)
NEXT_VALUES = [0.4, 0.3, 0.2]  # V(s_1), V(s_2), V(s_3)


def gae(terminated, dones, lam=LAM):
    return ppo.compute_gae(REWARDS, VALUES, NEXT_VALUES, terminated, dones, GAMMA, lam)


def test_gae_without_episode_end_matches_hand_computation():
    # deltas: 1 + 0.9*0.4 - 0.5 = 0.86, 1 + 0.9*0.3 - 0.4 = 0.87, 1 + 0.9*0.2 - 0.3 = 0.88; gamma*lam = 0.45
    adv, ret = gae([0, 0, 0], [0, 0, 0])
    expected = [0.86 + 0.45 * (0.87 + 0.45 * 0.88), 0.87 + 0.45 * 0.88, 0.88]
    assert torch.allclose(adv, torch.tensor(expected))
    assert torch.allclose(ret, torch.tensor(expected) + torch.tensor(VALUES))
    assert adv.dtype == torch.float32 and adv.shape == (3,)


def test_gae_terminated_does_not_bootstrap_and_cuts_the_recursion():
    adv, _ = gae([0, 1, 0], [0, 1, 0])
    # step 1 ends in a terminal state: delta_1 = 1 - 0.4 (no V(s_2)); step 2 belongs to the next episode.
    assert torch.allclose(adv, torch.tensor([0.86 + 0.45 * 0.6, 0.6, 0.88]))


def test_gae_truncated_bootstraps_but_cuts_the_recursion():
    adv, _ = gae([0, 0, 0], [0, 1, 0])
    # a time-limit cut keeps the bootstrap V(s_2) = 0.3 in delta_1 but stops A_1 from seeing the next episode.
    assert torch.allclose(adv, torch.tensor([0.86 + 0.45 * 0.87, 0.87, 0.88]))
    # terminated alone (dones not set) is still treated as an episode end
    assert torch.allclose(gae([0, 1, 0], [0, 0, 0])[0], gae([0, 1, 0], [0, 1, 0])[0])


def test_gae_lambda_one_is_the_n_step_return_and_lambda_zero_the_td_error():
    adv, ret = gae([0, 0, 0], [0, 0, 0], lam=1.0)
    n_step = 1 + 0.9 + 0.81 + 0.729 * 0.2  # r0 + g r1 + g^2 r2 + g^3 V(s_3)
    assert ret[0].item() == pytest.approx(n_step, abs=1e-6)
    assert adv[0].item() == pytest.approx(n_step - 0.5, abs=1e-6)
    adv0, _ = gae([0, 0, 0], [0, 0, 0], lam=0.0)
    assert torch.allclose(adv0, torch.tensor([0.86, 0.87, 0.88]))


def test_gae_vectorised_columns_are_independent_and_shapes_checked():
    r = np.stack([REWARDS, REWARDS], 1)
    v, nv = np.stack([VALUES, VALUES], 1), np.stack([NEXT_VALUES, NEXT_VALUES], 1)
    term = np.array([[0, 0], [0, 1], [0, 0]])
    adv, _ = ppo.compute_gae(r, v, nv, term, term, GAMMA, LAM)
    assert torch.allclose(adv[:, 0], gae([0, 0, 0], [0, 0, 0])[0])
    assert torch.allclose(adv[:, 1], gae([0, 1, 0], [0, 1, 0])[0])
    with pytest.raises(ValueError):
        ppo.compute_gae(REWARDS, VALUES[:2], NEXT_VALUES, [0, 0, 0], [0, 0, 0])


def test_clipped_surrogate_loss_values_and_gradients():
    old = torch.zeros(4)
    new = torch.log(torch.tensor([1.5, 1.5, 0.5, 0.5])).requires_grad_()
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss = ppo.clipped_surrogate_loss(new, old, adv, clip_eps=0.2)
    # min(r A, clip(r) A): 1.2 (clipped), -1.5, 0.5, -0.8 (clipped)
    assert loss.item() == pytest.approx(-(1.2 - 1.5 + 0.5 - 0.8) / 4)
    loss.backward()
    # clipped samples get no gradient; the others get -r A / 4
    assert torch.allclose(new.grad, torch.tensor([0.0, 1.5 / 4, -0.5 / 4, 0.0]))
    unclipped = ppo.clipped_surrogate_loss(new.detach(), old, adv, clip_eps=None)
    assert unclipped.item() == pytest.approx(-(1.5 - 1.5 + 0.5 - 0.5) / 4)


def test_running_mean_std_matches_numpy_and_normalises():
    data = np.random.default_rng(0).normal(3.0, 2.0, size=(500, 2)).astype(np.float32)
    rms = ppo.RunningMeanStd((2,))
    rms.update(torch.from_numpy(data[:123])), rms.update(torch.from_numpy(data[123:]))
    assert np.allclose(rms.mean.numpy(), data.mean(0), atol=1e-4)
    assert np.allclose(rms.var.numpy(), data.var(0), rtol=1e-3)
    z = rms(torch.from_numpy(data))
    assert z.mean(0).abs().max() < 1e-3 and (z.std(0) - 1).abs().max() < 1e-2


def test_rollout_marks_reset_steps_and_bootstraps_from_the_final_observation():
    torch.manual_seed(0)
    envs = rl.make_vector_env("CartPole-v1", 2, seed=0)
    obs, _ = envs.reset(seed=[0, 1])
    model = rl.ActorCritic(4, 2)
    roll, obs, done, episodes = ppo.collect_rollout(
        envs, model, torch.nn.Identity(), obs, np.zeros(2, bool), 100
    )
    assert roll.obs.shape == (100, 2, 4) and roll.actions.shape == (100, 2)
    ends = roll.dones.numpy() > 0
    assert (
        ends.any() and len(episodes) == ends.sum()
    )  # a random policy ends CartPole episodes within 100 steps
    assert roll.valid[0].all() and np.array_equal(roll.valid[1:].numpy(), ~ends[:-1])
    t, i = np.argwhere(ends[:-1])[0]
    # NEXT_STEP autoreset: the observation after the last step is the true final one
    assert torch.allclose(
        roll.next_values[t, i], model.value(roll.obs[t + 1, i]).detach()
    )
    envs.close()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_train_ppo_runs_updates_and_is_reproducible(env_id):
    cfg = ppo.PPOConfig(
        num_envs=2,
        num_steps=32,
        epochs=2,
        minibatches=2,
        norm_obs=True,
        norm_reward=True,
    )
    a = ppo.train_ppo(env_id, 128, cfg, seed=1, progress=False)
    b = ppo.train_ppo(env_id, 128, cfg, seed=1, progress=False)
    assert a.env_steps == 128 and len(a.updates) == 2
    assert all(
        np.isfinite(list(u.values())).all() and u["approx_kl"] >= -1e-6
        for u in a.updates
    )
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    action = a.policy(env_id)(np.zeros(a.model.actor[0].in_features, dtype=np.float32))
    if env_id == "Pendulum-v1":
        assert action.shape == (1,) and -2 <= action[0] <= 2
    else:
        assert action in (0, 1)


def test_train_ppo_stops_at_the_first_evaluation_reaching_stop_return():
    cfg = ppo.PPOConfig(num_envs=2, num_steps=32, epochs=1, minibatches=2)
    full = ppo.train_ppo(
        "CartPole-v1", 256, cfg, seed=0, progress=False, eval_every=64, eval_episodes=2
    )
    assert full.eval_steps == [64, 128, 192, 256] and full.steps_to_reach(501.0) is None
    stopped = ppo.train_ppo(
        "CartPole-v1",
        256,
        cfg,
        seed=0,
        progress=False,
        eval_every=64,
        eval_episodes=2,
        stop_return=0.0,
    )
    assert stopped.env_steps == 64 and stopped.eval_steps == [64]


def test_ppo_update_moves_the_policy_a_little():
    torch.manual_seed(0)
    envs = rl.make_vector_env("CartPole-v1", 4, seed=0)
    obs, _ = envs.reset(seed=[0, 1, 2, 3])
    model = rl.ActorCritic(4, 2)
    roll, *_ = ppo.collect_rollout(
        envs, model, torch.nn.Identity(), obs, np.zeros(4, bool), 64
    )
    adv, ret = ppo.compute_gae(
        roll.rewards, roll.values, roll.next_values, roll.terminated, roll.dones
    )
    before = [p.detach().clone() for p in model.parameters()]
    cfg = ppo.PPOConfig(lr=1e-3)
    stats = ppo.ppo_update(
        model, torch.optim.Adam(model.parameters(), lr=cfg.lr), roll, adv, ret, cfg
    )
    assert any(not torch.equal(p, q) for p, q in zip(before, model.parameters()))
    assert 0 <= stats["approx_kl"] < 0.1 and 0 <= stats["clip_fraction"] <= 1
    envs.close()


def test_train_ppo_uses_the_advantage_and_loss_functions_it_is_given():
    # the chapter hands in its own (editable) GAE and clipped loss; the same ones give the same run
    used = {"gae": 0, "loss": 0}

    def own_gae(*args):
        used["gae"] += 1
        return ppo.compute_gae(*args)

    def own_loss(*args):
        used["loss"] += 1
        return ppo.clipped_surrogate_loss(*args)

    cfg = ppo.PPOConfig(num_envs=2, num_steps=16, epochs=2, minibatches=2)
    default = ppo.train_ppo("CartPole-v1", 64, cfg, seed=1, progress=False)
    mine = ppo.train_ppo(
        "CartPole-v1",
        64,
        cfg,
        seed=1,
        progress=False,
        gae_fn=own_gae,
        policy_loss_fn=own_loss,
    )
    assert used["gae"] == 2 and used["loss"] == 2 * 2 * 2
    for p, q in zip(default.model.parameters(), mine.model.parameters()):
        assert torch.equal(p, q)
