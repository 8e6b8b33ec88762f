"""Pydantic models for every request and response body: the service's public contract.

Routes declare these as `response_model`, so internal fields never leak; request models refuse
unknown fields, so a typo ("kind" for "kinds") is a 422 instead of a silently ignored filter.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ErrorBody", "ItemOut", "ItemsPage", "MomentOut", "SearchResult", "SearchResponse", "SearchRequest",
    "SearchOptions", "EmbedForm", "ClassifyForm", "ItemForm",
    "EmbedTextRequest", "TextEmbedding", "EmbedTextResponse", "SegmentEmbedding", "EmbedFileResponse",
    "ItemCreateRequest", "JobAccepted", "JobProgress", "JobOut", "ClassifyRequest", "SegmentProbabilities",
    "ClassifyResponse", "Health", "Readiness", "Deleted", "Kind", "Space", "item_out",
]

Kind = Literal["video", "audio", "text"]
Space = Literal["va", "vt"]
DEFAULT_TEMPLATE = "a video of {}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every error: a short code for programs, a sentence for people."""

    error: str = Field(examples=["not_found"])
    detail: str = Field(examples=["no item with id 3f2a…"])
    errors: list[dict[str, Any]] | None = Field(None, description="per-field problems (validation errors only)")


# --- items ---------------------------------------------------------------------------------------
class ItemOut(BaseModel):
    id: str
    kind: Kind
    source: str
    metadata: dict[str, Any]
    duration: float | None
    created: float
    n_segments: int
    spaces: list[str]
    media_url: str | None = Field(None, description="GET it to play the stored media (Range supported)")
    thumbnail_url: str | None = Field(None, description="a JPEG frame (video items only)")


class ItemsPage(BaseModel):
    items: list[ItemOut]
    total: int = Field(description="items matching the filters (not only this page)")
    offset: int
    limit: int


class Deleted(BaseModel):
    id: str
    deleted: bool = True


class ItemCreateRequest(_Strict):
    """Ingest a file already on the server (only when `allow_server_paths` is on)."""

    path: str = Field(min_length=1, max_length=4096, description="absolute path under a configured root")
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: str | None = Field(None, max_length=1024, description="defaults to the path")


class ItemForm(_Strict):
    """Form fields beside an uploaded file."""

    metadata: dict[str, Any] = Field(default_factory=dict, description="a JSON object (as a JSON string in forms)")
    source: str | None = Field(None, min_length=1, max_length=1024, description="defaults to the file name")


class JobAccepted(BaseModel):
    job_id: str
    item_id: str
    status: Literal["queued", "running", "done", "failed"] = "queued"


class JobProgress(BaseModel):
    done: int = Field(description="segments embedded so far")
    total: int = Field(description="segments expected (from the probed duration)")


class JobOut(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    progress: JobProgress
    item_id: str
    error: str | None = None
    source: str
    created: float
    started: float | None = None
    finished: float | None = None


# --- search ----------------------------------------------------------------------------------------
class SearchOptions(_Strict):
    """What to search and how many; a file query sends these as multipart form fields."""

    k: int = Field(10, ge=1, le=1000, description="items to return (capped by the max_k setting)")
    kinds: list[Kind] | None = Field(None, description="target kinds; default: every kind the query space reaches")
    where: dict[str, Any] | None = Field(None, description="metadata filter (index.filters grammar)")
    space: Space | None = Field(None, description="for video queries: va (default) or vt")
    moments: int = Field(3, ge=1, le=50, description="best moments per item")
    include_query_item: bool = Field(False, description="for item_id queries: keep the item itself")


class SearchRequest(SearchOptions):
    """JSON query by `text` or `item_id` (a file query is multipart with the same options)."""

    text: str | None = Field(None, min_length=1, max_length=2000)
    item_id: str | None = Field(None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one_query(self) -> SearchRequest:
        if (self.text is None) == (self.item_id is None):
            raise ValueError("give exactly one of 'text' or 'item_id' (or upload a 'file' as multipart)")
        return self


class MomentOut(BaseModel):
    start: float
    end: float
    score: float


class SearchResult(BaseModel):
    item: ItemOut
    score: float = Field(description="cosine similarity of the best moment")
    moments: list[MomentOut]


class SearchResponse(BaseModel):
    results: list[SearchResult]
    space: Space
    query_kind: Kind


# --- embed -------------------------------------------------------------------------------------------
class EmbedTextRequest(_Strict):
    texts: list[str] = Field(min_length=1, max_length=10_000)


class EmbedForm(_Strict):
    spaces: list[Space] | None = Field(None, description="subset of va, vt (default: all the file has)")


class TextEmbedding(BaseModel):
    vt: list[float]


class EmbedTextResponse(BaseModel):
    embeddings: list[TextEmbedding]
    space: Space = "vt"
    dim: int


class SegmentEmbedding(BaseModel):
    start: float
    end: float
    va: list[float] | None = None
    vt: list[float] | None = None


class EmbedFileResponse(BaseModel):
    kind: Kind
    duration: float
    segments: list[SegmentEmbedding]
    mean: dict[str, list[float]] = Field(description="per space: normalised mean of the segment vectors")


# --- classify ----------------------------------------------------------------------------------------
class ClassifyForm(_Strict):
    """Zero-shot labels; a file query sends these as multipart form fields."""

    labels: list[str] = Field(min_length=1, max_length=10_000)
    template: str = Field(DEFAULT_TEMPLATE, min_length=1, max_length=500,
                          description="'{}' is replaced by each label")


class ClassifyRequest(ClassifyForm):
    """Zero-shot labels for a catalogued item."""

    item_id: str = Field(min_length=1, max_length=64)


class SegmentProbabilities(BaseModel):
    start: float
    end: float
    probabilities: list[float]


class SupervisedScores(BaseModel):
    """The served fine-tuned classifier's scores for the whole file (`vatt serve --classifier`)."""

    label: str
    classes: list[str]
    probabilities: list[float] = Field(description="softmax (video) or sigmoid (audio, multi-label) per class")
    best: str


class ClassifyResponse(BaseModel):
    labels: list[str]
    prompts: list[str]
    probabilities: list[float] = Field(description="softmax(cos/temperature) over labels; sums to 1")
    best: str
    segments: list[SegmentProbabilities]
    temperature: float
    supervised: SupervisedScores | None = Field(None, description="with --classifier, for file queries")


# --- health ------------------------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    model: str
    device: str = ""
    items: int
    queued_jobs: int


def item_out(item: Any) -> ItemOut:
    """An `index.Item` as the API shows it, with the URLs that play it and show its thumbnail."""
    playable = item.kind in ("video", "audio")
    return ItemOut(id=item.id, kind=item.kind, source=item.source, metadata=dict(item.metadata),
                   duration=item.duration, created=item.created, n_segments=item.n_segments,
                   spaces=list(item.spaces), media_url=f"/media/{item.id}" if playable else None,
                   thumbnail_url=f"/items/{item.id}/thumbnail" if item.kind == "video" else None)
