"""vatt's catalogue: items, segments and vectors per space; a store is the truth (SQLite, or PostgreSQL),
a vector index per space serves search (FAISS files, or Milvus).

Knows nothing of the model (never imports torch or another project package): it stores vectors.

    with Catalog("data/catalog", spaces={"va": 512, "vt": 256}) as cat:
        if cat.get_by_sha256(digest) is None:          # skip encoding content already indexed
            item = cat.add_item(kind="video", source="cat.mp4", sha256=digest, duration=12.8,
                                segments=[[0.0, 3.2], [3.2, 6.4]], vectors={"va": va, "vt": vt},
                                metadata={"year": 2004, "tags": ["cat"]})
        hits = cat.search("vt", text_vec, k=10, kinds="video", where={"year": {"gte": 2000}})
        # hits[0].item, hits[0].score, hits[0].moments[0].start / .end / .score

    # the same catalogue in PostgreSQL, written by several processes (each keeps a FAISS cache in its directory)
    Catalog("cache/catalog", store="postgresql://vatt:secret@db:5432/vatt")
"""

from ._validate import MAX_SOURCE_CHARS, metadata_json, text_problem
from .catalog import DEFAULT_SPACES, Catalog
from .cues import CueHit
from .errors import (CatalogCorruptError, CatalogError, CatalogLockedError, FilterError, InvalidArgumentError,
                     ItemNotFoundError, ReadOnlyError, StoreUnavailableError)
from .filters import OPERATORS
from .fusion import FUSIONS, fuse, group_cues
from .jobs import JOB_STATUSES, JobRecord, JobStore
from .types import INDEX_TYPES, ITEM_ID, ITEM_ID_MAX, KINDS, CheckReport, IndexOptions, Item, ItemHit, Moment, Segment

__all__ = [
    "Catalog", "DEFAULT_SPACES", "INDEX_TYPES", "ITEM_ID", "ITEM_ID_MAX", "KINDS", "OPERATORS", "IndexOptions",
    "Item", "Segment", "Moment", "ItemHit", "CheckReport", "CueHit", "FUSIONS", "fuse", "group_cues",
    "CatalogError", "InvalidArgumentError", "FilterError", "ItemNotFoundError", "CatalogLockedError",
    "ReadOnlyError", "CatalogCorruptError", "StoreUnavailableError", "JobStore", "JobRecord", "JOB_STATUSES",
    "metadata_json", "text_problem", "MAX_SOURCE_CHARS",
]
