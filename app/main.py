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

from index import Catalog, CatalogError, JobStore
from model.pretrained import model_identity

from .access_log import install_redaction
from .bodies import add_documented_models
from .deps import ReadAuth
from .errors import install_error_handlers
from .metrics import Metrics, MetricsMiddleware
from .routers import classify, embed, health, items, jobs, media, openai, search
from .services.admission import Admission
from .services.encoder import Encoder, build_encoder
from .services.supervised import SupervisedClassifier
from .services.ingest import IngestService
from .services.paths import ServerPaths
from .services.query import QueryService
from .services.storage import MediaStore
from .settings import Settings, get_settings

__all__ = ["create_app", "WEB_DIR"]

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
VERSION = "0.1.0"


def _route_id(route: APIRoute) -> str:
    """`tag-name` operation ids, so generated clients get readable method names."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    s: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    torch.set_num_threads(s.torch_threads or max(1, os.cpu_count() or 1))
    device = s.torch_device()
    encoder = build_encoder(s, device=device, max_duration_s=s.max_duration_s)
    model, batcher = encoder.model, encoder.batcher
    if app.state.read_only:  # beside the writer that holds the catalogue: open it to read, change nothing
        catalog = Catalog(s.catalog_dir, store=s.store, vectors=s.vectors, readonly=True, create=False)
    else:
        # the catalogue's lock comes first: a second instance must fail here, before it touches anything
        # (with VATT_STORE=postgresql://… the directory holds only this replica's FAISS cache)
        catalog = Catalog(s.catalog_dir, spaces=model.space_dims, store=s.store, vectors=s.vectors,
                          text_language=s.text_language)
        for d in (s.data_dir, s.media_dir, s.thumbs_dir):
            d.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(s.tmp_dir, ignore_errors=True)  # uploads cut off by a crash
        s.tmp_dir.mkdir(parents=True, exist_ok=True)
        try:  # so `vatt index import` refuses shards of another model
            catalog.claim_model(model_identity(s.model_dir))
        except Exception as exc:  # another model's catalogue, or a full/read-only disk: serving reads goes on
            log.warning("model not recorded in the catalogue: %s", exc)
    batcher.stats.observers.append(metrics.observe_batch)
    store = MediaStore(s.media_dir, s.thumbs_dir)
    paths = ServerPaths(allowed=s.allow_server_paths, roots=s.server_path_roots)
    ingest = None if app.state.read_only else _start_ingest(s, encoder, catalog, store, metrics, paths)
    metrics.track_catalog(lambda: _count_or_nan(catalog))
    app.state.catalog, app.state.batcher, app.state.encoder = catalog, batcher, encoder
    app.state.store, app.state.ingest = store, ingest
    app.state.admission = Admission(s.max_concurrent_encodes)
    app.state.paths = paths
    app.state.query = QueryService(encoder, catalog, temperature=s.temperature, max_k=s.max_k,
                                   moment_floor=s.moment_floor)
    try:  # the yardstick for text hits' confidence; measured again when the catalogue moves
        await app.state.query.calibrator.current()
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
        if ingest is not None:
            ingest.close()
        batcher.close()
        catalog.close()
        for name in ("query", "ingest", "store", "encoder", "batcher", "catalog", "paths", "admission"):
            setattr(app.state, name, None)


def _start_ingest(s: Settings, encoder: Encoder, catalog: Catalog, store: MediaStore, metrics: Metrics,
                  paths: ServerPaths) -> IngestService:
    """The ingest workers, after recovering the jobs a previous run left (later, when the disk is full)."""
    ingest = IngestService(encoder, catalog, JobStore(catalog.store, lease_s=s.job_lease_s), store, metrics,
                           workers=s.ingest_workers, retention_s=s.job_retention_s, poll_s=s.job_poll_s, paths=paths)
    try:
        ingest.recover()
    except (OSError, sqlite3.OperationalError, CatalogError) as exc:  # a full disk: serve reads, recover later
        log.warning("ingest recovery postponed: %s", exc)
    ingest.start()
    return ingest


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
    for module in (embed, items, jobs, search, classify, media, openai):  # reads need VATT_READ_API_KEY when set
        app.include_router(module.router, dependencies=[ReadAuth])
    _mount_web(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            app.openapi_schema = add_documented_models(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
