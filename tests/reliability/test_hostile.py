"""The hostile-input corpus: each input is a 4xx naming its limit, never a 5xx, and the server stays healthy.

Also: the worst metadata the limits allow, once stored, reads back through every route.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from server_proc import ServerProcess

from index import Catalog, InvalidArgumentError
from index._validate import MAX_METADATA_BYTES, MAX_METADATA_DEPTH


def _nested(depth: int, leaf: object = 1) -> dict:
    value: dict = {"leaf": leaf}
    for _ in range(depth - 1):
        value = {"d": value}
    return value


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory, tones: list[Path]) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("roots")
    env = {"VATT_ALLOW_SERVER_PATHS": "true", "VATT_SERVER_PATH_ROOTS": json.dumps([str(root)])}
    server = ServerProcess(tmp_path_factory.mktemp("hostile") / "data", env=env).start()
    server.root = root  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


def _wait(client: httpx.Client, job_id: str) -> dict:
    for _ in range(600):
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(job)


def _upload(client: httpx.Client, server: ServerProcess, path: Path, metadata: str) -> httpx.Response:
    with open(path, "rb") as fh:
        return client.post("/items", headers=server.headers(), files={"file": (path.name, fh, "audio/wav")},
                           data={"metadata": metadata})


HOSTILE = [
    # (name, method, path, kwargs, status, fragment of the message)
    ("json body 100k deep", "POST", "/search", {"content": b"[" * 100_000 + b"]" * 100_000,
                                                 "headers": {"content-type": "application/json"}}, 400, "limit is 32"),
    ("json body deep object", "POST", "/embed", {"content": b'{"a":' * 5000 + b"1" + b"}" * 5000,
                                                  "headers": {"content-type": "application/json"}}, 400, "limit"),
    ("where 200 fields", "GET", "/items", {"params": {"where": json.dumps({f"f{i}": i for i in range(200)})}},
     400, "64"),
    ("where deep", "GET", "/items", {"params": {"where": "[" * 2000 + "]" * 2000}}, 400, "limit is 32"),
    ("where in 1500 values", "GET", "/items",
     {"params": {"where": json.dumps({"a": {"in": list(range(1500))}}, separators=(",", ":"))}},
     400, "1000"),
    ("search where 10k", "POST", "/search", {"json": {"text": "red", "where": {f"f{i}": i for i in range(10_000)}}},
     400, "64"),
    ("NaN in JSON", "POST", "/search", {"content": b'{"text": "red", "k": NaN}',
                                        "headers": {"content-type": "application/json"}}, 400, "NaN"),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_input_is_a_4xx(hostile_server: ServerProcess, case) -> None:
    name, method, path, kwargs, status, fragment = case
    kwargs = dict(kwargs)
    headers = dict(kwargs.pop("headers", {}))
    with hostile_server.client() as client:
        request = client.build_request(method, path, headers={**headers, **hostile_server.headers()}, **kwargs)
        r = client.send(request)
        assert r.status_code < 500, (name, r.status_code, r.text[:300])
        assert r.status_code == status, (name, r.status_code, r.text[:300])
        if fragment:
            assert fragment in r.json()["detail"], (name, r.text[:300])
    with hostile_server.client() as client:
        assert client.get("/healthz").status_code == 200


def test_hostile_metadata_and_paths(hostile_server: ServerProcess, tones: list[Path]) -> None:
    s = hostile_server
    with s.client() as client:
        for meta, fragment in [(json.dumps(_nested(300)), "32"), (json.dumps(_nested(MAX_METADATA_DEPTH + 1)), "16"),
                               ('{"a": NaN}', "NaN"), ('{"a": Infinity}', "Infinity"),
                               (json.dumps({"big": "x" * (MAX_METADATA_BYTES + 10)}), str(MAX_METADATA_BYTES)),
                               (json.dumps({"n": 10**30}), "64-bit")]:
            r = _upload(client, s, tones[0], meta)
            assert 400 <= r.status_code < 500, (meta[:80], r.status_code, r.text[:300])
            assert fragment in r.json()["detail"], (fragment, r.text[:300])
        r = client.post("/items", headers=s.headers(), json={"path": str(s.root) + "/a\x00b.wav"})
        assert r.status_code == 400 and "NUL" in r.json()["detail"], r.text
        r = client.get("/media/" + "0" * 32, headers={"Range": "bytes=" + "9" * 5000 + "-"})
        assert r.status_code in (404, 416), r.text  # unknown item: 404 before the range is read
        assert client.get("/healthz").status_code == 200


def test_worst_allowed_metadata_reads_back_everywhere(hostile_server: ServerProcess, tones: list[Path]) -> None:
    s = hostile_server
    worst = _nested(MAX_METADATA_DEPTH - 1, leaf=[1])  # the leaf list makes it exactly MAX_METADATA_DEPTH deep
    worst["pad"] = "é\u2028\"\\" * ((MAX_METADATA_BYTES - 2000) // 16)  # 16 bytes each as JSON
    worst["nums"] = [2**63 - 1, -2**63, 1e308, -0.0, 5e-324]
    with s.client() as client:
        r = _upload(client, s, tones[1], json.dumps(worst))
        assert r.status_code == 202, r.text[:500]
        job = _wait(client, r.json()["job_id"])
        assert job["status"] == "done", job
        item = job["item_id"]
        assert client.get(f"/items/{item}").json()["metadata"] == worst
        assert any(i["id"] == item for i in client.get("/items", params={"limit": 1000}).json()["items"])
        r = client.post("/search", json={"text": "a tone", "k": 10})
        assert r.status_code == 200, r.text[:300]
        r = client.get("/items", params={"where": json.dumps({"nums": {"contains": 5}})})
        assert r.status_code == 200
        r = client.get(f"/media/{item}", headers={"Range": "bytes=" + "9" * 5000 + "-"})
        assert r.status_code == 416 and "18 digits" in r.json()["detail"], r.text
        r = client.get(f"/media/{item}", headers={"Range": "bytes=0-99"})
        assert r.status_code == 206 and len(r.content) == 100 and r.headers.get("etag")
        etag = r.headers["etag"]
        r = client.get(f"/media/{item}", headers={"Range": "bytes=0-99", "If-Range": '"stale"'})
        assert r.status_code == 200  # If-Range that does not match: the whole file
        r = client.get(f"/media/{item}", headers={"Range": "bytes=0-99", "If-Range": etag})
        assert r.status_code == 206
        r = client.get(f"/media/{item}")
        assert r.status_code == 200 and r.headers.get("last-modified")


def test_duplicate_upload_says_its_metadata_was_not_applied(hostile_server: ServerProcess, tones: list[Path]) -> None:
    s = hostile_server
    with s.client() as client:
        first = _upload(client, s, tones[2], '{"v": 1}').json()
        assert _wait(client, first["job_id"])["status"] == "done"
        again = _upload(client, s, tones[2], '{"v": 2}')
        assert again.status_code == 202, again.text
        body = again.json()
        assert body["item_id"] == first["item_id"] and body["status"] == "done"
        assert "not applied" in body["note"] and first["item_id"] in body["note"]
        assert client.get(f"/items/{first['item_id']}").json()["metadata"] == {"v": 1}


def test_media_rechecks_server_path_roots_on_every_read(hostile_server: ServerProcess, tones: list[Path],
                                                        tmp_path: Path) -> None:
    s = hostile_server
    inside = s.root / "clip.wav"  # type: ignore[attr-defined]
    inside.write_bytes(tones[3].read_bytes())
    with s.client() as client:
        r = client.post("/items", headers=s.headers(), json={"path": str(inside)})
        assert r.status_code == 202, r.text
        item = _wait(client, r.json()["job_id"])["item_id"]
        assert client.get(f"/media/{item}").content == tones[3].read_bytes()
        secret = tmp_path / "secret.wav"  # outside every root
        secret.write_bytes(b"RIFF-secret")
        inside.unlink()
        os.symlink(secret, inside)  # swapped after ingest
        r = client.get(f"/media/{item}")
        assert r.status_code == 404 and b"secret" not in r.content, r.text
        assert "allowed root" in r.json()["detail"]


@pytest.mark.parametrize("length", ["9" * 5000, "-1", "1e9", "12, 12"])
def test_absurd_content_length_is_a_4xx_on_a_raw_socket(hostile_server: ServerProcess, length: str) -> None:
    """httpx will not send these headers, so the request is written by hand: a 4xx, and the server still serves."""
    head = (f"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n")
    head += "".join(f"{k}: {v}\r\n" for k, v in hostile_server.headers().items())
    with socket.create_connection(("127.0.0.1", hostile_server.port), timeout=30) as sock:
        sock.sendall((head + "\r\n").encode() + b"x" * 16)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    assert 400 <= status < 500, reply[:300]
    with hostile_server.client() as client:
        assert client.get("/healthz").status_code == 200


def _lone(template: str) -> str:
    """JSON text with a lone surrogate escape at each '@': valid JSON syntax, not Unicode text."""
    return template.replace("@", "\\ud800")


BAD_TEXT = [
    # (method, path, raw JSON body, the field the message names, what it names)
    ("POST", "/embed", _lone('{"texts": ["ok", "@"]}'), "texts.1", "lone surrogate"),
    ("POST", "/v1/embeddings", _lone('{"input": "@", "model": "m"}'), "input", "lone surrogate"),
    ("POST", "/v1/embeddings", _lone('{"input": ["ok", "x@"], "model": "m"}'), "input", "lone surrogate"),
    ("POST", "/v1/embeddings", _lone('{"input": "ok", "model": "@"}'), "model", "lone surrogate"),
    ("POST", "/classify", _lone('{"labels": ["@"], "item_id": "x"}'), "labels.0", "lone surrogate"),
    ("POST", "/classify", _lone('{"labels": ["a"], "template": "@ {}", "item_id": "x"}'), "template",
     "lone surrogate"),
    ("POST", "/search", _lone('{"text": "@"}'), "text", "lone surrogate"),
    ("POST", "/search", _lone('{"text": "red", "where": {"a": "@"}}'), "where", "lone surrogate"),
    ("POST", "/items", _lone('{"path": "/x/@.wav"}'), "path", "lone surrogate"),
]


@pytest.mark.parametrize("case", BAD_TEXT, ids=[f"{c[1]} {c[3]}" for c in BAD_TEXT])
def test_lone_surrogates_are_a_422_naming_the_field(hostile_server: ServerProcess, case) -> None:
    method, path, body, field, fragment = case
    with hostile_server.client() as client:
        r = client.request(method, path, content=body.encode(),
                           headers={"content-type": "application/json", **hostile_server.headers()})
        assert r.status_code == 422, (r.status_code, r.text[:300])
        assert fragment in r.text and field in r.text, r.text[:300]
        r = client.get("/items", params={"where": _lone('{"a": "@"}')})
        assert r.status_code == 422 and "lone surrogate" in r.json()["detail"], r.text[:300]
        assert client.get("/healthz").status_code == 200


def test_bad_metadata_text_commits_nothing_and_reads_keep_working(hostile_server: ServerProcess,
                                                                 tones: list[Path]) -> None:
    """Issue 23 #6: a lone surrogate (or NUL) in metadata used to commit on SQLite and 500 every read."""
    s = hostile_server
    json_headers = {"content-type": "application/json", **s.headers()}
    with s.client() as client:
        r = _upload(client, s, tones[4], '{"v": 1}')
        assert r.status_code == 202, r.text
        item = _wait(client, r.json()["job_id"])["item_id"]
        jobs_before = client.get("/jobs").json()["total"]
        for meta, fragment in [(_lone('{"s": "@"}'), "lone surrogate"), (_lone('{"@": 1}'), "lone surrogate"),
                               (_lone('{"a": {"b": ["x@"]}}'), "lone surrogate"), ('{"s": "a\\u0000b"}', "NUL")]:
            r = client.patch(f"/items/{item}", content=('{"metadata": ' + meta + '}').encode(), headers=json_headers)
            assert r.status_code == 422 and fragment in r.json()["detail"], (meta, r.status_code, r.text[:300])
            assert "metadata" in r.json()["detail"], r.text[:300]
            r = _upload(client, s, tones[5], meta)  # the same metadata with a new upload: refused, no job
            assert r.status_code == 422 and fragment in r.json()["detail"], (meta, r.status_code, r.text[:300])
            body = '{"path": "' + str(s.root / "a.wav") + '", "metadata": ' + meta + "}"
            r = client.post("/items", content=body.encode(), headers=json_headers)
            assert r.status_code == 422 and fragment in r.json()["detail"], (meta, r.status_code, r.text[:300])
        with open(tones[5], "rb") as fh:  # a NUL in the source (a form field) is refused too
            r = client.post("/items", headers=s.headers(), files={"file": (tones[5].name, fh, "audio/wav")},
                            data={"source": "a\x00b"})
        assert r.status_code == 422 and "NUL" in r.json()["detail"], r.text[:300]
        assert client.get("/jobs").json()["total"] == jobs_before  # nothing accepted
        r = client.get(f"/items/{item}")
        assert r.status_code == 200 and r.json()["metadata"] == {"v": 1}, r.text[:300]
        assert client.get("/items", params={"limit": 1000}).status_code == 200
        assert client.post("/search", json={"text": "a tone", "k": 50}).status_code == 200


def test_the_catalogue_refuses_bad_text_from_any_caller_and_keeps_reading(tmp_path: Path) -> None:
    """The same rules at the store's door (library callers, imports): nothing is written, and a reopened
    catalogue reads as before."""
    vectors = {"vt": np.eye(2, 4, dtype=np.float32)}
    with Catalog(tmp_path / "cat", spaces={"vt": 4}) as cat:
        item = cat.add_item(kind="audio", source="a.wav", sha256="a" * 64, segments=[[0, 1], [1, 2]],
                            vectors=vectors, metadata={"v": 1})
        for bad in ({"s": "\ud800"}, {"\udfff": 1}, {"s": ["a\x00b"]}):
            with pytest.raises(InvalidArgumentError, match="lone surrogate|NUL"):
                cat.update_metadata(item.id, bad, merge=False)
        for source in ("\ud800.wav", "a\x00.wav"):
            with pytest.raises(InvalidArgumentError, match="lone surrogate|NUL"):
                cat.add_item(kind="audio", source=source, sha256="b" * 64, segments=[[0, 1], [1, 2]], vectors=vectors)
    with Catalog(tmp_path / "cat") as cat:
        assert cat.count() == 1 and cat.get_item(item.id).metadata == {"v": 1}
        json.dumps([dict(i.metadata) for i in cat.list_items()], ensure_ascii=False).encode()  # as responses do
