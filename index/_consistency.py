"""The one place that compares vector indexes with the store: catch-up, `check()` and `stats()`.

The rule "a vector index missing data the store has is caught up from the store" lives here once,
over the `SpaceIndex` seam (`ids()`, `add()`, `remove()`) and the store's `space_ids()` /
`iter_vectors(ids=...)`, so it holds for FAISS files and for Milvus alike. A per-process cache of a
shared store follows the other processes' writes by replaying the store's change log (`replay`),
and compares id sets (`catch_up`) only when the log no longer reaches back far enough. Functions take the
store, the spaces and the indexes explicitly: nothing here knows the `Catalog` class.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from .space_index import SpaceIndex, VectorSource
from .store import Store
from .types import KINDS, CheckReport

log = logging.getLogger("index.catalog")


def catch_up(index: SpaceIndex, store: Store, *, why: str = "on open") -> tuple[int, int, int]:
    """Make `index` hold exactly the store's vectors of its space; returns (store epoch, added, removed).

    Segment ids are never reused and vectors never change, so comparing id sets is enough."""
    with store.snapshot() as s:
        epoch = s.epochs([index.space])[index.space]
        live = s.space_ids(index.space)
    have = index.ids()
    missing = np.setdiff1d(live, have)
    extra = np.setdiff1d(have, live)
    if len(extra):
        index.remove(extra)
    source = VectorSource(store, index.space, index.dim)
    for ids, x, items, kinds in source.owned_chunks(missing):
        index.add(ids, x, items=items, kinds=kinds)
    if len(missing) or len(extra):
        log.log(logging.WARNING if why == "on open" else logging.INFO,
                "space %r: vector index caught up from the store %s (+%d, -%d vectors, store epoch %d)",
                index.space, why, len(missing), len(extra), epoch)
    return epoch, len(missing), len(extra)


def replay(index: SpaceIndex, store: Store, changes: list[tuple[int, bool, np.ndarray]], *,
           skip: set[int] = frozenset()) -> tuple[int, int]:
    """Apply the store's logged changes (epoch, added?, ids) to an index that was in sync before the first one;
    epochs in `skip` are this process's own writes, already applied. Returns (added, removed).

    The net effect only: ids added then removed within the window are never fetched."""
    add: set[int] = set()
    rem: set[int] = set()
    for epoch, added, ids in changes:
        if epoch in skip:
            continue
        if added:
            add.update(ids.tolist())
        else:
            for i in ids.tolist():
                if i in add:
                    add.discard(i)
                else:
                    rem.add(i)
    if rem:
        index.remove(np.fromiter(sorted(rem), dtype=np.int64, count=len(rem)))
    n = 0
    source = VectorSource(store, index.space, index.dim)
    for ids, x, items, kinds in source.owned_chunks(np.fromiter(sorted(add), dtype=np.int64, count=len(add))):
        index.add(ids, x, items=items, kinds=kinds)  # ids deleted since are simply not found
        n += len(ids)
    return n, len(rem)


def _few(ids: Any, n: int = 5) -> str:
    ids = list(ids)
    return ", ".join(map(str, ids[:n])) + (f", … ({len(ids)} in all)" if len(ids) > n else "")


def _check_store(store: Store, spaces: Mapping[str, int], problems: list[str],
                 counts: dict[str, int]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    problems.extend(store.integrity_problems())
    with store.snapshot() as s:
        meta = s.read_meta()
        for space, n in s.vectors_outside(list(spaces)):
            problems.append(f"vectors: {n} rows in unknown space {space!r}")
        orphans = s.items_without_segments()
        if orphans:
            problems.append(f"items without segments: {_few(orphans)}")
        bare = s.segments_without_vectors()
        if bare:
            problems.append(f"segments without any vector: {_few(bare)}")
        wrong = [i for i, n, sp, rows, row_spaces in s.item_shapes()
                 if rows and (rows != n or ",".join(sorted(row_spaces)) != sp)]
        if wrong:
            problems.append(f"items whose n_segments/spaces disagree with their rows: {_few(wrong)}")
        counts["items"] = s.item_count()
        counts["segments"] = s.segment_count()
        live: dict[str, np.ndarray] = {}
        for space, dim in spaces.items():
            bad_len = s.misshapen_vectors(space, dim)
            if bad_len:
                problems.append(f"{space}: {bad_len} vectors are not {dim} float32 values")
                live[space] = s.space_ids(space)
                continue
            ids_parts, bad_norm = [], 0
            for ids, x in s.iter_vectors(space, dim):
                ids_parts.append(ids)
                norms = np.linalg.norm(x, axis=1)
                bad_norm += int((~np.isfinite(norms) | (np.abs(norms - 1) > 1e-3)).sum())
            live[space] = np.concatenate(ids_parts) if ids_parts else np.empty(0, np.int64)
            if bad_norm:
                problems.append(f"{space}: {bad_norm} stored vectors are not unit length")
            if int(meta.get(f"count.{space}", -1)) != len(live[space]):
                problems.append(f"{space}: meta count {meta.get(f'count.{space}')} but {len(live[space])} "
                                "vectors stored")
            counts[f"vectors.{space}"] = len(live[space])
        epochs = {sp: int(meta.get(f"epoch.{sp}", 0)) for sp in spaces}
    return live, epochs


def check_catalog(store: Store, spaces: Mapping[str, int], indexes: Mapping[str, SpaceIndex]) -> CheckReport:
    """Compare the store with itself and with each vector index (the caller keeps its own writes out)."""
    problems: list[str] = []
    notes: list[str] = []
    counts: dict[str, int] = {}
    live, epochs = _check_store(store, spaces, problems, counts)
    for space, vi in indexes.items():
        have = vi.ids()
        missing = np.setdiff1d(live[space], have)
        if len(missing):
            problems.append(f"{space}: {len(missing)} stored vectors are missing from the vector index "
                            f"(ids {_few(missing)})")
        extra = np.setdiff1d(have, live[space])
        if len(extra):
            problems.append(f"{space}: the vector index holds {len(extra)} ids with no stored vector "
                            f"(ids {_few(extra)})")
        more, more_notes = vi.check(live[space], epochs[space])
        problems += more
        notes += more_notes
    for space in store.reader().behind(indexes):
        notes.append(f"{space}: a write missed the shared vector engine (marked in the store); the next search "
                     "through a writing replica catches it up")
    return CheckReport(problems=tuple(problems), notes=tuple(notes), counts=counts)


def stats(store: Store, spaces: Mapping[str, int], indexes: Mapping[str, SpaceIndex],
          epochs: Mapping[str, int]) -> dict[str, Any]:
    """A JSON-ready summary: counts per kind, each space's index facts, the store's size."""
    s = store.reader()
    kinds = dict.fromkeys(KINDS, 0)
    kinds.update(s.kind_counts())
    return {"items": sum(kinds.values()), "kinds": kinds, "segments": s.segment_count(),
            "spaces": {space: vi.describe(epochs[space]) for space, vi in indexes.items()},
            "store": store.dialect.name, **store.sizes()}
