"""WebVTT/SRT parsing and the nearest-5 caption rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.captions import CaptionError, Cue, cues_from_json, nearest_captions, parse_srt, parse_timestamp, parse_vtt, read_captions

VTT = """\ufeffWEBVTT - narration

NOTE written by hand

STYLE
::cue { color: yellow }

intro
00:00.500 --> 00:02.000 align:start position:10%
<v Narrator>Take the <b>red</b> circle</v>

00:00:02.000 --> 00:00:04.250
and move it &amp; left
over here

3
00:00:05.000 --> 00:00:06.000
   
"""

SRT = """1
00:00:00,500 --> 00:00:02,000
Take the <i>red</i> circle

2
00:00:02,000 --> 00:00:04,250
and move it left

"""


def test_timestamps() -> None:
    assert parse_timestamp("01:02:03.456") == pytest.approx(3723.456)
    assert parse_timestamp("02:03.4") == pytest.approx(123.4)
    assert parse_timestamp("00:00:01,250") == pytest.approx(1.25)
    with pytest.raises(CaptionError, match="bad timestamp '1.5s'"):
        parse_timestamp("1.5s")


def test_vtt_cues_tags_settings_and_notes() -> None:
    cues = parse_vtt(VTT)
    assert cues == [Cue(0.5, 2.0, "Take the red circle"), Cue(2.0, 4.25, "and move it & left over here")]


def test_srt_matches_vtt() -> None:
    assert [c.text for c in parse_srt(SRT)] == ["Take the red circle", "and move it left"]
    assert [(c.start, c.end) for c in parse_srt(SRT)] == [(0.5, 2.0), (2.0, 4.25)]


def test_read_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.vtt").write_text(VTT, encoding="utf-8")
    (tmp_path / "a.srt").write_text(SRT.replace("\n", "\r\n"), encoding="utf-8")
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    assert len(read_captions(tmp_path / "a.vtt")) == 2
    assert len(read_captions(tmp_path / "a.srt")) == 2
    with pytest.raises(CaptionError, match=r"unknown transcript format '\.txt'; accepted: \.vtt, \.srt"):
        read_captions(tmp_path / "a.txt")
    with pytest.raises(CaptionError, match="transcript file not found"):
        read_captions(tmp_path / "missing.vtt")


def test_malformed_files_are_refused() -> None:
    with pytest.raises(CaptionError, match="not a WebVTT file"):
        parse_vtt(SRT)
    with pytest.raises(CaptionError, match="no 'start --> end' timing line"):
        parse_srt("1\nhello there\n")
    with pytest.raises(CaptionError, match="ends .* before it starts"):
        parse_srt("1\n00:00:05,000 --> 00:00:01,000\nbackwards\n")


def test_inline_json() -> None:
    cues = cues_from_json([{"start": 3, "end": 4, "text": "b"}, {"start": 1, "end": 2, "text": "a"}, {"start": 5, "end": 6, "text": " "}])
    assert [c.text for c in cues] == ["a", "b"]
    with pytest.raises(CaptionError, match="cue 0 must have numeric start/end and text"):
        cues_from_json([{"start": 1, "text": "no end"}])


def _cues(n: int) -> list[Cue]:
    return [Cue(i * 2.0, i * 2.0 + 2.0, f"c{i}") for i in range(n)]  # c_i covers [2i, 2i+2)


def test_nearest_five_own_first_then_neighbours() -> None:
    texts, mask = nearest_captions(_cues(10), 8.5, 11.7)  # overlaps c4 (1.5 s) and c5 (1.7 s)
    # c5 overlaps 1.7 s and c4 1.5 s; then gaps: c6 0.3 s, c3 0.5 s, c7 2.3 s (c2: 2.5 s)
    assert texts == ["c5", "c4", "c6", "c3", "c7"]
    assert mask == [True] * 5


def test_nearest_at_the_edges_and_without_overlap() -> None:
    texts, _ = nearest_captions(_cues(10), 0.0, 3.2)
    assert texts == ["c0", "c1", "c2", "c3", "c4"]
    texts, _ = nearest_captions([Cue(10, 11, "late"), Cue(0, 1, "early")], 4.0, 7.2)
    assert texts[:2] == ["late", "early"]  # gap 2.8 s beats gap 3 s

def test_fewer_than_five_are_masked() -> None:
    texts, mask = nearest_captions(_cues(2), 0.0, 3.2)
    assert texts == ["c0", "c1", "", "", ""]
    assert mask == [True, True, False, False, False]
    assert nearest_captions([], 0.0, 3.2) == ([""] * 5, [False] * 5)
