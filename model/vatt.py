"""`VATT`: the backbones (MS or MA) plus the FAC heads, behind one encode_* API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .audio import AudioBackbone
from .config import VattConfig
from .heads import SPACES, FACHeads
from .model_directory import CLASSIFICATION, ModelDirectoryError, default_card, load_directory, write_directory
from .text_encoder import TextBackbone
from .universal import UniversalBackbone
from .video import VideoBackbone
from .weight_init import init_weights

__all__ = ["VATT", "l2_normalize"]


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit-normalise the last dim; the heads do not, the losses and retrieval do."""
    return F.normalize(x, dim=-1, eps=eps)


def _spaces(out: dict[str, torch.Tensor], normalize: bool) -> dict[str, torch.Tensor]:
    return {k: l2_normalize(v) for k, v in out.items()} if normalize else out


class VATT(nn.Module):
    """Video, audio and text encoders into the va (video-audio) and vt (video-text) spaces.

    `encode_video` / `encode_audio` / `encode_text` return dicts with the head outputs (`va`, `vt`)
    and the backbone's AGG features (`pooled`); `tokens` holds the per-token outputs.
    """

    def __init__(self, config: VattConfig, *, device=None, dtype=None, weight_init: str = "default") -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.config = config
        self.tokenizer: Any = None  # the tokenizer of the directory it was loaded from (saved with it)
        rate = config.drop_token_rate
        if config.arch == "ms":
            self.video = VideoBackbone(config.video, rate, **dd)
            self.audio = AudioBackbone(config.audio, rate, **dd)
            self.text = TextBackbone(config.text, **dd)
            dims = (self.video.out_dim, self.audio.out_dim, self.text.out_dim)
        else:
            self.backbone = UniversalBackbone(config.universal, rate, **dd)
            dims = (self.backbone.out_dim,) * 3
        self.heads = FACHeads(config.heads, *dims, **dd)
        if weight_init != "skip" and device != "meta" and not (isinstance(device, torch.device) and device.type == "meta"):
            self.init_weights(weight_init)

    def init_weights(self, mode: str = "default") -> None:
        """The official Keras defaults (`model/weight_init.py`)."""
        init_weights(self, mode)

    # --- encoders -------------------------------------------------------------------------------
    def encode_video(self, video: torch.Tensor, *, normalize: bool = False) -> dict[str, torch.Tensor]:
        """video float [B, 3, T, H, W] in [-1, 1] -> {"va": [B, d_va], "vt": [B, d_vt], "pooled", "tokens"}.
        `normalize`: the space vectors (va, vt) come unit-length, ready for cosine similarity."""
        if video.dim() != 5:
            raise ValueError(f"video must be [B, 3, T, H, W], got shape {list(video.shape)}")
        pooled, tokens = self.video(video) if self.config.arch == "ms" else self.backbone.forward_video(video)
        return {**_spaces(self.heads.video(pooled), normalize), "pooled": pooled, "tokens": tokens}

    def encode_audio(self, wave: torch.Tensor, *, normalize: bool = False) -> dict[str, torch.Tensor]:
        """wave float [B, L] in [-1, 1] -> {"va": [B, d_va], "pooled", "tokens"} (`normalize`: unit va)."""
        if wave.dim() != 2:
            raise ValueError(f"audio must be [B, L], got shape {list(wave.shape)}")
        pooled, tokens = self.audio(wave) if self.config.arch == "ms" else self.backbone.forward_audio(wave)
        return {**_spaces(self.heads.audio(pooled), normalize), "pooled": pooled, "tokens": tokens}

    def encode_text(self, ids: torch.Tensor, *, normalize: bool = False) -> dict[str, torch.Tensor]:
        """ids int64 [B, N] with 0 = padding -> {"vt": [B, d_vt], "pooled", "tokens"} (`normalize`: unit vt)."""
        if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"text ids must be integer [B, N], got {ids.dtype} {list(ids.shape)}")
        ids = ids.long()
        vocab = self.config.text_vocab_size
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
            raise ValueError(f"text ids must lie in [0, {vocab}), got [{int(ids.min())}, {int(ids.max())}]")
        pooled, tokens = self.text(ids) if self.config.arch == "ms" else self.backbone.forward_text(ids)
        return {**_spaces(self.heads.text(pooled), normalize), "pooled": pooled, "tokens": tokens}

    # --- model directories (the format is model/model_directory.py's) ---------------------------
    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, *, map_location: str | torch.device = "cpu",
                        precision: str = "fp32", keep_tokens: float = 1.0) -> VATT:
        """Load a model directory (written by `save_pretrained` or `vatt convert`) in eval mode; the
        model keeps the directory's tokenizer (`model.tokenizer`). `precision` and `keep_tokens` as in
        `model.load_pretrained`."""
        return load_directory(directory, cls._empty, map_location=map_location, precision=precision,
                              keep_tokens=keep_tokens)

    @classmethod
    def _empty(cls, config: VattConfig, doc: dict, path: Path) -> VATT:
        if doc.get("task") is not None:
            name = "BackboneClassifier" if doc["task"] == CLASSIFICATION else f"{doc['task']!r} model"
            raise ModelDirectoryError(f"{path.parent} holds a {name}, not a {cls.__name__}; "
                                      "load it with model.load_pretrained")
        return cls(config, weight_init="skip")

    def save_pretrained(self, directory: str | os.PathLike, *, tokenizer: Any = None, card: str | None = None,
                        metadata: dict | None = None) -> Path:
        """Write this model and its tokenizer (by default the one it was loaded with) as a model
        directory, atomically; the same model, tokenizer and card give byte-identical files."""
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        return write_directory(self, directory, tokenizer=tokenizer, metadata=metadata,
                               card=card if card is not None else default_card(self.config, tokenizer is not None))

    @property
    def space_dims(self) -> dict[str, int]:
        """Width of each common space ({"va": d_va, "vt": d_vt}): what a catalogue is opened with."""
        dims = {"va": self.config.heads.d_va, "vt": self.config.heads.d_vt}
        return {s: dims[s] for s in SPACES}

    def frozen_parameter_names(self) -> list[str]:
        """Parameters that never get gradients (the frozen word table when configured so)."""
        return [n for n, p in self.named_parameters() if not p.requires_grad]
