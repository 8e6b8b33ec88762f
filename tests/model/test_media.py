"""model.media on real PyAV-encoded files: timing of every window, resampling, formats, errors,
and bounded memory. Frames carry their own index (tests/media_factory.py), so a test can read
back exactly which source frame each sampled frame is."""

from __future__ import annotations

import logging
import math
import re
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:  # tests/ holds the shared media_factory
    sys.path.insert(0, _TESTS)

from media_factory import (  # noqa: E402
    index_frame_fn,
    make_audio,
    make_image,
    make_subtitles,
    make_video,
    read_index,
)

from model.media import (  # noqa: E402
    EmptyMediaError,
    MediaError,
    MediaTooLongError,
    UnreadableMediaError,
    UnsupportedMediaError,
    Window,
    WindowRangeError,
    WindowSpec,
    count_windows,
    iter_windows,
    probe,
    read_window,
)

SRC_FPS = 25
SMALL = WindowSpec(num_frames=16, fps=10.0, size=48)  # 1.6 s windows


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def stamped(media) -> Path:
    """7 s, 25 fps H.264+AAC whose frame k shows k; the audio is a 1 kHz sine from t = 0."""
    return make_video(media / "stamped.mp4", duration=7.0, fps=SRC_FPS, width=160, height=120,
                      frame_fn=index_frame_fn(160, 120), tone_hz=1000.0)


def expected_index(t: float, last: int = 10**6) -> int:
    """The source frame at or before t (25 fps source); past the last frame, the last frame."""
    return min(math.floor(t * SRC_FPS + 1e-6), last)


def check_frames(w: Window, spec: WindowSpec, duration: float, last: int = 10**6) -> None:
    assert w.video is not None and w.video.dtype == np.float32
    assert w.video.shape == (spec.num_frames, spec.size, spec.size, 3)
    assert w.video.min() >= -1.0 and w.video.max() <= 1.0
    for i, frame in enumerate(w.video):
        t = w.start + i / spec.fps
        if t < duration - 1e-6:
            assert read_index(frame) == expected_index(t, last), f"window {w.index} frame {i} (t={t:.2f})"
        else:  # past the content: zero padding
            assert not frame.any(), f"window {w.index} frame {i} (t={t:.2f}) should be padding"


@pytest.mark.parametrize("stride", [None, 1.1])
def test_windows_start_end_and_sample_frames_at_start_plus_i_over_fps(stamped, stride):
    spec = WindowSpec(num_frames=16, fps=10.0, size=48, stride=stride)
    info = probe(stamped)
    assert info.duration == pytest.approx(7.0)
    windows = list(iter_windows(stamped, spec))
    # stride 1.6: 4 full windows + [6.4, 7.0]; stride 1.1: 5 full (0 .. 4.4) + [5.5, 7.0]
    assert len(windows) == count_windows(info.duration, spec) == (5 if stride is None else 6)
    for k, w in enumerate(windows):
        assert w.index == k
        assert w.start == pytest.approx(k * spec.step)
        assert w.end == pytest.approx(min(w.start + spec.duration, 7.0))
        assert w.padded == (k == len(windows) - 1)
        check_frames(w, spec, info.duration)
        assert w.audio is not None and w.audio.shape == (spec.num_samples,)
    assert windows[-1].end == pytest.approx(7.0) and windows[-1].padded


def test_read_window_seeks_to_its_start(stamped):
    spec = SMALL
    w = read_window(stamped, 2.35, spec)
    assert (w.start, w.end, w.padded) == (2.35, pytest.approx(3.95), False)
    check_frames(w, spec, 7.0)
    t = 2.35 + np.arange(spec.num_samples) / spec.sample_rate  # audio is placed in time too
    np.testing.assert_allclose(w.audio, 0.5 * np.sin(2 * np.pi * 1000.0 * t), atol=0.03)
    tail = read_window(stamped, 6.0, spec)
    assert tail.padded and tail.end == pytest.approx(7.0)
    check_frames(tail, spec, 7.0)
    assert not tail.audio[round(1.0 * spec.sample_rate) + 10:].any()
    with pytest.raises(WindowRangeError, match=r"outside 'stamped.mp4' \(accepted: 0 <= start < 7"):
        read_window(stamped, 7.5, spec)


def test_tensors_are_channels_first(stamped):
    w = read_window(stamped, 0.0, SMALL)
    v, a = w.video_tensor(), w.audio_tensor()
    assert v.shape == (3, 16, 48, 48) and v.dtype == torch.float32
    assert torch.equal(v[:, 5], torch.from_numpy(w.video[5]).permute(2, 0, 1))
    assert a.shape == (SMALL.num_samples,) and a.dtype == torch.float32


def test_default_spec_and_native_size(stamped):
    spec = WindowSpec()
    assert (spec.duration, spec.num_samples, spec.step) == (pytest.approx(3.2), 153_600, pytest.approx(3.2))
    w = next(iter_windows(stamped))
    assert w.video.shape == (32, 224, 224, 3) and w.audio.shape == (153_600,)
    native = read_window(stamped, 1.0, WindowSpec(num_frames=4, size=None), audio=False)
    assert native.video.shape == (4, 120, 160, 3) and native.audio is None
    assert [read_index(f) for f in native.video] == [expected_index(1.0 + i / 10) for i in range(4)]


def test_44k1_audio_becomes_48k_with_right_length_and_pitch(media):
    path = make_audio(media / "tone.wav", duration=3.0, sample_rate=44100, tone_hz=1000.0)
    info = probe(path)
    assert (info.sample_rate, info.has_video, info.has_audio) == (44100, False, True)
    windows = list(iter_windows(path, SMALL))  # 1.6 s windows: [0, 1.6], [1.6, 3.0] padded
    assert [w.video for w in windows] == [None, None]
    assert [(w.start, w.end, w.padded) for w in windows] == [
        (0.0, pytest.approx(1.6), False), (pytest.approx(1.6), pytest.approx(3.0), True)]
    wave = np.concatenate([w.audio for w in windows])
    assert wave.shape == (2 * 76_800,)
    real = round(3.0 * 48_000)  # exactly 3 s of 48 kHz samples, then zero padding
    assert np.abs(wave[real - 200:real]).max() > 0.3 and not wave[real:].any()
    t = np.arange(real) / 48_000
    np.testing.assert_allclose(wave[100:real - 100], 0.5 * np.sin(2 * np.pi * 1000.0 * t)[100:-100],
                               atol=0.01)  # stereo averaged to mono, phase kept across windows
    spectrum = np.abs(np.fft.rfft(windows[0].audio))
    peak_hz = np.argmax(spectrum) * 48_000 / windows[0].audio.size
    assert peak_hz == pytest.approx(1000.0, abs=1.0)


@pytest.mark.parametrize("name, kwargs, codecs", [
    ("h264_aac.mp4", {}, ("h264", "aac")),
    ("vp9_opus.webm", {}, ("vp9", "opus")),
    ("h264_aac.mkv", {}, ("h264", "aac")),
    ("vp9_opus.mkv", {"codec": "vp9", "audio_codec": "opus"}, ("vp9", "opus")),
])
def test_video_formats_decode(media, name, kwargs, codecs):
    path = make_video(media / name, duration=1.8, fps=SRC_FPS, width=160, height=120,
                      frame_fn=index_frame_fn(160, 120), **kwargs)
    info = probe(path)
    assert (info.video_codec, info.audio_codec, info.width, info.height, info.fps) == (*codecs, 160, 120, 25.0)
    assert info.container == Path(name).suffix[1:] and info.duration == pytest.approx(1.8, abs=0.05)
    (w,) = iter_windows(path, SMALL)  # one full 1.6 s window; a 0.2 s tail is < 1/4 window
    check_frames(w, SMALL, info.duration)
    assert 0.3 < np.sqrt(np.mean(w.audio ** 2)) < 0.4  # a 0.5-amplitude sine has RMS 0.354
    late = read_window(path, 0.9, SMALL)  # seeks; runs past the end, where frame 44 holds
    assert late.padded and late.end == pytest.approx(info.duration)
    check_frames(late, SMALL, info.duration, last=44)


@pytest.mark.parametrize("suffix, codec", [
    (".wav", "pcm_s16le"), (".mp3", "mp3"), (".flac", "flac"), (".ogg", "vorbis"), (".m4a", "aac")])
def test_audio_formats_decode(media, suffix, codec):
    path = make_audio(media / f"tone{suffix}", duration=2.0, sample_rate=44100, tone_hz=440.0)
    info = probe(path)
    assert info.audio_codec.startswith(codec) and not info.has_video
    windows = list(iter_windows(path, SMALL))
    assert len(windows) == 2 and all(w.video is None for w in windows)
    assert 0.3 < np.sqrt(np.mean(windows[0].audio ** 2)) < 0.4
    peak = np.argmax(np.abs(np.fft.rfft(windows[0].audio))) * 48_000 / SMALL.num_samples
    assert peak == pytest.approx(440.0, abs=1.0)
    w = read_window(path, 1.3, SMALL)  # seeks; samples stay on the sine's own clock
    t = 1.3 + np.arange(round(0.6 * 48_000)) / 48_000
    np.testing.assert_allclose(w.audio[:t.size], 0.5 * np.sin(2 * np.pi * 440.0 * t), atol=0.05)
    assert w.padded and not w.audio[round(0.71 * 48_000):].any()


def test_silent_video_gives_video_only_and_video_false_skips_video(media, stamped):
    silent = make_video(media / "silent.mp4", duration=2.0, width=96, height=64, audio=False)
    info = probe(silent)
    assert info.has_video and not info.has_audio and info.audio_codec is None
    assert all(w.audio is None and w.video is not None for w in iter_windows(silent, SMALL))
    assert all(w.video is None and w.audio is not None for w in iter_windows(stamped, SMALL, video=False))
    with pytest.raises(UnsupportedMediaError, match="has no audio stream .*accepted: media with audio"):
        iter_windows(silent, SMALL, video=False)


def test_short_media_gives_one_padded_window_and_count_rule():
    spec = WindowSpec(num_frames=16, fps=10.0)  # 1.6 s
    assert [count_windows(d, spec) for d in (0.0, 0.3, 1.6, 1.9, 2.0, 3.2)] == [0, 1, 1, 1, 2, 2]
    assert count_windows(3.2, WindowSpec(num_frames=16, fps=10.0, stride=0.5)) == 4  # 0 .. 1.5
    assert count_windows(5.0, WindowSpec(num_frames=16, fps=10.0, stride=2.0)) == 3  # gaps: 0, 2, 4


def test_media_shorter_than_a_window_is_padded(media):
    path = make_video(media / "short.mkv", duration=0.6, fps=SRC_FPS, width=96, height=64,
                      frame_fn=index_frame_fn(96, 64))
    (w,) = iter_windows(path, SMALL)
    assert w.padded and w.end == pytest.approx(0.6, abs=0.03)  # the AAC track runs ~20 ms longer
    check_frames(w, SMALL, probe(path).duration, last=14)  # video ends first: its last frame holds
    assert not w.audio[round(0.65 * 48_000):].any()


def test_video_starting_late_is_placed_by_its_timestamps(media):
    """Frames are placed by pts, not by count: the first frame at 0.4 s serves the targets before
    it (the nearest frame), then frame k shows at 0.4 + k/25."""
    path = make_video(media / "late.mp4", duration=2.0, fps=SRC_FPS, width=96, height=64,
                      video_start=0.4, frame_fn=index_frame_fn(96, 64))
    w = next(iter_windows(path, SMALL))
    got = [read_index(f) for f in w.video]
    assert got == [0] * 5 + [expected_index(0.1 * i - 0.4) for i in range(5, 16)]


# -- errors ---------------------------------------------------------------------------------


def test_text_file_renamed_mp4(media):
    path = media / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 50)
    with pytest.raises(UnreadableMediaError, match=r"cannot decode 'notes.mp4': not a media file "
                                                   r"FFmpeg can read .*accepted: mp4, mov, mkv, webm"):
        probe(path)


def test_truncated_mp4_with_index_at_end_cannot_be_opened(media, stamped):
    path = media / "cut.mp4"
    data = stamped.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableMediaError, match="cannot decode 'cut.mp4': not a media file"):
        iter_windows(path, SMALL)


@pytest.mark.parametrize("name, faststart", [("fast.mp4", True), ("cut.mkv", False), ("cut.webm", False)])
def test_truncated_file_that_opens_fails_when_decoding_reaches_the_cut(media, name, faststart):
    """An mp4 with its index first (faststart), or Matroska, opens when cut in half: the windows
    before the cut come out, then UnreadableMediaError; nothing is invented past the cut."""
    whole = make_video(media / f"whole_{name}", duration=6.0, width=96, height=64, faststart=faststart)
    path = media / name
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert probe(path).duration == pytest.approx(6.0, abs=0.03)  # the header still promises 6 s
    seen = []
    with pytest.raises(UnreadableMediaError, match=rf"'{name}' is truncated or corrupt: "
                                                   r"its (video|audio) stops at [\d.]+ s of 6.0\d s"):
        for w in iter_windows(path, SMALL):
            seen.append(w)
    assert all(not w.padded and w.end < 3.5 for w in seen)


def test_zero_bytes_missing_and_directory(media):
    empty = media / "empty.webm"
    empty.write_bytes(b"")
    with pytest.raises(EmptyMediaError, match=r"'empty.webm' is empty \(0 bytes\)"):
        probe(empty)
    with pytest.raises(UnreadableMediaError, match="no such file"):
        iter_windows(media / "nope.mp4")
    with pytest.raises(UnreadableMediaError, match="not a regular file"):
        probe(media)


def test_zero_length_media(media):
    path = make_audio(media / "nothing.wav", duration=0.0)
    with pytest.raises(EmptyMediaError, match="'nothing.wav' has zero duration"):
        probe(path)


def test_no_audio_or_video_stream(media):
    subs = make_subtitles(media / "subs.mkv")
    with pytest.raises(UnsupportedMediaError, match=r"'subs.mkv' has no video or audio stream FFmpeg "
                                                    r"can decode \(found: subtitle .*; accepted: mp4"):
        probe(subs)
    with pytest.raises(UnsupportedMediaError, match="has no video stream"):
        iter_windows(make_audio(media / "a.flac", duration=1.0), SMALL, audio=False)


def test_still_image(media):
    with pytest.raises(UnsupportedMediaError, match=r"'still.png' is a still image .*accepted: video or audio"):
        probe(make_image(media / "still.png"))


def test_max_duration(stamped):
    with pytest.raises(MediaTooLongError, match=r"'stamped.mp4' lasts 7.0 s; the limit is 5.0 s"):
        iter_windows(stamped, SMALL, max_duration=5.0)
    assert len(list(iter_windows(stamped, SMALL, max_duration=7.5))) == 5


def test_errors_are_one_family():
    for cls in (UnreadableMediaError, UnsupportedMediaError, EmptyMediaError, MediaTooLongError,
                WindowRangeError):
        assert issubclass(cls, MediaError)


# -- memory ---------------------------------------------------------------------------------


def test_long_video_is_streamed_with_about_one_window_held(media, caplog):
    """60 s at 10 fps: holding every resized frame (7 MB) plus the waveform (11.5 MB) would blow
    a budget of about three windows; streaming keeps ~one window of frames and samples."""
    path = make_video(media / "long.mp4", duration=60.0, fps=10, width=96, height=72,
                      frame_fn=index_frame_fn(96, 72))
    spec = WindowSpec(num_frames=32, fps=10.0, size=64)
    window_bytes = spec.num_frames * 64 * 64 * 3 * 4 + spec.num_samples * 4
    caplog.set_level(logging.DEBUG, logger="model.media")
    tracemalloc.start()
    try:
        count = 0
        for w in iter_windows(path, spec):
            assert read_index(w.video[7]) == round((w.start + 0.7) * 10)
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == count_windows(60.0, spec) == 19
    print(f"peak {peak / 1e6:.1f} MB, window {window_bytes / 1e6:.1f} MB")
    assert peak < 3 * window_bytes + 1_000_000, f"peak {peak / 1e6:.1f} MB"
    held = [m for m in caplog.messages if "held at most" in m]
    frames, samples = map(int, re.search(r"held at most (\d+) frames and (\d+) samples", held[-1]).groups())
    assert frames <= spec.num_frames + 1
    assert samples <= spec.num_samples + spec.sample_rate // 2
