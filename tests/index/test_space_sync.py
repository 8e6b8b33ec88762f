"""`SpaceSync` on its own, over a real store and real FAISS indexes: two processes' caches of one PostgreSQL
store follow each other's writes (each replays only the others' epochs), a write that missed an index is
caught up from the store, and flush persists each index at the epoch it reflects."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from index.errors import StoreUnavailableError
from index.faiss_index import FaissBackend
from index.pg_store import PostgresStore
from index.space_index import VectorSource
from index.space_sync import SpaceSync
from index.sqlite_store import SqliteStore
from index.store import Store
from index.types import IndexOptions
from index_helpers import SPACES, Clusters, sha

SPACE, DIM = "vt", SPACES["vt"]


def _init(store: Store) -> None:
    with store.transaction() as tx:
        tx.init_meta({"spaces": {SPACE: DIM}, "metric": "cosine", "index_type": "flat", "index_options": {},
                      f"epoch.{SPACE}": 0, f"count.{SPACE}": 0})


def _sync(store: Store, path: Path, *, flush_every: int | None = None) -> SpaceSync:
    path.mkdir(parents=True, exist_ok=True)
    vi = FaissBackend(path).open_space(VectorSource(store, SPACE, DIM), index_type="flat", options=IndexOptions(),
                                       readonly=False)
    sync = SpaceSync(store, {SPACE: vi}, readonly=False, flush_every=flush_every)
    sync.start(SPACE)
    return sync


def _write(store: Store, sync: SpaceSync | None, key: str, gen: Clusters, n: int = 2) -> np.ndarray:
    """Commit one item; mirror it through `sync` (None: the write's process never told this index)."""
    x = gen(n, DIM)
    with store.transaction() as tx:
        ids = tx.insert_item(item_id=key, kind="video", source=f"{key}.mp4", sha256=sha(key), duration=None,
                             metadata_json="{}", segments=np.array([[i, i + 1.0] for i in range(n)]),
                             vectors={SPACE: x})
        after = sync.after(tx) if sync is not None else None
    if sync is not None:
        sync.apply({}, {SPACE: (ids, x, [key] * n, ["video"] * n)}, after)
    return ids


@pytest.fixture
def pg_store(pg_server) -> Iterator[str]:  # noqa: ANN001
    dsn = pg_server.create_schema()
    try:
        yield dsn
    finally:
        pg_server.drop_schema(dsn)


def test_two_caches_of_one_store_replay_each_others_writes(tmp_path: Path, pg_store: str) -> None:
    store_a, store_b = PostgresStore(pg_store), PostgresStore(pg_store)
    try:
        _init(store_a)
        a, b = _sync(store_a, tmp_path / "a"), _sync(store_b, tmp_path / "b")
        gen = Clusters(seed=1)
        first = _write(store_a, a, "one", gen)
        assert a.synced[SPACE] == 1 and not a.needs_sync(SPACE)  # nobody else wrote: still in sync
        assert b.needs_sync(SPACE)
        b.sync(SPACE)
        assert set(b.indexes[SPACE].ids().tolist()) == set(first.tolist()) and b.synced[SPACE] == 1
        second = _write(store_b, b, "two", gen)
        third = _write(store_a, a, "three", gen)  # b wrote in between: a's own epoch waits in `own`
        assert a.own[SPACE] == {3} and a.synced[SPACE] == 1 and a.needs_sync(SPACE)
        a.sync(SPACE)  # replays b's epoch only (its own is applied already)
        assert a.synced[SPACE] == 3 and a.own[SPACE] == set()
        assert set(a.indexes[SPACE].ids().tolist()) == set(np.concatenate([first, second, third]).tolist())
        b.sync(SPACE)
        assert set(b.indexes[SPACE].ids().tolist()) == set(a.indexes[SPACE].ids().tolist())
    finally:
        store_a.close()
        store_b.close()


def test_a_write_that_missed_the_index_is_caught_up_and_flush_keeps_the_epoch(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path, readonly=False)
    try:
        _init(store)
        sync = _sync(store, tmp_path, flush_every=1_000)
        gen = Clusters(seed=2)
        kept = _write(store, sync, "kept", gen)
        assert sync.pending == 2 and not sync.needs_sync(SPACE)  # an embedded store: nobody else writes
        missed = _write(store, None, "missed", gen)  # committed, never mirrored
        sync.mark_behind(SPACE, StoreUnavailableError("the engine was down"))
        assert sync.needs_sync(SPACE)
        sync.sync(SPACE)
        assert set(sync.indexes[SPACE].ids().tolist()) == set(np.concatenate([kept, missed]).tolist())
        assert not sync.needs_sync(SPACE) and sync.synced[SPACE] == 2
        sync.flush()
        assert sync.pending == 0
        notes = sync.indexes[SPACE].check(sync.indexes[SPACE].ids(), 2)[1]
        assert not any("not flushed" in n for n in notes), notes  # the file holds epoch 2
        sync.unindexed.add(SPACE)
        _write(store, sync, "later", gen)
        sync.flush()  # a space left for a rebuild keeps its older file
        assert any("epoch 2" in n for n in sync.indexes[SPACE].check(sync.indexes[SPACE].ids(), 3)[1])
    finally:
        store.close()
