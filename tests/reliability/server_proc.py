"""A real `uvicorn` serving the app in a child process, so a test can SIGKILL it and start it again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "app" / "demo_model"
API_KEY = "reliability-key-0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m uvicorn --factory app.main:create_app` with VATT_* settings from `env`."""

    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None, log: Path | None = None,
                 log_level: str = "warning") -> None:
        self.data_dir = data_dir
        self.log_level = log_level  # "info" writes uvicorn's access log too
        self.env = {"VATT_MODEL_DIR": str(DEMO_MODEL), "VATT_DATA_DIR": str(data_dir), "VATT_API_KEY": API_KEY,
                    "VATT_TORCH_THREADS": "1", **(env or {})}
        self.log = log or data_dir.parent / f"{data_dir.name}-server.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": API_KEY}

    def spawn(self) -> subprocess.Popen:
        """Start the process without waiting (for tests that expect it to exit)."""
        self.port = free_port()
        env = {**os.environ, **self.env, "PYTHONPATH": str(REPO)}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", self.log_level],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        return self.proc

    def start(self, timeout: float = 120.0) -> ServerProcess:
        """Start and wait until /readyz answers 200."""
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server did not become ready: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no lifespan shutdown, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM and wait (a clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


def vatt(*args: str) -> subprocess.CompletedProcess:
    """Run the `vatt` CLI in a child process."""
    return subprocess.run([sys.executable, "-m", "vatt_cli", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)


def wait_job(c: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    """Poll GET /jobs/{id} until the job has finished one way or another."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")
