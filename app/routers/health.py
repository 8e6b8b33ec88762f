"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from ..deps import MaybeCatalogDep, MaybeEncoderDep, MaybeIngestDep, MetricsDep, ReadyDep, SettingsDep
from ..metrics import CONTENT_TYPE
from ..schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process answers (no model needed)")
async def healthz() -> Health:
    return Health()


@router.get("/readyz", response_model=Readiness, summary="Model loaded, catalogue open, its engines answering",
            responses={503: {"model": Readiness,
                             "description": "still loading, stopping, or a store/engine it needs is down"}})
async def readyz(response: Response, settings: SettingsDep, is_ready: ReadyDep, catalog: MaybeCatalogDep,
                 ingest: MaybeIngestDep, model: MaybeEncoderDep) -> Readiness:
    ready = bool(is_ready)
    down: dict[str, str] = {}
    if ready and catalog is not None:  # a round trip per engine (blocking: off the event loop)
        down = await run_in_threadpool(catalog.unavailable)
    if ready and ingest is not None and not ingest.alive:
        down["ingest"] = "the ingest workers stopped; restart the service"
    up = ready and not down
    if not up:
        response.status_code = 503
    store_up = ready and catalog is not None and "store" not in down
    choice = model.model.precision_choice if model else None
    return Readiness(ready=up, model=model.model.config.name if model else "",
                     device=str(model.batcher.device) if model else "",
                     precision=choice.precision if choice else "",
                     precision_requested=choice.requested if choice else "",
                     precision_reason=choice.reason if choice else "",
                     keep_tokens=settings.keep_tokens,
                     items=await run_in_threadpool(catalog.count) if store_up else 0,
                     queued_jobs=await run_in_threadpool(lambda: ingest.queued) if store_up and ingest else 0,
                     unavailable=list(down.values()))


@router.get("/metrics", summary="Prometheus metrics (text exposition format)",
            responses={200: {"content": {"text/plain": {}}, "description": "metrics"}})
async def metrics(m: MetricsDep) -> Response:
    return Response(m.render(), media_type=CONTENT_TYPE)
