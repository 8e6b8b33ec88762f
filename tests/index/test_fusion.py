"""Hybrid fusion per moment on a hand-computed case: reciprocal rank fusion and the weighted normalised sum."""

from __future__ import annotations

import math

import pytest
from index import CueHit, InvalidArgumentError, Item, ItemHit, Moment, Segment, fuse, group_cues


def _item(i: str) -> Item:
    return Item(id=i, kind="video", source=f"{i}.mp4", sha256="0" * 64, duration=9.6, metadata={}, created=0.0)


ITEMS = {i: _item(i) for i in ("a", "b", "c")}
SEGS = {"a": [Segment(1, "a", 0.0, 3.2), Segment(2, "a", 3.2, 6.4)],
        "b": [Segment(3, "b", 0.0, 3.2)],
        "c": [Segment(4, "c", 0.0, 3.2), Segment(5, "c", 3.2, 6.4)]}
# vector moments, global order by score: a1 0.9 (rank 1), b3 0.8 (2), a2 0.5 (3)
VECTOR = [ItemHit(ITEMS["a"], 0.9, (Moment(1, 0.0, 3.2, 0.9), Moment(2, 3.2, 6.4, 0.5))),
          ItemHit(ITEMS["b"], 0.8, (Moment(3, 0.0, 3.2, 0.8),))]
# keyword cues, best first: c at 4.0-5.0 s (rank 1, lands on c5), a at 3.0-4.0 s (rank 2, straddles a1 and a2)
KEYWORD = [CueHit(10, "c", 4.0, 5.0, "<mark>descent</mark>", 4.0),
           CueHit(11, "a", 3.0, 4.0, "gradient <mark>descent</mark>", 2.0)]


def test_rrf_by_hand() -> None:
    hits = fuse(VECTOR, KEYWORD, SEGS, ITEMS, method="rrf", rrf_k=60, moments=3)
    a1 = 1 / 61 + 1 / 62  # vector rank 1, keyword rank 2
    a2 = 1 / 63 + 1 / 62  # vector rank 3, keyword rank 2
    b3 = 1 / 62
    c5 = 1 / 61
    assert [h.item.id for h in hits] == ["a", "c", "b"]
    assert [math.isclose(h.score, s) for h, s in zip(hits, (a1, c5, b3))] == [True] * 3
    assert [(m.segment_id, round(m.score, 9)) for m in hits[0].moments] == [(1, round(a1, 9)), (2, round(a2, 9))]
    assert hits[0].moments[0].text == "gradient <mark>descent</mark>"
    assert hits[1].moments[0].start == 3.2 and hits[2].moments[0].text is None


def test_weighted_by_hand() -> None:
    # vector min-max over {0.9, 0.8, 0.5}: a1 1, b3 0.75, a2 0; keyword over {4, 2}: c5 1, a1 0, a2 0
    hits = fuse(VECTOR, KEYWORD, SEGS, ITEMS, method="weighted", alpha=0.25, moments=1)
    got = {h.item.id: h.score for h in hits}
    assert got == pytest.approx({"a": 0.25 * 1.0, "b": 0.25 * 0.75, "c": 0.75 * 1.0})
    assert [h.item.id for h in hits] == ["c", "a", "b"]


def test_no_keyword_hits_keeps_the_vector_order_and_keyword_alone_groups_cues() -> None:
    assert [h.item.id for h in fuse(VECTOR, [], SEGS, ITEMS)] == ["a", "b"]
    assert fuse([], [], SEGS, ITEMS) == []
    alone = group_cues(KEYWORD, ITEMS)
    assert [(h.item.id, h.score, h.moments[0].start) for h in alone] == [("c", 4.0, 4.0), ("a", 2.0, 3.0)]
    assert group_cues(KEYWORD, {"a": ITEMS["a"]})[0].item.id == "a"  # a deleted item drops out


def test_bad_parameters_are_refused() -> None:
    for kw in ({"method": "max"}, {"rrf_k": 0}, {"alpha": 1.5}):
        with pytest.raises(InvalidArgumentError):
            fuse(VECTOR, KEYWORD, SEGS, ITEMS, **kw)
