"""Local mode: the very same ASGI app, lifespan included, run in this process behind a `Client`.

`LocalTransport` runs the app on a private event-loop thread and hands each request of the
(blocking) `Client` to httpx's ASGI transport there: the CLI has one code path, and what it does
locally (`--model DIR --data DIR`) is exactly what a server would do.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx

from .errors import ClientError
from .sync import Client

__all__ = ["LocalTransport", "connect"]


class LocalTransport(httpx.BaseTransport):
    """A blocking httpx transport into an ASGI app served on a background event loop (its lifespan runs
    on `start()` and ends on `close()`)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="vatt-local", daemon=True)
        self.thread.start()
        self._lifespan: AbstractAsyncContextManager | None = None
        self._asgi = httpx.ASGITransport(app=app)

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def start(self) -> LocalTransport:
        async def enter() -> None:
            self._lifespan = self.app.router.lifespan_context(self.app)
            await self._lifespan.__aenter__()
        try:
            self._run(enter())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            response = await self._asgi.handle_async_request(request)
            body = b"".join([chunk async for chunk in response.stream])
            return httpx.Response(response.status_code, headers=response.headers, content=body)
        return self._run(send())

    def close(self) -> None:
        async def leave() -> None:
            if self._lifespan is not None:
                await self._lifespan.__aexit__(None, None, None)
                self._lifespan = None
            await self.loop.shutdown_default_executor()  # the app's to_thread workers end with it
        if not self.loop.is_running():
            return
        try:
            self._run(leave())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


def connect(*, url: str | None, model: Path | None = None, data: Path | None = None, api_key: str | None = None,
            settings_overrides: dict[str, Any] | None = None, read_only: bool = False,
            collection: str | None = None) -> Client:
    """A `Client` for a running server (`url`), or for the app run in-process on `model` + `data`
    (`read_only`: beside a server that holds the catalogue; reads only); `collection`: its catalogue
    routes go to that collection."""
    if url:
        return Client(url, api_key=api_key, collection=collection)
    if model is None or data is None:
        raise ClientError("say where the service is: --url URL for a running server, or --model DIR and "
                          "--data DIR to work on a local model and data directory")
    from ..main import create_app
    from ..settings import load_settings

    settings = load_settings({"model_dir": "--model", "data_dir": "--data", "precision": "--precision"},
                             model_dir=model, data_dir=data, api_key=api_key, **(settings_overrides or {}))
    transport = LocalTransport(create_app(settings, read_only=read_only)).start()
    return Client("http://local", api_key=api_key, transport=transport, where=f"{model} + {data}",
                  collection=collection)
