"""Typed, immutable results: what the catalogue hands out. Plain data, so the service can serialise them."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Mapping

from .errors import InvalidArgumentError

Kind = Literal["video", "audio", "text"]
KINDS: tuple[str, ...] = ("video", "audio", "text")
INDEX_TYPES: tuple[str, ...] = ("flat", "hnsw", "ivfpq")
JOB_STATUSES: tuple[str, ...] = ("queued", "running", "done", "failed", "cancelled")  # an ingest job's states
ITEM_ID_MAX = 64  # a caller-chosen item id: 1-64 letters, digits, '-' or '_' (URLs, file names, Milvus VARCHAR)
ITEM_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{ITEM_ID_MAX}}}")  # … the whole of it (fullmatch)


def _thaw(value: Any) -> Any:
    """Copy read-only mappings back into plain dicts (for to_dict / JSON)."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Item:
    """One catalogued piece of content (a video, an audio file or a text)."""

    id: str  # uuid4 hex
    kind: str  # one of KINDS
    source: str  # where it came from (file name, URL, "query"…): free text
    sha256: str  # of the content bytes; the catalogue's de-duplication key
    duration: float | None  # seconds; None for text
    metadata: Mapping[str, Any]  # caller's JSON object (read-only view)
    created: float  # unix seconds when (re)added
    spaces: tuple[str, ...] = ()  # spaces holding vectors for this item
    n_segments: int = 0

    def __hash__(self) -> int:  # metadata is a mapping (unhashable): an item is identified by its id
        return hash(self.id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["metadata"] = _thaw(self.metadata)
        d["spaces"] = list(self.spaces)
        return d


@dataclass(frozen=True)
class Segment:
    """A time window of an item; its rowid is the FAISS id of its vectors."""

    id: int
    item_id: str
    start: float  # seconds
    end: float  # seconds

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Moment:
    """One matching segment inside a hit: where in the item, and how well it matched."""

    segment_id: int
    start: float
    end: float
    score: float  # cosine similarity (keyword and hybrid search: that mode's score)
    text: str | None = None  # keyword and hybrid search: the matched transcript lines, words in <mark>…</mark>

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (`text` only when a transcript matched)."""
        d = asdict(self)
        if d["text"] is None:
            del d["text"]
        return d


@dataclass(frozen=True)
class ItemHit:
    """A search result: an item, its score (= its best segment's) and its best moments, best first."""

    item: Item
    score: float
    moments: tuple[Moment, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"item": self.item.to_dict(), "score": self.score, "moments": [m.to_dict() for m in self.moments]}


@dataclass(frozen=True)
class CheckReport:
    """What `Catalog.check()` found. `problems` are inconsistencies; `notes` are harmless facts
    (e.g. a FAISS file behind the database because the writer has not flushed yet)."""

    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when there is no problem."""
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"ok": self.ok, "problems": list(self.problems), "notes": list(self.notes),
                "counts": dict(self.counts)}


# --- what both vector backends (FAISS, Milvus) share ----------------------------------------------
@dataclass(frozen=True)
class IndexOptions:
    """Tuning of the approximate indexes (stored in the catalogue's meta, kept across reopen)."""

    hnsw_m: int = 32  # HNSW graph degree
    ef_construction: int = 80  # HNSW build beam
    ef_search: int = 96  # HNSW search beam (at least 2·k for k candidates)
    nlist: int | None = None  # IVF lists; None → a power of two near √n, at most n/39
    nprobe: int | None = None  # IVF lists visited; None → max(16, nlist/8)
    pq_m: int | None = None  # PQ sub-quantizers (bytes per vector); None → largest divisor of dim ≤ dim/8
    train_min: int = 20_000  # ivfpq stays exact until a space holds this many vectors
    exact_below: int = 10_000  # a filter allowing at most this many segments is searched exactly (hnsw, ivfpq)
    refine: int = 4  # ivfpq: fetch refine·k candidates by PQ codes, re-rank them exactly (raw vectors in SQLite)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> IndexOptions:
        """Validate a plain dict (unknown keys and non-positive numbers are refused)."""
        values = dict(values or {})
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise InvalidArgumentError(f"unknown index option(s) {unknown}; accepted: {', '.join(names)}")
        for k, v in values.items():
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise InvalidArgumentError(f"index option {k!r} must be a positive integer, got {v!r}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def auto_nlist(n: int) -> int:
    """IVF lists for n vectors when IndexOptions.nlist is None (FAISS and Milvus alike)."""
    # ~√n lists (1024 at 1M): fewer than the textbook 4–16·√n, because k-means on a 2-core box is the
    # bottleneck at that size; nprobe makes up the recall
    nlist = 1 << int(round(math.log2(math.sqrt(max(n, 1)))))
    return int(max(1, min(nlist, n // 39 or 1, 65536)))
