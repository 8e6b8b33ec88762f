"""What vector-database and OpenAI-style clients reach for first, against the live server:
search by vector, offset paging and score_threshold, ?include=vectors, PATCH (merge) and PUT (replace) metadata, /v1/embeddings."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import openai
import pytest
from app_corpus import CLIPS
from app_server import LiveServer, assert_error


def _ids_scores(body: dict) -> list[tuple[str, float]]:
    return [(r["item"]["id"], r["score"]) for r in body["results"]]


def _same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> bool:
    """Same items in the same order, scores equal to float32 rounding."""
    return [i for i, _ in got] == [i for i, _ in want] and all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(got, want))


def _item_vectors(client: httpx.Client, item_id: str) -> dict:
    r = client.get(f"/items/{item_id}", params={"include": "vectors"})
    assert r.status_code == 200, r.text
    return r.json()


def test_include_vectors_gives_segments_and_the_item_vector(server: LiveServer, client: httpx.Client,
                                                           ingested: dict[str, str]) -> None:
    plain = client.get(f"/items/{ingested['red']}").json()
    assert plain["vectors"] is None
    body = _item_vectors(client, ingested["red"])
    assert {k: v for k, v in body.items() if k != "vectors"} == {k: v for k, v in plain.items() if k != "vectors"}
    assert sorted(body["vectors"]) == ["va", "vt"]
    with open(server.corpus["red"], "rb") as fh:  # the same file embedded afresh
        fresh = client.post("/embed", headers=server.headers(), files={"file": ("red.mp4", fh)}).json()
    for space, got in body["vectors"].items():
        segs = np.array([s["vector"] for s in got["segments"]], np.float32)
        assert segs.shape[0] == body["n_segments"] == len(fresh["segments"])
        np.testing.assert_allclose(np.linalg.norm(segs, axis=1), 1.0, atol=1e-5)
        assert [(s["start"], s["end"]) for s in got["segments"]] == [(s["start"], s["end"]) for s in fresh["segments"]]
        np.testing.assert_allclose(segs, [s[space] for s in fresh["segments"]], atol=1e-5)
        mean = segs.mean(axis=0)
        np.testing.assert_allclose(got["item"], mean / np.linalg.norm(mean), atol=1e-6)
        np.testing.assert_allclose(got["item"], fresh["mean"][space], atol=1e-5)
    assert_error(client.get(f"/items/{ingested['red']}", params={"include": "thumbnails"}), 422, "validation_error")
    assert_error(client.get("/items/" + "0" * 32, params={"include": "vectors"}), 404, "not_found")


@pytest.mark.parametrize("space", ["va", "vt"])
def test_search_by_vector_equals_search_by_item(client: httpx.Client, ingested: dict[str, str], space: str) -> None:
    vec = _item_vectors(client, ingested["green"])["vectors"][space]["item"]
    by_vector = client.post("/search", json={"vector": vec, "space": space, "k": 3, "kinds": ["video"]})
    by_item = client.post("/search", json={"item_id": ingested["green"], "space": space, "k": 3,
                                           "include_query_item": True})
    assert by_vector.status_code == 200, by_vector.text
    body = by_vector.json()
    assert body["query_kind"] == "vector" and body["space"] == space
    assert body["results"][0]["item"]["id"] == ingested["green"]
    assert body["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert _same(_ids_scores(body), _ids_scores(by_item.json()))


def test_vector_search_refuses_wrong_dimension_and_non_finite_values(server: LiveServer,
                                                                    client: httpx.Client) -> None:
    dims = {"va": server.app.state.encoder.dims["va"], "vt": server.app.state.encoder.dims["vt"]}
    body = assert_error(client.post("/search", json={"vector": [0.1] * (dims["vt"] + 1), "space": "vt"}),
                        422, "wrong_dimension", f"expects dimension {dims['vt']}", f"{dims['vt'] + 1} values")
    assert "'vt'" in body["detail"]
    assert_error(client.post("/search", json={"vector": [0.1] * 3, "space": "va"}), 422, "wrong_dimension",
                 f"expects dimension {dims['va']}")
    for bad in ("NaN", "Infinity", "-Infinity"):  # Python's json reads these tokens; they must not reach FAISS
        raw = '{"space": "vt", "vector": [' + ", ".join(["0.5"] * (dims["vt"] - 1) + [bad]) + "]}"
        r = client.post("/search", content=raw, headers={"content-type": "application/json"})
        assert_error(r, 400, "invalid_json", "finite")  # refused while parsing, before any model sees it
    huge = [0.5] * (dims["vt"] - 1) + [1e39]  # finite in JSON, infinite as float32
    assert_error(client.post("/search", json={"vector": huge, "space": "vt"}), 422, "unprocessable", "finite")
    assert_error(client.post("/search", json={"vector": [0.0] * dims["vt"], "space": "vt"}), 422, "unprocessable",
                 "all zeros")
    assert_error(client.post("/search", json={"vector": [0.1] * dims["vt"]}), 422, "validation_error", "space")
    assert_error(client.post("/search", json={"vector": [0.1] * dims["vt"], "space": "vt", "kinds": ["audio"]}),
                 400, "no_shared_space", "'vt'")


def test_offset_and_score_threshold_equal_slicing_the_unpaged_list(client: httpx.Client,
                                                                   ingested: dict[str, str]) -> None:
    query = {"text": CLIPS[1].caption}
    full = client.post("/search", json={**query, "k": 3})
    assert full.status_code == 200, full.text
    unpaged = _ids_scores(full.json())
    assert len(unpaged) == 3
    for offset in range(4):
        for k in (1, 2, 3):
            r = client.post("/search", json={**query, "k": k, "offset": offset})
            assert r.status_code == 200, r.text
            assert _same(_ids_scores(r.json()), unpaged[offset:offset + k]), (offset, k, r.json())
    middle = unpaged[1][1]
    for threshold in (middle - 1e-4, middle + 1e-4, unpaged[0][1] + 1e-3, -1.0):  # off the scores: no ties
        want = [h for h in unpaged if h[1] >= threshold]
        r = client.post("/search", json={**query, "k": 3, "score_threshold": threshold})
        assert _same(_ids_scores(r.json()), want), (threshold, r.json())
        r = client.post("/search", json={**query, "k": 1, "offset": 1, "score_threshold": threshold})
        assert _same(_ids_scores(r.json()), want[1:2]), (threshold, r.json())
    assert_error(client.post("/search", json={**query, "offset": -1}), 422, "validation_error", "offset")
    assert_error(client.post("/search", json={**query, "score_threshold": 2}), 422, "validation_error")


def test_put_replaces_patch_merges_and_where_filters_see_it_at_once(server: LiveServer, client: httpx.Client,
                                                                    ingested: dict[str, str]) -> None:
    item_id = ingested["blue"]
    old = client.get(f"/items/{item_id}").json()["metadata"]
    assert_error(client.patch(f"/items/{item_id}", json={"metadata": {"x": 1}}), 401, "unauthorized", "X-API-Key")
    assert_error(client.put(f"/items/{item_id}/metadata", json={"metadata": {"x": 1}}), 401, "unauthorized")
    try:
        r = client.put(f"/items/{item_id}/metadata", headers=server.headers(),
                       json={"metadata": {"shade": "navy", "n": 2, "who": {"a": 1, "b": 2}}})
        assert r.status_code == 200, r.text
        assert r.json()["metadata"] == {"shade": "navy", "n": 2, "who": {"a": 1, "b": 2}}  # replaced: "colour" gone
        # PATCH is a JSON merge patch (RFC 7396): null deletes, objects merge, other keys stay
        r = client.patch(f"/items/{item_id}", headers={**server.headers(), "Content-Type": "application/merge-patch+json"},
                         content=json.dumps({"metadata": {"n": None, "who": {"b": None, "c": 3}, "tag": ["x"]}}))
        assert r.status_code == 200, r.text
        want = {"shade": "navy", "who": {"a": 1, "c": 3}, "tag": ["x"]}
        assert r.json()["metadata"] == want
        assert client.get(f"/items/{item_id}").json()["metadata"] == want
        listed = client.get("/items", params={"where": json.dumps({"shade": "navy"})}).json()
        assert [i["id"] for i in listed["items"]] == [item_id]
        assert client.get("/items", params={"where": json.dumps({"colour": "blue"})}).json()["total"] == 0
        assert client.get("/items", params={"where": json.dumps({"n": {"exists": True}})}).json()["total"] == 0
        hits = client.post("/search", json={"text": CLIPS[0].caption, "k": 3, "where": {"who.c": 3}}).json()
        assert [h["item"]["id"] for h in hits["results"]] == [item_id]
        for bad, fragment in (({"metadata": ["a"]}, "dict"), ({"metadata": {"a": 1}, "extra": 1}, "extra"), ({}, "metadata")):
            assert_error(client.patch(f"/items/{item_id}", headers=server.headers(), json=bad), 422,
                         "validation_error", fragment)
            assert_error(client.put(f"/items/{item_id}/metadata", headers=server.headers(), json=bad), 422,
                         "validation_error", fragment)
        for call in (client.patch, lambda url, **kw: client.put(url + "/metadata", **kw)):
            assert_error(call("/items/" + "0" * 32, headers=server.headers(), json={"metadata": {}}), 404, "not_found")
    finally:
        r = client.put(f"/items/{item_id}/metadata", headers=server.headers(), json={"metadata": old})
        assert r.status_code == 200 and r.json()["metadata"] == old


def _decode_b64(s: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype="<f4")


def test_openai_embeddings_shape_and_same_vectors_as_embed(client: httpx.Client) -> None:
    texts = [c.caption for c in CLIPS]
    ref = np.array([e["vt"] for e in client.post("/embed", json={"texts": texts}).json()["embeddings"]], np.float32)
    r = client.post("/v1/embeddings", json={"input": texts, "model": "vatt"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == "vatt"
    assert [d["object"] for d in body["data"]] == ["embedding"] * 3 and [d["index"] for d in body["data"]] == [0, 1, 2]
    np.testing.assert_allclose([d["embedding"] for d in body["data"]], ref, atol=1e-6)
    # "a red screen with a low hum": 7 words, all in the vocabulary, no padding counted
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] == 7 + 6 + 6
    b64 = client.post("/v1/embeddings", json={"input": texts, "model": "vatt", "encoding_format": "base64"}).json()
    np.testing.assert_array_equal(np.stack([_decode_b64(d["embedding"]) for d in b64["data"]]), ref)
    one = client.post("/v1/embeddings", json={"input": texts[2], "model": "vatt"}).json()
    assert len(one["data"]) == 1 and one["usage"]["prompt_tokens"] == 6
    np.testing.assert_allclose(one["data"][0]["embedding"], ref[2], atol=1e-6)
    for body, status, code, param, fragment in [
            ({"input": [], "model": "vatt"}, 422, "validation_error", "input", "input"),
            ({"input": [[1, 2]], "model": "vatt"}, 422, "validation_error", "input", "input"),
            ({"input": "x", "model": "vatt", "encoding_format": "int8"}, 422, "validation_error", "encoding_format",
             "encoding_format"),
            ({"input": "x", "model": "vatt", "dimensions": 7}, 400, "invalid_dimensions", "dimensions",
             f"have {ref.shape[1]} dimensions"),
            ({"input": "x", "model": "gpt-nope"}, 404, "model_not_found", "model", "'gpt-nope' does not exist")]:
        r = client.post("/v1/embeddings", json=body)
        assert r.status_code == status, r.text
        error = r.json()["error"]  # OpenAI's error body
        assert set(error) == {"message", "type", "param", "code"}, error
        assert (error["code"], error["param"], error["type"]) == (code, param, "invalid_request_error"), error
        assert fragment in error["message"], error


def test_openai_python_client_works_unchanged(server: LiveServer, client: httpx.Client) -> None:
    texts = [c.caption for c in CLIPS]
    ref = np.array([e["vt"] for e in client.post("/embed", json={"texts": texts}).json()["embeddings"]], np.float32)
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    for fmt in ("float", "base64"):  # the client asks for base64 by default and decodes it itself
        kwargs = {"encoding_format": "float"} if fmt == "float" else {}
        res = oa.embeddings.create(model="vatt", input=texts, **kwargs)
        got = np.array([d.embedding for d in res.data], np.float32)
        np.testing.assert_allclose(got, ref, atol=1e-6)
        assert res.usage.total_tokens == 19 and res.model == "vatt"
    res = oa.embeddings.create(model="vatt", input=texts[0])
    np.testing.assert_allclose(res.data[0].embedding, ref[0], atol=1e-6)


def test_openai_client_shows_our_errors_and_lists_the_model(server: LiveServer) -> None:
    """The official client raises its own exception classes with our message (not "Error code: 400")."""
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    listed = [m.id for m in oa.models.list().data]
    assert "vatt" in listed and server.settings.model_dir.name in listed, listed
    for name in listed:  # every listed id is accepted
        assert oa.embeddings.create(model=name, input="a red screen", encoding_format="float").model == name
    with pytest.raises(openai.NotFoundError) as missing:
        oa.embeddings.create(model="text-embedding-3-small", input="a red screen")
    assert missing.value.code == "model_not_found" and missing.value.param == "model"
    assert "'text-embedding-3-small' does not exist" in str(missing.value) and "GET /v1/models" in str(missing.value)
    dim = len(oa.embeddings.create(model="vatt", input="x", encoding_format="float").data[0].embedding)
    with pytest.raises(openai.BadRequestError) as short:
        oa.embeddings.create(model="vatt", input="a red screen", dimensions=dim // 2)
    assert short.value.param == "dimensions" and "not Matryoshka" in str(short.value), str(short.value)
    assert f"send {dim}" in short.value.body["message"]
    same = oa.embeddings.create(model="vatt", input="a red screen", dimensions=dim, encoding_format="float")
    assert len(same.data[0].embedding) == dim
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        oa.embeddings.create(model="vatt", input=[])
    assert invalid.value.param == "input" and invalid.value.type == "invalid_request_error"


def test_every_v1_error_has_openai_shape(client: httpx.Client) -> None:
    """Errors the router answers before any route runs (unknown path, wrong method, bad JSON) too."""
    for r, status, fragment in [(client.get("/v1/nope"), 404, "no route for GET /v1/nope"),
                                (client.delete("/v1/models"), 405, "DELETE is not allowed on /v1/models"),
                                (client.post("/v1/embeddings", content=b"{not json",
                                             headers={"content-type": "application/json"}), 400, "JSON")]:
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/json"
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and fragment in error["message"], error
    assert "detail" in client.get("/nope").json()  # outside /v1 the service's own shape stays
