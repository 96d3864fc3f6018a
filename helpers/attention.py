"""Attention and Transformers written from scratch, small enough to read in one sitting.

The Transformer chapter shows this code on its page and checks it numerically against PyTorch's
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer``. Everything is plain tensor algebra so a
reader can follow each shape; the library versions are faster (fused kernels) but compute the same thing.

Pieces, bottom up:

* :func:`scaled_dot_product_attention` with an optional boolean mask, and :func:`causal_mask`;
* :class:`MultiHeadAttention` (several attention heads in parallel, one matrix product each);
* :func:`sinusoidal_positional_encoding` / :class:`PositionalEncoding` (attention alone ignores order);
* :class:`EncoderBlock`, a pre-LN Transformer block (attention and MLP sub-layers with residuals);
* :class:`TransformerClassifier` (encoder + mean pooling) and :class:`CharTransformerLM` (a causal,
  decoder-only character language model, the GPT recipe at toy size).

Every attention layer keeps its last attention weights in ``last_attention`` (detached), so a chapter
can plot attention maps after an ordinary forward pass.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "scaled_dot_product_attention",
    "causal_mask",
    "MultiHeadAttention",
    "sinusoidal_positional_encoding",
    "PositionalEncoding",
    "EncoderBlock",
    "TransformerClassifier",
    "CharTransformerLM",
    "copy_to_torch_mha",
    "copy_to_torch_encoder_layer",
    "hub_reachable",
]


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout: nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q k^T / sqrt(d)) v`` over the last two dimensions; returns ``(output, weights)``.

    ``q`` is ``(..., T_q, d)``, ``k`` is ``(..., T_k, d)``, ``v`` is ``(..., T_k, d_v)``. ``mask`` is boolean,
    broadcastable to ``(..., T_q, T_k)``, and ``True`` where a query *may* attend to a key (the convention of
    ``torch.nn.functional.scaled_dot_product_attention``). Masked scores are set to ``-inf`` before the
    softmax, so their weights are exactly zero. Dividing by ``sqrt(d)`` keeps the scores' variance near 1
    for unit-variance inputs; without it the softmax saturates as ``d`` grows and gradients vanish.
    """
    d = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    if mask is not None:
        weights = weights.nan_to_num(
            0.0
        )  # a query with every key masked attends to nothing
    attended = dropout(weights) if dropout is not None else weights
    return attended @ v, weights


def causal_mask(length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(length, length)`` lower-triangular mask: position ``t`` may attend to positions ``<= t``.

    This is what makes a language model *causal*: a prediction for step ``t+1`` cannot peek at the answer.
    """
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


class MultiHeadAttention(nn.Module):
    """``h`` attention heads of size ``d_model / h`` computed in parallel, then mixed by an output projection.

    Each head projects queries, keys and values to its own subspace, so different heads can attend to
    different things (the previous character, the start of a word, ...). Splitting ``d_model`` across heads
    keeps the cost equal to one big head. ``forward(query, key=None, value=None, mask=None)`` does
    self-attention when ``key``/``value`` are omitted. The weights layout matches ``nn.MultiheadAttention``
    (see :func:`copy_to_torch_mha`).
    """

    def __init__(
        self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True
    ):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(
                f"d_model={d_model} must be divisible by n_heads={n_heads}"
            )
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.last_attention: torch.Tensor | None = None  # (B, h, T_q, T_k), for plots

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d_model) -> (B, h, T, d_head): each head becomes a batch dimension."""
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        key = query if key is None else key
        value = key if value is None else value
        q, k, v = (
            self._split(self.q_proj(query)),
            self._split(self.k_proj(key)),
            self._split(self.v_proj(value)),
        )
        out, weights = scaled_dot_product_attention(q, k, v, mask, self.dropout)
        self.last_attention = weights.detach()
        b, _, t, _ = out.shape
        return self.out_proj(
            out.transpose(1, 2).reshape(b, t, self.d_model)
        )  # concatenate the heads


def sinusoidal_positional_encoding(
    max_len: int, d_model: int, base: float = 10_000.0
) -> torch.Tensor:
    """The fixed ``(max_len, d_model)`` table of Vaswani et al. (2017): sines on even, cosines on odd columns.

    Column pair ``(2i, 2i+1)`` is a rotating 2-D vector with angular speed ``base^(-2i/d)``, from one turn
    every ``2 pi`` positions down to very slow ones. Hence every position gets a distinct code, values stay in
    [-1, 1] whatever the length, and the code of ``pos + k`` is a fixed rotation of the code of ``pos``, so
    relative offsets are easy for attention to express.
    """
    if d_model % 2:
        raise ValueError(f"d_model must be even for sine/cosine pairs, got {d_model}")
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # (max_len, 1)
    freq = base ** (
        -torch.arange(0, d_model, 2, dtype=torch.float32) / d_model
    )  # (d_model / 2,)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq)
    return pe


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal table to a ``(B, T, d_model)`` input: attention is order-blind without it."""

    def __init__(self, d_model: int, max_len: int = 1024):
        super().__init__()
        self.register_buffer(
            "pe", sinusoidal_positional_encoding(max_len, d_model), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[0]:
            raise ValueError(
                f"sequence of length {x.shape[1]} exceeds max_len={self.pe.shape[0]}"
            )
        return x + self.pe[: x.shape[1]]


class EncoderBlock(nn.Module):
    """A pre-LN Transformer block: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``.

    Normalising *before* each sub-layer (Xiong et al., 2020) keeps a clean residual path from input to
    output, so small models train with Adam without the learning-rate warm-up the original post-LN layout
    needs. Equivalent to ``nn.TransformerEncoderLayer(norm_first=True, batch_first=True, activation="gelu")``
    (see :func:`copy_to_torch_encoder_layer`), except that a boolean mask means the opposite there: in PyTorch
    ``True`` masks a key out, here ``True`` means "may attend".
    """

    def __init__(
        self, d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.0
    ):
        super().__init__()
        d_ff = d_ff or 4 * d_model
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, d_ff),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(d_ff, d_model),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), mask=mask))
        return x + self.dropout(self.ff(self.norm2(x)))


class TransformerClassifier(nn.Module):
    """Sequence classifier: embed each step, add positions, ``n_layers`` encoder blocks, mean-pool, classify.

    Input is either real-valued ``(B, T, input_dim)`` (e.g. MNIST rows) or, with ``vocab_size`` set, integer
    tokens ``(B, T)``. No mask: every step sees every other step, in one parallel pass.
    """

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        d_ff: int | None = None,
        dropout: float = 0.0,
        max_len: int = 1024,
        vocab_size: int | None = None,
    ):
        super().__init__()
        self.embed: nn.Module = (
            nn.Embedding(vocab_size, d_model)
            if vocab_size is not None
            else nn.Linear(input_dim, d_model)
        )
        self.pos = PositionalEncoding(d_model, max_len)
        self.blocks = nn.ModuleList(
            EncoderBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pos(self.embed(x))
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).mean(dim=1))

    def attention_maps(self) -> list[torch.Tensor]:
        """Attention weights ``(B, h, T, T)`` of every block from the last forward pass."""
        return [block.attn.last_attention for block in self.blocks]


class CharTransformerLM(nn.Module):
    """Decoder-only (GPT-style) language model: token + position embeddings, causal blocks, next-token logits.

    ``forward(idx)`` maps ``(B, T)`` token ids to ``(B, T, vocab_size)`` logits, where position ``t`` is
    trained to predict token ``t+1``. The causal mask lets one forward pass train all ``T`` predictions at
    once (teacher forcing in parallel), the property that makes Transformers fast to train. The output layer
    shares its weights with the token embedding (weight tying), which saves parameters at no cost.
    Text is sampled with ``helpers.sequence.sample``, which feeds back the last ``block_size`` characters.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        n_heads: int = 4,
        n_layers: int = 2,
        block_size: int = 128,
        d_ff: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.block_size = (
            block_size  # the context length; helpers.sequence.sample reads this name
        )
        self.embed = nn.Embedding(vocab_size, d_model)
        # std 1/sqrt(d): scaled by sqrt(d) in forward the embedding is about as large as the positional code,
        # and the tied output layer starts with logits of unit variance (a near-uniform first guess).
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)
        self.pos = PositionalEncoding(d_model, block_size)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.embed.weight  # weight tying
        self.register_buffer("mask", causal_mask(block_size), persistent=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        if t > self.block_size:
            raise ValueError(
                f"sequence of length {t} exceeds the context of {self.block_size}"
            )
        h = self.drop(self.pos(self.embed(idx) * math.sqrt(self.embed.embedding_dim)))
        mask = self.mask[:t, :t]
        for block in self.blocks:
            h = block(h, mask=mask)
        return self.head(self.norm(h))

    def attention_maps(self) -> list[torch.Tensor]:
        """Attention weights ``(B, h, T, T)`` of every block from the last forward pass."""
        return [block.attn.last_attention for block in self.blocks]


# --- bridges to PyTorch's own layers (for the numerical equivalence checks) ---------------------------


@torch.no_grad()
def copy_to_torch_mha(
    ours: MultiHeadAttention, theirs: nn.MultiheadAttention
) -> nn.MultiheadAttention:
    """Copy our weights into ``nn.MultiheadAttention`` (which stores Q, K, V stacked in one matrix)."""
    theirs.in_proj_weight.copy_(
        torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight])
    )
    theirs.out_proj.weight.copy_(ours.out_proj.weight)
    if theirs.in_proj_bias is not None:
        theirs.in_proj_bias.copy_(
            torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias])
        )
        theirs.out_proj.bias.copy_(ours.out_proj.bias)
    return theirs


@torch.no_grad()
def copy_to_torch_encoder_layer(
    ours: EncoderBlock, theirs: nn.TransformerEncoderLayer
) -> nn.TransformerEncoderLayer:
    """Copy an :class:`EncoderBlock` into ``nn.TransformerEncoderLayer(norm_first=True, activation="gelu")``."""
    copy_to_torch_mha(ours.attn, theirs.self_attn)
    for mine, torch_layer in (
        (ours.norm1, theirs.norm1),
        (ours.norm2, theirs.norm2),
        (ours.ff[0], theirs.linear1),
        (ours.ff[3], theirs.linear2),
    ):
        torch_layer.load_state_dict(mine.state_dict())
    return theirs


def hub_reachable(
    host: str = "huggingface.co", port: int = 443, timeout: float = 3.0
) -> bool:
    """Can the Hugging Face hub be reached? Answers within about ``timeout`` seconds, even offline.

    ``from_pretrained`` on a machine without internet retries for half a minute and then raises; asking
    first lets a chapter fall back at once (and say so) instead of hanging.
    """
    from .data import (
        _reachable,
    )  # the same bounded TCP check the data loaders use before a download

    return _reachable(host, port, timeout)
