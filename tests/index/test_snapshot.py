"""Snapshots of a catalogue: taken while another thread keeps writing, restored into a place without a catalogue,
checked, and answering searches exactly as the source did at the snapshot's epoch; the CLI's snapshot/restore."""

from __future__ import annotations

import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from index_helpers import SPACES, Clusters, add_video
from typer.testing import CliRunner

from index import Catalog, InvalidArgumentError, JobStore
from index.cli import app
from index.collections import CollectionLayout, check_collection_name, collection_names
from index.snapshot import IN_FLIGHT, discard_partial, list_snapshots, read_manifest, restore_snapshot, write_snapshot

runner = CliRunner()


def _media(layout: CollectionLayout, item_id: str) -> None:
    layout.media.mkdir(parents=True, exist_ok=True)
    (layout.media / f"{item_id}.mp4").write_bytes(item_id.encode() * 10)


def test_snapshot_while_writing_restores_to_the_same_answers(tmp_path: Path) -> None:
    src = CollectionLayout.of(tmp_path / "src", "lectures")
    gen = Clusters(seed=7)
    queries = {s: gen(4, d) for s, d in SPACES.items()}
    with Catalog(src.catalog, spaces=SPACES) as cat:
        for i in range(30):
            _media(src, add_video(cat, i, 3, gen).id)
        jobs = JobStore(cat.store)
        queued = jobs.create(item_id="f" * 32, source="late.mp4", sha256="0" * 64, path=str(src.media / "x.mp4"),
                             total=1)
        stop = threading.Event()
        added: list[str] = []

        def writer() -> None:  # keeps adding items (with media) while the snapshot is taken
            n = 1000
            while not stop.is_set():
                item = add_video(cat, n, 2, gen)
                _media(src, item.id)
                added.append(item.id)
                n += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            while len(added) < 5:
                stop.wait(0.01)
            info = write_snapshot(cat, src.snapshots, collection="lectures",
                                  files={"media": src.media, "thumbs": src.thumbs})
        finally:
            stop.set()
            thread.join()
        assert len(added) > 5  # the writer went on during and after the snapshot
        snap_ids = {i.id for i in cat.list_items(limit=10_000)}
        assert info.manifest["items"] < len(snap_ids)

        dest = CollectionLayout.of(tmp_path / "dst", "lectures")
        manifest, report = restore_snapshot(info.path, dest.catalog, {"media": dest.media, "thumbs": dest.thumbs})
        assert report.ok, report.problems
        assert manifest["epochs"] == info.manifest["epochs"]
        with Catalog(dest.catalog, create=False) as restored:
            kept = {i.id for i in restored.list_items(limit=10_000)}
            assert len(kept) == info.manifest["items"] and kept < snap_ids
            assert restored.epochs() == info.manifest["epochs"]
            for item_id in kept:  # every item's media came along, byte for byte
                assert (dest.media / f"{item_id}.mp4").read_bytes() == (src.media / f"{item_id}.mp4").read_bytes()
            assert not [p for p in dest.media.iterdir() if p.name.split(".")[0] not in kept]
            # the job in flight at the snapshot is failed in the copy (its upload is not in it), and stays in the source
            restored_job = JobStore(restored.store).get(queued.id)
            assert restored_job is not None and restored_job.status == "failed"
            assert restored_job.error == IN_FLIGHT.format(name=info.name)
            assert jobs.get(queued.id).status == "queued"
            for space, q in queries.items():
                for row in q:
                    want = [(h.item.id, h.score) for h in cat.search(space, row, k=200) if h.item.id in kept][:10]
                    got = [(h.item.id, h.score) for h in restored.search(space, row, k=10)]
                    assert [g[0] for g in got] == [w[0] for w in want]
                    np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], rtol=0, atol=1e-6)


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_a_backup_answers_as_its_source_did_at_its_epoch(tmp_path: Path, index_type: str) -> None:
    """Approximate indexes too: the FAISS file is written at the store's epoch, so the copy is the same graph."""
    gen = Clusters(seed=11)
    queries = {s: gen(5, d) for s, d in SPACES.items()}
    at_epoch: dict[str, list] = {}
    with Catalog(tmp_path / "src", spaces=SPACES, index_type=index_type) as cat:
        for i in range(60):
            add_video(cat, i, 3, gen)

        def answers() -> dict[str, list]:
            return {s: [[(h.item.id, h.score) for h in cat.search(s, row, k=10)] for row in q]
                    for s, q in queries.items()}

        epochs = cat.backup(tmp_path / "copy", then=lambda ids: at_epoch.update(answers()))
        for i in range(60, 70):  # the source moves on
            add_video(cat, i, 3, gen)
        assert answers() != at_epoch
    with Catalog(tmp_path / "copy", create=False) as copy:
        assert copy.epochs() == epochs and copy.check().ok
        got = {s: [[(h.item.id, h.score) for h in copy.search(s, row, k=10)] for row in q] for s, q in queries.items()}
    assert got == at_epoch


def test_restore_refuses_a_place_with_a_catalogue_and_a_path_escape(tmp_path: Path) -> None:
    src = CollectionLayout.of(tmp_path / "data", "default")
    with Catalog(src.catalog, spaces=SPACES) as cat:
        add_video(cat, 1, 2, Clusters(seed=1))
        info = write_snapshot(cat, src.snapshots, collection="default", files={"media": src.media})
    assert [s.name for s in list_snapshots(src.snapshots)] == [info.name]
    (src.snapshots / ".20990101T000000Z-00000000.staging" / "catalog").mkdir(parents=True)  # left by a crash
    (src.snapshots / ".20990101T000000Z-00000000.tar.tmp").write_bytes(b"half")
    assert discard_partial(src.snapshots) == 2
    assert sorted(p.name for p in src.snapshots.iterdir()) == [info.path.name]
    with pytest.raises(InvalidArgumentError, match="already holds a catalogue"):
        restore_snapshot(info.path, src.catalog, {"media": src.media})
    evil = tmp_path / "evil.tar"
    with tarfile.open(info.path) as good, tarfile.open(evil, "w") as bad:
        for member in good:
            bad.addfile(member, good.extractfile(member) if member.isfile() else None)
        escape = tarfile.TarInfo("media/../../escaped")
        escape.size = 1
        bad.addfile(escape, open(info.path, "rb"))
    with pytest.raises(Exception, match="reaches outside"):
        restore_snapshot(evil, tmp_path / "other" / "catalog", {"media": tmp_path / "other" / "media"})
    assert not (tmp_path / "escaped").exists()


def test_collection_names_and_layout(tmp_path: Path) -> None:
    for bad in ("", "Upper", "-lead", "a b", "a/b", "..", "x" * 57, "é"):
        with pytest.raises(InvalidArgumentError, match="1 to 56 characters of a-z, 0-9"):
            check_collection_name(bad)
    assert check_collection_name("x" * 56) == "x" * 56
    default = CollectionLayout.of(tmp_path, "default")
    assert default.catalog == tmp_path / "catalog" and default.media == tmp_path / "media"
    named = CollectionLayout.of(tmp_path, "team_a-1")
    assert named.catalog == tmp_path / "collections" / "team_a-1" / "catalog"
    named.catalog.mkdir(parents=True)
    (tmp_path / "collections" / "stray").mkdir()  # no catalogue inside: not a collection
    assert collection_names(tmp_path) == ["default", "team_a-1"]


def test_cli_snapshot_and_restore(tmp_path: Path) -> None:
    src = CollectionLayout.of(tmp_path / "data", "sports")
    gen = Clusters(seed=3)
    with Catalog(src.catalog, spaces=SPACES) as cat:
        for i in range(8):
            _media(src, add_video(cat, i, 2, gen).id)
        q = gen(1, SPACES["va"])[0]
        want = [(h.item.id, round(h.score, 6)) for h in cat.search("va", q, k=5)]
    out = tmp_path / "sports.tar"
    res = runner.invoke(app, ["snapshot", str(tmp_path / "data"), "--out", str(out), "--collection", "sports"])
    assert res.exit_code == 0, res.output
    assert "8 items" in res.stdout and read_manifest(out)["collection"] == "sports"
    res = runner.invoke(app, ["snapshot", str(tmp_path / "data"), "--out", str(out), "--collection", "sports"])
    assert res.exit_code == 2 and "exists" in res.output
    res = runner.invoke(app, ["snapshot", str(tmp_path / "data"), "--out", str(tmp_path / "x.tar"),
                              "--collection", "Bad Name"])
    assert res.exit_code == 2 and "1 to 56 characters" in res.output
    # restored under the snapshot's own collection name, or another one given
    res = runner.invoke(app, ["restore", str(out), "--data", str(tmp_path / "copy")])
    assert res.exit_code == 0 and "as collection sports" in res.stdout and "check ok" in res.stdout, res.output
    res = runner.invoke(app, ["restore", str(out), "--data", str(tmp_path / "copy")])
    assert res.exit_code == 2 and "already holds a catalogue" in res.output
    res = runner.invoke(app, ["restore", str(out), "--data", str(tmp_path / "copy"), "--collection", "default"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["check", str(tmp_path / "copy"), "--collection", "sports"])
    assert res.exit_code == 0 and res.stdout.startswith("ok: items 8, segments 16"), res.output
    res = runner.invoke(app, ["stats", str(tmp_path / "copy"), "--collection", "sports", "--json"])
    assert res.exit_code == 0 and '"items": 8' in res.stdout, res.output
    res = runner.invoke(app, ["check", str(tmp_path / "copy"), "--collection", "Nope!"])
    assert res.exit_code == 2 and "1 to 56 characters" in res.output
    for catalog in (tmp_path / "copy" / "collections" / "sports", tmp_path / "copy"):
        res = runner.invoke(app, ["check", str(catalog / "catalog")])
        assert res.exit_code == 0 and res.stdout.startswith("ok: items 8, segments 16"), res.output
        with Catalog(catalog / "catalog", readonly=True, create=False) as restored:
            assert [(h.item.id, round(h.score, 6)) for h in restored.search("va", q, k=5)] == want
