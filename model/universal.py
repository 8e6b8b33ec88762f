"""VATT-MA: one Transformer shared by all modalities (official `backbones/unified/uvatt.py`)."""

from __future__ import annotations

import torch
from torch import nn

from .config import UniversalConfig
from .layers import SpatioTemporalPositions, TemporalPositions, Transformer, drop_tokens, keep_budget, keep_count, padding_bias

__all__ = ["UniversalBackbone"]


def _dense_gelu(d_in: int, d_out: int, **dd) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out, **dd), nn.GELU())


class UniversalBackbone(nn.Module):
    """Per modality: raw tokenizer -> pre_proj + GELU -> LN'd positions -> [DropToken] -> AGG -> shared
    encoder -> post_proj + GELU on every token. Each modality runs separately through the shared weights."""

    def __init__(self, cfg: UniversalConfig, drop_token_rate: float = 0.0, device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.cfg = cfg
        self.drop_token_rate = drop_token_rate
        self.keep_tokens = 1.0  # inference token budget for video and audio; see model.inference.set_token_budget
        d = cfg.d_model
        vp = tuple(cfg.video_patch_size)
        self.video_patch_size = vp
        self.video_to_patch = nn.Conv3d(3, d, kernel_size=vp, stride=vp, **dd)
        self.wave_to_patch = nn.Conv1d(1, d, kernel_size=cfg.audio_patch_size, stride=cfg.audio_patch_size, **dd)
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d_embedding, **dd)
        self.embedding.weight.requires_grad_(not cfg.freeze_embeddings)
        self.pre_proj = nn.ModuleDict({
            "video": _dense_gelu(d, d, **dd), "audio": _dense_gelu(d, d, **dd), "text": _dense_gelu(cfg.d_embedding, d, **dd),
        })
        kw = dict(eps=cfg.ln_eps, dropout=cfg.dropout, **dd)
        self.pos = nn.ModuleDict({
            "video": SpatioTemporalPositions(d, cfg.video_temporal_buckets, cfg.video_spatial_buckets,
                                             cfg.video_spatial_buckets, **kw),
            "audio": TemporalPositions(d, cfg.audio_temporal_buckets, **kw),
            "text": TemporalPositions(d, cfg.text_temporal_buckets, **kw),
        })
        self.agg_embedding = nn.ParameterDict({m: nn.Parameter(torch.empty(d, **dd)) for m in ("video", "audio", "text")})
        self.tx = Transformer(cfg.num_layers, d, cfg.num_heads, cfg.d_kv, cfg.d_ff, dropout=cfg.dropout, eps=cfg.ln_eps, **dd)
        self.post_proj = nn.ModuleDict({m: _dense_gelu(d, cfg.d_post_proj, **dd) for m in ("video", "audio", "text")})

    @property
    def out_dim(self) -> int:
        return self.cfg.d_post_proj

    def _encode(self, modality: str, x: torch.Tensor, bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        B = x.shape[0]
        x = torch.cat([self.agg_embedding[modality].expand(B, 1, -1), x], dim=1)
        x = self.post_proj[modality](self.tx(x, bias))
        return x[:, 0], x[:, 1:]

    def _drop(self, x: torch.Tensor, modality: str, grid: tuple[int, ...]) -> torch.Tensor:
        if self.training and self.drop_token_rate > 0:
            x = drop_tokens(x, keep_count(self.drop_token_rate, self.pos[modality].num_buckets))
        elif not self.training:
            x = keep_budget(x, grid, self.keep_tokens)
        return x

    def forward_video(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """video [B, 3, T, H, W] -> (pooled [B, P], tokens [B, n, P])."""
        x = self.video_to_patch(video)  # [B, D, t, h, w]
        grid = tuple(x.shape[2:])
        x = self.pre_proj["video"](x.flatten(2).transpose(1, 2))
        x = self._drop(self.pos["video"](x, grid), "video", grid)
        return self._encode("video", x)

    def forward_audio(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wave [B, L] -> (pooled [B, P], tokens [B, n, P])."""
        x = self.pre_proj["audio"](self.wave_to_patch(wave[:, None, :]).transpose(1, 2))
        x = self._drop(self.pos["audio"](x, x.shape[1]), "audio", (x.shape[1],))
        return self._encode("audio", x)

    def forward_text(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids [B, N] (0 = padding) -> (pooled [B, P], tokens [B, N, P]); positions 0..N-1 go to the words."""
        B, N = ids.shape
        x = self.pre_proj["text"](self.embedding(ids))
        x = self.pos["text"](x, N)
        attend = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=ids.device), ids != 0], dim=1)
        return self._encode("text", x, padding_bias(attend))
