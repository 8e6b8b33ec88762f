"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ..deps import MaybeCatalogDep, MaybeEncoderDep, MaybeIngestDep, MetricsDep, ReadyDep, SettingsDep
from ..metrics import CONTENT_TYPE
from ..schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process answers (no model needed)")
async def healthz() -> Health:
    return Health()


@router.get("/readyz", response_model=Readiness, summary="Model loaded and catalogue open",
            responses={503: {"model": Readiness, "description": "still loading, or stopping"}})
async def readyz(response: Response, settings: SettingsDep, is_ready: ReadyDep, catalog: MaybeCatalogDep,
                 ingest: MaybeIngestDep, model: MaybeEncoderDep) -> Readiness:
    ready = bool(is_ready)
    if not ready:
        response.status_code = 503
    return Readiness(ready=ready, model=model.model.config.name if model else "",
                     device=str(model.batcher.device) if model else "",
                     precision=model.model.precision_choice.precision if model else "",
                     keep_tokens=settings.keep_tokens,
                     items=catalog.count() if (catalog is not None and ready) else 0,
                     queued_jobs=ingest.queued if ingest is not None else 0)


@router.get("/metrics", summary="Prometheus metrics (text exposition format)",
            responses={200: {"content": {"text/plain": {}}, "description": "metrics"}})
async def metrics(m: MetricsDep) -> Response:
    return Response(m.render(), media_type=CONTENT_TYPE)
