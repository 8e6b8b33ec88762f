"""Catalog basics: add / get / search / delete / reopen, duplicates, metadata, grouping, errors, threads."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from index_helpers import SPACES, Clusters, add_video, sha, unit

from index import (Catalog, CatalogLockedError, FilterError, InvalidArgumentError, ItemNotFoundError,
                   ReadOnlyError)


def test_add_get_search_delete_reopen(open_catalog: Callable[..., Catalog], tmp_path: Path, clusters: Clusters) -> None:
    path = tmp_path / "cat"
    with open_catalog(path, spaces=SPACES) as cat:
        items = [add_video(cat, i, 4, clusters, metadata={"i": i}) for i in range(20)]
        audio = add_video(cat, "a", 3, clusters, kind="audio", spaces=("va",))
        got = cat.get_item(items[5].id)
        assert (got.kind, got.source, got.sha256, got.n_segments, got.spaces) == ("video", "5.mp4", sha(5), 4,
                                                                                    ("va", "vt"))
        assert got.metadata == {"i": 5} and got.duration == pytest.approx(12.8)
        assert cat.get_item(audio.id).spaces == ("va",)
        segs, x = cat.item_vectors(items[5].id, "vt")
        assert [s.start for s in segs] == pytest.approx([0, 3.2, 6.4, 9.6]) and x.shape == (4, 16)
        assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
        top = cat.search("vt", x[2], k=3)
        assert top[0].item.id == items[5].id and top[0].moments[0].segment_id == segs[2].id
        assert top[0].score == pytest.approx(1.0, abs=1e-5)
        # audio has no vt: a vt search never returns it, a va search can
        assert all(h.item.id != audio.id for h in cat.search("vt", x[0], k=50))
        _, xa = cat.item_vectors(audio.id, "va")
        assert cat.search("va", xa[0], k=1)[0].item.id == audio.id
        deleted = cat.delete_item(items[5].id)
        assert deleted.id == items[5].id
        with pytest.raises(ItemNotFoundError, match=items[5].id):
            cat.get_item(items[5].id)
        assert all(h.item.id != items[5].id for h in cat.search("vt", x[2], k=30))
        assert cat.count() == 20 and cat.check().ok
    with open_catalog(path) as cat:  # spaces and index type come from the stored meta
        assert cat.spaces == SPACES and cat.count() == 20
        assert cat.search("vt", x[2], k=30)[0].item.id != items[5].id
        segs, x7 = cat.item_vectors(items[7].id, "va")
        assert cat.search("va", x7[1], k=1)[0].moments[0].segment_id == segs[1].id
        assert cat.check().ok
        with pytest.raises(ItemNotFoundError):
            cat.delete_item(items[5].id)


def test_unnormalised_input_is_normalised_on_add_and_search(catalog: Catalog) -> None:
    x = np.zeros((2, 32), np.float32)
    x[0, 0], x[1, 1] = 7.0, 0.5
    it = catalog.add_item(kind="video", source="s", sha256=sha("n"), segments=[[0, 1], [1, 2]],
                          vectors={"va": x})
    _, stored = catalog.item_vectors(it.id, "va")
    assert np.allclose(stored, np.eye(32)[:2])
    hit = catalog.search("va", 100 * np.eye(32)[1], k=1)[0]
    assert hit.score == pytest.approx(1.0) and hit.moments[0].start == 1.0


def test_same_content_returns_existing_item_unless_replace(catalog: Catalog, clusters: Clusters) -> None:
    first = add_video(catalog, "x", 3, clusters, metadata={"v": 1})
    again = add_video(catalog, "x", 5, clusters, metadata={"v": 2})
    assert again == first and catalog.count() == 1 and catalog.get_item(first.id).n_segments == 3
    assert catalog.get_by_sha256(sha("x").upper()) == first
    old_segments = {s.id for s in catalog.segments(first.id)}
    replaced = catalog.add_item(kind="video", source="x2.mp4", sha256=sha("x"), segments=[[0, 1]] * 2,
                                vectors={"va": clusters(2, 32)}, metadata={"v": 3}, replace=True)
    assert replaced.id == first.id and replaced.n_segments == 2 and replaced.spaces == ("va",)
    assert replaced.metadata == {"v": 3} and catalog.count() == 1
    new_segments = {s.id for s in catalog.segments(first.id)}
    assert not new_segments & old_segments  # segment ids are never reused
    assert catalog.check().ok


def test_update_metadata_merges_or_replaces(catalog: Catalog, clusters: Clusters) -> None:
    it = add_video(catalog, 1, 2, clusters, metadata={"a": 1, "b": 2})
    assert catalog.update_metadata(it.id, {"b": None, "c": [1, 2]}).metadata == {"a": 1, "c": [1, 2]}
    # a JSON merge patch (RFC 7396): nested objects merge, null deletes at any depth
    assert catalog.update_metadata(it.id, {"d": {"x": 1, "y": 2}}).metadata == {"a": 1, "c": [1, 2], "d": {"x": 1, "y": 2}}
    assert catalog.update_metadata(it.id, {"d": {"x": None, "z": 3}}).metadata == {"a": 1, "c": [1, 2], "d": {"y": 2, "z": 3}}
    assert catalog.update_metadata(it.id, {"z": "only"}, merge=False).metadata == {"z": "only"}
    assert catalog.search("va", catalog.item_vectors(it.id, "va")[1][0], k=1, where={"z": "only"})[0].item.id == it.id
    with pytest.raises(ItemNotFoundError, match="no item with id 'nope'"):
        catalog.update_metadata("nope", {})


def test_add_item_is_all_or_nothing(catalog: Catalog, clusters: Clusters) -> None:
    with pytest.raises(InvalidArgumentError, match=r"wrong vector shape \[3, 31\]; accepted: \[32\] or \[n, 32\]"):
        catalog.add_item(kind="video", source="s", sha256=sha(1), segments=[[0, 1]] * 3,
                         vectors={"vt": clusters(3, 16), "va": np.ones((3, 31))})
    with pytest.raises(InvalidArgumentError, match="unknown space 'vx'; accepted: va, vt"):
        catalog.add_item(kind="video", source="s", sha256=sha(1), segments=[[0, 1]], vectors={"vx": np.ones(4)})
    with pytest.raises(InvalidArgumentError, match="unknown kind.*accepted: video, audio, text"):
        catalog.add_item(kind="image", source="s", sha256=sha(1), segments=[[0, 1]], vectors={"va": np.ones(32)})
    with pytest.raises(InvalidArgumentError, match="2 rows for 3 segments"):
        catalog.add_item(kind="video", source="s", sha256=sha(1), segments=[[0, 1]] * 3,
                         vectors={"va": np.ones((2, 32))})
    with pytest.raises(InvalidArgumentError, match="zero vector"):
        catalog.add_item(kind="text", source="s", sha256=sha(1), segments=[[0, 0]], vectors={"vt": np.zeros(16)})
    with pytest.raises(InvalidArgumentError, match="sha256 must be 64 hex"):
        catalog.add_item(kind="text", source="s", sha256="abc", segments=[[0, 0]], vectors={"vt": np.ones(16)})
    with pytest.raises(InvalidArgumentError, match="0 ≤ start ≤ end"):
        catalog.add_item(kind="text", source="s", sha256=sha(1), segments=[[2, 1]], vectors={"vt": np.ones(16)})
    with pytest.raises(InvalidArgumentError, match="not JSON-serialisable"):
        catalog.add_item(kind="text", source="s", sha256=sha(1), segments=[[0, 0]], vectors={"vt": np.ones(16)},
                         metadata={"x": object()})
    assert catalog.count() == 0 and catalog.stats()["segments"] == 0 and catalog.check().ok


def test_search_argument_errors(catalog: Catalog, clusters: Clusters) -> None:
    add_video(catalog, 1, 2, clusters)
    with pytest.raises(InvalidArgumentError, match=r"query: wrong vector shape \[5\]; accepted: \[16\] or \[n, 16\]"):
        catalog.search("vt", np.ones(5))
    with pytest.raises(InvalidArgumentError, match="unknown space 'audio'; accepted: va, vt"):
        catalog.search("audio", np.ones(16))
    with pytest.raises(InvalidArgumentError, match="k must be an integer ≥ 1"):
        catalog.search("vt", np.ones(16), k=0)
    with pytest.raises(InvalidArgumentError, match="unknown kind.*'movie'"):
        catalog.search("vt", np.ones(16), kinds=["movie"])
    with pytest.raises(FilterError, match="unknown filter operator 'gtee' for 'year'; accepted: eq, ne"):
        catalog.search("vt", np.ones(16), where={"year": {"gtee": 1}})


def test_grouping_by_item_with_best_moments_first(catalog: Catalog) -> None:
    e = np.eye(32, dtype=np.float32)
    q = e[0]
    # item A: segments at cos 0.6, 0.95, 0.2, 0.8 with q; item B: one segment at cos 0.9
    def at(c: float, axis: int) -> np.ndarray:
        return c * e[0] + np.sqrt(1 - c * c) * e[axis]
    a = catalog.add_item(kind="video", source="a", sha256=sha("a"), segments=[[0, 1], [1, 2], [2, 3], [3, 4]],
                         vectors={"va": np.stack([at(0.6, 1), at(0.95, 2), at(0.2, 3), at(0.8, 4)])})
    b = catalog.add_item(kind="video", source="b", sha256=sha("b"), segments=[[5, 6]], vectors={"va": at(0.9, 5)[None]})
    hits = catalog.search("va", q, k=5, moments=3)
    assert [h.item.id for h in hits] == [a.id, b.id]
    assert hits[0].score == pytest.approx(0.95, abs=1e-5) and hits[1].score == pytest.approx(0.9, abs=1e-5)
    assert [(m.start, m.end) for m in hits[0].moments] == [(1, 2), (3, 4), (0, 1)]
    assert [m.score for m in hits[0].moments] == pytest.approx([0.95, 0.8, 0.6], abs=1e-5)
    assert len(catalog.search("va", q, k=1, moments=0)[0].moments) == 0
    assert hits[0].to_dict()["moments"][0] == {"segment_id": hits[0].moments[0].segment_id, "start": 1.0,
                                               "end": 2.0, "score": pytest.approx(0.95, abs=1e-5)}


def test_k_items_even_when_one_item_owns_the_top_segments(catalog: Catalog) -> None:
    rng = np.random.default_rng(3)
    q = unit(rng.standard_normal(32))
    near = unit(q + 0.05 * rng.standard_normal((200, 32)))  # 200 segments of one item, all closer than the rest
    big = catalog.add_item(kind="video", source="big", sha256=sha("big"), segments=[[i, i + 1] for i in range(200)],
                           vectors={"va": near})
    others = [catalog.add_item(kind="video", source=str(i), sha256=sha(i), segments=[[0, 1]],
                               vectors={"va": unit(q + 0.8 * rng.standard_normal(32))[None]}) for i in range(6)]
    hits = catalog.search("va", q, k=4, moments=2)
    assert len(hits) == 4 and hits[0].item.id == big.id and len(hits[0].moments) == 2
    assert {h.item.id for h in hits[1:]} <= {o.id for o in others}
    exact = catalog.search("va", q, k=4, moments=2, exact=True)
    assert [h.item.id for h in exact] == [h.item.id for h in hits]


def test_batch_queries_match_single_queries(catalog: Catalog, clusters: Clusters) -> None:
    for i in range(15):
        add_video(catalog, i, 3, clusters)
    qs = clusters(4, 16)
    batch = catalog.search("vt", qs, k=5)
    assert len(batch) == 4
    for q, res in zip(qs, batch):
        single = catalog.search("vt", q, k=5)
        assert [(h.item.id, round(h.score, 5)) for h in res] == [(h.item.id, round(h.score, 5)) for h in single]
        assert all(a.score >= b.score for a, b in zip(res, res[1:]))


def test_one_writer_per_directory_and_readonly(open_catalog: Callable[..., Catalog],
                                               tmp_path: Path, clusters: Clusters) -> None:
    path = tmp_path / "cat"
    with open_catalog(path, spaces=SPACES) as cat:
        it = add_video(cat, 1, 2, clusters)
        cat.flush()
        with pytest.raises(CatalogLockedError, match="open for writing in another process"):
            open_catalog(path)
        with open_catalog(path, readonly=True) as ro:
            assert ro.get_item(it.id) == it and ro.check().ok
            with pytest.raises(ReadOnlyError, match="readonly"):
                ro.delete_item(it.id)
    with pytest.raises(InvalidArgumentError, match="holds spaces"):
        open_catalog(path, spaces={"va": 64})
    with pytest.raises(InvalidArgumentError, match=r"call rebuild\(index_type='hnsw'\)"):
        open_catalog(path, index_type="hnsw")


def test_concurrent_readers_and_one_writer(open_catalog: Callable[..., Catalog], tmp_path: Path) -> None:
    gen = Clusters(seed=5)
    errors: list[BaseException] = []
    with open_catalog(tmp_path / "cat", spaces=SPACES, index_type="hnsw", flush_every=40) as cat:
        for i in range(10):
            add_video(cat, f"seed{i}", 3, gen)
        stop = threading.Event()
        queries = gen(8, 32)

        def reader() -> None:
            try:
                while not stop.is_set():
                    for res in cat.search("va", queries, k=3, where={"n": {"gte": 0}}):
                        assert all(h.item.metadata["n"] >= 0 for h in res)
                    cat.search("va", queries[0], k=3)
            except BaseException as e:  # noqa: BLE001 - surfaced by the assert below
                errors.append(e)

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        added = []
        for i in range(40):
            added.append(add_video(cat, i, 3, gen, metadata={"n": i}))
            if i % 7 == 6:
                cat.delete_item(added.pop(0).id)
        stop.set()
        for t in threads:
            t.join()
        assert errors == []
        assert cat.check().ok
        for it in added:
            segs, x = cat.item_vectors(it.id, "va")
            assert cat.search("va", x[0], k=1)[0].item.id == it.id


def test_caller_chosen_item_id_is_kept_and_checked(catalog: Catalog, clusters: Clusters) -> None:
    segs, vecs = [[0.0, 3.2]], {"va": clusters(1, SPACES["va"]), "vt": clusters(1, SPACES["vt"])}
    item = catalog.add_item(kind="video", source="x.mp4", sha256=sha("x"), segments=segs, vectors=vecs,
                            item_id="job-42")
    assert item.id == "job-42" and catalog.get_item("job-42").source == "x.mp4"
    with pytest.raises(InvalidArgumentError, match="already used"):
        catalog.add_item(kind="video", source="y.mp4", sha256=sha("y"), segments=segs, vectors=vecs, item_id="job-42")
    with pytest.raises(InvalidArgumentError, match="item_id must be"):
        catalog.add_item(kind="video", source="z.mp4", sha256=sha("z"), segments=segs, vectors=vecs, item_id="../etc")
    # same content under another id returns the existing item, as without an id
    again = catalog.add_item(kind="video", source="x2.mp4", sha256=sha("x"), segments=segs, vectors=vecs,
                             item_id="other")
    assert again.id == "job-42"
