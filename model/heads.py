"""FAC common-space heads (official `vatt/modeling/heads/bridge.py::FACHead`, `mlp_lib.py::ReluDenseBN`).

Layer order follows the code, not the paper: audio and text projections are single Dense layers
with bias and no BN, and video->vt starts with a ReLU applied to the video va embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import HeadConfig

__all__ = ["FACHeads", "ReluDenseBN", "SPACES", "MODALITY_SPACES"]

SPACES: tuple[str, ...] = ("va", "vt")  # the common spaces: video-audio, video-text
# The spaces each modality's embedding lands in (what encode_* returns besides pooled/tokens).
MODALITY_SPACES: dict[str, tuple[str, ...]] = {"video": ("va", "vt"), "audio": ("va",), "text": ("vt",)}


class ReluDenseBN(nn.Module):
    """[BN (pre_bn)] -> ReLU -> Dense (no bias) -> BN (official `ReluDenseBN`)."""

    def __init__(self, d_in: int, d_out: int, *, pre_bn: bool, eps: float, momentum: float, device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.pre_bn = nn.BatchNorm1d(d_in, eps=eps, momentum=momentum, **dd) if pre_bn else None
        self.act = nn.ReLU()
        self.dense = nn.Linear(d_in, d_out, bias=False, **dd)
        self.bn = nn.BatchNorm1d(d_out, eps=eps, momentum=momentum, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_bn is not None:
            x = self.pre_bn(x)
        return self.bn(self.dense(self.act(x)))


class FACHeads(nn.Module):
    """Projections into the video-audio (va) and video-text (vt) spaces; outputs are not normalised."""

    def __init__(self, cfg: HeadConfig, d_video: int, d_audio: int, d_text: int, device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        bn = dict(eps=cfg.bn_eps, momentum=cfg.bn_momentum, **dd)
        self.vid_to_hid = nn.Linear(d_video, cfg.d_va, bias=False, **dd)
        self.hid_to_va = ReluDenseBN(cfg.d_va, cfg.d_va, pre_bn=True, **bn)
        self.va_to_vt = ReluDenseBN(cfg.d_va, cfg.d_vt, pre_bn=False, **bn)
        self.aud_to_va = nn.Linear(d_audio, cfg.d_va, **dd)
        self.txt_to_vt = nn.Linear(d_text, cfg.d_vt, **dd)

    def video(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        va = self.hid_to_va(self.vid_to_hid(pooled))  # [B, d_va]
        return {"va": va, "vt": self.va_to_vt(va)}  # vt: [B, d_vt]

    def audio(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"va": self.aud_to_va(pooled)}

    def text(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"vt": self.txt_to_vt(pooled)}
