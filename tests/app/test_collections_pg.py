"""Named collections on the PostgreSQL store, over HTTP against two real replicas sharing one database and one
media directory: each collection is a schema of its own; what one replica creates and ingests the other
serves; collections never see each other's items, jobs or media; deleting one drops its schema and leaves the
rest; snapshots point to the engine's own backup. With Milvus: one Milvus collection per (collection, space)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from app_server import API_KEY, assert_error, run_server
from servers.milvus import MilvusServer
from servers.postgres import PostgresServer
from typer.testing import CliRunner

from app.settings import Settings
from index.cli import app as index_cli
from index.milvus import load_pymilvus, parse_uri

runner = CliRunner()


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def replicas(pg: PostgresServer, trained_model_dir: Path, corpus: dict[str, Path],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, httpx.Client, str, Path]]:
    dsn = pg.create_database()
    media = tmp_path_factory.mktemp("shared-media")
    servers, clients = [], []
    try:
        for name in ("a", "b"):
            settings = Settings(model_dir=trained_model_dir, data_dir=tmp_path_factory.mktemp(f"pg-{name}"),
                                store=dsn, media_dir=media, api_key=API_KEY, torch_threads=1, batch_wait_ms=2.0,
                                job_poll_s=0.2, allow_server_paths=True, server_path_roots=[corpus["red"].parent])
            srv, thread, host, port = run_server(settings)
            servers.append((srv, thread, settings))
            clients.append(httpx.Client(base_url=f"http://{host}:{port}", timeout=60, headers={"X-API-Key": API_KEY}))
        yield clients[0], clients[1], dsn, servers[0][2].data_dir
    finally:
        for c in clients:
            c.close()
        for srv, thread, _ in servers:
            srv.should_exit = True
            thread.join(timeout=30)


def _ingest(c: httpx.Client, base: str, path: Path) -> str:
    with open(path, "rb") as fh:
        r = c.post(f"{base}/items", files={"file": (path.name, fh)})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    for _ in range(2400):
        job = c.get(f"{base}/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "done", job
    return job["item_id"]


def _ids(c: httpx.Client, base: str) -> set[str]:
    r = c.get(f"{base}/items", params={"limit": 100})
    assert r.status_code == 200, r.text
    return {i["id"] for i in r.json()["items"]}


def test_collections_are_schemas_shared_by_replicas(replicas: tuple[httpx.Client, httpx.Client, str, Path],
                                                    corpus: dict[str, Path]) -> None:
    a, b, dsn, data_a = replicas
    assert a.post("/collections", json={"name": "lectures"}).status_code == 201
    assert_error(b.post("/collections", json={"name": "lectures"}), 409, "conflict", "exists already")
    assert b.get("/collections/lectures").status_code == 200  # created on a, opened on b when asked for
    assert b.post("/collections", json={"name": "sport-s"}).status_code == 201

    red = _ingest(a, "/collections/lectures", corpus["red"])
    green = _ingest(b, "/collections/sport-s", corpus["green"])
    blue = _ingest(a, "", corpus["blue"])  # the default collection (the DSN's own schema)
    for c in (a, b):
        assert _ids(c, "/collections/lectures") == {red}
        assert _ids(c, "/collections/sport-s") == {green}
        assert _ids(c, "") == {blue}
        assert_error(c.get(f"/collections/lectures/items/{green}"), 404, "not_found")
        assert_error(c.get(f"/collections/sport-s/media/{red}"), 404, "not_found")
        assert_error(c.post("/collections/sport-s/search", json={"item_id": red}), 404, "not_found")
        hits = c.post("/collections/lectures/search", json={"text": "a red screen with a low hum", "k": 10}).json()
        assert [h["item"]["id"] for h in hits["results"]] == [red]
        media = c.get(f"/collections/lectures/media/{red}")  # the shared media directory, per collection
        assert media.status_code == 200 and media.content == corpus["red"].read_bytes()
    with psycopg.connect(dsn) as conn:
        names = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'vatt_c_%'")}
        assert names == {"vatt_c_lectures", "vatt_c_sport-s"}
        assert conn.execute('SELECT count(*) FROM "vatt_c_lectures".items').fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM public.items").fetchone()[0] == 1

    # the CLI reaches a collection's schema with --collection
    res = runner.invoke(index_cli, ["check", str(data_a), "--collection", "lectures", "--store", dsn])
    assert res.exit_code == 0 and res.stdout.startswith("ok: items 1, segments 2"), res.output

    # snapshots are the embedded store's: here the engines' own backups
    assert_error(a.post("/collections/lectures/snapshots"), 400, "snapshots_unsupported", "pg_dump")

    # deleting one drops its schema; the other collections and the default are whole
    assert a.delete("/collections/sport-s").status_code == 200
    assert_error(a.get("/collections/sport-s/items"), 404, "not_found")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'vatt_c_sport-s'").fetchone()[0] == 0
    for c in (a, b):
        assert _ids(c, "/collections/lectures") == {red} and _ids(c, "") == {blue}
    deadline = time.monotonic() + 20  # the other replica closes it when its workers next look at the store
    while b.get("/collections/sport-s/items").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert_error(b.get("/collections/sport-s/items"), 404, "not_found")
    assert a.post("/collections", json={"name": "sport-s"}).status_code == 201  # the name is free again, empty
    assert _ids(a, "/collections/sport-s") == set()


def _milvus_collections(uri: str) -> set[str]:
    pm = load_pymilvus()
    host, port, _ = parse_uri(uri)
    pm.connections.connect(alias="collections-test", host=host, port=str(port))
    try:
        return set(pm.utility.list_collections(using="collections-test", timeout=10))
    finally:
        pm.connections.disconnect("collections-test")


def test_collections_on_postgresql_and_milvus(pg: PostgresServer, milvus_server: MilvusServer, trained_model_dir: Path,
                                              corpus: dict[str, Path], tmp_path: Path) -> None:
    """One Milvus collection per (collection, space), dropped with the collection."""
    settings = Settings(model_dir=trained_model_dir, data_dir=tmp_path / "data", store=pg.create_database(),
                        vectors=f"{milvus_server.uri}/coltest", api_key=API_KEY, torch_threads=1, batch_wait_ms=2.0,
                        job_poll_s=0.2)
    srv, thread, host, port = run_server(settings)
    try:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=60, headers={"X-API-Key": API_KEY}) as c:
            for name in ("team-a", "team_a"):  # one character apart, never the same Milvus collections
                assert c.post("/collections", json={"name": name}).status_code == 201
            red = _ingest(c, "/collections/team-a", corpus["red"])
            green = _ingest(c, "/collections/team_a", corpus["green"])
            blue = _ingest(c, "", corpus["blue"])
            for base, own in (("/collections/team-a", red), ("/collections/team_a", green), ("", blue)):
                assert _ids(c, base) == {own}
                hits = c.post(f"{base}/search", json={"text": "a red screen with a low hum", "k": 10}).json()
                assert [h["item"]["id"] for h in hits["results"]] == [own]
            names = _milvus_collections(milvus_server.uri)
            ours = {n for n in names if n.startswith("vatt_coltest_c_team_a_")}
            assert len(ours) == 4 and {n[-3:] for n in ours} == {"_va", "_vt"}  # 2 collections x 2 spaces
            assert {"vatt_coltest_va", "vatt_coltest_vt"} <= names  # the default collection's
            assert c.delete("/collections/team-a").status_code == 200
            left = _milvus_collections(milvus_server.uri)
            assert len({n for n in left if n.startswith("vatt_coltest_c_team_a_")}) == 2
            assert _ids(c, "/collections/team_a") == {green} and _ids(c, "") == {blue}
            hits = c.post("/collections/team_a/search", json={"text": "a green screen with a beep"}).json()
            assert hits["results"][0]["item"]["id"] == green
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
