"""Transcripts through the service: every source lands as cues (embedded subtitle streams, a sidecar beside a
server path, the multipart `transcript` part, PUT), GET gives WebVTT or JSON, and POST /search's modes
(vector, keyword, hybrid) find what is said, per moment, with where/kinds/offset/score_threshold in each mode.

Its own server (module scope) on its own catalogue, so the items added here never show in other tests' lists."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_server import API_KEY, MAX_DURATION, UPLOAD_LIMIT, LiveServer, live_server, wait_job
from media_factory import with_subtitles

from app.settings import Settings
from model.captions import Cue, parse_vtt

LECTURE = [Cue(0.5, 2.5, "today gradient descent"), Cue(4.0, 5.5, "the learning rate matters")]
SIDECAR = [Cue(1.0, 2.0, "sidecar words win"), Cue(3.5, 6.0, "over embedded streams")]
UPLOADED = "1\n00:00:00,000 --> 00:00:03,000\nuploaded subrip caption\n\n2\n00:00:03,500 --> 00:00:06,000\npenguins waddle\n"


@pytest.fixture(scope="module")
def tserver(trained_model_dir: Path, corpus: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[LiveServer]:
    roots = tmp_path_factory.mktemp("paths")
    settings = Settings(model_dir=trained_model_dir, data_dir=tmp_path_factory.mktemp("tdata"), api_key=API_KEY,
                        max_upload_bytes=UPLOAD_LIMIT, max_duration_s=MAX_DURATION, allow_server_paths=True,
                        server_path_roots=[roots], torch_threads=1, batch_wait_ms=2.0, max_transcript_bytes=4096)
    with live_server(settings, {**corpus, "roots": roots}) as srv:
        yield srv


@pytest.fixture(scope="module")
def tclient(tserver: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tserver.url, timeout=60) as c:
        yield c


def _done(client: httpx.Client, r: httpx.Response) -> str:
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["job_id"])
    assert job["status"] == "done", job
    return job["item_id"]


def _cues(client: httpx.Client, item_id: str) -> list[Cue]:
    r = client.get(f"/items/{item_id}/transcript", params={"format": "json"})
    assert r.status_code == 200, r.text
    return [Cue(c["start"], c["end"], c["text"]) for c in r.json()["cues"]]


@pytest.fixture(scope="module")
def items(tserver: LiveServer, tclient: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """red: uploaded MP4 whose mov_text stream says LECTURE; green: a server-path MKV with a SubRip stream and a
    NAME.en.vtt sidecar beside it; blue: an uploaded MP4 with a `transcript` part (.srt)."""
    tmp = tmp_path_factory.mktemp("made")
    corpus, h = tserver.corpus, tserver.headers()
    ids = {}
    red = with_subtitles(corpus["red"], tmp / "red-subs.mp4", LECTURE)
    with open(red, "rb") as fh:
        ids["red"] = _done(tclient, tclient.post("/items", headers=h, files={"file": ("red.mp4", fh)},
                                                 data={"metadata": json.dumps({"colour": "red"})}))
    green = with_subtitles(corpus["green"], corpus["roots"] / "green.mkv", [Cue(0.0, 1.0, "embedded loses")])
    (corpus["roots"] / "green.en.vtt").write_text("WEBVTT\n\n00:01.000 --> 00:02.000\nsidecar words win\n\n"
                                                  "00:03.500 --> 00:06.000\nover embedded streams\n")
    ids["green"] = _done(tclient, tclient.post("/items", headers=h, json={"path": str(green),
                                                                          "metadata": {"colour": "green"}}))
    with open(corpus["blue"], "rb") as fh:
        ids["blue"] = _done(tclient, tclient.post("/items", headers=h, files={
            "file": ("blue.mp4", fh), "transcript": ("blue.srt", UPLOADED.encode(), "application/x-subrip")},
            data={"metadata": json.dumps({"colour": "blue"})}))
    return ids


def test_every_source_round_trips_into_cues(tclient: httpx.Client, items: dict[str, str]) -> None:
    assert _cues(tclient, items["red"]) == LECTURE  # the file's own mov_text stream
    assert _cues(tclient, items["green"]) == SIDECAR  # the sidecar beats the embedded SubRip stream
    assert [c.text for c in _cues(tclient, items["blue"])] == ["uploaded subrip caption", "penguins waddle"]
    r = tclient.get(f"/items/{items['red']}/transcript")
    assert r.headers["content-type"].startswith("text/vtt")
    assert parse_vtt(r.text) == LECTURE


def test_put_replaces_a_transcript_and_refuses_bad_ones(tserver: LiveServer, tclient: httpx.Client,
                                                        items: dict[str, str]) -> None:
    h = tserver.headers()
    blue = items["blue"]
    r = tclient.put(f"/items/{blue}/transcript", headers={**h, "content-type": "text/vtt"},
                    content="WEBVTT\n\n00:00.000 --> 00:01.000\nput vtt line\n")
    assert r.status_code == 200, r.text
    assert r.json()["cues"] == [{"start": 0.0, "end": 1.0, "text": "put vtt line"}]
    r = tclient.put(f"/items/{blue}/transcript", headers=h,
                    json={"cues": [{"start": 3.5, "end": 6.0, "text": "penguins waddle home"}]})
    assert r.status_code == 200, r.text
    assert _cues(tclient, blue) == [Cue(3.5, 6.0, "penguins waddle home")]
    assert tclient.put(f"/items/{blue}/transcript", content="WEBVTT\n\nnot a cue\n",
                       headers={**h, "content-type": "text/vtt"}).status_code == 422
    assert tclient.put(f"/items/{blue}/transcript", headers=h, json={"cues": [{"start": 2, "end": 1, "text": "x"}]}
                       ).status_code == 422
    too_big = tclient.put(f"/items/{blue}/transcript", headers={**h, "content-type": "text/vtt"},
                          content="WEBVTT\n\n" + "x" * 5000)
    assert too_big.status_code == 413 and "4096" in too_big.text
    surrogate = tclient.put(f"/items/{blue}/transcript", headers={**h, "content-type": "application/json"},
                            content=b'{"cues": [{"start": 0, "end": 1, "text": "\\ud800"}]}')
    assert surrogate.status_code in (400, 422) and "surrogate" in surrogate.text
    assert tclient.put("/items/nope/transcript", headers=h, json=[]).status_code == 404
    assert tclient.put(f"/items/{blue}/transcript", json=[]).status_code == 401
    assert _cues(tclient, blue) == [Cue(3.5, 6.0, "penguins waddle home")]  # refused writes changed nothing


def _search(client: httpx.Client, **body) -> dict:
    r = client.post("/search", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_keyword_mode_finds_what_is_said_per_moment(tclient: httpx.Client, items: dict[str, str]) -> None:
    out = _search(tclient, text="gradient descent", mode="keyword")
    assert out["mode"] == "keyword"
    assert [r["item"]["id"] for r in out["results"]] == [items["red"]]
    moment = out["results"][0]["moments"][0]
    assert (moment["start"], moment["end"]) == (0.5, 2.5)
    assert moment["text"] == "today <mark>gradient</mark> <mark>descent</mark>"
    assert _search(tclient, text="zyzzyva quux", mode="keyword")["results"] == []
    assert _search(tclient, text="gradient", mode="keyword", where={"colour": "blue"})["results"] == []
    assert _search(tclient, text="gradient", mode="keyword", kinds=["audio"])["results"] == []
    assert _search(tclient, text="gradient", mode="keyword", offset=1)["results"] == []
    score = _search(tclient, text="gradient", mode="keyword")["results"][0]["score"]
    assert 0 < score < 1  # the engine's rank score r as r / (1 + r)
    assert _search(tclient, text="gradient", mode="keyword", score_threshold=score)["results"] != []
    assert _search(tclient, text="gradient", mode="keyword", score_threshold=score + 1e-6)["results"] == []
    r = tclient.post("/search", json={"item_id": items["red"], "mode": "keyword"})
    assert r.status_code == 400 and "text" in r.json()["detail"]


def test_hybrid_mode_fuses_words_and_vectors(tclient: httpx.Client, items: dict[str, str]) -> None:
    vector = _search(tclient, text="a blue screen with a whistle", k=3)
    # no keyword hits: hybrid is the vector ranking (rrf over one list keeps its order)
    nothing = _search(tclient, text="a blue screen with a whistle zyzzyva", mode="hybrid", k=3)
    assert [r["item"]["id"] for r in nothing["results"]] == [r["item"]["id"] for r in vector["results"]]
    assert vector["results"][0]["item"]["id"] == items["blue"]
    # the words lift the moment that says them, whatever the pictures show
    said = _search(tclient, text="learning rate", mode="hybrid", k=3)
    top = said["results"][0]
    assert top["item"]["id"] == items["red"]
    assert top["moments"][0]["start"] == 3.2 and "<mark>learning</mark>" in top["moments"][0]["text"]
    assert len(said["results"]) == 3  # the other items still come from the vector leg
    weighted = _search(tclient, text="learning rate", mode="hybrid", fusion="weighted", alpha=0.0, k=1)
    assert weighted["results"][0]["item"]["id"] == items["red"] and weighted["results"][0]["score"] == 1.0
    assert _search(tclient, text="learning rate", mode="hybrid", where={"colour": "green"})["results"][0]["item"][
        "id"] == items["green"]
    assert tclient.post("/search", json={"text": "x", "mode": "hybrid", "alpha": 2}).status_code == 422


def test_transcripts_follow_deletes_and_the_catalogue_checks_them(tserver: LiveServer, tclient: httpx.Client,
                                                                   items: dict[str, str],
                                                                   tmp_path: Path) -> None:
    h = tserver.headers()
    extra = with_subtitles(tserver.corpus["red"], tmp_path / "again.mkv", [Cue(0.0, 1.0, "ephemeral walrus")])
    with open(extra, "rb") as fh:
        walrus = _done(tclient, tclient.post("/items", headers=h, files={"file": ("again.mkv", fh)}))
    assert [r["item"]["id"] for r in _search(tclient, text="walrus", mode="keyword")["results"]] == [walrus]
    assert tclient.delete(f"/items/{walrus}", headers=h).status_code == 200
    assert _search(tclient, text="walrus", mode="keyword")["results"] == []
    assert tclient.get(f"/items/{walrus}/transcript").status_code == 404
    report = tserver.app.state.catalog.check()
    assert report.ok, report.problems
    assert report.counts["cues"] == len(LECTURE) + len(SIDECAR) + 1
    pending = tserver.settings.data_dir / "pending-transcripts"
    assert not pending.exists() or list(pending.iterdir()) == []


def test_cli_ingest_uploads_the_sidecar_beside_a_file(trained_model_dir: Path, corpus: dict[str, Path],
                                                      tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from app.cli import app
    from index import Catalog

    media = tmp_path / "media"
    media.mkdir()
    (media / "talk.mp4").write_bytes(corpus["green"].read_bytes())
    (media / "talk.en.srt").write_text("1\n00:00:01,000 --> 00:00:02,500\nsaid beside the file\n")
    data = tmp_path / "data"
    result = CliRunner().invoke(app, ["ingest", str(media), "--model", str(trained_model_dir), "--data", str(data)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (item_id, path), = [line.split() for line in result.stdout.strip().splitlines()]  # the .srt is no media
    assert Path(path).name == "talk.mp4"
    with Catalog(data / "catalog", readonly=True) as cat:
        assert cat.transcript(item_id) == [(1.0, 2.5, "said beside the file")]
    found = CliRunner().invoke(app, ["search", "beside", "--mode", "keyword", "--json", "--model",
                                     str(trained_model_dir), "--data", str(data)], catch_exceptions=False)
    assert found.exit_code == 0, found.output
    (hit,) = json.loads(found.stdout)["results"]
    assert hit["item"]["id"] == item_id and hit["moments"][0]["text"] == "said <mark>beside</mark> the file"


def test_bulk_embed_carries_manifest_transcripts_into_shards(trained_model_dir: Path, corpus: dict[str, Path],
                                                             tmp_path: Path) -> None:
    """A manifest's `transcript` (a .vtt path relative to it, or inline cues) lands in the shard; a time range
    keeps the cues said inside it; an input without one falls back to its file's own subtitle stream."""
    from typer.testing import CliRunner

    from app.cli import app
    from index.shards import finished_shards, read_items

    (tmp_path / "red.vtt").write_text("WEBVTT\n\n00:00.500 --> 00:01.500\nearly words\n\n"
                                      "00:04.000 --> 00:05.000\nlate words\n")
    streamed = with_subtitles(corpus["green"], tmp_path / "green-subs.mkv", [Cue(1.0, 2.0, "from the stream")])
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(row) for row in (
        {"path": str(corpus["red"]), "transcript": "red.vtt", "start": 3.0, "end": 6.4},
        {"path": str(corpus["blue"]), "transcript": [{"start": 0, "end": 2, "text": "inline cue"}]},
        {"path": str(streamed)})) + "\n")
    out = tmp_path / "shards"
    result = CliRunner().invoke(app, ["bulk-embed", "--model", str(trained_model_dir), "--out", str(out),
                                      "--threads", "1", "--no-progress", str(manifest)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (name, m), = finished_shards(out).items()
    cues = {Path(it.source).name: list(it.cues) for it in read_items(out / f"{name}.parquet", m.spaces)}
    assert cues["red.mp4"] == [(4.0, 5.0, "late words")] and cues["blue.mp4"] == [(0.0, 2.0, "inline cue")]
    # remuxing the h264 clip into Matroska shifts its packets by the B-frame delay (64 ms here), the subtitle's too
    (s, e, text), = cues["green-subs.mkv"]
    assert text == "from the stream" and s == pytest.approx(1.0, abs=0.1) and e - s == pytest.approx(1.0)


def test_word_scores_get_no_cosine_yardstick_and_keyword_mode_no_timeline(tclient: httpx.Client,
                                                                          items: dict[str, str]) -> None:
    """Keyword and fused scores are not cosines: no standing against the nonsense probes' cosines (every hit
    would read as weak); a keyword query has no vector, so a timeline of cosines is refused, naming it."""
    vector = _search(tclient, text="a red screen", k=3)
    assert all(r["confidence"] is not None for r in vector["results"])
    for mode in ("keyword", "hybrid"):
        out = _search(tclient, text="gradient descent", mode=mode, k=3)
        assert out["results"] and all(r["confidence"] is None for r in out["results"]), out
    hybrid = _search(tclient, text="gradient descent", mode="hybrid", k=3, include=["timeline"])
    for r in hybrid["results"]:
        assert [c["start"] for c in r["timeline"]] and all(-1 <= c["score"] <= 1 for c in r["timeline"])
    r = tclient.post("/search", json={"text": "gradient descent", "mode": "keyword", "include": ["timeline"]})
    assert r.status_code == 422 and "timeline" in r.text and "keyword" in r.text, r.text
