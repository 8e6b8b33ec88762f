"""Ingest jobs in the store, on SQLite and PostgreSQL alike: claimed once, leased, re-queued when a lease runs out,
finished only by their owner; an older SQLite catalogue gains the lease columns on open."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from index_helpers import SPACES

from index import Catalog, JobStore


def test_claim_lease_finish(tmp_path: Path, store: str) -> None:
    with Catalog(tmp_path / "cat", spaces=SPACES, store=store) as cat:
        jobs = JobStore(cat.store, lease_s=0.3)
        first = jobs.create(item_id="a", source="a.wav", sha256="0" * 64, path="/m/a.wav", total=3)
        second = jobs.create(item_id="b", source="b.wav", sha256="1" * 64, path="/m/b.wav", total=3)
        got = jobs.claim("w1")
        assert got is not None and got.id == first.id and got.status == "running" and got.owner == "w1"
        assert jobs.claim("w2").id == second.id  # oldest first, each once
        assert jobs.claim("w3") is None
        assert jobs.progress(first.id, 1, 3, owner="w1") and not jobs.progress(first.id, 2, 3, owner="w2")
        assert not jobs.finish(second.id, item_id="b", total=3, owner="w1")  # not w1's
        time.sleep(0.4)
        assert jobs.reclaim_expired() == 2  # neither renewed its lease
        again = jobs.claim("w3")
        assert again is not None and again.id == first.id and again.done == 0
        assert not jobs.finish(first.id, item_id="a", total=3, owner="w1")  # w1 lost it
        assert jobs.finish(first.id, item_id="a", total=3, owner="w3")
        assert jobs.get(first.id).status == "done"
        assert jobs.cancel(second.id) and jobs.claim("w4") is None
        assert jobs.counts() == {"done": 1, "cancelled": 1}


def test_an_older_sqlite_catalogue_gains_the_lease_columns(tmp_path: Path) -> None:
    path = tmp_path / "cat"
    with Catalog(path, spaces=SPACES):
        pass
    with sqlite3.connect(path / "catalog.sqlite") as db:  # the jobs table as the first release created it
        db.execute("DROP TABLE jobs")
        db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, item_id TEXT NOT NULL, source TEXT NOT NULL, "
                   "status TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0, "
                   "error TEXT, created REAL NOT NULL, started REAL, finished REAL, path TEXT, sha256 TEXT NOT NULL, "
                   "metadata TEXT NOT NULL DEFAULT '{}', note TEXT)")
        db.execute("INSERT INTO jobs (id, item_id, source, status, created, sha256) "
                   "VALUES ('j', 'i', 's.wav', 'queued', 1.0, 'x')")
    with Catalog(path) as cat:
        job = JobStore(cat.store).claim("w")
        assert job is not None and job.id == "j" and job.owner == "w" and job.lease_until > time.time()
