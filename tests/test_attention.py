"""Unit tests for helpers.attention: shapes, masking, equality with PyTorch's layers, positional codes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import attention as A


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_scaled_dot_product_attention_shapes_and_rows_sum_to_one():
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 4)
    out, w = A.scaled_dot_product_attention(q, k, v)
    assert out.shape == (2, 3, 5, 4) and w.shape == (2, 3, 5, 7)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 5))


def test_scaled_dot_product_attention_matches_torch_with_and_without_mask():
    q, k, v = torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8)
    mask = A.causal_mask(6)
    for m in (None, mask):
        ours, _ = A.scaled_dot_product_attention(q, k, v, m)
        torch.testing.assert_close(
            ours,
            F.scaled_dot_product_attention(q, k, v, attn_mask=m),
            atol=1e-5,
            rtol=1e-5,
        )


def test_causal_mask_zeroes_future_weights():
    mask = A.causal_mask(5)
    assert (
        mask.dtype == torch.bool
        and mask[0, 1].item() is False
        and mask[4, 0].item() is True
    )
    _, w = A.scaled_dot_product_attention(
        torch.randn(1, 5, 4), torch.randn(1, 5, 4), torch.randn(1, 5, 4), mask
    )
    assert torch.all(w[0].triu(diagonal=1) == 0)


def test_fully_masked_query_gives_zeros_not_nan():
    mask = torch.tensor([[False, False], [True, True]])
    out, w = A.scaled_dot_product_attention(
        torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3), mask
    )
    assert torch.isfinite(out).all() and torch.all(out[0] == 0) and torch.all(w[0] == 0)


def test_multi_head_attention_shapes_and_stored_weights():
    mha = A.MultiHeadAttention(16, 4)
    x, memory = torch.randn(3, 5, 16), torch.randn(3, 9, 16)
    assert mha(x).shape == (3, 5, 16)
    assert mha(x, memory).shape == (3, 5, 16)  # cross-attention
    assert mha.last_attention.shape == (3, 4, 5, 9)
    with pytest.raises(ValueError):
        A.MultiHeadAttention(10, 4)


@pytest.mark.parametrize("masked", [False, True])
def test_multi_head_attention_equals_torch_after_copying_weights(masked):
    ours = A.MultiHeadAttention(16, 4).eval()
    theirs = A.copy_to_torch_mha(
        ours, nn.MultiheadAttention(16, 4, batch_first=True)
    ).eval()
    x = torch.randn(2, 6, 16)
    mask = A.causal_mask(6) if masked else None
    # PyTorch's boolean attn_mask means the opposite: True = *not* allowed.
    expected, expected_w = theirs(
        x, x, x, attn_mask=None if mask is None else ~mask, average_attn_weights=False
    )
    torch.testing.assert_close(ours(x, mask=mask), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.last_attention, expected_w, atol=1e-5, rtol=1e-5)


def test_encoder_block_equals_torch_encoder_layer():
    ours = A.EncoderBlock(16, 4, d_ff=32).eval()
    # norm_first=True, GELU, no dropout: the same pre-LN block
    layer = nn.TransformerEncoderLayer(
        16,
        4,
        dim_feedforward=32,
        dropout=0.0,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    theirs = A.copy_to_torch_encoder_layer(ours, layer).eval()
    x = torch.randn(2, 7, 16)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
    mask = A.causal_mask(7)
    torch.testing.assert_close(
        ours(x, mask), theirs(x, src_mask=~mask), atol=1e-5, rtol=1e-5
    )


def test_causal_language_model_does_not_see_the_future():
    lm = A.CharTransformerLM(
        vocab_size=11, d_model=16, n_heads=2, n_layers=2, block_size=12
    ).eval()
    idx = torch.randint(0, 11, (1, 12))
    changed = idx.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 11  # change only the future after step 7
    a, b = lm(idx), lm(changed)
    assert a.shape == (1, 12, 11)
    torch.testing.assert_close(a[:, :8], b[:, :8])  # earlier predictions unchanged
    assert not torch.allclose(a[:, 8:], b[:, 8:])
    # and the gradient of an early output with respect to later inputs is exactly zero
    emb = lm.embed(idx).detach().requires_grad_(True)
    h = lm.pos(emb)
    for block in lm.blocks:
        h = block(h, lm.mask[:12, :12])
    h[0, 3].sum().backward()
    assert torch.all(emb.grad[0, 4:] == 0) and emb.grad[0, :4].abs().sum() > 0


def test_language_model_weight_tying_and_context_limit():
    lm = A.CharTransformerLM(
        vocab_size=7, d_model=8, n_heads=2, n_layers=1, block_size=4
    )
    assert lm.head.weight is lm.embed.weight and lm.block_size == 4
    # initial logits have about unit variance: a near-uniform first guess, not a confident wrong one
    assert 0.3 < lm(torch.randint(0, 7, (16, 4))).std().item() < 3.0
    with pytest.raises(ValueError):
        lm(torch.zeros(1, 5, dtype=torch.long))


def test_classifier_real_and_token_inputs():
    clf = A.TransformerClassifier(
        input_dim=28, num_classes=10, d_model=16, n_heads=2, n_layers=2
    )
    assert clf(torch.randn(4, 28, 28)).shape == (4, 10)
    assert [m.shape for m in clf.attention_maps()] == [(4, 2, 28, 28)] * 2
    tok = A.TransformerClassifier(
        input_dim=0, num_classes=3, d_model=16, n_heads=2, vocab_size=9
    )
    assert tok(torch.randint(0, 9, (4, 12))).shape == (4, 3)


def test_positional_encoding_properties():
    pe = A.sinusoidal_positional_encoding(200, 32)
    assert pe.shape == (200, 32) and pe.abs().max() <= 1.0
    torch.testing.assert_close(pe[0, 0::2], torch.zeros(16))  # sin(0) = 0
    torch.testing.assert_close(pe[0, 1::2], torch.ones(16))  # cos(0) = 1
    # every (sin, cos) pair lies on the unit circle
    torch.testing.assert_close(pe[:, 0::2] ** 2 + pe[:, 1::2] ** 2, torch.ones(200, 16))
    # distinct positions get distinct codes
    assert torch.cdist(pe, pe).add(torch.eye(200) * 10).min() > 0.1
    # the dot product between positions depends only on their offset
    torch.testing.assert_close(pe[10] @ pe[15], pe[100] @ pe[105], atol=1e-4, rtol=1e-4)
    # the code of pos + k is a fixed rotation of the code of pos (same k, any pos)
    k, i = 3, 2
    w = 10_000 ** (-2 * i / 32)
    rot = torch.tensor(
        [[math.cos(k * w), -math.sin(k * w)], [math.sin(k * w), math.cos(k * w)]]
    )
    for pos in (0, 50, 120):
        torch.testing.assert_close(
            pe[pos, 2 * i : 2 * i + 2] @ rot,
            pe[pos + k, 2 * i : 2 * i + 2],
            atol=1e-4,
            rtol=1e-4,
        )
    with pytest.raises(ValueError):
        A.sinusoidal_positional_encoding(10, 7)
    layer = A.PositionalEncoding(32, max_len=50)
    torch.testing.assert_close(layer(torch.zeros(2, 10, 32)), pe[:10].expand(2, 10, 32))
    with pytest.raises(ValueError):
        layer(torch.zeros(1, 51, 32))


def test_hub_reachable_answers_quickly_when_nothing_listens():
    import time

    start = time.perf_counter()
    assert (
        A.hub_reachable("127.0.0.1", 9, timeout=1.0) is False
    )  # discard port: nothing listens there
    assert time.perf_counter() - start < 3.0
