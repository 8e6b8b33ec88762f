"""GET /media/{id} with HTTP Range, and thumbnails: what the web page plays moments from."""

from __future__ import annotations

import httpx
import pytest
from app_server import LiveServer, assert_error, wait_job

from app.errors import ServiceError
from app.routers.media import parse_range


@pytest.mark.parametrize("header,size,expected", [
    ("bytes=0-99", 1000, (0, 99)),
    ("bytes=100-", 1000, (100, 999)),
    ("bytes=-10", 1000, (990, 999)),
    ("bytes=-5000", 1000, (0, 999)),
    ("bytes=990-5000", 1000, (990, 999)),
    ("bytes=0-0", 1, (0, 0)),
    ("bytes=0-1,5-6", 1000, None),  # several ranges: the whole file (RFC 9110 allows it)
])
def test_parse_range(header: str, size: int, expected) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5-2", "bytes=-0", "bytes=-", "items=0-1", "bytes=a-b"])
def test_parse_range_refuses(header: str) -> None:
    with pytest.raises(ServiceError) as info:
        parse_range(header, 1000)
    assert info.value.status == 416 and info.value.headers == {"Content-Range": "bytes */1000"}


def test_media_is_played_back_whole_and_in_ranges(server: LiveServer, client: httpx.Client,
                                                   ingested: dict[str, str]) -> None:
    original = server.corpus["green"].read_bytes()
    item = ingested["green"]
    r = client.get(f"/media/{item}")
    assert r.status_code == 200 and r.content == original
    assert r.headers["content-type"] == "video/mp4" and r.headers["accept-ranges"] == "bytes"
    assert int(r.headers["content-length"]) == len(original)

    r = client.get(f"/media/{item}", headers={"Range": "bytes=10-109"})
    assert r.status_code == 206 and r.content == original[10:110]
    assert r.headers["content-range"] == f"bytes 10-109/{len(original)}"
    assert r.headers["content-length"] == "100"

    r = client.get(f"/media/{item}", headers={"Range": "bytes=-64"})
    assert r.status_code == 206 and r.content == original[-64:]

    r = client.get(f"/media/{item}", headers={"Range": f"bytes={len(original)}-"})
    assert_error(r, 416, "range_not_satisfiable", str(len(original)))
    assert r.headers["content-range"] == f"bytes */{len(original)}"
    assert client.get("/healthz").status_code == 200


def test_thumbnail_is_a_jpeg_of_the_video(client: httpx.Client, ingested: dict[str, str]) -> None:
    r = client.get(f"/items/{ingested['red']}/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content[:2] == b"\xff\xd8" and r.content[-2:] == b"\xff\xd9"
    at = client.get(f"/items/{ingested['red']}/thumbnail", params={"t": 5.0})
    assert at.status_code == 200 and at.content[:2] == b"\xff\xd8"
    late = client.get(f"/items/{ingested['red']}/thumbnail", params={"t": 600})  # past the end: the last frame
    assert late.status_code == 200 and late.content[:2] == b"\xff\xd8"


def test_a_process_that_made_thumbnails_can_still_fork(client: httpx.Client, ingested: dict[str, str]) -> None:
    """A thumbnail's libswscale context must not be left for the garbage collector of a forked child (it joined
    the parent's slice threads there and hung `vatt demo`'s process pool after a thumbnail in this process)."""
    import gc
    import multiprocessing

    gc.disable()  # as when the last collection ran before the thumbnail: its garbage reaches the fork
    try:
        for t in (1.0, 2.0, 3.0):
            assert client.get(f"/items/{ingested['red']}/thumbnail", params={"t": t}).status_code == 200
        child = multiprocessing.get_context("fork").Process(target=gc.collect)
        child.start()
        child.join(timeout=60)
    finally:
        gc.enable()
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung and child.exitcode == 0, f"forked child: hung {hung}, exit code {child.exitcode}"


def test_audio_items_have_no_thumbnail(server: LiveServer, client: httpx.Client) -> None:
    with open(server.corpus["blue.wav"], "rb") as fh:
        r = client.post("/items", headers=server.headers(), files={"file": ("tone.wav", fh)})
    job = wait_job(client, r.json()["job_id"])
    assert job["status"] == "done", job
    item = client.get(f"/items/{job['item_id']}").json()
    assert item["kind"] == "audio" and item["thumbnail_url"] is None and item["spaces"] == ["va"]
    assert_error(client.get(f"/items/{job['item_id']}/thumbnail"), 404, "not_found", "audio")
    media = client.get(item["media_url"])
    assert media.status_code == 200 and media.headers["content-type"] == "audio/wav"
    assert media.content == server.corpus["blue.wav"].read_bytes()
    assert client.delete(f"/items/{job['item_id']}", headers=server.headers()).status_code == 200
