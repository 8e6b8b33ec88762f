"""Search verbs against the live server: recommend (positive/negative examples, Qdrant's average-vector
strategy), batch search, include/exclude result shaping."""

from __future__ import annotations

import httpx
import numpy as np
from app_corpus import CLIPS
from app_server import LiveServer, assert_error


def _item_vector(client: httpx.Client, item_id: str, space: str = "va") -> np.ndarray:
    r = client.get(f"/items/{item_id}", params={"include": "vectors"})
    assert r.status_code == 200, r.text
    return np.array(r.json()["vectors"][space]["item"], np.float64)


def _ranked(body: dict) -> list[tuple[str, float]]:
    return [(h["item"]["id"], h["score"]) for h in body["results"]]


def _same(got: list[tuple[str, float]], want: list[tuple[str, float]], tol: float = 1e-5) -> bool:
    return [i for i, _ in got] == [i for i, _ in want] and all(abs(a - b) < tol for (_, a), (_, b) in zip(got, want))


def _search(client: httpx.Client, body: dict) -> dict:
    r = client.post("/search", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_item_id_is_one_positive(client: httpx.Client, ingested: dict[str, str]) -> None:
    by_item = _search(client, {"item_id": ingested["red"], "k": 10})
    by_positive = _search(client, {"positive": [{"item_id": ingested["red"]}], "k": 10})
    assert by_positive["space"] == by_item["space"] == "va"
    assert _same(_ranked(by_positive), _ranked(by_item)) and len(by_item["results"]) >= 2
    assert ingested["red"] not in [i for i, _ in _ranked(by_positive)]  # the example item is left out


def test_negative_moves_its_neighbours_down(client: httpx.Client, ingested: dict[str, str]) -> None:
    red = _item_vector(client, ingested["red"])
    plain = _ranked(_search(client, {"positive": [{"item_id": ingested["red"]}], "k": 20, "kinds": ["video"]}))
    top = plain[0][0]  # the positive's nearest neighbour, now given as a negative (as a vector: not left out)
    neg = _item_vector(client, top)
    body = {"positive": [{"item_id": ingested["red"]}], "negative": [{"vector": neg.tolist(), "space": "va"}],
            "k": 20, "kinds": ["video"]}
    moved = _ranked(_search(client, body))
    # the average-vector strategy: the same as a search by normalise(2·mean(positive) − mean(negative))
    target = 2 * red - neg
    by_vector = _search(client, {"vector": (target / np.linalg.norm(target)).tolist(), "space": "va", "k": 20,
                                 "kinds": ["video"]})
    assert _same(moved, [h for h in _ranked(by_vector) if h[0] != ingested["red"]])
    rank = {i: n for n, (i, _) in enumerate(moved)}
    assert rank[top] > 0 and rank[top] == len(moved) - 1, (plain, moved)  # from first to last
    # every item's score drops by more the closer it is to the negative
    before, after = dict(plain), dict(moved)
    vecs = {i: _item_vector(client, i) for i in before}
    by_closeness = sorted(before, key=lambda i: float(vecs[i] @ neg))
    drops = [before[i] - after[i] for i in by_closeness]
    assert drops == sorted(drops), (by_closeness, drops)


def test_examples_mix_texts_items_and_vectors(client: httpx.Client, ingested: dict[str, str]) -> None:
    caption = CLIPS[1].caption
    text_vt = np.array(client.post("/embed", json={"texts": [caption]}).json()["embeddings"][0]["vt"])
    blue_vt = _item_vector(client, ingested["blue"], "vt")
    got = _search(client, {"positive": [{"text": caption}, {"item_id": ingested["blue"]}], "k": 10})
    assert got["space"] == "vt" and got["query_kind"] == "vector"
    mean = (text_vt + blue_vt) / 2
    want = _search(client, {"vector": (mean / np.linalg.norm(mean)).tolist(), "space": "vt", "k": 10})
    assert _same(_ranked(got), [h for h in _ranked(want) if h[0] != ingested["blue"]], tol=1e-4)
    # a text has no va vector; an example item must exist; examples cannot cancel out
    assert_error(client.post("/search", json={"positive": [{"text": caption}], "space": "va"}), 400,
                 "no_shared_space", "only a vt vector")
    assert_error(client.post("/search", json={"positive": [{"item_id": "0" * 32}]}), 404, "not_found")
    red = _item_vector(client, ingested["red"]).tolist()
    assert_error(client.post("/search", json={"positive": [{"vector": red, "space": "va"},
                                                           {"vector": [-x for x in red], "space": "va"}]}),
                 422, "unprocessable", "cancel out")
    assert_error(client.post("/search", json={"positive": [{"vector": red, "space": "va"}],
                                              "negative": [{"vector": red[:3], "space": "va"}]}),
                 422, "wrong_dimension", "expects dimension")
    assert_error(client.post("/search", json={"positive": [{"vector": red, "space": "va"}], "space": "vt"}), 400,
                 "no_shared_space", "given for space 'va'")
    assert_error(client.post("/search", json={"negative": [{"item_id": ingested["red"]}]}), 422, "validation_error",
                 "'negative' examples go with 'positive'")
    assert_error(client.post("/search", json={"positive": [{"item_id": ingested["red"], "text": "x"}]}), 422,
                 "validation_error", "exactly one of")
    assert_error(client.post("/search", json={"positive": [{"text": "x"}] * 40, "negative": [{"text": "y"}] * 30}),
                 422, "validation_error", "at most 64 examples")
    assert_error(client.post("/search", json={"text": "x", "positive": [{"text": "y"}]}), 422, "validation_error",
                 "exactly one of")


def test_batch_equals_single_searches(client: httpx.Client, ingested: dict[str, str]) -> None:
    red = _item_vector(client, ingested["red"])
    searches = [{"text": c.caption, "k": 3} for c in CLIPS] + [
        {"item_id": ingested["green"], "k": 5},
        {"vector": red.tolist(), "space": "va", "k": 2, "kinds": ["video"]},
        {"positive": [{"text": CLIPS[0].caption}], "negative": [{"text": CLIPS[2].caption}], "k": 3},
        {"text": CLIPS[0].caption, "k": 3, "where": {"$or": [{"colour": "red"}, {"colour": "blue"}]}},
        {"text": CLIPS[2].caption, "k": 1, "offset": 1, "include": ["timeline"], "exclude": ["metadata"]},
    ]
    r = client.post("/search/batch", json={"searches": searches})
    assert r.status_code == 200, r.text
    batch = r.json()["responses"]
    assert len(batch) == len(searches)
    for one, got in zip(searches, batch):
        want = _search(client, one)
        assert _same(_ranked(got), _ranked(want), tol=1e-4), (one, got, want)
        assert (got["space"], got["query_kind"]) == (want["space"], want["query_kind"])
        for g, w in zip(got["results"], want["results"]):
            assert set(g) == set(w) and set(g["item"]) == set(w["item"])
    assert_error(client.post("/search/batch", json={"searches": [{"text": "x"}] * 33}), 422, "validation_error", "33")
    assert_error(client.post("/search/batch", json={"searches": []}), 422, "validation_error")
    assert_error(client.post("/search/batch", json={"searches": [{"text": "x"}, {"item_id": "0" * 32}]}), 404,
                 "not_found")


def test_include_and_exclude_shape_results(client: httpx.Client, ingested: dict[str, str]) -> None:
    base = {"item_id": ingested["red"], "k": 3, "kinds": ["video"]}
    plain = _search(client, base)["results"]
    assert plain and all("metadata" in h["item"] and "moments" in h and h["vector"] is None for h in plain)
    lean = _search(client, {**base, "exclude": ["metadata", "moments"]})["results"]
    assert [h["item"]["id"] for h in lean] == [h["item"]["id"] for h in plain]
    assert all("metadata" not in h["item"] and "moments" not in h for h in lean)
    rich = _search(client, {**base, "include": ["vectors", "timeline", "metadata"]})["results"]
    for h in rich:
        np.testing.assert_allclose(h["vector"], _item_vector(client, h["item"]["id"]), atol=1e-6)
        assert h["timeline"] and h["item"]["metadata"]["colour"]
    assert_error(client.post("/search", json={**base, "include": ["metadata"], "exclude": ["metadata"]}), 422,
                 "validation_error", "both included and excluded")
    assert_error(client.post("/search", json={**base, "include": ["thumbnails"]}), 422, "validation_error")


def test_a_file_search_takes_include_and_exclude_as_form_fields(client: httpx.Client, server: LiveServer,
                                                               ingested: dict[str, str]) -> None:
    with open(server.corpus["green"], "rb") as fh:
        r = client.post("/search", headers=server.headers(), files={"file": ("green.mp4", fh, "video/mp4")},
                        data={"k": "2", "include": "vectors", "exclude": "metadata,moments"})
    assert r.status_code == 200, r.text
    hits = r.json()["results"]
    assert hits and hits[0]["item"]["id"] == ingested["green"]
    for h in hits:
        assert "metadata" not in h["item"] and "moments" not in h and len(h["vector"]) == len(
            _item_vector(client, h["item"]["id"]))
