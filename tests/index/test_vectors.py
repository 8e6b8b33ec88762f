"""Index types, deletion per type, rebuild, and FAISS files: atomic, checked, rebuilt when bad or stale."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from index_helpers import SPACES, Clusters, add_video

from index import Catalog
from index.faiss_index import IndexFileError, read_header

TYPES = ["flat", "hnsw", "ivfpq"]
IVF = {"train_min": 600}  # small enough for a test catalogue to train IVF-PQ


def _opts(index_type: str) -> dict:
    return IVF if index_type == "ivfpq" else {}


def _fill(path: Path, index_type: str, n_items: int = 150, seed: int = 0) -> list[str]:
    gen = Clusters(seed=seed)
    with Catalog(path, spaces=SPACES, index_type=index_type, index_options=_opts(index_type)) as cat:
        return [add_video(cat, i, 5, gen, metadata={"i": i}).id for i in range(n_items)]


def _finds_itself(cat: Catalog, item_ids: list[str], space: str = "va") -> float:
    """Fraction of stored segments whose own vector finds that very segment first."""
    ok = total = 0
    for item_id in item_ids:
        segs, x = cat.item_vectors(item_id, space)
        for seg, res in zip(segs, cat.search(space, x, k=1, moments=1)):
            ok += bool(res) and res[0].moments[0].segment_id == seg.id
            total += 1
    return ok / total


@pytest.mark.parametrize("index_type", TYPES)
def test_every_type_finds_a_stored_vector_first(tmp_path: Path, index_type: str) -> None:
    ids = _fill(tmp_path / "c", index_type)
    with Catalog(tmp_path / "c") as cat:
        assert cat.index_type == index_type
        info = cat.stats()["spaces"]
        assert info["va"]["structure"] == index_type and info["vt"]["structure"] == index_type
        assert info["va"]["factory"] == {"flat": "IDMap2,Flat", "hnsw": "IDMap2,HNSW32,Flat",
                                         "ivfpq": "IVF15,PQ4"}[index_type]
        assert _finds_itself(cat, ids[::10], "va") == 1.0
        assert _finds_itself(cat, ids[::10], "vt") == 1.0
        assert cat.check().ok


@pytest.mark.parametrize("index_type", TYPES)
def test_delete_works_for_every_type(tmp_path: Path, index_type: str) -> None:
    path = tmp_path / "c"
    ids = _fill(path, index_type, n_items=130)
    with Catalog(path) as cat:
        victim = ids[3]
        segs, x = cat.item_vectors(victim, "va")
        cat.delete_item(victim)
        assert all(h.item.id != victim for h in cat.search("va", x, k=5)[0])
        assert all(h.item.id != victim for h in cat.search("va", x[0], k=5, exact=True))
        assert cat.stats()["spaces"]["va"]["vectors"] == 129 * 5
        if index_type == "hnsw":
            assert cat.stats()["spaces"]["va"]["tombstones"] == 5  # HNSW cannot remove: masked instead
        assert cat.check().ok
    with Catalog(path) as cat:  # tombstones are re-derived from SQLite on open
        assert all(h.item.id != victim for h in cat.search("va", x[0], k=5))
        assert cat.check().ok and _finds_itself(cat, ids[4:10]) == 1.0


def test_hnsw_rebuilds_once_a_quarter_is_deleted(tmp_path: Path) -> None:
    gen = Clusters(seed=2)
    with Catalog(tmp_path / "c", spaces={"va": 16}, index_type="hnsw") as cat:
        ids = [cat.add_item(kind="audio", source=str(i), sha256=f"{i:064x}", segments=[[0, 1]] * 40,
                            vectors={"va": gen(40, 16)}).id for i in range(100)]
        for item_id in ids[:25]:
            cat.delete_item(item_id)
        assert cat.stats()["spaces"]["va"]["tombstones"] == 1000  # masked, not yet a quarter of 4000
        cat.delete_item(ids[25])
        assert cat.stats()["spaces"]["va"]["tombstones"] == 0  # 1040 > 1000: rebuilt without them
        assert cat.stats()["spaces"]["va"]["vectors"] == 2960 and cat.check().ok
        assert _finds_itself(cat, ids[26:30]) == 1.0


def test_ivfpq_is_exact_until_enough_vectors_then_trains(tmp_path: Path) -> None:
    gen = Clusters(seed=3)
    with Catalog(tmp_path / "c", spaces=SPACES, index_type="ivfpq", index_options=IVF) as cat:
        ids = [add_video(cat, i, 5, gen).id for i in range(110)]  # 550 < 600
        assert cat.stats()["spaces"]["va"]["factory"] == "IDMap2,Flat"
        q = gen(1, 32)[0]
        assert [(h.item.id, h.score) for h in cat.search("va", q, k=5)] == \
               [(h.item.id, h.score) for h in cat.search("va", q, k=5, exact=True)]
        ids += [add_video(cat, i, 5, gen).id for i in range(110, 130)]
        assert cat.stats()["spaces"]["va"]["structure"] == "ivfpq"
        assert _finds_itself(cat, ids[::13]) == 1.0
    assert read_header(tmp_path / "c" / "va.faiss")["factory"].startswith("IVF")


def test_rebuild_changes_type_and_keeps_results(tmp_path: Path) -> None:
    path = tmp_path / "c"
    ids = _fill(path, "flat", n_items=130)
    with Catalog(path) as cat:
        q = cat.item_vectors(ids[7], "vt")[1][2]
        before = [h.item.id for h in cat.search("vt", q, k=3)]
        for t in ["hnsw", "ivfpq", "flat"]:
            cat.rebuild(index_type=t, index_options=_opts(t))
            assert cat.index_type == t and cat.stats()["spaces"]["vt"]["structure"] == t
            assert cat.search("vt", q, k=1)[0].item.id == ids[7] and cat.check().ok
            assert read_header(path / "vt.faiss")["epoch"] == cat.epochs()["vt"]
        assert [h.item.id for h in cat.search("vt", q, k=3)] == before
        cat.rebuild(index_type="hnsw", index_options={"hnsw_m": 8, "ef_search": 40})
    with Catalog(path) as cat:
        assert cat.index_type == "hnsw" and cat.options.hnsw_m == 8
        assert cat.stats()["spaces"]["va"]["factory"] == "IDMap2,HNSW8,Flat"


def _flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    p.write_bytes(bytes(data))


CORRUPTIONS = {
    "flipped bytes": (_flip, "checksum mismatch"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "no trailer"),
    "garbage": (lambda p: p.write_bytes(b"\x00garbage" * 100), "no trailer"),
    "empty": (lambda p: p.write_bytes(b""), "too short"),
    "missing": (lambda p: p.unlink(), "missing"),
}


@pytest.mark.parametrize("how", list(CORRUPTIONS))
@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_bad_faiss_file_is_rebuilt_on_open(tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str,
                                           index_type: str) -> None:
    path = tmp_path / "c"
    ids = _fill(path, index_type, n_items=40)
    damage, reason = CORRUPTIONS[how]
    damage(path / "va.faiss")
    with pytest.raises(IndexFileError):
        from index.faiss_index import IndexOptions, VectorIndex
        VectorIndex.load(path / "va.faiss", "va", 32, index_type, IndexOptions())
    with caplog.at_level(logging.WARNING, logger="index"):
        with Catalog(path) as cat:
            assert cat.check().ok and _finds_itself(cat, ids[::5]) == 1.0
    rebuilt = [r.getMessage() for r in caplog.records if "va.faiss" in r.getMessage()]
    assert len(rebuilt) == 1 and reason in rebuilt[0] and "rebuilding from 200 stored vectors" in rebuilt[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="index"):
        with Catalog(path) as cat:  # the rebuilt file was written back: no second rebuild
            assert cat.stats()["spaces"]["va"]["on_open"] == "up to date"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_stale_file_is_caught_up_from_sqlite(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c"
    ids = _fill(path, "hnsw", n_items=30)
    shutil.copy(path / "va.faiss", tmp_path / "old.faiss")
    gen = Clusters(seed=9)
    with Catalog(path) as cat:
        new = [add_video(cat, f"n{i}", 5, gen).id for i in range(4)]
        cat.delete_item(ids[0])
    shutil.copy(tmp_path / "old.faiss", path / "va.faiss")  # the file as it was 5 writes ago
    with caplog.at_level(logging.WARNING, logger="index"):
        with Catalog(path) as cat:
            assert cat.check().ok
            assert _finds_itself(cat, new) == 1.0
            assert all(h.item.id != ids[0] for h in cat.search("va", np.ones(32), k=40))
            assert cat.stats()["spaces"]["va"]["tombstones"] == 5
            assert cat.stats()["spaces"]["va"]["on_open"] == "caught up on open (file epoch 30, catalogue 35)"
    msgs = [r.getMessage() for r in caplog.records]
    assert any("'va'" in m and "caught up from the store on open (+20, -5 vectors" in m for m in msgs), msgs


def test_index_options_on_reopen_apply_and_structural_ones_rebuild(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c"
    ids = _fill(path, "hnsw", n_items=30)
    with Catalog(path, index_options={"ef_search": 200}) as cat:  # search-time knob: no rebuild
        assert cat.options.ef_search == 200 and cat.stats()["spaces"]["va"]["on_open"] == "up to date"
    with caplog.at_level(logging.WARNING, logger="index"):
        with Catalog(path, index_options={"hnsw_m": 12}) as cat:
            assert cat.stats()["spaces"]["va"]["factory"] == "IDMap2,HNSW12,Flat"
            assert _finds_itself(cat, ids[:3]) == 1.0
    assert any("holds IDMap2,HNSW32,Flat, options ask for HNSW12" in r.getMessage() for r in caplog.records)
    with Catalog(path) as cat:  # stored
        assert cat.options.hnsw_m == 12 and cat.options.ef_search == 96
