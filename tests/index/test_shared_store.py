"""Several processes on one PostgreSQL store: each keeps its own FAISS cache, and sees the others' writes;
jobs are claimed by exactly one worker and re-queued when a worker's lease runs out; a store that goes
away gives StoreUnavailableError and the catalogue recovers when it is back."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from index_helpers import SPACES, Clusters, add_video
from servers.postgres import PostgresServer

from index import Catalog, InvalidArgumentError, JobStore, StoreUnavailableError
from index.pg_store import PostgresStore


@pytest.fixture
def dsn(pg_server: PostgresServer) -> str:
    dsn = pg_server.create_schema()
    yield dsn
    pg_server.drop_schema(dsn)


def test_two_replicas_see_each_others_writes(tmp_path: Path, dsn: str, clusters: Clusters) -> None:
    with Catalog(tmp_path / "a", spaces=SPACES, store=dsn) as a, Catalog(tmp_path / "b", store=dsn) as b:
        items = [add_video(a, i, 3, clusters) for i in range(5)]
        segs, x = b.item_vectors(items[2].id, "va")
        assert b.search("va", x[1], k=1)[0].item.id == items[2].id  # b's FAISS caught up before searching
        extra = add_video(b, "from-b", 2, clusters)
        assert a.search("va", a.item_vectors(extra.id, "va")[1][0], k=1)[0].item.id == extra.id
        a.delete_item(items[2].id)
        assert all(h.item.id != items[2].id for h in b.search("va", x[1], k=10))
        assert a.check().ok and b.check().ok
        assert b.stats()["spaces"]["va"]["vectors"] == 4 * 3 + 2


def test_a_restarted_replica_catches_up_its_stale_files(tmp_path: Path, dsn: str, clusters: Clusters) -> None:
    with Catalog(tmp_path / "a", spaces=SPACES, store=dsn) as a:
        first = add_video(a, 0, 3, clusters)
    with Catalog(tmp_path / "b", store=dsn) as b:  # the writer of "a" is gone; b writes meanwhile
        later = add_video(b, 1, 3, clusters)
        b.delete_item(first.id)
    with Catalog(tmp_path / "a", store=dsn) as a:  # a's FAISS files are two writes behind
        assert a.check().ok
        assert a.search("va", a.item_vectors(later.id, "va")[1][0], k=5)[0].item.id == later.id
        assert all(h.item.id != first.id for h in a.search("va", np.ones(32), k=10))


def test_concurrent_writers_never_share_a_segment_id(tmp_path: Path, dsn: str) -> None:
    with Catalog(tmp_path / "a", spaces=SPACES, store=dsn) as a, Catalog(tmp_path / "b", store=dsn) as b:
        errors: list[BaseException] = []

        def write(cat: Catalog, tag: str) -> None:
            gen = Clusters(seed=hash(tag) % 1000)
            try:
                for i in range(15):
                    add_video(cat, f"{tag}{i}", 3, gen)
                add_video(cat, "same-content", 2, gen)  # both try it: one item, no error
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=write, args=(c, t)) for c, t in ((a, "a"), (b, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert a.count() == 31
        assert a.check().ok and b.check().ok


def test_jobs_are_claimed_once_and_re_queued_when_a_lease_runs_out(dsn: str) -> None:
    stores = [PostgresStore(dsn), PostgresStore(dsn)]
    try:
        jobs = [JobStore(s, lease_s=0.5) for s in stores]
        created = {jobs[0].create(item_id=f"i{n}", source=f"{n}.wav", sha256="0" * 64, path=None, total=1).id
                   for n in range(20)}
        claimed: list[tuple[str, str]] = []
        lock = threading.Lock()

        def worker(js: JobStore, name: str) -> None:
            while (job := js.claim(name)) is not None:
                with lock:
                    claimed.append((job.id, name))

        threads = [threading.Thread(target=worker, args=(jobs[i % 2], f"w{i}")) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(j for j, _ in claimed) == sorted(created)  # every job once, none twice
        assert all(j.status == "running" and j.owner for j in jobs[1].active())
        victim = claimed[0][0]
        for job_id, owner in claimed[1:]:
            assert jobs[0].progress(job_id, 1, 1, owner=owner)  # alive: lease renewed
            jobs[0].finish(job_id, item_id="x", total=1)
        assert not jobs[0].progress(victim, 1, 1, owner="somebody-else")
        assert jobs[1].reclaim_expired() == 0  # the lease has not run out yet
        time.sleep(0.6)
        assert jobs[1].reclaim_expired() == 1  # its worker died: back in the queue, for exactly one worker
        again = jobs[1].claim("w-new")
        assert again is not None and again.id == victim and again.owner == "w-new"
        assert jobs[0].claim("w-other") is None
        assert jobs[0].get(victim).status == "running"  # readable through either replica
    finally:
        for s in stores:
            s.close()


def test_a_store_that_goes_away_gives_unavailable_and_recovers(tmp_path: Path, clusters: Clusters) -> None:
    server = PostgresServer()
    try:
        server.start()
        dsn = server.create_database()
        with Catalog(tmp_path / "c", spaces=SPACES, store=dsn) as cat:
            item = add_video(cat, 0, 2, clusters)
            server.stop()
            with pytest.raises(StoreUnavailableError, match="unreachable"):
                cat.get_item(item.id)
            with pytest.raises(StoreUnavailableError, match="unreachable"):
                add_video(cat, 1, 2, clusters)
            server.start()
            assert cat.get_item(item.id).id == item.id
            assert add_video(cat, 1, 2, clusters).n_segments == 2
            assert cat.check().ok
    finally:
        server.remove()


def test_a_process_opens_at_most_its_pool_of_connections(tmp_path: Path, dsn: str, clusters: Clusters) -> None:
    store = PostgresStore(dsn, connections=3)
    try:
        with Catalog(tmp_path / "c", spaces=SPACES, store=store) as cat:
            items = [add_video(cat, i, 2, clusters) for i in range(4)]
            seen: list[int] = []
            errors: list[BaseException] = []

            def read() -> None:
                try:
                    for it in items * 5:
                        assert cat.search("va", cat.item_vectors(it.id, "va")[1][0], k=1)[0].item.id == it.id
                        seen.append(cat.store.reader().execute(
                            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND backend_type = 'client backend'").fetchone()[0])
                except BaseException as e:  # noqa: BLE001 - reported below
                    errors.append(e)

            threads = [threading.Thread(target=read) for _ in range(12)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == [] and len(seen) == 12 * 20
            assert max(seen) <= 3  # twelve threads, three connections
    finally:
        store.close()


def test_values_postgresql_cannot_hold_are_invalid_arguments(tmp_path: Path, dsn: str, clusters: Clusters) -> None:
    with Catalog(tmp_path / "c", spaces=SPACES, store=dsn) as cat:
        with pytest.raises(InvalidArgumentError, match="NUL character"):  # refused before any store, as on SQLite
            add_video(cat, "nul", 2, clusters, metadata={"title": "a\u0000b"})
        with pytest.raises(InvalidArgumentError, match="cannot hold a value"):
            cat.count(where={"title": "a\u0000"})
        assert cat.count() == 0 and cat.check().ok  # nothing half-written


@pytest.mark.parametrize("kept", [100_000, 2])
def test_a_cache_replays_the_change_log_or_compares_ids_when_it_is_pruned(
        tmp_path: Path, dsn: str, clusters: Clusters, kept: int, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import index.store

    monkeypatch.setattr(index.store, "CHANGES_KEPT", kept)
    with Catalog(tmp_path / "a", spaces=SPACES, store=dsn) as a, Catalog(tmp_path / "b", store=dsn) as b:
        b.search("va", np.ones(32), k=1)
        mine = add_video(b, "b0", 2, clusters)  # b's own write, interleaved with a's
        items = [add_video(a, i, 3, clusters) for i in range(6)]
        a.delete_item(items[1].id)
        a.add_item(kind="video", source="r.mp4", sha256=items[2].sha256, segments=[[0, 1]], replace=True,
                   vectors={"va": clusters(1, 32), "vt": clusters(1, 16)})  # replace: delete + add in one write
        gone = add_video(a, "short-lived", 2, clusters)
        a.delete_item(gone.id)
        with caplog.at_level(logging.DEBUG, logger="index"):
            for it in [mine, *items[3:]]:
                assert b.search("va", b.item_vectors(it.id, "va")[1][0], k=1)[0].item.id == it.id
        assert b.check().ok
        assert b.stats()["spaces"]["va"]["vectors"] == 2 + 6 * 3 - 3 - 3 + 1  # mine, six, a delete, a replace
        msgs = " ".join(r.getMessage() for r in caplog.records)
        assert ("replayed epochs" in msgs) == (kept > 2) and ("caught up from the store" in msgs) == (kept == 2)


def test_metadata_patches_from_two_replicas_at_once_lose_nothing(tmp_path: Path, dsn: str, clusters: Clusters) -> None:
    """A merge patch reads, merges and writes the item's metadata: on a shared store the row is locked for
    it, so two replicas patching one item at once each keep the other's keys (no lost update)."""
    rounds = 25
    with Catalog(tmp_path / "a", spaces=SPACES, store=dsn) as a, Catalog(tmp_path / "b", store=dsn) as b:
        item = add_video(a, "patched", 1, clusters, metadata={"title": "x"})
        start = threading.Barrier(2)

        def patch(cat: Catalog, tag: str) -> None:
            start.wait()
            for i in range(rounds):
                cat.update_metadata(item.id, {f"{tag}{i}": i})

        threads = [threading.Thread(target=patch, args=(cat, tag)) for cat, tag in ((a, "a"), (b, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        got = b.get_item(item.id).metadata
        assert got == {"title": "x", **{f"{t}{i}": i for t in "ab" for i in range(rounds)}}, sorted(got)
