"""PostgreSQL store: the same tables and queries as SQLite, for catalogues several processes write.

Transactions replace SQLite's single-writer lock: segment ids come from a sequence (never reused,
never colliding between writers), each write bumps its spaces' epochs inside its transaction
(the meta rows are locked in one order, so writers never deadlock), and metadata is JSONB, filtered
by the same `where` language. A small pool bounds the connections of a process (autocommit reads
borrow one per statement); a connection that fails is dropped and the next call reconnects, so a server
that went away gives `StoreUnavailableError` (503 in the service) and the catalogue recovers when it is back.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, Callable, Iterator, Sequence

import psycopg

from .cues import check_language
from .errors import ReadOnlyError, StoreUnavailableError
from .store import Dialect, Session, Store, first_line

_SCHEMA_LOCK = 7_346_021  # pg_advisory_xact_lock key: replicas starting together create the tables once


def _tsvector(language: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The cues' full-text index: a generated tsvector in the catalogue's text-search configuration, and its GIN."""
    language = check_language(language)
    return ((f"tsv tsvector GENERATED ALWAYS AS (to_tsvector('{language}'::regconfig, text)) STORED",),
            ("CREATE INDEX IF NOT EXISTS cues_tsv ON cues USING GIN (tsv)",))


def _query_args(words: Sequence[str], language: str) -> list[Any]:
    """The headline's and the query's configuration, then the words (plainto_tsquery ANDs them)."""
    return [language, language, " ".join(words)]


def _down(e: BaseException) -> bool:
    """A lost or refused connection (no SQLSTATE, class 08, or a server shutting down), not a failed statement
    (a deadlock, a full disk: those keep their own error)."""
    state = getattr(e, "sqlstate", None)
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


POSTGRES = Dialect(name="postgresql", placeholder="%s", json_param="CAST(? AS jsonb)",
                   cross_join="JOIN",
                   has_space="strpos(',' || i.spaces || ',', ',' || CAST(? AS text) || ',') > 0",
                   byte_length="octet_length", skip_locked=" FOR UPDATE SKIP LOCKED", for_update=" FOR UPDATE",
                   segment_ids="SELECT nextval(pg_get_serial_sequence('segments', 'id')) FROM generate_series(1, ?)",
                   unavailable=(psycopg.OperationalError, psycopg.InterfaceError), down=_down,
                   # a concurrent writer took the same sha256 first, or the server chose us as a deadlock victim
                   conflict=(psycopg.errors.UniqueViolation, psycopg.errors.TransactionRollback),
                   invalid=(psycopg.DataError,),  # NUL in text or in a JSONB string
                   changelog=True,
                   types=MappingProxyType({"text": "TEXT", "real": "DOUBLE PRECISION", "int": "INTEGER",
                                           "bigint": "BIGINT", "bytes": "BYTEA", "bool": "BOOLEAN", "json": "JSONB",
                                           "serial": "BIGSERIAL PRIMARY KEY"}),
                   columns_of="SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                              "AND table_schema = current_schema()",
                   table_exists="SELECT to_regclass(?) IS NOT NULL",
                   schema_lock=f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})",
                   fulltext=_tsvector,
                   keyword_search="SELECT c.id, c.item_id, c.start_s, c.end_s, ts_headline(CAST(? AS regconfig), "
                                  "c.text, q, 'StartSel=' || chr(2) || ', StopSel=' || chr(3) || "
                                  "', HighlightAll=true'), ts_rank_cd(c.tsv, q, 1) AS r "
                                  "FROM plainto_tsquery(CAST(? AS regconfig), ?) q, cues c "
                                  "JOIN items i ON i.id = c.item_id WHERE c.tsv @@ q AND ({cond}) "
                                  "ORDER BY r DESC, c.id LIMIT ?",
                   keyword_args=_query_args)


def redact(dsn: str) -> str:
    """The DSN without its password (for messages and logs)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", dsn)


class _Pool:
    """At most `size` connections, reused last-in first-out. A broken connection is dropped on return, and the
    idle ones with it (after a server restart they are all dead); connecting is tried on demand, never in a
    background retry loop, so an outage is a prompt 503 and the first call after it comes back succeeds."""

    def __init__(self, dsn: str, *, size: int, wait_s: float, connect_timeout: int,
                 unavailable: Callable[[BaseException], StoreUnavailableError]) -> None:
        self.dsn, self.size, self.wait_s, self.connect_timeout = dsn, size, wait_s, connect_timeout
        self._unavailable = unavailable
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def borrow(self) -> Iterator[psycopg.Connection]:
        if not self._slots.acquire(timeout=self.wait_s):
            raise StoreUnavailableError(f"all {self.size} connections to the catalogue's PostgreSQL store stayed busy "
                                        f"for {self.wait_s:.0f} s; retry later")
        conn = None
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                try:
                    conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout)
                except psycopg.OperationalError as e:
                    raise self._unavailable(e) from e
            yield conn
        finally:
            if conn is not None:
                self._give_back(conn)
            self._slots.release()

    def _give_back(self, conn: psycopg.Connection) -> None:
        healthy = not (conn.closed or conn.broken) and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._lock:
            if healthy and not self._closed:
                self._idle.append(conn)
                return
            stale = [conn] + (self._idle if not healthy else [])
            if not healthy:
                self._idle = []
        for c in stale:
            try:
                c.close()
            except Exception:  # noqa: S110 - closing a dead connection is best effort
                pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for c in idle:
            try:
                c.close()
            except Exception:  # noqa: S110 - closing is best effort
                pass


class PostgresStore(Store):
    """A catalogue in a PostgreSQL database (`postgresql://user:pass@host:port/db`).

    Reads borrow a pooled connection per statement (autocommit); a transaction or snapshot holds one for
    its block. `connections` bounds what one process opens, whatever its number of threads."""

    dialect = POSTGRES
    shared = True

    def __init__(self, dsn: str, *, readonly: bool = False, connections: int = 16, wait_s: float = 30.0,
                 connect_timeout: int = 5) -> None:
        self.dsn, self.readonly = dsn, readonly
        self.location = redact(dsn)
        self._pool = _Pool(dsn, size=connections, wait_s=wait_s, connect_timeout=connect_timeout,
                           unavailable=self._unavailable)
        if not readonly:
            with self.transaction() as tx:
                tx.create_schema()

    def _unavailable(self, e: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(f"the catalogue's PostgreSQL store {self.location} is unreachable "
                                     f"({first_line(e)}); retry when it is back")

    def reader(self) -> Session:
        return Session(None, POSTGRES, borrow=self._pool.borrow)

    @contextmanager
    def _tx(self, *, first: str | None) -> Iterator[Session]:
        with self._pool.borrow() as conn:
            try:
                with conn.transaction():
                    if first:
                        conn.execute(first)
                    yield Session(conn, POSTGRES)
            except POSTGRES.unavailable as e:
                if not _down(e):
                    raise
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

    def size_bytes(self) -> int:
        return int(self.reader().execute("SELECT pg_database_size(current_database())").fetchone()[0])

    def close(self) -> None:
        self._pool.close()


# --- named collections: one schema each -------------------------------------------------------------------
# A collection's tables live in its own schema of the deployment's database (the default collection keeps the
# DSN's own search path); its connections name that schema in libpq's `options`, so every statement above runs
# unchanged there. Schema names are made by index/collections.py from the collection name rule (quoted here).
_SCHEMA = re.compile(r"[a-z0-9_-]{1,63}")


def _quoted(schema: str) -> str:
    if not _SCHEMA.fullmatch(schema):
        raise ValueError(f"schema name {schema!r} is refused; accepted: 1 to 63 of a-z, 0-9, '_' and '-'")
    return f'"{schema}"'


def schema_dsn(dsn: str, schema: str) -> str:
    """`dsn` whose connections use `schema` (search_path set as a connection option, beside any options it had)."""
    from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit  # only for named collections

    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = " ".join([v for k, v in query if k == "options"] + [f"-csearch_path={_quoted(schema)}"])
    query = [(k, v) for k, v in query if k != "options"] + [("options", options)]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _admin(dsn: str, statement: str, params: tuple = ()) -> list[tuple]:
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []
    except psycopg.OperationalError as e:
        raise StoreUnavailableError(f"the catalogue's PostgreSQL store {redact(dsn)} is unreachable ({e}); retry "
                                    "when it is back") from e


def create_schema(dsn: str, schema: str) -> None:
    _admin(dsn, f"CREATE SCHEMA IF NOT EXISTS {_quoted(schema)}")


def drop_schema(dsn: str, schema: str) -> None:
    """The schema with every table of its collection (items, vectors, jobs, transcripts)."""
    _admin(dsn, f"DROP SCHEMA IF EXISTS {_quoted(schema)} CASCADE")


def schemas(dsn: str, prefix: str) -> list[str]:
    """The schemas of the database whose names start with `prefix`."""
    return [r[0] for r in _admin(dsn, "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s) ORDER BY 1",
                                 (prefix,))]
