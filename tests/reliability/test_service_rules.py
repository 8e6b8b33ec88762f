"""Jobs API (listing, paging, cancel with rollback), the keys matrix, admission (429 + Retry-After),
the 413 message quoting the configured limit, and the CLI client's retry wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from media_factory import make_audio
from server_proc import API_KEY, ServerProcess

from app.client import retry_wait

READ_KEY = "read-key-4567"
LIMIT = 8 * 2**20


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"VATT_READ_API_KEY": READ_KEY, "VATT_MAX_CONCURRENT_ENCODES": "1", "VATT_MAX_UPLOAD_BYTES": str(LIMIT)}
    server = ServerProcess(tmp_path_factory.mktemp("strict") / "data", env=env).start()
    try:
        yield server
    finally:
        server.stop()


def test_keys_matrix(strict_server: ServerProcess, tones: list[Path]) -> None:
    s = strict_server
    with s.client() as c:
        assert c.post("/search", json={"text": "a tone"}).status_code == 401  # reads need a key now
        assert c.post("/search", json={"text": "a tone"}, headers={"X-API-Key": "wrong"}).status_code == 403
        assert c.post("/search", json={"text": "a tone"}, headers={"X-API-Key": READ_KEY}).status_code == 200
        assert c.get("/items", headers={"X-API-Key": API_KEY}).status_code == 200  # the write key reads too
        assert c.get("/healthz").status_code == 200
        with open(tones[5], "rb") as fh:  # an upload needs the write key, the read key is not enough
            r = c.post("/embed", headers={"X-API-Key": READ_KEY}, files={"file": (tones[5].name, fh)})
        assert r.status_code == 403, r.text
        with open(tones[5], "rb") as fh:
            r = c.post("/items", headers={"X-API-Key": READ_KEY}, files={"file": (tones[5].name, fh)})
        assert r.status_code == 403, r.text


def test_jobs_list_page_and_cancel_rolls_back(strict_server: ServerProcess, tones: list[Path]) -> None:
    s = strict_server
    with s.client() as c:
        with open(tones[6], "rb") as fh:
            job = c.post("/items", headers=s.headers(), files={"file": (tones[6].name, fh)}).json()
        r = c.delete(f"/jobs/{job['job_id']}", headers=s.headers())
        assert r.status_code in (200, 409), r.text  # 409 only if it already finished on a fast machine
        if r.status_code == 200:
            assert r.json()["status"] == "cancelled"
            time.sleep(1.0)
            assert c.get(f"/jobs/{job['job_id']}", headers=s.headers()).json()["status"] == "cancelled"
            assert c.get(f"/items/{job['item_id']}", headers=s.headers()).status_code == 404
            assert not list((s.data_dir / "media").glob(f"{job['item_id']}.*"))
            assert c.delete(f"/jobs/{job['job_id']}", headers=s.headers()).status_code == 409
        page = c.get("/jobs", params={"limit": 1, "offset": 0}, headers=s.headers()).json()
        assert page["total"] >= 1 and len(page["jobs"]) == 1
        cancelled = c.get("/jobs", params={"status": "cancelled"}, headers=s.headers()).json()
        assert all(j["status"] == "cancelled" for j in cancelled["jobs"])
        assert c.get("/jobs", params={"status": "nope"}, headers=s.headers()).status_code == 422
        assert c.delete("/jobs/unknown", headers=s.headers()).status_code == 404


def test_busy_encoder_answers_429_with_retry_after(strict_server: ServerProcess, tmp_path: Path) -> None:
    s = strict_server
    # 40 minutes of MP3 (2.3 MB, under the upload limit): seconds of encoding even on an idle machine, so the
    # client's 1 s read timeout always lands mid-encode
    long = make_audio(tmp_path / "long.mp3", duration=2400.0, sample_rate=8000, channels=1)  # 7.7 MB, under LIMIT
    short = make_audio(tmp_path / "short.wav", duration=4.0, sample_rate=8000, channels=1)  # quick while no hog
    first: list[int] = []

    def hog() -> None:  # retries while a probe holds the only slot, as a polite client would
        with s.client() as c:
            while not first or first[-1] == 429:
                with open(long, "rb") as fh:
                    first.append(c.post("/embed", headers=s.headers(), files={"file": (long.name, fh)}).status_code)

    t = threading.Thread(target=hog)
    t.start()
    try:
        deadline = time.monotonic() + 30
        r = None
        with s.client() as c:
            while time.monotonic() < deadline and t.is_alive():
                with open(short, "rb") as fh:
                    r = c.post("/embed", headers=s.headers(), files={"file": ("second.wav", fh)})
                if r.status_code == 429:
                    break
                time.sleep(0.05)
            assert r is not None and r.status_code == 429, (r.status_code if r else None, first)
            assert r.headers["retry-after"].isdigit()
            assert "max_concurrent_encodes" in r.json()["detail"]
            assert c.post("/search", json={"text": "a tone"}, headers=s.headers()).status_code == 200
    finally:
        t.join(timeout=300)
    assert first[-1] == 200 and set(first) <= {200, 429}


def test_413_quotes_the_configured_limit(strict_server: ServerProcess) -> None:
    with strict_server.client() as c:
        r = c.post("/items", headers={**strict_server.headers(), "content-type": "multipart/form-data; boundary=x"},
                   content=b"x" * (LIMIT + 70_000))
        assert r.status_code == 413, r.text
        assert str(LIMIT) in r.json()["detail"] and str(LIMIT + 64 * 1024) not in r.json()["detail"]


def test_cli_client_honours_retry_after() -> None:
    assert retry_wait(httpx.Response(429, headers={"Retry-After": "3"}), 0) == 3.0
    assert retry_wait(httpx.Response(503), 2) == 2.0  # no header: 0.5 * 2**attempt
    assert retry_wait(httpx.Response(429, headers={"Retry-After": "9999"}), 0) == 30.0  # capped


def _embed_statuses(c: httpx.Client) -> dict[str, float]:
    """POST /embed answers by status, from /metrics (a cancelled encode is recorded as 499)."""
    out = {}
    for line in c.get("/metrics").text.splitlines():
        if line.startswith("vatt_http_requests_total{") and 'route="/embed"' in line:
            status = line.split('status="', 1)[1].split('"', 1)[0]
            out[status] = float(line.rsplit(" ", 1)[1])
    return out


def test_an_encode_stops_when_its_client_goes_away(strict_server: ServerProcess, tmp_path: Path) -> None:
    """A client that uploads a long file and hangs up does not keep the only encode slot: its encode is
    cancelled between windows (499 in the metrics), and the next client is served."""
    s = strict_server
    # 40 minutes of MP3 (2.3 MB, under the upload limit): seconds of encoding even on an idle machine, so the
    # client's 1 s read timeout always lands mid-encode
    long = make_audio(tmp_path / "long.mp3", duration=2400.0, sample_rate=8000, channels=1)
    short = make_audio(tmp_path / "short.wav", duration=4.0, sample_rate=8000, channels=1)
    with s.client() as c:
        before = _embed_statuses(c).get("499", 0.0)
    with httpx.Client(base_url=s.url, timeout=httpx.Timeout(60, read=1.0)) as impatient, open(long, "rb") as fh:
        with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
            impatient.post("/embed", headers=s.headers(), files={"file": (long.name, fh)})
    with s.client() as c:
        deadline = time.monotonic() + 120
        while _embed_statuses(c).get("499", 0.0) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _embed_statuses(c).get("499", 0.0) == before + 1, _embed_statuses(c)
        with open(short, "rb") as fh:  # the slot is free again
            r = c.post("/embed", headers=s.headers(), files={"file": (short.name, fh)})
        assert r.status_code == 200, r.text
