"""Request bodies read as they stream in, with the size limit enforced on the way.

FastAPI's `UploadFile` parses the whole body before a handler runs, so a limit checked there
comes after a 10 GB upload has been written. Here the raw stream goes through python-multipart's
push parser: the file part is written chunk by chunk to a temp file on the data disk and the
request fails with 413 as soon as it passes the limit (or at once, when Content-Length says so).
Nothing decides what the file *is* here: that is `model.media.probe`'s job, by decoding it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fastapi import Request
from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

from .errors import ServiceError
from .limits import loads_limited

__all__ = ["UploadedFile", "ParsedForm", "read_multipart", "read_json", "is_multipart", "safe_suffix"]

log = logging.getLogger(__name__)

_MULTIPART_OVERHEAD = 64 * 1024  # form fields and part headers allowed on top of the file limit
_MAX_FIELDS = 64
_MAX_FIELD_BYTES = 64 * 1024
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def safe_suffix(filename: str | None) -> str:
    """The upload's suffix if it is short and plain (a hint for FFmpeg's probing, never trusted)."""
    suffix = Path(filename or "").suffix
    return suffix.lower() if _SUFFIX.match(suffix) else ""


@dataclass
class UploadedFile:
    """A file part, already on disk; the caller moves it into place or calls `cleanup`."""

    path: Path
    filename: str
    size: int
    content_type: str | None
    sha256: str | None = None  # of the bytes, computed while they streamed in

    def cleanup(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


@dataclass
class ParsedForm:
    """Form fields (every value of repeated names, in order) and the one file part."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    file: UploadedFile | None = None
    small_files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # name -> (filename, bytes)

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def cleanup(self) -> None:
        if self.file is not None:
            self.file.cleanup()


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def _too_large(limit: int) -> ServiceError:
    return ServiceError(413, f"the upload is larger than the limit of {limit} bytes", code="payload_too_large")


def _check_length(request: Request, limit: int, *, quoted: int | None = None) -> None:
    """413 when Content-Length passes `limit`; the message quotes the configured limit (`quoted`)."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise ServiceError(400, f"Content-Length {length!r} is not a number") from None
        if declared > limit:
            raise _too_large(quoted or limit)


class _FormSink:
    """python-multipart callbacks: file data to a temp file, fields to small buffers."""

    def __init__(self, tmp_dir: Path, max_bytes: int, file_field: str,
                 small_files: Mapping[str, int] | None = None) -> None:
        self.tmp_dir, self.max_bytes, self.file_field = tmp_dir, max_bytes, file_field
        self.small_files = dict(small_files or {})  # extra file parts kept in memory, each with its byte limit
        self._filename = ""
        self.form = ParsedForm()
        self.ended = False
        self._headers: dict[str, str] = {}
        self._hname = b""
        self._hvalue = b""
        self._name: str | None = None
        self._fh: Any = None
        self._buf = bytearray()
        self._n_fields = 0
        self._hash: Any = None

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self.part_begin, "on_part_data": self.part_data, "on_part_end": self.part_end,
                "on_header_field": self.header_field, "on_header_value": self.header_value,
                "on_header_end": self.header_end, "on_headers_finished": self.headers_finished,
                "on_end": self.end}

    def part_begin(self) -> None:
        self._headers, self._name, self._buf = {}, None, bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def header_end(self) -> None:
        self._headers[self._hname.decode("latin-1").lower()] = self._hvalue.decode("latin-1")
        self._hname, self._hvalue = b"", b""

    def headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get("content-disposition", ""))
        if disposition != b"form-data" or b"name" not in params:
            raise ServiceError(400, "malformed multipart body: a part lacks 'Content-Disposition: form-data; name=...'")
        self._name = params[b"name"].decode("utf-8", "replace")
        if self._name in self.small_files:
            if self._name in self.form.small_files:
                raise ServiceError(400, f"send one {self._name!r} part per request")
            self._filename = params.get(b"filename", b"").decode("utf-8", "replace")
            return
        if b"filename" in params or self._name == self.file_field:
            if self._name != self.file_field:
                raise ServiceError(400, f"unexpected file part {self._name!r}; send the file as {self.file_field!r}")
            if self.form.file is not None:
                raise ServiceError(400, f"send one file per request (more than one {self.file_field!r} part)")
            filename = params.get(b"filename", b"").decode("utf-8", "replace")
            fd, path = tempfile.mkstemp(prefix="upload-", suffix=safe_suffix(filename), dir=self.tmp_dir)
            self._fh = os.fdopen(fd, "wb")
            self._hash = hashlib.sha256()
            self.form.file = UploadedFile(Path(path), filename, 0, self._headers.get("content-type"))
        else:
            self._n_fields += 1
            if self._n_fields > _MAX_FIELDS:
                raise ServiceError(400, f"too many form fields (at most {_MAX_FIELDS})")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._fh is not None:
            self.form.file.size += end - start
            if self.form.file.size > self.max_bytes:
                raise _too_large(self.max_bytes)
            piece = data[start:end]
            self._fh.write(piece)
            self._hash.update(piece)
        elif self._name in self.small_files:
            self._buf += data[start:end]
            if len(self._buf) > self.small_files[self._name]:
                raise ServiceError(413, f"the {self._name!r} part is larger than the limit of "
                                        f"{self.small_files[self._name]} bytes", code="payload_too_large")
        else:
            self._buf += data[start:end]
            if len(self._buf) > _MAX_FIELD_BYTES:
                raise ServiceError(413, f"form field {self._name!r} is longer than {_MAX_FIELD_BYTES} bytes",
                                   code="payload_too_large")

    def part_end(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self.form.file.sha256 = self._hash.hexdigest()
        elif self._name in self.small_files:
            self.form.small_files[self._name] = (self._filename, bytes(self._buf))
        elif self._name is not None:
            value = self._buf.decode("utf-8", "replace")
            self.form.fields.setdefault(self._name, []).append(value)

    def end(self) -> None:
        self.ended = True

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.form.cleanup()


async def read_multipart(request: Request, *, tmp_dir: Path, max_bytes: int, file_field: str = "file",
                         require_file: bool = True, small_files: Mapping[str, int] | None = None) -> ParsedForm:
    """Parse a multipart/form-data body as it arrives; the file part lands in `tmp_dir`.

    413 as soon as the file passes `max_bytes`; 400 for a malformed body (no boundary, broken
    parts, a body that ends before its closing boundary) or a missing file part.
    """
    _check_length(request, max_bytes + _MULTIPART_OVERHEAD, quoted=max_bytes)
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise ServiceError(400, "malformed multipart body: Content-Type must be multipart/form-data with a boundary")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    sink = _FormSink(tmp_dir, max_bytes, file_field, small_files)
    parser = MultipartParser(boundary, sink.callbacks())
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
        if not sink.ended:
            raise ServiceError(400, "malformed multipart body: it ends before the closing boundary")
    except MultipartParseError as exc:
        sink.abort()
        raise ServiceError(400, f"malformed multipart body: {exc}") from None
    except BaseException:
        sink.abort()
        raise
    if require_file and (sink.form.file is None or sink.form.file.size == 0):
        sink.abort()
        missing = "is empty" if sink.form.file is not None else "is missing"
        raise ServiceError(400 if sink.form.file is None else 422,
                           f"the {file_field!r} part {missing}; send a video or audio file as multipart field "
                           f"{file_field!r}", code="bad_request" if sink.form.file is None else "empty_media")
    return sink.form


async def read_body(request: Request, *, max_bytes: int, what: str = "request body") -> bytes:
    """A small raw body (a transcript), refused with 413 past `max_bytes` and 400 when empty."""
    _check_length(request, max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ServiceError(413, f"the {what} is larger than the limit of {max_bytes} bytes", code="payload_too_large")
    if not body:
        raise ServiceError(400, f"the request body is empty; send the {what}")
    return bytes(body)


async def read_json(request: Request, *, max_bytes: int) -> Any:
    """The JSON body, refused with 413 past `max_bytes` and 400 when it is not JSON."""
    _check_length(request, max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ServiceError(413, f"the JSON body is larger than the limit of {max_bytes} bytes",
                               code="payload_too_large")
    if not body:
        raise ServiceError(400, "the request body is empty; send JSON or a multipart/form-data upload")
    return loads_limited(bytes(body), what="the JSON body", code="invalid_json")
