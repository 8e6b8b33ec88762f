"""Hybrid search per moment: vector moments and keyword cues fused into one ranked list of items.

Each segment a vector search returned and each cue a keyword search matched is a candidate moment. A cue
counts for every segment of its item its time span overlaps (its own span when it overlaps none), so the
words said during a moment raise that moment. Two fusions, as Weaviate and Marqo offer them:

* ``rrf``: reciprocal rank fusion, score = Σ 1 / (rrf_k + rank) over the lists a moment is ranked in
  (rank from 1; a segment's keyword rank is its best cue's);
* ``weighted``: alpha · v + (1 − alpha) · w, with v and w each list's scores min-max normalised over its
  candidates (1 when all are equal) and 0 for a moment absent from a list.

An item's score is its best moment's; items come best first (ties by id). Pure functions: no store here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .cues import CueHit
from .errors import InvalidArgumentError
from .types import Item, ItemHit, Moment, Segment

FUSIONS = ("rrf", "weighted")


@dataclass
class _Candidate:
    item_id: str
    segment_id: int
    start: float
    end: float
    v_rank: int | None = None
    v_score: float | None = None
    k_rank: int | None = None
    k_score: float | None = None
    texts: list[str] = field(default_factory=list)


def _overlaps(seg: Segment, start: float, end: float) -> bool:
    """Spans share time; a zero-length cue counts inside a segment that contains its instant."""
    return seg.start < end and start < seg.end if end > start else seg.start <= start <= seg.end


def _normalised(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    return lo, (hi - lo)


def fuse(vector: Sequence[ItemHit], keyword: Sequence[CueHit], segments: Mapping[str, Sequence[Segment]],
         items: Mapping[str, Item], *, method: str = "rrf", rrf_k: int = 60, alpha: float = 0.5,
         moments: int = 3) -> list[ItemHit]:
    """Fuse a vector search's moments (`vector`, best first per item) with keyword cue hits (`keyword`, best
    first) per moment; `segments` holds each keyword item's segments, `items` every item named."""
    if method not in FUSIONS:
        raise InvalidArgumentError(f"unknown fusion {method!r}; accepted: {', '.join(FUSIONS)}")
    if not isinstance(rrf_k, int) or rrf_k < 1:
        raise InvalidArgumentError(f"rrf_k must be an integer ≥ 1, got {rrf_k!r}")
    if not 0.0 <= alpha <= 1.0:
        raise InvalidArgumentError(f"alpha must be in [0, 1], got {alpha!r}")
    cands: dict[tuple[str, int], _Candidate] = {}
    ranked = sorted(((m, h.item.id) for h in vector for m in h.moments), key=lambda p: (-p[0].score, p[0].segment_id))
    for rank, (m, item_id) in enumerate(ranked, start=1):
        cands[(item_id, m.segment_id)] = _Candidate(item_id, m.segment_id, m.start, m.end, rank, m.score)
    for rank, cue in enumerate(keyword, start=1):
        hit = [s for s in segments.get(cue.item_id, ()) if _overlaps(s, cue.start, cue.end)]
        targets = [(s.id, s.start, s.end) for s in hit] or [(-cue.cue_id, cue.start, cue.end)]  # -id: a cue moment
        for sid, start, end in targets:
            c = cands.setdefault((cue.item_id, sid), _Candidate(cue.item_id, sid, start, end))
            if c.k_rank is None:
                c.k_rank, c.k_score = rank, cue.score
            c.texts.append(cue.text)
    if method == "rrf":
        def score(c: _Candidate) -> float:
            return sum(1.0 / (rrf_k + r) for r in (c.v_rank, c.k_rank) if r is not None)
    else:
        v_lo, v_span = _normalised([c.v_score for c in cands.values() if c.v_score is not None] or [0.0])
        k_lo, k_span = _normalised([c.k_score for c in cands.values() if c.k_score is not None] or [0.0])

        def score(c: _Candidate) -> float:
            v = 0.0 if c.v_score is None else (c.v_score - v_lo) / v_span if v_span else 1.0
            w = 0.0 if c.k_score is None else (c.k_score - k_lo) / k_span if k_span else 1.0
            return alpha * v + (1.0 - alpha) * w
    per_item: dict[str, list[tuple[float, _Candidate]]] = {}
    for c in cands.values():
        per_item.setdefault(c.item_id, []).append((score(c), c))
    return _hits(per_item, items, moments)


def group_cues(keyword: Sequence[CueHit], items: Mapping[str, Item], *, moments: int = 3) -> list[ItemHit]:
    """Keyword search alone: each matched cue is a moment scored by the engine's rank score."""
    per_item: dict[str, list[tuple[float, _Candidate]]] = {}
    for cue in keyword:
        c = _Candidate(cue.item_id, -cue.cue_id, cue.start, cue.end, texts=[cue.text])
        per_item.setdefault(cue.item_id, []).append((cue.score, c))
    return _hits(per_item, items, moments)


def _hits(per_item: Mapping[str, list[tuple[float, _Candidate]]], items: Mapping[str, Item],
          moments: int) -> list[ItemHit]:
    out = []
    for item_id, scored in per_item.items():
        if item_id not in items:  # deleted between the searches
            continue
        scored.sort(key=lambda p: (-p[0], p[1].start, p[1].segment_id))
        best = tuple(Moment(segment_id=c.segment_id, start=c.start, end=c.end, score=s,
                            text=" … ".join(c.texts) if c.texts else None) for s, c in scored[:moments])
        out.append(ItemHit(item=items[item_id], score=scored[0][0], moments=best))
    out.sort(key=lambda h: (-h.score, h.item.id))
    return out
