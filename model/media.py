"""Media preprocessing: any FFmpeg-readable file -> fixed-length video/audio windows for VATT.

Training (random windows via ``read_window``), the service (every window of an upload via
``iter_windows``) and benchmarks share this module, so all three see identical tensors:
frames resampled to ``spec.fps`` (the last frame at or before each ``start + i/fps``), short
side scaled to ``spec.size`` by libswscale and centre-cropped, pixels ``x * 2/255 - 1``;
audio downmixed and resampled to ``spec.sample_rate`` mono by libswresample.

Windows start every ``stride`` seconds (default: back to back). Windows are never cut short:
the last one, if it runs past the content, is zero-padded (zeros in the output arrays, i.e.
mid grey and silence), flagged ``padded`` and its ``end`` is where the content ends. That
last partial window is yielded only if the content no full window covers is at least
``spec.min_tail`` of a window (default 1/4), or if the media is shorter than one window.

Decoding is one streaming pass (``model._media_decode``): only about one window of resized
frames and samples is held, whatever the file's length. Every failure is a ``MediaError``;
a truncated file raises ``UnreadableMediaError`` once decoding reaches the cut (windows
before the cut may already have been yielded).
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from model.config import InputConfig
from model._media_decode import MAX_BAD_PACKETS, TIME_EPS, Engine, RawWindow, Timeline  # noqa: F401 - TIME_EPS: frame rule for callers

logger = logging.getLogger(__name__)

ACCEPTED = "mp4, mov, mkv, webm, avi, wav, mp3, flac, ogg, opus, m4a"
# File endings searched for media (directories given to `vatt ingest`, bulk embedding, dataset preparation).
MEDIA_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wav", ".mp3", ".flac", ".ogg", ".opus",
                            ".m4a", ".aac"})
_NOT_MEDIA_FORMATS = {"tty"}  # FFmpeg's ANSI-art "video" demuxer claims any .txt file
_TRUNCATION_SLACK = 1.0  # s (or 5 %): a stream ending this much early means truncated


@dataclass(frozen=True)
class MediaBytes:
    """A media file held in memory (a WebDataset shard member), decoded without touching disk.

    ``name`` stands in for the file name in messages and gives the suffix; every reader here
    takes it where it takes a path.
    """

    data: bytes
    name: str = "<bytes>"

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix


Source = str | os.PathLike | MediaBytes  # what every reader below accepts


class MediaError(Exception):
    """Base of every media failure; the message says what was wrong and what is accepted."""


class UnreadableMediaError(MediaError):
    """Not media, corrupt or truncated: FFmpeg cannot open or decode it."""


class UnsupportedMediaError(MediaError):
    """Opens, but has no video or audio stream this FFmpeg can decode (subtitles, stills)."""


class EmptyMediaError(MediaError):
    """Zero bytes, zero duration, or no frames and no samples."""


class MediaTooLongError(MediaError):
    """Longer than the caller's ``max_duration`` (the service refuses long uploads)."""


class WindowRangeError(MediaError, ValueError):
    """``read_window`` asked for a start outside the media."""


@dataclass(frozen=True)
class MediaInfo:
    """What ``probe`` learns from the container header, without decoding."""

    duration: float  # seconds of content (container duration, else the streams')
    has_video: bool
    has_audio: bool
    width: int | None
    height: int | None
    fps: float | None  # the video stream's average frame rate
    sample_rate: int | None  # the audio stream's native rate
    container: str  # the file's suffix when FFmpeg's demuxer claims it, else the demuxer name
    video_codec: str | None
    audio_codec: str | None


@dataclass(frozen=True)
class WindowSpec:
    """Shape of one window. Defaults are VATT's: 32 frames at 10 fps, 224 px, 48 kHz."""

    num_frames: int = 32
    fps: float = 10.0
    size: int | None = 224  # None: keep native resolution (training crops randomly itself)
    sample_rate: int = 48000
    stride: float | None = None  # seconds between window starts; None: window length
    min_tail: float = 0.25  # a last, padded window must add this fraction of new content

    def __post_init__(self) -> None:
        if self.num_frames < 1 or not self.fps > 0 or self.sample_rate < 1:
            raise ValueError(f"WindowSpec needs num_frames >= 1, fps > 0, sample_rate >= 1; got {self}")
        if self.size is not None and self.size < 1:
            raise ValueError(f"WindowSpec.size must be None or >= 1, got {self.size}")
        if self.stride is not None and not self.stride > 0:
            raise ValueError(f"WindowSpec.stride must be None or > 0 seconds, got {self.stride}")
        if not 0.0 <= self.min_tail <= 1.0:
            raise ValueError(f"WindowSpec.min_tail must be in [0, 1], got {self.min_tail}")

    @classmethod
    def from_input(cls, inp: InputConfig, *, native: bool = False, stride: float | None = None) -> WindowSpec:
        """The window a model with input config ``inp`` takes (the one place that maps one to the
        other); ``native=True`` keeps the file's resolution (training crops randomly itself)."""
        return cls(num_frames=inp.num_frames, fps=inp.fps, size=None if native else inp.image_size,
                   sample_rate=inp.sample_rate, stride=stride)

    @property
    def duration(self) -> float:
        """Window length in seconds: num_frames / fps."""
        return self.num_frames / self.fps

    @property
    def num_samples(self) -> int:
        """Audio samples per window: round(duration * sample_rate)."""
        return round(self.duration * self.sample_rate)

    @property
    def step(self) -> float:
        """Seconds between window starts (the stride, or the window length)."""
        return self.stride if self.stride is not None else self.duration


@dataclass
class Window:
    """One window of media; ``end`` of a padded window is where the real content ends."""

    index: int
    start: float
    end: float
    video: np.ndarray | None  # float32 [T, H, W, 3] in [-1, 1]
    audio: np.ndarray | None  # float32 [L] mono in [-1, 1]
    padded: bool

    def video_tensor(self) -> torch.Tensor:
        """float32 [3, T, H, W], channels first, as ``VATT.encode_video`` takes per sample."""
        if self.video is None:
            raise ValueError(f"window {self.index} has no video (audio-only media or video=False)")
        return torch.from_numpy(self.video).permute(3, 0, 1, 2).contiguous()

    def audio_tensor(self) -> torch.Tensor:
        """float32 [L] waveform."""
        if self.audio is None:
            raise ValueError(f"window {self.index} has no audio (silent media or audio=False)")
        return torch.from_numpy(self.audio)


def count_windows(duration: float, spec: WindowSpec = WindowSpec()) -> int:
    """How many windows ``iter_windows`` yields for ``duration`` seconds (for progress bars)."""
    if not duration > 0:
        return 0
    length, step, eps = spec.duration, spec.step, 1e-6
    if duration < length - eps:
        return 1  # shorter than one window: one padded window
    full = math.floor((duration - length) / step + eps) + 1
    covered = max(full * step, (full - 1) * step + length)  # where the next window adds content
    tail = duration - covered
    return full + int(tail > eps and tail >= spec.min_tail * length - eps)


def probe(source: Source) -> MediaInfo:
    """Read the header: duration, streams, codecs. Raises the MediaError family."""
    path = _check_path(source)
    with _open(path) as container:
        info, _, _ = _inspect(container, path)
    return info


def iter_windows(source: Source, spec: WindowSpec = WindowSpec(), *, video: bool = True,
                 audio: bool = True, max_duration: float | None = None) -> Iterator[Window]:
    """Every window of ``source`` in order, decoded in one streaming pass.

    The file is probed now (so bad input and ``max_duration`` fail at the call); decoding
    happens as windows are consumed. Modalities the file lacks come back as None.
    """
    path = _check_path(source)
    with _open(path) as container:
        info, vs, aus = _inspect(container, path)
    if max_duration is not None and info.duration > max_duration:
        raise MediaTooLongError(f"{path.name!r} lasts {info.duration:.1f} s; the limit is "
                                f"{max_duration:.1f} s (accepted: media up to that length)")
    _require(path, info, video and vs is not None, audio and aus is not None, video, audio)
    timeline = Timeline(0.0, spec.step, count_windows(info.duration, spec), spec.duration, info.duration)
    logger.debug("%s: %.2f s, %d windows of %.2f s every %.2f s", path.name, info.duration,
                 timeline.count, spec.duration, spec.step)
    return _generate(path, timeline, spec, video, audio, seek=None)


def read_window(source: Source, start: float, spec: WindowSpec = WindowSpec(), *,
                video: bool = True, audio: bool = True) -> Window:
    """The one window starting at ``start`` seconds (seeks; for training's random windows).

    ``index`` is 0. A window running past the content is padded as in ``iter_windows``.
    """
    path = _check_path(source)
    with _open(path) as container:
        info, vs, aus = _inspect(container, path)
        if not (math.isfinite(start) and 0.0 <= start < info.duration):
            raise WindowRangeError(f"start={start} s is outside {path.name!r} "
                                   f"(accepted: 0 <= start < {info.duration:.3f} s)")
        _require(path, info, video and vs is not None, audio and aus is not None, video, audio)
        timeline = Timeline(start, spec.duration, 1, spec.duration, info.duration)
        windows = _decode(container, path, timeline, spec, vs if video else None,
                          aus if audio else None, seek=start)
        window = next(windows, None)
    if window is None:  # the engine always pads a window out; this is only a safety net
        raise EmptyMediaError(f"{path.name!r} has no content at {start:.2f} s")
    return window


def cut_window(frames: np.ndarray | None, frame_fps: float, audio: np.ndarray | None, duration: float,
               start: float, spec: WindowSpec) -> Window:
    """The window at ``start`` cut from a whole decoded file (uint8 frames [N, H, W, 3] sampled at
    ``frame_fps``, mono ``audio`` at ``spec.sample_rate``), by the streaming decoder's rules: the
    last frame at or before each ``start + i/fps`` (within ``TIME_EPS``), zeros past the content."""
    video = None
    if frames is not None:
        n = len(frames)
        idx = np.floor((start + np.arange(spec.num_frames) / spec.fps + TIME_EPS) * frame_fps).astype(np.int64)
        video = frames[np.minimum(idx, n - 1)].astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
        video[idx >= n] = 0.0
    wave = None
    if audio is not None:
        s0 = round(start * spec.sample_rate)
        wave = audio[s0 : s0 + spec.num_samples]
        wave = np.pad(wave, (0, spec.num_samples - len(wave)))
    end = min(start + spec.duration, duration)
    return Window(0, start, end, video, wave, padded=start + spec.duration > duration + 1e-6)


def frame_at(source: Source, at: float) -> np.ndarray | None:
    """uint8 [H, W, 3] RGB of the first frame at or after ``at`` seconds (else the last one), at
    native size; None for audio-only media. For thumbnails; raises the MediaError family."""
    path = _check_path(source)
    try:
        with _open(path) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if at > 0:
                container.seek(int(at * 1e6), backward=True)
            frame = None
            for frame in container.decode(stream):
                if frame.time is None or frame.time >= at - TIME_EPS:
                    break
            if frame is None and at > 0:  # past the end: the last frame
                container.seek(0)
                for frame in container.decode(stream):  # noqa: B007 - keeps the last frame
                    pass
            return None if frame is None else frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as err:
        raise UnreadableMediaError(f"cannot decode a frame of {path.name!r} at {at:.2f} s: "
                                   f"{err.strerror or err}") from err


# -- internals ---------------------------------------------------------------------------


def _check_path(source: Source) -> Path | MediaBytes:
    if isinstance(source, MediaBytes):
        if not source.data:
            raise EmptyMediaError(f"{source.name!r} is empty (0 bytes)")
        return source
    path = Path(source)
    if not path.exists():
        raise UnreadableMediaError(f"cannot open {str(path)!r}: no such file")
    if not path.is_file():
        raise UnreadableMediaError(f"cannot open {str(path)!r}: not a regular file")
    if path.stat().st_size == 0:
        raise EmptyMediaError(f"{path.name!r} is empty (0 bytes)")
    return path


def _not_media(path: Path, why: str) -> UnreadableMediaError:
    return UnreadableMediaError(f"cannot decode {path.name!r}: not a media file FFmpeg can read "
                                f"({why}) (accepted: {ACCEPTED} …)")


def _open(path: Path | MediaBytes) -> av.container.InputContainer:
    try:
        if isinstance(path, MediaBytes):
            return av.open(io.BytesIO(path.data), metadata_errors="ignore")
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as err:
        raise _not_media(path, err.strerror or type(err).__name__) from err


def _decodable(stream: av.stream.Stream) -> bool:
    try:
        return stream.codec_context is not None and stream.codec_context.codec is not None
    except (av.error.FFmpegError, ValueError):  # PyAV raises ValueError for unknown codecs
        return False


def _inspect(container: av.container.InputContainer, path: Path):
    """(MediaInfo, video stream | None, audio stream | None) or a MediaError saying why not."""
    fmt = container.format.name
    if fmt in _NOT_MEDIA_FORMATS:
        raise _not_media(path, f"FFmpeg sees it as {fmt!r} text")
    if fmt == "image2" or fmt.endswith("_pipe"):
        raise UnsupportedMediaError(f"{path.name!r} is a still image ({fmt}); accepted: video or "
                                    f"audio ({ACCEPTED} …)")
    streams = list(container.streams)
    if not streams:
        raise EmptyMediaError(f"{path.name!r} contains no streams (accepted: {ACCEPTED} …)")
    attached = av.stream.Disposition.attached_pic
    videos = [s for s in streams if s.type == "video" and not s.disposition & attached and _decodable(s)]
    audios = [s for s in streams if s.type == "audio" and _decodable(s)]
    if not videos and not audios:
        found = ", ".join(f"{s.type} {s.codec_context.name if _decodable(s) else '(no decoder)'}"
                          for s in streams)
        raise UnsupportedMediaError(f"{path.name!r} has no video or audio stream FFmpeg can decode "
                                    f"(found: {found}; accepted: {ACCEPTED} …)")
    vs, aus = (videos or [None])[0], (audios or [None])[0]
    duration = _duration(container, path, [s for s in (vs, aus) if s is not None])
    if not duration > 0:
        raise EmptyMediaError(f"{path.name!r} has zero duration: no frames or samples")
    ext = path.suffix.lower().lstrip(".")
    rate = (vs.average_rate or vs.guessed_rate) if vs is not None else None
    info = MediaInfo(
        duration=duration, has_video=vs is not None, has_audio=aus is not None,
        width=vs.codec_context.width if vs else None, height=vs.codec_context.height if vs else None,
        fps=float(rate) if rate else None,
        sample_rate=aus.codec_context.sample_rate if aus else None,
        container=ext if ext and ext in (container.format.extensions or ()) else fmt.split(",")[0],
        video_codec=vs.codec_context.name if vs else None,
        audio_codec=aus.codec_context.name if aus else None,
    )
    return info, vs, aus


def _origin(container: av.container.InputContainer) -> float:
    """Time zero of the media: the container's start (mp3 encoder delay, MPEG-TS offsets)."""
    return container.start_time / 1e6 if container.start_time is not None else 0.0


def _stream_end(stream: av.stream.Stream, origin: float) -> float | None:
    """Where the stream says it ends: its duration, or Matroska's DURATION tag; else None."""
    begin = float(stream.start_time * stream.time_base) if stream.start_time is not None else origin
    if stream.duration:
        return float(stream.duration * stream.time_base) + begin - origin
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    try:
        h, m, sec = tag.split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec) + begin - origin
    except (AttributeError, ValueError):
        return None


def _duration(container: av.container.InputContainer, path: Path, streams: list) -> float:
    """Container duration, else the streams', else the last packet's end (demux, no decode)."""
    if container.duration and container.duration > 0:
        return container.duration / 1e6
    ends = [e for e in (_stream_end(s, _origin(container)) for s in streams) if e]
    if ends:
        return max(ends)
    end = 0.0
    try:  # a separate handle, so the caller's container is not consumed
        with _open(path) as scan:
            origin = _origin(scan)
            for packet in scan.demux(*[scan.streams[s.index] for s in streams]):
                if packet.pts is not None and packet.time_base is not None:
                    stop = (packet.pts + (packet.duration or 0)) * packet.time_base
                    end = max(end, float(stop) - origin)
    except av.error.FFmpegError as err:
        raise UnreadableMediaError(f"cannot read {path.name!r} to find its duration: "
                                   f"{err.strerror or err} (corrupt or truncated?)") from err
    return end


def _require(path: Path, info: MediaInfo, use_video: bool, use_audio: bool, video: bool,
             audio: bool) -> None:
    if not video and not audio:
        raise ValueError("ask for video, audio or both")
    if not use_video and not use_audio:
        has = "video only" if info.has_video else "audio only"
        wanted = "video" if video else "audio"
        raise UnsupportedMediaError(f"{path.name!r} has no {wanted} stream ({has}); "
                                    f"accepted: media with {wanted}")


def _generate(path: Path, timeline: Timeline, spec: WindowSpec, video: bool, audio: bool,
              seek: float | None) -> Iterator[Window]:
    with _open(path) as container:
        info, vs, aus = _inspect(container, path)
        yield from _decode(container, path, timeline, spec, vs if video else None,
                           aus if audio else None, seek=seek)


def _decode(container, path: Path, timeline: Timeline, spec: WindowSpec, vs, aus,
            seek: float | None) -> Iterator[Window]:
    """Run the engine, turning every PyAV failure into a MediaError that names the file."""
    origin = _origin(container)
    if vs is not None and seek is None:
        # Whole files: let FFmpeg decode on all cores. A seeked single window (training, many
        # loader workers) decodes a few frames; threads there only oversubscribe the CPU.
        vs.thread_type = "AUTO"
    engine = Engine(container, timeline, fps=spec.fps, num_frames=spec.num_frames, size=spec.size,
                    sample_rate=spec.sample_rate, video_stream=vs, audio_stream=aus, origin=origin)
    expected = {"video": _stream_end(vs, origin) if vs else None,
                "audio": _stream_end(aus, origin) if aus else None}

    def check_eof(video_end: float | None, audio_end: float | None, bad: int) -> None:
        ends = {k: v for k, v in (("video", video_end), ("audio", audio_end)) if v is not None}
        if not ends:
            if bad:
                raise UnreadableMediaError(f"cannot decode {path.name!r}: no frame or sample "
                                           f"could be decoded ({bad} damaged packets)")
            raise EmptyMediaError(f"{path.name!r} contains no frames or samples")
        # A stream that states its length must reach it; streams that don't must, together,
        # reach the file's end (one of them may legitimately be shorter than the other).
        checks = [(k, e, expected[k]) for k, e in ends.items() if expected[k]]
        unstated = {k: e for k, e in ends.items() if not expected[k]}
        if unstated:
            kind = max(unstated, key=unstated.get)
            checks.append((kind, unstated[kind], timeline.content_end))
        for kind, end, want in checks:
            if want - end > max(_TRUNCATION_SLACK, 0.05 * want):
                raise UnreadableMediaError(f"{path.name!r} is truncated or corrupt: its {kind} stops "
                                           f"at {end:.2f} s of {want:.2f} s")

    def on_bad_packet(err: Exception, count: int) -> None:
        logger.warning("%s: skipping a damaged packet (%s)", path.name, err)
        if count > MAX_BAD_PACKETS:
            raise UnreadableMediaError(f"cannot decode {path.name!r}: more than {MAX_BAD_PACKETS} "
                                       f"damaged packets (corrupt file?)") from err

    try:
        if seek is not None and seek > 0.5:  # land on a keyframe a little before the window
            container.seek(int((origin + seek - 0.5) * 1e6), backward=True)
        for raw in engine.run(check_eof, on_bad_packet):
            yield _window(raw)
    except av.error.FFmpegError as err:
        raise UnreadableMediaError(f"cannot decode {path.name!r} after window "
                                   f"{engine.next_index}: {err.strerror or err} "
                                   f"(corrupt or truncated?)") from err
    logger.debug("%s: held at most %d frames and %d samples", path.name,
                 engine.peak_live_images, engine.peak_audio_samples)


def _window(raw: RawWindow) -> Window:
    return Window(raw.index, raw.start, raw.end, raw.video, raw.audio, raw.padded)
