"""Transcripts: WebVTT and SRT readers and the "5 captions nearest in time" rule.

VATT pairs every 3.2 s clip with P = 5 captions: the clip's own narration plus 4 temporal
neighbours (spec §4; the official HowTo100M factory that picks them was never released, so the
rule below is ours and documented). Transcripts come from a manifest, inline as
``[{start, end, text}]`` or as a ``.vtt``/``.srt`` file.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from training.errors import TrainingError

__all__ = ["CaptionError", "Cue", "cues_from_json", "nearest_captions", "parse_srt", "parse_timestamp", "parse_transcript", "parse_vtt",
           "read_captions"]


class CaptionError(TrainingError, ValueError):
    """A transcript file or inline transcript could not be read."""


@dataclass(frozen=True)
class Cue:
    """One caption: ``text`` spoken from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})$")
_TAG = re.compile(r"<[^>]*>")  # <c.colour>, <i>, <00:00:01.000> inline timestamps, <v Speaker>


def parse_timestamp(value: str) -> float:
    """``hh:mm:ss.mmm`` / ``mm:ss.mmm`` (WebVTT) or ``hh:mm:ss,mmm`` (SRT) to seconds."""
    m = _TIME.match(value.strip())
    if not m:
        raise CaptionError(f"bad timestamp {value!r}; expected hh:mm:ss.mmm, mm:ss.mmm or hh:mm:ss,mmm")
    hours, minutes, seconds, frac = m.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(frac.ljust(3, "0")) / 1000.0


def _clean(lines: Iterable[str]) -> str:
    text = " ".join(_TAG.sub("", line).strip() for line in lines)
    return html.unescape(re.sub(r"\s+", " ", text)).strip()


def _blocks(text: str) -> list[list[str]]:
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return [b.split("\n") for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]


def _timing(line: str, where: str) -> tuple[float, float]:
    if "-->" not in line:
        raise CaptionError(f"{where}: expected a 'start --> end' timing line, got {line!r}")
    left, right = line.split("-->", 1)
    start = parse_timestamp(left)
    end = parse_timestamp(right.strip().split()[0] if right.strip() else "")  # drop cue settings
    if end < start:
        raise CaptionError(f"{where}: cue ends ({end}) before it starts ({start})")
    return start, end


def parse_vtt(text: str, source: str = "<vtt>") -> list[Cue]:
    """Parse WebVTT: a ``WEBVTT`` header, then cues (optional id line, timing line, text lines).

    NOTE, STYLE and REGION blocks are skipped; tags are stripped and entities unescaped.
    """
    blocks = _blocks(text)
    if not blocks or not blocks[0][0].startswith("WEBVTT"):
        raise CaptionError(f"{source}: not a WebVTT file (first line must start with 'WEBVTT')")
    cues = []
    for n, block in enumerate(blocks[1:], start=2):
        if block[0].startswith(("NOTE", "STYLE", "REGION")):
            continue
        timing = next((i for i, line in enumerate(block[:2]) if "-->" in line), None)
        if timing is None:
            raise CaptionError(f"{source}: block {n} has no 'start --> end' timing line: {block[0]!r}")
        start, end = _timing(block[timing], f"{source} block {n}")
        cue_text = _clean(block[timing + 1 :])
        if cue_text:
            cues.append(Cue(start, end, cue_text))
    return sorted(cues, key=lambda c: (c.start, c.end))


def parse_srt(text: str, source: str = "<srt>") -> list[Cue]:
    """Parse SubRip: blocks of a counter line, a ``hh:mm:ss,mmm --> hh:mm:ss,mmm`` line and text."""
    cues = []
    for n, block in enumerate(_blocks(text), start=1):
        timing = next((i for i, line in enumerate(block[:2]) if "-->" in line), None)
        if timing is None:
            raise CaptionError(f"{source}: block {n} has no 'start --> end' timing line: {block[0]!r}")
        start, end = _timing(block[timing], f"{source} block {n}")
        cue_text = _clean(block[timing + 1 :])
        if cue_text:
            cues.append(Cue(start, end, cue_text))
    return sorted(cues, key=lambda c: (c.start, c.end))


def cues_from_json(items: Sequence[Mapping[str, object]], source: str = "<inline>") -> list[Cue]:
    """Inline manifest form: ``[{"start": s, "end": e, "text": "..."}]``."""
    cues = []
    for n, item in enumerate(items):
        try:
            start, end, text = float(item["start"]), float(item["end"]), str(item["text"])  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise CaptionError(f"{source}: cue {n} must have numeric start/end and text, got {item!r} ({exc})") from None
        if end < start:
            raise CaptionError(f"{source}: cue {n} ends ({end}) before it starts ({start})")
        if text.strip():
            cues.append(Cue(start, end, text.strip()))
    return sorted(cues, key=lambda c: (c.start, c.end))


def read_captions(path: str | Path) -> list[Cue]:
    """Read a ``.vtt`` or ``.srt`` file (chosen by suffix)."""
    path = Path(path)
    if not path.is_file():
        raise CaptionError(f"transcript file not found: {path}")
    return parse_transcript(path.read_bytes(), path.suffix, str(path))


def parse_transcript(data: bytes, kind: str, source: str) -> list[Cue]:
    """Cues from a transcript's bytes: ``kind`` is ``.vtt``, ``.srt`` or ``.json`` (the inline form).

    Shard readers call this per sample, so a transcript is parsed only when its clip is read.
    """
    kind = kind.lower()
    if kind == ".json":
        return cues_from_json(json.loads(data.decode("utf-8")), source)
    text = data.decode("utf-8-sig", errors="replace")
    if kind == ".vtt":
        return parse_vtt(text, source)
    if kind == ".srt":
        return parse_srt(text, source)
    raise CaptionError(f"{source}: unknown transcript format {kind!r}; accepted: .vtt, .srt")


def nearest_captions(cues: Sequence[Cue], start: float, end: float, k: int = 5) -> tuple[list[str], list[bool]]:
    """The ``k`` captions nearest in time to the window ``[start, end]``, and which are real.

    Distance is the gap between cue and window (0 when they overlap); ties go to the larger
    overlap, then to the cue whose centre is nearer the window's centre, then to the earlier
    cue. The first caption is thus the window's own narration and the rest its neighbours.
    Fewer than ``k`` cues are padded with ``""`` and a ``False`` mask entry.
    """
    centre = (start + end) / 2

    def key(item: tuple[int, Cue]) -> tuple[float, float, float, int]:
        i, c = item
        gap = max(0.0, c.start - end, start - c.end)
        overlap = max(0.0, min(end, c.end) - max(start, c.start))
        return (gap, -overlap, abs((c.start + c.end) / 2 - centre), i)

    chosen = [c.text for _, c in sorted(enumerate(cues), key=key)[:k]]
    mask = [True] * len(chosen) + [False] * (k - len(chosen))
    return chosen + [""] * (k - len(chosen)), mask
