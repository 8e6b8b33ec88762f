"""SQLite: the catalogue's source of truth (items, segments, raw vectors, meta). DDL and queries only.

WAL mode with synchronous=FULL: a committed `add_item` survives SIGKILL and power loss, readers never
block the writer. Segment ids are AUTOINCREMENT rowids, never reused, so a FAISS id always means one
segment and a stale FAISS file can be reconciled by id sets alone.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .errors import CatalogCorruptError
from .filters import compile_where
from .types import Item, Segment

SCHEMA_VERSION = 1
DB_NAME = "catalog.sqlite"

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('video', 'audio', 'text')),
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    duration REAL,
    metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    created REAL NOT NULL,
    spaces TEXT NOT NULL,          -- comma-joined, denormalised for cheap reads (check() verifies)
    n_segments INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS items_kind ON items(kind);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL CHECK (end_s >= start_s)
);
CREATE INDEX IF NOT EXISTS segments_item ON segments(item_id);
CREATE TABLE IF NOT EXISTS vectors (
    segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    space TEXT NOT NULL,
    vec BLOB NOT NULL,             -- float32 little-endian, L2-normalised
    PRIMARY KEY (segment_id, space)
);
CREATE INDEX IF NOT EXISTS vectors_space ON vectors(space, segment_id);
"""
_ITEM_COLS = "id, kind, source, sha256, duration, metadata, created, spaces, n_segments"


def connect(db: Path, *, readonly: bool) -> sqlite3.Connection:
    """Open a connection with the catalogue's pragmas (autocommit; transactions are explicit)."""
    if readonly:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None, check_same_thread=False,
                               timeout=30)
    else:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class Connections:
    """One writer connection (used under the catalogue's writer lock) and one reader connection per thread."""

    def __init__(self, db: Path, *, readonly: bool) -> None:
        self.db = db
        self.readonly = readonly
        self.writer = None if readonly else connect(db, readonly=False)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    def reader(self) -> sqlite3.Connection:
        """This thread's own read connection (WAL: sees the last committed state, never blocks)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.db, readonly=True)
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._guard:
            for c in self._all:
                c.close()
            self._all.clear()
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class transaction:
    """`BEGIN IMMEDIATE … COMMIT`, rolled back on any exception: the unit of atomicity."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


# --- schema and meta ---------------------------------------------------------------------------

def init_schema(conn: sqlite3.Connection, meta: Mapping[str, Any]) -> None:
    """Create tables and write the initial meta rows (a no-op for keys that already exist)."""
    conn.executescript(_DDL)  # idempotent; the caller holds the cross-process writer lock
    with transaction(conn):
        rows = [(k, json.dumps(v)) for k, v in {"schema": SCHEMA_VERSION, **meta}.items()]
        conn.executemany("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", rows)


def read_meta(conn: sqlite3.Connection) -> dict[str, Any]:
    """All meta rows, JSON-decoded."""
    try:
        rows = conn.execute("SELECT key, value FROM meta").fetchall()
    except sqlite3.DatabaseError as e:
        raise CatalogCorruptError(f"cannot read the catalogue's meta table ({e}); "
                                  "accepted: a directory created by index.Catalog") from e
    return {k: json.loads(v) for k, v in rows}


def set_meta(conn: sqlite3.Connection, values: Mapping[str, Any]) -> None:
    """Upsert meta rows (call inside a transaction)."""
    conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                     [(k, json.dumps(v)) for k, v in values.items()])


def bump(conn: sqlite3.Connection, space: str, added: int) -> None:
    """Advance a space's write epoch and adjust its vector count (inside the write's transaction)."""
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = ?", (f"epoch.{space}",))
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = ?", (added, f"count.{space}"))


# --- items -------------------------------------------------------------------------------------

def _item(row: Sequence[Any]) -> Item:
    return Item(id=row[0], kind=row[1], source=row[2], sha256=row[3], duration=row[4],
                metadata=MappingProxyType(json.loads(row[5])), created=row[6],
                spaces=tuple(s for s in row[7].split(",") if s), n_segments=row[8])


def insert_item(conn: sqlite3.Connection, *, item_id: str, kind: str, source: str, sha256: str,
                duration: float | None, metadata_json: str, segments: np.ndarray,
                vectors: Mapping[str, np.ndarray]) -> np.ndarray:
    """Insert an item, its segments and vectors (inside a transaction); returns the new segment ids."""
    n = len(segments)
    conn.execute(f"INSERT INTO items({_ITEM_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (item_id, kind, source, sha256, duration, metadata_json, time.time(),
                  ",".join(sorted(vectors)), n))
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'segments'").fetchone()
    base = int(row[0]) if row else 0
    ids = np.arange(base + 1, base + 1 + n, dtype=np.int64)
    conn.executemany("INSERT INTO segments(id, item_id, start_s, end_s) VALUES (?, ?, ?, ?)",
                     [(int(i), item_id, float(s), float(e)) for i, (s, e) in zip(ids, segments)])
    for space, x in vectors.items():
        x = np.ascontiguousarray(x, dtype="<f4")
        conn.executemany("INSERT INTO vectors(segment_id, space, vec) VALUES (?, ?, ?)",
                         [(int(i), space, x[j].tobytes()) for j, i in enumerate(ids)])
        bump(conn, space, n)
    return ids


def delete_item(conn: sqlite3.Connection, item_id: str) -> dict[str, np.ndarray]:
    """Delete an item with its segments and vectors (inside a transaction); returns removed ids per space."""
    rows = conn.execute("SELECT v.space, v.segment_id FROM vectors v JOIN segments s ON s.id = v.segment_id "
                        "WHERE s.item_id = ?", (item_id,)).fetchall()
    removed: dict[str, list[int]] = {}
    for space, sid in rows:
        removed.setdefault(space, []).append(sid)
    conn.execute("DELETE FROM items WHERE id = ?", (item_id,))
    for space, ids in removed.items():
        bump(conn, space, -len(ids))
    return {s: np.asarray(ids, dtype=np.int64) for s, ids in removed.items()}


def get_item(conn: sqlite3.Connection, item_id: str) -> Item | None:
    row = conn.execute(f"SELECT {_ITEM_COLS} FROM items WHERE id = ?", (item_id,)).fetchone()
    return _item(row) if row else None


def get_items(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, Item]:
    """Items by id (missing ids are simply absent)."""
    ids = list(dict.fromkeys(ids))
    out: dict[str, Item] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(f"SELECT {_ITEM_COLS} FROM items WHERE id IN ({marks})", chunk):
            out[row[0]] = _item(row)
    return out


def find_sha256(conn: sqlite3.Connection, sha256: str) -> Item | None:
    row = conn.execute(f"SELECT {_ITEM_COLS} FROM items WHERE sha256 = ?", (sha256,)).fetchone()
    return _item(row) if row else None


def item_filter_sql(kinds: Sequence[str] | None, where: Mapping[str, Any] | None,
                    alias: str = "i") -> tuple[str, list[Any]]:
    """SQL condition on the items table for a kind list and a metadata filter."""
    sql, params = compile_where(where, column=f"{alias}.metadata")
    if kinds is not None:
        sql = f"{alias}.kind IN ({','.join('?' * len(kinds))}) AND ({sql})"
        params = [*kinds, *params]
    return sql, params


def list_items(conn: sqlite3.Connection, *, kinds: Sequence[str] | None, where: Mapping[str, Any] | None,
               limit: int, offset: int) -> list[Item]:
    cond, params = item_filter_sql(kinds, where)
    rows = conn.execute(f"SELECT {', '.join('i.' + c.strip() for c in _ITEM_COLS.split(','))} FROM items i "
                        f"WHERE {cond} ORDER BY i.created, i.id LIMIT ? OFFSET ?", [*params, limit, offset])
    return [_item(r) for r in rows]


def count_items(conn: sqlite3.Connection, *, kinds: Sequence[str] | None = None,
                where: Mapping[str, Any] | None = None) -> int:
    cond, params = item_filter_sql(kinds, where)
    return int(conn.execute(f"SELECT COUNT(*) FROM items i WHERE {cond}", params).fetchone()[0])


def update_metadata(conn: sqlite3.Connection, item_id: str, metadata_json: str) -> None:
    conn.execute("UPDATE items SET metadata = ? WHERE id = ?", (metadata_json, item_id))


# --- segments and vectors ----------------------------------------------------------------------

def item_segments(conn: sqlite3.Connection, item_id: str) -> list[Segment]:
    rows = conn.execute("SELECT id, item_id, start_s, end_s FROM segments WHERE item_id = ? ORDER BY id",
                        (item_id,))
    return [Segment(id=r[0], item_id=r[1], start=r[2], end=r[3]) for r in rows]


def segment_rows(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, tuple[str, float, float]]:
    """segment id → (item id, start, end) for the ids that still exist."""
    ids = [int(i) for i in dict.fromkeys(ids)]
    out: dict[int, tuple[str, float, float]] = {}
    for i in range(0, len(ids), 900):
        chunk = ids[i:i + 900]
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(f"SELECT id, item_id, start_s, end_s FROM segments WHERE id IN ({marks})", chunk):
            out[r[0]] = (r[1], r[2], r[3])
    return out


def space_ids(conn: sqlite3.Connection, space: str) -> np.ndarray:
    """All segment ids holding a vector in `space`, ascending."""
    rows = conn.execute("SELECT segment_id FROM vectors WHERE space = ? ORDER BY segment_id", (space,))
    return np.fromiter((r[0] for r in rows), dtype=np.int64)


def allowed_ids(conn: sqlite3.Connection, space: str, kinds: Sequence[str] | None,
                where: Mapping[str, Any] | None) -> np.ndarray:
    """Segment ids in `space` whose item passes the kind and metadata filters.

    Driven from items (the filter is evaluated once per item, not per segment); relies on the
    add_item invariant that an item listing a space has a vector in it for every segment."""
    cond, params = item_filter_sql(kinds, where)
    rows = conn.execute("WITH m AS MATERIALIZED (SELECT i.id FROM items i WHERE "
                        f"instr(',' || i.spaces || ',', ',' || ? || ',') > 0 AND {cond}) "
                        "SELECT s.id FROM m CROSS JOIN segments s ON s.item_id = m.id", [space, *params])
    return np.fromiter((r[0] for r in rows), dtype=np.int64)


def passing_items(conn: sqlite3.Connection, item_ids: Iterable[str], kinds: Sequence[str] | None,
                  where: Mapping[str, Any] | None) -> set[str]:
    """The subset of `item_ids` that passes the kind and metadata filters (post-filtering)."""
    cond, params = item_filter_sql(kinds, where)
    ids = list(item_ids)
    out: set[str] = set()
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        rows = conn.execute(f"SELECT i.id FROM items i WHERE i.id IN ({','.join('?' * len(chunk))}) AND {cond}",
                            [*chunk, *params])
        out.update(r[0] for r in rows)
    return out


def iter_vectors(conn: sqlite3.Connection, space: str, dim: int, ids: np.ndarray | None = None,
                 chunk: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream (ids [m], vectors [m, dim]) for a space, optionally only for the given ids."""
    def pack(rows: list[tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray]:
        sids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        x = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
        return sids, x.astype(np.float32, copy=False)

    if ids is None:
        last = -1
        while True:
            rows = conn.execute("SELECT segment_id, vec FROM vectors WHERE space = ? AND segment_id > ? "
                                "ORDER BY segment_id LIMIT ?", (space, last, chunk)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield pack(rows)
    else:
        ids = np.asarray(ids, dtype=np.int64)
        for i in range(0, len(ids), 900):
            part = [int(v) for v in ids[i:i + 900]]
            rows = conn.execute(f"SELECT segment_id, vec FROM vectors WHERE space = ? AND segment_id IN "
                                f"({','.join('?' * len(part))})", [space, *part]).fetchall()
            if rows:
                yield pack(rows)


def item_vectors(conn: sqlite3.Connection, item_id: str, space: str, dim: int) -> tuple[list[Segment], np.ndarray]:
    """An item's segments that hold a vector in `space`, with those vectors [n, dim]."""
    rows = conn.execute("SELECT s.id, s.item_id, s.start_s, s.end_s, v.vec FROM segments s JOIN vectors v "
                        "ON v.segment_id = s.id AND v.space = ? WHERE s.item_id = ? ORDER BY s.id",
                        (space, item_id)).fetchall()
    segs = [Segment(id=r[0], item_id=r[1], start=r[2], end=r[3]) for r in rows]
    x = np.frombuffer(b"".join(r[4] for r in rows), dtype="<f4").reshape(len(rows), dim).astype(np.float32)
    return segs, x


def sample_vectors(conn: sqlite3.Connection, space: str, dim: int, m: int) -> np.ndarray:
    """m vectors of a space drawn at random (training data for IVF-PQ)."""
    rows = conn.execute("SELECT vec FROM vectors WHERE space = ? AND segment_id IN "
                        "(SELECT segment_id FROM vectors WHERE space = ? ORDER BY random() LIMIT ?)",
                        (space, space, m)).fetchall()
    return np.frombuffer(b"".join(r[0] for r in rows), dtype="<f4").reshape(len(rows), dim).astype(np.float32)
