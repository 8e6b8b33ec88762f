"""`BackboneClassifier`: one VATT backbone (video ViT or audio WaT) plus a linear classifier.

The official fine-tuned checkpoints (`finetune/vit_*`, `finetune/wat_*`) hold exactly this: the
official `VideoModel`/`AudioModel` run the backbone, take its AGG output (`features_pooled`), apply
dropout (training only) and one Dense layer `cls`. Video datasets are single-label (softmax), AudioSet
is multi-label (sigmoid); `probabilities` applies the matching function.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from .audio import AudioBackbone
from .config import VattConfig
from .video import VideoBackbone
from .weight_init import init_weights

__all__ = ["BackboneClassifier", "MODALITIES"]

Modality = Literal["video", "audio"]
MODALITIES: tuple[str, ...] = ("video", "audio")


class BackboneClassifier(nn.Module):
    """`config.video` (or `config.audio`) backbone -> pooled AGG features -> `cls` Linear -> logits.

    Only the sub-config of `modality` is used (plus `drop_token_rate` and `input`); the rest of the
    VattConfig is carried so that a classifier directory reads like any other model directory.
    """

    def __init__(self, config: VattConfig, modality: Modality, num_classes: int, *, device=None, dtype=None,
                 weight_init: str = "default") -> None:
        super().__init__()
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        dd = dict(device=device, dtype=dtype)
        self.config = config
        self.modality: Modality = modality
        self.num_classes = num_classes
        if modality == "video":
            self.backbone: VideoBackbone | AudioBackbone = VideoBackbone(config.video, config.drop_token_rate, **dd)
        else:
            self.backbone = AudioBackbone(config.audio, config.drop_token_rate, **dd)
        self.cls = nn.Linear(self.backbone.out_dim, num_classes, **dd)
        on_meta = device == "meta" or (isinstance(device, torch.device) and device.type == "meta")
        if weight_init != "skip" and not on_meta:
            self.init_weights(weight_init)

    @torch.no_grad()
    def init_weights(self, mode: str = "default") -> None:
        """Backbone as VATT's (`model/weight_init.py`); classifier as the official heads: glorot kernel, and
        for audio the bias -log(num_classes - 1), so initial sigmoid outputs are about 1/num_classes."""
        init_weights(self, mode)
        if self.modality == "audio" and self.num_classes > 1:
            nn.init.constant_(self.cls.bias, -math.log(self.num_classes - 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled AGG features [B, D] (the official `features_pooled`)."""
        if self.modality == "video":
            if x.dim() != 5:
                raise ValueError(f"video must be [B, 3, T, H, W], got shape {list(x.shape)}")
        elif x.dim() != 2:
            raise ValueError(f"audio must be [B, L], got shape {list(x.shape)}")
        pooled, _ = self.backbone(x)
        return pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """video [B, 3, T, H, W] or audio [B, L], in [-1, 1] -> logits [B, num_classes]."""
        return self.cls(self.features(x))

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax for video (single-label datasets), sigmoid for audio (multi-label AudioSet)."""
        logits = self(x)
        return logits.softmax(-1) if self.modality == "video" else logits.sigmoid()
