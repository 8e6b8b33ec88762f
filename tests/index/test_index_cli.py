"""`vatt index stats|check|rebuild`: output, exit codes, and one clear line for bad input."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from index_helpers import SPACES, Clusters, add_video
from typer.testing import CliRunner

from index import Catalog
from index.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def cat_path(tmp_path: Path) -> Path:
    gen = Clusters(seed=4)
    with Catalog(tmp_path / "cat", spaces=SPACES) as cat:
        for i in range(12):
            add_video(cat, i, 3, gen, kind="video" if i % 3 else "audio", spaces=("va", "vt") if i % 3 else ("va",))
    return tmp_path / "cat"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "from index.cli import app; app(prog_name='vatt index')"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_stats(cat_path: Path) -> None:
    res = runner.invoke(app, ["stats", str(cat_path)])
    assert res.exit_code == 0, res.output
    assert "items      12 (video 8, audio 4, text 0)" in res.stdout
    assert "space va   dim 32, 36 vectors, IDMap2,Flat" in res.stdout
    assert "space vt   dim 16, 24 vectors" in res.stdout
    res = runner.invoke(app, ["stats", str(cat_path), "--json"])
    data = json.loads(res.stdout)
    assert data["items"] == 12 and data["spaces"]["va"]["vectors"] == 36 and data["readonly"] is True


def test_check_ok_and_inconsistent(cat_path: Path) -> None:
    res = runner.invoke(app, ["check", str(cat_path)])
    assert res.exit_code == 0 and res.stdout.startswith("ok: items 12, segments 36"), res.output
    # break SQLite behind the catalogue's back: a segment loses both its vectors, meta counts go wrong
    with sqlite3.connect(cat_path / "catalog.sqlite") as db:
        sid = db.execute("SELECT segment_id FROM vectors WHERE space = 'vt' LIMIT 1").fetchone()[0]
        db.execute("DELETE FROM vectors WHERE segment_id = ?", (sid,))
    res = runner.invoke(app, ["check", str(cat_path)])
    assert res.exit_code == 1
    lines = res.stdout.splitlines()
    assert lines == [f"segments without any vector: {sid}",
                     "va: meta count 36 but 35 vectors stored",
                     "vt: meta count 24 but 23 vectors stored"], lines


def test_rebuild_changes_type(cat_path: Path) -> None:
    res = runner.invoke(app, ["rebuild", str(cat_path), "--type", "hnsw", "--options", '{"hnsw_m": 16}'])
    assert res.exit_code == 0, res.output
    assert "as hnsw: va IDMap2,HNSW16,Flat (36 vectors), vt IDMap2,HNSW16,Flat (24 vectors)" in res.stdout
    with Catalog(cat_path) as cat:
        assert cat.index_type == "hnsw" and cat.check().ok


@pytest.mark.parametrize("args, code, message", [
    (["stats", "{missing}"], 2, "error: no catalogue directory at {missing}"),
    (["check", "{missing}"], 2, "error: no catalogue directory at {missing}"),
    (["rebuild", "{cat}", "--type", "annoy"], 2, "error: unknown index type 'annoy'; accepted: flat, hnsw, ivfpq"),
    (["rebuild", "{cat}", "--options", "{{nope"], 2, "error: --options is not valid JSON"),
    (["rebuild", "{cat}", "--options", '{{"efs": 3}}'], 2, "error: unknown index option(s) ['efs']; accepted: hnsw_m"),
    (["stats", "{empty}"], 2, "is not a catalogue (no catalog.sqlite inside"),
])
def test_bad_input_is_one_line_and_exit_2(cat_path: Path, tmp_path: Path, args: list[str], code: int,
                                          message: str) -> None:
    (tmp_path / "empty").mkdir()
    fill = {"missing": str(tmp_path / "nope"), "cat": str(cat_path), "empty": str(tmp_path / "empty")}
    res = _cli(*[a.format(**fill) for a in args])
    assert res.returncode == code
    assert res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert message.format(**fill) in res.stderr


def test_check_exit_1_from_a_real_process(cat_path: Path) -> None:
    with sqlite3.connect(cat_path / "catalog.sqlite") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'count.vt'")
    res = _cli("check", str(cat_path))
    assert (res.returncode, res.stdout) == (1, "vt: meta count 99 but 24 vectors stored\n")


def test_rebuild_refused_while_a_writer_holds_the_catalogue(cat_path: Path) -> None:
    with Catalog(cat_path):
        res = _cli("rebuild", str(cat_path), "--type", "flat")
        assert res.returncode == 3 and "open for writing in another process" in res.stderr  # 3: busy (issue 28 item 9)
        assert "stop it first" in res.stderr and "--url" in res.stderr  # what to do (item 13)
        assert _cli("check", str(cat_path)).returncode == 0  # readers are welcome


def test_stats_check_rebuild_on_a_postgresql_store(tmp_path: Path, pg_server) -> None:  # noqa: ANN001
    dsn = pg_server.create_schema()
    try:
        gen = Clusters(seed=5)
        with Catalog(tmp_path / "cache", spaces=SPACES, store=dsn) as cat:
            for i in range(6):
                add_video(cat, i, 2, gen)
        res = runner.invoke(app, ["stats", str(tmp_path / "other-cache"), "--store", dsn])  # a fresh replica's view
        assert res.exit_code == 0, res.output
        assert "items      6 (video 6" in res.stdout and "postgresql" in res.stdout
        res = runner.invoke(app, ["check", str(tmp_path / "cache")], env={"VATT_STORE": dsn})
        assert res.exit_code == 0 and res.stdout.startswith("ok: items 6, segments 12"), res.output
        res = runner.invoke(app, ["rebuild", str(tmp_path / "cache"), "--type", "hnsw", "--store", dsn])
        assert res.exit_code == 0 and "as hnsw" in res.stdout, res.output
    finally:
        pg_server.drop_schema(dsn)
