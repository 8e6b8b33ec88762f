"""Labelled clips for supervised work: training samples and the official multi-view test.

* **Training** (``LabelledClips``): one random window inside the item's segment; video gets the
  pretraining augmentation (random resized crop, flip, colour jitter), audio is left as decoded
  (the official AudioSet recipe regularises with mixup instead).
* **Testing** (``item_views``): ``clips`` windows evenly spaced over the segment × ``crops``
  spatial crops (short side resized to the model's size; left/centre/right, or top/centre/bottom,
  along the long side), as the official fine-tuning evaluation (4 clips × 3 crops for Kinetics).
  Callers average the outputs of an item's views.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from model.config import InputConfig
from model.media import WindowSpec, probe, read_window
from training.data import Augment, ManifestError, ManifestItem, augment_video
from training.labels import LabelSet

__all__ = ["LabelledClips", "item_views", "spatial_crops", "view_starts"]


def view_starts(lo: float, hi: float, clip: float, n: int) -> list[float]:
    """``n`` window starts evenly spaced so that the windows cover ``[lo, hi]`` (centre if n = 1)."""
    last = max(0.0, hi - lo - clip)
    if n == 1:
        return [lo + last / 2]
    return [lo + last * k / (n - 1) for k in range(n)]


def spatial_crops(video: torch.Tensor, size: int, crops: int) -> list[torch.Tensor]:
    """Short side of ``video`` [3, T, H, W] resized to ``size``, then ``crops`` square crops along the long side."""
    _, _, h, w = video.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    video = F.interpolate(video, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    long_extra = (nh - size, nw - size)
    out = []
    for k in range(crops):
        frac = 0.5 if crops == 1 else k / (crops - 1)
        top, left = round(long_extra[0] * frac), round(long_extra[1] * frac)
        out.append(video[:, :, top : top + size, left : left + size].clamp(-1.0, 1.0))
    return out


def _spec(inp: InputConfig) -> WindowSpec:
    return WindowSpec.from_input(inp, native=True)


def _window(item: ManifestItem, start: float, duration: float, spec: WindowSpec, modality: str) -> torch.Tensor:
    """Video [3, T, H, W] (native size) or audio [L] of the window at ``start``."""
    w = read_window(item.path, min(start, max(0.0, duration - 1e-3)), spec)
    if modality == "video":
        if w.video is None:
            raise ManifestError(f"{item.path}: no video stream")
        return torch.from_numpy(w.video).permute(3, 0, 1, 2)
    if w.audio is None:
        raise ManifestError(f"{item.path}: no audio stream")
    audio = torch.from_numpy(np.ascontiguousarray(w.audio[: spec.num_samples]))
    return F.pad(audio, (0, spec.num_samples - audio.shape[0]))


def item_views(item: ManifestItem, modality: str, inp: InputConfig, *, clips: int, crops: int) -> torch.Tensor:
    """The multi-view test input of one item: [clips·crops, 3, T, S, S] video or [clips, L] audio."""
    spec = _spec(inp)
    duration = item.duration if item.duration is not None else probe(item.path).duration
    lo, hi = item.segment(duration)
    views = []
    for start in view_starts(lo, hi, spec.duration, clips):
        x = _window(item, start, hi, spec, modality)
        views.extend(spatial_crops(x, inp.image_size, crops) if modality == "video" else [x])
    return torch.stack(views)


class LabelledClips(Dataset):
    """(input, target) training samples; ``targets[i]`` is item i's class index or multi-hot row."""

    def __init__(self, items: Sequence[ManifestItem], targets: torch.Tensor, modality: str, inp: InputConfig, *,
                 augment: Augment = Augment(), seed: int = 0) -> None:
        self.items, self.targets, self.modality, self.inp = list(items), targets, modality, inp
        self.augment, self.seed, self.epoch = augment, seed, 0
        self.spec = _spec(inp)
        self._durations: dict[int, float] = {}

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random draws ``__getitem__`` makes."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.items[index]
        if item.duration is None and index not in self._durations:
            self._durations[index] = probe(item.path).duration
        return self.sample(item, index, self.epoch, self.targets[index], self._durations.get(index))

    def labelled_sample(self, labels: LabelSet, item: ManifestItem, index: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A shard stream's transform: the sample of ``item`` with its target, or None if it lacks a known class."""
        if not labels.labelled([item]):
            return None
        return self.sample(item, index, epoch, labels.targets([item])[0])

    def sample(self, item: ManifestItem, index: int, epoch: int, target: torch.Tensor,
               duration: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One random window of ``item`` (row ``index`` of its corpus) in ``epoch``, augmented, and ``target``."""
        rng = np.random.default_rng([self.seed, epoch, index])
        if item.duration is not None:
            duration = item.duration
        elif duration is None:
            duration = probe(item.path).duration
        lo, hi = item.segment(duration)
        start = lo + rng.uniform(0.0, max(0.0, hi - lo - self.spec.duration))
        x = _window(item, start, hi, self.spec, self.modality)
        if self.modality == "video":
            x = augment_video(x, rng, self.augment, self.inp.image_size)
        return x.contiguous(), target
