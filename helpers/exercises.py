"""Auto-checked exercises: the student writes a function in the notebook, ``check`` says whether it is right.

Each checker compares the student's function with a reference on several inputs, including the edge cases
that catch the usual mistakes, and explains the first difference it finds in words a student can act on
("for logits of shape (4, 10) you returned shape (4,); sum over the classes ...").
``check("name", fn)`` prints a verdict and returns ``True``/``False``; it never raises on a wrong answer, so a
notebook with an unfinished exercise still runs to the end. The list of exercises is :data:`CHECKS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

Checker = Callable[[Callable], str | None]


def _close(got, want, what: str, atol: float = 1e-5) -> str | None:
    """``None`` when ``got`` matches ``want`` (shape and values), else a message saying how it differs."""
    got_t = torch.as_tensor(got, dtype=torch.float64)
    want_t = torch.as_tensor(want, dtype=torch.float64)
    if got_t.shape != want_t.shape:
        return f"{what}: expected shape {tuple(want_t.shape)}, got {tuple(got_t.shape)}"
    if not torch.allclose(got_t, want_t, atol=atol, rtol=1e-4):
        diff = (got_t - want_t).abs().max().item()
        return f"{what}: expected {want_t.flatten()[:4].tolist()}..., got {got_t.flatten()[:4].tolist()}... " \
               f"(largest difference {diff:.3g})"
    return None


def _softmax_cross_entropy(fn: Callable) -> str | None:
    """fn(logits (N, K), targets (N,) int64) -> mean cross-entropy, a scalar tensor."""
    gen = torch.Generator().manual_seed(0)
    cases = {
        "random logits": (torch.randn(4, 10, generator=gen), torch.tensor([0, 3, 9, 3])),
        "large logits (numerical stability: subtract the row maximum)": (
            torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0]]), torch.tensor([0, 2])),
        "a single example": (torch.randn(1, 5, generator=gen), torch.tensor([4])),
    }
    for name, (logits, targets) in cases.items():
        out = fn(logits.clone(), targets.clone())
        if not torch.is_tensor(out) or out.dim() != 0:
            return f"{name}: return one number (the mean over the batch) as a 0-d tensor, got {out!r}"
        if not torch.isfinite(out):
            return f"{name}: the loss is {out.item()}: use the log-sum-exp trick instead of exp() then log()"
        message = _close(out, F.cross_entropy(logits, targets), name)
        if message:
            return message + " (mean over examples of  logsumexp(z) - z[target])"
    return None


def _conv_output_size(fn: Callable) -> str | None:
    """fn(size, kernel, stride=1, padding=0) -> output size of a convolution or pooling layer."""
    for size, kernel, stride, padding in [(28, 3, 1, 0), (26, 2, 2, 0), (13, 3, 1, 1), (32, 5, 2, 2), (7, 7, 1, 0),
                                         (11, 2, 2, 0)]:
        want = (size + 2 * padding - kernel) // stride + 1
        got = fn(size, kernel, stride=stride, padding=padding)
        if got != want:
            hint = " (round down: a window that does not fit is dropped)" if (size + 2 * padding - kernel) % stride else ""
            return f"size={size}, kernel={kernel}, stride={stride}, padding={padding}: expected {want}, got {got}{hint}"
    return None


def _label_smoothing_loss(fn: Callable) -> str | None:
    """fn(logits (N, K), targets (N,), eps) -> mean label-smoothed cross-entropy."""
    gen = torch.Generator().manual_seed(1)
    for eps in (0.0, 0.1, 0.3):
        logits, targets = torch.randn(6, 10, generator=gen), torch.randint(0, 10, (6,), generator=gen)
        want = F.cross_entropy(logits, targets, label_smoothing=eps)
        message = _close(fn(logits, targets, eps), want, f"eps={eps}")
        if message:
            return message + " (the target is (1 - eps) on the true class plus eps / K on every class)"
    return None


def _q_learning_update(fn: Callable) -> str | None:
    """fn(Q (S, A) array, s, a, r, s_next, terminated, alpha, gamma) -> updates Q[s, a] in place."""
    import numpy as np

    q = np.arange(12, dtype=float).reshape(4, 3)
    cases = [((0, 1, 1.0, 2, False, 0.5, 0.9), 1 + 0.5 * (1.0 + 0.9 * 8 - 1)),
             ((3, 2, -1.0, 1, True, 0.1, 0.99), 11 + 0.1 * (-1.0 - 11))]
    for (s, a, r, s2, term, alpha, gamma), want in cases:
        table = q.copy()
        fn(table, s, a, r, s2, term, alpha, gamma)
        if not math.isclose(table[s, a], want, rel_tol=1e-9):
            hint = " (a terminal transition has no future: the target is just r)" if term else \
                " (target = r + gamma * max over actions of Q[s_next])"
            return f"Q[{s}, {a}] should become {want:.4f}, got {table[s, a]:.4f}{hint}"
        changed = np.argwhere(table != q)
        if len(changed) != 1:
            return f"only Q[s, a] may change, but {len(changed)} entries changed"
    return None


def _scaled_dot_product_attention(fn: Callable) -> str | None:
    """fn(q (B, T, d), k (B, S, d), v (B, S, dv), mask (T, S) bool or None) -> (B, T, dv); True = may attend."""
    gen = torch.Generator().manual_seed(2)
    q, k, v = torch.randn(2, 4, 8, generator=gen), torch.randn(2, 5, 8, generator=gen), torch.randn(2, 5, 3, generator=gen)
    message = _close(fn(q, k, v, None), F.scaled_dot_product_attention(q, k, v), "without a mask")
    if message:
        return message + " (softmax(q k^T / sqrt(d)) v, softmax over the keys)"
    causal = torch.ones(4, 4, dtype=torch.bool).tril()
    q4, k4, v4 = q[:, :4], k[:, :4], v[:, :4]
    message = _close(fn(q4, k4, v4, causal), F.scaled_dot_product_attention(q4, k4, v4, attn_mask=causal),
                     "with a causal mask")
    return message + " (set masked scores to -inf before the softmax)" if message else None


CHECKS: dict[str, Checker] = {
    "softmax_cross_entropy": _softmax_cross_entropy,
    "conv_output_size": _conv_output_size,
    "label_smoothing_loss": _label_smoothing_loss,
    "q_learning_update": _q_learning_update,
    "scaled_dot_product_attention": _scaled_dot_product_attention,
}


def check(exercise: str, fn: Callable) -> bool:
    """Check a student's function for ``exercise`` (a key of :data:`CHECKS`); print the verdict, return it."""
    if exercise not in CHECKS:
        raise ValueError(f"unknown exercise {exercise!r}; known: {', '.join(CHECKS)}")
    try:
        problem = CHECKS[exercise](fn)
    except NotImplementedError:
        problem = "not implemented yet: replace `raise NotImplementedError` by your code"
    except Exception as err:  # a student's bug is a verdict, not a crash of the notebook
        problem = f"your function raised {type(err).__name__}: {err}"
    if problem is None:
        print(f"✅ {exercise}: correct on every test case.")
        return True
    print(f"❌ {exercise}: {problem}")
    return False
