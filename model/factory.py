"""One call for users, in open_clip's shape: a model directory -> (model, preprocess_train,
preprocess_val) by `create_model_and_transforms`, and its tokenizer by `get_tokenizer`. `preprocess`
hides the clip geometry (`WindowSpec`): it turns a file, or frames and a waveform already decoded, into
exactly the tensors the model was trained on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import av
import numpy as np
import torch

from ._media_decode import resize_crop
from .config import VattConfig
from .media import WindowSpec, iter_windows
from .text import SentencePieceTokenizer, WordTokenizer, load_tokenizer
from .vatt import VATT

__all__ = ["Preprocess", "create_model_and_transforms", "get_tokenizer"]


@dataclass(frozen=True)
class Preprocess:
    """Media -> model inputs in the model's window geometry (frames, fps, size, sample rate)."""

    spec: WindowSpec

    @classmethod
    def for_config(cls, config: VattConfig, *, stride: float | None = None) -> Preprocess:
        """`stride`: seconds between window starts of a file (default: back to back)."""
        return cls(WindowSpec.from_input(config.input, stride=stride))

    def __call__(self, source: str | os.PathLike, *, video: bool = True, audio: bool = True) -> dict[str, torch.Tensor]:
        """A media file -> {"video": [n, 3, T, H, W], "audio": [n, L], "start": [n], "end": [n]}, one row
        per window (the decoder's rule: the last window is padded); keys only for the streams asked for."""
        windows = list(iter_windows(source, self.spec, video=video, audio=audio))
        out = {"start": torch.tensor([w.start for w in windows], dtype=torch.float64),
               "end": torch.tensor([w.end for w in windows], dtype=torch.float64)}
        if video and windows and windows[0].video is not None:
            out["video"] = torch.stack([w.video_tensor() for w in windows])
        if audio and windows and windows[0].audio is not None:
            out["audio"] = torch.stack([w.audio_tensor() for w in windows])
        return out

    def frames(self, frames: np.ndarray) -> torch.Tensor:
        """Decoded RGB frames uint8 [T, H, W, 3], already at the model's fps -> one clip [3, T, S, S]
        (T = the model's num_frames: a shorter clip repeats its last frame, a longer one is cut),
        scaled and centre-cropped by the same libswscale path as a file's frames."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
            raise ValueError(f"frames must be uint8 [T, H, W, 3] with T >= 1, got {frames.dtype} {list(frames.shape)}")
        n = self.spec.num_frames
        frames = frames[:n] if len(frames) >= n else np.concatenate([frames, frames[-1:].repeat(n - len(frames), 0)])
        h, w = frames.shape[1:3]
        imgs = [resize_crop(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24"), self.spec.size, (w, h))
                for f in frames]
        clip = np.stack(imgs).astype(np.float32) * np.float32(2.0 / 255.0) - 1.0  # [T, S, S, 3] in [-1, 1]
        return torch.from_numpy(clip).permute(3, 0, 1, 2).contiguous()

    def waveform(self, wave: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A mono waveform float [L] in [-1, 1] at the model's sample rate -> one clip [num_samples]
        (zero-padded or cut, as the decoder pads a file's last window)."""
        x = torch.as_tensor(np.asarray(wave, np.float32))
        if x.dim() != 1:
            raise ValueError(f"waveform must be mono float [L], got shape {list(x.shape)}")
        n = self.spec.num_samples
        return torch.nn.functional.pad(x[:n], (0, max(0, n - len(x)))).clamp(-1.0, 1.0)


def create_model_and_transforms(
    directory: str | os.PathLike,
    *,
    map_location: str | torch.device = "cpu",
    stride: float | None = None,
) -> tuple[VATT, Preprocess, Preprocess]:
    """(model in eval mode, preprocess_train, preprocess_val) from one model directory, as open_clip.

        model, _, preprocess = create_model_and_transforms("runs/x/model")
        tokenizer = get_tokenizer("runs/x/model")
        clips = preprocess("clip.mp4")
        v = model.encode_video(clips["video"], normalize=True)["vt"]
        t = model.encode_text(tokenizer(["a dog"]), normalize=True)["vt"]
        scores = t @ v.T

    Both transforms cut windows in the model's geometry; VATT's random augmentation (crop, flip,
    colour) runs on those windows in `training.data`, seeded per item, so preprocess_train is that
    same geometry. The model keeps its tokenizer too (`model.tokenizer`).
    """
    model = VATT.from_pretrained(directory, map_location=map_location)
    preprocess = Preprocess.for_config(model.config, stride=stride)
    return model, preprocess, preprocess


def get_tokenizer(directory: str | os.PathLike) -> WordTokenizer | SentencePieceTokenizer:
    """The tokenizer saved in a model directory; call it on a list of strings for the id tensor [B, N]."""
    return load_tokenizer(directory)
