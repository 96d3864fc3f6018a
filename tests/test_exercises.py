"""Each auto-checked exercise accepts a correct answer and rejects a typical wrong one with a helpful message."""

from __future__ import annotations

import math

import pytest
import torch

from helpers.exercises import CHECKS, check


def ce_right(logits, targets):
    return (torch.logsumexp(logits, dim=1) - logits[torch.arange(len(targets)), targets]).mean()


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


def q_wrong(q, s, a, r, s_next, terminated, alpha, gamma):  # bootstraps through terminal states
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


def test_unknown_exercise():
    with pytest.raises(ValueError, match="unknown exercise"):
        check("nope", ce_right)
