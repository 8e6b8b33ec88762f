"""Transcripts in the catalogue: cues follow their item, keyword search runs on the engine's own full-text
index (SQLite FTS5, PostgreSQL tsvector + GIN) and ranks the same items on both, hybrid fusion per moment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from index import Catalog, InvalidArgumentError, ItemNotFoundError, fuse
from index_helpers import SPACES, Clusters, sha

# a fixed corpus: item key -> cues; words chosen so the ranking is unambiguous (no stop words)
CORPUS = {
    "lecture": [(0.0, 2.0, "Welcome to optimisation"), (3.5, 5.0, "gradient descent follows the slope"),
                (7.0, 9.0, "gradient descent gradient descent converges")],
    "cooking": [(0.0, 3.0, "Chop the onions finely"), (4.0, 6.0, "descent into the cellar for wine")],
    "garden": [(1.0, 2.0, "Plant tomatoes in spring"), (6.5, 7.0, "water tomatoes daily")],
}


def _fill(cat: Catalog, gen: Clusters) -> dict[str, str]:
    ids = {}
    for key, cues in CORPUS.items():
        segs = [[3.2 * i, 3.2 * (i + 1)] for i in range(3)]
        item = cat.add_item(kind="video", source=f"{key}.mp4", sha256=sha(key), segments=segs, duration=9.6,
                            vectors={s: gen(3, d) for s, d in SPACES.items()}, cues=cues,
                            metadata={"topic": key})
        ids[item.id] = key
    return ids


def _ranked(cat: Catalog, query: str, **kw) -> list[tuple[str, float, float]]:
    return [(h.item_id, h.start, h.end) for h in cat.keyword_search(query, **kw)]


def test_cues_round_trip_and_follow_deletes_and_reingests(tmp_path: Path, store: str, clusters: Clusters) -> None:
    with Catalog(tmp_path / "cat", spaces=SPACES, store=store) as cat:
        ids = {v: k for k, v in _fill(cat, clusters).items()}
        assert cat.transcript(ids["lecture"]) == CORPUS["lecture"]
        assert cat.check().counts["cues"] == 7
        cat.delete_item(ids["cooking"])
        assert [cat.get_items([h.item_id])[h.item_id].source for h in cat.keyword_search("descent")] == \
            ["lecture.mp4", "lecture.mp4"]
        # a re-ingest (replace) swaps the transcript: the old words no longer match
        segs = [[0.0, 3.2]]
        cat.add_item(kind="video", source="lecture.mp4", sha256=sha("lecture"), segments=segs, duration=3.2,
                     vectors={s: clusters(1, d) for s, d in SPACES.items()}, replace=True,
                     cues=[(0.0, 3.0, "stochastic optimisation")])
        assert cat.keyword_search("descent") == []
        assert [h.item_id for h in cat.keyword_search("stochastic")] == [ids["lecture"]]
        assert cat.set_transcript(ids["garden"], [(0.0, 1.0, "new words only")]) == 1
        assert cat.keyword_search("tomatoes") == []
        report = cat.check()
        assert report.ok, report.problems
        assert report.counts["cues"] == 2  # lecture 1 + garden 1
        with pytest.raises(ItemNotFoundError):
            cat.set_transcript("nope", [])


def test_keyword_ranking_highlights_and_filters(tmp_path: Path, store: str, clusters: Clusters) -> None:
    with Catalog(tmp_path / "cat", spaces=SPACES, store=store) as cat:
        ids = {v: k for k, v in _fill(cat, clusters).items()}
        hits = cat.keyword_search("gradient descent")
        # the cue saying it twice ranks above the one saying it once; the cellar cue lacks "gradient"
        assert [(h.item_id, h.start) for h in hits] == [(ids["lecture"], 7.0), (ids["lecture"], 3.5)]
        assert hits[0].score > hits[1].score > 0
        assert "<mark>gradient</mark>" in hits[1].text and "<mark>descent</mark>" in hits[1].text
        assert "slope" in hits[1].text and "<mark>slope" not in hits[1].text
        # English stemming on both engines: "tomato" finds "tomatoes"
        assert {h.item_id for h in cat.keyword_search("tomato")} == {ids["garden"]}
        assert _ranked(cat, "descent", where={"topic": "cooking"}) == [(ids["cooking"], 4.0, 6.0)]
        assert _ranked(cat, "descent", kinds=["audio"]) == []
        assert cat.keyword_search("zyzzyva") == [] and cat.keyword_search("  ?! ") == []
        assert len(cat.keyword_search("descent", k=1)) == 1


def test_sqlite_and_postgresql_rank_the_same_items(tmp_path: Path, request: pytest.FixtureRequest,
                                                   clusters: Clusters) -> None:
    pg = request.getfixturevalue("pg_server")
    dsn = pg.create_schema()
    try:
        out = []
        for i, spec in enumerate(("sqlite", dsn)):
            with Catalog(tmp_path / f"c{i}", spaces=SPACES, store=spec) as cat:
                ids = _fill(cat, Clusters(seed=3))
                queries = ("gradient descent", "descent", "tomatoes", "onions", "wine cellar", "converges")
                hits = [cat.keyword_search(q) for q in queries]
                # hybrid: the same query vector (exact search: both stores give the same vector moments)
                qv = np.random.default_rng(7).standard_normal(SPACES["vt"]).astype(np.float32)
                vector = cat.search("vt", qv, k=3, moments=3, exact=True)
                fused = []
                for method in ("rrf", "weighted"):
                    for hs in hits:
                        named = {h.item_id for h in hs}
                        items = {**cat.get_items(named), **{h.item.id: h.item for h in vector}}
                        fused.append([ids[h.item.id] for h in fuse(vector, hs, cat.segments_of(named), items,
                                                                   method=method)])
                # ranked items (each item at its best cue) and the set of matched cues; the order of equally
                # good cues may differ (bm25 counts stop words in a cue's length, ts_rank_cd does not)
                out.append(([list(dict.fromkeys(ids[h.item_id] for h in hs)) for hs in hits],
                            [sorted((ids[h.item_id], h.start) for h in hs) for hs in hits], fused))
        assert out[0] == out[1]
        assert out[0][0] == [["lecture"], ["lecture", "cooking"], ["garden"], ["cooking"], ["cooking"], ["lecture"]]
        assert all(sorted(f) == ["cooking", "garden", "lecture"] for f in out[0][2])  # hybrid keeps vector hits
    finally:
        pg.drop_schema(dsn)


def test_bad_cues_and_languages_are_refused(tmp_path: Path, clusters: Clusters) -> None:
    with Catalog(tmp_path / "cat", spaces=SPACES) as cat:
        item = cat.add_item(kind="video", source="a.mp4", sha256=sha("a"), segments=[[0, 1]], duration=1.0,
                            vectors={s: clusters(1, d) for s, d in SPACES.items()})
        for bad in ([(2.0, 1.0, "backwards")], [(0.0, float("nan"), "x")], [(0.0, 1.0, "nul\x00")], [(0, 1)]):
            with pytest.raises(InvalidArgumentError):
                cat.set_transcript(item.id, bad)
        assert cat.transcript(item.id) == []
    with pytest.raises(InvalidArgumentError, match="text_language"):
        Catalog(tmp_path / "cat", text_language="simple")
    with pytest.raises(InvalidArgumentError, match="FTS5"):
        Catalog(tmp_path / "other", spaces=SPACES, text_language="german")


def test_simple_language_does_not_stem(tmp_path: Path, clusters: Clusters) -> None:
    with Catalog(tmp_path / "cat", spaces=SPACES, text_language="simple") as cat:
        _fill(cat, clusters)
        assert cat.keyword_search("tomato") == [] and len(cat.keyword_search("tomatoes")) == 2
    with Catalog(tmp_path / "cat") as cat:
        assert cat.text_language == "simple"


def test_cue_span_maps_to_the_overlapping_segments(tmp_path: Path, clusters: Clusters) -> None:
    """hybrid fusion through the catalogue: a cue at 3.5-5.0 s lands on segment [3.2, 6.4] only; one at
    6.0-7.0 s straddles two segments and raises both."""
    with Catalog(tmp_path / "cat", spaces=SPACES) as cat:
        item = cat.add_item(kind="video", source="a.mp4", sha256=sha("a"), duration=9.6,
                            segments=[[0, 3.2], [3.2, 6.4], [6.4, 9.6]],
                            vectors={s: clusters(3, d) for s, d in SPACES.items()},
                            cues=[(3.5, 5.0, "alpha words"), (6.0, 7.0, "beta words")])
        segs = cat.segments_of([item.id])
        items = cat.get_items([item.id])
        alpha = fuse([], cat.keyword_search("alpha"), segs, items, moments=5)
        assert [(m.start, m.end) for m in alpha[0].moments] == [(3.2, 6.4)]
        beta = fuse([], cat.keyword_search("beta"), segs, items, moments=5)
        assert sorted((m.start, m.end) for m in beta[0].moments) == [(3.2, 6.4), (6.4, 9.6)]
        assert np.isclose(beta[0].score, 1 / 61)


def test_metadata_patches_apply_to_keyword_filters_at_once(tmp_path: Path, store: str, clusters: Clusters) -> None:
    with Catalog(tmp_path / "cat", spaces=SPACES, store=store) as cat:
        ids = {v: k for k, v in _fill(cat, clusters).items()}
        assert _ranked(cat, "tomatoes", where={"topic": "salad"}) == []
        cat.update_metadata(ids["garden"], {"topic": "salad"})
        assert {h.item_id for h in cat.keyword_search("tomatoes", where={"topic": "salad"})} == {ids["garden"]}


def test_index_check_finds_full_text_rows_without_a_cue(tmp_path: Path, clusters: Clusters) -> None:
    """`vatt index check` verifies the FTS5 rows against the cues: a cue deleted behind the triggers' back
    leaves a full-text row that belongs to nothing, and the check says so."""
    import sqlite3

    from typer.testing import CliRunner

    from index.cli import app

    path = tmp_path / "cat"
    with Catalog(path, spaces=SPACES) as cat:
        _fill(cat, clusters)
    runner = CliRunner()
    ok = runner.invoke(app, ["check", str(path)])
    assert ok.exit_code == 0, ok.output
    conn = sqlite3.connect(path / "catalog.sqlite")
    conn.execute("DROP TRIGGER cues_ad")
    conn.execute("DELETE FROM cues WHERE text LIKE '%onions%'")
    conn.commit()
    conn.close()
    bad = runner.invoke(app, ["check", str(path)])
    assert bad.exit_code == 1 and "1 full-text rows (cues_fts) belong to no cue" in bad.output


def test_shard_cues_are_imported_and_old_shards_still_read(tmp_path: Path, store: str, clusters: Clusters) -> None:
    from index.importer import import_shards
    from index.shards import ShardItem, ShardManifest, write_shard

    def item(key: str, cues: list) -> ShardItem:
        return ShardItem(key=sha(key), source=f"{key}.mp4", kind="video", duration=6.4, metadata={"k": key},
                         starts=[0.0, 3.2], ends=[3.2, 6.4], vectors={s: clusters(2, d) for s, d in SPACES.items()},
                         cues=cues)

    model = {"name": "tiny", "config_hash": "c" * 64}
    shards = tmp_path / "shards"
    for name, items in (("new", [item("a", [(0.5, 1.5, "walrus song"), (4.0, 5.0, "second line")]), item("b", [])]),
                        ("old", [item("c", [])])):
        write_shard(shards, ShardManifest(name=name, model=model, spaces=SPACES,
                                          inputs=[{"input": i.source, "status": "ok"} for i in items]), items)
    with Catalog(tmp_path / "cat", spaces=SPACES, store=store) as cat:
        import_shards(cat, shards)
        by_key = {i.sha256: i.id for i in cat.list_items()}
        assert cat.transcript(by_key[sha("a")]) == [(0.5, 1.5, "walrus song"), (4.0, 5.0, "second line")]
        assert cat.transcript(by_key[sha("b")]) == [] and cat.transcript(by_key[sha("c")]) == []
        assert [h.item_id for h in cat.keyword_search("walrus")] == [by_key[sha("a")]]
