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
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .errors import CatalogCorruptError, CatalogError, InvalidArgumentError, StoreUnavailableError
from .filters import compile_where
from .schema import CHANGES, CUES, SCHEMA_VERSION, TABLES, Column, Table
from .types import Item, Segment

CHANGES_KEPT = 100_000  # epochs of changes a shared store keeps per space; a cache further behind compares id sets
ITEM_COLS = "id, kind, source, sha256, duration, metadata, created, spaces, n_segments"
JOB_COLS = ("id, item_id, source, status, done, total, error, created, started, finished, path, sha256, metadata, "
            "note, owner, lease_until")
IN_CHUNK = 500  # values per `IN (…)` list: well under SQLite's bound-parameter limit, with room for a filter's


def first_line(e: BaseException) -> str:
    """What a driver's error says, in one line (its class when it says nothing), for the catalogue's messages."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL engines; the queries and the tables (index/schema.py) themselves are shared."""

    name: str  # "sqlite" or "postgresql" (also the filter dialect)
    placeholder: str  # "?" or "%s"
    json_param: str  # how a metadata JSON text is bound ("?" or "CAST(? AS jsonb)")
    cross_join: str  # SQLite's CROSS JOIN fixes the loop order; PostgreSQL plans it itself
    has_space: str  # condition: item i lists the space bound as the parameter
    byte_length: str  # length of a BLOB/BYTEA in bytes
    skip_locked: str  # suffix of a row-claiming SELECT ("" where the writer is already alone)
    segment_ids: str  # n (the one parameter) fresh, never reused segment ids, one per row
    unavailable: tuple[type[BaseException], ...] = ()  # driver errors that may mean "the engine is unreachable"
    down: Callable[[BaseException], bool] = lambda e: True  # … and which of them do
    conflict: tuple[type[BaseException], ...] = ()  # unique violations a concurrent writer can cause
    invalid: tuple[type[BaseException], ...] = ()  # a value the engine cannot hold (PostgreSQL: NUL in text)
    changelog: bool = False  # log each epoch's segment ids (stores several processes write)
    for_update: str = ""  # suffix of a read that a write in the same transaction depends on (a row lock)
    # --- the schema: index/schema.py's portable column types in this engine, and what reads a table's columns
    types: Mapping[str, str] = field(default_factory=dict)
    type_checks: Mapping[str, str] = field(default_factory=dict)  # a CHECK a type adds to its column ({name})
    columns_of: str = ""  # the one parameter's table: its column names
    table_exists: str = ""  # one row, true when the one parameter names a table
    schema_lock: str = ""  # run first in the schema's transaction (replicas starting together create it once)
    # --- transcripts: the engine's full-text index on the cue table, and keyword search through it
    fulltext: Callable[[str], tuple[tuple[str, ...], tuple[str, ...]]] | None = None  # language -> (columns, DDL)
    keyword_search: str = ""  # cues holding all words: {cond} the item filter; parameters: keyword_args, its, LIMIT
    keyword_args: Callable[[Sequence[str], str], list[Any]] = lambda words, language: []
    fulltext_checks: tuple[tuple[str, str], ...] = ()  # (a COUNT(*) of broken full-text rows, its message with {n})
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

    def column(self, column: Column) -> str:
        """A column's definition in this engine."""
        check = self.type_checks.get(column.type, "").format(name=column.name)
        return " ".join(p for p in (column.name, self.types[column.type], column.constraints, check) if p)

    def create(self, table: Table, *, extra: Sequence[str] = ()) -> list[str]:
        """CREATE statements (idempotent) of a declared table, with `extra` column definitions, and its indexes."""
        parts = [self.column(c) for c in table.columns] + list(extra) + ([table.key] if table.key else [])
        return [f"CREATE TABLE IF NOT EXISTS {table.name} ({', '.join(parts)})",
                *(f"CREATE INDEX IF NOT EXISTS {name} ON {table.name}({cols})" for name, cols in table.indexes)]


class Session:
    """Every query of the catalogue and the job table, in the engine's dialect, over one connection (`conn`:
    a transaction's, or SQLite's per-thread reader) or over one borrowed per statement (`borrow`: a pool's)."""

    def __init__(self, conn: Any, dialect: Dialect, *,
                 borrow: Callable[[], AbstractContextManager[Any]] | None = None) -> None:
        self.conn, self.dialect, self._borrow = conn, dialect, borrow
        self.bumps: dict[str, int] = {}  # epochs advanced by this transaction, per space

    def _unavailable(self, e: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(f"the catalogue's {self.dialect.name} store is unreachable ({first_line(e)}); "
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
        return InvalidArgumentError(f"the {self.dialect.name} store cannot hold a value of this request "
                                    f"({first_line(e)}); accepted: text without NUL characters, numbers within "
                                    "the engine's range")

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._engine_errors():
            if hasattr(self.conn, "executemany"):
                self.conn.executemany(self.dialect.sql(sql), rows)
            else:
                with self.conn.cursor() as cur:
                    cur.executemany(self.dialect.sql(sql), rows)

    def _in_chunks(self, sql: str, values: Sequence[Any], *, before: Sequence[Any] = (),
                   after: Sequence[Any] = ()) -> Iterator[Any]:
        """Rows of `sql` whose `IN (*)` takes `values`, run IN_CHUNK values at a time (the one chunked query)."""
        values = list(values)
        for i in range(0, len(values), IN_CHUNK):
            part = values[i:i + IN_CHUNK]
            yield from self.execute(sql.replace("IN (*)", f"IN ({','.join('?' * len(part))})"),
                                    [*before, *part, *after]).fetchall()

    # --- schema and meta -------------------------------------------------------------------------
    def has_table(self, name: str) -> bool:
        return bool(self.execute(self.dialect.table_exists, (name,)).fetchone()[0])

    def create_schema(self) -> None:
        """Create the catalogue's tables where missing (inside a transaction), and give an older database the
        columns added since its release."""
        if self.dialect.schema_lock:
            self.execute(self.dialect.schema_lock)
        for table in (*TABLES, CHANGES) if self.dialect.changelog else TABLES:
            create, *indexes = self.dialect.create(table)
            self.execute(create)
            added = [c for c in table.columns if c.added]
            if added:
                have = {r[0] for r in self.execute(self.dialect.columns_of, (table.name,)).fetchall()}
                for column in added:
                    if column.name not in have:
                        self.execute(f"ALTER TABLE {table.name} ADD COLUMN {self.dialect.column(column)}")
            for statement in indexes:
                self.execute(statement)

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
        found = self._space_meta("epoch", spaces)
        return {s: int(found.get(s, 0)) for s in spaces}

    def _space_meta(self, prefix: str, spaces: Iterable[str]) -> dict[str, Any]:
        """The meta rows `<prefix>.<space>` of these spaces, JSON-decoded, by space (a space without one is absent)."""
        rows = self._in_chunks("SELECT key, value FROM meta WHERE key IN (*)", [f"{prefix}.{s}" for s in spaces])
        return {k[len(prefix) + 1:]: json.loads(v) for k, v in rows}

    def mark_behind(self, space: str, token: str) -> None:
        """Record that a committed write of `space` missed a shared vector engine (one row per space, any
        replica sees it); `token` names this mark, so a catch-up clears only the mark it saw."""
        self.set_meta({f"behind.{space}": token})

    def behind(self, spaces: Iterable[str]) -> dict[str, str]:
        """The marks left by `mark_behind`, per space that has one (one read: done before each search)."""
        return self._space_meta("behind", spaces)

    def clear_behind(self, space: str, token: str) -> None:
        """Remove the mark `token` once the engine was caught up (a newer mark, set meanwhile, stays)."""
        self.execute("DELETE FROM meta WHERE key = ? AND value = ?", (f"behind.{space}", json.dumps(token)))

    def note_engine_ts(self, space: str, ts: int) -> None:
        """Record that the shared vector engine took a write of `space` stamped `ts` on the engine's own clock
        (Milvus: the mutation's hybrid timestamp). The row only ever grows, so concurrent replicas leave the
        largest; a search on any replica asks the engine for everything up to it (read-your-writes, no tick)."""
        self.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value "
                     "WHERE CAST(meta.value AS BIGINT) < CAST(excluded.value AS BIGINT)",
                     (f"engine_ts.{space}", json.dumps(int(ts))))

    def engine_ts(self, space: str) -> int | None:
        """The largest engine timestamp `note_engine_ts` recorded for `space` (None: none recorded yet)."""
        row = self.execute("SELECT value FROM meta WHERE key = ?", (f"engine_ts.{space}",)).fetchone()
        return None if row is None else int(json.loads(row[0]))

    # --- items -----------------------------------------------------------------------------------
    def _item(self, row: Sequence[Any]) -> Item:
        return Item(id=row[0], kind=row[1], source=row[2], sha256=row[3], duration=row[4],
                    metadata=MappingProxyType(self.dialect.load_json(row[5])), created=row[6],
                    spaces=tuple(s for s in row[7].split(",") if s), n_segments=row[8])

    def new_segment_ids(self, n: int) -> np.ndarray:
        """n fresh, never reused segment ids, ascending."""
        rows = self.execute(self.dialect.segment_ids, (n,)).fetchall()
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

    def get_item(self, item_id: str, *, for_update: bool = False) -> Item | None:
        """The item; `for_update` locks its row until the transaction ends (a read-merge-write, such as a
        metadata patch, must not lose another replica's concurrent write)."""
        lock = self.dialect.for_update if for_update else ""
        row = self.execute(f"SELECT {ITEM_COLS} FROM items WHERE id = ?{lock}", (item_id,)).fetchone()
        return self._item(row) if row else None

    def get_items(self, ids: Iterable[str]) -> dict[str, Item]:
        """Items by id (missing ids are simply absent)."""
        rows = self._in_chunks(f"SELECT {ITEM_COLS} FROM items WHERE id IN (*)", list(dict.fromkeys(ids)))
        return {row[0]: self._item(row) for row in rows}

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
        rows = self._in_chunks("SELECT id, item_id, start_s, end_s FROM segments WHERE id IN (*)",
                               [int(i) for i in dict.fromkeys(ids)])
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def segment_owners(self, ids: np.ndarray) -> tuple[list[str], list[str]]:
        """(item id, item kind) of each segment id, in the order given (what a vector index files them under)."""
        ids = [int(i) for i in ids]
        found = {r[0]: (r[1], r[2]) for r in self._in_chunks(
            "SELECT s.id, s.item_id, i.kind FROM segments s JOIN items i ON i.id = s.item_id WHERE s.id IN (*)", ids)}
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
        return {r[0] for r in self._in_chunks(f"SELECT i.id FROM items i WHERE i.id IN (*) AND {cond}", list(item_ids),
                                              after=params)}

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
            ids = [int(v) for v in np.asarray(ids, dtype=np.int64)]
            for i in range(0, len(ids), IN_CHUNK):  # one pack per chunk: the callers stream them
                rows = list(self._in_chunks("SELECT segment_id, vec FROM vectors WHERE space = ? AND segment_id IN (*)",
                                            ids[i:i + IN_CHUNK], before=[space]))
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

    # --- consistency checks (index/_consistency.py compares what these return) ----------------------
    def has_schema(self) -> bool:
        """Whether the meta table holds a catalogue (its schema row)."""
        return self.execute("SELECT 1 FROM meta WHERE key = 'schema'").fetchone() is not None

    def vectors_outside(self, spaces: Sequence[str]) -> list[tuple[str, int]]:
        """(space, rows) of vectors filed under a space the catalogue does not have."""
        return self.execute(f"SELECT space, COUNT(*) FROM vectors WHERE space NOT IN ({','.join('?' * len(spaces))}) "
                            "GROUP BY space", list(spaces)).fetchall()

    def items_without_segments(self) -> list[str]:
        return [r[0] for r in self.execute(
            "SELECT id FROM items i WHERE NOT EXISTS (SELECT 1 FROM segments s WHERE s.item_id = i.id)").fetchall()]

    def segments_without_vectors(self) -> list[int]:
        return [r[0] for r in self.execute(
            "SELECT id FROM segments s WHERE NOT EXISTS (SELECT 1 FROM vectors v WHERE v.segment_id = s.id)"
        ).fetchall()]

    def item_shapes(self) -> list[tuple[str, int, str, int, set[str]]]:
        """Per item: (id, n_segments and spaces as recorded, segments and spaces as its rows say)."""
        n_seg = dict(self.execute("SELECT item_id, COUNT(*) FROM segments GROUP BY item_id").fetchall())
        spaces: dict[str, set[str]] = {}
        for item_id, space in self.execute("SELECT DISTINCT s.item_id, v.space FROM vectors v "
                                           "JOIN segments s ON s.id = v.segment_id").fetchall():
            spaces.setdefault(item_id, set()).add(space)
        return [(i, n, sp, int(n_seg.get(i, 0)), spaces.get(i, set()))
                for i, n, sp in self.execute("SELECT id, n_segments, spaces FROM items").fetchall()]

    def item_count(self) -> int:
        return int(self.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def misshapen_vectors(self, space: str, dim: int) -> int:
        """Vectors of `space` whose bytes are not `dim` float32 values."""
        return int(self.execute(f"SELECT COUNT(*) FROM vectors WHERE space = ? AND {self.dialect.byte_length}(vec) "
                                "!= ?", (space, 4 * dim)).fetchone()[0])

    # --- ingest jobs (index/jobs.py gives them meaning; the statements live here) ------------------
    def insert_job(self, values: Sequence[Any]) -> None:
        """One job row: JOB_COLS in order, less owner and lease_until (a new job has neither)."""
        self.execute(f"INSERT INTO jobs({JOB_COLS}) VALUES ({', '.join('?' * (len(values)))}, NULL, NULL)", values)

    def job(self, job_id: str) -> tuple | None:
        return self.execute(f"SELECT {JOB_COLS} FROM jobs WHERE id = ?", (job_id,)).fetchone()

    def jobs_page(self, status: str | None, limit: int, offset: int, *,
                  after: tuple[float, str] | None = None) -> tuple[list[tuple], int]:
        """A page of job rows, newest first (strictly after the (created, id) keyset `after` when given), and
        how many match."""
        cond, params = ("status = ?", [status]) if status else ("1=1", [])
        page_cond, page_params = cond, params
        if after is not None:
            page_cond, page_params = f"(created < ? OR (created = ? AND id > ?)) AND {cond}", [after[0], *after, *params]
        rows = self.execute(f"SELECT {JOB_COLS} FROM jobs WHERE {page_cond} ORDER BY created DESC, id LIMIT ? OFFSET ?",
                            [*page_params, limit, offset]).fetchall()
        return rows, int(self.execute(f"SELECT COUNT(*) FROM jobs WHERE {cond}", params).fetchone()[0])

    def active_jobs(self) -> list[tuple]:
        """Queued and running job rows, oldest first."""
        return self.execute(f"SELECT {JOB_COLS} FROM jobs WHERE status IN ('queued', 'running') "
                            "ORDER BY created, id").fetchall()

    def any_queued_job(self) -> bool:
        return self.execute("SELECT 1 FROM jobs WHERE status = 'queued' LIMIT 1").fetchone() is not None

    def claim_job(self, owner: str, now: float, lease_until: float) -> tuple | None:
        """The oldest queued job -> running for `owner` (SKIP LOCKED where replicas race for it)."""
        return self.execute(f"UPDATE jobs SET status = 'running', started = ?, owner = ?, lease_until = ? "
                            f"WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY created, id LIMIT 1"
                            f"{self.dialect.skip_locked}) AND status = 'queued' RETURNING {JOB_COLS}",
                            (now, owner, lease_until)).fetchone()

    def requeue_jobs(self, *, job_id: str | None = None, owner: str | None = None,
                     lease_before: float | None = None) -> int:
        """Jobs back to queued, to run again from the start: one job (given `job_id`, while still `owner`'s when
        given), or every running job whose lease ran out before `lease_before`. Returns how many."""
        return self.execute("UPDATE jobs SET status = 'queued', done = 0, started = NULL, owner = NULL, "
                            "lease_until = NULL WHERE (id = ? AND status IN ('queued', 'running') "
                            "AND (CAST(? AS TEXT) IS NULL OR owner = ?)) "
                            "OR (status = 'running' AND lease_until < ?)",
                            (job_id, owner, owner, lease_before)).rowcount

    def job_progress(self, job_id: str, done: int, total: int, lease_until: float, owner: str | None) -> bool:
        return self.execute("UPDATE jobs SET done = ?, total = ?, lease_until = ? WHERE id = ? AND status = 'running' "
                            "AND (CAST(? AS TEXT) IS NULL OR owner = ?)",
                            (done, total, lease_until, job_id, owner, owner)).rowcount == 1

    def end_job(self, job_id: str, status: str, *, finished: float, owner: str | None = None, error: str | None = None,
                item_id: str | None = None, total: int | None = None, note: str | None = None) -> bool:
        """A queued/running job -> done, failed or cancelled (given `owner`, only while it is that owner's);
        done also records its item and its total; False when it had ended or is another owner's."""
        return self.execute("UPDATE jobs SET status = ?, error = COALESCE(?, error), finished = ?, "
                            "item_id = COALESCE(?, item_id), done = COALESCE(?, done), total = COALESCE(?, total), "
                            "note = COALESCE(?, note), lease_until = NULL WHERE id = ? "
                            "AND status IN ('queued', 'running') AND (CAST(? AS TEXT) IS NULL OR owner = ?)",
                            (status, error, finished, item_id, total, total, note, job_id, owner, owner)).rowcount == 1

    def expire_jobs(self, ended_before: float) -> int:
        """Delete jobs that ended before this time; returns how many."""
        return self.execute("DELETE FROM jobs WHERE status NOT IN ('queued', 'running') AND finished < ?",
                            (ended_before,)).rowcount

    def job_counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()}
    # --- transcripts: cues and their full-text index (issue 27) ----------------------------------
    # The cue table follows its item (ON DELETE CASCADE); the engine's full-text index follows the cue table
    # (SQLite: FTS5 external-content table kept by triggers; PostgreSQL: a generated tsvector column + GIN).
    def set_cues(self, item_id: str, cues: Sequence[tuple[float, float, str]]) -> None:
        """Replace an item's transcript (inside a transaction)."""
        self.execute("DELETE FROM cues WHERE item_id = ?", (item_id,))
        if cues:
            self.executemany("INSERT INTO cues(item_id, start_s, end_s, text) VALUES (?, ?, ?, ?)",
                             [(item_id, float(s), float(e), t) for s, e, t in cues])

    def item_cues(self, item_id: str) -> list[tuple[float, float, str]]:
        rows = self.execute("SELECT start_s, end_s, text FROM cues WHERE item_id = ? ORDER BY start_s, end_s, id",
                            (item_id,)).fetchall()
        return [(float(r[0]), float(r[1]), r[2]) for r in rows]

    def cue_count(self) -> int:
        return int(self.execute("SELECT COUNT(*) FROM cues").fetchone()[0])

    def keyword_cues(self, words: Sequence[str], language: str, *, limit: int, kinds: Sequence[str] | None,
                     where: Mapping[str, Any] | None) -> list[tuple[int, str, float, float, str, float]]:
        """(cue id, item id, start, end, text with matches between \x02 and \x03, score: higher is better) of the
        cues holding every word, best first, on the engine's own full-text index."""
        if not words:
            return []
        cond, params = self.item_filter_sql(kinds, where)
        rows = self.execute(self.dialect.keyword_search.format(cond=cond),
                            [*self.dialect.keyword_args(words, language), *params, limit]).fetchall()
        return [(int(r[0]), r[1], float(r[2]), float(r[3]), r[4], float(r[5])) for r in rows]

    def segments_of(self, item_ids: Iterable[str]) -> dict[str, list[Segment]]:
        """Each item's segments in time order (to map cue spans onto moments)."""
        ids = list(dict.fromkeys(item_ids))
        out: dict[str, list[Segment]] = {i: [] for i in ids}
        for r in self._in_chunks("SELECT id, item_id, start_s, end_s FROM segments WHERE item_id IN (*) "
                                 "ORDER BY start_s, id", ids):
            out[r[1]].append(Segment(id=r[0], item_id=r[1], start=r[2], end=r[3]))
        return out

    def cue_problems(self) -> list[str]:
        """Cues whose item is gone, and (where the engine keeps the full-text index apart: SQLite) full-text rows
        whose cue is gone or cues missing from it."""
        problems = []
        n = int(self.execute("SELECT COUNT(*) FROM cues c LEFT JOIN items i ON i.id = c.item_id "
                             "WHERE i.id IS NULL").fetchone()[0])
        if n:
            problems.append(f"{n} transcript cues belong to no item")
        for count, message in self.dialect.fulltext_checks:
            n = int(self.execute(count).fetchone()[0])
            if n:
                problems.append(message.format(n=n))
        return problems


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

    def has_table(self, name: str) -> bool:
        return self.reader().has_table(name)

    def integrity_problems(self) -> list[str]:
        """The engine's own consistency checks (SQLite: quick_check and foreign keys)."""
        return []

    def cue_ddl(self, language: str) -> list[str]:
        """Statements creating the transcript tables and their full-text index for `language` (idempotent)."""
        if self.dialect.fulltext is None:
            raise NotImplementedError(f"the {self.dialect.name} store keeps no transcripts")
        columns, statements = self.dialect.fulltext(language)
        return [*self.dialect.create(CUES, extra=columns), *statements]

    def sizes(self) -> dict[str, int]:
        """The store's size in bytes, under the names `stats` reports it."""
        return {"store_bytes": self.size_bytes()}

    @abstractmethod
    def size_bytes(self) -> int:
        ...

    def backup(self, dest: Path) -> None:
        """Write the store as committed now into the file `dest` while it keeps serving (a snapshot's copy).

        Only the embedded store can: a shared store is backed up by its engine's own tools."""
        raise CatalogError(f"the {self.dialect.name} store is not copied by vatt snapshots; back it up with its "
                           "engine's own tools (PostgreSQL: pg_dump)")

    @abstractmethod
    def close(self) -> None:
        ...
