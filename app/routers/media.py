"""GET /media/{item_id}: the stored media through Starlette's FileResponse (Range, If-Range, ETag,
Last-Modified), after the item and server-path root checks, resolving symlinks on every read."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.concurrency import run_in_threadpool
from starlette.responses import FileResponse

from ..bodies import error_responses
from ..deps import CatalogDep, SourcesDep, StoreDep
from ..errors import ServiceError

router = APIRouter(prefix="/media", tags=["media"])

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
MAX_RANGE_HEADER = 1024  # characters in a Range header
MAX_RANGE_DIGITS = 18  # a byte offset never needs more (2**63 has 19 digits)


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range [start, end] (inclusive) a Range header asks for; None = several ranges.

    A range that is malformed, lies past the end or has an offset longer than MAX_RANGE_DIGITS
    raises 416 with a message; FileResponse then serves what was asked.
    """
    if len(header) > MAX_RANGE_HEADER or any(len(d) > MAX_RANGE_DIGITS for d in re.findall(r"\d+", header)):
        raise ServiceError(416, f"the Range header is too long: at most {MAX_RANGE_HEADER} characters and "
                                f"{MAX_RANGE_DIGITS} digits per offset", headers={"Content-Range": f"bytes */{size}"})
    unsatisfiable = ServiceError(416, f"range {header.strip()[:100]!r} is not satisfiable: the file has {size} bytes "
                                      "(accepted: 'bytes=start-end', 'bytes=start-', 'bytes=-suffix')",
                                 headers={"Content-Range": f"bytes */{size}"})
    if "," in header:
        if not header.strip().lower().startswith("bytes"):
            raise unsatisfiable
        return None
    m = _RANGE.match(header)
    if not m or (not m.group(1) and not m.group(2)):
        raise unsatisfiable
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise unsatisfiable
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise unsatisfiable
    return start, end


@router.get("/{item_id}", summary="Play an item's stored media (Range, If-Range, ETag supported)",
            responses={200: {"content": {"video/mp4": {}, "audio/wav": {}}, "description": "the whole file"},
                       206: {"description": "the requested byte range"},
                       **error_responses(404, 416)})
async def get_media(item_id: str, catalog: CatalogDep, store: StoreDep, sources: SourcesDep,
                    range: Annotated[str | None, Header(description="bytes=start-end")] = None) -> FileResponse:
    item = await run_in_threadpool(catalog.get_item, item_id)  # 404 for unknown items
    path = await run_in_threadpool(sources.path, item)
    if path is None:
        raise ServiceError(404, f"the media of item {item_id} is not stored on this server (or its server path "
                                "is no longer under an allowed root)")
    if range is not None:
        parse_range(range, path.stat().st_size)  # our 416s, with messages, before FileResponse sees it
    stored = await run_in_threadpool(store.find, item_id)  # named by what FFmpeg probed; else the source's name
    return FileResponse(path, media_type=store.content_type(stored or path),
                        headers={"Cache-Control": "max-age=3600"})
