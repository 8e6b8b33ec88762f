"""Ingest jobs: an accepted file becomes a catalogue item in the background.

`POST /items` does the cheap, decisive work while the client waits (the upload is decoded
enough to probe it, so non-media is a 415 there and then, not a failed job later; the sha256 is
looked up, so a re-upload answers with the existing item); the embedding runs on a worker
thread that reports progress in segments. Jobs live in memory: after a restart, GET /jobs
forgets them, while the items they made stay in the catalogue.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index import Catalog, CatalogError
from model import sha256_file
from model.media import MediaError, MediaInfo

from ..metrics import Metrics
from .encoder import Encoder
from .storage import MediaStore

__all__ = ["Job", "IngestService"]

log = logging.getLogger(__name__)

_KEEP_JOBS = 10_000  # finished jobs remembered for GET /jobs/{id}


@dataclass
class Job:
    """One ingest, as GET /jobs/{id} shows it."""

    id: str
    item_id: str
    source: str
    status: str = "queued"  # queued | running | done | failed
    done: int = 0
    total: int = 0
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    # not shown
    path: Path | None = None
    info: MediaInfo | None = None
    sha256: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "item_id": self.item_id, "source": self.source, "status": self.status,
                "progress": {"done": self.done, "total": self.total}, "error": self.error,
                "created": self.created, "started": self.started, "finished": self.finished}


class IngestService:
    """Accepts files, runs `ingest_workers` threads that embed them and add them to the catalogue."""

    def __init__(self, encoder: Encoder, catalog: Catalog, store: MediaStore, metrics: Metrics, *,
                 workers: int = 1) -> None:
        self.encoder = encoder
        self.catalog = catalog
        self.store = store
        self.metrics = metrics
        self.n_workers = workers
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._threads: list[threading.Thread] = []

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> IngestService:
        for i in range(self.n_workers):
            t = threading.Thread(target=self._loop, name=f"vatt-ingest-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def close(self) -> None:
        """Let running jobs finish; queued ones are failed (their uploads are removed)."""
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                self._fail(job, "the service stopped before this job ran; upload the file again")
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=60)

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # --- accepting ------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def accept_upload(self, path: Path, *, source: str, metadata: dict[str, Any], sha256: str | None = None) -> Job:
        """Probe an uploaded temp file (MediaError -> 415/413), keep it under media/, queue a job.

        Blocking (decodes the header, may hash): call it from a worker thread.
        """
        try:
            info, _ = self.encoder.probe(path)
            sha = sha256 or sha256_file(path)
            existing = self._existing(sha, source)
            if existing is not None:
                path.unlink(missing_ok=True)
                return existing
            job = self._new_job(source, info, sha, metadata)
            job.path = self.store.put(path, job.item_id, info)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return self._enqueue(job)

    def accept_path(self, path: Path, *, source: str, metadata: dict[str, Any]) -> Job:
        """Ingest a file already on the server (the caller checked it lies under an allowed root)."""
        info, _ = self.encoder.probe(path)
        sha = sha256_file(path)
        existing = self._existing(sha, source)
        if existing is not None:
            return existing
        job = self._new_job(source, info, sha, metadata)
        job.path = self.store.link(path, job.item_id, info)
        return self._enqueue(job)

    def _existing(self, sha: str, source: str) -> Job | None:
        item = self.catalog.get_by_sha256(sha)
        if item is None:
            return None
        log.info("%s is already item %s; not ingesting it again", source, item.id)
        job = Job(id=uuid.uuid4().hex, item_id=item.id, source=source, status="done", done=item.n_segments,
                  total=item.n_segments, started=time.time(), finished=time.time())
        self._remember(job)
        return job

    def _new_job(self, source: str, info: MediaInfo, sha: str, metadata: dict[str, Any]) -> Job:
        return Job(id=uuid.uuid4().hex, item_id=uuid.uuid4().hex, source=source, info=info, sha256=sha,
                   metadata=metadata, total=self.encoder.count_segments(info))

    def _enqueue(self, job: Job) -> Job:
        self._remember(job)
        self._queue.put(job)
        return job

    def _remember(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > _KEEP_JOBS:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest].status in ("queued", "running"):
                    break
                self._jobs.popitem(last=False)

    # --- running --------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._run(job)

    def _progress(self, job: Job):
        def update(done: int, total: int) -> None:
            job.done, job.total = done, total
        return update

    def _run(self, job: Job) -> None:
        job.status, job.started = "running", time.time()
        try:
            emb = self.encoder.embed_file(job.path, info=job.info, progress=self._progress(job))
            item = self._add(job, emb)
        except (MediaError, CatalogError) as exc:
            self._fail(job, str(exc))
            return
        except Exception as exc:  # keep the worker alive; the job says what happened, the log says where
            log.exception("ingest job %s (%s) failed", job.id, job.source)
            self._fail(job, f"internal error while ingesting ({type(exc).__name__}); see the server log")
            return
        if item.id != job.item_id:  # same content added meanwhile (or a catalogue that picks its own ids)
            if self.store.find(item.id) is None:
                self.store.rename(job.item_id, item.id)
            else:
                self.store.remove(job.item_id)
            job.item_id = item.id
        job.done = job.total = emb.n_segments
        job.status, job.finished = "done", time.time()
        self.metrics.ingested_items.labels(emb.kind).inc()
        self.metrics.ingested_segments.labels(emb.kind).inc(emb.n_segments)
        log.info("ingested %s as %s item %s (%d segments, %.1f s)", job.source, emb.kind, item.id,
                 emb.n_segments, job.finished - job.started)

    def _add(self, job: Job, emb):
        segments = [[s, e] for s, e in zip(emb.starts, emb.ends)]
        kwargs = dict(kind=emb.kind, source=job.source, sha256=job.sha256, segments=segments,
                      vectors=emb.vectors, duration=emb.info.duration, metadata=job.metadata, item_id=job.item_id)
        return self.catalog.add_item(**kwargs)

    def _fail(self, job: Job, message: str) -> None:
        job.status, job.error, job.finished = "failed", message, time.time()
        self.store.remove(job.item_id)
        self.metrics.failed_jobs.inc()
        log.warning("ingest job %s (%s) failed: %s", job.id, job.source, message)
