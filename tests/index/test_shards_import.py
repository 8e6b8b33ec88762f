"""Shards (Parquet + manifest) and their import: one transaction per shard, one index build at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from index_helpers import SPACES, sha, unit

from index import Catalog, CatalogError
from index.importer import import_shards
from index.shards import (ShardError, ShardItem, ShardManifest, clear_unfinished, finished_shards, read_items,
                          write_shard)

MODEL = {"name": "tiny", "config_hash": "a" * 64}


def _items(rng: np.random.Generator, keys: range) -> list[ShardItem]:
    out = []
    for k in keys:
        n = 1 + k % 3
        vectors = {"va": unit(rng.standard_normal((n, SPACES["va"])))}
        if k % 2 == 0:  # a video: both spaces; an audio file: va only
            vectors["vt"] = unit(rng.standard_normal((n, SPACES["vt"])))
        out.append(ShardItem(key=sha(k), source=f"/media/{k}.mp4", kind="video" if k % 2 == 0 else "audio",
                             duration=3.2 * n, metadata={"k": k}, starts=[3.2 * i for i in range(n)],
                             ends=[3.2 * (i + 1) for i in range(n)], vectors=vectors))
    return out


def _shards(directory: Path, model: dict = MODEL, n: int = 3) -> list[ShardItem]:
    rng = np.random.default_rng(0)
    every = []
    for s in range(n):
        items = _items(rng, range(10 * s, 10 * s + 10))
        write_shard(directory, ShardManifest(name=f"s{s}", model=model, spaces=SPACES), items)
        every += items
    return every


def test_roundtrip_keeps_items_segments_vectors_and_nulls(tmp_path: Path) -> None:
    items = _shards(tmp_path, n=1)
    back = list(read_items(tmp_path / "s0.parquet", SPACES))
    assert [b.key for b in back] == [i.key for i in items]
    for a, b in zip(items, back):
        assert (b.kind, b.metadata, list(b.starts), b.source) == (a.kind, a.metadata, list(a.starts), a.source)
        assert set(b.vectors) == set(a.vectors)
        for s in a.vectors:
            np.testing.assert_array_equal(b.vectors[s], a.vectors[s])
    assert finished_shards(tmp_path)["s0"].rows == sum(len(i.starts) for i in items)


def test_a_shard_without_manifest_is_unfinished_and_cleared(tmp_path: Path) -> None:
    _shards(tmp_path, n=2)
    (tmp_path / "s1.json").unlink()  # as if the writer died between the two renames
    (tmp_path / "s1.parquet.tmp").write_bytes(b"half")
    assert list(finished_shards(tmp_path)) == ["s0"]
    clear_unfinished(tmp_path, ["s0", "s1"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s0.json", "s0.parquet"]


def test_import_is_idempotent_and_builds_the_index_once(open_catalog: Callable[..., Catalog], tmp_path: Path) -> None:
    items = _shards(tmp_path / "shards")
    with open_catalog(tmp_path / "cat", spaces=SPACES, index_type="hnsw") as cat:
        report = import_shards(cat, tmp_path / "shards")
        assert (report.shards, report.items_added, report.items_present) == (3, 30, 0)
        assert report.segments_added == sum(len(i.starts) for i in items)
        assert cat.check().ok and cat.index_type == "hnsw"
        probe = items[4]
        hit = cat.search("vt", probe.vectors["vt"][0], k=1)[0]
        assert hit.item.sha256 == probe.key and hit.score > 0.999 and hit.item.metadata == {"k": 4}
        again = import_shards(cat, tmp_path / "shards")
        assert (again.items_added, again.items_present, again.index_seconds) == (0, 30, 0.0)
        assert cat.count() == 30


def test_crash_before_the_index_build_is_caught_up_on_reopen(open_catalog: Callable[..., Catalog],
                                                             tmp_path: Path) -> None:
    items = _shards(tmp_path / "shards", n=1)
    with open_catalog(tmp_path / "cat", spaces=SPACES) as cat:
        added = cat.add_items(({"kind": i.kind, "source": i.source, "sha256": i.key, "vectors": i.vectors,
                                "segments": list(zip(i.starts, i.ends)), "duration": i.duration} for i in items),
                              model=MODEL, index=False)
        assert added[0] == 10
    with open_catalog(tmp_path / "cat") as cat:  # close() left the FAISS files behind: reopening catches up
        assert cat.check().ok
        assert cat.search("va", items[3].vectors["va"][0], k=1)[0].item.sha256 == items[3].key


def test_shards_of_another_model_are_refused_before_anything_is_written(open_catalog: Callable[..., Catalog],
                                                                        tmp_path: Path) -> None:
    _shards(tmp_path / "mine")
    _shards(tmp_path / "theirs", model={"name": "base", "config_hash": "b" * 64}, n=1)
    with open_catalog(tmp_path / "cat", spaces=SPACES) as cat:
        import_shards(cat, tmp_path / "mine")
        with pytest.raises(CatalogError, match="config hash bbbbbbbbbbbb"):
            import_shards(cat, tmp_path / "theirs")
        assert cat.count() == 30
    write_shard(tmp_path / "mine", ShardManifest(name="z", model={"name": "base", "config_hash": "b" * 64},
                                                 spaces=SPACES), [])
    with pytest.raises(ShardError, match="one model's shards at a time"):
        with open_catalog(tmp_path / "cat2", spaces=SPACES) as cat:
            import_shards(cat, tmp_path / "mine")
