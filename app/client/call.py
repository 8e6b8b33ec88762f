"""One request as data (`Call`) and the retry policy, shared by the sync and the async client.

A `Call` says what to send and how to read the answer; `Client` and `AsyncClient` only differ in how
they send it (and sleep between tries), so every route is described once, in routes.py.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from .errors import UnreachableError, error_from

__all__ = ["Call", "RETRY_STATUSES", "RETRIES", "MAX_RETRY_WAIT_S", "CATALOGUE_PATHS", "Endpoint", "in_collection",
           "retry_wait", "should_retry"]

T = TypeVar("T")

RETRY_STATUSES = (429, 503)  # busy or starting: worth another try after Retry-After
RETRIES = 8
MAX_RETRY_WAIT_S = 30.0
LASTING = ("read_only",)  # 503 codes that another try will not change
# a collection's routes: these, under /collections/NAME (app.main.CATALOGUE_ROUTERS); the rest are the service's
CATALOGUE_PATHS = ("/items", "/jobs", "/search", "/classify", "/media")


@dataclass
class Call(Generic[T]):
    """What one route needs sent, and `parse` to turn a successful response into its typed result.

    `uploads` are (field -> file path): opened afresh for every try, so a retried upload sends the whole
    file again. `answers` are error statuses whose body is still a result (GET /readyz's 503)."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, Any] | None = None
    content: bytes | None = None
    headers: dict[str, str] | None = None
    uploads: dict[str, Path] = field(default_factory=dict)
    answers: tuple[int, ...] = ()

    def url(self, collection: str | None) -> str:
        return in_collection(self.path, collection)

    def request_args(self, stack: ExitStack) -> dict[str, Any]:
        """Keyword arguments for httpx's `request`, the upload files opened on `stack`."""
        files = {name: (path.name, stack.enter_context(open(path, "rb"))) for name, path in self.uploads.items()}
        args = {"params": self.params, "json": self.json, "data": self.data, "content": self.content,
                "headers": self.headers, "files": files or None}
        return {k: v for k, v in args.items() if v is not None}

    def result(self, response: httpx.Response) -> T:
        """The typed result, or the `APIError` the response carries."""
        if response.status_code >= 400 and response.status_code not in self.answers:
            raise error_from(response)
        return self.parse(response)


class Endpoint:
    """What the sync and the async client both hold: the server, the retries, the collection their catalogue
    routes go to (None: the default one), and the one line an unreachable server gives."""

    def __init__(self, base_url: str, *, retries: int, where: str | None, collection: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.where = where or self.base_url
        self.collection = collection

    @staticmethod
    def headers(api_key: str | None) -> dict[str, str] | None:
        return {"X-API-Key": api_key} if api_key else None

    def unreachable(self, exc: httpx.HTTPError) -> UnreachableError:
        return UnreachableError(f"cannot reach the service at {self.where}: {exc or type(exc).__name__}")


def in_collection(path: str, collection: str | None) -> str:
    """`path` in `collection`: catalogue routes under /collections/NAME; None or "default" (today's routes)
    and the service's own routes as they are."""
    if collection in (None, "default") or not path.startswith(CATALOGUE_PATHS):
        return path
    return f"/collections/{quote(collection, safe='')}{path}"


def retry_wait(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait before retrying: the server's Retry-After when it is a number, else 0.5 * 2**attempt."""
    try:
        wait = float(response.headers.get("retry-after", ""))
    except ValueError:
        wait = 0.5 * 2 ** attempt
    return min(max(wait, 0.0), MAX_RETRY_WAIT_S)


def should_retry(call: Call[Any], response: httpx.Response, attempt: int, retries: int) -> bool:
    """429 and 503 are tried again, up to `retries` times, unless the route reads that status as an answer
    or the server says the state lasts (a read-only service or data directory)."""
    if response.status_code not in RETRY_STATUSES or response.status_code in call.answers or attempt >= retries:
        return False
    return error_from(response).code not in LASTING

