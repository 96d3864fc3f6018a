"""Each auto-checked exercise accepts a correct answer and rejects a typical wrong one with a helpful message."""

from __future__ import annotations

import math

import pytest
import torch

from helpers.exercises import CHECKS, check, grade


def ce_right(logits, targets):
    return (
        torch.logsumexp(logits, dim=1) - logits[torch.arange(len(targets)), targets]
    ).mean()


def ce_naive(logits, targets):  # overflows for large logits
    p = logits.exp() / logits.exp().sum(dim=1, keepdim=True)
    return -p[torch.arange(len(targets)), targets].log().mean()


def conv_right(size, kernel, stride=1, padding=0):
    return (size + 2 * padding - kernel) // stride + 1


def conv_wrong(size, kernel, stride=1, padding=0):
    return math.ceil((size + 2 * padding - kernel) / stride) + 1


def ls_right(logits, targets, eps):
    k = logits.shape[1]
    target = torch.full_like(logits, eps / k)
    target[torch.arange(len(targets)), targets] += 1 - eps
    return -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()


def ls_wrong(logits, targets, eps):  # forgets the eps / K on the true class
    k = logits.shape[1]
    target = torch.full_like(logits, eps / k)
    target[torch.arange(len(targets)), targets] = 1 - eps
    return -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()


def q_right(q, s, a, r, s_next, terminated, alpha, gamma):
    target = r if terminated else r + gamma * q[s_next].max()
    q[s, a] += alpha * (target - q[s, a])


def q_wrong(
    q, s, a, r, s_next, terminated, alpha, gamma
):  # bootstraps through terminal states
    q[s, a] += alpha * (r + gamma * q[s_next].max() - q[s, a])


def attn_right(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


def attn_wrong(q, k, v, mask=None):  # forgets the 1/sqrt(d) scaling
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


def not_done(*args, **kwargs):
    raise NotImplementedError


ANSWERS = {
    "softmax_cross_entropy": (ce_right, ce_naive, "log-sum-exp"),
    "conv_output_size": (conv_right, conv_wrong, "round down"),
    "label_smoothing_loss": (ls_right, ls_wrong, "eps / K"),
    "q_learning_update": (q_right, q_wrong, "terminal"),
    "scaled_dot_product_attention": (attn_right, attn_wrong, "sqrt(d)"),
}


def test_every_check_has_answers():
    assert set(ANSWERS) == set(CHECKS)


def test_unknown_exercise():
    with pytest.raises(ValueError, match="unknown exercise"):
        check("nope", ce_right)


# --- right and wrong answers for the remaining chapters' exercises ---------------------------------------


def rnn_right(x, h, w_ih, w_hh, b):
    return torch.tanh(x @ w_ih.T + h @ w_hh.T + b)


def rnn_wrong(x, h, w_ih, w_hh, b):  # forgets the non-linearity
    return x @ w_ih.T + h @ w_hh.T + b


def lstm_right(x, h, c, w_ih, w_hh, b):
    i, f, g, o = (x @ w_ih.T + h @ w_hh.T + b).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def lstm_wrong(x, h, c, w_ih, w_hh, b):  # gates in the wrong order (i, f, o, g)
    i, f, o, g = (x @ w_ih.T + h @ w_hh.T + b).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_right(x, h, w_ih, w_hh, b_ih, b_hh):
    xr, xz, xn = (x @ w_ih.T + b_ih).chunk(3, dim=1)
    hr, hz, hn = (h @ w_hh.T + b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h


def gru_wrong(
    x, h, w_ih, w_hh, b_ih, b_hh
):  # the textbook variant: reset gate applied to h before the matmul
    xr, xz, xn = (x @ w_ih.T + b_ih).chunk(3, dim=1)
    hr, hz, _ = (h @ w_hh.T + b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + (r * h) @ w_hh[2 * h.shape[1] :].T + b_hh[2 * h.shape[1] :] * 0)
    return (1 - z) * n + z * h


def psnr_right(x, y):
    return 10 * torch.log10(1 / ((x - y) ** 2).mean())


def psnr_wrong(x, y):  # natural log
    return 10 * torch.log(1 / ((x - y) ** 2).mean())


def gloss_right(logits):
    return torch.nn.functional.softplus(-logits).mean()


def gloss_wrong(logits):  # the saturating minimax loss
    return -torch.nn.functional.softplus(logits).mean()


def fe_right(v, w, bv, bh):
    return -(v @ bv) - torch.nn.functional.softplus(v @ w + bh).sum(dim=1)


def fe_wrong(v, w, bv, bh):  # forgets the visible bias
    return -torch.nn.functional.softplus(v @ w + bh).sum(dim=1)


def squash_right(s):
    n2 = (s**2).sum(dim=-1, keepdim=True)
    return n2 / (1 + n2) * s / n2.sqrt()


def squash_wrong(s):  # normalises only
    return s / s.norm(dim=-1, keepdim=True)


def dqn_right(r, next_q, terminated, gamma):
    return r + gamma * (~terminated).float() * next_q.max(dim=1).values


def dqn_wrong(
    r, next_q, terminated, gamma
):  # bootstraps through the end of the episode
    return r + gamma * next_q.max(dim=1).values


def surrogate_right(ratio, adv, eps):
    return -torch.min(ratio * adv, ratio.clamp(1 - eps, 1 + eps) * adv).mean()


def surrogate_wrong(ratio, adv, eps):  # clips but forgets the minimum
    return -(ratio.clamp(1 - eps, 1 + eps) * adv).mean()


def returns_right(rewards, last_value, terminated, gamma):
    g, out = 0.0 if terminated else last_value, []
    for r in reversed(rewards.tolist()):
        g = r + gamma * g
        out.append(g)
    return torch.tensor(out[::-1])


def returns_wrong(rewards, last_value, terminated, gamma):  # always bootstraps
    return returns_right(rewards, last_value, False, gamma)


def entropy_right(logits):
    logp = logits.log_softmax(dim=1)
    return -(logp.exp() * logp).sum(dim=1)


def entropy_wrong(logits):  # naive softmax then log: NaN for confident policies
    p = logits.exp() / logits.exp().sum(dim=1, keepdim=True)
    return -(p * p.log()).sum(dim=1)


ANSWERS.update(
    {
        "rnn_step": (rnn_right, rnn_wrong, "tanh"),
        "lstm_step": (lstm_right, lstm_wrong, "i, f, g, o"),
        "gru_step": (gru_right, gru_wrong, "reset gate"),
        "psnr": (psnr_right, psnr_wrong, "log10"),
        "generator_loss": (gloss_right, gloss_wrong, "saturates"),
        "rbm_free_energy": (fe_right, fe_wrong, "softplus"),
        "squash": (squash_right, squash_wrong, "length 1"),
        "dqn_target": (dqn_right, dqn_wrong, "terminated"),
        "clipped_surrogate": (surrogate_right, surrogate_wrong, "minimum"),
        "discounted_returns": (returns_right, returns_wrong, "no future"),
        "categorical_entropy": (entropy_right, entropy_wrong, "log_softmax"),
    }
)


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_right_and_wrong_answers(name, capsys):
    right, wrong, hint = ANSWERS[name]
    assert check(name, right) is True
    assert "✅" in capsys.readouterr().out
    assert check(name, wrong) is False
    out = capsys.readouterr().out
    assert "❌" in out and hint in out, out
    assert check(name, not_done) is False
    assert "not implemented yet" in capsys.readouterr().out


# --- partial credit: the verdict the grader uses ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_partial_credit_counts_test_cases(name):
    """At least three cases per exercise, the same number whatever the answer; right scores 1, unfinished 0,
    and the typical mistake fails at least one case."""
    right, wrong, _ = ANSWERS[name]
    good, bad, empty = grade(name, right), grade(name, wrong), grade(name, not_done)
    assert good.total >= 3 and good.total == bad.total == empty.total
    assert good.correct and good.score == 1.0 and good.message is None
    assert 0.0 <= bad.score < 1.0 and bad.message
    assert empty.score == 0.0 and empty.message.startswith("not implemented yet")


def test_typical_mistakes_get_partial_credit():
    """A mistake that only shows on the edge case loses that case only."""
    partial = {
        n: grade(n, ANSWERS[n][1])
        for n in (
            "conv_output_size",
            "q_learning_update",
            "dqn_target",
            "discounted_returns",
            "categorical_entropy",
            "softmax_cross_entropy",
            "clipped_surrogate",
        )
    }
    assert all(0 < v.score < 1 for v in partial.values()), partial
    assert (partial["conv_output_size"].passed, partial["conv_output_size"].total) == (
        4,
        6,
    )


def test_a_crash_fails_only_its_case(capsys):
    def crashes_on_a_batch_of_one(logits, targets):
        if len(targets) == 1:
            raise IndexError("boom")
        return ce_right(logits, targets)

    verdict = grade("softmax_cross_entropy", crashes_on_a_batch_of_one)
    assert (verdict.passed, verdict.total) == (
        3,
        4,
    ) and "raised IndexError: boom" in verdict.message
    assert check("softmax_cross_entropy", crashes_on_a_batch_of_one) is False
    assert "3 of 4 test cases passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "answer",
    [
        lambda *a, **k: None,
        lambda *a, **k: "text",
        lambda *a, **k: [1.0, 2.0],
        lambda *a, **k: torch.ones(50),
    ],
)
def test_nonsense_answers_never_raise(answer, capsys):
    for name in CHECKS:
        assert check(name, answer) is False
    assert capsys.readouterr().out.count("❌") == len(CHECKS)


def test_the_grade_log(tmp_path, monkeypatch):
    """With DLBOOK_GRADE_LOG set, check() appends its verdict as a JSON line (how the grader reads a cell)."""
    import json

    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("DLBOOK_GRADE_LOG", str(log))
    check("dqn_target", dqn_right)
    check("dqn_target", dqn_wrong)
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert first == {
        "exercise": "dqn_target",
        "passed": 3,
        "total": 3,
        "message": None,
        "score": 1.0,
    }
    assert (
        second["passed"] == 1
        and second["score"] == pytest.approx(1 / 3)
        and "terminated" in second["message"]
    )


def test_a_checker_written_as_one_case_still_works(monkeypatch):
    monkeypatch.setitem(
        CHECKS, "old_style", lambda fn: None if fn(2) == 4 else "expected 4"
    )
    assert grade("old_style", lambda x: x * 2).correct
    verdict = grade("old_style", lambda x: x)
    assert (verdict.passed, verdict.total, verdict.message) == (0, 1, "expected 4")
    assert grade("old_style", not_done).message.startswith("not implemented yet")


# --- the two longer exercises: every typical mistake fails its own cases, with a message that names it ----


def ddqn_answer(mistake: str = ""):
    """A Double DQN target, right, or with one typical mistake."""

    def answer(rewards, next_obs, terminated, online_net, target_net, gamma):
        with torch.enable_grad() if mistake == "grad" else torch.no_grad():
            q_online, q_target = online_net(next_obs), target_net(next_obs)
            best = q_online.argmax(dim=1, keepdim=True)
            value = q_target.gather(1, best)  # (B, 1)
            alive = (~terminated).float()
            if mistake == "plain_dqn":  # the target network chooses and evaluates
                value = q_target.max(dim=1, keepdim=True).values
            if (
                mistake == "online_max"
            ):  # max of the online network instead of the chosen action's value
                value = q_online.max(dim=1, keepdim=True).values
            if (
                mistake == "swapped"
            ):  # the target network chooses, the online one evaluates
                value = q_online.gather(1, q_target.argmax(dim=1, keepdim=True))
            if mistake == "no_mask":  # bootstraps through the end of the episode
                alive = torch.ones_like(alive)
            if mistake == "inverted_mask":  # bootstraps only where the episode ended
                alive = terminated.float()
            if mistake == "shape":  # forgets the squeeze: (B, 1)
                return rewards[:, None] + gamma * alive[:, None] * value
            return rewards + gamma * alive * value.squeeze(1)

    return answer


def gae_answer(mistake: str = ""):
    """GAE, right, or with one typical mistake."""

    def answer(rewards, values, last_values, dones, gamma, lam):
        if (
            mistake == "flattened"
        ):  # one long sequence: the environments run into each other
            steps, envs = rewards.shape
            flat = gae_answer()(
                rewards.T.reshape(-1, 1),
                values.T.reshape(-1, 1),
                last_values[-1:],
                dones.T.reshape(-1, 1),
                gamma,
                lam,
            )
            return tuple(x.reshape(envs, steps).T for x in flat)
        advantages, running = torch.zeros_like(rewards), torch.zeros_like(last_values)
        for t in reversed(range(len(rewards))):
            next_value = last_values if t == len(rewards) - 1 else values[t + 1]
            if mistake == "no_last" and t == len(rewards) - 1:
                next_value = torch.zeros_like(last_values)
            if mistake == "off_by_one":
                next_value = values[t]
            alive = (~dones[t]).float()
            td_alive = (
                torch.ones_like(alive)
                if mistake in ("no_dones", "td_across")
                else alive
            )
            recursion_alive = (
                torch.ones_like(alive)
                if mistake in ("no_dones", "recursion_across")
                else alive
            )
            decay = {"no_lam": gamma, "no_gamma": lam}.get(mistake, gamma * lam)
            delta = rewards[t] + gamma * td_alive * next_value - values[t]
            running = delta + decay * recursion_alive * running
            advantages[t] = running
        returns = (
            advantages if mistake == "returns_are_advantages" else advantages + values
        )
        return (
            (returns, advantages)
            if mistake == "swapped_outputs"
            else (advantages, returns)
        )

    return answer


ANSWERS.update(
    {
        "double_dqn_target": (
            ddqn_answer(),
            ddqn_answer("plain_dqn"),
            "target network's max",
        ),
        "gae": (gae_answer(), gae_answer("recursion_across"), "leak"),
    }
)

# mistake -> (cases passed of the total, words the message must contain)
DDQN_MISTAKES = {
    "plain_dqn": (0, "plain DQN target"),
    "online_max": (0, "online network's max value"),
    "swapped": (0, "roles are swapped"),
    "no_mask": (2, "the target is just r"),
    "inverted_mask": (
        0,
        "not by terminated",
    ),  # the first case has no terminal transition
    "shape": (6, "got (4, 1) (`q.gather(1, a)` has shape (B, 1): take `.squeeze(1)`"),
    "grad": (6, "require grad"),
}
GAE_MISTAKES = {
    "no_dones": (2, "you ignored dones"),
    "recursion_across": (3, "the recursion runs across the episode's end"),
    "td_across": (2, "the TD error still bootstraps from values[t + 1]"),
    "no_last": (1, "must bootstrap from last_values"),
    "off_by_one": (0, "is values[t + 1]"),
    "no_lam": (2, "gamma * lam, not gamma"),
    "no_gamma": (1, "gamma * lam, not lam alone"),
    "returns_are_advantages": (
        6,
        "the returns (the critic's targets) are advantages + values",
    ),
    "swapped_outputs": (0, "advantages first, returns"),
    "flattened": (4, "each column is one environment"),
}


@pytest.mark.parametrize(
    "exercise, mistake",
    [("double_dqn_target", m) for m in DDQN_MISTAKES]
    + [("gae", m) for m in GAE_MISTAKES],
)
def test_each_typical_mistake_is_named(exercise, mistake):
    table, make = (
        (DDQN_MISTAKES, ddqn_answer)
        if exercise == "double_dqn_target"
        else (GAE_MISTAKES, gae_answer)
    )
    passed, words = table[mistake]
    assert grade(exercise, make()).correct
    verdict = grade(exercise, make(mistake))
    assert (verdict.passed, verdict.total) == (passed, 7), verdict
    assert words in verdict.message, verdict.message


def test_the_time_limit_case_explains_truncation():
    def bootstraps_nowhere(
        rewards, next_obs, terminated, online_net, target_net, gamma
    ):
        return rewards.clone()

    verdict = grade("double_dqn_target", bootstraps_nowhere)
    assert (
        verdict.passed == 0 and "your targets are just the rewards" in verdict.message
    )

    def bootstraps_only_where_the_first_cases_have_no_end(
        rewards, next_obs, terminated, online_net, target_net, gamma
    ):
        right = ddqn_answer()(
            rewards, next_obs, terminated, online_net, target_net, gamma
        )
        return (
            rewards + 0 * right if gamma == 0.99 else right
        )  # only the time-limit case has gamma 0.99

    verdict = grade(
        "double_dqn_target", bootstraps_only_where_the_first_cases_have_no_end
    )
    assert (
        verdict.passed == 6
        and "a time-limit cut is not the end of the task" in verdict.message
    )


@pytest.mark.parametrize("exercise", ["double_dqn_target", "gae"])
def test_a_crashing_answer_scores_zero_without_raising(exercise, capsys):
    def crashes(*args):
        raise ValueError("boom")

    verdict = grade(exercise, crashes)
    assert (verdict.passed, verdict.total) == (0, 7) and verdict.score == 0.0
    assert verdict.message == "your function raised ValueError: boom"
    assert check(exercise, crashes) is False
    assert "0 of 7 test cases passed" in capsys.readouterr().out


def test_a_bool_mask_error_is_not_taken_for_the_stub():
    """torch raises NotImplementedError for `1 - bool_tensor`: its message is shown, not "not implemented yet"."""

    def one_minus_bool(rewards, next_obs, terminated, online_net, target_net, gamma):
        with torch.no_grad():
            value = (
                target_net(next_obs)
                .gather(1, online_net(next_obs).argmax(dim=1, keepdim=True))
                .squeeze(1)
            )
        return rewards + gamma * (1 - terminated) * value

    verdict = grade("double_dqn_target", one_minus_bool)
    assert (
        verdict.passed == 0
        and "bool tensor" in verdict.message
        and "not implemented" not in verdict.message
    )
    assert grade("double_dqn_target", not_done).message.startswith(
        "not implemented yet"
    )


def test_gae_does_not_modify_its_inputs_between_cases():
    """An answer that writes into `rewards` in place still gets full credit: every case gets fresh inputs."""

    def in_place(rewards, values, last_values, dones, gamma, lam):
        advantages, returns = gae_answer()(
            rewards, values, last_values, dones, gamma, lam
        )
        rewards.zero_()
        return advantages, returns

    assert grade("gae", in_place).correct
