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
from types import MappingProxyType
from typing import Any, Iterator, Sequence

from .cues import SQLITE_TOKENIZERS
from .errors import CatalogError, InvalidArgumentError, ReadOnlyError
from .store import Dialect, Session, Store

DB_NAME = "catalog.sqlite"


def _fts5(language: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The cues' FTS5 index (external content, kept by triggers; porter stems English): no column of the cue
    table, a virtual table and three triggers."""
    tokenizer = SQLITE_TOKENIZERS.get(language)
    if tokenizer is None:
        raise InvalidArgumentError(f"text language {language!r} has no SQLite FTS5 tokenizer; accepted: "
                                   f"{', '.join(SQLITE_TOKENIZERS)} (PostgreSQL stores take any configuration)")
    return (), (
        f"CREATE VIRTUAL TABLE IF NOT EXISTS cues_fts USING fts5(text, content='cues', content_rowid='id', "
        f"tokenize='{tokenizer}')",
        "CREATE TRIGGER IF NOT EXISTS cues_ai AFTER INSERT ON cues BEGIN "
        "INSERT INTO cues_fts(rowid, text) VALUES (new.id, new.text); END",
        "CREATE TRIGGER IF NOT EXISTS cues_ad AFTER DELETE ON cues BEGIN "
        "INSERT INTO cues_fts(cues_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
        "CREATE TRIGGER IF NOT EXISTS cues_au AFTER UPDATE ON cues BEGIN "
        "INSERT INTO cues_fts(cues_fts, rowid, text) VALUES ('delete', old.id, old.text); "
        "INSERT INTO cues_fts(rowid, text) VALUES (new.id, new.text); END",
    )


def _phrases(words: Sequence[str], language: str) -> list[Any]:
    """FTS5 MATCH of every word, each quoted as a phrase (the language is the table's tokenizer)."""
    return [" ".join('"' + w.replace('"', '""') + '"' for w in words)]


SQLITE = Dialect(name="sqlite", placeholder="?", json_param="?", cross_join="CROSS JOIN",
                 has_space="instr(',' || i.spaces || ',', ',' || ? || ',') > 0", byte_length="length",
                 skip_locked="",
                 # the single writer draws past AUTOINCREMENT's high-water mark (its inserts then move it)
                 segment_ids="WITH RECURSIVE r(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM r WHERE k < ?) "
                             "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'segments'), 0) + k FROM r",
                 types=MappingProxyType({"text": "TEXT", "real": "REAL", "int": "INTEGER", "bigint": "INTEGER",
                                         "bytes": "BLOB", "bool": "INTEGER", "json": "TEXT",
                                         "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"}),
                 type_checks=MappingProxyType({"json": "CHECK (json_valid({name}))"}),
                 columns_of="SELECT name FROM pragma_table_info(?)",
                 table_exists="SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = ?)",
                 fulltext=_fts5,
                 keyword_search="SELECT c.id, c.item_id, c.start_s, c.end_s, highlight(cues_fts, 0, char(2), char(3)), "
                                "-bm25(cues_fts) FROM cues_fts JOIN cues c ON c.id = cues_fts.rowid "
                                "JOIN items i ON i.id = c.item_id WHERE cues_fts MATCH ? AND ({cond}) "
                                "ORDER BY bm25(cues_fts), c.id LIMIT ?",
                 keyword_args=_phrases,
                 # the FTS5 index is a table of its own, kept by triggers: check that it follows the cues
                 fulltext_checks=(
                     ("SELECT COUNT(*) FROM cues_fts_docsize d LEFT JOIN cues c ON c.id = d.id WHERE c.id IS NULL",
                      "{n} full-text rows (cues_fts) belong to no cue"),
                     ("SELECT COUNT(*) FROM cues c LEFT JOIN cues_fts_docsize d ON d.id = c.id WHERE d.id IS NULL",
                      "{n} cues are missing from the full-text index (cues_fts)")))


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
            with self.transaction() as tx:  # idempotent; the caller holds the cross-process writer lock
                tx.create_schema()

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

    def integrity_problems(self) -> list[str]:
        conn = self._conn()
        problems = []
        rows = conn.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            problems.extend(f"sqlite: {r[0]}" for r in rows[:10])
        for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check").fetchall()[:10]:
            problems.append(f"sqlite: {table} row {rowid} points to a missing {parent} row")
        return problems

    def sizes(self) -> dict[str, int]:
        size = self.size_bytes()
        return {"store_bytes": size, "sqlite_bytes": size}  # sqlite_bytes: the name before PostgreSQL stores came

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
