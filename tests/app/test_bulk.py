"""Bulk embedding under torchrun (2 processes, gloo) against the service's own ingestion.

A folder embedded by `torchrun -m app.bulk` and loaded by `vatt index import` must answer text,
file and item searches exactly like the same folder added by `vatt ingest`; a rank killed midway
and the run restarted must end with the shards of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from app_corpus import CLIPS, VOCAB
from app_server import free_port
from typer.testing import CliRunner

from vatt_cli.main import app
from app.client import connect
from index import Catalog
from index.shards import finished_shards
from model import VATT, VattConfig, WordTokenizer, save_pretrained

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def vatt(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _model(directory: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_pretrained(VATT(VattConfig.preset("tiny")), directory, tokenizer=WordTokenizer(VOCAB))


def _torchrun(model: Path, out: Path, *paths: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "app.bulk",
           "--model", str(model), "--out", str(out), "--shard-files", "1", "--no-progress", *map(str, paths)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.fixture(scope="module")
def library(trained_model_dir: Path, corpus: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, Path]:
    """The service tests' corpus (3 videos of 2 windows, 3 audio files) and model, embedded by torchrun."""
    root = tmp_path_factory.mktemp("bulk")
    media = root / "media"
    (media / "nested").mkdir(parents=True)
    corpus = {name: Path(shutil.copy(path, media / "nested" / path.name)) for name, path in corpus.items()}
    (media / "notes.txt").write_text("not media: skipped when walking a directory")
    bad = root / "bad"
    bad.mkdir()
    (bad / "broken.mp4").write_bytes(b"not a video at all")
    model = trained_model_dir
    shards = root / "shards"
    _finish(_torchrun(model, shards, media, bad))
    return {"root": root, "media": media, "bad": bad, "model": model, "shards": shards, **corpus}


def _answers(model: Path, data: Path, queries: list[dict]) -> list[list[tuple]]:
    """Each query's results as (sha256, score, moments) with item queries given by sha256."""
    with connect(url=None, model=model, data=data, settings_overrides={"torch_threads": 1}) as client:
        with Catalog(data / "catalog", readonly=True) as cat:
            by_sha = {it.sha256: it.id for it in cat.list_items(limit=1000)}
        sha_of = {i: sha for sha, i in by_sha.items()}
        out = []
        for q in queries:
            q = dict(q)
            if "item_sha" in q:
                q["item_id"] = by_sha[q.pop("item_sha")]
            results = client.search(k=10, **q).results
            out.append([(sha_of[r.item.id], r.score, [(m.start, m.end, m.score) for m in r.moments])
                        for r in results])
    return out


def _same_ranking(got: list[tuple], want: list[tuple]) -> None:
    """Same keys in the same order with scores within 1e-4; two keys may only trade places when
    their scores tie (within 1e-5), where no order is more right than the other."""
    assert len(got) == len(want)
    for i, ((kg, sg), (kw, sw)) in enumerate(zip(got, want)):
        assert abs(sg - sw) < 1e-4, (got, want)
        if kg != kw:
            tied = {k for k, s in want if abs(s - sw) < 1e-5}
            assert kg in tied and kw in tied, (i, got, want)


def test_torchrun_shards_imported_answer_like_vatt_ingest(library: dict[str, Path], tmp_path: Path) -> None:
    shards = finished_shards(library["shards"])
    assert len(shards) == 7 and {m.rank for m in shards.values()} == {0, 1}
    errors = [json.loads(line) for f in library["shards"].glob("errors-rank*.jsonl")
              for line in f.read_text().splitlines()]
    assert [e["input"] for e in errors] == [str(library["bad"] / "broken.mp4")]
    assert "cannot decode" in errors[0]["reason"]
    summary = json.loads((library["shards"] / "summary.json").read_text())
    assert (summary["files"], summary["errors"], summary["segments"], summary["ranks"]) == (6, 1, 12, 2)
    assert len(summary["precision"]) == 1 and summary["precision"][0] in ("fp32", "int8", "bf16")  # auto's choice
    assert {m.options["precision"] for m in shards.values()} == set(summary["precision"])
    assert all(m.options["precision_reason"] for m in shards.values())

    imported, ingested = tmp_path / "imported", tmp_path / "ingested"
    result = vatt("index", "import", library["shards"], "--data", imported)
    assert result.exit_code == 0, result.output
    assert "6 new items (12 segments), 0 already present, 1 inputs failed" in result.output
    result = vatt("ingest", library["media"], "--model", library["model"], "--data", ingested)
    assert result.exit_code == 0, result.output

    with Catalog(imported / "catalog", readonly=True) as a, Catalog(ingested / "catalog", readonly=True) as b:
        items_a = {it.sha256: it for it in a.list_items(limit=100)}
        items_b = {it.sha256: it for it in b.list_items(limit=100)}
        assert sorted(items_a) == sorted(items_b) and len(items_a) == 6
        for sha, it in items_a.items():
            assert (it.kind, it.n_segments, it.duration) == (items_b[sha].kind, items_b[sha].n_segments,
                                                             items_b[sha].duration)
            for space in it.spaces:
                segs_a, xa = a.item_vectors(it.id, space)
                segs_b, xb = b.item_vectors(items_b[sha].id, space)
                assert [(s.start, s.end) for s in segs_a] == [(s.start, s.end) for s in segs_b]
                np.testing.assert_allclose(xa, xb, atol=1e-5)
        video_sha = next(sha for sha, it in items_a.items() if it.kind == "video")
        audio_sha = next(sha for sha, it in items_a.items() if it.kind == "audio")
    queries = [*({"text": c.caption} for c in CLIPS), {"file": library["red.wav"]}, {"file": library["blue"]},
               {"file": library["green"], "space": "va"}, {"item_sha": video_sha}, {"item_sha": audio_sha}]
    got, want = _answers(library["model"], imported, queries), _answers(library["model"], ingested, queries)
    for g, w in zip(got, want):
        assert len(g) == len(w) >= 3
        _same_ranking([(r[0], r[1]) for r in g], [(r[0], r[1]) for r in w])
        for (_, _, mg), (_, _, mw) in zip(g, w):
            _same_ranking([(m[:2], m[2]) for m in mg], [(m[:2], m[2]) for m in mw])

    again = vatt("index", "import", library["shards"], "--data", imported)  # idempotent by content hash
    assert again.exit_code == 0 and "0 new items (0 segments), 6 already present" in again.output


def test_shards_of_another_model_are_refused_in_one_line(library: dict[str, Path], tmp_path: Path) -> None:
    other = _model(tmp_path / "other", seed=1)
    out = tmp_path / "other-shards"
    result = vatt("bulk-embed", "--model", other, "--out", out, "--threads", "1", "--no-progress", library["red"])
    assert result.exit_code == 0, result.output
    assert len(finished_shards(out)) == 1
    data = tmp_path / "data"  # made by the service, which records its model in the catalogue
    assert vatt("ingest", library["red"], "--model", library["model"], "--data", data).exit_code == 0
    refused = vatt("index", "import", out, "--data", data)
    assert refused.exit_code == 1
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and "config hash" in lines[0] and "use another catalogue" in lines[0]
    with Catalog(data / "catalog", readonly=True) as cat:
        assert cat.count() == 1
    same_model = vatt("index", "import", library["shards"], "--data", data)  # the service's model: accepted
    assert same_model.exit_code == 0 and "5 new items (10 segments), 1 already present" in same_model.output


def _workers(parent: int) -> dict[int, int]:
    """rank -> pid of torchrun's worker processes."""
    out = {}
    for task in Path(f"/proc/{parent}/task").iterdir():
        for pid in (task / "children").read_text().split():
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            rank = next((int(e[5:]) for e in env if e.startswith(b"RANK=")), None)
            if rank is not None:
                out[rank] = int(pid)
    return out


def _rows(directory: Path) -> dict[str, tuple[dict, list]]:
    out = {}
    for name, manifest in finished_shards(directory).items():
        table = pq.read_table(directory / f"{name}.parquet").to_pylist()
        out[name] = (manifest.inputs, table)
    return out


def test_a_killed_rank_restarted_ends_with_the_same_shards(library: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "shards"
    proc = _torchrun(library["model"], out, library["media"], library["bad"])
    deadline = time.monotonic() + 120
    while not any(m.rank == 1 for m in finished_shards(out).values()):  # rank 1 is midway
        assert proc.poll() is None and time.monotonic() < deadline, "rank 1 finished no shard"
        time.sleep(0.01)
    os.kill(_workers(proc.pid)[1], signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    planned = {n for n, m in finished_shards(library["shards"]).items() if m.rank == 1}
    assert {n for n, m in finished_shards(out).items() if m.rank == 1} < planned  # some left unfinished

    log = _finish(_torchrun(library["model"], out, library["media"], library["bad"]))
    assert "already finished" in log
    want, got = _rows(library["shards"]), _rows(out)
    assert sorted(got) == sorted(want)
    for name, (inputs, rows) in want.items():
        assert got[name][0] == inputs
        assert len(got[name][1]) == len(rows)
        for r_got, r_want in zip(got[name][1], rows):
            for col, value in r_want.items():
                if col in ("va", "vt") and value is not None:
                    np.testing.assert_allclose(r_got[col], value, atol=1e-5)
                else:
                    assert r_got[col] == value, col
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    shutil.rmtree(out)


def test_a_manifest_gives_metadata_and_time_ranges(library: dict[str, Path], tmp_path: Path) -> None:
    manifest = tmp_path / "library.jsonl"
    manifest.write_text(json.dumps({"path": str(library["red"]), "metadata": {"reel": 7}, "start": 3.0, "end": 6.4})
                        + "\n\n"  # blank lines are allowed; a relative path is relative to the manifest
                        + json.dumps({"path": os.path.relpath(library["blue"], tmp_path), "metadata": {"reel": 8}})
                        + "\n")
    out = tmp_path / "shards"
    result = vatt("bulk-embed", "--model", library["model"], "--out", out, "--threads", "1", "--no-progress",
                  "--metadata", '{"set": "bulk"}', manifest)
    assert result.exit_code == 0, result.output
    (name, m), = finished_shards(out).items()
    rows = pq.read_table(out / f"{name}.parquet").to_pylist()
    by_source = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    red, blue = by_source[str(library["red"])], by_source[str(library["blue"])]
    assert [(r["start"], r["end"]) for r in red] == [(3.2, 6.4)]  # the one window starting inside 3.0-6.4
    assert json.loads(red[0]["metadata"]) == {"set": "bulk", "reel": 7} and red[0]["duration"] == pytest.approx(3.4)
    assert len(blue) == 2 and json.loads(blue[0]["metadata"]) == {"set": "bulk", "reel": 8}
    assert red[0]["item_key"] != blue[0]["item_key"] and len(red[0]["item_key"]) == 64
    whole = [r for rows in _rows(library["shards"]).values() for r in rows[1] if r["source"].endswith("red.mp4")]
    np.testing.assert_allclose(red[0]["va"], whole[1]["va"], atol=1e-5)  # the same window, the same vector

    half = tmp_path / "bf16"
    result = vatt("bulk-embed", "--model", library["model"], "--out", half, "--threads", "1", "--no-progress",
                  "--precision", "bf16", manifest)
    assert result.exit_code == 0, result.output
    (name, m), = finished_shards(half).items()
    assert m.options["precision"] == "bf16" and m.options["precision_reason"] == "asked for"
    for got, want in zip(pq.read_table(half / f"{name}.parquet").to_pylist(), rows, strict=True):
        for space in ("va", "vt"):
            if want[space] is not None:
                assert np.dot(got[space], want[space]) >= 0.999, (space, got["source"])


def test_two_nodes_with_a_static_rendezvous_write_the_shards_of_one(library: dict[str, Path], tmp_path: Path) -> None:
    """`torchrun --nnodes 2` (node ranks 0 and 1, one process each, static rendezvous on loopback: two
    "machines" sharing one output folder) ends with the shards a one-node 2-process run wrote."""
    out, port = tmp_path / "shards", free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node), "--nproc_per_node",
         "1", "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "app.bulk", "--model",
         str(library["model"]), "--out", str(out), "--shard-files", "1", "--no-progress",
         str(library["media"]), str(library["bad"])],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        for node in (0, 1)]
    try:
        logs = [_finish(proc) for proc in nodes]
    finally:
        for proc in nodes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert {m.rank for m in finished_shards(out).values()} == {0, 1}, logs
    want, got = _rows(library["shards"]), _rows(out)
    assert sorted(got) == sorted(want)
    for name, (inputs, rows) in want.items():
        assert got[name][0] == inputs and len(got[name][1]) == len(rows)
        for r_got, r_want in zip(got[name][1], rows):
            for col in ("va", "vt"):
                if r_want[col] is not None:
                    np.testing.assert_allclose(r_got[col], r_want[col], atol=1e-5)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["files"], summary["errors"], summary["ranks"]) == (6, 1, 2)
    imported = vatt("index", "import", out, "--data", tmp_path / "data")
    assert imported.exit_code == 0 and "6 new items (12 segments)" in imported.output, imported.output
