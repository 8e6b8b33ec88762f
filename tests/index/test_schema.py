"""The catalogue's tables, declared once (index/schema.py), as each engine creates them: every declared column,
in the engine types of the first release (so existing databases open as they are), and the columns added since
given to an older table when a writer opens it — on SQLite and PostgreSQL alike."""

from __future__ import annotations

import time
from pathlib import Path

from index_helpers import SPACES

from index import Catalog, JobStore
from index.schema import CHANGES, CUES, TABLES

# (table, column): (SQLite's declared type, PostgreSQL's data_type), as the first release created them
FIRST_RELEASE = {
    ("items", "duration"): ("REAL", "double precision"),
    ("items", "metadata"): ("TEXT", "jsonb"),
    ("items", "n_segments"): ("INTEGER", "integer"),
    ("segments", "id"): ("INTEGER", "bigint"),
    ("vectors", "segment_id"): ("INTEGER", "bigint"),
    ("vectors", "vec"): ("BLOB", "bytea"),
    ("jobs", "metadata"): ("TEXT", "text"),
    ("jobs", "lease_until"): ("REAL", "double precision"),
    ("cues", "id"): ("INTEGER", "bigint"),
    ("cues", "end_s"): ("REAL", "double precision"),
}


def _columns(cat: Catalog, table: str) -> dict[str, str]:
    """column -> the engine's own name of its type, read from the engine's catalogue of tables."""
    sqlite = cat.store.dialect.name == "sqlite"
    sql = ("SELECT name, type FROM pragma_table_info(?)" if sqlite else
           "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
           "AND table_schema = current_schema()")
    return dict(cat.store.reader().execute(sql, (table,)).fetchall())


def test_every_declared_column_in_the_first_release_types(tmp_path: Path, store: str) -> None:
    with Catalog(tmp_path / "cat", spaces=SPACES, store=store) as cat:
        sqlite = cat.store.dialect.name == "sqlite"
        for table in (*TABLES, CUES):
            assert {c.name for c in table.columns} <= set(_columns(cat, table.name)), table.name
        for (table, column), (lite, pg) in FIRST_RELEASE.items():
            assert _columns(cat, table)[column] == (lite if sqlite else pg), (table, column)
        assert cat.store.has_table(CHANGES.name) == (not sqlite)  # the change log: stores several processes write
        assert ("tsv" in _columns(cat, "cues")) == (not sqlite)  # PostgreSQL's full-text column; SQLite: FTS5 table
        assert cat.store.has_table("cues_fts") == sqlite


def test_an_older_table_gains_the_columns_added_since(tmp_path: Path, store: str) -> None:
    path = tmp_path / "cat"
    with Catalog(path, spaces=SPACES, store=store) as cat:
        JobStore(cat.store).create(item_id="a", source="a.wav", sha256="0" * 64, path="/m/a.wav", total=1)
        with cat.store.transaction() as tx:  # back to the jobs table of the first release
            tx.execute("ALTER TABLE jobs DROP COLUMN owner")
            tx.execute("ALTER TABLE jobs DROP COLUMN lease_until")
        assert not {"owner", "lease_until"} & set(_columns(cat, "jobs"))
    with Catalog(path, store=store) as cat:
        assert {"owner", "lease_until"} <= set(_columns(cat, "jobs"))
        job = JobStore(cat.store).claim("w")
        assert job is not None and job.item_id == "a" and job.owner == "w" and job.lease_until > time.time()
