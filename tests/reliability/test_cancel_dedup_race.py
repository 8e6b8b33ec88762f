"""Cancel vs content-hash dedup across two replicas (issue 23, defect 5): content uploaded through replica a
(job A) is uploaded again and again through replica b while another client cancels A through b. Whatever
the interleaving, every job that ends `done` points at an item that exists (with its media), and a
cancelled job leaves nothing behind. Before the fix, an upload through b deduplicated onto A's freshly
committed item and ended `done`, then A noticed its cancel at its end and rolled that item back: the
`done` job pointed at nothing (see ROUNDS for how many rounds that took; ~1.5 s a round here)."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx
from media_factory import make_audio
from server_proc import ServerProcess, wait_job
from servers.postgres import PostgresServer

ROUNDS = 40  # before the fix: failed at round 18, 11, 9, 10 and 4 in five of six runs (one passed 30 rounds)
UPLOADERS = 3  # clients uploading the same content through b at once, back to back


def _upload(c: httpx.Client, server: ServerProcess, path: Path) -> str:
    with open(path, "rb") as fh:
        r = c.post("/items", headers=server.headers(), files={"file": (path.name, fh)})
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def _hammer(server: ServerProcess, path: Path, until: threading.Event, out: list[str], errors: list[str]) -> None:
    try:
        with server.client() as c:
            while True:  # at least one upload each, however late the thread starts
                out.append(_upload(c, server, path))
                if until.is_set():
                    return
    except Exception as e:  # reported by the test's thread
        errors.append(repr(e))


def test_a_cancel_never_deletes_an_item_another_job_returned(tmp_path: Path, pg: PostgresServer) -> None:
    env = {"VATT_STORE": pg.create_database(), "VATT_MEDIA_DIR": str(tmp_path / "media"), "VATT_JOB_POLL_S": "30"}
    a = ServerProcess(tmp_path / "a", env=env)  # each replica's worker runs what it accepted (woken at once)
    b = ServerProcess(tmp_path / "b", env=env)
    rng = random.Random(23)
    try:
        a.start()
        b.start()
        with a.client() as ca, b.client() as cb:
            for rnd in range(1, ROUNDS + 1):
                tone = make_audio(tmp_path / f"r{rnd}.wav", duration=6.0, sample_rate=16000,
                                  tone_hz=200.0 + 7.0 * rnd, channels=1)
                job_a = _upload(ca, a, tone)
                ended, others, errors = threading.Event(), [], []
                hammers = [threading.Thread(target=_hammer, args=(b, tone, ended, others, errors))
                           for _ in range(UPLOADERS)]
                for t in hammers:
                    t.start()
                try:
                    time.sleep(rng.uniform(0.0, 0.4))  # the cancel lands anywhere in job A's life
                    cancel = cb.delete(f"/jobs/{job_a}", headers=b.headers())  # through the other replica
                    assert cancel.status_code in (200, 409), cancel.text  # 409: job A had already ended
                    end_a = wait_job(ca, job_a)
                    time.sleep(0.1)  # a few uploads more, after A's end
                finally:
                    ended.set()
                    for t in hammers:
                        t.join()
                assert not errors and others, f"round {rnd}: uploads through b: {errors}"
                ends = [end_a] + [wait_job(cb, j) for j in others]
                items = set()
                for end in ends:
                    if end["status"] == "done":
                        assert ca.get(f"/items/{end['item_id']}").status_code == 200, \
                            f"round {rnd}: job {end['id']} is done but its item {end['item_id']} is gone"
                        assert cb.get(f"/media/{end['item_id']}").status_code == 200, f"round {rnd}: media gone"
                        items.add(end["item_id"])
                    else:
                        assert end["status"] == "cancelled" and end["id"] == job_a, (rnd, end)
                assert len(items) == 1, f"round {rnd}: one content, items {items}"
                total = ca.get("/items").json()["total"]
                assert total == rnd, f"round {rnd}: {total} items after {rnd} contents"
    finally:
        a.stop()
        b.stop()
