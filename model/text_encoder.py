"""The MS text backbone: word embeddings + T5-style encoder (official `text/factory.py`, `text/t5.py`)."""

from __future__ import annotations

import torch
from torch import nn

from .config import TextConfig
from .layers import RelativePositionBias, RMSNorm, Transformer, padding_bias

__all__ = ["TextBackbone"]


class TextBackbone(nn.Module):
    """ids -> [AGG(300) ; word embeddings] -> no-bias Dense + GELU -> dropout -> T5 encoder.

    T5 quirks kept on purpose: RMS norm before attention but a standard LayerNorm before the FFN,
    unscaled attention, no biases, and one relative-position bias table (held by layer 0 in the
    checkpoint) computed once with the padding mask and reused by every layer.
    """

    def __init__(self, cfg: TextConfig, device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d_embedding, **dd)
        self.embedding.weight.requires_grad_(not cfg.freeze_embeddings)
        self.agg_embedding = nn.Parameter(torch.empty(cfg.d_embedding, **dd))
        self.pre_proj = nn.Linear(cfg.d_embedding, cfg.d_model, bias=False, **dd)
        self.act = nn.GELU()
        self.drop = nn.Dropout(cfg.dropout)
        self.relative_bias = RelativePositionBias(cfg.num_heads, cfg.relative_buckets, cfg.max_distance, **dd)
        self.tx = Transformer(cfg.num_layers, cfg.d_model, cfg.num_heads, cfg.d_kv, cfg.d_ff,
                              dropout=cfg.dropout, eps=cfg.ln_eps, use_bias=False, attn_scale=1.0,
                              attn_norm=RMSNorm, ffn_norm=nn.LayerNorm, final_norm=RMSNorm, **dd)

    @property
    def out_dim(self) -> int:
        return self.cfg.d_model

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids int64 [B, N] (0 = padding) -> (pooled [B, D], tokens [B, N, D]); padded tokens keep outputs."""
        B, N = ids.shape
        x = self.embedding(ids)  # [B, N, E]
        x = torch.cat([self.agg_embedding.expand(B, 1, -1), x], dim=1)  # [B, 1+N, E]
        x = self.drop(self.act(self.pre_proj(x)))  # [B, 1+N, D]
        attend = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=ids.device), ids != 0], dim=1)
        bias = self.relative_bias(N + 1) + padding_bias(attend)  # [B, heads, 1+N, 1+N]
        x = self.tx(x, bias)
        return x[:, 0], x[:, 1:]
