"""Training data: JSON Lines manifests, the clip dataset with VATT's augmentation, the sampler.

**Manifest** (one JSON object per line; blank lines and ``#`` comments are skipped)::

    {"path": "clips/a.mp4", "transcript": "clips/a.vtt", "labels": {"shape": "circle"}}
    {"path": "/data/b.mkv", "transcript": [{"start": 0.0, "end": 2.5, "text": "hello"}]}
    {"path": "audioset/c.mp4"}                  # no speech: text_mask = 0

``path`` and a transcript path are relative to the manifest's folder unless absolute. Optional
``duration`` (seconds) saves a probe; optional ``id`` defaults to the path. Optional ``start`` and
``end`` (seconds) make the item that segment of the file (every reader cuts its windows inside
it); ``captions`` are retrieval queries for the segment; ``split`` is a name ("train", "test") or
an object of split number -> name (UCF101/HMDB51 splits 1-3); ``fold`` is ESC-50's fold. A
``labels`` value may be a list (multi-label sets such as AudioSet); it is kept joined by
``LABEL_SEP``.

**Randomness.** Every random choice for item ``i`` in epoch ``e`` (window start, crop, flip,
jitter, noise) comes from a generator seeded by ``(seed, e, i)``, so a sample is the same
whichever rank or worker loads it. That is what makes a 2-process run see exactly the data of a
1-process run and a resumed run see exactly the data it would have seen. Worker processes are
additionally seeded ``seed + 1000·rank + worker`` for any library that draws from a global RNG.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from model.config import InputConfig
from model.media import MediaBytes, Window, WindowSpec, cut_window, probe, read_window
from training.colour import adjust_hue
from training.captions import Cue, cues_from_json, nearest_captions, read_captions
from training.errors import TrainingError
from training.workers import worker_context

__all__ = ["LABEL_SEP", "Augment", "ClipDataset", "augment_video", "DecodedClip", "GlobalBatchSampler", "ManifestError",
           "ManifestItem", "colour_jitter",
           "decode_clip", "make_item", "manifest_rows", "random_resized_crop", "read_manifest", "seed_worker", "transcript_texts"]

log = logging.getLogger(__name__)
_KEYS = {"path", "transcript", "labels", "duration", "id", "start", "end", "captions", "split", "fold"}
LABEL_SEP = "|"  # multi-label values are kept as one string joined by this


class ManifestError(TrainingError, ValueError):
    """A manifest line is malformed or points at something that is not there."""


@dataclass(frozen=True)
class ManifestItem:
    """One clip source: media file (or its bytes, from a shard), parsed transcript (None = no speech), labels."""

    path: Path | MediaBytes
    cues: tuple[Cue, ...] | None
    labels: dict[str, str] = field(default_factory=dict)
    duration: float | None = None
    id: str = ""
    start: float | None = None  # segment of the file, seconds
    end: float | None = None
    captions: tuple[str, ...] = ()
    split: str | dict[str, str] | None = None
    fold: int | None = None

    def segment(self, duration: float) -> tuple[float, float]:
        """``(start, end)`` of the item inside a file of ``duration`` seconds."""
        lo = 0.0 if self.start is None else max(0.0, min(self.start, duration))
        hi = duration if self.end is None else max(lo, min(self.end, duration))
        return lo, hi

    def label_values(self, name: str) -> list[str]:
        """The values of label ``name`` (several for a multi-label item; none if absent)."""
        value = self.labels.get(name)
        return [] if not value else value.split(LABEL_SEP)


def manifest_rows(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for each line of a manifest: JSON objects with a string ``path`` and known keys.

    Transcripts are not read here; ``read_manifest`` parses them, ``vatt datasets shard`` copies them.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("path"), str):
                raise ManifestError(f"{where}: each line must be an object with a string 'path'")
            unknown = set(row) - _KEYS
            if unknown:
                raise ManifestError(f"{where}: unknown keys {sorted(unknown)}; accepted: {sorted(_KEYS)}")
            yield where, row


def make_item(row: dict[str, Any], media: Path | MediaBytes, cues: tuple[Cue, ...] | None, where: str) -> ManifestItem:
    """A ``ManifestItem`` from a manifest row (or a shard sample's json), its media and parsed transcript."""
    labels = row.get("labels", {})
    if not isinstance(labels, dict):
        raise ManifestError(f"{where}: 'labels' must be an object of attribute -> value")
    duration = row.get("duration")
    start, end = row.get("start"), row.get("end")
    if start is not None and end is not None and not float(end) > float(start):
        raise ManifestError(f"{where}: 'end' ({end}) must be after 'start' ({start})")
    captions = row.get("captions", [])
    if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        raise ManifestError(f"{where}: 'captions' must be a list of strings")
    split = row.get("split")
    if split is not None and not isinstance(split, (str, dict)):
        raise ManifestError(f"{where}: 'split' must be a string or an object of split -> name")
    return ManifestItem(
        media,
        cues,
        {str(k): LABEL_SEP.join(map(str, v)) if isinstance(v, list) else str(v) for k, v in labels.items()},
        None if duration is None else float(duration),
        str(row.get("id", row["path"])),
        start=None if start is None else float(start),
        end=None if end is None else float(end),
        captions=tuple(captions),
        split={str(k): str(v) for k, v in split.items()} if isinstance(split, dict) else split,
        fold=None if row.get("fold") is None else int(row["fold"]),
    )


def read_manifest(path: str | Path) -> list[ManifestItem]:
    """Parse a JSON Lines manifest; errors name the file, the line and what is accepted."""
    root, items = Path(path).parent, []
    for where, row in manifest_rows(path):
        media = Path(row["path"]) if Path(row["path"]).is_absolute() else root / row["path"]
        transcript = row.get("transcript")
        if transcript is None:
            cues = None
        elif isinstance(transcript, str):
            cues = tuple(read_captions(transcript if Path(transcript).is_absolute() else root / transcript))
        elif isinstance(transcript, list):
            cues = tuple(cues_from_json(transcript, where))
        else:
            raise ManifestError(f"{where}: 'transcript' must be a .vtt/.srt path or a list of {{start, end, text}}")
        items.append(make_item(row, media, cues, where))
    if not items:
        raise ManifestError(f"{path}: no items")
    return items


def transcript_texts(items: Sequence[ManifestItem]) -> Iterator[str]:
    """Every caption of every item (for training a tokenizer)."""
    for item in items:
        for cue in item.cues or ():
            yield cue.text


@dataclass(frozen=True)
class Augment:
    """Training augmentation (spec §5 / paper A.2.1); ``None`` fields switch a step off."""

    crop_area: tuple[float, float] | None = (0.08, 1.0)  # random resized crop: area fraction
    crop_ratio: tuple[float, float] = (0.5, 2.0)  # ... and aspect ratio range
    flip: bool = True
    brightness: float | None = 32 / 255  # additive, in [0, 1] pixel units
    saturation: float | None = 0.4  # factor in [1 - s, 1 + s]
    contrast: float | None = 0.4
    hue: float | None = 0.2  # fraction of a full turn, shifted in HSV (tf.image.adjust_hue)
    jitter_prob: float = 0.8  # colour jitter is applied to this fraction of clips (official: 0.8)
    audio_noise: float | None = 0.01  # Gaussian std = audio_noise * max|x|
    grayscale: float | None = None  # probability of a grey clip (luma); not in the paper's recipe


def random_resized_crop(h: int, w: int, rng: np.random.Generator, area: tuple[float, float],
                        ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """Inception-style crop box ``(top, left, height, width)``: 10 tries, then a centre crop."""
    for _ in range(10):
        target = h * w * rng.uniform(*area)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


@dataclass(frozen=True)
class DecodedClip:
    """A whole item decoded once, so training can cut any window without touching the file again.

    Frames stay uint8 at the stream's own rate and resolution (4x smaller than float32);
    ``frame_fps`` is the rate they were sampled at, ``audio`` is mono at the model's rate.
    """

    frames: np.ndarray | None  # uint8 [N, H, W, 3]
    frame_fps: float
    audio: np.ndarray | None  # float32 [L]
    duration: float

    @property
    def nbytes(self) -> int:
        return (0 if self.frames is None else self.frames.nbytes) + (0 if self.audio is None else self.audio.nbytes)

    def window(self, start: float, spec: WindowSpec) -> Window:
        """The window ``read_window(path, start, spec)`` would decode (``spec.size`` must be None).

        Frames follow the decoder's rule, the last frame at or before each target time
        ``start + i/fps`` (within its 1 ms tolerance); targets past the content are zeros, as the
        decoder pads them. Audio equals the streaming decode (``iter_windows``); a seeking
        ``read_window`` can differ where the codec synthesises noise (AAC PNS restarts its
        generator after a seek).
        """
        return cut_window(self.frames, self.frame_fps, self.audio, self.duration, start, spec)


def decode_clip(path: str | Path, sample_rate: int) -> DecodedClip:
    """Decode every frame (at the stream's average rate) and the waveform of one media file."""
    info = probe(path)
    fps = info.fps if info.fps and info.fps > 0 else 30.0
    n = max(1, math.ceil(info.duration * fps - 1e-6))
    spec = WindowSpec(num_frames=n, fps=fps, size=None, sample_rate=sample_rate)
    window = read_window(path, 0.0, spec)
    frames = None
    if window.video is not None:
        frames = np.rint((window.video + 1.0) * 127.5).astype(np.uint8)  # exact inverse of the decoder's x * 2/255 - 1
    audio = None if window.audio is None else np.ascontiguousarray(window.audio[: round(info.duration * sample_rate)])
    return DecodedClip(frames, fps, audio, info.duration)


_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _luma(x: torch.Tensor) -> torch.Tensor:
    """[1, T, H, W] luma (YIQ's Y) of ``x`` [3, T, H, W]; its weights sum to 1, so [-1, 1] stays [-1, 1]."""
    return torch.einsum("c,cthw->thw", _YIQ[0], x)[None]


def colour_jitter(x: torch.Tensor, rng: np.random.Generator, aug: Augment) -> torch.Tensor:
    """Brightness, saturation, contrast, hue on ``x`` [3, T, H, W] in [0, 1]; clipped to [0, 1].

    Fixed order (DMVR's default colour augmentation order). Hue is shifted by δ ~ U(−hue, hue)
    turns in HSV, as ``tf.image.adjust_hue`` does in the official pipeline.
    """
    if aug.brightness:
        x = x + rng.uniform(-aug.brightness, aug.brightness)
    grey = _luma(x)
    if aug.saturation:
        x = grey + (x - grey) * rng.uniform(1 - aug.saturation, 1 + aug.saturation)
    if aug.contrast:
        mean = x.mean(dim=(2, 3), keepdim=True)  # per frame and channel, as tf.image.adjust_contrast
        x = mean + (x - mean) * rng.uniform(1 - aug.contrast, 1 + aug.contrast)
    if aug.hue:
        x = adjust_hue(x, rng.uniform(-aug.hue, aug.hue))
    return x.clamp(0.0, 1.0)


def augment_video(video: torch.Tensor, rng: np.random.Generator, aug: Augment, size: int) -> torch.Tensor:
    """Random resized crop to ``size``², flip, colour jitter, grey on ``video`` [3, T, H, W] in [-1, 1]."""
    _, _, h, w = video.shape
    if aug.crop_area is not None:
        top, left, ch, cw = random_resized_crop(h, w, rng, aug.crop_area, aug.crop_ratio)
    else:
        side = min(h, w)
        top, left, ch, cw = (h - side) // 2, (w - side) // 2, side, side
    video = video[:, :, top : top + ch, left : left + cw]
    video = F.interpolate(video, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if aug.flip and rng.uniform() < 0.5:
        video = video.flip(-1)
    if (aug.brightness or aug.saturation or aug.contrast or aug.hue) and rng.uniform() < aug.jitter_prob:
        video = colour_jitter((video + 1) / 2, rng, aug) * 2 - 1
    if aug.grayscale and rng.uniform() < aug.grayscale:
        video = _luma(video).expand(3, -1, -1, -1)
    return video.clamp(-1.0, 1.0)


class ClipDataset(Dataset):
    """Random 3.2 s windows of manifest items as VATT training samples.

    Each sample is a dict: ``video`` float32 [3, T, S, S] in [-1, 1], ``audio`` float32 [L],
    ``text`` int64 [P, N] (P = 5 captions nearest the window), ``caption_mask`` bool [P],
    ``text_mask`` and ``audio_mask`` float32 scalars (0 for clips without speech/audio),
    ``index`` int64. With ``train=False`` the window is the item's centre and nothing is random.

    ``preload()`` decodes every item once into memory (``DecodedClip``); windows are then cut
    from RAM instead of seeking and decoding the file per sample. Same samples, same random
    draws; it pays off when decoding dominates the step (small models, small corpora).
    """

    def __init__(self, items: Sequence[ManifestItem], *, num_frames: int, fps: float, image_size: int,
                 sample_rate: int, tokenizer: Any, num_captions: int = 5, train: bool = True,
                 augment: Augment = Augment(), seed: int = 0) -> None:
        self.items = list(items)
        self.tokenizer = tokenizer
        self.num_captions, self.train, self.augment, self.seed = num_captions, train, augment, seed
        self.image_size = image_size
        # Training reads native resolution and crops itself; evaluation lets media centre-crop.
        inp = InputConfig(num_frames=num_frames, fps=fps, image_size=image_size, sample_rate=sample_rate)
        self.spec = WindowSpec.from_input(inp, native=train)
        self.epoch = 0
        self._durations: dict[int, float] = {}
        self._decoded: list[DecodedClip] | None = None

    def preload(self, workers: int = 1) -> int:
        """Decode every item into memory (in ``workers`` processes); returns the bytes held.

        Call before the DataLoader starts: forked workers share the decoded arrays. Training
        datasets only: evaluation windows are resized by the decoder itself.
        """
        if not self.train:
            raise ValueError("preload() is for training datasets (train=True); evaluation decodes centre-cropped windows")
        t0 = time.perf_counter()
        paths = [item.path for item in self.items]
        rates = [self.spec.sample_rate] * len(paths)
        if workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(workers, mp_context=worker_context()) as pool:
                self._decoded = list(pool.map(decode_clip, paths, rates, chunksize=16))
        else:
            self._decoded = [decode_clip(p, r) for p, r in zip(paths, rates)]
        for i, clip in enumerate(self._decoded):
            if clip.frames is None:
                raise ManifestError(f"{self.items[i].path}: no video stream; VATT training needs video")
            self._durations[i] = clip.duration
        held = sum(c.nbytes for c in self._decoded)
        log.info("decoded %d items into memory (%.0f MB) in %.1f s", len(paths), held / 2**20, time.perf_counter() - t0)
        return held

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random draws ``__getitem__`` makes (call before making workers)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def _duration(self, index: int) -> float:
        item = self.items[index]
        if item.duration is not None:
            return item.duration
        if index not in self._durations:
            self._durations[index] = probe(item.path).duration
        return self._durations[index]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.sample(self.items[index], index, self.epoch)

    def sample(self, item: ManifestItem, index: int, epoch: int) -> dict[str, torch.Tensor]:
        """The training sample of ``item`` (``index`` in its corpus) in ``epoch``; shard streams call this too."""
        rng = np.random.default_rng([self.seed, epoch, index])
        in_list = index < len(self.items) and item is self.items[index]
        duration = self._duration(index) if in_list else item.duration if item.duration is not None else probe(item.path).duration
        lo, hi = item.segment(duration)
        duration = hi  # windows stay inside the item's segment
        slack = max(0.0, hi - lo - self.spec.duration)
        start = lo + (rng.uniform(0.0, slack) if self.train else slack / 2)
        at = min(start, max(0.0, duration - 1e-3))
        if self._decoded is not None:
            window = self._decoded[index].window(at, self.spec)
        else:
            window = read_window(item.path, at, self.spec)
        if window.video is None:
            raise ManifestError(f"{item.path}: no video stream; VATT training needs video")
        video = torch.from_numpy(window.video).permute(3, 0, 1, 2)  # [3, T, H, W] in [-1, 1]
        video = self._augment_video(video, rng) if self.train else video
        n_samples = self.spec.num_samples
        if window.audio is None:
            audio, audio_mask = torch.zeros(n_samples), 0.0
        else:
            audio, audio_mask = torch.from_numpy(window.audio[:n_samples]), 1.0
            audio = F.pad(audio, (0, n_samples - audio.shape[0]))
            if self.train and self.augment.audio_noise:
                noise = torch.from_numpy(rng.standard_normal(n_samples).astype(np.float32))
                audio = audio + noise * (self.augment.audio_noise * audio.abs().max())
        texts, caption_mask = nearest_captions(item.cues or (), start, start + self.spec.duration, self.num_captions)
        return {
            "video": video.contiguous(),
            "audio": audio,
            "text": self.tokenizer.encode(texts),
            "caption_mask": torch.tensor(caption_mask),
            "text_mask": torch.tensor(float(any(caption_mask))),
            "audio_mask": torch.tensor(audio_mask),
            "index": torch.tensor(index),
        }

    def _augment_video(self, video: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return augment_video(video, rng, self.augment, self.image_size)


class GlobalBatchSampler(Sampler[list[int]]):
    """Per-rank batches cut from one shuffled global batch, resumable at any batch.

    Epoch ``e`` shuffles all items with seed ``(seed, e)``; global batch k is
    ``perm[k·G : (k+1)·G]`` with G = batch_size × world_size, and rank r takes its r-th slice
    of ``batch_size``. The ranks' batches concatenated are exactly a 1-process run's batch of
    size G. Incomplete global batches are dropped.
    """

    def __init__(self, num_items: int, batch_size: int, *, world_size: int = 1, rank: int = 0, seed: int = 0,
                 shuffle: bool = True) -> None:
        self.num_items, self.batch_size, self.world_size, self.rank = num_items, batch_size, world_size, rank
        self.seed, self.shuffle = seed, shuffle
        self.batches_per_epoch = num_items // (batch_size * world_size)
        if self.batches_per_epoch == 0:
            raise ValueError(f"{num_items} items cannot fill one global batch of {batch_size} x {world_size} ranks; "
                             "lower --batch-size or add data")
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order and skip its first ``start_batch`` batches (resuming)."""
        self.epoch, self.start = epoch, start_batch

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.num_items, generator=gen).tolist()
        else:
            order = list(range(self.num_items))
        g = self.batch_size * self.world_size
        for k in range(self.start, self.batches_per_epoch):
            first = k * g + self.rank * self.batch_size
            yield order[first : first + self.batch_size]

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy/random from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
