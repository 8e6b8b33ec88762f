"""Opening a space's FAISS file against SQLite (load, catch up, or rebuild), `check()` and `stats()`.

Kept apart from catalog.py because it is the one place that compares the cache with the truth.
The catalogue hands over what these functions read as a `CatalogState` (no reaching into its
private members, and no import of catalog.py: the arrow goes one way).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import store
from .types import KINDS, CheckReport
from .vectors import IndexFileError, IndexOptions, VectorIndex, read_header

log = logging.getLogger("index.catalog")


@dataclass(frozen=True)
class CatalogState:
    """A catalogue as the consistency code sees it, at the moment of the call."""

    path: Path
    conn: sqlite3.Connection  # a reader connection of the calling thread
    spaces: Mapping[str, int]  # space -> dimension
    index_type: str
    options: IndexOptions
    readonly: bool
    vectors: Mapping[str, VectorIndex]  # the loaded indexes (empty while opening)
    saved: Mapping[str, int]  # epoch of each space's file on disk (-1: none valid)
    file_notes: Mapping[str, str]
    index_path: Callable[[str], Path]
    build_space: Callable[[str], VectorIndex]  # a fresh index for a space from the stored vectors

TOMBSTONE_REBUILD_FRACTION = 4  # rebuild an HNSW index once more than 1/4 of its entries are deleted


def _snapshot(cat: CatalogState, space: str) -> tuple[int, np.ndarray]:
    """(epoch, live ids) of a space, read in one transaction so they agree."""
    conn = cat.conn
    conn.execute("BEGIN")
    try:
        epoch = int(store.read_meta(conn)[f"epoch.{space}"])
        return epoch, store.space_ids(conn, space)
    finally:
        conn.execute("COMMIT")


def _mismatch(vi: VectorIndex, cat: CatalogState) -> str | None:
    """Why a loaded index does not have the structure the catalogue asks for (None if it does)."""
    want, have, opts = cat.index_type, vi.structure, cat.options
    if want == "ivfpq" and have == "flat":
        return None  # warm-up phase; trained after load if big enough
    if want != have:
        return f"holds {vi.factory} but the catalogue's index type is {want!r}"
    if have == "hnsw" and vi.factory != f"IDMap2,HNSW{opts.hnsw_m},Flat":
        return f"holds {vi.factory}, options ask for HNSW{opts.hnsw_m}"
    if have == "ivfpq":
        inner = vi.index
        wrong_nlist = opts.nlist and inner.nlist != opts.nlist and vi.ntotal >= opts.nlist  # clamped when trained
        if wrong_nlist or (opts.pq_m and inner.pq.M != opts.pq_m):
            return f"holds {vi.factory}, options ask for nlist={opts.nlist} pq_m={opts.pq_m}"
    return None


def open_space(cat: CatalogState, space: str) -> tuple[VectorIndex, int, str]:
    """Load a space's index and make it agree with SQLite. Returns (index, epoch of file on disk, note)."""
    path, dim = cat.index_path(space), cat.spaces[space]
    epoch, live = _snapshot(cat, space)
    vi, header, reason = None, None, None
    try:
        vi, header = VectorIndex.load(path, space, dim, cat.index_type, cat.options)
        reason = _mismatch(vi, cat)
        if reason:
            vi = None
    except IndexFileError as e:
        reason = str(e)
    if vi is None:
        if not path.exists() and not len(live):
            saved, note = -1, "no file yet (empty space)"
        else:
            log.warning("%s: %s; rebuilding from %d stored vectors", path, reason, len(live))
            saved, note = -1, f"rebuilt on open: {reason}"
        vi = cat.build_space(space)
    else:
        saved, note = int(header["epoch"]), "up to date"
        have = vi.ids()
        missing = np.setdiff1d(live, have)
        extra = np.setdiff1d(have, live)
        needs_fix = len(missing) or (len(extra) and vi.structure != "hnsw")
        if saved != epoch or needs_fix:
            log.warning("%s: file epoch %d, catalogue epoch %d%s; caught up from SQLite (+%d, -%d vectors)",
                        path, saved, epoch, "" if saved != epoch else " but ids differ", len(missing), len(extra))
            note = f"caught up on open (file epoch {saved}, catalogue {epoch})"
            if saved == epoch:
                saved = -1
        vi.remove(extra)  # hnsw: the file's deleted entries become tombstones again
        for ids, x in store.iter_vectors(cat.conn, space, dim, ids=missing):
            vi.add(ids, x)
    if vi.ready_to_train():
        vi.train_from_memory()
        saved = -1
    if vi.structure == "hnsw" and len(vi.tombstones) > max(1000, vi.ntotal // TOMBSTONE_REBUILD_FRACTION):
        vi = cat.build_space(space)
        saved = -1
    if not cat.readonly and saved != epoch and (path.exists() or vi.ntotal):
        try:
            vi.save(path, epoch)
            saved = epoch
        except OSError as e:  # a full disk: serve from memory, write the file on a later flush
            log.warning("space %r: FAISS file not written on open (%s); serving from memory", space, e)
    return vi, saved, note


def _few(ids: Any, n: int = 5) -> str:
    ids = list(ids)
    return ", ".join(map(str, ids[:n])) + (f", … ({len(ids)} in all)" if len(ids) > n else "")


def _check_sql(cat: CatalogState, problems: list[str], counts: dict[str, int]) -> dict[str, np.ndarray]:
    conn = cat.conn
    rows = conn.execute("PRAGMA quick_check").fetchall()
    if rows != [("ok",)]:
        problems.extend(f"sqlite: {r[0]}" for r in rows[:10])
    for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check").fetchall()[:10]:
        problems.append(f"sqlite: {table} row {rowid} points to a missing {parent} row")
    meta = store.read_meta(conn)
    known = list(cat.spaces)
    marks = ",".join("?" * len(known))
    for space, n in conn.execute(f"SELECT space, COUNT(*) FROM vectors WHERE space NOT IN ({marks}) "
                                 "GROUP BY space", known):
        problems.append(f"vectors: {n} rows in unknown space {space!r}")
    orphans = [r[0] for r in conn.execute(
        "SELECT id FROM items i WHERE NOT EXISTS (SELECT 1 FROM segments s WHERE s.item_id = i.id)")]
    if orphans:
        problems.append(f"items without segments: {_few(orphans)}")
    bare = [r[0] for r in conn.execute(
        "SELECT id FROM segments s WHERE NOT EXISTS (SELECT 1 FROM vectors v WHERE v.segment_id = s.id)")]
    if bare:
        problems.append(f"segments without any vector: {_few(bare)}")
    n_seg = dict(conn.execute("SELECT item_id, COUNT(*) FROM segments GROUP BY item_id").fetchall())
    item_spaces: dict[str, set[str]] = {}
    for item_id, space in conn.execute("SELECT DISTINCT s.item_id, v.space FROM vectors v "
                                       "JOIN segments s ON s.id = v.segment_id"):
        item_spaces.setdefault(item_id, set()).add(space)
    wrong = [i for i, n, sp in conn.execute("SELECT id, n_segments, spaces FROM items")
             if i in n_seg and (n_seg[i] != n or ",".join(sorted(item_spaces.get(i, ()))) != sp)]
    if wrong:
        problems.append(f"items whose n_segments/spaces disagree with their rows: {_few(wrong)}")
    counts["items"] = int(conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])
    counts["segments"] = int(conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0])
    live: dict[str, np.ndarray] = {}
    for space, dim in cat.spaces.items():
        bad_len = conn.execute("SELECT COUNT(*) FROM vectors WHERE space = ? AND length(vec) != ?",
                               (space, 4 * dim)).fetchone()[0]
        if bad_len:
            problems.append(f"{space}: {bad_len} vectors are not {dim} float32 values")
            live[space] = store.space_ids(conn, space)
            continue
        ids_parts, bad_norm = [], 0
        for ids, x in store.iter_vectors(conn, space, dim):
            ids_parts.append(ids)
            norms = np.linalg.norm(x, axis=1)
            bad_norm += int((~np.isfinite(norms) | (np.abs(norms - 1) > 1e-3)).sum())
        live[space] = np.concatenate(ids_parts) if ids_parts else np.empty(0, np.int64)
        if bad_norm:
            problems.append(f"{space}: {bad_norm} stored vectors are not unit length")
        if int(meta.get(f"count.{space}", -1)) != len(live[space]):
            problems.append(f"{space}: meta count {meta.get(f'count.{space}')} but {len(live[space])} vectors stored")
        counts[f"vectors.{space}"] = len(live[space])
    return live


def check_catalog(cat: CatalogState) -> CheckReport:
    """Compare SQLite with itself and with each in-memory FAISS index; report files on disk as notes."""
    problems: list[str] = []
    notes: list[str] = []
    counts: dict[str, int] = {}
    # the caller holds the writer lock: no write may land between the SQL snapshot and the FAISS comparison
    conn = cat.conn
    conn.execute("BEGIN")
    try:
        live = _check_sql(cat, problems, counts)
        epochs = {s: int(v) for s, v in ((s, store.read_meta(conn)[f"epoch.{s}"]) for s in cat.spaces)}
    finally:
        conn.execute("COMMIT")
    for space, vi in cat.vectors.items():
        with vi.lock.read():
            have, tomb, ntotal = vi.ids(), vi.tombstones.copy(), vi.ntotal
        if len(have) != ntotal:
            problems.append(f"{space}: FAISS holds {ntotal} vectors but {len(have)} ids")
        missing = np.setdiff1d(live[space], have)
        if len(missing):
            problems.append(f"{space}: {len(missing)} stored vectors are missing from FAISS (ids {_few(missing)})")
        extra = np.setdiff1d(np.setdiff1d(have, live[space]), tomb)
        if len(extra):
            problems.append(f"{space}: FAISS holds {len(extra)} ids with no stored vector (ids {_few(extra)})")
        dead_live = np.intersect1d(tomb, live[space])
        if len(dead_live):
            problems.append(f"{space}: {len(dead_live)} live segments are marked deleted in HNSW")
        try:
            h = read_header(cat.index_path(space))
            if h["epoch"] == epochs[space]:
                notes.append(f"{space}: file up to date (epoch {h['epoch']}, {h['factory']})")
            else:
                notes.append(f"{space}: file at epoch {h['epoch']}, catalogue at {epochs[space]} "
                             "(writes not flushed yet; caught up from SQLite on open)")
        except IndexFileError as e:
            if len(live[space]) or cat.index_path(space).exists():
                notes.append(f"{space}: file {e} (rebuilt from SQLite on the next open)")
    return CheckReport(problems=tuple(problems), notes=tuple(notes), counts=counts)


def stats(cat: CatalogState) -> dict[str, Any]:
    """A JSON-ready summary of the catalogue."""
    conn = cat.conn
    kinds = dict.fromkeys(KINDS, 0)
    kinds.update({k: n for k, n in conn.execute("SELECT kind, COUNT(*) FROM items GROUP BY kind")})
    meta = store.read_meta(conn)
    epochs = {s: int(meta[f"epoch.{s}"]) for s in cat.spaces}
    spaces = {}
    for space, vi in cat.vectors.items():
        path = cat.index_path(space)
        with vi.lock.read():
            spaces[space] = {"dim": vi.dim, "vectors": vi.live, "tombstones": len(vi.tombstones),
                             "structure": vi.structure, "factory": vi.factory, "epoch": epochs[space],
                             "file_epoch": cat.saved[space] if cat.saved[space] >= 0 else None,
                             "file_bytes": path.stat().st_size if path.exists() else 0,
                             "file": ("up to date" if cat.saved[space] == epochs[space] else "unflushed writes"),
                             "on_open": cat.file_notes.get(space, "")}
    db = cat.path / store.DB_NAME
    db_bytes = sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())
    return {"path": str(cat.path), "index_type": cat.index_type, "index_options": cat.options.to_dict(),
            "metric": "cosine", "items": sum(kinds.values()), "kinds": kinds,
            "segments": int(conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0]),
            "spaces": spaces, "sqlite_bytes": db_bytes, "readonly": cat.readonly}
