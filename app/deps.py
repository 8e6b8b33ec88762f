"""`Annotated` dependencies: routes read what the lifespan put in `app.state`, nothing global.

They are `async def` although they only read attributes: FastAPI runs a plain `def` dependency
in its threadpool, a thread hop per dependency per request.

`WriteAuth` guards the writes (POST /items, DELETE /items/{id}) when an API key is configured:
no key is a 401, a wrong one a 403, both with a sentence saying what to send. The key goes in
`X-API-Key`, or as `Authorization: Bearer <key>` (what OpenAI clients send): the same key either way.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from index import Catalog
from index.collections import DEFAULT_COLLECTION, NAME_RULE

from .errors import ServiceError
from .services.admission import Admission, CancelToken
from .services.collections import Collection, Collections
from .uploads import ParsedForm, is_multipart, read_multipart
from .metrics import Metrics
from .services.encoder import Encoder
from .services.ingest import IngestService
from .services.paths import ServerPaths
from .services.query import QueryService
from .services.sources import MediaSources
from .services.storage import MediaStore
from .services.supervised import SupervisedClassifier
from .settings import Settings

__all__ = ["CollectionDep", "CollectionsDep", "SourcesDep", "InCollection",
           "SettingsDep", "EncoderDep", "CatalogDep", "IngestDep", "QueryDep", "StoreDep", "MetricsDep", "PathsDep",
           "AdmissionDep", "SupervisedDep", "ReadyDep", "MaybeEncoderDep", "MaybeCatalogDep", "MaybeIngestDep",
           "WriteAuth", "ReadAuth", "require_api_key", "require_read_key",
           "FileOrJson", "EncodeFileOrJson", "Upload"]

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                               description="needed for writes when the server has an API key")
_bearer = HTTPBearer(auto_error=False, description="the same key as X-API-Key, as OpenAI clients send it")


def _state(request: Request, name: str) -> Any:
    value = getattr(request.app.state, name, None)
    if value is None and getattr(request.app.state, "read_only", False) and request.app.state.ready:
        raise ServiceError(503, "this service runs read-only beside the server that holds the catalogue: ingest "
                                "and jobs go through that server (--url URL)", code="read_only")
    if value is None:
        raise ServiceError(503, "the service is starting or stopping; try again shortly", code="unavailable")
    return value


def _required(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency reading `app.state.<name>`: 503 while the lifespan has not set it (or has cleared it)."""
    async def dependency(request: Request) -> Any:
        return _state(request, name)
    dependency.__name__ = f"app_state_{name}"
    return dependency


def _optional(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency reading `app.state.<name>`, None when absent (a feature switched off, or not loaded yet)."""
    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name, None)
    dependency.__name__ = f"app_state_{name}_or_none"
    return dependency


SettingsDep = Annotated[Settings, Depends(_optional("settings"))]  # set before the lifespan starts
MetricsDep = Annotated[Metrics, Depends(_optional("metrics"))]  # likewise
EncoderDep = Annotated[Encoder, Depends(_required("encoder"))]
PathsDep = Annotated[ServerPaths, Depends(_required("paths"))]
CollectionsDep = Annotated[Collections, Depends(_required("collections"))]


async def _collection_name(collection: Annotated[str, Path(description=f"the collection ({NAME_RULE})")]) -> None:
    """Declares `{collection}` of the routes mounted under /collections/{collection} (resolved by `_collection`)."""


InCollection = Depends(_collection_name)


async def _collection(request: Request, collections: CollectionsDep) -> Collection:
    """The route's collection: `{collection}` of its path, `default` for the routes without the prefix (400 for a
    name breaking the rule, 404 for an unknown one). Resolved once per request, whatever asks for a part of it."""
    return collections.get(request.path_params.get("collection", DEFAULT_COLLECTION))


CollectionDep = Annotated[Collection, Depends(_collection)]


async def _catalog(collection: CollectionDep) -> Catalog:
    return collection.catalog


async def _ingest(collection: CollectionDep) -> IngestService:
    if collection.ingest is None:
        raise ServiceError(503, "this service runs read-only beside the server that holds the catalogue: ingest "
                                "and jobs go through that server (--url URL)", code="read_only")
    return collection.ingest


async def _query(collection: CollectionDep) -> QueryService:
    return collection.query


async def _store(collection: CollectionDep) -> MediaStore:
    return collection.store


async def _sources(collection: CollectionDep, paths: PathsDep) -> MediaSources:
    return MediaSources(collection.store, paths, base=collection.url)


CatalogDep = Annotated[Catalog, Depends(_catalog)]
IngestDep = Annotated[IngestService, Depends(_ingest)]
QueryDep = Annotated[QueryService, Depends(_query)]
StoreDep = Annotated[MediaStore, Depends(_store)]
SourcesDep = Annotated[MediaSources, Depends(_sources)]
AdmissionDep = Annotated[Admission, Depends(_required("admission"))]
SupervisedDep = Annotated[SupervisedClassifier | None, Depends(_optional("supervised"))]  # None without --classifier
# /readyz answers while loading and stopping: it reads what is there, None for what is not
ReadyDep = Annotated[bool | None, Depends(_optional("ready"))]
MaybeEncoderDep = Annotated[Encoder | None, Depends(_optional("encoder"))]
MaybeCatalogDep = Annotated[Catalog | None, Depends(_optional("catalog"))]
MaybeIngestDep = Annotated[IngestService | None, Depends(_optional("ingest"))]


def _key_matches(key: str | None, accepted: list[Any]) -> bool:
    """Constant-time comparison against every accepted key (no early exit on the first match)."""
    given = (key or "").encode()
    results = [secrets.compare_digest(given, a.get_secret_value().encode()) for a in accepted if a is not None]
    return any(results)


def _check_key(key: str | None, accepted: list[Any], what: str) -> None:
    if not key:
        raise ServiceError(401, f"{what} needs an API key: send it in the X-API-Key header "
                                "(or as 'Authorization: Bearer <key>')", headers={"WWW-Authenticate": "APIKey"})
    if not _key_matches(key, accepted):
        raise ServiceError(403, "the API key sent (X-API-Key or Bearer) is not valid for this endpoint")


async def _sent_key(key: Annotated[str | None, Security(_api_key_header)] = None,
                    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None) -> str | None:
    """The key a client sent: X-API-Key, else a Bearer token."""
    return key or (bearer.credentials if bearer is not None else None)


SentKey = Annotated[str | None, Depends(_sent_key)]


async def require_api_key(settings: SettingsDep, key: SentKey = None) -> None:
    """Writes and uploads: the write key (VATT_API_KEY); a no-op when the server has none."""
    if settings.api_key is not None:
        _check_key(key, [settings.api_key], "this endpoint (it changes state or takes an upload)")


async def require_read_key(settings: SettingsDep, key: SentKey = None) -> None:
    """Reads: open unless VATT_READ_API_KEY is set; then the read key or the write key."""
    if settings.read_api_key is not None:
        _check_key(key, [settings.read_api_key, settings.api_key], "reading from this server")


WriteAuth = Depends(require_api_key)
ReadAuth = Depends(require_read_key)


@dataclass
class Upload:
    """What `FileOrJson` parsed: the multipart form with its spooled file, or None for a JSON body
    (read it with `bodies.json_model`); `cancel` is set when the client of a file encode went away."""

    form: ParsedForm | None
    cancel: CancelToken | None = None

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


async def _form(request: Request, settings: SettingsDep) -> AsyncIterator[Upload]:
    """The one body parser for routes that take "JSON or multipart with a file": the temp file is
    removed when the request ends, whatever happened."""
    if not is_multipart(request):
        yield Upload(None)
        return
    form = await read_multipart(request, tmp_dir=settings.tmp_dir, max_bytes=settings.max_upload_bytes,
                                small_files={"transcript": settings.max_transcript_bytes})
    try:
        yield Upload(form)
    finally:
        form.cleanup()


async def _encode_form(request: Request, settings: SettingsDep,
                       admission: AdmissionDep) -> AsyncIterator[Upload]:
    """Like `_form`, for routes that encode the file: an encode slot is taken before the upload is
    read (429 + Retry-After when none is free) and held until the route ends."""
    if not is_multipart(request):
        yield Upload(None)
        return
    bearer = await _bearer(request)
    await require_api_key(settings, await _sent_key(request.headers.get("x-api-key"), bearer))  # uploads: write key
    async with admission.slot(request) as token:
        form = await read_multipart(request, tmp_dir=settings.tmp_dir, max_bytes=settings.max_upload_bytes)
        try:
            yield Upload(form, token)
        finally:
            form.cleanup()


FileOrJson = Annotated[Upload, Depends(_form)]
EncodeFileOrJson = Annotated[Upload, Depends(_encode_form)]
