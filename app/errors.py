"""One error body for every failure: `{"error": code, "detail": message}`.

Expected failures raise `ServiceError` (or FastAPI's `HTTPException`); the media and catalogue
exception families map to their status here, once. Anything else is logged with its request id
and answered with a plain 500 that carries the id and no traceback.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from index.errors import (CatalogError, CatalogLockedError, InvalidArgumentError, ItemNotFoundError, ReadOnlyError,
                          StoreUnavailableError)
from model.media import EmptyMediaError, MediaError, MediaTooLongError, UnreadableMediaError, UnsupportedMediaError

__all__ = ["ServiceError", "storage_error_status", "error_response", "install_error_handlers", "ERROR_CODES", "ACCEPTED_MEDIA"]

log = logging.getLogger(__name__)

ACCEPTED_MEDIA = ("video (mp4, mov, mkv, webm, avi) or audio (wav, mp3, flac, ogg, opus, m4a) "
                  "that FFmpeg can decode")

ERROR_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
    416: "range_not_satisfiable", 422: "unprocessable", 429: "too_many_requests", 500: "internal",
    503: "unavailable", 507: "insufficient_storage",
}


class ServiceError(Exception):
    """An expected failure with its HTTP status, a short machine code and a sentence for people."""

    def __init__(self, status: int, detail: str, *, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code or ERROR_CODES.get(status, "error")
        self.detail = detail
        self.headers = headers


def error_response(status: int, code: str, detail: str, *, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    """The one JSON error shape (`ErrorBody` in schemas.py)."""
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status, headers=headers)


def media_error_status(exc: MediaError) -> tuple[int, str, str]:
    """(status, code, message) for the media family: not decodable -> 415, too long -> 413, empty -> 422."""
    if isinstance(exc, MediaTooLongError):
        return 413, "media_too_long", str(exc)
    if isinstance(exc, EmptyMediaError):
        return 422, "empty_media", str(exc)
    if isinstance(exc, (UnreadableMediaError, UnsupportedMediaError)):
        message = str(exc) if "accepted" in str(exc) else f"{exc}; accepted: {ACCEPTED_MEDIA}"
        return 415, "unsupported_media_type", message
    return 422, "bad_media", str(exc)


def catalog_error_status(exc: CatalogError) -> tuple[int, str]:
    if isinstance(exc, ItemNotFoundError):
        return 404, "not_found"
    if isinstance(exc, InvalidArgumentError):
        return 400, "bad_request"
    if isinstance(exc, (CatalogLockedError, ReadOnlyError)):
        return 503, "unavailable"
    if isinstance(exc, StoreUnavailableError):
        return 503, "store_unavailable"
    return 500, "internal"


def storage_error_status(exc: BaseException) -> int | None:
    """507 for a full disk (ENOSPC/EDQUOT, SQLite's "disk is full"), 503 for a read-only one, else None."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return 507
    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        return 503
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        if "disk is full" in text or "disk i/o error" in text:
            return 507
        if "readonly" in text or "read-only" in text:
            return 503
    return None


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "-")


def _format_loc(loc: tuple | list) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


async def _service(request: Request, exc: ServiceError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.detail, headers=exc.headers)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, ERROR_CODES.get(exc.status_code, "error"), detail,
                          headers=getattr(exc, "headers", None))


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
               "type": str(e.get("type", ""))} for e in exc.errors()]
    detail = "; ".join(f"{_format_loc(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
    return error_response(422, "validation_error", detail, errors=errors)


async def _media(request: Request, exc: MediaError) -> JSONResponse:
    status, code, detail = media_error_status(exc)
    return error_response(status, code, detail)


async def _catalog(request: Request, exc: CatalogError) -> JSONResponse:
    status, code = catalog_error_status(exc)
    if status == 500:
        log.error("catalogue error (request %s): %s", _request_id(request), exc)
        return error_response(500, code, f"internal catalogue error (request id {_request_id(request)})")
    if code == "store_unavailable":  # the engine is down: say so, and when to come back
        log.warning("catalogue store unavailable (request %s): %s", _request_id(request), exc)
        return error_response(status, code, str(exc), headers={"Retry-After": "5"})
    return error_response(status, code, str(exc))


async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
    log.info("client went away during %s %s", request.method, request.url.path)  # nobody reads the answer
    return error_response(499, "client_closed_request", "the client closed the connection")


async def _storage(request: Request, exc: Exception) -> JSONResponse:
    status = storage_error_status(exc)
    if status == 507:
        return error_response(507, "insufficient_storage", "the server's disk is full: nothing was stored; "
                                                           "reads still work, try the write again later")
    if status == 503:
        return error_response(503, "read_only", "the server's data directory is read-only: searches and reads "
                                                "work, writes do not")
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error in %s %s (request %s)", request.method, request.url.path,
              _request_id(request), exc_info=exc)
    return error_response(500, "internal", f"internal server error (request id {_request_id(request)})")


# exception type -> handler; Starlette picks the most specific class of the raised exception
_HANDLERS: tuple[tuple[type[Exception], Callable[[Request, Any], Awaitable[JSONResponse]]], ...] = (
    (ServiceError, _service), (StarletteHTTPException, _http), (RequestValidationError, _validation),
    (MediaError, _media), (CatalogError, _catalog), (ClientDisconnect, _gone), (OSError, _storage),
    (sqlite3.OperationalError, _storage), (Exception, _unexpected),
)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every status the same JSON body."""
    for exc_type, handler in _HANDLERS:
        app.add_exception_handler(exc_type, handler)
