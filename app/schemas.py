"""Pydantic models for every request and response body: the service's public contract.

Routes declare these as `response_model`, so internal fields never leak; request models refuse
unknown fields, so a typo ("kind" for "kinds") is a 422 instead of a silently ignored filter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from index import ITEM_ID_MAX, MAX_SOURCE_CHARS, InvalidArgumentError, metadata_json, text_problem
from model import SPACES

__all__ = [
    "ErrorBody", "ItemOut", "ItemsPage", "MomentOut", "SearchResult", "SearchResponse", "SearchRequest",
    "SearchOptions", "EmbedForm", "ClassifyForm", "ItemForm",
    "EmbedTextRequest", "TextEmbedding", "EmbedTextResponse", "SegmentEmbedding", "EmbedFileResponse",
    "ItemCreateRequest", "JobAccepted", "JobProgress", "JobOut", "JobsPage", "JobStatus", "ClassifyRequest", "SegmentProbabilities",
    "ClassifyResponse", "Health", "Readiness", "Deleted", "Kind", "Space", "item_out",
    "Metadata", "ItemPatch", "SegmentVector", "SpaceVectors", "ItemWithVectors",
    "OpenAIEmbeddingRequest", "OpenAIEmbedding", "OpenAIUsage", "OpenAIEmbeddingResponse",
    "Text", "StoredText", "JsonObject",
    "Confidence", "TimelineCell", "OpenAIError", "OpenAIErrorBody", "OpenAIModel", "OpenAIModelList",
    "CueOut", "TranscriptOut", "SearchMode", "Fusion",
    "Example", "SearchBatchRequest", "SearchBatchResponse", "MAX_EXAMPLES", "MAX_BATCH",
]

Kind = Literal["video", "audio", "text"]
Space = Literal[SPACES]  # type: ignore[valid-type]  # the model's spaces ("va", "vt"), one home
SearchMode = Literal["vector", "keyword", "hybrid"]
Fusion = Literal["rrf", "weighted"]
DEFAULT_TEMPLATE = "a video of {}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- text a client sends -------------------------------------------------------------------------
# Every request field that carries text is one of these types, so the rules are checked once, where
# the request enters (a 422 naming the field), before a tokenizer, a store or a response encoder
# meets the value. The rules themselves live with the catalogue's (index._validate), which applies
# them again to whatever reaches it by other ways (imports, the library).
def _rule(kind: type, check: Callable[[Any], str | None]) -> BeforeValidator:
    """Runs before pydantic's own checks (whose message for a surrogate says only "unable to parse");
    a value of another type is left to them."""
    def run(value: Any) -> Any:
        if not isinstance(value, kind):
            return value
        try:
            problem = check(value)
        except InvalidArgumentError as exc:
            problem = str(exc)
        if problem is not None:
            raise PydanticCustomError("invalid_text", "{reason}", {"reason": problem})
        return value
    return BeforeValidator(run)


def _strings(value: Any) -> str | None:
    """The first problem of any key or string inside a JSON value (where filters: not stored)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if (problem := text_problem(v, stored=False)) is not None:
                return problem
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def _metadata(value: Any) -> None:
    metadata_json(value)  # raises InvalidArgumentError naming the rule


Text = Annotated[str, _rule(str, lambda v: text_problem(v, stored=False))]  # tokenised or echoed, never stored
StoredText = Annotated[str, _rule(str, text_problem)]  # stored with an item: no NUL either (PostgreSQL refuses it)
JsonObject = Annotated[dict[str, Any], _rule(dict, _strings)]
# An item's metadata, the same type wherever a client sends it (upload, server path, PATCH): the
# catalogue's metadata rules (types, depth, size, text) as a 422 before any work is accepted.
Metadata = Annotated[dict[str, Any], _rule(dict, _metadata),
                     Field(description="a JSON object stored with the item")]


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
    next: str | None = Field(None, description="pass as `cursor` for the next page (stable under concurrent "
                                               "inserts); null on the last page")


class Deleted(BaseModel):
    id: str
    deleted: bool = True


class ItemCreateRequest(_Strict):
    """Ingest a file already on the server (only when `allow_server_paths` is on)."""

    path: Text = Field(min_length=1, max_length=4096, description="absolute path under a configured root")
    metadata: Metadata = Field(default_factory=dict)
    source: StoredText | None = Field(None, max_length=MAX_SOURCE_CHARS, description="defaults to the path")


class ItemForm(_Strict):
    """Form fields beside an uploaded file."""

    metadata: Metadata = Field(default_factory=dict, description="a JSON object (as a JSON string in forms)")
    source: StoredText | None = Field(None, min_length=1, max_length=MAX_SOURCE_CHARS,
                                      description="defaults to the file name")


class ItemPatch(_Strict):
    """PATCH /items/{id}: a JSON merge patch (RFC 7396) on the metadata; PUT /items/{id}/metadata: the new
    metadata, replacing the old one whole."""

    metadata: Metadata


class SegmentVector(BaseModel):
    start: float
    end: float
    vector: list[float]


class SpaceVectors(BaseModel):
    segments: list[SegmentVector] = Field(description="one unit vector per segment, in time order")
    item: list[float] = Field(description="the whole-item vector: normalised mean of the segment vectors")


class ItemWithVectors(ItemOut):
    vectors: dict[str, SpaceVectors] | None = Field(None, description="per space, with ?include=vectors")


JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]


class JobAccepted(BaseModel):
    job_id: str
    item_id: str
    status: JobStatus = "queued"
    note: str | None = Field(None, description="set when the upload duplicated an item: its metadata was not applied")


class JobProgress(BaseModel):
    done: int = Field(description="segments embedded so far")
    total: int = Field(description="segments expected (from the probed duration)")


class JobOut(BaseModel):
    id: str
    status: JobStatus
    progress: JobProgress
    item_id: str
    error: str | None = None
    note: str | None = None
    source: str
    created: float
    started: float | None = None
    finished: float | None = None


class JobsPage(BaseModel):
    jobs: list[JobOut]
    total: int
    offset: int
    limit: int
    next: str | None = Field(None, description="pass as `cursor` for the next page (newest first; jobs created "
                                               "meanwhile do not shift it); null on the last page")


# --- search ----------------------------------------------------------------------------------------
class SearchOptions(_Strict):
    """What to search and how many; a file query sends these as multipart form fields."""

    k: int = Field(10, ge=1, le=1000, description="items to return (capped by the max_k setting)")
    kinds: list[Kind] | None = Field(None, description="target kinds; default: every kind the query space reaches")
    where: JsonObject | None = Field(None, description="metadata filter (index.filters grammar)")
    space: Space | None = Field(None, description="for video queries: va (default) or vt")
    moments: int = Field(3, ge=1, le=50, description="best moments per item")
    offset: int = Field(0, ge=0, le=10_000, description="skip this many results (paging: offset, then k)")
    score_threshold: float | None = Field(None, ge=-1.0, le=1.0, allow_inf_nan=False,
                                          description="only results scoring at least this (cosine)")
    include_query_item: bool = Field(False, description="for item_id queries: keep the item itself")
    include: list[Literal["timeline", "metadata", "vectors", "moments"]] | None = Field(
        None, description="fields to add to each result: 'timeline' (every segment's score against the query), "
                          "'vectors' (the item's vector in the searched space); 'metadata' and 'moments' are "
                          "there by default")
    exclude: list[Literal["metadata", "moments", "timeline", "vectors"]] | None = Field(
        None, description="fields to leave out of each result, e.g. 'metadata' or 'moments'")
    mode: SearchMode = Field("vector", description="vector: embeddings (default); keyword: the transcripts' words "
                             "(full-text index; a text query); hybrid: both, fused per moment")
    fusion: Fusion = Field("rrf", description="hybrid: rrf (reciprocal rank fusion) or weighted (alpha · vector + "
                           "(1 − alpha) · keyword, each min-max normalised)")
    rrf_k: int = Field(60, ge=1, le=10_000, description="hybrid rrf: score = Σ 1 / (rrf_k + rank)")
    alpha: float = Field(0.5, ge=0.0, le=1.0, allow_inf_nan=False, description="hybrid weighted: the vector share")

    @model_validator(mode="after")
    def _include_or_exclude(self) -> SearchOptions:
        both = sorted(set(self.include or ()) & set(self.exclude or ()))
        if both:
            raise ValueError(f"{', '.join(both)} is both included and excluded; name each field in one list")
        if self.mode == "keyword" and "timeline" in (self.include or ()):
            raise ValueError("a timeline scores each segment against the query's vector, and mode 'keyword' has "
                             "none: ask for it in mode 'vector' or 'hybrid'")
        return self


MAX_EXAMPLES = 64  # positive + negative examples of one recommend query


class Example(_Strict):
    """One positive or negative example: a catalogued item, a text, or a vector with its space."""

    item_id: Text | None = Field(None, min_length=1, max_length=ITEM_ID_MAX)
    text: Text | None = Field(None, min_length=1, max_length=2000)
    vector: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(None, min_length=1, max_length=65_536)
    space: Space | None = Field(None, description="the space of `vector` (required with it)")

    @model_validator(mode="after")
    def _one(self) -> Example:
        if sum(q is not None for q in (self.text, self.item_id, self.vector)) != 1:
            raise ValueError("an example is exactly one of 'item_id', 'text' or 'vector' (with its 'space')")
        if (self.vector is None) != (self.space is None):
            raise ValueError("an example's 'space' goes with its 'vector' (and only with it)")
        return self


class SearchRequest(SearchOptions):
    """JSON query by `text`, `item_id`, `vector`, or `positive` (+ `negative`) examples (a file query is
    multipart with the same options)."""

    text: Text | None = Field(None, min_length=1, max_length=2000)
    item_id: Text | None = Field(None, min_length=1, max_length=ITEM_ID_MAX)
    vector: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(
        None, min_length=1, max_length=65_536, description="a query vector in `space` (required with it)")
    positive: list[Example] | None = Field(
        None, min_length=1, max_length=MAX_EXAMPLES,
        description="recommend: items, texts or vectors to move towards (Qdrant's average-vector strategy: "
                    "2·mean(positive) − mean(negative)); their example items are left out of the results")
    negative: list[Example] | None = Field(None, max_length=MAX_EXAMPLES,
                                           description="recommend: examples to move away from (with `positive`)")

    @model_validator(mode="after")
    def _one_query(self) -> SearchRequest:
        if self.negative and self.positive is None:
            raise ValueError("'negative' examples go with 'positive' ones")
        if sum(q is not None for q in (self.text, self.item_id, self.vector, self.positive)) != 1:
            raise ValueError("give exactly one of 'text', 'item_id', 'vector' or 'positive' (or upload a 'file' "
                             "as multipart)")
        if self.vector is not None and self.space is None:
            raise ValueError("a 'vector' query needs its 'space' (va or vt)")
        if len(self.positive or ()) + len(self.negative or ()) > MAX_EXAMPLES:
            raise ValueError(f"a recommend query has at most {MAX_EXAMPLES} examples (positive and negative)")
        return self


MAX_BATCH = 32  # searches in one POST /search/batch


class SearchBatchRequest(_Strict):
    """POST /search/batch: several searches, their texts embedded in one forward pass."""

    searches: list[SearchRequest] = Field(min_length=1, max_length=MAX_BATCH)


class MomentOut(BaseModel):
    start: float
    end: float
    score: float
    text: str | None = Field(None, description="keyword/hybrid: the matched transcript lines (HTML-escaped, the "
                                               "query's words in <mark>…</mark>)")


class Confidence(BaseModel):
    """A text hit's standing against the best scores of neutral and nonsense probe texts on this catalogue."""

    z: float = Field(description="(score - the probes' mean best score) / their spread")
    percentile: float = Field(ge=0, le=1, description="fraction of the probes' best scores below this score")
    weak: bool = Field(description="true when the score does not stand out from what nonsense scores here")


class TimelineCell(BaseModel):
    start: float
    end: float
    score: float = Field(description="cosine of this segment against the query")


class SearchResult(BaseModel):
    item: ItemOut
    score: float = Field(description="cosine similarity of the best moment")
    moments: list[MomentOut] = Field(description="best moments, best first; none scoring below the moment floor")
    confidence: Confidence | None = Field(None, description="text queries in mode vector: standing against "
                                                            "nonsense probes (keyword and fused scores are not "
                                                            "cosines: none)")
    timeline: list[TimelineCell] | None = Field(None, description="with include=[\"timeline\"]: every segment, "
                                                                   "in time order")
    vector: list[float] | None = Field(None, description="with include=[\"vectors\"]: the item's vector in the "
                                                         "searched space")


class SearchResponse(BaseModel):
    results: list[SearchResult]
    space: Space
    query_kind: Kind | Literal["vector"]
    moment_floor: float = Field(0.0, description="moments scoring below this are not listed (VATT_MOMENT_FLOOR)")
    mode: SearchMode = "vector"


# --- transcripts -------------------------------------------------------------------------------------
class CueOut(BaseModel):
    start: float = Field(ge=0, allow_inf_nan=False)
    end: float = Field(ge=0, allow_inf_nan=False)
    text: str


class TranscriptOut(BaseModel):
    item_id: str
    cues: list[CueOut]


class SearchBatchResponse(BaseModel):
    responses: list[SearchResponse] = Field(description="one per search, in the request's order")


# --- embed -------------------------------------------------------------------------------------------
class EmbedTextRequest(_Strict):
    texts: list[Text] = Field(min_length=1, max_length=10_000)


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


# --- OpenAI-compatible embeddings -------------------------------------------------------------------
class OpenAIEmbeddingRequest(BaseModel):
    """POST /v1/embeddings as OpenAI defines it (texts only; they land in the vt space)."""

    model_config = ConfigDict(extra="ignore")  # OpenAI clients may send fields we do not use (e.g. user)

    input: Text | Annotated[list[Text], Field(min_length=1, max_length=10_000)] = Field(
        description="a text or a list of texts (token arrays are not accepted)")
    model: Text = Field(min_length=1, max_length=200, description="echoed back; this server has one model")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, description="must equal the vt dimension when given")


class OpenAIEmbedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32")


class OpenAIUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIEmbedding]
    model: str
    usage: OpenAIUsage


class OpenAIError(BaseModel):
    message: str
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = None
    code: str | None = Field(None, examples=["model_not_found"])


class OpenAIErrorBody(BaseModel):
    """Errors under /v1 in OpenAI's shape, so OpenAI's clients show the message."""

    error: OpenAIError


class OpenAIModel(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "vatt"


class OpenAIModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]


# --- classify ----------------------------------------------------------------------------------------
class ClassifyForm(_Strict):
    """Zero-shot labels; a file query sends these as multipart form fields."""

    labels: list[Text] = Field(min_length=1, max_length=10_000)
    template: Text = Field(DEFAULT_TEMPLATE, min_length=1, max_length=500,
                          description="'{}' is replaced by each label")


class ClassifyRequest(ClassifyForm):
    """Zero-shot labels for a catalogued item."""

    item_id: Text = Field(min_length=1, max_length=ITEM_ID_MAX)


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
    precision: str = Field("", description="what the model runs in (auto resolved at load): fp32, int8 (CPU) or bf16")
    precision_requested: str = Field("", description="what was asked for (VATT_PRECISION / --precision): auto, fp32, "
                                     "int8 or bf16")
    precision_reason: str = Field("", description="why `precision` was chosen (the CPU units auto found, or "
                                  "'asked for')")
    keep_tokens: float = Field(1.0, description="fraction of video/audio tokens kept at inference")
    items: int
    queued_jobs: int
    unavailable: list[str] = Field(default_factory=list, description="what it needs and cannot reach now (the "
                                   "store, the vector engine, stopped ingest workers): not ready until they answer")


# --- collections and snapshots ------------------------------------------------------------------------
class CollectionCreate(_Strict):
    """A new collection: its name and, optionally, its vector index type and options."""

    name: str = Field(description="1 to 56 characters of a-z, 0-9, '_' and '-', starting with a letter or digit")
    index_type: str | None = Field(None, description="flat (default), hnsw or ivfpq")
    index_options: dict[str, Any] | None = Field(None, description='e.g. {"hnsw_m": 32, "ef_search": 128}')


class SpaceCount(BaseModel):
    dim: int
    vectors: int


class CollectionOut(BaseModel):
    name: str
    url: str = Field(description="the prefix of its routes ('' for the default collection)")
    items: int
    kinds: dict[str, int] = Field(description="items per kind")
    segments: int
    spaces: dict[str, SpaceCount] = Field(description="vectors per space")
    index_type: str
    index_options: dict[str, Any]
    model: dict[str, Any] | None = Field(None, description="the model whose vectors it holds (name, config_hash)")
    queued_jobs: int


class CollectionsList(BaseModel):
    collections: list[CollectionOut]


class CollectionDeleted(BaseModel):
    name: str
    deleted: bool = True


class SnapshotOut(BaseModel):
    name: str
    collection: str | None
    bytes: int
    created: float | None
    items: int | None
    epochs: dict[str, int] | None = Field(None, description="each space's write epoch the snapshot holds")
    index_type: str | None
    url: str = Field(description="GET it to download the archive (a tar)")


class SnapshotsList(BaseModel):
    snapshots: list[SnapshotOut]


class SnapshotDeleted(BaseModel):
    name: str
    deleted: bool = True


def item_out(item: Any, *, playable: bool = True, base: str = "") -> ItemOut:
    """An `index.Item` as the API shows it, with the URLs that play it and show its thumbnail (under `base`, the
    prefix of its collection's routes); `playable=False` (no copy this server can read) advertises neither."""
    playable = playable and item.kind in ("video", "audio")
    return ItemOut(id=item.id, kind=item.kind, source=item.source, metadata=dict(item.metadata),
                   duration=item.duration, created=item.created, n_segments=item.n_segments,
                   spaces=list(item.spaces), media_url=f"{base}/media/{item.id}" if playable else None,
                   thumbnail_url=f"{base}/items/{item.id}/thumbnail" if playable and item.kind == "video" else None)
