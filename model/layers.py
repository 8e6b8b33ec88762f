"""Building blocks shared by every VATT backbone (official `vatt/modeling/common/transformers.py`).

One module per idea: `Attention`, `FeedForward`, `TransformerBlock`, `Transformer`, plus the T5
pieces (`RMSNorm`, `RelativePositionBias`), the learnable position tables with their
interpolation, and the pure `drop_tokens` function.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Attention",
    "FeedForward",
    "TransformerBlock",
    "Transformer",
    "RMSNorm",
    "RelativePositionBias",
    "PositionTable",
    "SpatioTemporalPositions",
    "TemporalPositions",
    "drop_tokens",
    "keep_count",
    "even_subset",
    "keep_budget",
    "interpolate_table",
    "padding_bias",
]

NEG_INF = -1e9  # the official additive mask value


class RMSNorm(nn.Module):
    """T5LayerNorm: scale only, no mean subtraction (official variable `weight`)."""

    def __init__(self, dim: int, eps: float = 1e-6, device=None, dtype=None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return (x * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v/o projections, as stored in the checkpoints.

    `scale=None` means 1/sqrt(d_kv) (ViT/WaT/UT); the T5 text encoder passes `scale=1.0`.
    `bias` is an additive float mask broadcastable to [B, heads, N, N] (padding as -1e9, plus T5's
    relative position bias). `fused=True` uses SDPA; the explicit path is kept beside it and a test
    checks that both agree.
    """

    def __init__(self, d_model: int, num_heads: int, d_kv: int, *, use_bias: bool = True,
                 scale: float | None = None, dropout: float = 0.1, fused: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        inner = num_heads * d_kv
        self.num_heads, self.d_kv = num_heads, d_kv
        self.scale = d_kv ** -0.5 if scale is None else scale
        self.dropout = dropout
        self.fused = fused
        self.q = nn.Linear(d_model, inner, bias=use_bias, **dd)
        self.k = nn.Linear(d_model, inner, bias=use_bias, **dd)
        self.v = nn.Linear(d_model, inner, bias=use_bias, **dd)
        self.o = nn.Linear(inner, d_model, bias=use_bias, **dd)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        B, N, _ = x.shape
        q = self.q(x).view(B, N, self.num_heads, self.d_kv).transpose(1, 2)  # [B, H, N, dk]
        k = self.k(x).view(B, N, self.num_heads, self.d_kv).transpose(1, 2)
        v = self.v(x).view(B, N, self.num_heads, self.d_kv).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p, scale=self.scale)
        else:
            scores = (q * self.scale) @ k.transpose(-2, -1)  # [B, H, N, N]
            if bias is not None:
                scores = scores + bias
            probs = F.dropout(scores.softmax(dim=-1), p=p, training=self.training)
            out = probs @ v
        out = out.transpose(1, 2).reshape(B, N, self.num_heads * self.d_kv)
        return self.o(out)


class FeedForward(nn.Module):
    """Dense -> exact GELU -> dropout -> Dense (official `DenseGeLUDense`, wi/wo)."""

    def __init__(self, d_model: int, d_ff: int, *, use_bias: bool = True, dropout: float = 0.1,
                 device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.wi = nn.Linear(d_model, d_ff, bias=use_bias, **dd)
        self.act = nn.GELU()  # exact erf form, as tf.keras.activations.gelu
        self.drop = nn.Dropout(dropout)
        self.wo = nn.Linear(d_ff, d_model, bias=use_bias, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wo(self.drop(self.act(self.wi(x))))


NormFactory = Callable[..., nn.Module]


class TransformerBlock(nn.Module):
    """Pre-LN block: x + drop(attn(norm_attn(x))), then x + drop(mlp(norm_ffn(x)))."""

    def __init__(self, d_model: int, num_heads: int, d_kv: int, d_ff: int, *, dropout: float = 0.1,
                 eps: float = 1e-6, use_bias: bool = True, attn_scale: float | None = None,
                 attn_norm: NormFactory = nn.LayerNorm, ffn_norm: NormFactory = nn.LayerNorm,
                 device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.norm_attn = attn_norm(d_model, eps=eps, **dd)  # official layer_norm
        self.attn = Attention(d_model, num_heads, d_kv, use_bias=use_bias, scale=attn_scale, dropout=dropout, **dd)
        self.drop_attn = nn.Dropout(dropout)
        self.norm_ffn = ffn_norm(d_model, eps=eps, **dd)  # official feed_forward/layer_norm
        self.mlp = FeedForward(d_model, d_ff, use_bias=use_bias, dropout=dropout, **dd)
        self.drop_ffn = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_attn(self.attn(self.norm_attn(x), bias))
        x = x + self.drop_ffn(self.mlp(self.norm_ffn(x)))
        return x


class Transformer(nn.Module):
    """A stack of blocks, then the final norm and dropout (official `TransformerEncoder` / `T5Encoder`)."""

    def __init__(self, num_layers: int, d_model: int, num_heads: int, d_kv: int, d_ff: int, *,
                 dropout: float = 0.1, eps: float = 1e-6, use_bias: bool = True,
                 attn_scale: float | None = None, attn_norm: NormFactory = nn.LayerNorm,
                 ffn_norm: NormFactory = nn.LayerNorm, final_norm: NormFactory = nn.LayerNorm,
                 device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.blocks = nn.ModuleList([
            TransformerBlock(d_model, num_heads, d_kv, d_ff, dropout=dropout, eps=eps, use_bias=use_bias,
                             attn_scale=attn_scale, attn_norm=attn_norm, ffn_norm=ffn_norm, **dd)
            for _ in range(num_layers)
        ])
        self.final_norm = final_norm(d_model, eps=eps, **dd)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, bias)
        return self.drop(self.final_norm(x))


def padding_bias(attend_mask: torch.Tensor) -> torch.Tensor:
    """[B, N] bool (True = may attend) -> additive [B, 1, 1, N] float bias over keys."""
    return (1.0 - attend_mask.float())[:, None, None, :] * NEG_INF


def t5_relative_buckets(relative_position: torch.Tensor, num_buckets: int = 32,
                        max_distance: int = 64) -> torch.Tensor:
    """Bidirectional T5 bucketing (HF `_relative_position_bucket`); spec §10.6 writes it out."""
    num_buckets //= 2
    buckets = (relative_position > 0).long() * num_buckets
    n = relative_position.abs()
    max_exact = num_buckets // 2
    is_small = n < max_exact
    large = max_exact + (
        torch.log(n.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).long()
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, n, large)


class RelativePositionBias(nn.Module):
    """T5 relative position bias table [buckets, heads]; computed once, reused by every layer."""

    def __init__(self, num_heads: int, num_buckets: int = 32, max_distance: int = 64,
                 device=None, dtype=None) -> None:
        super().__init__()
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.embeddings = nn.Parameter(torch.empty(num_buckets, num_heads, device=device, dtype=dtype))

    def forward(self, n: int) -> torch.Tensor:
        pos = torch.arange(n, device=self.embeddings.device)
        rel = pos[None, :] - pos[:, None]  # key - query, [q, k]
        buckets = t5_relative_buckets(rel, self.num_buckets, self.max_distance)
        return self.embeddings[buckets].permute(2, 0, 1)[None]  # [1, heads, q, k]


def interpolate_table(table: torch.Tensor, target: int) -> torch.Tensor:
    """Resample a [n, d] position table to [target, d] like the official `ExpandableEmbedding`.

    The official code calls `tfa.image.interpolate_spline(order=3)`: a polyharmonic spline with
    phi(r) = r^3 plus a linear term, no regularisation, fitted at knots i/n and queried at j/target.
    This solves that same linear system in float64, so it reproduces the official resampling (to
    float precision) rather than approximating it with bicubic image resizing.
    """
    n = table.shape[0]
    if n == target:
        return table
    x = torch.arange(n, dtype=torch.float64, device=table.device) / n
    q = torch.arange(target, dtype=torch.float64, device=table.device) / target
    phi = lambda r: r.abs().clamp(min=1e-10) ** 3  # noqa: E731
    A = phi(x[:, None] - x[None, :])  # [n, n]
    P = torch.stack([torch.ones_like(x), x], dim=1)  # [n, 2]
    top = torch.cat([A, P], dim=1)
    bottom = torch.cat([P.T, torch.zeros(2, 2, dtype=torch.float64, device=table.device)], dim=1)
    system = torch.cat([top, bottom], dim=0)  # [n+2, n+2]
    rhs = torch.cat([table.double(), torch.zeros(2, table.shape[1], dtype=torch.float64, device=table.device)])
    coef = torch.linalg.solve(system, rhs)  # [n+2, d]
    Aq = phi(q[:, None] - x[None, :])
    Pq = torch.stack([torch.ones_like(q), q], dim=1)
    return (torch.cat([Aq, Pq], dim=1) @ coef).to(table.dtype)


class PositionTable(nn.Module):
    """One learnable table (official `ExpandableEmbedding`, variable `embeddings`)."""

    def __init__(self, buckets: int, dim: int, device=None, dtype=None) -> None:
        super().__init__()
        self.embeddings = nn.Parameter(torch.empty(buckets, dim, device=device, dtype=dtype))

    def forward(self, n: int) -> torch.Tensor:
        return interpolate_table(self.embeddings, n)  # [n, dim]


class SpatioTemporalPositions(nn.Module):
    """Factorised video positions: LN(temporal[t] + vertical[h] + horizontal[w]), added, dropout."""

    def __init__(self, dim: int, temporal: int, vertical: int, horizontal: int, *, eps: float = 1e-6,
                 dropout: float = 0.1, device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.temporal = PositionTable(temporal, dim, **dd)
        self.vertical = PositionTable(vertical, dim, **dd)
        self.horizontal = PositionTable(horizontal, dim, **dd)
        self.norm = nn.LayerNorm(dim, eps=eps, **dd)
        self.drop = nn.Dropout(dropout)

    @property
    def num_buckets(self) -> int:
        return self.temporal.embeddings.shape[0] * self.vertical.embeddings.shape[0] * self.horizontal.embeddings.shape[0]

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        t, h, w = grid
        pos = (self.temporal(t)[:, None, None] + self.vertical(h)[None, :, None]
               + self.horizontal(w)[None, None, :])  # [t, h, w, D], t-major flattening
        return self.drop(x + self.norm(pos.reshape(t * h * w, -1)))


class TemporalPositions(nn.Module):
    """1-D positions for audio and MA text: LN(table[i]) added, then dropout."""

    def __init__(self, dim: int, buckets: int, *, eps: float = 1e-6, dropout: float = 0.1,
                 device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.temporal = PositionTable(buckets, dim, **dd)
        self.norm = nn.LayerNorm(dim, eps=eps, **dd)
        self.drop = nn.Dropout(dropout)

    @property
    def num_buckets(self) -> int:
        return self.temporal.embeddings.shape[0]

    def forward(self, x: torch.Tensor, n: int) -> torch.Tensor:
        return self.drop(x + self.norm(self.temporal(n)))


def keep_count(rate: float, table_size: int) -> int:
    """Tokens DropToken keeps: int((1 - rate) x table size), as the official max_num_patches."""
    return int((1.0 - rate) * table_size + 1e-9)


def drop_tokens(x: torch.Tensor, keep: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DropToken: one random permutation shared by the batch, keep its first `keep` tokens.

    Pure function; the backbones call it only in training mode, after the position embeddings and
    before the AGG token. Fewer tokens than `keep` are all kept (shuffled, as the official code).
    """
    perm = torch.randperm(x.shape[1], generator=generator, device="cpu").to(x.device)
    return x[:, perm[:keep]]


def _bayer(i: torch.Tensor, j: torch.Tensor, bits: int = 2) -> torch.Tensor:
    """Ordered-dither rank of cell (i, j) in a 2^bits square tile: the lowest k ranks of any tile
    are spread evenly over it (rank < half is a checkerboard)."""
    x, y = i ^ j, i
    rank = torch.zeros_like(i)
    for b in range(bits):  # interleave the bits of (i xor j, i), most significant last, then reverse
        rank = (rank << 2) | (((x >> b) & 1) << 1) | ((y >> b) & 1)
    return rank


def even_subset(grid: tuple[int, ...], keep: int) -> torch.Tensor:
    """Indices (ascending, into the flattened grid) of a fixed, evenly spread `keep`-token subset.

    The inference token budget: DropToken's count with a deterministic subset instead of a random
    one. A 1-D grid (audio) takes evenly spaced tokens. A (t, h, w) grid (video) ranks each frame's
    tokens by a 4x4 ordered-dither tile shifted one column per frame, so every frame keeps an even
    spatial spread, consecutive frames keep complementary positions (a fraction of 0.5 is a
    checkerboard that alternates in time) and over time every row and column is kept about
    equally often; ties within a rank are broken evenly over time.
    """
    n = math.prod(grid)
    if not 0 < keep <= n:
        raise ValueError(f"keep must be in [1, {n}] for grid {grid}, got {keep}")
    if keep == n:
        return torch.arange(n)
    if len(grid) == 1:
        return torch.div(torch.arange(keep) * n, keep, rounding_mode="floor")
    t, h, w = grid
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    rank = _bayer(hh + (tt + 1) // 2, ww + tt // 2).reshape(t, h * w)  # 16 levels; the tile moves one row
    # or one column per frame, so parity flips every frame and rows/columns take turns being full
    onehot = F.one_hot(rank, 16)
    occurrence = ((onehot.cumsum(1) * onehot).sum(-1) - 1).double()  # k-th token of its rank in its frame
    frame_turn = (torch.arange(t, dtype=torch.float64) * 0.618034).remainder(1.0)[:, None]  # golden-ratio order
    key = rank.double() * (h * w + 1) + occurrence + 0.5 * frame_turn  # ties go round-robin over frames
    order = torch.argsort(key.flatten(), stable=True)
    return order[:keep].sort().values


def keep_budget(x: torch.Tensor, grid: tuple[int, ...], fraction: float) -> torch.Tensor:
    """Keep `fraction` of the tokens x [B, n, D] (n = prod(grid)) at inference: DropToken's count,
    int(fraction x n) (at least one), as the fixed `even_subset`. A fraction of 1 is a no-op."""
    if fraction >= 1.0:
        return x
    keep = max(1, keep_count(1.0 - fraction, x.shape[1]))
    return x[:, even_subset(grid, keep).to(x.device)]
