"""Server paths, check then use (issue 23 #8): a path accepted under a root and swapped before the worker
reads it. The worker opens the file once, checks what it opened, and reads from that handle: a swap to a
file outside the roots fails the job with a reason, and nothing of the outside file is embedded."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from media_factory import make_audio
from server_proc import ServerProcess, wait_job


@pytest.fixture
def swap_server(tmp_path: Path) -> Iterator[ServerProcess]:
    root = tmp_path / "root"
    root.mkdir()
    env = {"VATT_ALLOW_SERVER_PATHS": "true", "VATT_SERVER_PATH_ROOTS": json.dumps([str(root)]),
           "VATT_INGEST_WORKERS": "1"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    server.root = root  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


def _running(c, job_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while c.get(f"/jobs/{job_id}").json()["status"] == "queued":
        assert time.monotonic() < deadline, "the hog job never started"
        time.sleep(0.05)


def test_a_path_swapped_after_acceptance_fails_its_job_and_embeds_nothing(swap_server: ServerProcess,
                                                                         tones: list[Path], tmp_path: Path) -> None:
    s = swap_server
    root: Path = s.root  # type: ignore[attr-defined]
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = shutil.copy(tones[7], outside / "secret.wav")  # valid media: embedded if the worker followed the swap
    # the only worker is busy with a long file while the server-path jobs wait in the queue
    hog = make_audio(tmp_path / "hog.mp3", duration=2400.0, sample_rate=8000, channels=1)
    with s.client() as c:
        with open(hog, "rb") as fh:
            hog_job = c.post("/items", headers=s.headers(), files={"file": (hog.name, fh, "audio/mpeg")}).json()
        _running(c, hog_job["job_id"])
        to_outside, to_inside = root / "clip.wav", root / "sub" / "clip.wav"
        shutil.copy(tones[6], to_outside)
        to_inside.parent.mkdir()
        shutil.copy(tones[5], to_inside)
        jobs = {}
        for path in (to_outside, to_inside):
            r = c.post("/items", headers=s.headers(), json={"path": str(path)})
            assert r.status_code == 202 and r.json()["status"] == "queued", r.text
            jobs[path] = r.json()
        # swapped after acceptance: a symlink to a file outside the roots, and other content under a root
        to_outside.unlink()
        os.symlink(secret, to_outside)
        to_inside.unlink()
        shutil.copy(tones[4], to_inside)
        assert c.get(f"/jobs/{hog_job['job_id']}").json()["status"] == "running"  # the swaps came first
        assert c.delete(f"/jobs/{hog_job['job_id']}", headers=s.headers()).status_code == 200

        failed = wait_job(c, jobs[to_outside]["job_id"])
        assert failed["status"] == "failed", failed
        assert "outside the allowed roots" in failed["error"] and "nothing was read" in failed["error"], failed
        assert str(secret) not in failed["error"]  # the reason does not tell where the link leads
        changed = wait_job(c, jobs[to_inside]["job_id"])
        assert changed["status"] == "failed" and "content changed" in changed["error"], changed

        assert c.get("/items").json()["total"] == 0  # nothing embedded: not the outside file, not the swapped one
        for job in jobs.values():
            assert c.get(f"/items/{job['item_id']}").status_code == 404
            assert not list((s.data_dir / "media").glob(f"{job['item_id']}.*"))
        assert c.post("/search", json={"text": "a tone", "k": 10}).json()["results"] == []

        # the same path, accepted now that it leads outside: refused at once, as before
        r = c.post("/items", headers=s.headers(), json={"path": str(to_outside)})
        assert r.status_code == 403 and "outside the allowed roots" in r.json()["detail"], r.text
        # and an unswapped server path still ingests
        shutil.copy(tones[3], root / "fine.wav")
        r = c.post("/items", headers=s.headers(), json={"path": str(root / "fine.wav")})
        assert wait_job(c, r.json()["job_id"])["status"] == "done"
