"""Writes that reach the store while the vector engine does not (issue 23, defects 2–4), and the item's
transaction shared with its caller's decision (defect 5), on real servers.

* A Milvus that answers nothing while an item is added: `add_item` returns the stored item (it is added;
  the engine's gap is marked in the store), `vatt index check --vectors milvus://…` sees the gap, and another
  replica — one that never failed a write — catches it up before its next search.
* `add_item(within=…)`: the caller's statement runs in the item's transaction; raising there leaves nothing.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from index import Catalog
from index.cli import app
from index_helpers import SPACES, Clusters, add_video, sha
from typer.testing import CliRunner

runner = CliRunner()


def test_a_write_that_misses_milvus_is_kept_and_caught_up_by_any_replica(tmp_path: Path, pg_server,
                                                                          milvus_server) -> None:
    from index.milvus import MilvusSpaceIndex

    dsn = pg_server.create_schema()
    uri = f"{milvus_server.uri}/g{uuid.uuid4().hex[:12]}"
    quick = f"{uri}?timeout=2"
    gen = Clusters(seed=3)
    try:
        with Catalog(tmp_path / "a", spaces=SPACES, store=dsn, vectors=quick) as a, \
                Catalog(tmp_path / "b", spaces=SPACES, store=dsn, vectors=quick) as b:
            first = add_video(a, "first", 2, gen)
            milvus_server.pause()
            try:
                stored = add_video(a, "during", 3, gen)  # stored: no error although Milvus took nothing
                assert a.unavailable().keys() == {"vectors"}  # readiness sees the engine down, the store up
            finally:
                milvus_server.resume()
            assert b.get_item(stored.id).n_segments == 3
            assert a.unavailable() == {}
            res = runner.invoke(app, ["check", str(tmp_path / "c"), "--store", dsn, "--vectors", uri, "--notes"])
            assert res.exit_code == 1, res.output  # the deployment's engine lacks what the store holds
            assert "3 stored vectors are missing from the vector index" in res.stdout, res.output
            assert "marked in the store" in res.output
            # b never failed a write: the marks in the store make it catch both spaces up before it searches
            for space in SPACES:
                for it in (stored, first):
                    q = b.item_vectors(it.id, space)[1][0]
                    assert b.search(space, q, k=1)[0].item.id == it.id, (space, it.id)
            res = runner.invoke(app, ["check", str(tmp_path / "c"), "--store", dsn, "--vectors", uri, "--notes"])
            assert res.exit_code == 0 and res.stdout.startswith("ok: items 2, segments 5"), res.output
            assert "marked in the store" not in res.output  # cleared by the catch-up
    finally:
        for space, dim in SPACES.items():
            MilvusSpaceIndex(uri, space=space, dim=dim).drop()
        pg_server.drop_schema(dsn)


class _Refused(Exception):
    pass


def test_within_runs_in_the_items_transaction(catalog: Catalog) -> None:  # sqlite and postgresql (conftest)
    gen = Clusters(seed=4)
    x = {"va": gen(2, SPACES["va"]), "vt": gen(2, SPACES["vt"])}
    segs = [[0.0, 1.0], [1.0, 2.0]]

    def refuse(tx, item) -> None:  # noqa: ANN001
        assert item.sha256 == sha("w") and tx.get_item(item.id) is not None  # visible inside, not yet outside
        raise _Refused

    with pytest.raises(_Refused):
        catalog.add_item(kind="video", source="w.mp4", sha256=sha("w"), segments=segs, vectors=x, within=refuse)
    assert catalog.get_by_sha256(sha("w")) is None and catalog.count() == 0  # nothing of it was written
    assert catalog.epochs() == {"va": 0, "vt": 0}

    seen: list[str] = []
    item = catalog.add_item(kind="video", source="w.mp4", sha256=sha("w"), segments=segs, vectors=x,
                            within=lambda tx, it: seen.append(it.id))
    again = catalog.add_item(kind="video", source="w2.mp4", sha256=sha("w"), segments=segs, vectors=x,
                             within=lambda tx, it: seen.append(it.id))  # found by its sha256: the same item
    assert again.id == item.id and seen == [item.id, item.id]
    assert np.array_equal(catalog.search("va", x["va"][0], k=1)[0].item.id, item.id)
