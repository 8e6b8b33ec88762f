"""Two `vatt` services on one PostgreSQL store (each with its own FAISS cache, one shared media directory):
what one ingests the other finds, a delete through one is gone from the other, jobs are polled on either;
a PostgreSQL that goes away gives 503 with a message, and the services recover when it is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from media_factory import make_audio
from server_proc import ServerProcess
from servers.postgres import PostgresServer


@pytest.fixture
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer()  # its own cluster: this test stops and restarts it
    try:
        yield server.start()
    finally:
        server.remove()


def _wait_job(c: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def test_two_replicas_share_a_postgresql_store_and_survive_it_going_away(tmp_path: Path, pg: PostgresServer) -> None:
    env = {"VATT_STORE": pg.create_database(), "VATT_MEDIA_DIR": str(tmp_path / "media"), "VATT_JOB_POLL_S": "0.2"}
    a = ServerProcess(tmp_path / "a", env=env)
    b = ServerProcess(tmp_path / "b", env=env)
    tones = [make_audio(tmp_path / f"tone{i}.wav", duration=4.0, sample_rate=16000, tone_hz=330.0 + 110 * i,
                        channels=1) for i in range(2)]
    try:
        a.start()
        b.start()
        with a.client() as ca, b.client() as cb:
            with open(tones[0], "rb") as fh:
                accepted = ca.post("/items", headers=a.headers(), files={"file": (tones[0].name, fh)})
            assert accepted.status_code == 202, accepted.text
            job = _wait_job(cb, accepted.json()["job_id"])  # polled on the other replica
            assert job["status"] == "done", job
            item_id = job["item_id"]
            assert cb.get(f"/items/{item_id}").status_code == 200
            hits = cb.post("/search", json={"item_id": item_id, "include_query_item": True, "k": 1}).json()
            assert hits["results"][0]["item"]["id"] == item_id  # b's FAISS cache caught up from the store
            assert cb.get(f"/media/{item_id}").status_code == 200  # the shared media directory

            with open(tones[1], "rb") as fh:  # accepted by b: a worker of either replica may run it
                second = cb.post("/items", headers=b.headers(), files={"file": (tones[1].name, fh)}).json()
            assert _wait_job(ca, second["job_id"])["status"] == "done"

            assert cb.delete(f"/items/{item_id}", headers=b.headers()).status_code == 200
            assert ca.get(f"/items/{item_id}").status_code == 404
            left = ca.post("/search", json={"text": "a tone", "k": 10}).json()["results"]
            assert item_id not in {h["item"]["id"] for h in left}

            pg.stop()
            down = ca.get("/items")
            assert down.status_code == 503, down.text
            assert down.json()["error"] == "store_unavailable" and "unreachable" in down.json()["detail"]
            assert cb.post("/search", json={"text": "a tone"}).status_code == 503
            pg.start()
            assert ca.get("/items").status_code == 200  # reconnected
            assert cb.get("/items").json()["total"] == 1
    finally:
        a.stop()
        b.stop()
