"""Service fixtures: a corpus, a tiny model overfit on it, and a real uvicorn on 127.0.0.1.

The server runs in a thread of the test process (uvicorn.Server, a free port), with an API key,
small limits and server paths allowed under the corpus directory; tests talk to it over TCP with
httpx. The three corpus clips are ingested once, over HTTP, by `ingested`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_corpus import CLIPS, make_corpus, train_tiny_model
from app_server import API_KEY, MAX_DURATION, UPLOAD_LIMIT, LiveServer, live_server, wait_job

from app.settings import Settings


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def trained_model_dir(corpus: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_model(corpus, tmp_path_factory.mktemp("model") / "tiny-trained")


@pytest.fixture(scope="session")
def server(trained_model_dir: Path, corpus: dict[str, Path],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(model_dir=trained_model_dir, data_dir=tmp_path_factory.mktemp("data"), api_key=API_KEY,
                        max_upload_bytes=UPLOAD_LIMIT, max_duration_s=MAX_DURATION, allow_server_paths=True,
                        server_path_roots=[corpus["red"].parent], torch_threads=1, batch_wait_ms=2.0)
    with live_server(settings, corpus) as srv:
        yield srv


@pytest.fixture(scope="session")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def ingested(server: LiveServer, client: httpx.Client) -> dict[str, str]:
    """The three clips uploaded with metadata; clip name -> item id (once each job is done)."""
    jobs = {}
    for clip in CLIPS:
        with open(server.corpus[clip.name], "rb") as fh:
            r = client.post("/items", headers=server.headers(), files={"file": (f"{clip.name}.mp4", fh, "video/mp4")},
                            data={"metadata": f'{{"colour": "{clip.name}", "caption": "{clip.caption}"}}'})
        assert r.status_code == 202, r.text
        jobs[clip.name] = r.json()
    ids = {}
    for name, accepted in jobs.items():
        job = wait_job(client, accepted["job_id"])
        assert job["status"] == "done", job
        assert job["progress"] == {"done": 2, "total": 2}, job
        ids[name] = job["item_id"]
    return ids
