"""One exception family for the catalogue: every message says what was wrong and what is accepted."""

from __future__ import annotations


class CatalogError(Exception):
    """Base of every error raised by `index`; catch this to catch them all."""


class InvalidArgumentError(CatalogError, ValueError):
    """The caller passed something the catalogue does not accept (dimension, space, kind, shape, value)."""


class FilterError(InvalidArgumentError):
    """A `where` filter is malformed: unknown operator, bad field name or operand type."""


class ItemNotFoundError(CatalogError, LookupError):
    """No item has the given id."""


class CatalogLockedError(CatalogError):
    """Another process holds the catalogue's writer lock."""


class ReadOnlyError(CatalogError):
    """A write was attempted on a catalogue opened with `readonly=True`."""


class CatalogCorruptError(CatalogError):
    """The SQLite database is unusable or belongs to an incompatible schema; FAISS files never raise this
    (they are caches and are rebuilt)."""


class StoreUnavailableError(CatalogError):
    """The store's engine (a PostgreSQL server) or the vector engine (a Milvus server) cannot be reached
    right now; the request may be retried. The catalogue reconnects on the next call once the engine is back."""
