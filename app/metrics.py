"""Prometheus metrics in a per-app `CollectorRegistry` (two apps in one process never collide).

Requests are labelled by route *template* (`/items/{item_id}`), never the raw path, so label
cardinality stays bounded; unmatched paths share one label. The middleware is plain ASGI (not
`BaseHTTPMiddleware`), so streamed responses such as GET /media pass through untouched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_UNMATCHED = "<unmatched>"


class Metrics:
    """The service's instruments; `catalog_size` reads the catalogue when scraped."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("vatt_http_requests", "HTTP requests by route template and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("vatt_http_request_duration_seconds", "HTTP request latency by route template",
                                 ["method", "route"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.ingested_items = Counter("vatt_ingested_items", "items ingested into the catalogue", ["kind"], registry=r)
        self.ingested_segments = Counter("vatt_ingested_segments", "segments embedded by ingest jobs", ["kind"],
                                         registry=r)
        self.failed_jobs = Counter("vatt_ingest_failed_jobs", "ingest jobs that failed", registry=r)
        self.catalog_items = Gauge("vatt_catalog_items", "items in the catalogue", registry=r)
        self.batch_rows = Histogram("vatt_batch_rows", "rows per batched model forward", ["modality"], registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.forward_seconds = Histogram("vatt_forward_seconds", "model forward time per batch", ["modality"],
                                         registry=r)

    def track_catalog(self, count: Callable[[], int]) -> None:
        self.catalog_items.set_function(lambda: float(count()))

    def observe_batch(self, modality: str, rows: int, seconds: float) -> None:
        self.batch_rows.labels(modality).observe(rows)
        self.forward_seconds.labels(modality).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request and gives it a request id (header `X-Request-ID`)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None)
            if template is None:
                template = "/static" if scope.get("path", "").startswith("/static/") else _UNMATCHED
            method = scope.get("method", "-")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - t0)
