"""What a search result tells beyond its rank (issue 28): moments above the floor, a confidence against
nonsense probe texts, the per-segment timeline, the library's count, and imported items that play
from their recorded source path under the server-path roots (and advertise no URL otherwise)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from app_server import LiveServer, run_server, wait_job

from app.services.calibration import PROBES
from app.settings import Settings
from index import Catalog
from index.importer import import_shards
from index.shards import finished_shards, read_items

ROOT = Path(__file__).resolve().parents[2]


def _search(client: httpx.Client, **body) -> dict:
    r = client.post("/search", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_timeline_scores_every_segment_and_moments_keep_only_those_above_the_floor(
        client: httpx.Client, server: LiveServer, ingested: dict[str, str], corpus: dict[str, Path]) -> None:
    plain = _search(client, text="a red screen with a low hum", k=3)
    assert all(r["timeline"] is None for r in plain["results"])  # only on request
    got = _search(client, text="a red screen with a low hum", k=3, include=["timeline"], moments=2)
    assert got["moment_floor"] == 0.0
    assert got["results"][0]["item"]["id"] == ingested["red"]
    q = np.array(client.post("/embed", json={"texts": ["a red screen with a low hum"]}).json()["embeddings"][0]["vt"])
    for res in got["results"]:
        item = client.get(f"/items/{res['item']['id']}", params={"include": "vectors"}).json()
        segs = item["vectors"]["vt"]["segments"]
        want = [(s["start"], s["end"], float(np.dot(s["vector"], q))) for s in segs]
        cells = [(c["start"], c["end"], c["score"]) for c in res["timeline"]]
        assert [c[:2] for c in cells] == [w[:2] for w in want] and len(cells) == item["n_segments"] == 2
        np.testing.assert_allclose([c[2] for c in cells], [w[2] for w in want], atol=1e-4)
        assert res["score"] == pytest.approx(max(c[2] for c in cells), abs=1e-4)
        # the moments: the timeline's best cells, best first, none below the floor
        above = sorted((c for c in cells if c[2] >= 0.0), key=lambda c: -c[2])[:2]
        assert [(m["start"], m["end"]) for m in res["moments"]] == [c[:2] for c in above], (res["moments"], cells)
    with open(corpus["green"], "rb") as fh:  # a file query asks the same in form fields
        r = client.post("/search", headers=server.headers(), files={"file": ("green.mp4", fh, "video/mp4")},
                        data={"include": "timeline", "k": "3", "where": '{"colour": "green"}'})
    assert r.status_code == 200, r.text
    (hit,) = r.json()["results"]
    assert hit["item"]["id"] == ingested["green"] and [c["score"] for c in hit["timeline"]] == pytest.approx([1, 1], abs=1e-3)
    assert hit["confidence"] is None  # the yardstick is for text queries
    everything = [c["score"] for r in _search(client, text="a blue screen with a whistle", k=3,
                                               include=["timeline"])["results"] for c in r["timeline"]]
    assert min(everything) < max(everything)


def _null(c: httpx.Client) -> np.ndarray:
    """The null distribution as the API shows it: each probe text's best score on the catalogue now."""
    return np.sort([_search(c, text=text, k=1)["results"][0]["score"] for text in PROBES])


def _upload(c: httpx.Client, path: Path) -> str:
    with open(path, "rb") as fh:
        r = c.post("/items", files={"file": (path.name, fh, "video/mp4")})
    assert r.status_code == 202, r.text
    job = wait_job(c, r.json()["job_id"])
    assert job["status"] == "done", job
    return job["item_id"]


def test_text_hits_report_confidence_against_nonsense_probes(trained_model_dir: Path, corpus: dict[str, Path],
                                                            tmp_path: Path) -> None:
    """On a server of its own (the catalogue must not move under the test): confidence is the hit's
    standing among the probes' best scores, nonsense is weak, and adding items re-measures."""
    settings = Settings(model_dir=trained_model_dir, data_dir=tmp_path / "data", torch_threads=1)
    srv, thread, host, port = run_server(settings)
    try:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=60) as c:
            assert _search(c, text="a red screen with a low hum")["results"] == []  # empty: nothing to stand against
            ids = {name: _upload(c, corpus[name]) for name in ("red", "blue")}
            nulls: list[np.ndarray] = []
            for grown in (False, True):
                if grown:  # 2 -> 3 items: a material change, so the yardstick is measured again
                    ids["green"] = _upload(c, corpus["green"])
                null = _null(c)
                nulls.append(null)
                good = _search(c, text="a green screen with a beep" if grown else "a blue screen with a whistle",
                               k=3)["results"]
                assert good[0]["item"]["id"] == ids["green" if grown else "blue"]
                for r in good:
                    conf = r["confidence"]
                    assert conf["percentile"] == pytest.approx(np.searchsorted(null, r["score"]) / len(null), abs=1e-9)
                    assert conf["z"] == pytest.approx((r["score"] - null.mean()) / max(null.std(), 0.02), abs=1e-3)
                    assert conf["weak"] == (conf["percentile"] < 0.95)
                assert good[0]["confidence"]["weak"] is False, good[0]
                nonsense = _search(c, text="qwzx blorp ???", k=3)["results"]
                assert nonsense and all(r["confidence"]["weak"] for r in nonsense), nonsense
            assert not np.allclose(nulls[0], nulls[1]), "the green clip changed no probe's best score"
            # a vector query has no such yardstick: no confidence rather than a made-up one
            vec = c.post("/embed", json={"texts": ["a red screen"]}).json()["embeddings"][0]["vt"]
            assert all(r["confidence"] is None for r in _search(c, vector=vec, space="vt", k=2)["results"])
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


def test_listing_counts_everything_and_pages(client: httpx.Client, ingested: dict[str, str]) -> None:
    first = client.get("/items", params={"limit": 2}).json()
    second = client.get("/items", params={"limit": 2, "offset": 2}).json()
    assert first["total"] == second["total"] >= 3
    ids = [i["id"] for i in first["items"] + second["items"]]
    assert len(first["items"]) == 2 and len(set(ids)) == len(ids)
    assert set(ingested.values()) <= {i["id"] for i in client.get("/items", params={"limit": 1000}).json()["items"]}
    for item in first["items"]:
        assert client.get(item["thumbnail_url"]).headers["content-type"] == "image/jpeg"


@pytest.fixture(scope="module")
def imported(trained_model_dir: Path, corpus: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The red clip and the blue tone embedded by app.bulk (named by a relative path) and imported."""
    root = tmp_path_factory.mktemp("imported")
    shards, data = root / "shards", root / "data"
    cwd = corpus["red"].parent
    out = subprocess.run([sys.executable, "-m", "app.bulk", "--model", str(trained_model_dir), "--out", str(shards),
                          "--no-progress", "red.mp4", "blue.wav"], cwd=cwd, capture_output=True, text=True,
                         timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    manifests = finished_shards(shards)
    spaces = next(iter(manifests.values())).spaces
    recorded = {it.path for name in manifests for it in read_items(shards / f"{name}.parquet", spaces)}
    assert recorded == {str(corpus["red"].resolve()), str(corpus["blue.wav"].resolve())}
    with Catalog(data / "catalog", spaces=spaces) as catalog:
        report = import_shards(catalog, shards)
    assert report.items_added == 2
    return {"data": data, "model": trained_model_dir, "roots": [cwd]}


def _serve(imported: dict, roots: list[Path]):
    settings = Settings(model_dir=imported["model"], data_dir=imported["data"], server_path_roots=roots,
                        torch_threads=1)
    return run_server(settings)


@pytest.mark.parametrize("under_roots", [True, False])
def test_imported_items_play_from_their_source_only_under_the_roots(imported: dict, corpus: dict[str, Path],
                                                                   under_roots: bool) -> None:
    srv, thread, host, port = _serve(imported, imported["roots"] if under_roots else [])
    try:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=60) as c:
            items = {i["kind"]: i for i in c.get("/items").json()["items"]}
            assert set(items) == {"video", "audio"}
            video, audio = items["video"], items["audio"]
            assert video["source"] == str(corpus["red"].resolve())  # absolute, though bulk was given "red.mp4"
            hit = _search(c, text="a red screen with a low hum", k=1)["results"][0]
            assert hit["item"]["id"] == video["id"]
            if under_roots:
                for it in (video, audio, hit["item"]):
                    assert it["media_url"] == f"/media/{it['id']}"
                got = c.get(video["media_url"])
                assert got.status_code == 200 and got.content == corpus["red"].read_bytes()
                assert c.get(audio["media_url"]).content == corpus["blue.wav"].read_bytes()
                thumb = c.get(video["thumbnail_url"])
                assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8", thumb.text[:200]
            else:  # nothing advertised that would answer 404
                for it in (video, audio, hit["item"], c.get(f"/items/{video['id']}").json()):
                    assert it["media_url"] is None and it["thumbnail_url"] is None, it
                assert c.get(f"/media/{video['id']}").status_code == 404
                assert c.get(f"/items/{video['id']}/thumbnail").status_code == 404
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
