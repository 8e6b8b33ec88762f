"""WaT: the raw-waveform audio backbone (official `vatt/modeling/backbones/audio/autx1d.py`)."""

from __future__ import annotations

import torch
from torch import nn

from .config import AudioConfig
from .layers import TemporalPositions, Transformer, drop_tokens, keep_budget, keep_count

__all__ = ["AudioBackbone"]


class AudioBackbone(nn.Module):
    """128-sample patches -> [pre_proj] -> LN'd 1-D positions -> DropToken -> AGG -> encoder -> [post_proj]."""

    def __init__(self, cfg: AudioConfig, drop_token_rate: float = 0.0, device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.cfg = cfg
        self.drop_token_rate = drop_token_rate
        self.keep_tokens = 1.0  # inference token budget (fraction kept in eval mode); see model.inference.set_token_budget
        self.wave_to_patch = nn.Conv1d(1, cfg.d_model, kernel_size=cfg.patch_size, stride=cfg.patch_size, **dd)
        self.pre_proj = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_model, **dd), nn.GELU()) if cfg.pre_projection else None
        self.pos = TemporalPositions(cfg.d_model, cfg.temporal_buckets, eps=cfg.ln_eps, dropout=cfg.dropout, **dd)
        self.agg_embedding = nn.Parameter(torch.empty(cfg.d_model, **dd))
        self.tx = Transformer(cfg.num_layers, cfg.d_model, cfg.num_heads, cfg.d_kv, cfg.d_ff,
                              dropout=cfg.dropout, eps=cfg.ln_eps, **dd)
        self.post_proj = (nn.Sequential(nn.Linear(cfg.d_model, cfg.d_post_proj, **dd), nn.GELU())
                          if cfg.d_post_proj else None)

    @property
    def out_dim(self) -> int:
        return self.cfg.d_post_proj or self.cfg.d_model

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wave [B, L] in [-1, 1] -> (pooled [B, D], tokens [B, n, D]); a tail shorter than a patch is dropped."""
        if wave.dim() != 2 or wave.shape[1] < self.cfg.patch_size:
            raise ValueError(f"audio must be [B, L>={self.cfg.patch_size}], got {list(wave.shape)}")
        B = wave.shape[0]
        x = self.wave_to_patch(wave[:, None, :]).transpose(1, 2)  # [B, n, D]
        if self.pre_proj is not None:
            x = self.pre_proj(x)
        x = self.pos(x, x.shape[1])
        if self.training and self.drop_token_rate > 0:
            x = drop_tokens(x, keep_count(self.drop_token_rate, self.pos.num_buckets))
        elif not self.training:
            x = keep_budget(x, (x.shape[1],), self.keep_tokens)
        x = torch.cat([self.agg_embedding.expand(B, 1, -1), x], dim=1)
        x = self.tx(x)
        if self.post_proj is not None:
            x = self.post_proj(x)
        return x[:, 0], x[:, 1:]
