"""Unit tests for helpers.a3c: the shared optimiser, a tiny 2-process run with time limits, the thread fallback."""

from __future__ import annotations

import copy

import pytest
import torch

from helpers import a2c, a3c, rl


def test_shared_adam_state_is_shared_and_steps_like_adam():
    torch.manual_seed(0)
    model = rl.ActorCritic(4, 2)
    model.share_memory()
    ref = rl.ActorCritic(4, 2)
    ref.load_state_dict(model.state_dict())
    shared = a3c.SharedAdam(model.parameters(), lr=1e-2)
    plain = torch.optim.Adam(ref.parameters(), lr=1e-2)
    for state in shared.state.values():
        assert all(t.is_shared() for t in state.values())
    x = torch.randn(8, 4)
    for _ in range(3):
        for m, opt in ((model, shared), (ref, plain)):
            opt.zero_grad()
            (m.value(x).pow(2).mean() + m(x).pow(2).mean()).backward()
            opt.step()
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert all(float(s["step"]) == 3 for s in shared.state.values())


def test_two_process_workers_finish_within_time_limits():
    cfg = a3c.A3CConfig(total_steps=400, n_steps=10, seed=1)
    before = a3c.make_shared(cfg, 4, 2)[
        0
    ].state_dict()  # same seed: the initial global parameters
    res = a3c.run_a3c(
        cfg,
        2,
        backend="process",
        start_timeout_s=120,
        timeout_s=60,
        join_timeout_s=10,
        progress=False,
    )
    assert res.backend in (
        "process",
        "thread",
    )  # "thread" only where processes cannot start
    if res.backend == "thread":
        assert res.fallback_reason
    assert not res.timed_out and res.total_steps >= 400 and res.updates >= 400 // 10
    assert set(res.episode_workers) <= {0, 1}
    # each worker's own CPU time: positive, and two workers cannot use more than two
    # cores' worth of the training wall time (plus the last update after the clock)
    assert 0 < res.cpu_time <= 2 * res.wall_time + 1.0
    after = res.model.state_dict()
    assert any(
        not torch.equal(before[k], after[k]) for k in before
    )  # the workers updated the global model


def test_fallback_to_threads_when_processes_cannot_start(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("processes are not allowed here")

    monkeypatch.setattr(a3c, "_start_processes", refuse)
    res = a3c.run_a3c(
        a3c.A3CConfig(total_steps=200, n_steps=10),
        2,
        backend="process",
        timeout_s=60,
        progress=False,
    )
    assert res.backend == "thread" and "OSError" in res.fallback_reason
    assert res.total_steps >= 200 and res.cpu_time > 0


def test_target_stops_the_run_early():
    res = a3c.run_a3c(
        a3c.A3CConfig(total_steps=5_000, n_steps=10),
        1,
        backend="thread",
        target=1.0,
        window=1,
        timeout_s=60,
        progress=False,
    )
    assert (
        res.time_to_target is not None
        and res.steps_to_target is not None
        and res.total_steps < 5_000
    )


def _no_update(local, global_model, optimizer, batch, cfg):
    """An update that changes nothing: shows whether run_a3c really uses update_fn."""
    return 0.0


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_update_fn_replaces_the_update_in_every_worker(backend):
    cfg = a3c.A3CConfig(total_steps=300, n_steps=10, seed=2)
    before = a3c.make_shared(cfg, 4, 2)[0].state_dict()
    res = a3c.run_a3c(
        cfg, 2, backend=backend, timeout_s=60, progress=False, update_fn=_no_update
    )
    assert res.total_steps >= 300 and res.updates >= 300 // 10
    after = res.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_push_update_moves_the_global_model_by_one_adam_step():
    cfg = a3c.A3CConfig(seed=3)
    model, opt = a3c.make_shared(cfg, 4, 2)
    local = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    n = 6
    batch = a2c.Rollout(
        torch.randn(n, 1, 4, generator=gen),
        torch.randint(0, 2, (n, 1), generator=gen),
        torch.ones(n, 1),
        torch.zeros(n, 1, dtype=torch.bool),
        torch.zeros(n, 1, dtype=torch.bool),
        torch.randn(n, 1, 4, generator=gen),
        torch.ones(n, 1, dtype=torch.bool),
    )
    before = [p.detach().clone() for p in model.parameters()]
    loss = a3c.push_update(local, model, opt, batch, cfg)
    expected, _ = a2c.a2c_loss(local, batch, cfg.gamma, cfg.ent_coef, cfg.vf_coef)
    assert loss == pytest.approx(expected.item())
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    # Adam's first step moves every weight by about the learning rate
    step = max((b - p).abs().max().item() for b, p in zip(before, model.parameters()))
    assert step == pytest.approx(cfg.actor_lr, rel=0.05)
