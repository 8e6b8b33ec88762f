"""The catalogue's source of truth (items, segments, metadata, raw vectors, meta, jobs), one SQL home.

`Store` is the seam: SQLite (index/sqlite_store.py, embedded, one writer per directory) and
PostgreSQL (index/pg_store.py, several processes write) implement it. Both run the SAME queries
below through a `Session` (one connection, in or out of a transaction); what differs between the
two engines — placeholders, JSON access, BLOB vs BYTEA, how segment ids are drawn, integrity
checks — is a small `Dialect`. Segment ids are never reused, so a vector-index id always means one
segment and a stale vector index can be reconciled by id sets alone. Every write bumps its spaces'
epochs inside its own transaction, so "has the store moved on?" is one cheap read.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .errors import CatalogCorruptError, InvalidArgumentError, StoreUnavailableError
from .filters import compile_where
from .types import Item, Segment

SCHEMA_VERSION = 1
CHANGES_KEPT = 100_000  # epochs of changes a shared store keeps per space; a cache further behind compares id sets
ITEM_COLS = "id, kind, source, sha256, duration, metadata, created, spaces, n_segments"


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL engines; the queries themselves are shared."""

    name: str  # "sqlite" or "postgresql" (also the filter dialect)
    placeholder: str  # "?" or "%s"
    json_param: str  # how a metadata JSON text is bound ("?" or "CAST(? AS jsonb)")
    cross_join: str  # SQLite's CROSS JOIN fixes the loop order; PostgreSQL plans it itself
    has_space: str  # condition: item i lists the space bound as the parameter
    byte_length: str  # length of a BLOB/BYTEA in bytes
    skip_locked: str  # suffix of a row-claiming SELECT ("" where the writer is already alone)
    unavailable: tuple[type[BaseException], ...] = ()  # driver errors that may mean "the engine is unreachable"
    down: Callable[[BaseException], bool] = lambda e: True  # … and which of them do
    conflict: tuple[type[BaseException], ...] = ()  # unique violations a concurrent writer can cause
    invalid: tuple[type[BaseException], ...] = ()  # a value the engine cannot hold (PostgreSQL: NUL in text)
    changelog: bool = False  # log each epoch's segment ids (stores several processes write)
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def sql(self, text: str) -> str:
        """The shared SQL (written with `?`) in this engine's placeholder style."""
        if self.placeholder == "?":
            return text
        out = self._cache.get(text)
        if out is None:
            out = self._cache[text] = text.replace("%", "%%").replace("?", self.placeholder)
        return out

    def load_json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, (str, bytes)) else value


class Session:
    """Every query of the catalogue and the job table, in the engine's dialect, over one connection (`conn`:
    a transaction's, or SQLite's per-thread reader) or over one borrowed per statement (`borrow`: a pool's)."""

    def __init__(self, conn: Any, dialect: Dialect, *,
                 borrow: Callable[[], AbstractContextManager[Any]] | None = None) -> None:
        self.conn, self.dialect, self._borrow = conn, dialect, borrow
        self.bumps: dict[str, int] = {}  # epochs advanced by this transaction, per space

    def _unavailable(self, e: BaseException) -> StoreUnavailableError:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return StoreUnavailableError(f"the catalogue's {self.dialect.name} store is unreachable ({first}); "
                                     "retry when it is back")

    @contextmanager
    def _engine_errors(self) -> Iterator[None]:
        """The engine's errors in the catalogue's family: a lost connection is a 503, a value it cannot hold a 400."""
        try:
            yield
        except self.dialect.unavailable as e:
            if not self.dialect.down(e):
                raise
            raise self._unavailable(e) from e
        except self.dialect.invalid as e:
            raise self._invalid(e) from e

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; the cursor holds its rows (drivers fetch them client-side)."""
        with self._engine_errors():
            if self._borrow is None:
                return self.conn.execute(self.dialect.sql(sql), params)
            with self._borrow() as conn:
                return conn.execute(self.dialect.sql(sql), params)

    def _invalid(self, e: BaseException) -> InvalidArgumentError:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return InvalidArgumentError(f"the {self.dialect.name} store cannot hold a value of this request ({first}); "
                                    "accepted: text without NUL characters, numbers within the engine's range")

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._engine_errors():
            if hasattr(self.conn, "executemany"):
                self.conn.executemany(self.dialect.sql(sql), rows)
            else:
                with self.conn.cursor() as cur:
                    cur.executemany(self.dialect.sql(sql), rows)

    # --- schema and meta -------------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        """All meta rows, JSON-decoded."""
        try:
            rows = self.execute("SELECT key, value FROM meta").fetchall()
        except StoreUnavailableError:
            raise
        except Exception as e:  # any driver's "no such table" or "not a database"
            raise CatalogCorruptError(f"cannot read the catalogue's meta table ({e}); "
                                      "accepted: a catalogue created by index.Catalog") from e
        return {k: json.loads(v) for k, v in rows}

    def init_meta(self, meta: Mapping[str, Any]) -> None:
        """Write the initial meta rows (a no-op for keys that already exist)."""
        self.executemany("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
                         [(k, json.dumps(v)) for k, v in {"schema": SCHEMA_VERSION, **meta}.items()])

    def set_meta(self, values: Mapping[str, Any]) -> None:
        """Upsert meta rows (call inside a transaction)."""
        self.executemany("INSERT INTO meta(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         [(k, json.dumps(v)) for k, v in values.items()])

    def bump(self, space: str, ids: np.ndarray, *, added: bool) -> None:
        """Advance a space's write epoch and adjust its vector count (inside the write's transaction). The epoch
        row stays locked until commit, so epochs are handed out in commit order; a store shared by processes
        also logs which segment ids each epoch added or removed, for caches to replay (`changes`)."""
        self.execute("UPDATE meta SET value = CAST(value AS BIGINT) + 1 WHERE key = ?", (f"epoch.{space}",))
        self.execute("UPDATE meta SET value = CAST(value AS BIGINT) + ? WHERE key = ?",
                     (len(ids) if added else -len(ids), f"count.{space}"))
        self.bumps[space] = self.bumps.get(space, 0) + 1
        if self.dialect.changelog:
            self.execute("INSERT INTO changes(space, epoch, added, ids) SELECT ?, CAST(value AS BIGINT), ?, ? "
                         "FROM meta WHERE key = ?", (space, added, np.asarray(ids, dtype="<i8").tobytes(),
                                                     f"epoch.{space}"))
            if self.bumps[space] == 1:  # once per transaction: forget what every cache has long replayed
                self.execute("DELETE FROM changes WHERE space = ? AND epoch < (SELECT CAST(value AS BIGINT) FROM meta "
                             "WHERE key = ?) - ?", (space, f"epoch.{space}", CHANGES_KEPT))

    def changes(self, space: str, after: int, upto: int) -> list[tuple[int, bool, np.ndarray]] | None:
        """(epoch, added?, segment ids) for each epoch in (after, upto], in order; None when the log no longer
        holds all of them (pruned, or a store that keeps none): the caller compares id sets instead."""
        if not self.dialect.changelog:
            return None
        rows = self.execute("SELECT epoch, added, ids FROM changes WHERE space = ? AND epoch > ? AND epoch <= ? "
                            "ORDER BY epoch", (space, after, upto)).fetchall()
        if len(rows) != upto - after:
            return None
        return [(int(e), bool(a), np.frombuffer(b, dtype="<i8").astype(np.int64)) for e, a, b in rows]

    def epochs(self, spaces: Iterable[str]) -> dict[str, int]:
        """Committed write epoch per space (one query: the cheap "has the store moved on?" check)."""
        spaces = list(spaces)
        rows = self.execute(f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(spaces))})",
                            [f"epoch.{s}" for s in spaces]).fetchall()
        found = {k[len("epoch."):]: int(json.loads(v)) for k, v in rows}
        return {s: found.get(s, 0) for s in spaces}

    # --- items -----------------------------------------------------------------------------------
    def _item(self, row: Sequence[Any]) -> Item:
        return Item(id=row[0], kind=row[1], source=row[2], sha256=row[3], duration=row[4],
                    metadata=MappingProxyType(self.dialect.load_json(row[5])), created=row[6],
                    spaces=tuple(s for s in row[7].split(",") if s), n_segments=row[8])

    def new_segment_ids(self, n: int) -> np.ndarray:
        """n fresh, never reused segment ids, ascending."""
        if self.dialect.name == "sqlite":
            row = self.execute("SELECT seq FROM sqlite_sequence WHERE name = 'segments'").fetchone()
            base = int(row[0]) if row else 0
            return np.arange(base + 1, base + 1 + n, dtype=np.int64)
        rows = self.execute("SELECT nextval(pg_get_serial_sequence('segments', 'id')) FROM generate_series(1, ?)",
                            (n,)).fetchall()
        return np.sort(np.fromiter((r[0] for r in rows), dtype=np.int64, count=n))

    def insert_item(self, *, item_id: str, kind: str, source: str, sha256: str, duration: float | None,
                    metadata_json: str, segments: np.ndarray, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        """Insert an item, its segments and vectors (inside a transaction); returns the new segment ids."""
        n = len(segments)
        self.execute(f"INSERT INTO items({ITEM_COLS}) VALUES (?, ?, ?, ?, ?, {self.dialect.json_param}, ?, ?, ?)",
                     (item_id, kind, source, sha256, duration, metadata_json, time.time(),
                      ",".join(sorted(vectors)), n))
        ids = self.new_segment_ids(n)
        self.executemany("INSERT INTO segments(id, item_id, start_s, end_s) VALUES (?, ?, ?, ?)",
                         [(int(i), item_id, float(s), float(e)) for i, (s, e) in zip(ids, segments)])
        for space in sorted(vectors):  # one order everywhere: concurrent writers never deadlock on meta rows
            x = np.ascontiguousarray(vectors[space], dtype="<f4")
            self.executemany("INSERT INTO vectors(segment_id, space, vec) VALUES (?, ?, ?)",
                             [(int(i), space, x[j].tobytes()) for j, i in enumerate(ids)])
            self.bump(space, ids, added=True)
        return ids

    def delete_item(self, item_id: str) -> dict[str, np.ndarray]:
        """Delete an item with its segments and vectors (inside a transaction); returns removed ids per space."""
        rows = self.execute("SELECT v.space, v.segment_id FROM vectors v JOIN segments s ON s.id = v.segment_id "
                            "WHERE s.item_id = ?", (item_id,)).fetchall()
        removed: dict[str, list[int]] = {}
        for space, sid in rows:
            removed.setdefault(space, []).append(sid)
        self.execute("DELETE FROM items WHERE id = ?", (item_id,))
        for space in sorted(removed):
            self.bump(space, np.asarray(removed[space], dtype=np.int64), added=False)
        return {s: np.asarray(ids, dtype=np.int64) for s, ids in removed.items()}

    def get_item(self, item_id: str) -> Item | None:
        row = self.execute(f"SELECT {ITEM_COLS} FROM items WHERE id = ?", (item_id,)).fetchone()
        return self._item(row) if row else None

    def get_items(self, ids: Iterable[str]) -> dict[str, Item]:
        """Items by id (missing ids are simply absent)."""
        ids = list(dict.fromkeys(ids))
        out: dict[str, Item] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for row in self.execute(f"SELECT {ITEM_COLS} FROM items WHERE id IN ({','.join('?' * len(chunk))})",
                                    chunk):
                out[row[0]] = self._item(row)
        return out

    def find_sha256(self, sha256: str) -> Item | None:
        row = self.execute(f"SELECT {ITEM_COLS} FROM items WHERE sha256 = ?", (sha256,)).fetchone()
        return self._item(row) if row else None

    def item_filter_sql(self, kinds: Sequence[str] | None, where: Mapping[str, Any] | None,
                        alias: str = "i") -> tuple[str, list[Any]]:
        """SQL condition on the items table for a kind list and a metadata filter."""
        sql, params = compile_where(where, column=f"{alias}.metadata", dialect=self.dialect.name)
        if kinds is not None:
            sql = f"{alias}.kind IN ({','.join('?' * len(kinds))}) AND ({sql})"
            params = [*kinds, *params]
        return sql, params

    def list_items(self, *, kinds: Sequence[str] | None, where: Mapping[str, Any] | None,
                   limit: int, offset: int, after: tuple[float, str] | None = None) -> list[Item]:
        cond, params = self.item_filter_sql(kinds, where)
        if after is not None:  # keyset paging: strictly after (created, id) in the listing's order
            cond, params = f"(i.created > ? OR (i.created = ? AND i.id > ?)) AND ({cond})", [after[0], *after, *params]
        cols = ", ".join("i." + c.strip() for c in ITEM_COLS.split(","))
        rows = self.execute(f"SELECT {cols} FROM items i WHERE {cond} ORDER BY i.created, i.id LIMIT ? OFFSET ?",
                            [*params, limit, offset]).fetchall()
        return [self._item(r) for r in rows]

    def count_items(self, *, kinds: Sequence[str] | None = None, where: Mapping[str, Any] | None = None) -> int:
        cond, params = self.item_filter_sql(kinds, where)
        return int(self.execute(f"SELECT COUNT(*) FROM items i WHERE {cond}", params).fetchone()[0])

    def update_metadata(self, item_id: str, metadata_json: str) -> None:
        self.execute(f"UPDATE items SET metadata = {self.dialect.json_param} WHERE id = ?", (metadata_json, item_id))

    # --- segments and vectors --------------------------------------------------------------------
    def item_segments(self, item_id: str) -> list[Segment]:
        rows = self.execute("SELECT id, item_id, start_s, end_s FROM segments WHERE item_id = ? ORDER BY id",
                            (item_id,)).fetchall()
        return [Segment(id=r[0], item_id=r[1], start=r[2], end=r[3]) for r in rows]

    def segment_rows(self, ids: Iterable[int]) -> dict[int, tuple[str, float, float]]:
        """segment id → (item id, start, end) for the ids that still exist."""
        ids = [int(i) for i in dict.fromkeys(ids)]
        out: dict[int, tuple[str, float, float]] = {}
        for i in range(0, len(ids), 900):
            chunk = ids[i:i + 900]
            for r in self.execute(f"SELECT id, item_id, start_s, end_s FROM segments WHERE id IN "
                                  f"({','.join('?' * len(chunk))})", chunk):
                out[r[0]] = (r[1], r[2], r[3])
        return out

    def segment_owners(self, ids: np.ndarray) -> tuple[list[str], list[str]]:
        """(item id, item kind) of each segment id, in the order given (what a vector index files them under)."""
        found: dict[int, tuple[str, str]] = {}
        ids = [int(i) for i in ids]
        for i in range(0, len(ids), 900):
            chunk = ids[i:i + 900]
            for r in self.execute(f"SELECT s.id, s.item_id, i.kind FROM segments s JOIN items i ON i.id = s.item_id "
                                  f"WHERE s.id IN ({','.join('?' * len(chunk))})", chunk).fetchall():
                found[r[0]] = (r[1], r[2])
        return [found[i][0] for i in ids], [found[i][1] for i in ids]

    def space_ids(self, space: str) -> np.ndarray:
        """All segment ids holding a vector in `space`, ascending."""
        rows = self.execute("SELECT segment_id FROM vectors WHERE space = ? ORDER BY segment_id", (space,)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def space_count(self, space: str) -> int:
        return int(self.execute("SELECT COUNT(*) FROM vectors WHERE space = ?", (space,)).fetchone()[0])

    def allowed_ids(self, space: str, kinds: Sequence[str] | None, where: Mapping[str, Any] | None) -> np.ndarray:
        """Segment ids in `space` whose item passes the kind and metadata filters.

        Driven from items (the filter is evaluated once per item, not per segment); relies on the
        add_item invariant that an item listing a space has a vector in it for every segment."""
        cond, params = self.item_filter_sql(kinds, where)
        rows = self.execute(f"WITH m AS MATERIALIZED (SELECT i.id FROM items i WHERE {self.dialect.has_space} "
                            f"AND {cond}) SELECT s.id FROM m {self.dialect.cross_join} segments s ON s.item_id = m.id",
                            [space, *params]).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def passing_items(self, item_ids: Iterable[str], kinds: Sequence[str] | None,
                      where: Mapping[str, Any] | None) -> set[str]:
        """The subset of `item_ids` that passes the kind and metadata filters (post-filtering)."""
        cond, params = self.item_filter_sql(kinds, where)
        ids = list(item_ids)
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = self.execute(f"SELECT i.id FROM items i WHERE i.id IN ({','.join('?' * len(chunk))}) AND {cond}",
                                [*chunk, *params])
            out.update(r[0] for r in rows)
        return out

    def iter_vectors(self, space: str, dim: int, ids: np.ndarray | None = None,
                     chunk: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream (ids [m], vectors [m, dim]) for a space, optionally only for the given ids."""
        def pack(rows: list[Any]) -> tuple[np.ndarray, np.ndarray]:
            sids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            x = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
            return sids, x.astype(np.float32, copy=False)

        if ids is None:
            last = -1
            while True:
                rows = self.execute("SELECT segment_id, vec FROM vectors WHERE space = ? AND segment_id > ? "
                                    "ORDER BY segment_id LIMIT ?", (space, last, chunk)).fetchall()
                if not rows:
                    return
                last = rows[-1][0]
                yield pack(rows)
        else:
            ids = np.asarray(ids, dtype=np.int64)
            for i in range(0, len(ids), 900):
                part = [int(v) for v in ids[i:i + 900]]
                rows = self.execute(f"SELECT segment_id, vec FROM vectors WHERE space = ? AND segment_id IN "
                                    f"({','.join('?' * len(part))})", [space, *part]).fetchall()
                if rows:
                    yield pack(rows)

    def item_vectors(self, item_id: str, space: str, dim: int) -> tuple[list[Segment], np.ndarray]:
        """An item's segments that hold a vector in `space`, with those vectors [n, dim]."""
        rows = self.execute("SELECT s.id, s.item_id, s.start_s, s.end_s, v.vec FROM segments s JOIN vectors v "
                            "ON v.segment_id = s.id AND v.space = ? WHERE s.item_id = ? ORDER BY s.id",
                            (space, item_id)).fetchall()
        segs = [Segment(id=r[0], item_id=r[1], start=r[2], end=r[3]) for r in rows]
        x = np.frombuffer(b"".join(r[4] for r in rows), dtype="<f4").reshape(len(rows), dim)
        return segs, x.astype(np.float32)

    def sample_vectors(self, space: str, dim: int, m: int) -> np.ndarray:
        """m vectors of a space drawn at random (training data for IVF-PQ)."""
        rows = self.execute("SELECT vec FROM vectors WHERE space = ? AND segment_id IN "
                            "(SELECT segment_id FROM vectors WHERE space = ? ORDER BY random() LIMIT ?)",
                            (space, space, m)).fetchall()
        x = np.frombuffer(b"".join(r[0] for r in rows), dtype="<f4").reshape(len(rows), dim)
        return x.astype(np.float32)

    def kind_counts(self) -> dict[str, int]:
        return {k: int(n) for k, n in self.execute("SELECT kind, COUNT(*) FROM items GROUP BY kind").fetchall()}

    def segment_count(self) -> int:
        return int(self.execute("SELECT COUNT(*) FROM segments").fetchone()[0])


class Store(ABC):
    """The truth behind a catalogue. Subclasses open connections; the queries live in `Session`."""

    dialect: Dialect
    shared: bool = False  # other processes may write it too: vector caches catch up before they answer
    readonly: bool = False
    location: str = ""  # for messages: a directory or a DSN without its password

    @abstractmethod
    def reader(self) -> Session:
        """This thread's session outside any transaction (sees the last committed state)."""
        ...

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Session]:
        """A write transaction, committed on exit and rolled back on any exception."""
        ...

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[Session]:
        """A read-only transaction whose queries all see one committed state."""
        ...

    @abstractmethod
    def has_table(self, name: str) -> bool:
        ...

    def integrity_problems(self) -> list[str]:
        """The engine's own consistency checks (SQLite: quick_check and foreign keys)."""
        return []

    @abstractmethod
    def size_bytes(self) -> int:
        ...

    @abstractmethod
    def close(self) -> None:
        ...
