"""Read-your-writes across replicas on a Milvus with its DEFAULT 200 ms time tick (issue 29, item 1).

Searches no longer wait for the next tick (they ask Milvus for everything up to the newest write timestamp a
replica recorded in the store), so this checks the guarantee where it could break: a search on replica b right
after replica a's acknowledged add (and a search on a right after b's delete) must see it, although Milvus
ticks only every 200 ms; and the timestamp that guarantees it is the one in the store, growing with each write.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from index import Catalog
from index_helpers import SPACES, Clusters, add_video
from servers.milvus import MilvusServer, running_milvus

ROUNDS = 6


@pytest.fixture(scope="module")
def milvus_200ms() -> Iterator[MilvusServer]:
    """A Milvus with the server's default proxy.timeTickInterval (the session's shared one uses 20 ms)."""
    yield from running_milvus(tick_ms=200)


def test_another_replicas_write_is_seen_at_once_with_the_default_tick(tmp_path: Path, pg_server,
                                                                     milvus_200ms) -> None:
    from index.milvus import MilvusSpaceIndex

    dsn = pg_server.create_schema()
    uri = f"{milvus_200ms.uri}/y{uuid.uuid4().hex[:12]}"
    gen = Clusters(seed=5)
    try:
        with Catalog(tmp_path / "a", spaces=SPACES, store=dsn, vectors=uri) as a, \
                Catalog(tmp_path / "b", spaces=SPACES, store=dsn, vectors=uri) as b:
            stamps: list[int] = []
            for r in range(ROUNDS):
                it = add_video(a, f"r{r}", 2, gen)  # acknowledged by a ...
                stamps.append(b.store.reader().engine_ts("va"))
                queries = {space: b.item_vectors(it.id, space)[1][0] for space in SPACES}
                for space, q in queries.items():  # ... found by b's very next search
                    hits = b.search(space, q, k=1)
                    assert [h.item.id for h in hits] == [it.id], (r, space)
                b.delete_item(it.id)  # acknowledged by b ...
                for space, q in queries.items():  # ... gone from a's very next search
                    assert it.id not in {h.item.id for h in a.search(space, q, k=10)}, (r, space)
            assert all(s > 0 for s in stamps) and stamps == sorted(set(stamps)), stamps  # recorded, growing
    finally:
        for space, dim in SPACES.items():
            MilvusSpaceIndex(uri, space=space, dim=dim).drop()
        pg_server.drop_schema(dsn)
