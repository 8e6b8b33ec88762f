"""`Annotated` dependencies: routes read what the lifespan put in `app.state`, nothing global.

They are `async def` although they only read attributes: FastAPI runs a plain `def` dependency
in its threadpool, a thread hop per dependency per request.

`WriteAuth` guards the writes (POST /items, DELETE /items/{id}) when an API key is configured:
no key is a 401, a wrong one a 403, both with a sentence saying what to send.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from index import Catalog

from .errors import ServiceError
from .metrics import Metrics
from .services.encoder import Encoder
from .services.ingest import IngestService
from .services.paths import ServerPaths
from .services.query import QueryService
from .services.storage import MediaStore
from .settings import Settings

__all__ = ["SettingsDep", "EncoderDep", "CatalogDep", "JobsDep", "QueryDep", "StoreDep", "MetricsDep", "PathsDep",
           "WriteAuth", "require_api_key"]

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                               description="needed for writes when the server has an API key")


def _state(request: Request, name: str) -> Any:
    value = getattr(request.app.state, name, None)
    if value is None:
        raise ServiceError(503, "the service is starting or stopping; try again shortly", code="unavailable")
    return value


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _encoder(request: Request) -> Encoder:
    return _state(request, "encoder")


async def _catalog(request: Request) -> Catalog:
    return _state(request, "catalog")


async def _jobs(request: Request) -> IngestService:
    return _state(request, "ingest")


async def _query(request: Request) -> QueryService:
    return _state(request, "query")


async def _store(request: Request) -> MediaStore:
    return _state(request, "store")


async def _paths(request: Request) -> ServerPaths:
    return _state(request, "paths")


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(_settings)]
EncoderDep = Annotated[Encoder, Depends(_encoder)]
CatalogDep = Annotated[Catalog, Depends(_catalog)]
JobsDep = Annotated[IngestService, Depends(_jobs)]
QueryDep = Annotated[QueryService, Depends(_query)]
StoreDep = Annotated[MediaStore, Depends(_store)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
PathsDep = Annotated[ServerPaths, Depends(_paths)]


async def require_api_key(settings: SettingsDep, key: Annotated[str | None, Security(_api_key_header)] = None) -> None:
    """401 without a key, 403 with a wrong one; a no-op when the server has no key."""
    if settings.api_key is None:
        return
    if not key:
        raise ServiceError(401, "this endpoint needs an API key: send it in the X-API-Key header",
                           headers={"WWW-Authenticate": "APIKey"})
    if not secrets.compare_digest(key.encode(), settings.api_key.get_secret_value().encode()):
        raise ServiceError(403, "the API key in X-API-Key is not valid")


WriteAuth = Depends(require_api_key)
