"""`Client`: the service over HTTP, one typed method per route (app/schemas.py's models), blocking."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx

from ..schemas import (ClassifyResponse, CollectionDeleted, CollectionOut, CollectionsList, CueOut, Deleted,
                       EmbedFileResponse, EmbedTextResponse, Example, Health, ItemOut, ItemsPage, ItemWithVectors,
                       JobAccepted, JobOut, JobsPage, OpenAIEmbeddingResponse, OpenAIModelList, Readiness,
                       SearchBatchResponse, SearchRequest, SearchResponse, SnapshotDeleted, SnapshotOut, SnapshotsList,
                       TranscriptOut)
from . import routes
from .call import RETRIES, Call, Endpoint, in_collection, retry_wait, should_retry
from .errors import ClientError

__all__ = ["Client", "DEFAULT_URL", "TIMEOUT"]

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT = httpx.Timeout(600.0, connect=10.0)  # a long file encode answers only when it is done


class Client(Endpoint):
    """A vatt server at `base_url`. Every failure raises a `ClientError` (`APIError` with the status and the
    server's message when it answered); 429 and 503 are retried, honouring Retry-After. Use as a context
    manager, or call `close()`.

    `api_key` is sent as X-API-Key; `transport` replaces the network (connect() runs the app in-process)."""

    def __init__(self, base_url: str = DEFAULT_URL, *, api_key: str | None = None,
                 timeout: httpx.Timeout | float = TIMEOUT, retries: int = RETRIES,
                 transport: httpx.BaseTransport | None = None, where: str | None = None,
                 collection: str | None = None) -> None:
        super().__init__(base_url, retries=retries, where=where, collection=collection)
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers(api_key), timeout=timeout,
                                  transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call[T]) -> T:
        """One route's request, tried again on 429/503 (Retry-After, else exponential backoff)."""
        for attempt in range(self.retries + 1):
            with ExitStack() as stack:
                try:
                    response = self._http.request(call.method, call.url(self.collection),
                                                     **call.request_args(stack))
                except httpx.HTTPError as exc:
                    raise self.unreachable(exc) from None
            if not should_retry(call, response, attempt, self.retries):
                break
            time.sleep(retry_wait(response, attempt))
        return call.result(response)

    # --- embed ------------------------------------------------------------------------------------
    def embed_texts(self, texts: Sequence[str]) -> EmbedTextResponse:
        """Text vectors in the video-text space (vt)."""
        return self.send(routes.embed_texts(texts))

    def embed_file(self, path: str | Path, spaces: Sequence[str] | None = None) -> EmbedFileResponse:
        """Per-segment vectors of a video or audio file, and their mean per space."""
        return self.send(routes.embed_file(path, spaces))

    # --- search -----------------------------------------------------------------------------------
    def search(self, text: str | None = None, *, item_id: str | None = None, vector: Sequence[float] | None = None,
               file: str | Path | None = None, **options: Any) -> SearchResponse:
        """By text, item, vector (with space=) or file; options are SearchOptions' fields (k, where, …)."""
        return self.send(routes.search(text, item_id=item_id, vector=vector, file=file, **options))

    def recommend(self, positive: Sequence[Example | dict[str, Any]],
                  negative: Sequence[Example | dict[str, Any]] = (), **options: Any) -> SearchResponse:
        """Search towards `positive` examples and away from `negative` ones."""
        return self.send(routes.recommend(positive, negative, **options))

    def search_batch(self, searches: Sequence[SearchRequest | dict[str, Any]]) -> SearchBatchResponse:
        """Several JSON searches in one request, answered in order."""
        return self.send(routes.search_batch(searches))

    def classify(self, labels: Sequence[str], template: str = routes.DEFAULT_TEMPLATE, *,
                 file: str | Path | None = None, item_id: str | None = None) -> ClassifyResponse:
        """Zero-shot label probabilities for a file or a catalogued item."""
        return self.send(routes.classify(labels, template, file=file, item_id=item_id))

    # --- items ------------------------------------------------------------------------------------
    def ingest(self, path: str | Path, metadata: dict[str, Any] | None = None, *, source: str | None = None,
               transcript: str | Path | None = None) -> JobAccepted:
        """Upload a file to ingest in the background; follow it with `wait(accepted.job_id)`."""
        return self.send(routes.ingest(path, metadata, source=source, transcript=transcript))

    def ingest_path(self, server_path: str, metadata: dict[str, Any] | None = None, *,
                    source: str | None = None) -> JobAccepted:
        """Ingest a file already on the server (when the server allows server paths)."""
        return self.send(routes.ingest_path(server_path, metadata, source=source))

    def list_items(self, *, kinds: Sequence[str] | None = None, where: dict[str, Any] | None = None,
                   limit: int = 50, offset: int = 0, cursor: str | None = None) -> ItemsPage:
        return self.send(routes.list_items(kinds=kinds, where=where, limit=limit, offset=offset, cursor=cursor))

    def iter_items(self, *, kinds: Sequence[str] | None = None, where: dict[str, Any] | None = None,
                   page_size: int = 200) -> Iterator[ItemOut]:
        """Every matching item, page by page on the cursor (items added meanwhile never repeat one)."""
        cursor: str | None = None
        while True:
            page = self.list_items(kinds=kinds, where=where, limit=page_size, cursor=cursor)
            yield from page.items
            if page.next is None:
                return
            cursor = page.next

    def get_item(self, item_id: str, *, vectors: bool = False) -> ItemWithVectors:
        return self.send(routes.get_item(item_id, vectors=vectors))

    def patch_metadata(self, item_id: str, patch: dict[str, Any]) -> ItemOut:
        """Merge into the metadata (RFC 7396: None deletes a key)."""
        return self.send(routes.patch_metadata(item_id, patch))

    def put_metadata(self, item_id: str, metadata: dict[str, Any]) -> ItemOut:
        """Replace the metadata whole."""
        return self.send(routes.put_metadata(item_id, metadata))

    def delete_item(self, item_id: str) -> Deleted:
        return self.send(routes.delete_item(item_id))

    def thumbnail(self, item_id: str, t: float | None = None) -> bytes:
        """A JPEG frame of a video item."""
        return self.send(routes.thumbnail(item_id, t))

    def media(self, item_id: str, *, byte_range: tuple[int, int] | None = None) -> bytes:
        """The stored media file (or an inclusive byte range of it)."""
        return self.send(routes.media(item_id, byte_range=byte_range))

    def media_url(self, item_id: str) -> str:
        """Where a player (or a browser) streams the item's media from."""
        return self.base_url + in_collection(routes.media_path(item_id), self.collection)

    def transcript(self, item_id: str) -> TranscriptOut:
        return self.send(routes.transcript(item_id))

    def transcript_vtt(self, item_id: str) -> str:
        return self.send(routes.transcript_vtt(item_id))

    def set_transcript(self, item_id: str, cues: Sequence[CueOut | dict[str, Any]] | str) -> TranscriptOut:
        """Replace the transcript with cues or WebVTT/SubRip text (an empty list clears it)."""
        return self.send(routes.set_transcript(item_id, cues))

    # --- jobs -------------------------------------------------------------------------------------
    def list_jobs(self, *, status: str | None = None, limit: int = 50, offset: int = 0,
                  cursor: str | None = None) -> JobsPage:
        return self.send(routes.list_jobs(status=status, limit=limit, offset=offset, cursor=cursor))

    def job(self, job_id: str) -> JobOut:
        return self.send(routes.job(job_id))

    def cancel_job(self, job_id: str) -> JobOut:
        return self.send(routes.cancel_job(job_id))

    def wait(self, job_id: str, on_progress: Callable[[JobOut], None] | None = None, *, poll_s: float = 0.2,
             timeout_s: float = 24 * 3600) -> JobOut:
        """Poll a job until it is done, failed or cancelled (`on_progress` sees every poll)."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.status in routes.FINISHED:
                return job
            if time.monotonic() > deadline:
                raise ClientError(f"job {job_id} did not finish within {timeout_s:.0f} s")
            time.sleep(poll_s)

    # --- health -----------------------------------------------------------------------------------
    def healthz(self) -> Health:
        return self.send(routes.healthz())

    def readyz(self) -> Readiness:
        """Readiness (ready=False while loading, or when a store it needs is down)."""
        return self.send(routes.readyz())

    def metrics(self) -> str:
        """Prometheus metrics, text exposition format."""
        return self.send(routes.metrics())

    # --- OpenAI-compatible ------------------------------------------------------------------------
    def models(self) -> OpenAIModelList:
        return self.send(routes.models())

    def embeddings(self, input: str | Sequence[str], model: str = "vatt", *,
                   encoding_format: Literal["float", "base64"] = "float",
                   dimensions: int | None = None) -> OpenAIEmbeddingResponse:
        return self.send(routes.embeddings(input, model, encoding_format=encoding_format, dimensions=dimensions))

    # --- collections and snapshots ----------------------------------------------------------------
    def create_collection(self, name: str, index_type: str | None = None,
                          index_options: dict[str, Any] | None = None) -> CollectionOut:
        """A new named collection (its own catalogue; the loaded model is shared)."""
        return self.send(routes.create_collection(name, index_type, index_options))

    def list_collections(self) -> CollectionsList:
        return self.send(routes.list_collections())

    def get_collection(self, name: str) -> CollectionOut:
        return self.send(routes.get_collection(name))

    def delete_collection(self, name: str) -> CollectionDeleted:
        """Delete a collection with its items, media and jobs (not `default`)."""
        return self.send(routes.delete_collection(name))

    def create_snapshot(self, name: str = "default") -> SnapshotOut:
        """A consistent snapshot of a collection, taken while the service serves and ingests."""
        return self.send(routes.create_snapshot(name))

    def list_snapshots(self, name: str = "default") -> SnapshotsList:
        return self.send(routes.list_snapshots(name))

    def download_snapshot(self, snapshot: str, out: str | Path, name: str = "default") -> Path:
        """Write a snapshot archive to `out`; returns it."""
        out = Path(out)
        out.write_bytes(self.send(routes.download_snapshot(name, snapshot)))
        return out

    def delete_snapshot(self, snapshot: str, name: str = "default") -> SnapshotDeleted:
        return self.send(routes.delete_snapshot(name, snapshot))
