"""Search: segment candidates from a vector index (or brute force), grouped into item hits with their best moments.

Why the loops: k items need more than k segments (an item may own many of the top segments), and a
filter hides some. Candidates start at k·moments·4 and grow ×4 until k distinct items are found or
the candidates run out.

Filters run in two stages. First, post-filtering: over-fetch unfiltered candidates and keep those
whose item passes (one SQL query over the candidate items only) — cheap, and enough for broad
filters. Rows still short of k items go to pre-filtering: the allowed segment ids are computed in
SQL and handed to the vector index as an id filter, or, when they are few, searched exactly. An approximate
index that runs dry under the selector (HNSW with a selective filter, IVF with few lists probed)
hands over to exact search over the allowed ids, so a filter matching ≥ k items yields k items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ._util import brute_force
from .space_index import SpaceIndex
from .store import Session
from .types import ItemHit, Moment

POST_FILTER_FACTOR = 4  # post-filter stage fetches this many times the unfiltered candidates


@dataclass
class _Query:
    vi: SpaceIndex
    db: Session
    space: str
    k: int
    moments: int
    kinds: Sequence[str] | None
    where: Mapping[str, Any] | None
    exact_below: int  # a filter allowing at most this many segments is searched exactly
    allowed: np.ndarray | None = field(default=None)

    @property
    def filtered(self) -> bool:
        return self.kinds is not None or bool(self.where)


def _fetch(qs: _Query, q: np.ndarray, k_seg: int, exact: bool) -> tuple[np.ndarray, np.ndarray]:
    if exact:
        res = qs.vi.exact(q, k_seg, allowed=qs.allowed)
        if res is None:  # the index keeps no raw vectors (IVF-PQ codes): brute force over the store's
            return store_exact(qs.db, qs.space, qs.vi.dim, q, k_seg, qs.allowed)
        return res
    return qs.vi.search(q, k_seg, allowed=qs.allowed, kinds=qs.kinds)


def _group(scores: np.ndarray, ids: np.ndarray, segs: dict[int, tuple[str, float, float]],
           k: int, moments: int) -> list[tuple[str, float, list[Moment]]]:
    """Candidates (best first) → [(item id, best score, top moments)] for at most k items."""
    order: list[str] = []
    found: dict[str, list[Moment]] = {}
    for s, i in zip(scores.tolist(), ids.tolist()):
        if i < 0 or i not in segs:
            continue  # no candidate, or deleted since the index was searched
        item_id, start, end = segs[i]
        if item_id not in found:
            if len(order) == k:
                continue  # still collect moments of the k items already chosen
            order.append(item_id)
            found[item_id] = []
        if len(found[item_id]) < moments:
            found[item_id].append(Moment(segment_id=i, start=start, end=end, score=float(s)))
    return [(it, found[it][0].score if found[it] else float("-inf"), found[it]) for it in order]


def _best_first(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    return scores[order], ids[order]


def _post_filter(qs: _Query, q: np.ndarray, exact: bool, grouped: list[Any]) -> list[int]:
    """Stage 1 of a filtered search; fills `grouped` for the rows it settles, returns the others."""
    vi, k = qs.vi, qs.k
    k_seg = min(vi.live, max(64, k * max(qs.moments, 1) * 4 * POST_FILTER_FACTOR))
    d, i = _fetch(qs, q, k_seg, exact)
    segs = qs.db.segment_rows(np.unique(i[i >= 0]))
    passing = qs.db.passing_items({v[0] for v in segs.values()}, qs.kinds, qs.where)
    segs = {sid: v for sid, v in segs.items() if v[0] in passing}
    todo = []
    for r in range(len(q)):
        sc, ids = _best_first(d[r], i[r])
        grouped[r] = _group(sc, ids, segs, k, max(qs.moments, 1))
        if len(grouped[r]) < k and not (k_seg >= vi.live and (exact or not vi.approximate)):
            todo.append(r)
    return todo


def search(vi: SpaceIndex, db: Session, space: str, q: np.ndarray, *, k: int, moments: int,
           kinds: Sequence[str] | None, where: Mapping[str, Any] | None, exact: bool,
           exact_below: int) -> list[list[ItemHit]]:
    """One result list per query row (`q`: unit vectors [n, dim]) of `space`, whose index is `vi` and whose
    store `db`: the top-k items passing `kinds` and `where`, each with its best `moments` moments."""
    return _run(_Query(vi=vi, db=db, space=space, k=k, moments=moments, kinds=kinds, where=where or None,
                       exact_below=exact_below), q, exact)


def _run(qs: _Query, q: np.ndarray, exact: bool) -> list[list[ItemHit]]:
    vi, k, moments = qs.vi, qs.k, qs.moments
    grouped: list[list[tuple[str, float, list[Moment]]]] = [[] for _ in q]
    todo = list(range(len(q)))
    if qs.filtered and vi.live and not (exact and not vi.exact_in_memory):
        todo = _post_filter(qs, q, exact, grouped)
    if todo and qs.filtered:
        qs.allowed = qs.db.allowed_ids(qs.space, qs.kinds, qs.where)  # the filter's segment ids, once needed
    cap = len(qs.allowed) if qs.allowed is not None else vi.live
    if cap == 0:
        todo = []
    if not exact and qs.allowed is not None and vi.approximate and cap <= qs.exact_below:
        exact = True  # graph/list traversal under a tiny selector wastes time and recall
    k_seg = min(cap, max(32, k * max(moments, 1) * 4))
    mode = {r: exact for r in todo}
    width = {r: k_seg for r in todo}
    first = True
    while todo:
        if first:  # one batched call for every row; stragglers go one by one
            batches = [(todo, k_seg, exact)]
            first = False
        else:
            batches = [([r], width[r], mode[r]) for r in todo]
        nxt: list[int] = []
        for rows, ks, ex in batches:
            d, i = _fetch(qs, q[rows], ks, ex)
            segs = qs.db.segment_rows(np.unique(i[i >= 0]))
            for j, r in enumerate(rows):
                sc, ids = _best_first(d[j], i[j])
                grouped[r] = _group(sc, ids, segs, k, max(moments, 1))
                dry = int((ids >= 0).sum()) < ks or ks >= cap
                if len(grouped[r]) >= k or (dry and ex):
                    continue
                if dry:
                    mode[r] = True  # approximate index ran dry: exact over the same candidates
                else:
                    width[r] = min(cap, ks * 4)
                nxt.append(r)
        todo = nxt
    items = qs.db.get_items([it for g in grouped for it, _, _ in g])
    out: list[list[ItemHit]] = []
    for g in grouped:
        hits = [ItemHit(item=items[it], score=score, moments=tuple(ms[:moments]))
                for it, score, ms in g if it in items]
        hits.sort(key=lambda h: -h.score)
        out.append(hits)
    return out


def store_exact(db: Session, space: str, dim: int, q: np.ndarray, k: int,
                allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by streaming the raw vectors from the store (for indexes without raw vectors)."""
    best_d = np.full((len(q), 0), -np.inf, np.float32)
    best_i = np.full((len(q), 0), -1, np.int64)
    for ids, x in db.iter_vectors(space, dim, ids=allowed):
        d, i = brute_force(q, x, ids, k)
        d, i = np.concatenate([best_d, d], 1), np.concatenate([best_i, i], 1)
        top = np.argsort(-d, axis=1, kind="stable")[:, :k]
        best_d, best_i = np.take_along_axis(d, top, 1), np.take_along_axis(i, top, 1)
    if best_d.shape[1] < k:
        pad = k - best_d.shape[1]
        best_d = np.pad(best_d, ((0, 0), (0, pad)), constant_values=-np.inf)
        best_i = np.pad(best_i, ((0, 0), (0, pad)), constant_values=-1)
    return best_d, best_i
