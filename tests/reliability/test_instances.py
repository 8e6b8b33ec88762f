"""Startup that never harms a running instance, a read-only data directory, and a full disk (a small tmpfs)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_proc import DEMO_MODEL, REPO, ServerProcess, free_port


def _serve(data: Path) -> subprocess.CompletedProcess:
    """`vatt serve` in a child; expected to refuse and exit."""
    return subprocess.run([sys.executable, "-m", "vatt_cli", "serve", "--model", str(DEMO_MODEL), "--data", str(data),
                           "--port", str(free_port())], cwd=REPO, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_second_instance_exits_with_one_line_and_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ServerProcess(data).start()
    try:
        inflight = data / "tmp" / "upload-in-flight.part"
        inflight.write_bytes(b"half an upload")
        second = _serve(data)
        assert second.returncode == 1, (second.stdout, second.stderr)
        assert "another vatt server is using" in second.stderr and "Traceback" not in second.stderr, second.stderr
        assert inflight.read_bytes() == b"half an upload"  # the first instance's upload is untouched
        with first.client() as c:
            assert c.get("/readyz").status_code == 200
    finally:
        first.stop()


@pytest.fixture
def mount(tmp_path: Path) -> Iterator:
    mounted: list[Path] = []

    def do(path: Path, options: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    yield do
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_read_only_data_dir_exits_with_one_line(tmp_path: Path, mount) -> None:
    data = mount(tmp_path / "ro", "ro,size=1m")
    result = _serve(data)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "is read-only" in result.stderr and "Traceback" not in result.stderr, result.stderr


def _fill(directory: Path) -> Path:
    """Write until the filesystem refuses (ENOSPC)."""
    filler = directory / "filler.bin"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (256 * 1024))
                fh.flush()
        except OSError:
            pass
    return filler


def test_full_disk_is_507_and_reads_keep_working(tmp_path: Path, mount, tones: list[Path]) -> None:
    data = mount(tmp_path / "small", "size=24m") / "data"
    server = ServerProcess(data, log=tmp_path / "server.log").start()
    try:
        with server.client() as c:
            with open(tones[0], "rb") as fh:
                job = c.post("/items", headers=server.headers(), files={"file": (tones[0].name, fh)}).json()
            for _ in range(600):
                if c.get(f"/jobs/{job['job_id']}").json()["status"] == "done":
                    break
                time.sleep(0.1)
            media_before = sorted(p.name for p in (data / "media").iterdir())
            _fill(data.parent)
            with open(tones[1], "rb") as fh:
                r = c.post("/items", headers=server.headers(), files={"file": ("second.wav", fh)})
            assert r.status_code == 507, r.text
            assert "disk is full" in r.json()["detail"]
            assert list((data / "tmp").iterdir()) == []  # nothing half-written
            assert sorted(p.name for p in (data / "media").iterdir()) == media_before
            assert c.post("/search", json={"text": "a tone"}).status_code == 200
            assert c.get("/items").json()["total"] == 1
        server.kill()
        server.start()  # a restart on the still-full disk serves reads
        with server.client() as c:
            assert c.get("/items").json()["total"] == 1
            assert c.post("/search", json={"text": "a tone"}).status_code == 200
    finally:
        server.stop()
