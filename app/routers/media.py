"""GET /media/{item_id}: the stored media, with HTTP Range (206/416) so players can seek to a moment."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Response
from fastapi.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from ..deps import CatalogDep, StoreDep
from ..errors import ServiceError
from ..schemas import ErrorBody

router = APIRouter(prefix="/media", tags=["media"])

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_CHUNK = 256 * 1024


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range [start, end] (inclusive) a Range header asks for; None = the whole file.

    Several ranges are answered with the whole file (allowed by RFC 9110); a range that is
    malformed or lies past the end raises 416.
    """
    if "," in header:
        return None
    m = _RANGE.match(header)
    unsatisfiable = ServiceError(416, f"range {header.strip()[:100]!r} is not satisfiable: the file has {size} bytes "
                                      "(accepted: 'bytes=start-end', 'bytes=start-', 'bytes=-suffix')",
                                 headers={"Content-Range": f"bytes */{size}"})
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


async def _file_chunks(path: Path, start: int, length: int):
    async with await anyio.open_file(path, "rb") as f:
        await f.seek(start)
        remaining = length
        while remaining > 0:
            chunk = await f.read(min(_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk


@router.get("/{item_id}", summary="Play an item's stored media (Range supported)",
            responses={200: {"content": {"video/mp4": {}, "audio/wav": {}}, "description": "the whole file"},
                       206: {"description": "the requested byte range"},
                       404: {"model": ErrorBody}, 416: {"model": ErrorBody}})
async def get_media(item_id: str, catalog: CatalogDep, store: StoreDep,
                    range: Annotated[str | None, Header(description="bytes=start-end")] = None) -> Response:
    await run_in_threadpool(catalog.get_item, item_id)  # 404 for unknown items
    path = await run_in_threadpool(store.find, item_id)
    if path is None:
        raise ServiceError(404, f"the media of item {item_id} is not stored on this server")
    size = os.stat(path).st_size
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "max-age=3600"}
    span = parse_range(range, size) if range is not None else None
    media_type = store.content_type(path)
    if span is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_file_chunks(path, 0, size), media_type=media_type, headers=headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(_file_chunks(path, start, end - start + 1), status_code=206, media_type=media_type,
                             headers=headers)
