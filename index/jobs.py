"""Ingest jobs as rows of the catalogue's SQLite database: accepted work survives SIGKILL.

A job row is committed before the client hears 202, so an accepted upload is never lost: on
restart the service re-queues `queued`/`running` rows whose files exist and fails the rest with a
reason. The API is deliberately narrow (create, get, list, progress, finish, cancel, recover,
expire) so that a later store can implement it over another database.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import InvalidArgumentError

__all__ = ["JobRecord", "JobStore", "JOB_STATUSES"]

JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
_ACTIVE = ("queued", "running")

_DDL = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    path TEXT,                      -- the media file the job embeds (under media/)
    sha256 TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    note TEXT                       -- e.g. why the metadata of a duplicate upload was not applied
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created);
"""
_COLS = "id, item_id, source, status, done, total, error, created, started, finished, path, sha256, metadata, note"


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

    def to_dict(self) -> dict[str, Any]:
        """What GET /jobs shows (not the file path, the hash or the metadata)."""
        return {"id": self.id, "item_id": self.item_id, "source": self.source, "status": self.status,
                "progress": {"done": self.done, "total": self.total}, "error": self.error, "note": self.note,
                "created": self.created, "started": self.started, "finished": self.finished}


def _record(row: tuple) -> JobRecord:
    return JobRecord(id=row[0], item_id=row[1], source=row[2], status=row[3], done=row[4], total=row[5],
                     error=row[6], created=row[7], started=row[8], finished=row[9], path=row[10], sha256=row[11],
                     metadata=json.loads(row[12]), note=row[13])


class JobStore:
    """Jobs in the catalogue's database; writes go through the catalogue's writer connection and lock."""

    def __init__(self, writer: Callable[[], sqlite3.Connection], reader: Callable[[], sqlite3.Connection],
                 lock: threading.RLock, *, readonly: bool) -> None:
        self._writer, self._reader, self._lock = writer, reader, lock
        if not readonly:
            with self._lock:
                self._writer().executescript(_DDL)

    def _write(self, sql: str, params: tuple) -> int:
        with self._lock:
            conn = self._writer()
            conn.execute("BEGIN IMMEDIATE")
            try:
                n = conn.execute(sql, params).rowcount
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return n

    def _has_table(self) -> bool:
        return self._reader().execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone() is not None

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
        self._write(f"INSERT INTO jobs({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (job.id, item_id, source, status, job.done, total, None, now, job.started, job.finished, path,
                     sha256, metadata_json, note))
        return job

    def get(self, job_id: str) -> JobRecord | None:
        if not self._has_table():
            return None
        row = self._reader().execute(f"SELECT {_COLS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _record(row) if row else None

    def list(self, *, status: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[JobRecord], int]:
        """A page of jobs, newest first, and the total matching."""
        if status is not None and status not in JOB_STATUSES:
            raise InvalidArgumentError(f"unknown job status {status!r}; accepted: {', '.join(JOB_STATUSES)}")
        if not self._has_table():
            return [], 0
        cond, params = ("status = ?", [status]) if status else ("1", [])
        conn = self._reader()
        rows = conn.execute(f"SELECT {_COLS} FROM jobs WHERE {cond} ORDER BY created DESC, id LIMIT ? OFFSET ?",
                            [*params, limit, offset]).fetchall()
        total = conn.execute(f"SELECT COUNT(*) FROM jobs WHERE {cond}", params).fetchone()[0]
        return [_record(r) for r in rows], int(total)

    def active(self) -> list[JobRecord]:
        """Queued and running jobs, oldest first (what a restart must resume)."""
        if not self._has_table():
            return []
        rows = self._reader().execute(f"SELECT {_COLS} FROM jobs WHERE status IN ('queued', 'running') "
                                      "ORDER BY created, id").fetchall()
        return [_record(r) for r in rows]

    def referenced_paths(self) -> set[str]:
        """Media paths of jobs still queued or running (never orphans)."""
        return {j.path for j in self.active() if j.path}

    # --- transitions --------------------------------------------------------------------------
    def start(self, job_id: str) -> bool:
        """queued -> running; False when the job is no longer queued (cancelled meanwhile)."""
        return self._write("UPDATE jobs SET status = 'running', started = ? WHERE id = ? AND status = 'queued'",
                           (time.time(), job_id)) == 1

    def progress(self, job_id: str, done: int, total: int) -> None:
        self._write("UPDATE jobs SET done = ?, total = ? WHERE id = ? AND status = 'running'", (done, total, job_id))

    def finish(self, job_id: str, *, item_id: str, total: int, note: str | None = None) -> bool:
        """running -> done with its item; False when it was cancelled meanwhile."""
        return self._write("UPDATE jobs SET status = 'done', item_id = ?, done = ?, total = ?, finished = ?, "
                           "note = COALESCE(?, note) WHERE id = ? AND status IN ('queued', 'running')",
                           (item_id, total, total, time.time(), note, job_id)) == 1

    def fail(self, job_id: str, error: str) -> bool:
        return self._write("UPDATE jobs SET status = 'failed', error = ?, finished = ? WHERE id = ? "
                           "AND status IN ('queued', 'running')", (error, time.time(), job_id)) == 1

    def cancel(self, job_id: str) -> bool:
        """queued/running -> cancelled; False when it had already ended."""
        return self._write("UPDATE jobs SET status = 'cancelled', error = 'cancelled by a client', finished = ? "
                           "WHERE id = ? AND status IN ('queued', 'running')", (time.time(), job_id)) == 1

    def requeue(self, job_id: str) -> None:
        """running -> queued (a restart resumes it from the start)."""
        self._write("UPDATE jobs SET status = 'queued', done = 0, started = NULL WHERE id = ? "
                    "AND status IN ('queued', 'running')", (job_id,))

    def expire(self, older_than_s: float) -> int:
        """Delete finished jobs that ended more than `older_than_s` ago; returns how many."""
        return self._write("DELETE FROM jobs WHERE status NOT IN ('queued', 'running') AND finished < ?",
                           (time.time() - older_than_s,))

    def counts(self) -> Mapping[str, int]:
        if not self._has_table():
            return {}
        return dict(self._reader().execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())
