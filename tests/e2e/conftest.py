"""Fixtures for the browser test: a trained tiny model, a real `vatt serve` with the three-colour
corpus ingested over HTTP, and a headless Chromium.

Everything is module-scoped: one model, one server and one browser per test module (the
browser test's cases share them, each in a fresh tab).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from browser import Chromium, Page, find_chromium
from e2e_corpus import CLIP_COLOURS, caption, make_clip, train_tiny_model
from page_helpers import wait_job

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"


@dataclass
class Served:
    """A running server and what was ingested into it."""

    url: str
    data_dir: Path
    log_path: Path
    clips: dict[str, Path]  # colour -> file
    item_ids: dict[str, str] = field(default_factory=dict)  # colour -> item id
    workdir: Path = Path()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"vatt serve exited with {proc.returncode}; log:\n{log_path.read_text()[-4000:]}")
        try:
            r = httpx.get(f"{url}/readyz", timeout=2)
            if r.status_code == 200 and r.json().get("ready", True):
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(f"vatt serve not ready after {timeout:.0f} s ({last}); log:\n{log_path.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[Served]:
    """`vatt serve` on a free loopback port with the tiny model; the three clips ingested."""
    work = tmp_path_factory.mktemp("e2e")
    clips = {c: make_clip(work / f"{c}.mp4", rgb) for c, rgb in CLIP_COLOURS.items()}
    model_dir = train_tiny_model(clips, work / "model")
    data_dir = work / "data"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = artifacts / "e2e-server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VATT_TORCH_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("VATT_API_KEY", None)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vatt_cli", "serve", "--model", str(model_dir), "--data", str(data_dir),
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_ready(url, proc, log_path)
        served = Served(url, data_dir, log_path, clips, workdir=work)
        for colour, path in clips.items():
            with open(path, "rb") as fh:
                r = httpx.post(f"{url}/items", files={"file": (path.name, fh, "video/mp4")},
                               data={"metadata": f'{{"title": "{colour} clip", "caption": "{caption(colour)}"}}'},
                               timeout=60)
            assert r.status_code == 202, r.text
            job = wait_job(url, r.json()["job_id"])
            assert job["status"] == "done", job
            served.item_ids[colour] = job["item_id"]
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    """Headless Debian Chromium (fails, never skips, when Chromium is missing)."""
    chromium = Chromium.launch(binary=find_chromium())
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def page(browser: Chromium, served: Served, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh tab on the page, ready; screenshot on the way out; no uncaught JS errors allowed."""
    tab = browser.new_page()
    try:
        tab.goto(f"{served.url}/")
        tab.wait_for("document.querySelector('#health').dataset.state === 'ready'", timeout=30,
                     what="the page to report the service ready")
        yield tab
    finally:
        shot = tab.screenshot(artifacts / f"web-{request.node.name}.png")
        print(f"screenshot: {shot}")
        tab.close()
    assert not tab.errors, f"JavaScript errors on the page: {tab.errors}\nconsole: {tab.console}"
