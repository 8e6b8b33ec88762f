"""The catalogue's tables, declared once: both stores create them from here, each in its `Dialect`'s types.

A column names a portable type — text, real, int, bigint, bytes, bool, json, serial — and the dialect says
what that is in its engine (SQLite: REAL, BLOB, INTEGER PRIMARY KEY AUTOINCREMENT, JSON text checked by
json_valid; PostgreSQL: DOUBLE PRECISION, BYTEA, BIGSERIAL PRIMARY KEY, JSONB). Names and types are those
of the first release, so existing databases open as they are; a column added since (`added`) reaches older
databases when a writer opens them (Session.create_schema adds it). The full-text index of the transcript cues is
each engine's own construct (FTS5 table and triggers; a generated tsvector and a GIN index): the dialect adds
it to the cue table declared here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .types import JOB_STATUSES, KINDS

SCHEMA_VERSION = 1  # the `schema` meta row of a catalogue


@dataclass(frozen=True)
class Column:
    """One column: its name, portable type and constraints (NOT NULL, DEFAULT, CHECK, REFERENCES)."""

    name: str
    type: str
    constraints: str = ""
    added: bool = False  # came after the first release: nullable, without default (added to older tables)


@dataclass(frozen=True)
class Table:
    """A table: columns, a table-level key, and its plain indexes as (name, columns)."""

    name: str
    columns: tuple[Column, ...]
    key: str = ""
    indexes: tuple[tuple[str, str], ...] = ()


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"CHECK ({column} IN ({', '.join(repr(v) for v in values)}))"


META = Table("meta", (Column("key", "text", "PRIMARY KEY"), Column("value", "text", "NOT NULL")))

ITEMS = Table("items", (
    Column("id", "text", "PRIMARY KEY"),
    Column("kind", "text", "NOT NULL " + _one_of("kind", KINDS)),
    Column("source", "text", "NOT NULL"),
    Column("sha256", "text", "NOT NULL UNIQUE"),
    Column("duration", "real"),
    Column("metadata", "json", "NOT NULL DEFAULT '{}'"),
    Column("created", "real", "NOT NULL"),
    Column("spaces", "text", "NOT NULL"),  # comma-joined, denormalised for cheap reads (check() verifies)
    Column("n_segments", "int", "NOT NULL"),
), indexes=(("items_kind", "kind"), ("items_created", "created, id")))  # items_created: keyset paging

# a span of an item (seconds): what a segment and a transcript cue are
_SPAN = (Column("item_id", "text", "NOT NULL REFERENCES items(id) ON DELETE CASCADE"),
         Column("start_s", "real", "NOT NULL"),
         Column("end_s", "real", "NOT NULL CHECK (end_s >= start_s)"))

SEGMENTS = Table("segments", (
    Column("id", "serial"),  # never reused: a vector-index id always means one segment
    *_SPAN,
), indexes=(("segments_item", "item_id"),))

VECTORS = Table("vectors", (
    Column("segment_id", "bigint", "NOT NULL REFERENCES segments(id) ON DELETE CASCADE"),
    Column("space", "text", "NOT NULL"),
    Column("vec", "bytes", "NOT NULL"),  # float32 little-endian, L2-normalised
), key="PRIMARY KEY (segment_id, space)", indexes=(("vectors_space", "space, segment_id"),))

JOBS = Table("jobs", (
    Column("id", "text", "PRIMARY KEY"),
    Column("item_id", "text", "NOT NULL"),
    Column("source", "text", "NOT NULL"),
    Column("status", "text", "NOT NULL " + _one_of("status", JOB_STATUSES)),
    Column("done", "int", "NOT NULL DEFAULT 0"),
    Column("total", "int", "NOT NULL DEFAULT 0"),
    Column("error", "text"),
    Column("created", "real", "NOT NULL"),
    Column("started", "real"),
    Column("finished", "real"),
    Column("path", "text"),  # the media file the job embeds
    Column("sha256", "text", "NOT NULL"),
    Column("metadata", "text", "NOT NULL DEFAULT '{}'"),
    Column("note", "text"),  # e.g. why the metadata of a duplicate upload was not applied
    Column("owner", "text", added=True),  # the worker running it
    Column("lease_until", "real", added=True),  # re-queued by anyone after this (its owner died)
), indexes=(("jobs_status", "status, created"),))

# a store several processes write logs which segment ids each epoch of a space added or removed (Dialect.changelog)
CHANGES = Table("changes", (
    Column("space", "text", "NOT NULL"),
    Column("epoch", "bigint", "NOT NULL"),
    Column("added", "bool", "NOT NULL"),
    Column("ids", "bytes", "NOT NULL"),
), key="PRIMARY KEY (space, epoch)")

TABLES = (META, ITEMS, SEGMENTS, VECTORS, JOBS)

# transcripts: made by the first writer that opens a catalogue with them, in its full-text language
CUES = Table("cues", (
    Column("id", "serial"),
    *_SPAN,
    Column("text", "text", "NOT NULL"),
), indexes=(("cues_item", "item_id, start_s"),))
