"""A small client for the service, over HTTP (`--url`) or in-process (`--model DIR --data DIR`).

Local mode runs the very same ASGI app, lifespan included, on a private event loop thread and
talks to it through httpx's ASGI transport: the CLI has one code path, and what it does locally
is exactly what a server would do.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, ExitStack
from pathlib import Path
from typing import Any

import httpx

__all__ = ["ServiceClient", "ClientError", "connect", "retry_wait"]

_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
RETRY_STATUSES = (429, 503)  # busy or starting: worth another try after Retry-After
RETRIES = 8
MAX_RETRY_WAIT_S = 30.0


class ClientError(Exception):
    """A failed call, as one line: what the server said, or why it could not be reached."""


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        message = f"{body.get('error', 'error')}: {body.get('detail', '')}"
    except ValueError:
        message = response.text[:200] or response.reason_phrase
    raise ClientError(f"HTTP {response.status_code} {message}")


def retry_wait(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait before retrying: the server's Retry-After when it is a number, else 0.5 * 2**attempt."""
    try:
        wait = float(response.headers.get("retry-after", ""))
    except ValueError:
        wait = 0.5 * 2 ** attempt
    return min(max(wait, 0.0), MAX_RETRY_WAIT_S)


class _LocalTransport:
    """Runs an app's lifespan and requests on a background event loop; sync methods for the CLI."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="vatt-local", daemon=True)
        self.thread.start()
        self._lifespan: AbstractAsyncContextManager | None = None
        self.client: httpx.AsyncClient | None = None

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def start(self) -> None:
        async def enter() -> None:
            self._lifespan = self.app.router.lifespan_context(self.app)
            await self._lifespan.__aenter__()
            self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://local",
                                            timeout=_TIMEOUT)
        try:
            self.run(enter())
        except BaseException:
            self.stop_loop()
            raise

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.run(self.client.request(method, url, **kwargs))

    def close(self) -> None:
        async def leave() -> None:
            if self.client is not None:
                await self.client.aclose()
            if self._lifespan is not None:
                await self._lifespan.__aexit__(None, None, None)
        try:
            self.run(leave())
        finally:
            self.stop_loop()

    def stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


class ServiceClient:
    """The calls the CLI makes; every failure is a `ClientError` with a one-line message."""

    def __init__(self, request: Callable[..., httpx.Response], close: Callable[[], None], where: str) -> None:
        self._request = request
        self._close = close
        self.where = where

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *_: Any) -> None:
        self._close()

    def call(self, method: str, url: str, **kwargs: Any) -> Any:
        """One request; 429 and 503 are retried (honouring Retry-After, else exponential backoff)."""
        for attempt in range(RETRIES + 1):
            for _, value in (kwargs.get("files") or {}).items():
                value[1].seek(0)  # a retried upload sends the whole file again
            try:
                response = self._request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                raise ClientError(f"cannot reach the service at {self.where}: {exc or type(exc).__name__}") from None
            if response.status_code not in RETRY_STATUSES or attempt == RETRIES:
                break
            time.sleep(retry_wait(response, attempt))
        _raise_for(response)
        return response.json()

    # --- operations -------------------------------------------------------------------------------
    def embed_text(self, texts: list[str]) -> dict:
        return self.call("POST", "/embed", json={"texts": texts})

    def embed_file(self, path: Path, spaces: list[str] | None = None) -> dict:
        data = {"spaces": ",".join(spaces)} if spaces else {}
        with open(path, "rb") as fh:
            return self.call("POST", "/embed", files={"file": (path.name, fh)}, data=data)

    def search(self, *, text: str | None = None, item_id: str | None = None, file: Path | None = None,
               **options: Any) -> dict:
        options = {k: v for k, v in options.items() if v is not None}
        if file is None:
            body = {"text": text} if text is not None else {"item_id": item_id}
            return self.call("POST", "/search", json={**body, **options})
        form = {k: (json.dumps(v) if k == "where" else ",".join(v) if isinstance(v, list) else str(v))
                for k, v in options.items()}
        with open(file, "rb") as fh:
            return self.call("POST", "/search", files={"file": (file.name, fh)}, data=form)

    def classify(self, labels: list[str], template: str, *, file: Path | None = None,
                 item_id: str | None = None) -> dict:
        if file is None:
            return self.call("POST", "/classify", json={"item_id": item_id, "labels": labels, "template": template})
        with open(file, "rb") as fh:
            return self.call("POST", "/classify", files={"file": (file.name, fh)},
                             data={"labels": json.dumps(labels), "template": template})

    def ingest(self, path: Path, metadata: dict[str, Any] | None = None) -> dict:
        """Upload a file, with the best transcript sidecar beside it (NAME.vtt, NAME.srt, NAME.LANG.vtt) if any."""
        from model.captions import sidecar_transcripts  # lazily: `vatt --help` loads no model package

        sidecars = sidecar_transcripts(path)
        with ExitStack() as stack:
            files: dict[str, Any] = {"file": (path.name, stack.enter_context(open(path, "rb")))}
            if sidecars:
                files["transcript"] = (sidecars[0].name, stack.enter_context(open(sidecars[0], "rb")))
            return self.call("POST", "/items", files=files, data={"metadata": json.dumps(metadata or {})})

    def job(self, job_id: str) -> dict:
        return self.call("GET", f"/jobs/{job_id}")

    def wait(self, job_id: str, on_progress: Callable[[dict], None] | None = None, poll_s: float = 0.2,
             timeout_s: float = 24 * 3600) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job["status"] in ("done", "failed", "cancelled"):
                return job
            if time.monotonic() > deadline:
                raise ClientError(f"job {job_id} did not finish within {timeout_s:.0f} s")
            time.sleep(poll_s)


def connect(*, url: str | None, model: Path | None, data: Path | None, api_key: str | None = None,
            settings_overrides: dict[str, Any] | None = None) -> ServiceClient:
    """A client for a running server (`url`) or for an in-process app on `model` + `data`."""
    headers = {"X-API-Key": api_key} if api_key else {}
    if url:
        client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=_TIMEOUT)
        return ServiceClient(client.request, client.close, url)
    if model is None or data is None:
        raise ClientError("say where the service is: --url URL for a running server, or --model DIR and "
                          "--data DIR to work on a local model and data directory")
    from .main import create_app
    from .settings import load_settings

    settings = load_settings({"model_dir": "--model", "data_dir": "--data", "precision": "--precision"},
                             model_dir=model, data_dir=data, api_key=api_key, **(settings_overrides or {}))
    local = _LocalTransport(create_app(settings))
    local.start()

    def request(method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", headers)
        return local.request(method, path, **kwargs)

    return ServiceClient(request, local.close, f"{model} + {data}")
