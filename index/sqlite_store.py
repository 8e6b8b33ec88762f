"""SQLite store: the embedded default, one file per catalogue directory, one writer process.

WAL mode with synchronous=FULL: a committed write survives SIGKILL and power loss, readers never
block the writer. Segment ids are AUTOINCREMENT rowids, never reused. One writer connection used
under a lock (BEGIN IMMEDIATE), one read connection per thread.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .cues import SQLITE_TOKENIZERS
from .errors import CatalogError, InvalidArgumentError, ReadOnlyError
from .store import Dialect, Session, Store

DB_NAME = "catalog.sqlite"

DDL = """
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
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    path TEXT,                      -- the media file the job embeds
    sha256 TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    note TEXT,                      -- e.g. why the metadata of a duplicate upload was not applied
    owner TEXT,                     -- the worker running it
    lease_until REAL                -- re-queued by anyone after this (its owner died)
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created);
"""



def sqlite_cue_ddl(language: str) -> list[str]:
    """Transcript cues and their FTS5 index (external content, kept by triggers; porter stems English)."""
    tokenizer = SQLITE_TOKENIZERS.get(language)
    if tokenizer is None:
        raise InvalidArgumentError(f"text language {language!r} has no SQLite FTS5 tokenizer; accepted: "
                                   f"{', '.join(SQLITE_TOKENIZERS)} (PostgreSQL stores take any configuration)")
    return [
        """CREATE TABLE IF NOT EXISTS cues (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            item_id TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            start_s REAL NOT NULL,
            end_s REAL NOT NULL CHECK (end_s >= start_s),
            text TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS cues_item ON cues(item_id, start_s)",
        f"CREATE VIRTUAL TABLE IF NOT EXISTS cues_fts USING fts5(text, content='cues', content_rowid='id', "
        f"tokenize='{tokenizer}')",
        "CREATE TRIGGER IF NOT EXISTS cues_ai AFTER INSERT ON cues BEGIN "
        "INSERT INTO cues_fts(rowid, text) VALUES (new.id, new.text); END",
        "CREATE TRIGGER IF NOT EXISTS cues_ad AFTER DELETE ON cues BEGIN "
        "INSERT INTO cues_fts(cues_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
        "CREATE TRIGGER IF NOT EXISTS cues_au AFTER UPDATE ON cues BEGIN "
        "INSERT INTO cues_fts(cues_fts, rowid, text) VALUES ('delete', old.id, old.text); "
        "INSERT INTO cues_fts(rowid, text) VALUES (new.id, new.text); END",
    ]


SQLITE = Dialect(name="sqlite", placeholder="?", json_param="?", cross_join="CROSS JOIN",
                 has_space="instr(',' || i.spaces || ',', ',' || ? || ',') > 0", byte_length="length",
                 skip_locked="",
                 # the single writer draws past AUTOINCREMENT's high-water mark (its inserts then move it)
                 segment_ids="WITH RECURSIVE r(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM r WHERE k < ?) "
                             "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'segments'), 0) + k FROM r")


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


class SqliteStore(Store):
    """`catalog.sqlite` in a catalogue directory (the caller holds the directory's writer flock)."""

    dialect = SQLITE
    shared = False

    def __init__(self, directory: Path, *, readonly: bool) -> None:
        self.db = Path(directory) / DB_NAME
        self.location = str(directory)
        self.readonly = readonly
        if readonly and not self.db.exists():
            raise CatalogError(f"no catalogue at {directory} (missing {DB_NAME}); "
                               "accepted: a directory created by index.Catalog")
        self._writer = None if readonly else connect(self.db, readonly=False)
        self._lock = threading.RLock()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        if self._writer is not None:
            self._writer.executescript(DDL)  # idempotent; the caller holds the cross-process writer lock
            self._migrate(self._writer)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Job leases came after the first release: add their columns to older databases."""
        cols = {r[1] for r in conn.execute("PRAGMA table_info(jobs)")}
        for col, typ in (("owner", "TEXT"), ("lease_until", "REAL")):
            if col not in cols:
                conn.execute(f"ALTER TABLE jobs ADD COLUMN {col} {typ}")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.db, readonly=True)
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def reader(self) -> Session:
        return Session(self._conn(), SQLITE)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        if self._writer is None:
            raise ReadOnlyError(f"catalogue {self.location} was opened readonly; open it without readonly=True "
                                "to write")
        with self._lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield Session(self._writer, SQLITE)
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield Session(conn, SQLITE)
        finally:
            conn.execute("COMMIT")

    def has_table(self, name: str) -> bool:
        return self._conn().execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None

    def integrity_problems(self) -> list[str]:
        conn = self._conn()
        problems = []
        rows = conn.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            problems.extend(f"sqlite: {r[0]}" for r in rows[:10])
        for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check").fetchall()[:10]:
            problems.append(f"sqlite: {table} row {rowid} points to a missing {parent} row")
        return problems

    def cue_ddl(self, language: str) -> list[str]:
        return sqlite_cue_ddl(language)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.db, self.db.with_name(self.db.name + "-wal")) if p.exists())

    def close(self) -> None:
        with self._guard:
            for c in self._all:
                c.close()
            self._all.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def backup(self, dest: Path) -> None:
        """SQLite's online backup API in one step (one read transaction: one committed state), under the writer
        lock so no write of this process waits half-copied; readers are never blocked."""
        target = sqlite3.connect(dest)
        try:
            with self._lock:
                (self._writer or self._conn()).backup(target)
        finally:
            target.close()
