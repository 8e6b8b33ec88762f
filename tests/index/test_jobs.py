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


def test_keyset_pages_of_items_and_jobs_skip_nothing_on_ties(tmp_path: Path, store: str) -> None:
    """`after` (the cursor of GET /items and /jobs) continues strictly after (created, id), ties broken by id,
    on both stores; rows added meanwhile land outside the pages still to come."""
    from index_helpers import Clusters, add_video

    with Catalog(tmp_path / "cat", spaces=SPACES, store=store) as cat:
        gen = Clusters(seed=3)
        items = [add_video(cat, i, 1, gen).id for i in range(9)]
        jobs = JobStore(cat.store)
        job_ids = [jobs.create(item_id=f"i{i}", source="s", sha256=f"{i:064d}", path=None, total=1).id
                   for i in range(9)]
        with cat.store.transaction() as tx:  # a tie of three on `created`, in both tables
            tx.execute("UPDATE items SET created = 5.0 WHERE id IN (?, ?, ?)", items[3:6])
            tx.execute("UPDATE jobs SET created = 5.0 WHERE id IN (?, ?, ?)", job_ids[3:6])
        whole = [it.id for it in cat.list_items(limit=100)]
        walked: list[str] = []
        after = None
        while page := cat.list_items(limit=2, after=after):
            walked += [it.id for it in page]
            after = (page[-1].created, page[-1].id)
            if len(walked) <= len(whole):
                add_video(cat, f"late{len(walked)}", 1, gen)  # a concurrent insert: after every row there
        assert walked[:len(whole)] == whole and len(walked) == len(set(walked))
        newest_first = [j.id for j in jobs.list(limit=100)[0]]
        walked, after = [], None
        while page := jobs.list(limit=2, after=after)[0]:
            walked += [j.id for j in page]
            after = (page[-1].created, page[-1].id)
            if len(walked) <= len(newest_first):
                jobs.create(item_id="x", source="s", sha256="f" * 64, path=None, total=1)  # newer: before every row
        assert walked == newest_first
