"""Cursor paging of GET /items and GET /jobs against the live server: rows inserted while a client pages
are never served twice and never make it skip a row that was there when it started."""

from __future__ import annotations

import uuid

import httpx
import numpy as np
from app_corpus import CLIPS
from app_server import LiveServer, assert_error

from index import Catalog


def _add_text_items(catalog: Catalog, n: int, rng: np.random.Generator) -> list[str]:
    """Text items straight into the server's own catalogue (the same process), as a concurrent writer."""
    ids = []
    for _ in range(n):
        v = rng.standard_normal((1, catalog.spaces["vt"])).astype(np.float32)
        ids.append(catalog.add_item(kind="text", source="paging test", sha256=uuid.uuid4().hex * 2,
                                    segments=[[0.0, 0.0]], vectors={"vt": v}, metadata={"paging": True}).id)
    return ids


def _pages(client: httpx.Client, path: str, key: str, params: dict, between) -> tuple[list[str], int]:
    seen: list[str] = []
    cursor, pages = None, 0
    while True:
        r = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [row["id"] for row in body[key]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            return seen, pages
        assert len(body[key]) == params["limit"]
        between()


def test_items_cursor_survives_concurrent_inserts(server: LiveServer, client: httpx.Client,
                                                  ingested: dict[str, str]) -> None:
    catalog: Catalog = server.app.state.catalog  # type: ignore[attr-defined]
    rng = np.random.default_rng(26)
    added = _add_text_items(catalog, 21, rng)
    try:
        where = '{"paging": true}'
        start = [i["id"] for i in client.get("/items", params={"limit": 1000, "where": where}).json()["items"]]
        assert sorted(start) == sorted(added)
        seen, pages = _pages(client, "/items", "items", {"limit": 4, "where": where},
                             lambda: added.extend(_add_text_items(catalog, 3, rng)))
        assert len(seen) == len(set(seen)), "an item was served twice"
        assert set(start) <= set(seen), "an item present at the start was skipped"
        assert pages >= 6 and len(added) > len(start)
        # all items, unfiltered, by cursor equal the offset listing when nothing moves
        by_offset = [i["id"] for i in client.get("/items", params={"limit": 1000}).json()["items"]]
        assert _pages(client, "/items", "items", {"limit": 7}, lambda: None)[0] == by_offset
    finally:
        for item_id in added:
            catalog.delete_item(item_id)


def test_jobs_cursor_survives_concurrent_inserts_where_offset_does_not(server: LiveServer, client: httpx.Client,
                                                                       ingested: dict[str, str]) -> None:
    def new_job() -> None:  # re-ingesting a catalogued file: a new job row, done at once
        r = client.post("/items", headers=server.headers(), json={"path": str(server.corpus[CLIPS[0].name])})
        assert r.status_code == 202, r.text

    for _ in range(9):
        new_job()
    start = [j["id"] for j in client.get("/jobs", params={"limit": 1000}).json()["jobs"]]
    assert len(start) >= 12
    seen, _ = _pages(client, "/jobs", "jobs", {"limit": 3}, new_job)
    assert len(seen) == len(set(seen)), "a job was served twice"
    assert set(start) <= set(seen)
    # the same walk by offset serves rows twice: newest-first pages shift under inserts
    by_offset: list[str] = []
    for offset in range(0, len(start), 3):
        by_offset += [j["id"] for j in client.get("/jobs", params={"limit": 3, "offset": offset}).json()["jobs"]]
        new_job()
    assert len(by_offset) != len(set(by_offset))


def test_bad_cursors_are_400s(client: httpx.Client) -> None:
    for path in ("/items", "/jobs"):
        for bad in ("nope", "W10", "x" * 300, "WzEsMl0"):  # not base64 JSON, [], too long, [1, 2]
            assert_error(client.get(path, params={"cursor": bad}), 400, "bad_cursor", "pass back the `next`")
        first = client.get(path, params={"limit": 1}).json()
        assert first["next"], first
        assert_error(client.get(path, params={"cursor": first["next"], "offset": 2}), 400, "bad_request",
                     "either `cursor` or `offset`")
