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


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rnn_step(fn: Callable) -> str | None:
    """fn(x (B, I), h (B, H), W_ih (H, I), W_hh (H, H), b (H,)) -> new hidden state (B, H)."""
    g = _gen(3)
    cell = torch.nn.RNNCell(5, 4)
    x, h = torch.randn(3, 5, generator=g), torch.randn(3, 4, generator=g)
    with torch.no_grad():
        want = cell(x, h)
        got = fn(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih + cell.bias_hh)
    message = _close(got, want, "one step of nn.RNNCell")
    return message + " (h_new = tanh(x W_ih^T + h W_hh^T + b))" if message else None


def _lstm_step(fn: Callable) -> str | None:
    """fn(x, h, c, W_ih (4H, I), W_hh (4H, H), b (4H,)) -> (h_new, c_new); gates in PyTorch's order i, f, g, o."""
    g = _gen(4)
    cell = torch.nn.LSTMCell(5, 4)
    x, h, c = torch.randn(3, 5, generator=g), torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    with torch.no_grad():
        want_h, want_c = cell(x, (h, c))
        got = fn(x, h, c, cell.weight_ih, cell.weight_hh, cell.bias_ih + cell.bias_hh)
    if not isinstance(got, tuple) or len(got) != 2:
        return "return the pair (h_new, c_new)"
    message = _close(got[1], want_c, "the new cell state c") or _close(got[0], want_h, "the new hidden state h")
    return message + " (chunk the 4H pre-activations as i, f, g, o; c = f*c + i*g; h = o*tanh(c))" if message else None


def _gru_step(fn: Callable) -> str | None:
    """fn(x, h, W_ih (3H, I), W_hh (3H, H), b_ih (3H,), b_hh (3H,)) -> h_new; gates in PyTorch's order r, z, n."""
    g = _gen(5)
    cell = torch.nn.GRUCell(5, 4)
    x, h = torch.randn(3, 5, generator=g), torch.randn(3, 4, generator=g)
    with torch.no_grad():
        got = fn(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
        message = _close(got, cell(x, h), "one step of nn.GRUCell")
    return message + (" (n = tanh(W_in x + b_in + r * (W_hn h + b_hn)): the reset gate multiplies the whole "
                      "recurrent term, bias included; h_new = (1 - z) * n + z * h)") if message else None


def _psnr(fn: Callable) -> str | None:
    """fn(x, y) -> PSNR in dB of images with values in [0, 1]: 10 log10(1 / MSE)."""
    x = torch.zeros(2, 1, 4, 4)
    for mse in (0.01, 1e-4):
        y = x + math.sqrt(mse)
        got = float(fn(x, y))
        if not math.isclose(got, 10 * math.log10(1 / mse), rel_tol=1e-4):
            return f"for a mean squared error of {mse} expected {10 * math.log10(1 / mse):.2f} dB, got {got:.4g} " \
                   "(10 * log10(1 / MSE), MSE averaged over all pixels)"
    return None


def _generator_loss(fn: Callable) -> str | None:
    """fn(d_fake_logits (N,)) -> the non-saturating generator loss, -mean log D(G(z))."""
    for logits in (torch.tensor([-8.0, -6.0, 0.0, 2.0]), torch.randn(6, generator=_gen(6))):
        want = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        message = _close(fn(logits), want, f"D logits {logits[:3].tolist()}...")
        if message:
            return message + (" (use -log D(G(z)), not log(1 - D(G(z))): the latter saturates when D rejects the "
                              "fakes; compute it from logits, e.g. softplus(-logits).mean())")
    return None


def _rbm_free_energy(fn: Callable) -> str | None:
    """fn(v (B, V), W (V, H), b_v (V,), b_h (H,)) -> free energy per example (B,)."""
    g = _gen(7)
    v = (torch.rand(4, 6, generator=g) > 0.5).float()
    w, bv, bh = torch.randn(6, 3, generator=g), torch.randn(6, generator=g), torch.randn(3, generator=g)
    want = -(v @ bv) - F.softplus(v @ w + bh).sum(dim=1)
    message = _close(fn(v, w, bv, bh), want, "free energy of 4 visible vectors")
    return message + " (F(v) = -v.b_v - sum_j softplus(b_h_j + (v W)_j))" if message else None


def _squash(fn: Callable) -> str | None:
    """fn(s (..., D)) -> squashed vectors: |s|^2 / (1 + |s|^2) * s / |s| along the last dimension."""
    s = torch.randn(2, 5, 8, generator=_gen(8)) * torch.tensor([0.01, 0.5, 1.0, 3.0, 30.0]).view(1, 5, 1)
    norm = s.norm(dim=-1, keepdim=True)
    message = _close(fn(s.clone()), norm**2 / (1 + norm**2) * s / norm, "squashing capsules of different lengths")
    return message + " (short vectors shrink to almost 0, long ones to just under length 1; direction kept)" \
        if message else None


def _dqn_target(fn: Callable) -> str | None:
    """fn(rewards (B,), next_q (B, A) from the target network, terminated (B,) bool, gamma) -> TD targets (B,)."""
    rewards = torch.tensor([1.0, 1.0, 0.5])
    next_q = torch.tensor([[1.0, 3.0], [2.0, 0.0], [5.0, 4.0]])
    terminated = torch.tensor([False, True, False])
    want = torch.tensor([1.0 + 0.9 * 3.0, 1.0, 0.5 + 0.9 * 5.0])
    message = _close(fn(rewards, next_q, terminated, 0.9), want, "targets for three transitions")
    return message + " (r + gamma * max_a' Q_target(s', a'), and just r where the episode terminated)" \
        if message else None


def _clipped_surrogate(fn: Callable) -> str | None:
    """fn(ratio (N,), advantages (N,), clip_eps) -> PPO's clipped surrogate *loss* (to minimise)."""
    ratio = torch.tensor([0.5, 0.9, 1.0, 1.1, 1.5, 1.5, 0.5])
    adv = torch.tensor([1.0, -1.0, 2.0, 1.0, 1.0, -1.0, -1.0])
    want = -torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean()
    message = _close(fn(ratio, adv, 0.2), want, "ratios 0.5..1.5 with positive and negative advantages")
    return message + (" (loss = -mean(min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)): the minimum makes it "
                      "pessimistic; mind the sign)") if message else None


def _discounted_returns(fn: Callable) -> str | None:
    """fn(rewards (T,), last_value, terminated, gamma) -> returns (T,) of one n-step rollout, bootstrapped."""
    rewards = torch.tensor([1.0, 0.0, 2.0])
    for terminated, last in ((False, 10.0), (True, 10.0)):
        tail = 0.0 if terminated else last
        want = torch.tensor([1 + 0.5 * (0 + 0.5 * (2 + 0.5 * tail)), 0 + 0.5 * (2 + 0.5 * tail), 2 + 0.5 * tail])
        message = _close(fn(rewards, last, terminated, 0.5), want, f"terminated={terminated}")
        if message:
            hint = "a terminated rollout has no future: bootstrap with 0" if terminated else \
                "bootstrap the last step with V(s_T): G_t = r_t + gamma * G_(t+1), G_T = V(s_T)"
            return f"{message} ({hint})"
    return None


def _categorical_entropy(fn: Callable) -> str | None:
    """fn(logits (B, A)) -> entropy of the softmax policy per state (B,), in nats."""
    logits = torch.tensor([[0.0, 0.0], [100.0, 0.0], [1.0, 2.0]])
    want = torch.distributions.Categorical(logits=logits).entropy()
    message = _close(fn(logits), want, "uniform, almost deterministic and mixed policies")
    return message + " (H = -sum_a p log p with p = softmax(logits); use log_softmax for stability)" if message else None


CHECKS: dict[str, Checker] = {
    "softmax_cross_entropy": _softmax_cross_entropy,
    "conv_output_size": _conv_output_size,
    "label_smoothing_loss": _label_smoothing_loss,
    "q_learning_update": _q_learning_update,
    "scaled_dot_product_attention": _scaled_dot_product_attention,
    "rnn_step": _rnn_step,
    "lstm_step": _lstm_step,
    "gru_step": _gru_step,
    "psnr": _psnr,
    "generator_loss": _generator_loss,
    "rbm_free_energy": _rbm_free_energy,
    "squash": _squash,
    "dqn_target": _dqn_target,
    "clipped_surrogate": _clipped_surrogate,
    "discounted_returns": _discounted_returns,
    "categorical_entropy": _categorical_entropy,
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
