"""Auto-checked exercises: the student writes a function in the notebook, ``check`` says whether it is right.

Each checker runs the student's function on several *test cases*, including the edge cases that catch the usual
mistakes, and compares it with a reference. A case that fails is explained in words a student can act on
("for logits of shape (4, 10) you returned shape (4,); sum over the classes ...").

- ``check("name", fn)`` prints a verdict (the first failing case, and how many cases passed) and returns
  ``True``/``False``; it never raises on a wrong answer, so a notebook with an unfinished exercise still runs
  to the end.
- ``grade("name", fn)`` returns the same verdict as a :class:`Verdict`: the fraction of cases passed is the
  partial credit used by the batch grader (``python -m helpers grade``, :mod:`helpers.grading`).
- When the environment variable ``DLBOOK_GRADE_LOG`` names a file, ``check`` also appends its verdict there as a
  line of JSON: that is how the grader reads the result of a student's cell.

The list of exercises is :data:`CHECKS`. A checker is a generator: ``checker(fn)`` yields one *case* per test, a
function without arguments that calls ``fn`` and returns ``None`` when it passes or a message saying what is
wrong (``_expect(fn, args, want, ...)`` builds the usual one, ``functools.partial`` a custom one); an exception
raised by the student's function fails that case only.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import partial

import torch
import torch.nn.functional as F

Case = Callable[[], str | None]
Checker = Callable[[Callable], Iterator[Case]]

GRADE_LOG_ENV = "DLBOOK_GRADE_LOG"
NOT_IMPLEMENTED = (
    "not implemented yet: replace `raise NotImplementedError` by your code"
)


@dataclass(frozen=True)
class Verdict:
    """The result of checking one function: cases passed out of ``total``, and the first failure's message."""

    exercise: str
    passed: int
    total: int
    message: str | None = None

    @property
    def score(self) -> float:
        """Partial credit in [0, 1]: the fraction of test cases passed."""
        return self.passed / self.total if self.total else 0.0

    @property
    def correct(self) -> bool:
        return self.total > 0 and self.passed == self.total


def _as_float64(value) -> torch.Tensor:
    if torch.is_tensor(value):
        return value.detach().cpu().to(torch.float64)
    return torch.as_tensor(value, dtype=torch.float64)


def _show(t: torch.Tensor) -> str:
    """The first values of a tensor, 4 significant digits: enough to see what differs."""
    values = ", ".join(f"{v:.4g}" for v in t.flatten()[:4].tolist())
    return f"[{values}{', ...' if t.numel() > 4 else ''}]" if t.dim() else values


def _close(got, want, what: str, atol: float = 1e-5) -> str | None:
    """``None`` when ``got`` matches ``want`` (shape and values), else a message saying how it differs."""
    want_t = _as_float64(want)
    try:
        got_t = _as_float64(got)
    except (TypeError, ValueError, RuntimeError):
        return f"{what}: expected a tensor of shape {tuple(want_t.shape)}, got {type(got).__name__} {got!r:.60}"
    if got_t.shape != want_t.shape:
        return f"{what}: expected shape {tuple(want_t.shape)}, got {tuple(got_t.shape)}"
    if not torch.allclose(got_t, want_t, atol=atol, rtol=1e-4):
        diff = (got_t - want_t).abs().max().item()
        return f"{what}: expected {_show(want_t)}, got {_show(got_t)} (largest difference {diff:.3g})"
    return None


def _clone(args: tuple) -> tuple:
    """Fresh copies of the inputs: a function that modifies its arguments must not change the next case."""
    return tuple(a.clone() if torch.is_tensor(a) else a for a in args)


def _expect(
    fn: Callable, args: tuple, want, what: str, hint: str = "", atol: float = 1e-5
) -> Case:
    """A case: ``fn(*args)`` must equal ``want``; a failure's message ends with ``hint``."""

    def case() -> str | None:
        message = _close(fn(*_clone(args)), want, what, atol)
        return f"{message} ({hint})" if message and hint else message

    return case


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _softmax_cross_entropy(fn: Callable) -> Iterator[Case]:
    """fn(logits (N, K), targets (N,) int64) -> mean cross-entropy, a scalar tensor."""

    def case(name: str, logits: torch.Tensor, targets: torch.Tensor) -> str | None:
        out = fn(logits.clone(), targets.clone())
        if not torch.is_tensor(out) or out.dim() != 0:
            return f"{name}: return one number (the mean over the batch) as a 0-d tensor, got {out!r:.80}"
        if not torch.isfinite(out):
            return f"{name}: the loss is {out.item()}: use the log-sum-exp trick instead of exp() then log()"
        message = _close(out, F.cross_entropy(logits, targets), name)
        return (
            message + " (mean over examples of  logsumexp(z) - z[target])"
            if message
            else None
        )

    gen = _gen(0)
    yield partial(
        case,
        "random logits",
        torch.randn(4, 10, generator=gen),
        torch.tensor([0, 3, 9, 3]),
    )
    yield partial(
        case,
        "large logits (numerical stability: subtract the row maximum)",
        torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0]]),
        torch.tensor([0, 2]),
    )
    yield partial(
        case, "a single example", torch.randn(1, 5, generator=gen), torch.tensor([4])
    )
    yield partial(
        case,
        "equal logits (the loss is log K)",
        torch.zeros(3, 4),
        torch.tensor([0, 1, 3]),
    )


def _conv_output_size(fn: Callable) -> Iterator[Case]:
    """fn(size, kernel, stride=1, padding=0) -> output size of a convolution or pooling layer."""

    def case(size: int, kernel: int, stride: int, padding: int) -> str | None:
        want = (size + 2 * padding - kernel) // stride + 1
        got = fn(size, kernel, stride=stride, padding=padding)
        try:
            right = bool(got == want)
        except (TypeError, ValueError, RuntimeError):
            return f"size={size}, kernel={kernel}: return one whole number, got {type(got).__name__} {got!r:.60}"
        if not right:
            hint = (
                " (round down: a window that does not fit is dropped)"
                if (size + 2 * padding - kernel) % stride
                else ""
            )
            return (
                f"size={size}, kernel={kernel}, stride={stride}, padding={padding}: expected {want}, "
                f"got {got}{hint}"
            )
        return None

    for params in [
        (28, 3, 1, 0),
        (26, 2, 2, 0),
        (13, 3, 1, 1),
        (32, 5, 2, 2),
        (7, 7, 1, 0),
        (11, 2, 2, 0),
    ]:
        yield partial(case, *params)


def _label_smoothing_loss(fn: Callable) -> Iterator[Case]:
    """fn(logits (N, K), targets (N,), eps) -> mean label-smoothed cross-entropy."""
    gen = _gen(1)
    for eps in (0.0, 0.1, 0.3):
        logits, targets = (
            torch.randn(6, 10, generator=gen),
            torch.randint(0, 10, (6,), generator=gen),
        )
        want = F.cross_entropy(logits, targets, label_smoothing=eps)
        yield _expect(
            fn,
            (logits, targets, eps),
            want,
            f"eps={eps}",
            "the target is (1 - eps) on the true class plus eps / K on every class",
        )


def _q_learning_update(fn: Callable) -> Iterator[Case]:
    """fn(Q (S, A) array, s, a, r, s_next, terminated, alpha, gamma) -> updates Q[s, a] in place."""
    import numpy as np

    q = np.arange(12, dtype=float).reshape(4, 3)

    def case(
        s: int,
        a: int,
        r: float,
        s2: int,
        term: bool,
        alpha: float,
        gamma: float,
        want: float,
    ) -> str | None:
        table = q.copy()
        fn(table, s, a, r, s2, term, alpha, gamma)
        if not math.isclose(table[s, a], want, rel_tol=1e-9):
            hint = (
                " (a terminal transition has no future: the target is just r)"
                if term
                else " (target = r + gamma * max over actions of Q[s_next])"
            )
            return f"Q[{s}, {a}] should become {want:.4f}, got {table[s, a]:.4f}{hint}"
        changed = np.argwhere(table != q)
        if len(changed) != 1:
            return f"only Q[s, a] may change, but {len(changed)} entries changed"
        return None

    yield partial(case, 0, 1, 1.0, 2, False, 0.5, 0.9, 1 + 0.5 * (1.0 + 0.9 * 8 - 1))
    yield partial(case, 3, 2, -1.0, 1, True, 0.1, 0.99, 11 + 0.1 * (-1.0 - 11))
    yield partial(case, 1, 0, 0.0, 3, False, 1.0, 0.5, 0.0 + 0.5 * 11)


def _scaled_dot_product_attention(fn: Callable) -> Iterator[Case]:
    """fn(q (B, T, d), k (B, S, d), v (B, S, dv), mask (T, S) bool or None) -> (B, T, dv); True = may attend."""
    gen = _gen(2)
    q, k, v = (
        torch.randn(2, 4, 8, generator=gen),
        torch.randn(2, 5, 8, generator=gen),
        torch.randn(2, 5, 3, generator=gen),
    )
    yield _expect(
        fn,
        (q, k, v, None),
        F.scaled_dot_product_attention(q, k, v),
        "without a mask",
        "softmax(q k^T / sqrt(d)) v, softmax over the keys",
    )
    masked = "set masked scores to -inf before the softmax"
    causal = torch.ones(4, 4, dtype=torch.bool).tril()
    q4, k4, v4 = q[:, :4], k[:, :4], v[:, :4]
    yield _expect(
        fn,
        (q4, k4, v4, causal),
        F.scaled_dot_product_attention(q4, k4, v4, attn_mask=causal),
        "with a causal mask",
        masked,
    )
    padding = torch.tensor([True, True, True, False, False]).expand(4, 5)
    yield _expect(
        fn,
        (q, k, v, padding),
        F.scaled_dot_product_attention(q, k, v, attn_mask=padding),
        "4 queries, 5 keys, the last 2 keys masked (padding)",
        masked,
    )


def _rnn_step(fn: Callable) -> Iterator[Case]:
    """fn(x (B, I), h (B, H), W_ih (H, I), W_hh (H, H), b (H,)) -> new hidden state (B, H)."""
    g = _gen(3)
    for batch, inp, hid, zero_h in (
        (3, 5, 4, False),
        (1, 2, 6, False),
        (2, 3, 3, True),
    ):
        cell = torch.nn.RNNCell(inp, hid)
        x, h = (
            torch.randn(batch, inp, generator=g),
            torch.randn(batch, hid, generator=g) * (not zero_h),
        )
        with torch.no_grad():
            want = cell(x, h)
            args = (
                x,
                h,
                cell.weight_ih.clone(),
                cell.weight_hh.clone(),
                cell.bias_ih + cell.bias_hh,
            )
        what = f"one step of nn.RNNCell({inp}, {hid}), batch {batch}" + (
            ", h = 0" if zero_h else ""
        )
        yield _expect(fn, args, want, what, "h_new = tanh(x W_ih^T + h W_hh^T + b)")


def _lstm_step(fn: Callable) -> Iterator[Case]:
    """fn(x, h, c, W_ih (4H, I), W_hh (4H, H), b (4H,)) -> (h_new, c_new); gates in PyTorch's order i, f, g, o."""
    hint = "chunk the 4H pre-activations as i, f, g, o; c = f*c + i*g; h = o*tanh(c)"

    def case(
        what: str,
        inputs: tuple,
        weights: tuple,
        want_h: torch.Tensor,
        want_c: torch.Tensor,
    ) -> str | None:
        with torch.no_grad():
            got = fn(*_clone(inputs), *_clone(weights))
        if not isinstance(got, tuple) or len(got) != 2:
            return "return the pair (h_new, c_new)"
        message = _close(got[1], want_c, f"{what}: the new cell state c") or _close(
            got[0], want_h, f"{what}: the new hidden state h"
        )
        return f"{message} ({hint})" if message else None

    g = _gen(4)
    for batch, inp, hid in ((3, 5, 4), (1, 3, 2), (2, 4, 6)):
        cell = torch.nn.LSTMCell(inp, hid)
        x, h, c = (torch.randn(batch, n, generator=g) for n in (inp, hid, hid))
        with torch.no_grad():
            want_h, want_c = cell(x, (h, c))
            weights = (
                cell.weight_ih.clone(),
                cell.weight_hh.clone(),
                cell.bias_ih + cell.bias_hh,
            )
        yield partial(
            case,
            f"nn.LSTMCell({inp}, {hid}), batch {batch}",
            (x, h, c),
            weights,
            want_h,
            want_c,
        )


def _gru_step(fn: Callable) -> Iterator[Case]:
    """fn(x, h, W_ih (3H, I), W_hh (3H, H), b_ih (3H,), b_hh (3H,)) -> h_new; gates in PyTorch's order r, z, n."""
    g = _gen(5)
    hint = (
        "n = tanh(W_in x + b_in + r * (W_hn h + b_hn)): the reset gate multiplies the whole recurrent term, "
        "bias included; h_new = (1 - z) * n + z * h"
    )
    for batch, inp, hid, zero_h in (
        (3, 5, 4, False),
        (1, 2, 3, False),
        (2, 4, 5, True),
    ):
        cell = torch.nn.GRUCell(inp, hid)
        x, h = (
            torch.randn(batch, inp, generator=g),
            torch.randn(batch, hid, generator=g) * (not zero_h),
        )
        with torch.no_grad():
            want = cell(x, h)
            args = (x, h) + tuple(
                p.clone()
                for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
            )
        what = f"one step of nn.GRUCell({inp}, {hid}), batch {batch}" + (
            ", h = 0" if zero_h else ""
        )
        yield _expect(fn, args, want, what, hint)


def _psnr(fn: Callable) -> Iterator[Case]:
    """fn(x, y) -> PSNR in dB of images with values in [0, 1]: 10 log10(1 / MSE)."""

    def case(what: str, x1: torch.Tensor, x2: torch.Tensor) -> str | None:
        got = fn(x1.clone(), x2.clone())
        want = 10 * math.log10(1 / ((x1 - x2) ** 2).mean().item())
        try:
            got = float(got)
        except (TypeError, ValueError, RuntimeError):
            return f"{what}: return one number (in dB), got {type(got).__name__} {got!r:.60}"
        if not math.isclose(got, want, rel_tol=1e-4):
            return f"{what}: expected {want:.4g} dB, got {got:.4g} (10 * log10(1 / MSE), MSE averaged over all pixels)"
        return None

    x = torch.zeros(2, 1, 4, 4)
    yield partial(case, "a mean squared error of 0.01", x, x + 0.1)
    yield partial(case, "a mean squared error of 0.0001", x, x + 0.01)
    yield partial(
        case,
        "a batch of 3 random image pairs",
        torch.rand(3, 1, 5, 5, generator=_gen(9)),
        torch.rand(3, 1, 5, 5, generator=_gen(10)),
    )


def _generator_loss(fn: Callable) -> Iterator[Case]:
    """fn(d_fake_logits (N,)) -> the non-saturating generator loss, -mean log D(G(z))."""
    hint = (
        "use -log D(G(z)), not log(1 - D(G(z))): the latter saturates when D rejects the fakes; compute it "
        "from logits, e.g. softplus(-logits).mean()"
    )
    for logits in (
        torch.tensor([-8.0, -6.0, 0.0, 2.0]),
        torch.randn(6, generator=_gen(6)),
        torch.tensor([-120.0, -100.0, -90.0]),
    ):
        want = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        yield _expect(fn, (logits,), want, f"D logits {logits[:3].tolist()}...", hint)


def _rbm_free_energy(fn: Callable) -> Iterator[Case]:
    """fn(v (B, V), W (V, H), b_v (V,), b_h (H,)) -> free energy per example (B,)."""
    g = _gen(7)
    for batch, nv, nh, what in (
        (4, 6, 3, "free energy of 4 visible vectors"),
        (1, 5, 4, "a single visible vector"),
        (3, 8, 2, "3 visible vectors, 8 visible and 2 hidden units"),
    ):
        v = (torch.rand(batch, nv, generator=g) > 0.5).float()
        w, bv, bh = (
            torch.randn(nv, nh, generator=g),
            torch.randn(nv, generator=g),
            torch.randn(nh, generator=g),
        )
        want = -(v @ bv) - F.softplus(v @ w + bh).sum(dim=1)
        yield _expect(
            fn,
            (v, w, bv, bh),
            want,
            what,
            "F(v) = -v.b_v - sum_j softplus(b_h_j + (v W)_j)",
        )


def _squash(fn: Callable) -> Iterator[Case]:
    """fn(s (..., D)) -> squashed vectors: |s|^2 / (1 + |s|^2) * s / |s| along the last dimension."""
    hint = "short vectors shrink to almost 0, long ones to just under length 1; direction kept"
    s = torch.randn(2, 5, 8, generator=_gen(8))
    for scale, what in (
        (0.01, "short capsules (length about 0.03)"),
        (0.4, "capsules of length about 1"),
        (30.0, "long capsules (length about 85)"),
    ):
        x = s * scale
        norm = x.norm(dim=-1, keepdim=True)
        yield _expect(fn, (x,), norm**2 / (1 + norm**2) * x / norm, what, hint)


def _dqn_target(fn: Callable) -> Iterator[Case]:
    """fn(rewards (B,), next_q (B, A) from the target network, terminated (B,) bool, gamma) -> TD targets (B,)."""
    hint = (
        "r + gamma * max_a' Q_target(s', a'), and just r where the episode terminated"
    )
    yield _expect(
        fn,
        (
            torch.tensor([1.0, 0.5]),
            torch.tensor([[1.0, 3.0], [5.0, 4.0]]),
            torch.tensor([False, False]),
            0.9,
        ),
        torch.tensor([1.0 + 0.9 * 3.0, 0.5 + 0.9 * 5.0]),
        "two transitions, none terminal",
        hint,
    )
    yield _expect(
        fn,
        (
            torch.tensor([1.0, 1.0, 0.5]),
            torch.tensor([[1.0, 3.0], [2.0, 0.0], [5.0, 4.0]]),
            torch.tensor([False, True, False]),
            0.9,
        ),
        torch.tensor([1.0 + 0.9 * 3.0, 1.0, 0.5 + 0.9 * 5.0]),
        "three transitions, the second terminal",
        hint,
    )
    yield _expect(
        fn,
        (
            torch.tensor([-1.0, 2.0]),
            torch.tensor([[7.0, -2.0, 1.0], [0.5, 9.0, 3.0]]),
            torch.tensor([True, True]),
            0.99,
        ),
        torch.tensor([-1.0, 2.0]),
        "two terminal transitions, three actions",
        hint,
    )


def _clipped_surrogate(fn: Callable) -> Iterator[Case]:
    """fn(ratio (N,), advantages (N,), clip_eps) -> PPO's clipped surrogate *loss* (to minimise)."""
    hint = (
        "loss = -mean(min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)): the minimum makes it pessimistic; "
        "mind the sign"
    )
    for ratio, adv, what in (
        (
            [0.9, 1.0, 1.1, 1.05],
            [1.0, -2.0, 0.5, -1.0],
            "ratios inside [1 - eps, 1 + eps]",
        ),
        (
            [0.5, 0.7, 1.5, 2.0],
            [1.0, 2.0, 1.0, 0.5],
            "positive advantages, ratios outside the clip range",
        ),
        (
            [0.5, 0.7, 1.5, 2.0],
            [-1.0, -2.0, -1.0, -0.5],
            "negative advantages, ratios outside the clip range",
        ),
        (
            [0.5, 0.9, 1.0, 1.1, 1.5, 1.5, 0.5],
            [1.0, -1.0, 2.0, 1.0, 1.0, -1.0, -1.0],
            "ratios 0.5..1.5 with positive and negative advantages",
        ),
    ):
        r, a = torch.tensor(ratio), torch.tensor(adv)
        yield _expect(
            fn, (r, a, 0.2), -torch.min(r * a, r.clamp(0.8, 1.2) * a).mean(), what, hint
        )


def _discounted_returns(fn: Callable) -> Iterator[Case]:
    """fn(rewards (T,), last_value, terminated, gamma) -> returns (T,) of one n-step rollout, bootstrapped."""
    rewards = torch.tensor([1.0, 0.0, 2.0])
    for terminated, last in ((False, 10.0), (True, 10.0)):
        tail = 0.0 if terminated else last
        want = torch.tensor(
            [
                1 + 0.5 * (0 + 0.5 * (2 + 0.5 * tail)),
                0 + 0.5 * (2 + 0.5 * tail),
                2 + 0.5 * tail,
            ]
        )
        hint = (
            "a terminated rollout has no future: bootstrap with 0"
            if terminated
            else "bootstrap the last step with V(s_T): G_t = r_t + gamma * G_(t+1), G_T = V(s_T)"
        )
        yield _expect(
            fn, (rewards, last, terminated, 0.5), want, f"terminated={terminated}", hint
        )
    yield _expect(
        fn,
        (torch.tensor([3.0]), -2.0, False, 0.9),
        torch.tensor([3.0 + 0.9 * -2.0]),
        "a rollout of one step, terminated=False",
        "G_0 = r_0 + gamma * V(s_1)",
    )


def _categorical_entropy(fn: Callable) -> Iterator[Case]:
    """fn(logits (B, A)) -> entropy of the softmax policy per state (B,), in nats."""
    hint = "H = -sum_a p log p with p = softmax(logits); use log_softmax for stability"
    for rows, what in (
        ([[0.0, 0.0], [3.0, 3.0]], "uniform policies (entropy log 2)"),
        ([[1.0, 2.0], [0.5, -1.0]], "mixed policies"),
        (
            [[100.0, 0.0], [0.0, 200.0]],
            "almost deterministic policies (entropy about 0)",
        ),
    ):
        logits = torch.tensor(rows)
        yield _expect(
            fn,
            (logits,),
            torch.distributions.Categorical(logits=logits).entropy(),
            what,
            hint,
        )


def _matches(
    got, variants: list[tuple[torch.Tensor, str]], want: torch.Tensor
) -> str | None:
    """The message of the first known mistake whose result ``got`` reproduces (and the right answer does not)."""
    try:
        got_t = _as_float64(got)
    except (TypeError, ValueError, RuntimeError):
        return None
    for value, message in variants:
        if (
            got_t.shape == value.shape
            and not torch.allclose(value, want, atol=1e-4, rtol=1e-4)
            and torch.allclose(got_t, value, atol=1e-4, rtol=1e-4)
        ):
            return message
    return None


def _linear(weight: list, bias: list) -> torch.nn.Linear:
    """A linear "Q-network" with fixed weights (its parameters require grad, as a real network's do)."""
    weight_t = torch.tensor(weight)
    layer = torch.nn.Linear(weight_t.shape[1], weight_t.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight_t)
        layer.bias.copy_(torch.tensor(bias))
    return layer


def _double_dqn_target(fn: Callable) -> Iterator[Case]:
    """fn(rewards (B,), next_obs (B, obs_dim), terminated (B,) bool, online_net, target_net, gamma) -> the Double
    DQN targets (B,): the online network chooses a* = argmax Q_online(s', .), the target network evaluates it."""
    formula = (
        "y = r + gamma * (1 - terminated) * Q_target(s', argmax_a' Q_online(s', a'))"
    )
    gather_hint = (
        "`q.gather(1, a)` has shape (B, 1): take `.squeeze(1)` of it before adding the rewards (B,), "
        "else the sum broadcasts to (B, B)"
    )

    def nets(seed: int | None) -> tuple[torch.nn.Module, torch.nn.Module]:
        if (
            seed is None
        ):  # 2 inputs, 3 actions: on every next state below the two networks disagree
            return (
                _linear([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], [0.0, 0.0, 0.0]),
                _linear([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], [0.25, 0.5, 0.0]),
            )
        g = _gen(
            seed
        )  # 5 inputs, 4 actions, random weights (not the notebook's random state)
        return tuple(
            _linear(
                torch.randn(4, 5, generator=g).tolist(),
                torch.randn(4, generator=g).tolist(),
            )
            for _ in range(2)
        )

    def case(
        what: str,
        rewards: list,
        next_obs: torch.Tensor,
        terminated: list,
        gamma: float,
        seed: int | None = None,
        note: str = "",
        grad: bool = False,
        exact_shape: bool = False,
    ) -> str | None:
        r, term = torch.tensor(rewards), torch.tensor(terminated)
        online, target = nets(seed)
        with torch.no_grad():
            q_on, q_tg = online(next_obs).double(), target(next_obs).double()
        r64, alive = r.double(), 1.0 - term.double()
        a_on, a_tg = q_on.argmax(dim=1, keepdim=True), q_tg.argmax(dim=1, keepdim=True)
        chosen = q_tg.gather(1, a_on).squeeze(1)
        want = r64 + gamma * alive * chosen
        got = fn(r.clone(), next_obs.clone(), term.clone(), online, target, gamma)
        if torch.is_tensor(got) and not exact_shape and got.shape == (len(r), 1):
            got = got.squeeze(
                1
            )  # the values of a (B, 1) answer count here; the shape case fails it
        if grad:
            if not torch.is_tensor(got):
                return f"{what}: return a tensor of shape (B,), got {type(got).__name__} {got!r:.60}"
            if got.requires_grad:
                return (
                    f"{what}: your targets require grad, so the loss would also push them towards Q(s, a) "
                    "(and backpropagate through the target network): compute them under "
                    "`with torch.no_grad():` or `.detach()` the result"
                )
        message = _close(got, want, what, atol=1e-4)
        if message is None:
            return None
        if message.startswith(f"{what}: expected shape"):
            batch = len(r)
            hint = (
                gather_hint
                if tuple(torch.as_tensor(got).shape) in ((batch, 1), (batch, batch))
                else "one target per transition"
            )
            return f"{message} ({hint})"
        mistake = _matches(
            got,
            [
                (
                    r64 + gamma * alive * q_tg.max(dim=1).values,
                    (
                        "you took the target network's max over actions, the plain DQN target; in Double DQN the online "
                        "network chooses a* = online_net(next_obs).argmax(dim=1) and the target network evaluates it: "
                        "target_net(next_obs).gather(1, a*)"
                    ),
                ),
                (
                    r64 + gamma * alive * q_on.max(dim=1).values,
                    (
                        "you used the online network's max value; the online network only chooses the action a*, its value "
                        "comes from the target network: Q_target(s', a*) (gather the chosen action, do not take a max)"
                    ),
                ),
                (
                    r64 + gamma * alive * q_on.gather(1, a_tg).squeeze(1),
                    (
                        "the two networks' roles are swapped: the online network chooses (argmax), the target network "
                        "evaluates"
                    ),
                ),
                (
                    r64,
                    (
                        "your targets are just the rewards: the transitions that did not terminate bootstrap, "
                        "y = r + gamma * Q_target(s', a*) (multiply the future by (1 - terminated), not by terminated)"
                    ),
                ),
                (
                    r64 + gamma * chosen,
                    (
                        "where terminated is True the episode has no future and the target is just r: multiply the "
                        "bootstrap term by (1 - terminated)"
                    ),
                ),
                (
                    r64 + gamma * term.double() * chosen,
                    (
                        "the mask is inverted: you bootstrapped only where terminated is True; multiply by "
                        "(1 - terminated), i.e. `(~terminated).float()`"
                    ),
                ),
                (r64 + alive * chosen, "multiply the bootstrapped value by gamma"),
                (gamma * alive * chosen, "add the reward: y = r + ..."),
            ],
            want,
        )
        return f"{what}: {mistake or message[len(what) + 2 :] + f' ({formula})'}{note}"

    obs = torch.tensor([[2.0, 1.0], [-1.0, 3.0], [0.5, -2.0], [3.0, -1.0]])
    yield partial(
        case,
        "four transitions, none terminated",
        [1.0, 0.5, -1.0, 2.0],
        obs,
        [False] * 4,
        0.9,
    )
    yield partial(
        case,
        "four transitions, the 2nd and 4th terminated",
        [1.0, 0.5, -1.0, 2.0],
        obs,
        [False, True, False, True],
        0.9,
    )
    yield partial(
        case,
        "the 1st and 3rd transitions cut by the time limit (terminated=False), the 2nd "
        "terminated",
        [0.0, 1.0, 1.0, 1.0],
        obs,
        [False, True, False, False],
        0.99,
        note=" (a time-limit cut is not the end of the task: `terminated` is False there and the "
        "target bootstraps; only terminated transitions get y = r)",
    )
    yield partial(
        case,
        "the shape of the targets, 4 transitions",
        [1.0, 0.5, -1.0, 2.0],
        obs,
        [False, True, False, False],
        0.9,
        exact_shape=True,
    )
    yield partial(case, "a batch of one transition", [0.5], obs[1:2], [False], 0.9)
    yield partial(
        case,
        "the targets must not carry gradient",
        [1.0, 0.5, -1.0, 2.0],
        obs,
        [False, False, True, False],
        0.9,
        grad=True,
    )
    gen = _gen(11)
    yield partial(
        case,
        "8 transitions, 4 actions, random networks",
        torch.randn(8, generator=gen).tolist(),
        torch.randn(8, 5, generator=gen),
        [False, True, False, False, True, False, False, False],
        0.97,
        seed=12,
    )


def _gae_reference(
    rewards: torch.Tensor,
    values: torch.Tensor,
    last_values: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    lam: float,
    *,
    cut_td: bool = True,
    cut_recursion: bool = True,
    bootstrap_last: bool = True,
    decay: float | None = None,
    next_is_current: bool = False,
) -> torch.Tensor:
    """GAE advantages in float64 by the plain backward loop; the keyword arguments reproduce typical mistakes."""
    r, v, d = rewards.double(), values.double(), dones.double()
    last = (
        last_values.double()
        if bootstrap_last
        else torch.zeros_like(last_values, dtype=torch.float64)
    )
    decay = gamma * lam if decay is None else decay
    advantages = torch.zeros_like(r)
    running = torch.zeros_like(r[0])
    for t in reversed(range(len(r))):
        next_value = v[t] if next_is_current else (v[t + 1] if t + 1 < len(r) else last)
        delta = r[t] + gamma * (1.0 - d[t] * cut_td) * next_value - v[t]
        running = delta + decay * (1.0 - d[t] * cut_recursion) * running
        advantages[t] = running
    return advantages


def _gae(fn: Callable) -> Iterator[Case]:
    """fn(rewards (T, N), values (T, N), last_values (N,), dones (T, N) bool, gamma, lam) -> (advantages (T, N),
    returns (T, N)); dones[t] means the episode ended after step t (no bootstrap, the recursion stops)."""
    formula = (
        "delta_t = r_t + gamma * (1 - done_t) * V_next - V_t with V_next = values[t + 1] (last_values "
        "for t = T - 1); A_t = delta_t + gamma * lam * (1 - done_t) * A_(t+1), backwards from A_T = 0"
    )

    def case(
        what: str,
        rewards: torch.Tensor,
        values: torch.Tensor,
        last_values: torch.Tensor,
        dones: torch.Tensor,
        gamma: float,
        lam: float,
        hint: str = "",
        returns: bool = False,
    ) -> str | None:
        args = (rewards, values, last_values, dones, gamma, lam)
        got = fn(*_clone(args))
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return f"{what}: return the pair (advantages, returns), got {type(got).__name__} {got!r:.60}"
        want = _gae_reference(*args)
        if returns:
            want_returns = want + values.double()
            message = _close(got[1], want_returns, f"{what}: the returns", atol=1e-4)
            if message is None:
                return None
            mistake = _matches(
                got[1],
                [
                    (
                        want,
                        (
                            "you returned the advantages as the returns; the returns (the critic's targets) are "
                            "advantages + values"
                        ),
                    ),
                    (
                        want - values.double(),
                        "returns = advantages + values, not minus",
                    ),
                    (
                        _gae_reference(*args[:4], gamma, 1.0) + values.double(),
                        "the returns are advantages + values with the GAE(lambda) advantages, not Monte-Carlo returns",
                    ),
                ],
                want_returns,
            )
            return (
                f"{what}: {mistake}"
                if mistake
                else f"{message} (returns = advantages + values)"
            )
        message = _close(got[0], want, f"{what}: the advantages", atol=1e-4)
        if message is None:
            return None
        if "expected shape" in message:
            return (
                f"{message} (the advantages have the shape of rewards, (T, N): time along dim 0, one column "
                "per environment)"
            )
        mistake = _matches(
            got[0],
            [
                (
                    _gae_reference(*args, cut_td=False, cut_recursion=False),
                    (
                        "you ignored dones: at the end of an episode (dones[t] True) there is no bootstrap "
                        "(delta_t = r_t - V_t) and the recursion stops (A_t = delta_t)"
                    ),
                ),
                (
                    _gae_reference(*args, cut_recursion=False),
                    (
                        "the recursion runs across the episode's end: the next episode's advantages leak into this one; "
                        "A_t = delta_t + gamma * lam * (1 - done_t) * A_(t+1)"
                    ),
                ),
                (
                    _gae_reference(*args, cut_td=False),
                    (
                        "where dones[t] is True the TD error still bootstraps from values[t + 1] (or last_values at the "
                        "last step); in this exercise every episode end counts as terminal, so there delta_t = r_t - V_t: "
                        "multiply V_next by (1 - done_t)"
                    ),
                ),
                (
                    _gae_reference(*args, bootstrap_last=False),
                    (
                        "the last step (t = T - 1) must bootstrap from last_values, the value of the state after the "
                        "rollout (unless dones[T - 1]): the rollout stops, the episode does not"
                    ),
                ),
                (
                    _gae_reference(*args, next_is_current=True),
                    "V(s_(t+1)) is values[t + 1] (last_values at t = T - 1), not values[t]",
                ),
                (
                    _gae_reference(*args, decay=gamma),
                    "the recursion's factor is gamma * lam, not gamma: A_t = delta_t + gamma * lam * A_(t+1)",
                ),
                (
                    _gae_reference(*args, decay=lam),
                    "the recursion's factor is gamma * lam, not lam alone: A_t = delta_t + gamma * lam * A_(t+1)",
                ),
                (
                    _gae_reference(*args, decay=0.0),
                    (
                        "you returned the one-step TD errors: add the recursion "
                        "A_t = delta_t + gamma * lam * (1 - done_t) * A_(t+1)"
                    ),
                ),
                (
                    _gae_reference(*args) + values.double(),
                    (
                        "you returned advantages + values as the advantages; "
                        "advantages first, returns (= advantages + values) second"
                    ),
                ),
            ],
            want,
        )
        if mistake:
            return f"{what}: {mistake}"
        return f"{message} ({hint or formula})"

    gen = _gen(13)

    def rollout(t: int, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            torch.randn(t, n, generator=gen),
            torch.randn(t, n, generator=gen),
            torch.randn(n, generator=gen),
        )

    def ends(t: int, n: int, *steps: tuple[int, int]) -> torch.Tensor:
        dones = torch.zeros(t, n, dtype=torch.bool)
        for step, env in steps:
            dones[step, env] = True
        return dones

    r, v, last = rollout(4, 1)
    yield partial(
        case,
        "lam=0, one environment, 4 steps, no episode end",
        r,
        v,
        last,
        ends(4, 1),
        0.9,
        0.0,
        "with lam=0 the advantage is the one-step TD error r_t + gamma * V(s_(t+1)) - V(s_t)",
    )
    r, v, last = rollout(5, 1)
    yield partial(
        case,
        "lam=1, one environment, 5 steps, no episode end",
        r,
        v,
        last,
        ends(5, 1),
        0.9,
        1.0,
        "with lam=1 the advantage is the discounted sum of the rewards to the rollout's end, plus "
        "gamma^(T-t) * last_values, minus values[t]",
    )
    r, v, last = rollout(6, 1)
    yield partial(
        case,
        "an episode ends after step 2 of 6 (lam=0.95)",
        r,
        v,
        last,
        ends(6, 1, (2, 0)),
        0.99,
        0.95,
    )
    r, v, last = rollout(4, 1)
    yield partial(
        case,
        "the episode ends at the rollout's last step (lam=0.9)",
        r,
        v,
        last,
        ends(4, 1, (3, 0)),
        0.9,
        0.9,
        "dones[T - 1] is True: in this exercise every episode end counts as terminal, so do "
        "not bootstrap from last_values there",
    )
    columns = (
        "each column is one environment: run the recursion backwards over time (dim 0) for all columns "
        "at once; values[t + 1], dones[t] and last_values are rows of N values"
    )
    r, v, last = rollout(5, 3)
    multi = (r, v, last, ends(5, 3, (1, 0), (3, 0), (2, 2)), 0.95, 0.9)
    yield partial(
        case,
        "3 environments, 5 steps, episodes ending at different steps (lam=0.9)",
        *multi,
        hint=columns,
    )
    r, v, last = rollout(4, 2)
    yield partial(
        case,
        "lam=1, 2 environments, the 1st one's episode ends after step 1",
        r,
        v,
        last,
        ends(4, 2, (1, 0)),
        0.9,
        1.0,
        hint=columns,
    )
    yield partial(case, "3 environments, 5 steps (lam=0.9)", *multi, returns=True)


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
    "double_dqn_target": _double_dqn_target,
    "gae": _gae,
}


def _explain(err: Exception) -> str:
    if isinstance(err, NotImplementedError) and not str(
        err
    ):  # the stub's bare `raise NotImplementedError`
        return NOT_IMPLEMENTED
    return f"your function raised {type(err).__name__}: {err}"


def grade(
    exercise: str, fn: Callable, checks: Mapping[str, Checker] | None = None
) -> Verdict:
    """Run every test case of ``exercise`` on ``fn``: how many passed, and the first failure's message.

    A case in which ``fn`` raises fails with the exception as its message; the other cases still run. (A checker
    that returns a message or ``None`` instead of yielding cases counts as one case.)
    ``checks`` is the table to look ``exercise`` up in: default :data:`CHECKS`; the
    course's assignments pass theirs (:mod:`helpers.course`).
    """
    checks = CHECKS if checks is None else checks
    if exercise not in checks:
        raise ValueError(f"unknown exercise {exercise!r}; known: {', '.join(checks)}")
    passed = total = 0
    first: str | None = None

    def record(message: str | None) -> None:
        nonlocal passed, total, first
        total += 1
        passed += message is None
        first = first or message

    try:
        cases = checks[exercise](fn)
        if cases is None or isinstance(cases, str):  # a checker written as one case
            record(cases)
            cases = ()
        for case in cases:
            try:
                message = case()
            except Exception as err:  # a student's bug fails the case, not the notebook
                message = _explain(err)
            record(message)
    except Exception as err:  # the checker itself stopped (it called fn outside a case)
        record(_explain(err))
    return Verdict(exercise, passed, total, first)


def check(
    exercise: str, fn: Callable, checks: Mapping[str, Checker] | None = None
) -> bool:
    """Check a student's function for ``exercise`` (a key of :data:`CHECKS`, or of
    ``checks``); print the verdict, return it."""
    verdict = grade(exercise, fn, checks)
    log = os.environ.get(GRADE_LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({**asdict(verdict), "score": verdict.score}) + "\n")
    if verdict.correct:
        print(
            f"✅ {exercise}: correct on every test case ({verdict.total} of {verdict.total})."
        )
        return True
    print(
        f"❌ {exercise}: {verdict.message}\n   {verdict.passed} of {verdict.total} test cases passed."
    )
    return False
