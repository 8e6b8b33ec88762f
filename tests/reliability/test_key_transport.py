"""How keys travel: `Authorization: Bearer` is the same key as `X-API-Key` (so the `openai` client works once
a read key is set), and a key put in the query string never reaches the access log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from server_proc import API_KEY, ServerProcess

READ_KEY = "read-key-bearer-8901"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"VATT_READ_API_KEY": READ_KEY, "PYTHONUNBUFFERED": "1"}  # unbuffered: the test reads the access log
    server = ServerProcess(tmp_path_factory.mktemp("keys") / "data", env=env, log_level="info").start()
    try:
        yield server
    finally:
        server.stop()


def test_openai_client_authenticates_with_the_read_key_as_bearer(keyed_server: ServerProcess, tones: list[Path]) -> None:
    s = keyed_server
    texts = ["a red car", "a dog barking"]
    with s.client() as c:
        ref = c.post("/embed", json={"texts": texts}, headers={"X-API-Key": READ_KEY})
        assert ref.status_code == 200, ref.text
        want = np.array([e["vt"] for e in ref.json()["embeddings"]], np.float32)
        oa = openai.OpenAI(base_url=s.url + "/v1", api_key=READ_KEY, max_retries=0)
        got = oa.embeddings.create(model="vatt", input=texts, encoding_format="float")
        np.testing.assert_allclose(np.array([d.embedding for d in got.data], np.float32), want, atol=1e-6)
        with pytest.raises(openai.PermissionDeniedError):  # a wrong key is still a 403
            openai.OpenAI(base_url=s.url + "/v1", api_key="not-the-key", max_retries=0).embeddings.create(
                model="vatt", input="x")
        assert c.post("/v1/embeddings", json={"input": "x", "model": "m"}).status_code == 401  # no key at all
        bearer = {"Authorization": f"Bearer {API_KEY}"}  # the write key as Bearer: reads and writes
        assert c.delete("/items/" + "0" * 32, headers=bearer).status_code == 404  # past auth: no such item
        assert c.delete("/items/" + "0" * 32, headers={"Authorization": f"Bearer {READ_KEY}"}).status_code == 403
        with open(tones[0], "rb") as fh:  # an upload to encode checks the key before reading the file
            r = c.post("/embed", headers=bearer, files={"file": (tones[0].name, fh, "audio/wav")})
        assert r.status_code == 200 and r.json()["segments"], r.text[:300]
        with open(tones[0], "rb") as fh:
            r = c.post("/embed", headers={"Authorization": f"Bearer {READ_KEY}"},
                       files={"file": (tones[0].name, fh, "audio/wav")})
        assert r.status_code == 403, r.text[:300]


def test_keys_in_the_query_string_never_reach_the_access_log(keyed_server: ServerProcess) -> None:
    s = keyed_server
    with httpx.Client(base_url=s.url, timeout=30) as c:
        marker = f"/items?limit=7&api_key={READ_KEY}&access_token=tok-secret-1&x={API_KEY}&offset=0"
        assert c.get(marker).status_code == 401  # keys are not taken from the query string either
        assert c.get("/items?limit=7&offset=1", headers={"X-API-Key": READ_KEY}).status_code == 200
    deadline = time.monotonic() + 10
    while "offset=1" not in (log := s.log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [line for line in log.splitlines() if "/items?limit=7" in line]
    assert len(lines) == 2, log[-2000:]  # both requests are logged...
    assert READ_KEY not in log and API_KEY not in log and "tok-secret-1" not in log, lines
    assert "api_key=***" in lines[0] and "access_token=***" in lines[0] and "x=***" in lines[0], lines
    assert "limit=7" in lines[0] and "offset=0" in lines[0], lines  # ...with the rest of the line intact
