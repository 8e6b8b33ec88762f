"""Media kept for playback (`media/<item_id>.<ext>`) and JPEG thumbnails (`thumbs/<item_id>.jpg`).

The extension comes from what FFmpeg found when probing, never from the upload's name, so the
Content-Type GET /media sends matches the bytes. Thumbnails are one frame encoded by FFmpeg's
MJPEG encoder through PyAV (no imaging library), cached on first request.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from fractions import Fraction
from pathlib import Path

import av

from model.media import MediaError, MediaInfo, frame_at

__all__ = ["MediaStore", "CONTENT_TYPES", "media_ext"]

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    "mp4": "video/mp4", "m4a": "audio/mp4", "mov": "video/quicktime", "webm": "video/webm",
    "weba": "audio/webm", "mkv": "video/x-matroska", "mka": "audio/x-matroska", "avi": "video/x-msvideo",
    "wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg", "opus": "audio/ogg",
    "aac": "audio/aac", "bin": "application/octet-stream",
}
_WEBM_VIDEO = {"vp8", "vp9", "av1"}
_WEBM_AUDIO = {"opus", "vorbis", None}
_ID = re.compile(r"^[0-9a-f]{32}$")
THUMB_WIDTH = 320


def media_ext(info: MediaInfo) -> str:
    """A playable extension for what was probed (mp4 family -> mp4/m4a, matroska -> webm/mkv, ...)."""
    c = info.container.lower()
    if c in ("mov", "mp4", "m4a", "3gp", "3g2", "mj2", "m4v"):
        return "mp4" if info.has_video else "m4a"
    if c in ("matroska", "webm", "mkv", "mka"):
        if (not info.has_video or info.video_codec in _WEBM_VIDEO) and info.audio_codec in _WEBM_AUDIO:
            return "webm" if info.has_video else "weba"
        return "mkv" if info.has_video else "mka"
    if c in ("ogg", "oga"):
        return "ogg"
    return c if c in CONTENT_TYPES else "bin"


class MediaStore:
    """Files under the data directory, named by item id (ids are uuid hex, so names are safe)."""

    def __init__(self, media_dir: Path, thumbs_dir: Path) -> None:
        self.media_dir = media_dir
        self.thumbs_dir = thumbs_dir
        media_dir.mkdir(parents=True, exist_ok=True)
        thumbs_dir.mkdir(parents=True, exist_ok=True)

    def find(self, item_id: str) -> Path | None:
        """The stored media of an item, or None (no such item, or ingested before media was kept)."""
        if not _ID.match(item_id):
            return None
        for path in self.media_dir.glob(f"{item_id}.*"):
            if path.exists():  # a symlink to a server path that has gone counts as missing
                return path
        return None

    def put(self, src: Path, item_id: str, info: MediaInfo) -> Path:
        """Move an upload into place (a rename: uploads are spooled on the same disk)."""
        dest = self.media_dir / f"{item_id}.{media_ext(info)}"
        try:
            os.replace(src, dest)
        except OSError:  # another filesystem after all
            shutil.move(str(src), dest)
        return dest

    def link(self, src: Path, item_id: str, info: MediaInfo) -> Path:
        """A server-path item is not copied: a symlink to it serves playback."""
        dest = self.media_dir / f"{item_id}.{media_ext(info)}"
        dest.unlink(missing_ok=True)
        dest.symlink_to(src.resolve())
        return dest

    def rename(self, old_id: str, new_id: str) -> None:
        path = self.find(old_id)
        if path is not None:
            os.replace(path, path.with_name(f"{new_id}{path.suffix}"))

    def remove(self, item_id: str) -> None:
        if not _ID.match(item_id):
            return
        for path in [*self.media_dir.glob(f"{item_id}.*"), *self.thumbs_dir.glob(f"{item_id}.*")]:
            path.unlink(missing_ok=True)

    def remove_orphans(self, *, keep: set[str]) -> int:
        """Delete media and thumbnails whose item id is not in `keep` (left by a crash); returns how many."""
        removed = 0
        for directory in (self.media_dir, self.thumbs_dir):
            for path in directory.iterdir():
                stem = path.name.split(".", 1)[0]
                if stem not in keep and (_ID.match(stem) or path.name.endswith(".tmp")):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    @staticmethod
    def content_type(path: Path) -> str:
        return CONTENT_TYPES.get(path.suffix.lstrip(".").lower(), "application/octet-stream")

    def thumbnail(self, item_id: str, at: float | None = None, *, path: Path | None = None) -> bytes | None:
        """JPEG of the frame at `at` seconds (default: 1 s in, or the first frame) of `path` (default:
        the stored media); None without video.

        The default thumbnail is cached; one for an explicit time is made fresh each time.
        """
        cached = self.thumbs_dir / f"{item_id}.jpg"
        if at is None and cached.is_file():
            return cached.read_bytes()
        path = path or self.find(item_id)
        if path is None:
            return None
        try:
            jpeg = _frame_jpeg(path, 1.0 if at is None else at)
        except (MediaError, av.error.FFmpegError) as exc:
            log.warning("no thumbnail for %s: %s", path.name, exc)
            return None
        if jpeg is not None and at is None:
            tmp = cached.with_suffix(".jpg.tmp")
            tmp.write_bytes(jpeg)
            os.replace(tmp, cached)
        return jpeg


def _frame_jpeg(path: Path, at: float) -> bytes | None:
    """The frame `model.media.frame_at` grabs, scaled to THUMB_WIDTH and encoded by FFmpeg's MJPEG.

    One libswscale thread: a context with slice threads that the garbage collector frees later, in a child
    this process forks (a process pool), joins threads the child does not have and hangs it."""
    rgb = frame_at(path, at)
    if rgb is None:
        return None
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    width = min(THUMB_WIDTH, frame.width) // 2 * 2
    height = max(2, round(frame.height * width / frame.width) // 2 * 2)
    image = frame.reformat(width=width, height=height, format="yuvj420p", threads=1)
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    packets = [*encoder.encode(image), *encoder.encode(None)]
    return b"".join(bytes(p) for p in packets)
