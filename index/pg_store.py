"""PostgreSQL store: the same tables and queries as SQLite, for catalogues several processes write.

Transactions replace SQLite's single-writer lock: segment ids come from a sequence (never reused,
never colliding between writers), each write bumps its spaces' epochs inside its transaction
(the meta rows are locked in one order, so writers never deadlock), and metadata is JSONB, filtered
by the same `where` language. One connection per thread (autocommit outside explicit transactions);
a connection that fails is dropped and the next call reconnects, so a server that went away gives
`StoreUnavailableError` (503 in the service) and the catalogue recovers when it is back.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from typing import Iterator

import psycopg

from .errors import ReadOnlyError, StoreUnavailableError
from .store import Dialect, Session, Store

DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS items (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('video', 'audio', 'text')),
        source TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE,
        duration DOUBLE PRECISION,
        metadata JSONB NOT NULL DEFAULT '{}',
        created DOUBLE PRECISION NOT NULL,
        spaces TEXT NOT NULL,
        n_segments INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS items_kind ON items(kind)",
    "CREATE INDEX IF NOT EXISTS items_created ON items(created, id)",
    """CREATE TABLE IF NOT EXISTS segments (
        id BIGSERIAL PRIMARY KEY,
        item_id TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        start_s DOUBLE PRECISION NOT NULL,
        end_s DOUBLE PRECISION NOT NULL CHECK (end_s >= start_s))""",
    "CREATE INDEX IF NOT EXISTS segments_item ON segments(item_id)",
    """CREATE TABLE IF NOT EXISTS vectors (
        segment_id BIGINT NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
        space TEXT NOT NULL,
        vec BYTEA NOT NULL,
        PRIMARY KEY (segment_id, space))""",
    "CREATE INDEX IF NOT EXISTS vectors_space ON vectors(space, segment_id)",
    """CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        item_id TEXT NOT NULL,
        source TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        done INTEGER NOT NULL DEFAULT 0,
        total INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created DOUBLE PRECISION NOT NULL,
        started DOUBLE PRECISION,
        finished DOUBLE PRECISION,
        path TEXT,
        sha256 TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        note TEXT,
        owner TEXT,
        lease_until DOUBLE PRECISION)""",
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created)",
]
_SCHEMA_LOCK = 7_346_021  # pg_advisory_xact_lock key: replicas starting together create the tables once

POSTGRES = Dialect(name="postgresql", ddl=";\n".join(DDL), placeholder="%s", json_param="CAST(? AS jsonb)",
                   cross_join="JOIN",
                   has_space="strpos(',' || i.spaces || ',', ',' || CAST(? AS text) || ',') > 0",
                   byte_length="octet_length", skip_locked=" FOR UPDATE SKIP LOCKED",
                   unavailable=(psycopg.OperationalError, psycopg.InterfaceError),
                   conflict=(psycopg.errors.UniqueViolation,))


def redact(dsn: str) -> str:
    """The DSN without its password (for messages and logs)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", dsn)


class PostgresStore(Store):
    """A catalogue in a PostgreSQL database (`postgresql://user:pass@host:port/db`)."""

    dialect = POSTGRES
    shared = True

    def __init__(self, dsn: str, *, readonly: bool = False, connect_timeout: int = 5) -> None:
        self.dsn, self.readonly, self.connect_timeout = dsn, readonly, connect_timeout
        self.location = redact(dsn)
        self._local = threading.local()
        self._all: list[psycopg.Connection] = []
        self._guard = threading.Lock()
        if not readonly:
            with self.transaction() as tx:
                tx.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
                for statement in DDL:
                    tx.execute(statement)

    def _unavailable(self, e: BaseException) -> StoreUnavailableError:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return StoreUnavailableError(f"the catalogue's PostgreSQL store {self.location} is unreachable ({first}); "
                                     "retry when it is back")

    def _drop(self) -> None:
        """Forget this thread's connection (broken): the next call opens a new one."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._guard:
                if conn in self._all:
                    self._all.remove(conn)
            try:
                conn.close()
            except Exception:  # noqa: S110 - already broken; closing is best effort
                pass

    def _conn(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and (conn.closed or conn.broken):
            self._drop()
            conn = None
        if conn is None:
            try:
                conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout)
            except psycopg.OperationalError as e:
                raise self._unavailable(e) from e
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def reader(self) -> Session:
        return Session(self._conn(), POSTGRES, on_broken=self._drop)

    @contextmanager
    def _tx(self, *, first: str | None) -> Iterator[Session]:
        conn = self._conn()
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:  # nested: a savepoint
            with conn.transaction():
                yield Session(conn, POSTGRES, on_broken=self._drop)
            return
        try:
            with conn.transaction():
                if first:
                    conn.execute(first)
                yield Session(conn, POSTGRES, on_broken=self._drop)
        except POSTGRES.unavailable as e:
            self._drop()
            raise self._unavailable(e) from e

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        if self.readonly:
            raise ReadOnlyError(f"catalogue {self.location} was opened readonly; open it without readonly=True "
                                "to write")
        with self._tx(first=None) as s:
            yield s

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        with self._tx(first="SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY") as s:
            yield s

    def has_table(self, name: str) -> bool:
        return bool(self.reader().execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()[0])

    def size_bytes(self) -> int:
        return int(self.reader().execute("SELECT pg_database_size(current_database())").fetchone()[0])

    def close(self) -> None:
        with self._guard:
            conns, self._all = self._all, []
        for c in conns:
            try:
                c.close()
            except Exception:  # noqa: S110 - closing is best effort
                pass
        self._local = threading.local()
