"""ViTx3D: the video backbone (official `vatt/modeling/backbones/video/vitx3d.py`)."""

from __future__ import annotations

import torch
from torch import nn

from .config import VideoConfig
from .layers import SpatioTemporalPositions, Transformer, drop_tokens, keep_budget, keep_count

__all__ = ["VideoBackbone"]


class VideoBackbone(nn.Module):
    """Voxel patches -> [pre_proj] -> LN'd factorised positions -> DropToken -> AGG -> encoder -> [post_proj]."""

    def __init__(self, cfg: VideoConfig, drop_token_rate: float = 0.0, device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.cfg = cfg
        self.drop_token_rate = drop_token_rate
        self.keep_tokens = 1.0  # inference token budget (fraction kept in eval mode); see model.inference.set_token_budget
        self.patch_size = tuple(cfg.patch_size)
        self.voxel_to_patch = nn.Conv3d(3, cfg.d_model, kernel_size=self.patch_size, stride=self.patch_size, **dd)
        self.pre_proj = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_model, **dd), nn.GELU()) if cfg.pre_projection else None
        self.pos = SpatioTemporalPositions(cfg.d_model, cfg.temporal_buckets, cfg.vertical_buckets,
                                           cfg.horizontal_buckets, eps=cfg.ln_eps, dropout=cfg.dropout, **dd)
        self.agg_embedding = nn.Parameter(torch.empty(cfg.d_model, **dd))
        self.tx = Transformer(cfg.num_layers, cfg.d_model, cfg.num_heads, cfg.d_kv, cfg.d_ff,
                              dropout=cfg.dropout, eps=cfg.ln_eps, **dd)
        self.post_proj = (nn.Sequential(nn.Linear(cfg.d_model, cfg.d_post_proj, **dd), nn.GELU())
                          if cfg.d_post_proj else None)

    @property
    def out_dim(self) -> int:
        return self.cfg.d_post_proj or self.cfg.d_model

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """video [B, 3, T, H, W] in [-1, 1] -> (pooled [B, D], tokens [B, n, D]).

        In eval mode with the full token budget, tokens come back in (t, h, w) order, reshapeable to
        the patch grid; a budget < 1 returns the kept subset, still in that order.
        """
        pt, ph, pw = self.patch_size
        B, C, T, H, W = video.shape
        if C != 3 or T < pt or H < ph or W < pw:
            raise ValueError(f"video must be [B, 3, T>={pt}, H>={ph}, W>={pw}], got {list(video.shape)}")
        x = self.voxel_to_patch(video)  # [B, D, t, h, w]
        grid = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)  # [B, t*h*w, D]
        if self.pre_proj is not None:
            x = self.pre_proj(x)
        x = self.pos(x, grid)
        if self.training and self.drop_token_rate > 0:
            x = drop_tokens(x, keep_count(self.drop_token_rate, self.pos.num_buckets))
        elif not self.training:
            x = keep_budget(x, grid, self.keep_tokens)
        x = torch.cat([self.agg_embedding.expand(B, 1, -1), x], dim=1)  # [B, 1+n, D]
        x = self.tx(x)
        if self.post_proj is not None:
            x = self.post_proj(x)
        return x[:, 0], x[:, 1:]
