"""Ingest jobs as rows of the catalogue's store: accepted work survives SIGKILL, and replicas share it.

A job row is committed before the client hears 202, so an accepted upload is never lost. Workers
`claim()` queued jobs: one UPDATE that picks the oldest queued row (PostgreSQL: `FOR UPDATE SKIP
LOCKED`, so two replicas never take the same one; SQLite: the single writer) and gives the
claimer a lease (owner + expiry), renewed by every progress report. A job whose owner died keeps
its stale lease until `reclaim_expired()` (run by every worker as it polls) puts it back in the
queue, so it is run again by exactly one worker — never lost, never run twice at once. A worker
only finishes, fails or reports on a job it still owns.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import InvalidArgumentError
from .store import Session, Store
from .types import JOB_STATUSES

__all__ = ["JobRecord", "JobStore", "JOB_STATUSES"]

_ACTIVE = ("queued", "running")

LEASE_S = 60.0  # a running job not heard of for this long is re-queued (progress renews it)


@dataclass
class JobRecord:
    """One ingest job as stored."""

    id: str
    item_id: str
    source: str
    status: str = "queued"
    done: int = 0
    total: int = 0
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    path: str | None = None
    sha256: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    note: str | None = None
    owner: str | None = None
    lease_until: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """What GET /jobs shows (not the file path, the hash or the metadata)."""
        return {"id": self.id, "item_id": self.item_id, "source": self.source, "status": self.status,
                "progress": {"done": self.done, "total": self.total}, "error": self.error, "note": self.note,
                "created": self.created, "started": self.started, "finished": self.finished}


def _record(row: tuple) -> JobRecord:  # a row of store.JOB_COLS
    return JobRecord(id=row[0], item_id=row[1], source=row[2], status=row[3], done=row[4], total=row[5],
                     error=row[6], created=row[7], started=row[8], finished=row[9], path=row[10], sha256=row[11],
                     metadata=json.loads(row[12]), note=row[13], owner=row[14], lease_until=row[15])


class JobStore:
    """Jobs in the catalogue's store (the same table on SQLite and PostgreSQL; the statements are `Session`'s)."""

    def __init__(self, store: Store, *, lease_s: float = LEASE_S) -> None:
        self.store, self.lease_s = store, lease_s
        self._table = False  # seen once, the table stays

    def _read(self) -> Session | None:
        """A session, or None for an old catalogue opened read-only that has no jobs table."""
        self._table = self._table or self.store.has_table("jobs")
        return self.store.reader() if self._table else None

    # --- create and read ----------------------------------------------------------------------
    def create(self, *, item_id: str, source: str, sha256: str, path: str | None, total: int,
               metadata_json: str = "{}", status: str = "queued", note: str | None = None) -> JobRecord:
        """Insert a job (committed when this returns: from then on it survives a crash)."""
        if status not in JOB_STATUSES:
            raise InvalidArgumentError(f"unknown job status {status!r}; accepted: {', '.join(JOB_STATUSES)}")
        now = time.time()
        done = status == "done"
        job = JobRecord(id=uuid.uuid4().hex, item_id=item_id, source=source, status=status,
                        done=total if done else 0, total=total, created=now, started=now if done else None,
                        finished=now if done else None, path=path, sha256=sha256,
                        metadata=json.loads(metadata_json), note=note)
        with self.store.transaction() as tx:
            tx.insert_job((job.id, item_id, source, status, job.done, total, None, now, job.started, job.finished,
                           path, sha256, metadata_json, note))
        return job

    def get(self, job_id: str) -> JobRecord | None:
        db = self._read()
        row = db.job(job_id) if db is not None else None
        return _record(row) if row else None

    def list(self, *, status: str | None = None, limit: int = 50, offset: int = 0,
             after: tuple[float, str] | None = None) -> tuple[list[JobRecord], int]:
        """A page of jobs, newest first, and the total matching; `after` starts strictly after that
        (created, id) key in this order (cursor paging: jobs created meanwhile come before it, never in it)."""
        if status is not None and status not in JOB_STATUSES:
            raise InvalidArgumentError(f"unknown job status {status!r}; accepted: {', '.join(JOB_STATUSES)}")
        db = self._read()
        if db is None:
            return [], 0
        rows, total = db.jobs_page(status, limit, offset, after=after)
        return [_record(r) for r in rows], total

    def active(self) -> list[JobRecord]:
        """Queued and running jobs, oldest first."""
        db = self._read()
        return [_record(r) for r in db.active_jobs()] if db is not None else []

    # --- claiming and leases --------------------------------------------------------------------
    def claim(self, owner: str) -> JobRecord | None:
        """Take the oldest queued job for `owner` (queued -> running with a lease); None when none is queued."""
        db = self._read()
        if db is None or not db.any_queued_job():
            return None  # idle polls stay reads: no write transaction unless there is work
        now = time.time()
        with self.store.transaction() as tx:
            row = tx.claim_job(owner, now, now + self.lease_s)
        return _record(row) if row else None

    def reclaim_expired(self) -> int:
        """running jobs whose lease ran out (their worker died) -> queued again; returns how many."""
        with self.store.transaction() as tx:
            return tx.requeue_jobs(lease_before=time.time())

    # --- transitions --------------------------------------------------------------------------
    def progress(self, job_id: str, done: int, total: int, owner: str | None = None) -> bool:
        """Record progress and renew the lease; False when the job is no longer this owner's."""
        with self.store.transaction() as tx:
            return tx.job_progress(job_id, done, total, time.time() + self.lease_s, owner)

    def finish(self, job_id: str, *, item_id: str, total: int, note: str | None = None,
               owner: str | None = None, tx: Session | None = None) -> bool:
        """running -> done with its item; False when it was cancelled meanwhile or (given `owner`) is no longer
        this owner's (its lease ran out and another worker claimed it). `tx`: inside that transaction (the
        item's own, so the item and the job's end commit together), else in one of its own."""
        if tx is not None:
            return tx.end_job(job_id, "done", finished=time.time(), owner=owner, item_id=item_id, total=total,
                              note=note)
        with self.store.transaction() as own:
            return self.finish(job_id, item_id=item_id, total=total, note=note, owner=owner, tx=own)

    def fail(self, job_id: str, error: str, *, owner: str | None = None) -> bool:
        """queued/running -> failed; False when it had ended or (given `owner`) is no longer this owner's."""
        with self.store.transaction() as tx:
            return tx.end_job(job_id, "failed", finished=time.time(), owner=owner, error=error)

    def cancel(self, job_id: str) -> bool:
        """queued/running -> cancelled; False when it had already ended."""
        with self.store.transaction() as tx:
            return tx.end_job(job_id, "cancelled", finished=time.time(), error="cancelled by a client")

    def requeue(self, job_id: str, *, owner: str | None = None) -> None:
        """running -> queued (resumed from the start by whoever claims it next); given `owner`, only while it is
        that owner's."""
        with self.store.transaction() as tx:
            tx.requeue_jobs(job_id=job_id, owner=owner)

    def expire(self, older_than_s: float) -> int:
        """Delete finished jobs that ended more than `older_than_s` ago; returns how many."""
        with self.store.transaction() as tx:
            return tx.expire_jobs(time.time() - older_than_s)

    def counts(self) -> Mapping[str, int]:
        db = self._read()
        return db.job_counts() if db is not None else {}
