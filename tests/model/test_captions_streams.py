"""Transcripts from every source round-trip into cues: a file's own subtitle streams (mov_text in MP4, SubRip
and ASS in Matroska, WebVTT in WebM, written by PyAV into real media), sidecar files, and WebVTT written back."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_factory import make_video, with_subtitles

from model.captions import Cue, format_vtt, parse_srt, parse_vtt, read_captions, read_subtitle_streams, sidecar_transcripts

CUES = [Cue(0.25, 1.5, "gradient descent"), Cue(2.0, 3.75, "follows the slope & stops")]


@pytest.mark.parametrize(("suffix", "codec"), [(".mp4", None), (".mkv", None), (".webm", None), (".mkv", "ass")])
def test_embedded_subtitle_streams_round_trip(tmp_path: Path, suffix: str, codec: str | None) -> None:
    plain = make_video(tmp_path / f"plain{suffix}", duration=4.0, fps=10, width=64, height=48)
    assert read_subtitle_streams(plain) == []
    subbed = with_subtitles(plain, tmp_path / f"subbed{suffix}", CUES, codec=codec)
    assert read_subtitle_streams(subbed) == CUES
    with open(subbed, "rb") as handle:  # the ingest workers read through a handle
        assert read_subtitle_streams(handle) == CUES


def test_a_file_pyav_cannot_open_has_no_cues(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not media at all" * 10)
    assert read_subtitle_streams(junk) == []


def test_vtt_written_back_reads_the_same(tmp_path: Path) -> None:
    tricky = [*CUES, Cue(3600.0, 3601.5, "a <b>tag</b> --> arrow")]
    assert parse_vtt(format_vtt(tricky)) == tricky
    (tmp_path / "x.vtt").write_text(format_vtt(tricky))
    assert read_captions(tmp_path / "x.vtt") == tricky


def test_sidecars_are_found_best_first(tmp_path: Path) -> None:
    media = tmp_path / "talk.mp4"
    media.write_bytes(b"")
    assert sidecar_transcripts(media) == []
    for name in ("talk.de.vtt", "talk.en.vtt", "talk.srt", "talkative.vtt", "talk.vtt.bak"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in sidecar_transcripts(media)] == ["talk.srt", "talk.en.vtt", "talk.de.vtt"]
    (tmp_path / "talk.vtt").write_text("x")
    assert sidecar_transcripts(media)[0].name == "talk.vtt"
    srt = "1\n00:00:00,250 --> 00:00:01,500\ngradient descent\n\n2\n00:00:02,000 --> 00:00:03,750\nfollows the slope &amp; stops\n"
    assert parse_srt(srt) == CUES
