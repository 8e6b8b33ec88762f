"""`create_app(settings)`: the FastAPI app. Importing this module loads nothing.

The lifespan loads the model and tokenizer, opens the catalogue and starts the batcher and the
ingest workers; everything lands in `app.state`, which the dependencies in deps.py read. The
web page (app/web/, written separately) is served at `/` and `/static` when it exists.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from index import Catalog, CatalogError
from model.pretrained import model_identity

from .access_log import install_redaction
from .bodies import add_documented_models, error_responses
from .deps import InCollection, ReadAuth
from .errors import install_error_handlers
from .metrics import Metrics, MetricsMiddleware
from .routers import classify, collections as collection_routes, embed, health, items, jobs, media, openai, search
from .services.admission import Admission
from .services.asr import load_transcriber
from .services.encoder import build_encoder
from .services.supervised import SupervisedClassifier
from .services.collections import Collections
from .services.paths import ServerPaths
from .settings import Settings, get_settings

__all__ = ["create_app", "WEB_DIR"]

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
VERSION = "0.1.0"


COLLECTION_PREFIX = "/collections/{collection}"
CATALOGUE_ROUTERS = (items, jobs, search, classify, media)  # served for `default` and under COLLECTION_PREFIX


def _route_id(route: APIRoute) -> str:
    """`tag-name` operation ids, so generated clients get readable method names (`in_collection-…` for the
    catalogue routes mounted again under /collections/{collection})."""
    name = f"{route.tags[0]}-{route.name}" if route.tags else route.name
    return f"in_collection-{name}" if route.path_format.startswith(COLLECTION_PREFIX) else name


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    s: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    torch.set_num_threads(s.torch_threads or max(1, os.cpu_count() or 1))
    device = s.torch_device()
    encoder = build_encoder(s, device=device, max_duration_s=s.max_duration_s)
    model, batcher = encoder.model, encoder.batcher
    paths = ServerPaths(allowed=s.allow_server_paths, roots=s.server_path_roots)
    read_only = bool(getattr(app.state, "read_only", False))  # beside the writer: read its catalogues, change nothing
    if not read_only:
        s.data_dir.mkdir(parents=True, exist_ok=True)
    transcriber = load_transcriber(s.asr_model, language=s.asr_language, threads=s.torch_threads or 1)
    collections = Collections(s, encoder, metrics, paths, model=model_identity(s.model_dir), read_only=read_only,
                              ingest_options={"transcriber": transcriber})
    # the default catalogue's lock comes first: a second instance must fail here, before it touches anything
    # (with VATT_STORE=postgresql://… the directory holds only this replica's FAISS cache)
    default = collections.open_all()
    catalog = default.catalog
    if not read_only:
        shutil.rmtree(s.tmp_dir, ignore_errors=True)  # uploads cut off by a crash
        s.tmp_dir.mkdir(parents=True, exist_ok=True)
    batcher.stats.observers.append(metrics.observe_batch)
    collections.start()
    metrics.track_catalog(lambda: _count_or_nan(catalog))
    app.state.collections = collections
    app.state.catalog, app.state.batcher, app.state.encoder = catalog, batcher, encoder
    app.state.ingest = default.ingest
    app.state.admission = Admission(s.max_concurrent_encodes)
    app.state.paths = paths
    try:  # the yardstick for text hits' confidence; measured again when the catalogue moves
        await default.query.calibrator.current()
    except (OSError, sqlite3.OperationalError, CatalogError) as exc:  # a store that is down
        log.warning("search calibration postponed to the first text search: %s", exc)
    app.state.supervised = SupervisedClassifier.load(s.classifier_dir) if s.classifier_dir else None
    app.state.ready = True
    choice = model.precision_choice
    log.info("serving model %s (%s) on %s (%s: %s, keep_tokens %.2f) with %d items from %s (store %s, vectors %s)",
             model.config.name, s.model_dir, device, choice.precision, choice.reason, s.keep_tokens, catalog.count(), s.data_dir,
             catalog.store.location, s.vectors)
    try:
        yield
    finally:
        app.state.ready = False
        collections.close()
        batcher.close()
        for name in ("collections", "ingest", "encoder", "batcher", "catalog", "paths", "admission"):
            setattr(app.state, name, None)


def _count_or_nan(catalog: Catalog) -> float:
    """/metrics keeps rendering while a shared store is down (the gauge reads NaN meanwhile)."""
    try:
        return catalog.count()
    except CatalogError:
        return float("nan")


def _mount_web(app: FastAPI) -> None:
    index_html = WEB_DIR / "index.html"
    if not index_html.is_file():
        return

    @app.get("/", include_in_schema=False)
    async def web_page() -> FileResponse:
        return FileResponse(index_html, media_type="text/html")

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")


def create_app(settings: Settings | None = None, *, read_only: bool = False) -> FastAPI:
    """The service. `settings=None` reads `VATT_*` from the environment. read_only: open the catalogue to read
    beside the server that writes it (the CLI's `--read-only`): no lock, no ingest, writes answer 503."""
    settings = settings or get_settings()
    app = FastAPI(title="vatt", version=VERSION, lifespan=lifespan, generate_unique_id_function=_route_id,
                  description="Embed, index and search video, audio and text in VATT's common spaces.")
    metrics = Metrics()
    app.state.settings, app.state.metrics, app.state.ready = settings, metrics, False
    app.state.read_only = read_only
    install_error_handlers(app)
    install_redaction(k.get_secret_value() for k in (settings.api_key, settings.read_api_key) if k is not None)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"])
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(openai.OpenAIErrors)  # errors under /v1 in OpenAI's body
    app.include_router(health.router)
    for module in (embed, items, jobs, search, classify, media, openai, collection_routes):  # reads need
        app.include_router(module.router, dependencies=[ReadAuth])  # VATT_READ_API_KEY when set
    for module in CATALOGUE_ROUTERS:  # the same routes, on a named collection's catalogue (app/deps.py resolves it)
        app.include_router(module.router, prefix=COLLECTION_PREFIX, dependencies=[ReadAuth, InCollection],
                           responses=error_responses(400, 404))
    _mount_web(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            app.openapi_schema = add_documented_models(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
