"""Named collections over HTTP against a real server: each its own items, jobs, media and thumbnails (no route of
one reaches another's, also by guessed ids), created and deleted while serving, names and limits refused with
4xx that name the rule; and snapshots taken while uploads are in flight that restore to a catalogue `vatt index
check` passes, answering searches as the source did at the snapshot."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from app_server import API_KEY, LiveServer, assert_error, free_port, live_server, run_server
from media_factory import make_audio
from typer.testing import CliRunner

from app.main import create_app
from app.settings import Settings
from index.cli import app as index_cli
from index.snapshot import IN_FLIGHT

MAX_COLLECTIONS = 5  # default included
MAX_SNAPSHOTS = 2
runner = CliRunner()


def _settings(model_dir: Path, data_dir: Path, corpus: dict[str, Path]) -> Settings:
    return Settings(model_dir=model_dir, data_dir=data_dir, api_key=API_KEY, max_duration_s=60.0,
                    allow_server_paths=True, server_path_roots=[corpus["red"].parent], torch_threads=1,
                    batch_wait_ms=2.0, max_collections=MAX_COLLECTIONS,
                    max_snapshots=MAX_SNAPSHOTS)


@pytest.fixture(scope="module")
def cserver(trained_model_dir: Path, corpus: dict[str, Path],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = _settings(trained_model_dir, tmp_path_factory.mktemp("cdata"), corpus)
    with live_server(settings, corpus) as srv:
        yield srv


@pytest.fixture(scope="module")
def cc(cserver: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cserver.url, timeout=60, headers={"X-API-Key": API_KEY}) as c:
        yield c


def _wait(c: httpx.Client, base: str, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = c.get(f"{base}/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job = r.json()
        if job["status"] in ("done", "failed", "cancelled") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def _upload(c: httpx.Client, base: str, path: Path, metadata: str = "{}") -> dict:
    with open(path, "rb") as fh:
        r = c.post(f"{base}/items", files={"file": (path.name, fh)}, data={"metadata": metadata})
    assert r.status_code == 202, r.text
    return r.json()


def _ingest(c: httpx.Client, base: str, path: Path, metadata: str = "{}") -> tuple[str, str]:
    """(item id, job id) once the job is done."""
    accepted = _upload(c, base, path, metadata)
    job = _wait(c, base, accepted["job_id"])
    assert job["status"] == "done", job
    return job["item_id"], job["id"]


def _create(c: httpx.Client, name: str, **extra: object) -> dict:
    r = c.post("/collections", json={"name": name, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def test_names_limits_and_unknown_collections(cc: httpx.Client, cserver: LiveServer) -> None:
    for bad in ("Team A", "-x", "a" * 57, "ü", "a.b"):
        assert_error(cc.post("/collections", json={"name": bad}), 400, "bad_collection_name",
                     "1 to 56 characters of a-z, 0-9, '_' and '-'")
    assert_error(cc.get("/collections/Team%20A/items"), 400, "bad_collection_name", "1 to 56 characters")
    assert_error(cc.get("/collections/nosuch"), 404, "not_found", "no collection named 'nosuch'")
    for path in ("/items", "/jobs", "/items/" + "0" * 32, "/media/" + "0" * 32, "/snapshots"):
        assert_error(cc.get(f"/collections/nosuch{path}"), 404, "not_found", "no collection named 'nosuch'")
    assert_error(cc.post("/collections/nosuch/search", json={"text": "a red screen"}), 404, "not_found")
    assert_error(cc.post("/collections", json={"name": "x1", "index_type": "annoy"}), 400, "bad_request",
                 "unknown index type 'annoy'")
    assert_error(cc.delete("/collections/default"), 400, "bad_request", "default collection cannot be deleted")
    assert cc.post("/collections", json={"name": "x1"}, headers={"X-API-Key": "wrong"}).status_code == 403
    _create(cc, "limit-a", index_type="hnsw")
    assert_error(cc.post("/collections", json={"name": "limit-a"}), 409, "conflict", "exists already")
    names = [c["name"] for c in cc.get("/collections").json()["collections"]]
    made = [f"limit-{i}" for i in range(MAX_COLLECTIONS - len(names))]
    for name in made:
        _create(cc, name)
    assert_error(cc.post("/collections", json={"name": "one-too-many"}), 409, "limit",
                 f"limit of {MAX_COLLECTIONS} collections", "max_collections")
    assert cc.get("/collections/limit-a").json()["index_type"] == "hnsw"
    for _ in range(MAX_SNAPSHOTS):
        assert cc.post("/collections/limit-a/snapshots").status_code == 201
    assert_error(cc.post("/collections/limit-a/snapshots"), 409, "limit", f"limit of {MAX_SNAPSHOTS} snapshots",
                 "max_snapshots")
    assert len(cc.get("/collections/limit-a/snapshots").json()["snapshots"]) == MAX_SNAPSHOTS
    for name in ("limit-a", *made):
        assert cc.delete(f"/collections/{name}").status_code == 200
    assert not (cserver.settings.data_dir / "collections" / "limit-a").exists()
    # its snapshots stay (they are its backups)
    assert len(list((cserver.settings.data_dir / "snapshots" / "limit-a").glob("*.tar"))) == MAX_SNAPSHOTS


def test_two_collections_never_see_each_other(cc: httpx.Client, cserver: LiveServer) -> None:
    corpus = cserver.corpus
    _create(cc, "lectures")
    _create(cc, "sports")
    red, red_job = _ingest(cc, "/collections/lectures", corpus["red"], '{"colour": "red"}')
    green, green_job = _ingest(cc, "/collections/sports", corpus["green"], '{"colour": "green"}')
    # the same content in both: each collection gets its own item
    blue_l, _ = _ingest(cc, "/collections/lectures", corpus["blue"])
    blue_s, _ = _ingest(cc, "/collections/sports", corpus["blue"])
    assert blue_l != blue_s

    def ids(base: str) -> set[str]:
        r = cc.get(f"{base}/items")
        assert r.status_code == 200, r.text
        return {i["id"] for i in r.json()["items"]}

    assert ids("/collections/lectures") == {red, blue_l}
    assert ids("/collections/sports") == {green, blue_s}
    assert not ids("") & {red, green, blue_l, blue_s}  # the default collection holds none of them
    assert ids("/collections/default") == ids("")

    # another collection's ids, guessed or known, are unknown here
    for base, other, job in (("/collections/sports", red, red_job), ("/collections/lectures", green, green_job),
                             ("", red, red_job)):
        assert_error(cc.get(f"{base}/items/{other}"), 404, "not_found")
        assert_error(cc.get(f"{base}/media/{other}"), 404, "not_found")
        assert_error(cc.get(f"{base}/items/{other}/thumbnail"), 404, "not_found")
        assert_error(cc.get(f"{base}/jobs/{job}"), 404, "not_found")
        assert_error(cc.delete(f"{base}/items/{other}"), 404, "not_found")
        assert_error(cc.patch(f"{base}/items/{other}", json={"metadata": {"x": 1}}), 404, "not_found")
        assert_error(cc.post(f"{base}/search", json={"item_id": other}), 404, "not_found")
        assert_error(cc.post(f"{base}/classify", json={"item_id": other, "labels": ["red", "green"]}), 404,
                     "not_found")
    assert {j["id"] for j in cc.get("/collections/sports/jobs").json()["jobs"]}.isdisjoint({red_job})

    # searches answer from their own collection only, single and batch
    for base, own in (("/collections/lectures", {red, blue_l}), ("/collections/sports", {green, blue_s})):
        r = cc.post(f"{base}/search", json={"text": "a red screen with a low hum", "k": 10})
        assert r.status_code == 200, r.text
        assert {h["item"]["id"] for h in r.json()["results"]} == own
        r = cc.post(f"{base}/search/batch", json={"searches": [{"text": "a green screen with a beep"},
                                                                {"text": "a blue screen with a whistle"}]})
        assert r.status_code == 200, r.text
        assert all({h["item"]["id"] for h in resp["results"]} <= own for resp in r.json()["responses"])
    top = cc.post("/collections/lectures/search", json={"text": "a red screen with a low hum"}).json()["results"][0]
    assert top["item"]["id"] == red
    # URLs point into the item's collection and serve its bytes
    assert top["item"]["media_url"] == f"/collections/lectures/media/{red}"
    assert top["item"]["thumbnail_url"] == f"/collections/lectures/items/{red}/thumbnail"
    media = cc.get(top["item"]["media_url"])
    assert media.status_code == 200 and media.content == corpus["red"].read_bytes()
    thumb = cc.get(top["item"]["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
    r = cc.post("/collections/lectures/classify", json={"item_id": red, "labels": ["red", "green", "blue"],
                                                        "template": "a {} screen"})
    assert r.status_code == 200 and r.json()["best"] == "red", r.text

    # counts per space and kind, the model, the index type
    desc = cc.get("/collections/lectures").json()
    assert desc["items"] == 2 and desc["kinds"]["video"] == 2 and desc["segments"] == 4
    assert desc["spaces"]["va"]["vectors"] == 4 and desc["spaces"]["vt"]["vectors"] == 4
    assert desc["index_type"] == "flat" and desc["model"]["config_hash"] and desc["url"] == "/collections/lectures"
    listed = {c["name"]: c for c in cc.get("/collections").json()["collections"]}
    assert {"default", "lectures", "sports"} <= set(listed) and listed["sports"]["items"] == 2

    # deleting one leaves the other whole
    sports_dir = cserver.settings.data_dir / "collections" / "sports"
    assert (sports_dir / "media").is_dir()
    r = cc.delete("/collections/sports")
    assert r.status_code == 200 and r.json() == {"name": "sports", "deleted": True}
    assert not sports_dir.exists()
    assert_error(cc.get("/collections/sports/items"), 404, "not_found")
    assert_error(cc.get(f"/collections/sports/media/{green}"), 404, "not_found")
    assert ids("/collections/lectures") == {red, blue_l}
    assert cc.get(f"/collections/lectures/media/{red}").content == corpus["red"].read_bytes()
    r = cc.post("/collections/lectures/search", json={"text": "a red screen with a low hum"})
    assert r.json()["results"][0]["item"]["id"] == red
    # a new collection of the same name starts empty
    _create(cc, "sports")
    assert ids("/collections/sports") == set() and cc.get("/collections/sports/jobs").json()["total"] == 0
    # upload to a collection, cancel nothing, delete it while its job may run: the other's worker goes on
    accepted = _upload(cc, "/collections/sports", corpus["green"])
    assert cc.delete("/collections/sports").status_code == 200
    assert_error(cc.get(f"/collections/sports/jobs/{accepted['job_id']}"), 404, "not_found")
    again, _ = _ingest(cc, "/collections/lectures", corpus["green"])
    assert again in ids("/collections/lectures")


def test_one_worker_pool_serves_every_collection_in_turn(cc: httpx.Client, cserver: LiveServer, tmp_path: Path) -> None:
    """One ingest worker (the setting's default), taken round robin: a collection's single upload does not wait
    behind another collection's long queue."""
    _create(cc, "busy")
    _create(cc, "quiet")
    tones = [make_audio(tmp_path / f"busy{i}.wav", duration=12.0, sample_rate=16000, tone_hz=300.0 + 97 * i,
                        channels=1) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:  # accepted quickly, so the queue is long when the quiet upload comes
        busy = list(pool.map(lambda p: _upload(cc, "/collections/busy", p), tones))
    quiet = _upload(cc, "/collections/quiet", make_audio(tmp_path / "quiet.wav", duration=12.0, sample_rate=16000,
                                                          tone_hz=2500.0, channels=1))
    quiet_job = _wait(cc, "/collections/quiet", quiet["job_id"])
    busy_jobs = [_wait(cc, "/collections/busy", j["job_id"]) for j in busy]
    assert quiet_job["status"] == "done" and all(j["status"] == "done" for j in busy_jobs)
    # with one worker: once the quiet job was queued, at most the busy job then running went before it (round
    # robin), although busy jobs were still queued
    waited = [j for j in busy_jobs if j["started"] > quiet_job["created"] and j["finished"] <= quiet_job["started"]]
    assert len(waited) <= 1, (quiet_job, busy_jobs)
    assert sum(j["started"] > quiet_job["finished"] for j in busy_jobs) >= 3  # the busy queue was long then
    for name in ("busy", "quiet"):
        assert cc.delete(f"/collections/{name}").status_code == 200


def test_a_read_only_server_beside_the_writer_reads_every_collection(cc: httpx.Client, cserver: LiveServer) -> None:
    """create_app(read_only=True) (app.state.read_only): every collection opened to read; changes are refused."""
    _create(cc, "ro")
    item, _ = _ingest(cc, "/collections/ro", cserver.corpus["red"])
    app = create_app(cserver.settings)
    app.state.read_only = True
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not srv.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers={"X-API-Key": API_KEY}) as ro:
            assert {i["id"] for i in ro.get("/collections/ro/items").json()["items"]} == {item}
            r = ro.post("/collections/ro/search", json={"text": "a red screen with a low hum"})
            assert r.status_code == 200 and r.json()["results"][0]["item"]["id"] == item
            assert_error(ro.post("/collections", json={"name": "ro2"}), 503, "read_only", "read-only")
            assert_error(ro.delete("/collections/ro"), 503, "read_only", "read-only")
            assert_error(ro.post("/collections/ro/snapshots"), 503, "read_only", "read-only")
            assert_error(ro.get("/collections/ro/jobs"), 503, "read_only", "read-only")
            with open(cserver.corpus["green"], "rb") as fh:
                assert_error(ro.post("/collections/ro/items", files={"file": ("g.mp4", fh)}), 503, "read_only")
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
    assert cc.get("/collections/ro").json()["items"] == 1  # the writer goes on
    assert cc.delete("/collections/ro").status_code == 200


def _search_all(c: httpx.Client, base: str, queries: list[dict]) -> list[list[tuple[str, float]]]:
    out = []
    for q in queries:
        r = c.post(f"{base}/search", json={**q, "k": 100})
        assert r.status_code == 200, r.text
        out.append([(h["item"]["id"], h["score"]) for h in r.json()["results"]])
    return out


def test_snapshot_while_uploads_are_in_flight(cc: httpx.Client, cserver: LiveServer, tmp_path: Path,
                                              trained_model_dir: Path) -> None:
    corpus = cserver.corpus
    base = "/collections/snap"
    _create(cc, "snap")
    for clip in ("red", "green", "blue"):
        _ingest(cc, base, corpus[clip], f'{{"colour": "{clip}"}}')
    tones = [make_audio(tmp_path / f"tone{i}.wav", duration=12.0, sample_rate=16000, tone_hz=200.0 + 150 * i,
                        channels=1) for i in range(20)]
    accepted: list[dict] = []
    guard = threading.Lock()

    def uploader(paths: list[Path]) -> None:
        with httpx.Client(base_url=cserver.url, timeout=60, headers={"X-API-Key": API_KEY}) as c:
            for p in paths:
                job = _upload(c, base, p)
                with guard:
                    accepted.append(job)

    threads = [threading.Thread(target=uploader, args=(tones[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    while len(accepted) < 6:
        time.sleep(0.01)
    in_flight = cc.get(f"{base}/jobs", params={"status": "queued"}).json()["total"]
    r = cc.post(f"{base}/snapshots")
    assert r.status_code == 201, r.text
    snap = r.json()
    for t in threads:
        t.join()
    assert in_flight > 0  # jobs were waiting when the snapshot was asked for
    jobs = [_wait(cc, base, j["job_id"]) for j in accepted]
    assert all(j["status"] == "done" for j in jobs), jobs  # ingest went on and nothing accepted was lost
    assert cc.get(base).json()["items"] == 23
    assert 3 <= snap["items"] < 23 and snap["url"] == f"{base}/snapshots/{snap['name']}"

    listed = cc.get(f"{base}/snapshots").json()["snapshots"]
    assert [s["name"] for s in listed] == [snap["name"]]
    archive = tmp_path / "snap.tar"
    download = cc.get(snap["url"])
    assert download.status_code == 200 and download.headers["content-type"] == "application/x-tar"
    archive.write_bytes(download.content)
    assert len(download.content) == snap["bytes"]
    assert_error(cc.get(f"{base}/snapshots/20200101T000000Z-00000000"), 404, "not_found")
    assert_error(cc.get(f"{base}/snapshots/..catalog"), 400, "bad_request", "snapshot name")

    # the source's answers now, then restored elsewhere and served: equal on the snapshot's items
    queries = [{"text": "a red screen with a low hum"}, {"text": "a blue screen with a whistle"},
               {"vector": [1.0] + [0.0] * (cc.get(base).json()["spaces"]["va"]["dim"] - 1), "space": "va"}]
    source = _search_all(cc, base, queries)
    restored_dir = tmp_path / "restored"
    res = runner.invoke(index_cli, ["restore", str(archive), "--data", str(restored_dir)])
    assert res.exit_code == 0 and "as collection snap" in res.stdout, res.output
    res = runner.invoke(index_cli, ["check", str(restored_dir / "collections" / "snap")])
    assert res.exit_code == 0 and res.stdout.startswith(f"ok: items {snap['items']},"), res.output
    srv, thread, host, port = run_server(_settings(trained_model_dir, restored_dir, corpus))
    try:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=60, headers={"X-API-Key": API_KEY}) as rc:
            kept = {i["id"] for i in rc.get(f"{base}/items", params={"limit": 100}).json()["items"]}
            assert len(kept) == snap["items"]
            restored = _search_all(rc, base, queries)
            for got, want in zip(restored, source):
                assert [i for i, _ in got] == [i for i, _ in want if i in kept]
                assert [s for _, s in got] == pytest.approx([s for i, s in want if i in kept], abs=1e-6)
            failed = rc.get(f"{base}/jobs", params={"status": "failed", "limit": 100}).json()["jobs"]
            assert all(j["error"] == IN_FLIGHT.format(name=snap["name"]) for j in failed)
            assert len(failed) + snap["items"] >= 3 + in_flight  # in-flight jobs are failed in the copy, not lost silently
            item = next(iter(kept))
            assert rc.get(f"{base}/items/{item}").status_code == 200
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
    assert cc.delete(snap["url"]).status_code == 200
    assert cc.get(f"{base}/snapshots").json()["snapshots"] == []


def test_the_client_and_the_cli_work_on_a_collection(cserver: LiveServer, tmp_path: Path) -> None:
    """`Client(collection=)` and `vatt --collection` reach one collection's items, jobs, search and media; the
    default client does not see them; the client manages collections and snapshots too."""
    from app.cli import app as vatt_cli
    from app.client import APIError, Client

    with Client(cserver.url, api_key=API_KEY) as service, Client(cserver.url, api_key=API_KEY,
                                                                 collection="talks") as talks:
        created = service.create_collection("talks")
        assert (created.name, created.items) == ("talks", 0)
        try:
            clip = cserver.corpus["red"]
            done = talks.wait(talks.ingest(clip, {"title": "a talk"}).job_id)
            assert done.status == "done", done
            item = done.item_id
            assert [i.id for i in talks.list_items().items] == [item]
            assert item not in {i.id for i in service.list_items(limit=200).items}
            assert talks.media_url(item).endswith(f"/collections/talks/media/{item}") and talks.media(item)
            assert service.get_collection("talks").items == 1
            assert "talks" in {c.name for c in service.list_collections().collections}
            with pytest.raises(APIError) as err:
                service.get_item(item)  # not in the default collection
            assert err.value.status == 404

            cli = runner.invoke(vatt_cli, ["search", "a red screen", "--url", cserver.url, "--collection", "talks",
                                           "--json"], catch_exceptions=False)
            assert cli.exit_code == 0, cli.output
            assert [r["item"]["id"] for r in json.loads(cli.output)["results"]] == [item]
            green = runner.invoke(vatt_cli, ["ingest", str(cserver.corpus["green"]), "--url", cserver.url,
                                             "--collection", "talks", "--api-key", API_KEY, "--no-progress"],
                                  catch_exceptions=False)
            assert green.exit_code == 0, green.output
            assert talks.list_items().total == 2 and service.get_collection("talks").items == 2

            snap = talks.create_snapshot("talks")
            assert snap.items == 2 and [s.name for s in talks.list_snapshots("talks").snapshots] == [snap.name]
            archive = talks.download_snapshot(snap.name, tmp_path / "talks.tar", "talks")
            assert archive.stat().st_size == snap.bytes
            assert talks.delete_snapshot(snap.name, "talks").deleted
        finally:
            assert service.delete_collection("talks").deleted
