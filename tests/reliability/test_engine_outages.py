"""Engines that blink under running jobs (issue 23, defects 1–3): a PostgreSQL stopped under a running job
must not stop ingestion (the job finishes once it is back, later uploads too, and /readyz says not-ready
meanwhile); a Milvus paused while a job stores its item must not fail that job nor delete its media (the
vectors are caught up later), and every replica — not only the one whose write failed — catches up."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
from media_factory import make_audio
from server_proc import ServerProcess, wait_job
from servers.postgres import PostgresServer


def _ingest(c: httpx.Client, server: ServerProcess, path: Path) -> str:
    with open(path, "rb") as fh:
        accepted = c.post("/items", headers=server.headers(), files={"file": (path.name, fh)})
    assert accepted.status_code == 202, accepted.text
    return accepted.json()["job_id"]


def _found(c: httpx.Client, item_id: str) -> bool:
    hits = c.post("/search", json={"item_id": item_id, "include_query_item": True, "k": 1})
    assert hits.status_code == 200, hits.text
    return [h["item"]["id"] for h in hits.json()["results"]] == [item_id]


def test_a_postgresql_outage_under_a_running_job_does_not_stop_ingestion(tmp_path: Path, pg: PostgresServer) -> None:
    env = {"VATT_STORE": pg.create_database(), "VATT_MEDIA_DIR": str(tmp_path / "media"), "VATT_JOB_POLL_S": "0.2",
           "VATT_BATCH_SIZE": "1", "VATT_INGEST_CHUNK": "1"}  # slow enough for the outage to land mid-job
    server = ServerProcess(tmp_path / "a", env=env)
    long = make_audio(tmp_path / "long.wav", duration=120.0, sample_rate=16000, tone_hz=440.0, channels=1)
    short = make_audio(tmp_path / "short.wav", duration=4.0, sample_rate=16000, tone_hz=660.0, channels=1)
    try:
        server.start()
        with server.client() as c:
            job_id = _ingest(c, server, long)
            deadline = time.monotonic() + 60
            while (job := c.get(f"/jobs/{job_id}").json())["progress"]["done"] == 0:
                assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
                time.sleep(0.05)
            pg.stop()  # under the running job: its progress reports and its commit meet a dead store
            try:
                time.sleep(3.0)
                ready = c.get("/readyz")
                assert ready.status_code == 503, ready.text  # not ready while the store it needs is down
            finally:
                pg.start()
            done = wait_job(c, job_id, timeout=240)
            assert done["status"] == "done", done  # finished after the store returned, never lost
            assert c.get(f"/items/{done['item_id']}").status_code == 200
            assert c.get(f"/media/{done['item_id']}").status_code == 200
            later = wait_job(c, _ingest(c, server, short), timeout=120)  # the worker is alive: later uploads run
            assert later["status"] == "done", later
            assert c.get("/readyz").status_code == 200
            assert c.get("/items").json()["total"] == 2
    finally:
        server.stop()


def _owner_pid(dsn: str, job_id: str) -> int:
    """Which replica process ran a job (its lease owner is host:pid:nonce)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        return int(conn.execute("SELECT owner FROM jobs WHERE id = %s", (job_id,)).fetchone()[0].split(":")[1])


def test_a_milvus_pause_neither_fails_stored_jobs_nor_hides_them_from_other_replicas(
        tmp_path: Path, pg: PostgresServer, milvus_server) -> None:
    dsn = pg.create_database()
    vectors = f"{milvus_server.uri}/o{uuid.uuid4().hex[:10]}?timeout=3"
    env = {"VATT_STORE": dsn, "VATT_VECTORS": vectors, "VATT_MEDIA_DIR": str(tmp_path / "media")}
    a = ServerProcess(tmp_path / "a", env={**env, "VATT_JOB_POLL_S": "60"})  # a runs only what it accepts
    b = ServerProcess(tmp_path / "b", env={**env, "VATT_JOB_POLL_S": "0.2"})
    tones = [make_audio(tmp_path / f"tone{i}.wav", duration=4.0, sample_rate=16000, tone_hz=330.0 + 110 * i,
                        channels=1) for i in range(3)]
    try:
        a.start()
        b.start()
        with a.client() as ca, b.client() as cb:
            first = wait_job(ca, _ingest(ca, a, tones[0]))
            assert first["status"] == "done", first
            assert _found(cb, first["item_id"])
            milvus_server.pause()
            try:
                ids = [_ingest(cb, b, t) for t in tones[1:]]  # b's worker runs them: b's Milvus writes fail
                deadline = time.monotonic() + 60
                while cb.get("/items").json()["total"] < 3:  # in the store while Milvus answers nothing
                    assert time.monotonic() < deadline, cb.get("/jobs").json()
                    time.sleep(0.2)
                ready = ca.get("/readyz", timeout=30)
                assert ready.status_code == 503, ready.text  # a vector engine it needs is down
            finally:
                milvus_server.resume()
            jobs = [wait_job(cb, j, timeout=180) for j in ids]
            assert all(j["status"] == "done" for j in jobs), jobs  # stored → done, never failed
            assert {_owner_pid(dsn, j) for j in ids} == {b.proc.pid}
            for j in jobs:
                assert cb.get(f"/media/{j['item_id']}").status_code == 200  # media kept
            b.kill()  # the replica whose Milvus writes failed dies before it searches again
            for j in jobs:  # a never failed a write, yet finds every stored item: the gap is in the store
                assert _found(ca, j["item_id"]), j
            assert _found(ca, first["item_id"])
            assert ca.get("/readyz").status_code == 200
    finally:
        a.stop()
        b.stop()
