"""Streaming decode engine behind ``model.media``: one demux pass, buffers of about one window.

Video: each decoded frame is held (undecoded to pixels) until the next one arrives; only then
is it known which target times ``start + i/fps`` it covers (the last frame at or before each
target). It is resized once, if it covers any target, and the resized uint8 image is shared
by every window that uses it. Audio: libswresample output is kept as chunks from the start of
the oldest unfinished window on, placed by timestamp (gaps become silence, overlaps are cut).

Nothing here knows the public error types: PyAV errors propagate, and the caller's
``check_eof`` decides whether what was decoded is truncated or empty.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import av
import numpy as np
from av.video.reformatter import VideoReformatter

logger = logging.getLogger(__name__)

TIME_EPS = 1e-3  # s: a frame stamped up to 1 ms after a target still counts as "at" it
AUDIO_SNAP = 0.02  # s: timestamp jitter tolerated before audio is re-placed by its pts
MAX_STREAM_LAG = 10.0  # s: a stream this far behind the other is taken as ended (or gapped)
MAX_BAD_PACKETS = 8  # packets a decoder may reject (skipped) before the file is called corrupt


@dataclass(frozen=True)
class Timeline:
    """Windows ``j = 0..count-1`` start at ``first + j * stride`` and last ``length`` seconds;
    media content ends at ``content_end`` (targets and samples past it are padding)."""

    first: float
    stride: float
    count: int
    length: float
    content_end: float

    def start(self, j: int) -> float:
        return self.first + j * self.stride


@dataclass
class _Slots:
    frames: list  # per target: shared uint8 [H, W, 3] image, or None (padding / no frame yet)


@dataclass
class RawWindow:
    index: int
    start: float
    end: float
    video: np.ndarray | None
    audio: np.ndarray | None
    padded: bool


def resize_crop(frame: av.VideoFrame, size: int | None, native: tuple[int, int],
                reformatter: VideoReformatter | None = None) -> np.ndarray:
    """uint8 [size, size, 3]: short side scaled to ``size`` by libswscale, then centre crop.

    ``size=None`` keeps the stream's declared resolution ``native`` (w, h), so every window of
    one file has the same shape even if a frame changes size. Pass one ``reformatter`` per
    stream: it caches libswscale's context (10x faster than a fresh one per frame).
    """
    reformatter = reformatter or VideoReformatter()
    if size is None:
        nw, nh = native
    else:
        scale = size / min(frame.width, frame.height)
        nw, nh = max(size, round(frame.width * scale)), max(size, round(frame.height * scale))
    img = reformatter.reformat(frame, width=nw, height=nh, format="rgb24",
                               interpolation="AREA").to_ndarray()
    if size is not None:
        y0, x0 = (nh - size) // 2, (nw - size) // 2
        img = img[y0:y0 + size, x0:x0 + size]
    return img.copy()  # own the pixels, so the scaled frame is freed


@dataclass
class _Video:
    """Nearest-at-or-before frame selection for every target time of every live window."""

    stream: av.video.stream.VideoStream
    fps: float
    num_frames: int
    size: int | None
    origin: float
    prev: av.VideoFrame | None = None
    prev_t: float = -math.inf
    prev_img: np.ndarray | None = None
    resolved: float = -math.inf  # every target t < resolved is assigned
    last_end: float | None = None  # end of the last decoded frame (for truncation checks)
    reformatter: VideoReformatter = field(default_factory=VideoReformatter)

    def image(self) -> np.ndarray:
        if self.prev_img is None:
            native = (self.stream.codec_context.width, self.stream.codec_context.height)
            self.prev_img = resize_crop(self.prev, self.size, native, self.reformatter)
        return self.prev_img

    def push(self, frame: av.VideoFrame, eng: Engine) -> None:
        rate = float(self.stream.average_rate or self.fps)
        if frame.time is not None:
            t = frame.time - self.origin
        else:  # no timestamp: assume the next frame at the stream's rate
            t = self.prev_t + 1.0 / rate if self.prev is not None else 0.0
        if self.prev is not None:
            if t <= self.prev_t:  # out of order or duplicate stamp: keep the earlier frame
                return
            self.cover(self._lo(), t, eng)
        self.prev, self.prev_t, self.prev_img = frame, t, None
        self.last_end = t + 1.0 / rate

    def _lo(self) -> float:
        """Where the held frame's targets begin: its own time, or, for the first frame of the
        stream, -inf (targets before the first frame take the nearest one, the first)."""
        return -math.inf if self.resolved == -math.inf else max(self.prev_t, self.resolved + TIME_EPS)

    def cover(self, lo: float, hi: float, eng: Engine) -> None:
        """Give the held frame to every live target t with lo - eps <= t < hi - eps."""
        tl = eng.timeline
        hi = min(hi, tl.content_end + TIME_EPS)  # targets at/after content end stay padding
        j = eng.next_index
        while j < tl.count and tl.start(j) < hi - TIME_EPS:
            s = tl.start(j)
            i_lo = 0 if lo == -math.inf else max(0, math.ceil((lo - TIME_EPS - s) * self.fps - 1e-9))
            i_hi = min(self.num_frames, math.ceil((hi - TIME_EPS - s) * self.fps - 1e-9))
            if i_lo < i_hi and self.prev is not None:
                slots = eng.slots(j)
                img = self.image()
                for i in range(i_lo, i_hi):
                    slots.frames[i] = img
            j += 1
        self.resolved = max(self.resolved, hi - TIME_EPS)

    def hold_until(self, t: float, eng: Engine) -> None:
        """The stream lags far behind: let the held frame (or padding) stand until ``t``."""
        if t > self.resolved:
            logger.debug("video trails audio by > %.0f s; holding last frame to %.2f s", MAX_STREAM_LAG, t)
            self.cover(self._lo(), t, eng)

    def finish(self, eng: Engine) -> None:
        self.cover(self._lo(), math.inf, eng)
        self.resolved = math.inf


@dataclass
class _Audio:
    """Mono float32 samples at ``rate`` from libswresample, kept from ``keep_from`` on."""

    stream: av.audio.stream.AudioStream
    rate: int
    origin: float
    resampler: av.AudioResampler = field(init=False)
    chunks: deque = field(default_factory=deque)
    buf_start: int | None = None  # absolute sample index of chunks[0][0]
    buf_end: int | None = None
    done: bool = False

    def __post_init__(self) -> None:
        self.resampler = self._new_resampler()

    def _new_resampler(self) -> av.AudioResampler:
        # rematrix_maxval=1: the downmix averages channels (L=R=x gives x, never clips) instead
        # of FFmpeg's default -3 dB sum, which would leave [-1, 1] for loud stereo.
        return av.AudioResampler(format="flt", layout="mono", rate=self.rate,
                                 options={"rematrix_maxval": "1.0"})

    @property
    def resolved(self) -> float:
        return math.inf if self.done else (-math.inf if self.buf_end is None else self.buf_end / self.rate)

    def push(self, frame: av.AudioFrame | None, keep_from: int) -> None:
        try:
            outs = self.resampler.resample(frame)
        except ValueError:  # rate/layout changed mid-stream: drain the old graph, start anew
            outs = self.resampler.resample(None)
            self.resampler = self._new_resampler()
            outs += self.resampler.resample(frame)
        for out in outs:
            data = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            pos = None if out.pts is None else round((float(out.pts * out.time_base) - self.origin) * self.rate)
            self._append(data, pos)
        self.trim(keep_from)

    def _append(self, data: np.ndarray, pos: int | None) -> None:
        if self.buf_end is None:
            self.buf_start = self.buf_end = pos if pos is not None else 0
        elif pos is not None and abs(pos - self.buf_end) > AUDIO_SNAP * self.rate:
            if pos > self.buf_end:  # a gap in the stream: silence
                self.pad_to(pos)
            else:  # overlap (e.g. after padding a lagging stream): drop what is already placed
                data = data[self.buf_end - pos:]
        if data.size:
            self.chunks.append(data)
            self.buf_end += data.size

    def pad_to(self, pos: int) -> None:
        if self.buf_end is None:
            self.buf_start = self.buf_end = pos
        elif pos > self.buf_end:
            self.chunks.append(np.zeros(pos - self.buf_end, np.float32))
            self.buf_end = pos

    def trim(self, keep_from: int) -> None:
        while self.chunks and self.buf_start + self.chunks[0].size <= keep_from:
            self.buf_start += self.chunks.popleft().size
        if self.chunks and self.buf_start < keep_from:
            self.chunks[0] = self.chunks[0][keep_from - self.buf_start:]
            self.buf_start = keep_from

    def extract(self, s0: int, n: int, stop: int) -> np.ndarray:
        """Samples [s0, s0 + n) with everything at or past ``stop`` (content end) as zeros."""
        out = np.zeros(n, np.float32)
        pos = self.buf_start
        for chunk in self.chunks:
            a, b = max(pos, s0), min(pos + chunk.size, s0 + n, stop)
            if a < b:
                out[a - s0:b - s0] = chunk[a - pos:b - pos]
            pos += chunk.size
            if pos >= min(s0 + n, stop):
                break
        return out


class Engine:
    """Decode ``container`` once and assemble the windows of ``timeline`` in order."""

    def __init__(self, container: av.container.InputContainer, timeline: Timeline, *, fps: float,
                 num_frames: int, size: int | None, sample_rate: int,
                 video_stream: av.video.stream.VideoStream | None,
                 audio_stream: av.audio.stream.AudioStream | None, origin: float) -> None:
        self.container, self.timeline, self.sample_rate = container, timeline, sample_rate
        self.num_frames, self.num_samples = num_frames, round(timeline.length * sample_rate)
        self.video = _Video(video_stream, fps, num_frames, size, origin) if video_stream else None
        self.audio = _Audio(audio_stream, sample_rate, origin) if audio_stream else None
        self.next_index = 0
        self._slots: dict[int, _Slots] = {}
        self.peak_live_images = 0  # distinct resized frames held at once
        self.peak_audio_samples = 0  # resampled samples held at once

    def slots(self, j: int) -> _Slots:
        if j not in self._slots:
            self._slots[j] = _Slots([None] * self.num_frames)
        return self._slots[j]

    def live_images(self) -> int:
        return len({id(img) for s in self._slots.values() for img in s.frames if img is not None})

    def _keep_from(self) -> int:
        return round(self.timeline.start(self.next_index) * self.sample_rate)

    def _complete(self, j: int) -> bool:
        tl = self.timeline
        s = tl.start(j)
        if self.video is not None:
            last = min(s + (self.num_frames - 1) / self.video.fps, tl.content_end - 1e-6)
            if last >= self.video.resolved:
                return False
        if self.audio is not None:
            need = min(round(s * self.sample_rate) + self.num_samples,
                       round(tl.content_end * self.sample_rate))
            if not self.audio.done and (self.audio.buf_end is None or self.audio.buf_end < need):
                return False
        return True

    def _emit(self, j: int) -> RawWindow:
        tl = self.timeline
        s = tl.start(j)
        video = audio = None
        if self.video is not None:
            frames = self._slots.pop(j, _Slots([None] * self.num_frames)).frames
            video = _to_float(frames, self.video)
        if self.audio is not None:
            s0 = round(s * self.sample_rate)
            audio = self.audio.extract(s0, self.num_samples, round(tl.content_end * self.sample_rate))
        end = min(s + tl.length, tl.content_end)
        return RawWindow(j, s, end, video, audio, padded=s + tl.length > tl.content_end + 1e-6)

    def _ready(self) -> Iterator[RawWindow]:
        while self.next_index < self.timeline.count and self._complete(self.next_index):
            self.peak_live_images = max(self.peak_live_images, self.live_images())
            if self.audio is not None and self.audio.buf_end is not None:
                held = self.audio.buf_end - self.audio.buf_start
                self.peak_audio_samples = max(self.peak_audio_samples, held)
            window = self._emit(self.next_index)
            self.next_index += 1
            if self.audio is not None:
                self.audio.trim(self._keep_from())
            yield window

    def _balance(self) -> None:
        """Bound the buffers when one stream ends (or pauses) long before the other."""
        if self.video is None or self.audio is None:
            return
        v, a = self.video.resolved, self.audio.resolved
        if a != math.inf and a - MAX_STREAM_LAG > max(v, 0.0):
            self.video.hold_until(a - MAX_STREAM_LAG, self)
        elif v != math.inf and v - MAX_STREAM_LAG > max(a, 0.0):
            logger.debug("audio trails video by > %.0f s; padding silence", MAX_STREAM_LAG)
            self.audio.pad_to(round((v - MAX_STREAM_LAG) * self.sample_rate))

    def run(self, check_eof: Callable[[float | None, float | None, int], None],
            on_bad_packet: Callable[[Exception, int], None]) -> Iterator[RawWindow]:
        """Yield windows as soon as both modalities cover them; stop once the last is out.

        ``check_eof(video_end, audio_end, bad_packets)`` runs at end of file, before padding,
        and may raise (truncated/empty). ``on_bad_packet(err, count)`` may raise to give up.
        """
        streams = [t.stream for t in (self.video, self.audio) if t is not None]
        bad = 0
        for packet in self.container.demux(*streams):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError as err:  # a damaged packet: skip it, up to a limit
                bad += 1
                on_bad_packet(err, bad)
                continue
            for frame in frames:
                if isinstance(frame, av.VideoFrame) and self.video is not None:
                    self.video.push(frame, self)
                elif isinstance(frame, av.AudioFrame) and self.audio is not None:
                    self.audio.push(frame, self._keep_from())
            self._balance()
            yield from self._ready()
            if self.next_index >= self.timeline.count:
                return
        audio_end = None
        if self.audio is not None and self.audio.buf_end is not None:
            self.audio.push(None, self._keep_from())  # flush the resampler before measuring
            audio_end = self.audio.buf_end / self.sample_rate
        check_eof(self.video.last_end if self.video else None, audio_end, bad)
        if self.video is not None:
            self.video.finish(self)
        if self.audio is not None:
            self.audio.done = True
        yield from self._ready()


def _to_float(frames: list, video: _Video) -> np.ndarray:
    """Stack uint8 images to float32 [T, H, W, 3] in [-1, 1]; missing targets are zeros."""
    shape = next((f.shape for f in frames if f is not None), None)
    if shape is None:
        if video.size is not None:
            shape = (video.size, video.size, 3)
        else:
            shape = (video.stream.codec_context.height, video.stream.codec_context.width, 3)
    out = np.empty((len(frames), *shape), np.float32)
    for i, img in enumerate(frames):
        if img is None:
            out[i] = 0.0
        else:
            np.multiply(img, np.float32(2.0 / 255.0), out=out[i], dtype=np.float32)
            out[i] -= 1.0
    return out
