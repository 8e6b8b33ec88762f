"""Transcripts as cues: the WebVTT, SubRip and inline-JSON readers, and a file's own subtitle streams.

One home for every reader of timed text, used by training (captions nearest a clip), the catalogue
(transcripts searched by keyword; `index` stores plain ``(start, end, text)`` tuples and never parses)
and the service (uploads, sidecars, embedded streams). It lives in `model` because the import arrows
let both `app` and `training` reach `model`, and `index` needs no parser. A `Cue` *is* the tuple
``(start, end, text)``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = ["CaptionError", "Cue", "TRANSCRIPT_SUFFIXES", "cues_from_json", "format_vtt", "parse_srt",
           "parse_timestamp", "parse_transcript", "parse_vtt", "read_captions", "sidecar_transcripts"]


class CaptionError(ValueError):
    """A transcript file or inline transcript could not be read."""


class Cue(NamedTuple):
    """One caption: ``text`` spoken from ``start`` to ``end`` seconds (a plain tuple, so the catalogue can store it)."""

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
    return _block_cues([(n, b) for n, b in enumerate(blocks[1:], start=2)
                        if not b[0].startswith(("NOTE", "STYLE", "REGION"))], source)


def parse_srt(text: str, source: str = "<srt>") -> list[Cue]:
    """Parse SubRip: blocks of a counter line, a ``hh:mm:ss,mmm --> hh:mm:ss,mmm`` line and text."""
    return _block_cues(list(enumerate(_blocks(text), start=1)), source)


def _block_cues(blocks: Sequence[tuple[int, list[str]]], source: str) -> list[Cue]:
    """The cues of numbered text blocks (an optional id line, a `start --> end` line, the text), in time
    order: the part WebVTT and SubRip share."""
    cues = []
    for n, block in blocks:
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


TRANSCRIPT_SUFFIXES = (".vtt", ".srt", ".json")


def _stamp(seconds: float) -> str:
    ms = round(max(0.0, seconds) * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def format_vtt(cues: Iterable[Sequence[object]]) -> str:
    """Cues as a WebVTT document (what ``parse_vtt`` reads back; text is escaped so it stays text)."""
    blocks = ["WEBVTT"]
    for start, end, text in cues:  # type: ignore[misc]
        safe = html.escape(str(text), quote=False).replace("-->", "--&gt;")
        blocks.append(f"{_stamp(float(start))} --> {_stamp(float(end))}\n{safe}")  # type: ignore[arg-type]
    return "\n\n".join(blocks) + "\n"


def sidecar_transcripts(media: str | Path) -> list[Path]:
    """Transcript files beside a media file, best first: ``NAME.vtt``, ``NAME.srt``, then ``NAME.LANG.vtt`` /
    ``NAME.LANG.srt`` (the convention video downloaders use; English first, then by name)."""
    media = Path(media)
    exact = [media.with_suffix(s) for s in (".vtt", ".srt")]
    found = [p for p in exact if p.is_file()]
    stem = media.with_suffix("").name
    try:
        siblings = sorted(media.parent.iterdir())
    except OSError:
        return found
    tagged = [p for p in siblings if p.suffix.lower() in (".vtt", ".srt") and p.is_file()
              and p.name.startswith(stem + ".") and p.with_suffix("").suffix and p.with_suffix("").name == stem
              + p.with_suffix("").suffix and p not in found]
    tagged.sort(key=lambda p: (not p.with_suffix("").suffix.lower().startswith(".en"), p.name))
    return found + tagged


_ASS_TAG = re.compile(r"\{[^}]*\}")


def _ass_text(line: str) -> str:
    """The text of a libavcodec ASS event ("ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text", or a
    full "Dialogue: …" line), without override tags; ``\\N`` and ``\\n`` are line breaks."""
    line = line.strip()
    if line.startswith("Dialogue:"):
        line = line[len("Dialogue:"):].strip()
        fields = line.split(",", 9)
    else:
        fields = line.split(",", 8)
    text = fields[-1]
    return _clean([_ASS_TAG.sub("", text).replace("\\N", " ").replace("\\n", " ").replace("\\h", " ")])


def read_subtitle_streams(source: object) -> list[Cue]:
    """Cues of a media file's own text subtitle streams (mov_text in MP4, SubRip/ASS/WebVTT in MKV/WebM),
    decoded by PyAV; the first stream that yields cues wins. `source` is a path or a binary file object.
    Bitmap subtitles (DVD, PGS) carry no text and are skipped; a file PyAV cannot open has no cues."""
    import av  # PyAV: the media decoder the model already uses

    try:
        container = av.open(source if not isinstance(source, Path) else str(source))
    except (av.error.FFmpegError, OSError, ValueError):
        return []
    try:
        for stream in container.streams.subtitles:
            cues = _stream_cues(container, stream)
            if cues:
                return cues
    finally:
        container.close()
    return []


def _rect_text(rect: object) -> str:
    """A decoded text subtitle's words (ASS events lose their fields and override tags); bitmaps give ""."""
    kind = getattr(rect, "type", b"")
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if kind == "ass":
        raw = rect.ass  # type: ignore[attr-defined]
        return _ass_text(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)
    if kind == "text":
        raw = rect.text  # type: ignore[attr-defined]
        return _clean([raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw])
    return ""


def _stream_cues(container: object, stream: object) -> list[Cue]:
    import av

    cues = []
    start_time = container.start_time  # type: ignore[attr-defined]
    origin = start_time / 1e6 if start_time is not None else 0.0  # the media's time zero, as model.media counts it
    try:
        container.seek(0)  # type: ignore[attr-defined]
    except av.error.FFmpegError:
        pass
    try:
        for packet in container.demux(stream):  # type: ignore[attr-defined]
            if packet.pts is None:
                continue
            base = float(packet.pts * packet.time_base) - origin
            span = float(packet.duration * packet.time_base) if packet.duration else 0.0
            for decoded in packet.decode():
                # PyAV < 14 yields a SubtitleSet (display times in ms from the packet, rects inside); later
                # versions yield the rects themselves, timed by their packet
                rects = list(decoded) if hasattr(decoded, "start_display_time") else [decoded]
                start, end = base, base + span
                if hasattr(decoded, "start_display_time"):
                    start = base + decoded.start_display_time / 1000.0
                    end = base + decoded.end_display_time / 1000.0 if decoded.end_display_time else end
                text = " ".join(t for t in (_rect_text(r) for r in rects) if t)
                if text:
                    start = max(0.0, start)
                    cues.append(Cue(start, max(start, end), text))
    except av.error.FFmpegError:
        pass  # a damaged subtitle packet ends the stream's cues; the media itself is judged elsewhere
    return sorted(cues, key=lambda c: (c.start, c.end))
