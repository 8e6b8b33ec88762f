"""vatt's embedded catalogue: items, segments and vectors per space; FAISS for search, SQLite as truth.

Knows nothing of the model (never imports torch or another project package): it stores vectors.
"""

from .catalog import DEFAULT_SPACES, Catalog
from .errors import (CatalogCorruptError, CatalogError, CatalogLockedError, FilterError, InvalidArgumentError,
                     ItemNotFoundError, ReadOnlyError)
from .filters import OPERATORS
from .types import INDEX_TYPES, KINDS, CheckReport, Item, ItemHit, Moment, Segment
from .vectors import IndexOptions

__all__ = [
    "Catalog", "DEFAULT_SPACES", "INDEX_TYPES", "KINDS", "OPERATORS", "IndexOptions",
    "Item", "Segment", "Moment", "ItemHit", "CheckReport",
    "CatalogError", "InvalidArgumentError", "FilterError", "ItemNotFoundError", "CatalogLockedError",
    "ReadOnlyError", "CatalogCorruptError",
]
