"""Two `vatt` services on one PostgreSQL store (each with its own FAISS cache, one shared media directory):
what one ingests the other finds, a delete through one is gone from the other, jobs are polled on either;
a PostgreSQL that goes away gives 503 with a message, and the services recover when it is back."""

from __future__ import annotations

import time
from pathlib import Path

from media_factory import make_audio
from server_proc import ServerProcess, wait_job
from servers.postgres import PostgresServer






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
            job = wait_job(cb, accepted.json()["job_id"])  # polled on the other replica
            assert job["status"] == "done", job
            item_id = job["item_id"]
            assert cb.get(f"/items/{item_id}").status_code == 200
            hits = cb.post("/search", json={"item_id": item_id, "include_query_item": True, "k": 1}).json()
            assert hits["results"][0]["item"]["id"] == item_id  # b's FAISS cache caught up from the store
            assert cb.get(f"/media/{item_id}").status_code == 200  # the shared media directory

            with open(tones[1], "rb") as fh:  # accepted by b: a worker of either replica may run it
                second = cb.post("/items", headers=b.headers(), files={"file": (tones[1].name, fh)}).json()
            assert wait_job(ca, second["job_id"])["status"] == "done"

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


def test_a_job_whose_replica_dies_is_finished_by_another(tmp_path: Path, pg: PostgresServer) -> None:
    env = {"VATT_STORE": pg.create_database(), "VATT_MEDIA_DIR": str(tmp_path / "media"), "VATT_JOB_POLL_S": "0.2",
           "VATT_JOB_LEASE_S": "2", "VATT_BATCH_SIZE": "1", "VATT_INGEST_CHUNK": "1"}  # slow enough to be caught
    a = ServerProcess(tmp_path / "a", env=env)
    b = ServerProcess(tmp_path / "b", env=env)
    tone = make_audio(tmp_path / "long.wav", duration=240.0, sample_rate=16000, tone_hz=440.0, channels=1)
    try:
        a.start()  # alone: its worker claims the job
        with a.client() as ca, open(tone, "rb") as fh:
            job_id = ca.post("/items", headers=a.headers(), files={"file": (tone.name, fh)}).json()["job_id"]
            deadline = time.monotonic() + 60
            while (job := ca.get(f"/jobs/{job_id}").json())["progress"]["done"] == 0:
                assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
                time.sleep(0.05)
        a.kill()  # mid-job: its lease stops being renewed
        assert job["status"] == "running", job
        b.start()
        with b.client() as cb:
            done = wait_job(cb, job_id, timeout=180)
            assert done["status"] == "done", done  # re-queued when the lease ran out, run again by b
            assert cb.get(f"/items/{done['item_id']}").status_code == 200
            assert cb.get("/items").json()["total"] == 1
            assert cb.get(f"/media/{done['item_id']}").status_code == 200
    finally:
        a.kill()
        b.stop()


def test_a_replica_without_the_shared_media_says_so(tmp_path: Path, pg: PostgresServer) -> None:
    """Misconfigured replicas (each its own media directory): /media is a clear 404, a job whose file this
    replica cannot see fails with the reason — never a silent loss."""
    from index import JobStore
    from index.pg_store import PostgresStore

    dsn = pg.create_database()
    a = ServerProcess(tmp_path / "a", env={"VATT_STORE": dsn, "VATT_MEDIA_DIR": str(tmp_path / "media-a")})
    b = ServerProcess(tmp_path / "b", env={"VATT_STORE": dsn, "VATT_MEDIA_DIR": str(tmp_path / "media-b"),
                                           "VATT_JOB_POLL_S": "0.2"})
    tone = make_audio(tmp_path / "tone.wav", duration=4.0, sample_rate=16000, tone_hz=550.0, channels=1)
    try:
        a.start()
        with a.client() as ca, open(tone, "rb") as fh:
            job_id = ca.post("/items", headers=a.headers(), files={"file": (tone.name, fh)}).json()["job_id"]
            item_id = wait_job(ca, job_id)["item_id"]
        a.stop()
        b.start()
        with b.client() as cb:
            r = cb.get(f"/media/{item_id}")
            assert r.status_code == 404 and "not stored on this server" in r.json()["detail"], r.text
            store = PostgresStore(dsn)
            try:  # a job accepted by a replica whose media directory b does not share
                job = JobStore(store).create(item_id="feedc0de", source="x.wav", sha256="2" * 64,
                                             path=str(tmp_path / "media-a" / "feedc0de.wav"), total=1)
            finally:
                store.close()
            failed = wait_job(cb, job.id)
            assert failed["status"] == "failed" and "must share VATT_MEDIA_DIR" in failed["error"], failed
    finally:
        a.stop()
        b.stop()
