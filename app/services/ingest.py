"""Ingest jobs: an accepted file becomes a catalogue item in the background, and survives a crash.

`POST /items` does the cheap, decisive work while the client waits (the upload is probed, so
non-media is a 415 there and then; the sha256 is looked up, so a re-upload answers with the
existing item) and commits a job row to the catalogue's store before answering 202. Workers
claim queued jobs from the store (woken at once by a job created here, and polling every
`poll_s` for jobs other replicas accepted), hold a lease on each that every progress report
renews, and embed it. A job whose worker died is re-queued once its lease runs out (with the
embedded SQLite store, where this process is the only one, at once on start). On start,
`recover()` also fails jobs whose file is gone and removes media that belongs to no item and no
job. `cancel()` (on any replica) stops a job between windows and rolls its partial work back (its
media file).

A job's item and its `done` are one transaction (`Catalog.add_item(within=…)`): whether the item is new
or found by its sha256 (another job's), the job ends done in the same commit, or nothing is written
(cancelled meanwhile, or no longer this worker's). So a cancel never has an item to roll back, and can
never delete one that another job returned.

Workers never die: a store that cannot be reached (PostgreSQL down) is waited out with backoff — a
progress report is skipped, the commit and the job's end are retried until the store is back — and any
error left is logged and the worker goes on with the next job. A vector engine that cannot take a
committed item's vectors does not fail the job: the catalogue marks the gap in the store and catches it up.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, TypeVar

from index import Catalog, CatalogError, Item, JobRecord, JobStore, StoreUnavailableError, metadata_json
from model import sha256_file
from model.captions import Cue, read_subtitle_streams
from model.media import MediaError

from ..metrics import Metrics
from .encoder import Encoder
from .paths import ServerPaths
from .storage import MediaStore
from .asr import Transcriber
from .transcripts import PendingTranscripts, sidecar_cues

__all__ = ["IngestService", "JobCancelled", "DUPLICATE_NOTE"]

log = logging.getLogger(__name__)
T = TypeVar("T")

DUPLICATE_NOTE = ("identical content is already item {item}; the existing item is returned and the metadata "
                  "sent with this upload was not applied")
_PROGRESS_EVERY_S = 0.5  # progress rows are committed at most this often per job (each renews the lease)
_RECLAIM_EVERY_S = 5.0  # how often an idle worker re-queues jobs whose lease ran out
_ORPHAN_MIN_AGE_S = 3600.0  # shared media: a younger file may be another replica's upload about to get its job
_RETRY_FIRST_S, _RETRY_MAX_S = 0.2, 5.0  # backoff while the store is down: first wait, longest wait


class JobCancelled(Exception):
    """Raised inside a worker (between windows) when a client cancelled the job."""


class JobLost(Exception):
    """Raised inside a worker when its lease ran out and the job went back to the queue (another runs it)."""


class _NotOurs(Exception):
    """Raised inside the item's transaction when the job is no longer this worker's to finish (rolls it back)."""


class _Stopping(Exception):
    """The service stops while the store is down: the job is left as it stands (its lease runs out, or the
    next start re-queues it)."""


class IngestService:
    """Accepts files, runs `workers` threads that embed them and add them to the catalogue."""

    def __init__(self, encoder: Encoder, catalog: Catalog, jobs: JobStore, store: MediaStore, metrics: Metrics, *,
                 workers: int = 1, retention_s: float = 7 * 86400.0, poll_s: float = 0.5,
                 paths: ServerPaths | None = None, transcriber: Transcriber | None = None,
                 wake: threading.Event | None = None, workers_alive: Callable[[], bool] | None = None) -> None:
        """`jobs`: the job table in the catalogue's store (its lease length is the JobStore's);
        `paths`: which server files a worker may read (none by default); `transcriber`: speech to cues for
        media with no transcript of its own (none: skipped). With a shared worker pool (`IngestPool`, one
        per server for all collections), `workers=0`, `wake` is the pool's event and `workers_alive` its
        liveness."""
        self.encoder = encoder
        self.paths = paths or ServerPaths(allowed=False, roots=[])  # which files a worker may read
        self.catalog = catalog
        self.jobs = jobs
        self.store = store
        self.metrics = metrics
        self.n_workers = workers
        self.retention_s = retention_s
        self.poll_s = poll_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # this replica, in leases
        self.shared = jobs.store.shared
        self._wake = wake or threading.Event()
        self._stop = threading.Event()
        self._busy = 0  # jobs of this service a worker is running now (close() waits for them)
        self._idle = threading.Condition()
        self._workers_alive = workers_alive
        self._threads: list[threading.Thread] = []
        self._cancelled: set[str] = set()
        self._guard = threading.Lock()
        self._last_reclaim = 0.0
        self._down = False  # the store was unreachable at the last poll
        self.transcripts = PendingTranscripts(store.media_dir.parent / "pending-transcripts")
        self.transcriber = transcriber

    # --- lifecycle ------------------------------------------------------------------------------
    def recover(self) -> dict[str, int]:
        """Resume what a crash interrupted; fail jobs whose file is gone; remove orphan media.

        Embedded store: this process is the only writer, so every `running` job was cut off by a crash
        and is re-queued now. Shared store: other replicas' running jobs are alive; only those whose
        lease ran out are re-queued (here and, later, by any idle worker)."""
        resumed = failed = 0
        if self.shared:
            resumed = self.jobs.reclaim_expired()
        for job in self.jobs.active():
            if job.path and Path(job.path).exists():
                if job.status == "running" and not self.shared:
                    self.jobs.requeue(job.id)
                    resumed += 1
            elif job.status == "queued" or not self.shared:
                self.jobs.fail(job.id, self._gone(job))
                failed += 1
        orphans = self.store.remove_orphans(keep=self._owned_ids())
        if not self.shared:  # a shared store's other replicas may hold cues for jobs we do not see as ours
            self.transcripts.discard_except({j.item_id for j in self.jobs.active()})
        expired = self.jobs.expire(self.retention_s)
        if resumed or failed or orphans or expired:
            log.info("recovery: %d jobs re-queued, %d failed (file gone), %d orphan media files removed, "
                     "%d finished jobs expired", resumed, failed, orphans, expired)
        return {"resumed": resumed, "failed": failed, "orphans": orphans, "expired": expired}

    def _gone(self, job: JobRecord) -> str:
        if self.shared:
            return (f"the job's media file {job.path} is not on this replica; replicas sharing a store must share "
                    "VATT_MEDIA_DIR; upload it again")
        return "the server restarted and the job's media file was gone; upload it again"

    def _owned_ids(self) -> set[str]:
        """Item ids whose media must stay: catalogue items and queued/running jobs (and, with a shared media
        directory, recent files: another replica may be between storing an upload and committing its job)."""
        ids = {j.item_id for j in self.jobs.active()}
        if self.shared:
            young = time.time() - _ORPHAN_MIN_AGE_S
            for p in self.store.media_dir.iterdir():
                try:
                    if p.stat().st_mtime > young:
                        ids.add(p.name.split(".", 1)[0])
                except FileNotFoundError:  # removed by another replica meanwhile
                    pass
        offset = 0
        while True:
            page = self.catalog.list_items(limit=1000, offset=offset)
            ids.update(i.id for i in page)
            if len(page) < 1000:
                return ids
            offset += 1000

    def start(self) -> IngestService:
        for i in range(self.n_workers):
            t = threading.Thread(target=self._loop, name=f"vatt-ingest-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def close(self) -> None:
        """Stop after the running jobs; queued ones stay queued in the store for the next start (or replica)."""
        with self._idle:
            self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=60)
        with self._idle:  # a shared pool's worker may be running one of our jobs
            self._idle.wait_for(lambda: self._busy == 0, timeout=60)

    @property
    def alive(self) -> bool:
        """Whether every worker thread runs (readiness; they are written never to stop before close())."""
        if self._workers_alive is not None:
            return self._workers_alive() or self._stop.is_set()
        return all(t.is_alive() for t in self._threads) or self._stop.is_set()

    @property
    def queued(self) -> int:
        return int(self.jobs.counts().get("queued", 0))

    # --- reading --------------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        return self.jobs.get(job_id)

    def list(self, *, status: str | None, limit: int, offset: int,
             after: tuple[float, str] | None = None) -> tuple[list[JobRecord], int]:
        return self.jobs.list(status=status, limit=limit, offset=offset, after=after)

    # --- accepting ------------------------------------------------------------------------------
    def accept_upload(self, path: Path, *, source: str, metadata: dict[str, Any], sha256: str | None = None,
                      cues: list[Cue] | None = None) -> JobRecord:
        """Probe an uploaded temp file (MediaError -> 415/413), keep it under media/, commit a job.

        Blocking (decodes the header, may hash): call it from a worker thread.
        """
        try:
            meta = metadata_json(metadata)
            info, _ = self.encoder.probe(path)
            sha = sha256 or sha256_file(path)
            existing = self._existing(sha, source, metadata, cues)
            if existing is not None:
                path.unlink(missing_ok=True)
                return existing
            item_id = uuid.uuid4().hex
            dest = self.store.put(path, item_id, info)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return self._create(item_id, dest, source, sha, meta, self.encoder.count_segments(info), cues)

    def accept_path(self, path: Path, *, source: str, metadata: dict[str, Any]) -> JobRecord:
        """Ingest a file already on the server (the caller checked it lies under an allowed root)."""
        meta = metadata_json(metadata)
        info, _ = self.encoder.probe(path)
        sha = sha256_file(path)
        cues = sidecar_cues(path)
        existing = self._existing(sha, source, metadata, cues)
        if existing is not None:
            return existing
        item_id = uuid.uuid4().hex
        dest = self.store.link(path, item_id, info)
        return self._create(item_id, dest, source, sha, meta, self.encoder.count_segments(info), cues)

    def _create(self, item_id: str, dest: Path, source: str, sha: str, meta: str, total: int,
                cues: list[Cue] | None = None) -> JobRecord:
        if cues is not None:
            self.transcripts.put(item_id, cues)  # before the job: a worker may take it at once
        try:
            job = self.jobs.create(item_id=item_id, source=source, sha256=sha, path=str(dest), total=total,
                                   metadata_json=meta)
        except BaseException:
            self.store.remove(item_id)  # the job was not committed: nothing of it may stay
            self.transcripts.discard(item_id)
            raise
        self._wake.set()  # a worker of this process takes it now, without waiting for the next poll
        return job

    def _existing(self, sha: str, source: str, metadata: dict[str, Any],
                  cues: list[Cue] | None = None) -> JobRecord | None:
        item = self.catalog.get_by_sha256(sha)
        if item is None:
            return None
        if cues is not None:  # the same content again, with a transcript: the item takes it
            self.catalog.set_transcript(item.id, cues)
        log.info("%s is already item %s; not ingesting it again", source, item.id)
        note = DUPLICATE_NOTE.format(item=item.id) if metadata and dict(item.metadata) != metadata else None
        return self.jobs.create(item_id=item.id, source=source, sha256=sha, path=None, total=item.n_segments,
                                status="done", note=note)

    # --- cancelling -----------------------------------------------------------------------------
    def cancel(self, job_id: str) -> JobRecord | None:
        """Cancel a queued or running job; returns the job as it now stands (None: unknown id)."""
        job = self.jobs.get(job_id)
        if job is None:
            return None
        if job.status in ("queued", "running") and self.jobs.cancel(job_id):
            with self._guard:
                self._cancelled.add(job_id)
            if job.status == "queued":  # a worker that picks it up will skip it; the file goes now
                self.store.remove(job.item_id)
                self.transcripts.discard(job.item_id)
        return self.jobs.get(job_id)

    # --- running --------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.run_next():
                self._wake.wait(self.poll_s)
                self._wake.clear()

    def run_next(self) -> bool:
        """Claim one queued job and run it to its end (a worker's step, this service's or a shared pool's);
        False when there was none, the queue could not be read, or the service is stopping."""
        with self._idle:
            if self._stop.is_set():
                return False
            self._busy += 1
        try:
            return self._run_next()
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _run_next(self) -> bool:
        try:
            job = self._next()
            self._down = False
        except CatalogError as exc:  # the store is down: wait, it may come back (said once, not per poll)
            if not self._down:
                log.warning("ingest workers cannot read the job queue (retrying every %.1f s): %s", self.poll_s,
                            exc)
            self._down = True
            return False
        except Exception:  # never let the worker die: log, wait, poll again
            log.exception("ingest worker: polling the job queue failed")
            return False
        if job is None:
            return False
        try:
            self._run(job)
        except _Stopping:
            log.info("ingest job %s (%s) left %s: the service stops while the store is down", job.id,
                     job.source, job.status)
        except Exception:  # a bug in the failure path itself: the job's lease runs out and it is re-run
            log.exception("ingest job %s (%s): the worker could not settle it; it is re-run when its lease "
                          "runs out", job.id, job.source)
        return True

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        """`fn()`, retried with backoff while the store (or an engine it needs) is unavailable."""
        delay = _RETRY_FIRST_S
        while True:
            try:
                return fn()
            except StoreUnavailableError as exc:
                if self._stop.is_set():
                    raise _Stopping() from exc
                if delay == _RETRY_FIRST_S:
                    log.warning("ingest: %s waits for the store (retrying up to every %.0f s): %s", what,
                                _RETRY_MAX_S, exc)
                self._stop.wait(delay)
                delay = min(2 * delay, _RETRY_MAX_S)

    def _next(self) -> JobRecord | None:
        now = time.monotonic()
        if self.shared and now - self._last_reclaim >= _RECLAIM_EVERY_S:
            self._last_reclaim = now
            if self.jobs.reclaim_expired():
                log.info("re-queued ingest jobs whose worker stopped renewing its lease")
        return self.jobs.claim(self.owner)

    def _progress(self, job: JobRecord):
        last = [0.0]

        def update(done: int, total: int) -> None:
            with self._guard:
                if job.id in self._cancelled:
                    raise JobCancelled(job.id)
            now = time.monotonic()
            if now - last[0] >= _PROGRESS_EVERY_S:
                last[0] = now
                try:
                    ours = self.jobs.progress(job.id, done, total, owner=self.owner)  # renews the lease
                except StoreUnavailableError as exc:  # go on embedding: the commit waits for the store
                    log.warning("ingest job %s: progress not recorded (%s)", job.id, exc)
                    return
                if not ours:
                    self._lost(job)
        return update

    def _lost(self, job: JobRecord) -> None:
        """The job is no longer ours: cancelled on another replica, or our lease ran out and it was re-queued."""
        now = self.jobs.get(job.id)
        if now is None or now.status == "cancelled":
            raise JobCancelled(job.id)
        raise JobLost(job.id)

    def _run(self, job: JobRecord) -> None:
        started = time.time()
        try:
            path = Path(job.path or "")
            if not path.is_file():
                self._retrying("failing a job", lambda: self._fail(job, self._gone(job)))
                return
            with self.paths.opened(path, self.store.media_dir, sha256=job.sha256) as handle:  # checked now, read once
                info, _ = self.encoder.probe(handle)
                emb = self.encoder.embed_file(handle, info=info, progress=self._progress(job))
                cues = self.transcripts.get(job.item_id)
                if cues is None and emb.kind != "text":
                    cues = read_subtitle_streams(handle)
                if not cues and self.transcriber is not None and info.has_audio:  # the last source: speech
                    cues = self._speech(job, handle, emb.info.duration)
            item = self._retrying(f"storing job {job.id}", lambda: self._add(job, emb, cues))
            self.transcripts.discard(job.item_id)
        except JobCancelled:
            self._rolled_back(job)
            return
        except JobLost:
            log.warning("ingest job %s (%s): lease lost (this worker stalled); another worker runs it", job.id,
                        job.source)
            return
        except _Stopping:
            raise
        except StoreUnavailableError:  # met outside the retried steps: back to the queue, run again from the start
            self._retrying("re-queueing a job", lambda: self.jobs.requeue(job.id, owner=self.owner))
            return
        except (MediaError, CatalogError, OSError) as exc:
            message = str(exc)
        except Exception as exc:  # keep the worker alive; the job says what happened, the log says where
            log.exception("ingest job %s (%s) failed", job.id, job.source)
            message = f"internal error while ingesting ({type(exc).__name__}); see the server log"
        else:
            message = None
        if message is not None:
            self._retrying("failing a job", lambda: self._fail(job, message))
            return
        if item.id != job.item_id:  # same content added by another job: keep one media file
            if self.store.find(item.id) is None:
                self.store.rename(job.item_id, item.id)
            else:
                self.store.remove(job.item_id)
        self.metrics.ingested_items.labels(emb.kind).inc()
        self.metrics.ingested_segments.labels(emb.kind).inc(emb.n_segments)
        log.info("ingested %s as %s item %s (%d segments, %.1f s)", job.source, emb.kind, item.id,
                 emb.n_segments, time.time() - started)

    def _speech(self, job: JobRecord, handle: Path, duration: float) -> list[Cue] | None:
        """The recogniser's cues; a recogniser that fails leaves the item without a transcript, never unindexed."""
        try:
            return self.transcriber.transcribe(handle, duration) if self.transcriber else None
        except Exception:
            log.exception("ingest job %s (%s): speech recognition failed; the item has no transcript", job.id,
                          job.source)
            return None

    def _add(self, job: JobRecord, emb, cues=None):
        """The item (new, or another job's with the same content), its transcript and this job's `done`,
        in one transaction."""
        def finish(tx: Any, item: Item) -> None:  # tx: the store's Session of the item's transaction
            if not self.jobs.finish(job.id, item_id=item.id, total=emb.n_segments, owner=self.owner, tx=tx):
                raise _NotOurs(job.id)  # rolls the item back with it

        segments = [[s, e] for s, e in zip(emb.starts, emb.ends)]
        try:
            return self.catalog.add_item(kind=emb.kind, source=job.source, sha256=job.sha256, segments=segments,
                                         vectors=emb.vectors, duration=emb.info.duration, metadata=job.metadata,
                                         item_id=job.item_id, within=finish, cues=cues)
        except _NotOurs:
            self._lost(job)  # cancelled (JobCancelled) or another worker's now (JobLost)
            raise

    def _rolled_back(self, job: JobRecord) -> None:
        """Undo a cancelled job's work: its media (its item is never committed: see `_add`)."""
        self.store.remove(job.item_id)
        self.transcripts.discard(job.item_id)
        with self._guard:
            self._cancelled.discard(job.id)
        log.info("ingest job %s (%s) cancelled; its partial work was rolled back", job.id, job.source)

    def _fail(self, job: JobRecord, message: str) -> None:
        if not self.jobs.fail(job.id, message, owner=self.owner):  # cancelled, or another worker's by now
            log.warning("ingest job %s (%s) failed after it stopped being ours: %s", job.id, job.source, message)
            return
        self.transcripts.discard(job.item_id)
        self.store.remove(job.item_id)
        self.metrics.failed_jobs.inc()
        log.warning("ingest job %s (%s) failed: %s", job.id, job.source, message)
