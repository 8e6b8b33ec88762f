"""Typed, immutable results: what the catalogue hands out. Plain data, so the service can serialise them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Mapping

Kind = Literal["video", "audio", "text"]
KINDS: tuple[str, ...] = ("video", "audio", "text")
INDEX_TYPES: tuple[str, ...] = ("flat", "hnsw", "ivfpq")


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
