"""Transcripts on their way into the catalogue: an uploaded or sidecar file read into cues, kept beside the
ingest job until its item exists (jobs survive restarts, so the cues wait on disk, not in memory).

Which transcript an item gets, first found wins: the one uploaded with it (or PUT later), a sidecar beside a
server-path file (NAME.vtt, NAME.srt, NAME.LANG.vtt), the file's own text subtitle streams.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from index import ITEM_ID
from model.captions import CaptionError, Cue, cues_from_json, parse_transcript, read_captions, sidecar_transcripts

from ..errors import ServiceError

log = logging.getLogger(__name__)

__all__ = ["PendingTranscripts", "parse_upload", "sidecar_cues"]

_TYPES = {"text/vtt": ".vtt", "application/x-subrip": ".srt", "text/srt": ".srt", "application/json": ".json"}


def parse_upload(data: bytes, *, filename: str = "", content_type: str | None = None) -> list[Cue]:
    """Cues from an uploaded transcript: chosen by the file name's suffix, else the content type, else sniffed
    (``WEBVTT`` header, JSON, SubRip). JSON is ``[{start, end, text}]`` or ``{"cues": [...]}``. 422 otherwise."""
    kind = Path(filename).suffix.lower()
    if kind not in (".vtt", ".srt", ".json"):
        kind = _TYPES.get((content_type or "").split(";")[0].strip().lower(), "")
    if not kind:
        head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:6]
        kind = ".vtt" if head.startswith(b"WEBVTT") else ".json" if head[:1] in (b"[", b"{") else ".srt"
    try:
        if kind == ".json":
            doc = json.loads(data.decode("utf-8"))
            cues = doc.get("cues") if isinstance(doc, dict) else doc
            if not isinstance(cues, list) or not all(isinstance(c, dict) for c in cues):
                raise CaptionError("JSON transcript must be [{start, end, text}] or {\"cues\": [...]}")
            return cues_from_json(cues, filename or "transcript")
        return parse_transcript(data, kind, filename or "transcript")
    except (CaptionError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ServiceError(422, f"the transcript could not be read: {exc}; accepted: WebVTT, SubRip (.srt) or JSON "
                                "cues [{start, end, text}]", code="bad_transcript") from None


def sidecar_cues(media: Path) -> list[Cue] | None:
    """Cues of the best sidecar beside a server-path file, or None when there is none (or it cannot be read:
    the media is still ingested, and the log says why its transcript is missing)."""
    for path in sidecar_transcripts(media):
        try:
            return read_captions(path)
        except (CaptionError, OSError, UnicodeDecodeError) as exc:
            log.warning("sidecar transcript %s skipped: %s", path, exc)
    return None


class PendingTranscripts:
    """Cues waiting for their ingest job's item, one JSON file per item id (written atomically)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, item_id: str) -> Path | None:
        return self.directory / f"{item_id}.json" if ITEM_ID.fullmatch(item_id) else None

    def put(self, item_id: str, cues: list[Cue]) -> None:
        path = self._path(item_id)
        if path is None:
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([list(c) for c in cues]), encoding="utf-8")
        os.replace(tmp, path)

    def get(self, item_id: str) -> list[tuple[float, float, str]] | None:
        path = self._path(item_id)
        try:
            rows: Any = json.loads(path.read_text(encoding="utf-8")) if path else None
        except FileNotFoundError:
            return None
        return [(float(s), float(e), str(t)) for s, e, t in rows] if rows is not None else None

    def discard(self, item_id: str) -> None:
        path = self._path(item_id)
        if path is not None:
            path.unlink(missing_ok=True)

    def discard_except(self, keep: set[str]) -> int:
        """Drop the cues of jobs that no longer exist (left by a crash); returns how many."""
        n = 0
        for path in self.directory.glob("*.json"):
            if path.stem not in keep:
                path.unlink(missing_ok=True)
                n += 1
        return n
