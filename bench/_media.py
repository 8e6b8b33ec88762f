"""Real encoded media for tests and benchmarks, made with PyAV (no fixtures checked in, no stand-ins).

Other test modules reuse these helpers:

- ``make_video(path, ...)``: H.264/VP9 video (+ AAC/Opus audio) in mp4/webm/mkv/mov by suffix.
- ``make_audio(path, ...)``: wav/mp3/flac/ogg/opus/m4a by suffix.
- ``index_frame`` / ``read_index``: frames that carry their own frame index as a 4x4 grid of
  black/white blocks inside the centre square, so the index survives H.264/VP9 compression,
  a short-side resize and a centre crop. ``make_video(frame_fn=index_frame_fn(w, h))`` makes a
  clip whose every decoded frame says which source frame it is (time = index / fps).

Encoders are tuned for speed (``ultrafast`` x264, ``realtime`` VP9); keep sizes small.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = [
    "GRID",
    "index_frame",
    "index_frame_fn",
    "make_audio",
    "make_image",
    "make_subtitles",
    "with_subtitles",
    "make_video",
    "read_index",
    "tone",
]

FrameFn = Callable[[int, float], np.ndarray]  # (index, t seconds) -> uint8 [H, W, 3]
AudioFn = Callable[[np.ndarray], np.ndarray]  # t seconds [n] -> float [n] in [-1, 1]

GRID = 4  # index_frame draws GRID x GRID blocks: GRID**2 bits, indices up to 65535

_VIDEO_DEFAULTS = {".mp4": ("h264", "aac"), ".mov": ("h264", "aac"), ".mkv": ("h264", "aac"),
                   ".webm": ("vp9", "opus")}
_VIDEO_ENCODERS = {"h264": "libx264", "vp9": "libvpx-vp9", "mpeg4": "mpeg4"}
_AUDIO_ENCODERS = {"aac": "aac", "opus": "libopus", "mp3": "libmp3lame", "flac": "flac",
                   "vorbis": "libvorbis", "pcm": "pcm_s16le"}
_AUDIO_BY_SUFFIX = {".wav": "pcm", ".mp3": "mp3", ".flac": "flac", ".ogg": "vorbis",
                    ".opus": "opus", ".m4a": "aac"}


def tone(hz: float = 440.0, amplitude: float = 0.5) -> AudioFn:
    """A sine of ``hz`` as an ``audio_fn``."""
    return lambda t: amplitude * np.sin(2 * np.pi * hz * t)


def index_frame(index: int, width: int, height: int) -> np.ndarray:
    """uint8 [H, W, 3] frame whose centre square shows ``index`` in binary (GRID x GRID blocks).

    Bit k (row-major) is white (235) when set, black (16) when not; the border outside the
    centre square is mid grey, so a centre crop keeps every block whole.
    """
    if not 0 <= index < 2 ** (GRID * GRID):
        raise ValueError(f"index {index} does not fit in {GRID * GRID} bits")
    frame = np.full((height, width, 3), 128, np.uint8)
    side = min(width, height)
    y0, x0 = (height - side) // 2, (width - side) // 2
    edges = np.linspace(0, side, GRID + 1).round().astype(int)
    for k in range(GRID * GRID):
        r, c = divmod(k, GRID)
        value = 235 if (index >> k) & 1 else 16
        frame[y0 + edges[r]:y0 + edges[r + 1], x0 + edges[c]:x0 + edges[c + 1]] = value
    return frame


def index_frame_fn(width: int, height: int) -> FrameFn:
    """``frame_fn`` for make_video that draws ``index_frame(index, width, height)``."""
    return lambda index, t: index_frame(index, width, height)


def read_index(frame: np.ndarray) -> int:
    """Read the index drawn by ``index_frame`` from a decoded frame.

    Accepts uint8 [0, 255] or float [-1, 1] frames of any size, whole or already centre-cropped
    to a square: it reads the centre square, sampling the middle half of each block.
    """
    f = np.asarray(frame, np.float32)
    if frame.dtype != np.uint8:
        f = (f + 1.0) * 127.5
    luma = f.mean(axis=-1)
    h, w = luma.shape
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    cell = side / GRID
    index = 0
    for k in range(GRID * GRID):
        r, c = divmod(k, GRID)
        ya, yb = int(y0 + (r + 0.25) * cell), int(y0 + (r + 0.75) * cell)
        xa, xb = int(x0 + (c + 0.25) * cell), int(x0 + (c + 0.75) * cell)
        if luma[ya:max(yb, ya + 1), xa:max(xb, xa + 1)].mean() > 125.0:
            index |= 1 << k
    return index


def _default_frame(width: int, height: int) -> FrameFn:
    """A moving gradient: cheap, and not constant (so encoders do real work)."""
    ys, xs = np.mgrid[0:height, 0:width]

    def draw(index: int, t: float) -> np.ndarray:
        base = (xs + ys + 4 * index) % 256
        return np.stack([base, (base + 85) % 256, (base + 170) % 256], axis=-1).astype(np.uint8)

    return draw


def _add_audio_stream(out: av.container.OutputContainer, codec: str, sample_rate: int,
                      channels: int) -> av.audio.stream.AudioStream:
    name = _AUDIO_ENCODERS.get(codec, codec)
    if name == "libvorbis" and name not in av.codecs_available:
        name = "vorbis"
    stream = out.add_stream(name, rate=sample_rate, layout="mono" if channels == 1 else "stereo")
    if name == "vorbis":  # FFmpeg's native Vorbis encoder is flagged experimental
        stream.codec_context.options = {"strict": "experimental"}
    return stream


def _encode_audio(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                  duration: float, sample_rate: int, channels: int, audio_fn: AudioFn) -> None:
    """Encode ``duration`` seconds of ``audio_fn`` in 0.1 s chunks (PyAV re-frames for the codec)."""
    total = int(round(duration * sample_rate))
    chunk = max(1, sample_rate // 10)
    for s0 in range(0, total, chunk):
        _encode_audio_span(out, stream, s0, min(total, s0 + chunk), sample_rate, channels, audio_fn)
    for packet in stream.encode(None):
        out.mux(packet)


def make_video(path: str | os.PathLike, *, duration: float = 4.0, fps: int = 25, width: int = 320,
               height: int = 240, codec: str | None = None, audio: bool = True,
               audio_codec: str | None = None, sample_rate: int = 48000,
               frame_fn: FrameFn | None = None, tone_hz: float = 440.0,
               audio_fn: AudioFn | None = None, channels: int = 2,
               faststart: bool = False, video_start: float = 0.0) -> Path:
    """Encode a ``duration``-second clip; container from the suffix (.mp4/.mov/.mkv/.webm).

    ``codec`` ("h264" | "vp9" | "mpeg4") and ``audio_codec`` ("aac" | "opus" | ...) default by
    container (mp4/mov/mkv: h264+aac, webm: vp9+opus). ``frame_fn(index, t)`` draws frame
    ``index`` (shown at ``t = index / fps``); the default is a moving gradient. Audio is a
    ``tone_hz`` sine unless ``audio_fn(t)`` is given. Video and audio are interleaved as a
    real muxer sees them (audio encoded per video frame's span). ``faststart`` puts an mp4's
    index (moov) before the data, as web uploads usually have it. ``video_start`` delays the
    first frame (its pts) by that many seconds while audio still starts at 0.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _VIDEO_DEFAULTS:
        raise ValueError(f"make_video: unknown container {suffix!r}; use {sorted(_VIDEO_DEFAULTS)}")
    vcodec, acodec = _VIDEO_DEFAULTS[suffix]
    vcodec, acodec = codec or vcodec, audio_codec or acodec
    draw = frame_fn or _default_frame(width, height)
    sound = audio_fn or tone(tone_hz)
    n_frames = int(round(duration * fps))
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        v = out.add_stream(_VIDEO_ENCODERS.get(vcodec, vcodec), rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        if vcodec == "h264":
            v.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency"}
        elif vcodec == "vp9":
            v.codec_context.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        a = _add_audio_stream(out, acodec, sample_rate, channels) if audio else None
        total = int(round(duration * sample_rate))
        written = 0
        for i in range(n_frames):
            img = draw(i, i / fps)
            if img.shape != (height, width, 3) or img.dtype != np.uint8:
                raise ValueError(f"frame_fn returned {img.shape} {img.dtype}, "
                                 f"expected ({height}, {width}, 3) uint8")
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i + round(video_start * fps)
            frame.time_base = Fraction(1, fps)
            for packet in v.encode(frame):
                out.mux(packet)
            if a is not None:  # audio up to the end of this video frame, so packets interleave
                upto = min(total, int(round((i + 1) / fps * sample_rate)))
                written = _encode_audio_span(out, a, written, upto, sample_rate, channels, sound)
        for packet in v.encode(None):
            out.mux(packet)
        if a is not None:
            _encode_audio_span(out, a, written, total, sample_rate, channels, sound)
            for packet in a.encode(None):
                out.mux(packet)
    return path


def _encode_audio_span(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                       s0: int, s1: int, sample_rate: int, channels: int, audio_fn: AudioFn) -> int:
    """Encode samples [s0, s1) of ``audio_fn``; returns s1."""
    if s1 <= s0:
        return s0
    t = (s0 + np.arange(s1 - s0)) / sample_rate
    mono = np.clip(np.asarray(audio_fn(t), np.float32), -1.0, 1.0)
    data = np.repeat(mono[None, :], channels, axis=0).T.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="flt",
                                       layout="mono" if channels == 1 else "stereo")
    frame.sample_rate = sample_rate
    frame.pts = s0
    frame.time_base = Fraction(1, sample_rate)
    for packet in stream.encode(frame):
        out.mux(packet)
    return s1


def make_audio(path: str | os.PathLike, *, duration: float = 4.0, sample_rate: int = 44100,
               tone_hz: float = 440.0, channels: int = 2, codec: str | None = None,
               audio_fn: AudioFn | None = None) -> Path:
    """Encode ``duration`` seconds of a ``tone_hz`` sine (or ``audio_fn(t)``), codec by suffix.

    .wav: 16-bit PCM, .mp3: LAME, .flac: FLAC, .ogg: Vorbis, .opus: Opus (48 kHz only),
    .m4a: AAC. Stereo by default, so readers' mono downmix is exercised.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if codec is None and suffix not in _AUDIO_BY_SUFFIX:
        raise ValueError(f"make_audio: unknown suffix {suffix!r}; use {sorted(_AUDIO_BY_SUFFIX)}")
    codec = codec or _AUDIO_BY_SUFFIX[suffix]
    with av.open(str(path), "w") as out:
        stream = _add_audio_stream(out, codec, sample_rate, channels)
        out.start_encoding()  # write the header even for duration=0 (a zero-length file)
        _encode_audio(out, stream, duration, sample_rate, channels, audio_fn or tone(tone_hz))
    return path


def make_subtitles(path: str | os.PathLike, *, text: str = "no pictures, no sound") -> Path:
    """A Matroska file whose only stream is one SubRip subtitle: opens, but has nothing to decode."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("subrip")
        stream.codec_context.subtitle_header = b"[Script Info]\nScriptType: v4.00+\n"
        packet = av.Packet(text.encode())
        packet.stream = stream
        packet.pts = packet.dts = 0
        packet.duration = 1000
        packet.time_base = Fraction(1, 1000)
        out.mux(packet)
    return path


_SUBTITLE_CODECS = {".mp4": "mov_text", ".mov": "mov_text", ".mkv": "subrip", ".webm": "webvtt"}
_ASS_HEADER = (b"[Script Info]\nScriptType: v4.00+\n\n[Events]\n"
               b"Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")


def with_subtitles(src: str | os.PathLike, dest: str | os.PathLike, cues: Sequence[tuple[float, float, str]], *,
                   codec: str | None = None) -> Path:
    """Remux ``src`` into ``dest`` (same container family) with an added text subtitle stream holding ``cues``:
    mov_text in MP4, SubRip in Matroska, WebVTT in WebM by default (``codec="ass"`` for ASS in Matroska)."""
    dest = Path(dest)
    codec = codec or _SUBTITLE_CODECS[dest.suffix.lower()]
    with av.open(str(src)) as inp, av.open(str(dest), "w") as out:
        mapping = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        sub = out.add_stream(codec)
        sub.codec_context.subtitle_header = _ASS_HEADER
        for packet in inp.demux(*[s for s in inp.streams if s.index in mapping]):
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
        for n, (start, end, text) in enumerate(cues):
            data = text.encode()
            if codec == "mov_text":
                data = len(data).to_bytes(2, "big") + data
            elif codec == "ass":
                data = f"{n},0,Default,,0,0,0,,".encode() + data
            packet = av.Packet(data)
            packet.stream = sub
            packet.pts = packet.dts = round(start * 1000)
            packet.duration = round((end - start) * 1000)
            packet.time_base = Fraction(1, 1000)
            out.mux(packet)
    return dest


def make_image(path: str | os.PathLike, *, width: int = 64, height: int = 48) -> Path:
    """A single PNG still (FFmpeg opens it as a one-frame "video"; media should refuse it)."""
    path = Path(path)
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        frame = av.VideoFrame.from_ndarray(_default_frame(width, height)(0, 0.0), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path
