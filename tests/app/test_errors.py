"""Every refusal has its status and a JSON `{"error", "detail"}` body, and the server keeps serving."""

from __future__ import annotations

import json
import select
import socket

import httpx
import pytest
from app_server import API_KEY, MAX_DURATION, UPLOAD_LIMIT, LiveServer, assert_error, run_server, KEY_HEADERS

from app.settings import Settings


def raw_post(server: LiveServer, path: str, headers: dict[str, str], pieces) -> tuple[int, dict, int]:
    """POST over a plain socket, sending `pieces` (raw bytes) until the server answers, as a browser
    would; returns (status, JSON body, bytes of body sent)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"POST {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n{head}Connection: close\r\n\r\n"
    sock = socket.create_connection((server.host, server.port), timeout=30)
    sent = 0
    try:
        sock.sendall(request.encode())
        for piece in pieces:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered: stop sending
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break  # it answered and closed between the check and the send; the answer is buffered
            sent += len(piece)
        select.select([sock], [], [], 30)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            part = sock.recv(65536)
            if not part:
                break
            data += part
    finally:
        sock.close()
    return int(data.split(b" ", 2)[1]), json.loads(data.split(b"\r\n\r\n", 1)[1]), sent


def chunked_multipart(total: int, chunk: int = 64 * 1024):
    """A multipart body with one `total`-byte file part, in HTTP chunked encoding, lazily."""
    head = (b'--vattb\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
            b"Content-Type: video/mp4\r\n\r\n")
    yield f"{len(head):x}\r\n".encode() + head + b"\r\n"
    block = b"\0" * chunk
    for _ in range(total // chunk):
        yield f"{len(block):x}\r\n".encode() + block + b"\r\n"
    tail = b"\r\n--vattb--\r\n"
    yield f"{len(tail):x}\r\n".encode() + tail + b"\r\n0\r\n\r\n"


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_writes_need_the_api_key(server: LiveServer, client: httpx.Client) -> None:
    with open(server.corpus["red"], "rb") as fh:
        assert_error(client.post("/items", files={"file": ("a.mp4", fh)}), 401, "unauthorized", "X-API-Key")
    with open(server.corpus["red"], "rb") as fh:
        assert_error(client.post("/items", files={"file": ("a.mp4", fh)}, headers={"X-API-Key": "wrong"}),
                     403, "forbidden", "not valid")
    assert_error(client.delete("/items/" + "0" * 32), 401, "unauthorized")
    assert_error(client.delete("/items/" + "0" * 32, headers={"X-API-Key": "nope"}), 403, "forbidden")
    assert_error(client.delete("/items/" + "0" * 32, headers={"X-API-Key": API_KEY}), 404, "not_found")


def test_upload_over_the_limit_is_refused_while_it_streams(server: LiveServer, client: httpx.Client) -> None:
    total = 64 * UPLOAD_LIMIT
    headers = {"X-API-Key": API_KEY, "Transfer-Encoding": "chunked",
               "Content-Type": "multipart/form-data; boundary=vattb"}  # no Content-Length: counted as it comes
    status, body, sent = raw_post(server, "/items", headers, chunked_multipart(total))
    assert status == 413 and body["error"] == "payload_too_large", body
    assert str(UPLOAD_LIMIT) in body["detail"]
    assert sent < total / 4  # answered long before the body was finished (socket buffers hold a few MB)
    assert client.get("/healthz").status_code == 200


def test_declared_length_over_the_limit_is_refused_at_once(server: LiveServer, client: httpx.Client) -> None:
    total = 32 * UPLOAD_LIMIT
    headers = {"Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(total), **KEY_HEADERS}
    status, body, sent = raw_post(server, "/embed", headers, (b"x" * 65536 for _ in range(total // 65536)))
    assert status == 413 and body["error"] == "payload_too_large", body
    assert sent < total / 4


def test_media_too_long_is_413(server: LiveServer, client: httpx.Client, make_media) -> None:
    path = make_media("long.wav", duration=MAX_DURATION + 5, sample_rate=8000, channels=1)
    with open(path, "rb") as fh:
        r = client.post("/items", headers=server.headers(), files={"file": ("long.wav", fh)})
    assert_error(r, 413, "media_too_long", "limit")


@pytest.mark.parametrize("route", ["/embed", "/search", "/classify", "/items"])
def test_content_is_checked_by_decoding_not_by_name(server: LiveServer, client: httpx.Client, route: str) -> None:
    r = client.post(route, headers=server.headers(), files={"file": ("holiday.mp4", b"just some text, not a video")},
                    data={"labels": "a,b"} if route == "/classify" else {})
    body = assert_error(r, 415, "unsupported_media_type", "holiday.mp4", "accepted")
    assert "upload-" not in body["detail"]  # the server's temp name never leaks


def test_text_to_audio_has_no_shared_space(client: httpx.Client, ingested) -> None:
    assert_error(client.post("/search", json={"text": "a dog", "kinds": ["audio"]}), 400, "no_shared_space",
                 "text -> audio", "vt", "va")
    assert_error(client.post("/search", json={"text": "a dog", "space": "va"}), 400, "no_shared_space")


def test_audio_cannot_be_classified_or_searched_in_vt(server: LiveServer, client: httpx.Client) -> None:
    with open(server.corpus["red.wav"], "rb") as fh:
        assert_error(client.post("/classify", headers=KEY_HEADERS, files={"file": ("a.wav", fh)}, data={"labels": "x,y"}),
                     400, "no_shared_space", "video-text")
    with open(server.corpus["red.wav"], "rb") as fh:
        assert_error(client.post("/search", headers=KEY_HEADERS, files={"file": ("a.wav", fh)}, data={"space": "vt"}),
                     400, "no_shared_space")
    with open(server.corpus["red.wav"], "rb") as fh:
        assert_error(client.post("/embed", headers=KEY_HEADERS, files={"file": ("a.wav", fh)}, data={"spaces": "vt"}), 400, "bad_request")


def test_unknown_items_and_jobs_are_404(client: httpx.Client) -> None:
    missing = "f" * 32
    assert_error(client.get(f"/items/{missing}"), 404, "not_found", missing)
    assert_error(client.get(f"/items/{missing}/thumbnail"), 404, "not_found")
    assert_error(client.get(f"/media/{missing}"), 404, "not_found")
    assert_error(client.get("/jobs/nope"), 404, "not_found", "nope")
    assert_error(client.post("/search", json={"item_id": missing}), 404, "not_found")
    assert_error(client.post("/classify", json={"item_id": missing, "labels": ["a"]}), 404, "not_found")
    assert_error(client.get("/no/such/route"), 404, "not_found", "/no/such/route")


@pytest.mark.parametrize("body,content_type", [
    (b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\nabc", "boundary=xyz"),
    (b"this is not multipart", "boundary=xyz"),
    (b"--xyz\r\nContent-Disposition: form-data; name=\"file\"", ""),
    (b"--xyz\r\nX-Nothing: 1\r\n\r\nabc\r\n--xyz--\r\n", "boundary=xyz"),
])
def test_malformed_multipart_is_400(client: httpx.Client, body: bytes, content_type: str) -> None:
    headers = {"Content-Type": f"multipart/form-data; {content_type}".strip("; "), **KEY_HEADERS}
    r = client.post("/embed", content=body, headers=headers)
    assert_error(r, 400, "bad_request", "multipart")


def test_missing_file_part_and_bad_form_values(client: httpx.Client) -> None:
    assert_error(client.post("/embed", headers=KEY_HEADERS, files={"other": ("x", b"1")}), 400, "bad_request", "'file'")
    r = client.post("/search", headers=KEY_HEADERS, files={"file": ("q.mp4", b"...")}, data={"where": "{not json"})
    assert_error(r, 400, "bad_request", "where")
    r = client.post("/search", headers=KEY_HEADERS, files={"file": ("q.mp4", b"...")}, data={"k": "many"})
    assert_error(r, 422, "validation_error", "k")


def test_validation_and_method_errors_share_the_shape(client: httpx.Client) -> None:
    body = assert_error(client.post("/search", json={"text": "x", "k": 0}), 422, "validation_error", "k")
    assert body["errors"][0]["loc"] == ["body", "k"]
    assert_error(client.post("/search", json={}), 422, "validation_error", "exactly one")
    assert_error(client.post("/search", json={"text": "x", "kind": ["video"]}), 422, "validation_error", "kind")
    assert_error(client.post("/search", content=b"{oops", headers={"Content-Type": "application/json"}),
                 400, "invalid_json")
    assert_error(client.post("/search", content=b"text=x", headers={"Content-Type": "text/plain"}),
                 415, "unsupported_media_type", "application/json")
    assert_error(client.put("/search", json={}), 405, "method_not_allowed", "PUT")
    assert_error(client.get("/items", params={"limit": "-1"}), 422, "validation_error", "limit")
    assert_error(client.get("/items", params={"where": "[1]"}), 400, "bad_request", "JSON object")
    assert_error(client.get("/items", params={"where": '{"a b": 1}'}), 400, "bad_request")
    assert_error(client.post("/classify", json={"item_id": "x", "labels": ["a"], "template": "no slot"}),
                 400, "bad_request", "{}")
    assert_error(client.post("/search", json={"text": "x", "k": 999}), 400, "bad_request", "limit")


def test_server_paths_are_confined(server: LiveServer, client: httpx.Client) -> None:
    r = client.post("/items", headers=server.headers(), json={"path": "/etc/passwd"})
    assert_error(r, 403, "forbidden", "outside the allowed roots")
    escape = str(server.corpus["red"].parent / ".." / ".." / "etc" / "hostname")
    assert_error(client.post("/items", headers=server.headers(), json={"path": escape}), 403, "forbidden")
    assert_error(client.post("/items", headers=server.headers(), json={"path": "relative.mp4"}), 400, "bad_request")
    missing = str(server.corpus["red"].parent / "missing.mp4")
    assert_error(client.post("/items", headers=server.headers(), json={"path": missing}), 404, "not_found")


def test_server_paths_are_off_by_default(trained_model_dir, tmp_path, corpus) -> None:
    settings = Settings(model_dir=trained_model_dir, data_dir=tmp_path / "data", torch_threads=1)
    srv, thread, host, port = run_server(settings)
    try:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=60) as c:
            r = c.post("/items", json={"path": str(corpus["red"])})
            assert_error(r, 403, "forbidden", "disabled")
            with open(corpus["red"], "rb") as fh:  # no API key configured: writes are open
                assert c.post("/items", files={"file": ("a.mp4", fh)}).status_code == 202
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


def test_still_serving_and_no_upload_left_behind(server: LiveServer, client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    assert list(server.settings.tmp_dir.iterdir()) == []
