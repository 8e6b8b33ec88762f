"""End to end over TCP: ingest -> jobs -> text, video, audio and item search -> classify -> delete."""

from __future__ import annotations

import json

import httpx
import pytest
import torch
from app_corpus import CLIPS
from app_server import LiveServer, wait_job, KEY_HEADERS

from model import probe_capability


def _check_moments(result: dict) -> None:
    duration = result["item"]["duration"]
    assert result["moments"], result
    assert result["score"] == pytest.approx(result["moments"][0]["score"])
    scores = [m["score"] for m in result["moments"]]
    assert scores == sorted(scores, reverse=True)
    for m in result["moments"]:
        assert 0.0 <= m["start"] < m["end"] <= duration + 1e-6, (m, duration)


@pytest.mark.parametrize("clip", CLIPS, ids=lambda c: c.name)
def test_text_search_finds_the_captioned_clip(client: httpx.Client, ingested: dict[str, str], clip) -> None:
    r = client.post("/search", json={"text": clip.caption, "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["space"] == "vt" and body["query_kind"] == "text"
    results = body["results"]
    assert [x["item"]["id"] for x in results][0] == ingested[clip.name], results
    assert len(results) == 3
    top = results[0]
    assert top["item"]["metadata"] == {"colour": clip.name, "caption": clip.caption}
    assert top["item"]["kind"] == "video" and top["item"]["source"] == f"{clip.name}.mp4"
    assert top["item"]["duration"] == pytest.approx(6.4, abs=0.05)
    assert top["score"] > results[1]["score"]
    _check_moments(top)


@pytest.mark.parametrize("space", ["va", "vt"])
def test_video_search_by_upload_returns_that_clip_first(server: LiveServer, client: httpx.Client,
                                                         ingested: dict[str, str], space: str) -> None:
    with open(server.corpus["blue"], "rb") as fh:
        r = client.post("/search", headers=KEY_HEADERS, files={"file": ("query.mp4", fh)}, data={"k": "2", "space": space})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query_kind"] == "video" and body["space"] == space
    assert [x["item"]["id"] for x in body["results"]] [0] == ingested["blue"]
    assert len(body["results"]) == 2
    assert body["results"][0]["score"] == pytest.approx(1.0, abs=1e-3)  # the same content
    _check_moments(body["results"][0])


def test_video_query_defaults_to_va(server: LiveServer, client: httpx.Client, ingested: dict[str, str]) -> None:
    with open(server.corpus["red"], "rb") as fh:
        r = client.post("/search", headers=KEY_HEADERS, files={"file": ("q.mp4", fh)})
    assert r.status_code == 200 and r.json()["space"] == "va"


def test_audio_query_searches_videos_in_va(server: LiveServer, client: httpx.Client, ingested: dict[str, str]) -> None:
    with open(server.corpus["green.wav"], "rb") as fh:
        r = client.post("/search", headers=KEY_HEADERS, files={"file": ("tone.wav", fh)}, data={"kinds": "video"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query_kind"] == "audio" and body["space"] == "va"
    assert {x["item"]["id"] for x in body["results"]} == set(ingested.values())


def test_item_query_leaves_itself_out_unless_asked(client: httpx.Client, ingested: dict[str, str]) -> None:
    r = client.post("/search", json={"item_id": ingested["red"], "k": 5})
    assert r.status_code == 200, r.text
    ids = [x["item"]["id"] for x in r.json()["results"]]
    assert ingested["red"] not in ids and set(ids) == {ingested["green"], ingested["blue"]}
    r = client.post("/search", json={"item_id": ingested["red"], "k": 1, "include_query_item": True})
    assert [x["item"]["id"] for x in r.json()["results"]] == [ingested["red"]]


def test_search_filters_by_metadata_and_kind(client: httpx.Client, ingested: dict[str, str]) -> None:
    r = client.post("/search", json={"text": CLIPS[0].caption, "where": {"colour": "green"}, "kinds": ["video"]})
    assert r.status_code == 200, r.text
    assert [x["item"]["id"] for x in r.json()["results"]] == [ingested["green"]]
    r = client.post("/search", json={"text": "a screen", "where": {"colour": {"in": ["red", "blue"]}}})
    assert {x["item"]["id"] for x in r.json()["results"]} == {ingested["red"], ingested["blue"]}


@pytest.mark.parametrize("clip", CLIPS, ids=lambda c: c.name)
def test_classify_file_gives_probabilities_summing_to_one(server: LiveServer, client: httpx.Client, clip) -> None:
    labels = [c.caption for c in CLIPS]
    with open(server.corpus[clip.name], "rb") as fh:
        r = client.post("/classify", headers=KEY_HEADERS, files={"file": ("c.mp4", fh)},
                        data={"labels": json.dumps(labels), "template": "{}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    assert body["best"] == clip.caption
    assert body["temperature"] == pytest.approx(0.07)
    assert len(body["segments"]) == 2
    for seg in body["segments"]:
        assert sum(seg["probabilities"]) == pytest.approx(1.0, abs=1e-5)
        assert all(0.0 <= p <= 1.0 for p in seg["probabilities"])


def test_classify_item_with_default_template(client: httpx.Client, ingested: dict[str, str]) -> None:
    r = client.post("/classify", json={"item_id": ingested["green"], "labels": ["dog", "green screen", "blue"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["prompts"] == ["a video of dog", "a video of green screen", "a video of blue"]
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-5)


def test_embed_text_and_file(server: LiveServer, client: httpx.Client) -> None:
    r = client.post("/embed", json={"texts": ["a red screen", "a dog"]})
    assert r.status_code == 200, r.text
    vecs = [e["vt"] for e in r.json()["embeddings"]]
    assert len(vecs) == 2 and all(len(v) == 32 for v in vecs)
    assert sum(x * x for x in vecs[0]) == pytest.approx(1.0, abs=1e-4)
    with open(server.corpus["red"], "rb") as fh:
        r = client.post("/embed", headers=KEY_HEADERS, files={"file": ("v.mp4", fh)})
    body = r.json()
    assert r.status_code == 200 and body["kind"] == "video"
    assert [(s["start"], s["end"]) for s in body["segments"]] == [(0.0, 3.2), (3.2, 6.4)]
    assert {len(s["va"]) for s in body["segments"]} == {64} and {len(s["vt"]) for s in body["segments"]} == {32}
    assert set(body["mean"]) == {"va", "vt"}
    with open(server.corpus["red.wav"], "rb") as fh:
        r = client.post("/embed", headers=KEY_HEADERS, files={"file": ("a.wav", fh)}, data={"spaces": "va"})
    body = r.json()
    assert r.status_code == 200 and body["kind"] == "audio" and set(body["mean"]) == {"va"}
    assert all("vt" not in s for s in body["segments"])


def test_items_listing_and_paging(client: httpx.Client, ingested: dict[str, str]) -> None:
    r = client.get("/items", params={"kind": "video", "limit": 2})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] >= 3 and len(page["items"]) == 2 and page["limit"] == 2
    r = client.get("/items", params={"where": json.dumps({"colour": "blue"})})
    assert [i["id"] for i in r.json()["items"]] == [ingested["blue"]]
    item = client.get(f"/items/{ingested['blue']}").json()
    assert item["n_segments"] == 2 and sorted(item["spaces"]) == ["va", "vt"]
    assert item["media_url"] == f"/media/{item['id']}"


def test_reupload_returns_the_existing_item(server: LiveServer, client: httpx.Client, ingested: dict[str, str]) -> None:
    with open(server.corpus["green"], "rb") as fh:
        r = client.post("/items", headers=server.headers(), files={"file": ("again.mp4", fh)})
    assert r.status_code == 202
    assert wait_job(client, r.json()["job_id"])["item_id"] == ingested["green"]


def test_server_path_ingest_then_delete(server: LiveServer, client: httpx.Client, ingested: dict[str, str]) -> None:
    from media_factory import make_audio

    path = make_audio(server.corpus["red"].parent / "solo.wav", duration=3.0, sample_rate=16000, tone_hz=700)
    r = client.post("/items", headers=server.headers(), json={"path": str(path), "metadata": {"colour": "none"}})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["job_id"])
    assert job["status"] == "done", job
    item_id = job["item_id"]
    assert item_id == r.json()["item_id"]  # the id announced in the 202 is the item's id
    assert client.get(f"/items/{item_id}").json()["kind"] == "audio"
    with open(server.corpus["red"], "rb") as fh:  # video -> audio lives in va
        r = client.post("/search", headers=KEY_HEADERS, files={"file": ("q.mp4", fh)}, data={"kinds": "audio"})
    assert [x["item"]["id"] for x in r.json()["results"]] == [item_id]
    assert client.get(f"/media/{item_id}").content == path.read_bytes()

    r = client.delete(f"/items/{item_id}", headers=server.headers())
    assert r.status_code == 200 and r.json() == {"id": item_id, "deleted": True}
    with open(server.corpus["red"], "rb") as fh:
        r = client.post("/search", headers=KEY_HEADERS, files={"file": ("q.mp4", fh)}, data={"kinds": "audio,video", "k": "10"})
    assert item_id not in [x["item"]["id"] for x in r.json()["results"]]
    assert client.get(f"/items/{item_id}").status_code == 404
    assert client.get(f"/media/{item_id}").status_code == 404
    assert path.exists()  # the server's own file is not the service's to delete


def test_metrics_count_requests_ingest_and_catalogue(client: httpx.Client, ingested: dict[str, str]) -> None:
    client.get(f"/items/{ingested['red']}")
    text = client.get("/metrics").text
    assert 'vatt_http_requests_total{method="GET",route="/items/{item_id}",status="200"}' in text
    assert 'vatt_ingested_items_total{kind="video"} 3.0' in text
    assert 'vatt_ingested_segments_total{kind="video"} 6.0' in text
    assert "vatt_catalog_items " in text and "vatt_http_request_duration_seconds_bucket" in text
    assert "vatt_batch_rows_bucket" in text


def test_health_readiness_and_web_page(client: httpx.Client, ingested: dict[str, str]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] is True and ready["model"] == "tiny" and ready["items"] >= 3
    assert ready["device"] == ("cuda:0" if torch.cuda.is_available() else "cpu")
    auto = ("bf16",) if torch.cuda.is_available() or probe_capability("cpu").bf16_units else ("fp32", "int8")
    assert ready["precision"] in auto and ready["keep_tokens"] == 1.0  # auto, resolved at load (model.inference)
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/static/index.html").status_code == 200
