"""The live test server and its helpers (imported by conftest.py and the test modules)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from app.main import create_app
from app.settings import Settings

API_KEY = "test-key-0123"
KEY_HEADERS = {"X-API-Key": API_KEY}  # uploads to /embed, /search, /classify need the write key
UPLOAD_LIMIT = 1 << 20  # 1 MiB: the corpus clips are far smaller, the 413 test sends more
MAX_DURATION = 20.0


@dataclass
class LiveServer:
    url: str
    host: str
    port: int
    settings: Settings
    corpus: dict[str, Path]
    app: object

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": API_KEY}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_server(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, str, int]:
    """Start uvicorn on a free port in a thread; returns once the lifespan has run."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start (see the log above)")
        time.sleep(0.05)
    return server, thread, "127.0.0.1", port


def wait_job(client: httpx.Client, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job = r.json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def assert_error(r: httpx.Response, status: int, code: str, *fragments: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"], body
    for fragment in fragments:
        assert fragment in body["detail"], (fragment, body["detail"])
    assert "Traceback" not in r.text
    return body


@contextmanager
def live_server(settings: Settings, corpus: dict[str, Path]) -> Iterator[LiveServer]:
    """A real uvicorn serving `settings` for the `with` block (every module's server fixture)."""
    srv, thread, host, port = run_server(settings)
    try:
        yield LiveServer(f"http://{host}:{port}", host, port, settings, corpus, srv.config.app)
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
