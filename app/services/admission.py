"""Admission control for file encodes: a bounded number at once, 429 past it, cancelled on disconnect.

File-taking routes (`/embed`, `/search` and `/classify` with a file) decode and embed whole
files on the shared model; without a bound, a few clients with long files starve everyone. A
slot is taken before the upload is read (so a refused client has not sent gigabytes for
nothing) and released when the route ends; while a slot is held, a watcher notices a client that
went away and the encode stops between windows.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import Request

from ..errors import ServiceError

__all__ = ["Admission", "CancelToken"]

log = logging.getLogger(__name__)

_POLL_S = 0.25


class CancelToken:
    """Set when the client disconnected; `Encoder.embed_file(cancel=token.is_set)` checks it between windows."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class Admission:
    """At most `limit` concurrent file encodes; the rest are told to come back (429 + Retry-After)."""

    def __init__(self, limit: int, *, retry_after_s: int = 2) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self._active = 0
        self.refused = 0

    @property
    def active(self) -> int:
        return self._active

    @asynccontextmanager
    async def slot(self, request: Request) -> AsyncIterator[CancelToken]:
        """Hold one encode slot for this request (429 when none is free)."""
        if self._active >= self.limit:  # the event loop is single-threaded: no lock needed
            self.refused += 1
            raise ServiceError(429, f"the server is already encoding {self.limit} files, its limit "
                                    f"(setting max_concurrent_encodes); retry after {self.retry_after_s} s",
                               headers={"Retry-After": str(self.retry_after_s)})
        self._active += 1
        token = CancelToken()
        watcher = asyncio.create_task(_watch(request, token))
        try:
            yield token
        finally:
            watcher.cancel()
            self._active -= 1


async def _watch(request: Request, token: CancelToken) -> None:
    """Poll for the client's disconnect while its encode runs."""
    try:
        while not token.is_set():
            await asyncio.sleep(_POLL_S)
            if await request.is_disconnected():
                log.info("client of %s went away; cancelling its encode", request.url.path)
                token.set()
    except asyncio.CancelledError:
        pass
