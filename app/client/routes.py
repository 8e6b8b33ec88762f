"""Every route of the service as a `Call`: its method, path, body and typed result (app/schemas.py's models).

The sync and the async client send these; nothing here does I/O. Search options are the fields of
`SearchOptions` (k, kinds, where, space, moments, offset, score_threshold, include, exclude, mode, fusion,
rrf_k, alpha, include_query_item), checked by the server (a 422 naming the field).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from ..schemas import (ClassifyResponse, CollectionDeleted, CollectionOut, CollectionsList, CueOut, Deleted,
                       EmbedFileResponse, EmbedTextResponse, Example, Health, ItemOut, ItemsPage, ItemWithVectors,
                       JobAccepted, JobOut, JobsPage, OpenAIEmbeddingResponse, OpenAIModelList, Readiness,
                       SearchBatchResponse, SearchRequest, SearchResponse, SnapshotDeleted, SnapshotOut, SnapshotsList,
                       TranscriptOut)
from .call import Call

__all__ = ["embed_texts", "embed_file", "search", "recommend", "search_batch", "classify", "ingest", "ingest_path",
           "list_items", "get_item", "patch_metadata", "put_metadata", "delete_item", "thumbnail", "media",
           "media_path", "transcript", "transcript_vtt", "set_transcript", "list_jobs", "job", "cancel_job",
           "healthz", "readyz", "metrics", "models", "embeddings", "create_collection", "list_collections",
           "get_collection", "delete_collection", "create_snapshot", "list_snapshots", "download_snapshot",
           "delete_snapshot", "FINISHED"]

M = TypeVar("M", bound=BaseModel)
FINISHED = ("done", "failed", "cancelled")  # a job in one of these states moves no more
DEFAULT_TEMPLATE = "a video of {}"


def _model(cls: type[M], fill: Callable[[Any], Any] | None = None) -> Callable[[httpx.Response], M]:
    return lambda r: cls.model_validate(fill(r.json()) if fill else r.json())


def _id(value: str) -> str:
    return quote(value, safe="")


def _given(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


def _form(options: dict[str, Any]) -> dict[str, Any]:
    """Search options as multipart form values: `where` as JSON, lists repeated, the rest as text."""
    return {k: json.dumps(v) if k == "where" else [str(x) for x in v] if isinstance(v, (list, tuple))
            else str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}


def _filled(options: dict[str, Any]) -> Callable[[Any], Any]:
    """A response shaped by `exclude` leaves fields out; the models need them: excluded lists and
    metadata read as empty."""
    left_out = set(options.get("exclude") or ())

    def fill(body: Any) -> Any:
        for result in body.get("results", ()) if left_out else ():
            if "moments" in left_out:
                result.setdefault("moments", [])
            if "metadata" in left_out:
                result.get("item", {}).setdefault("metadata", {})
        return body
    return fill


def _search_body(entry: SearchRequest | dict[str, Any]) -> dict[str, Any]:
    return entry.model_dump(mode="json", exclude_unset=True) if isinstance(entry, SearchRequest) else entry


def _example(e: Example | dict[str, Any]) -> dict[str, Any]:
    return e.model_dump(mode="json", exclude_none=True) if isinstance(e, Example) else e


# --- embed -------------------------------------------------------------------------------------------
def embed_texts(texts: Sequence[str]) -> Call[EmbedTextResponse]:
    return Call("POST", "/embed", _model(EmbedTextResponse), json={"texts": list(texts)})


def embed_file(path: str | Path, spaces: Sequence[str] | None = None) -> Call[EmbedFileResponse]:
    return Call("POST", "/embed", _model(EmbedFileResponse), data={"spaces": ",".join(spaces)} if spaces else None,
                uploads={"file": Path(path)})


# --- search ------------------------------------------------------------------------------------------
def search(text: str | None = None, *, item_id: str | None = None, vector: Sequence[float] | None = None,
           file: str | Path | None = None, **options: Any) -> Call[SearchResponse]:
    """By text, a catalogued item, a vector (with `space=`) or an uploaded file."""
    options = _given(options)
    parse = _model(SearchResponse, _filled(options))
    if file is not None:
        return Call("POST", "/search", parse, data=_form(options), uploads={"file": Path(file)})
    query = _given({"text": text, "item_id": item_id, "vector": list(vector) if vector is not None else None})
    return Call("POST", "/search", parse, json={**query, **options})


def recommend(positive: Sequence[Example | dict[str, Any]], negative: Sequence[Example | dict[str, Any]] = (),
              **options: Any) -> Call[SearchResponse]:
    """Towards the positive examples and away from the negative ones (items, texts or vectors)."""
    options = _given(options)
    body = {"positive": [_example(e) for e in positive], **options}
    if negative:
        body["negative"] = [_example(e) for e in negative]
    return Call("POST", "/search", _model(SearchResponse, _filled(options)), json=body)


def search_batch(searches: Sequence[SearchRequest | dict[str, Any]]) -> Call[SearchBatchResponse]:
    bodies = [_search_body(s) for s in searches]
    fills = [_filled(b) for b in bodies]
    return Call("POST", "/search/batch", _model(SearchBatchResponse, lambda body: {
        **body, "responses": [f(r) for f, r in zip(fills, body.get("responses", []))]}), json={"searches": bodies})


# --- classify ----------------------------------------------------------------------------------------
def classify(labels: Sequence[str], template: str = DEFAULT_TEMPLATE, *, file: str | Path | None = None,
             item_id: str | None = None) -> Call[ClassifyResponse]:
    if file is None:
        return Call("POST", "/classify", _model(ClassifyResponse),
                    json={"item_id": item_id, "labels": list(labels), "template": template})
    return Call("POST", "/classify", _model(ClassifyResponse),
                data={"labels": json.dumps(list(labels)), "template": template}, uploads={"file": Path(file)})


# --- items -------------------------------------------------------------------------------------------
def ingest(path: str | Path, metadata: dict[str, Any] | None = None, *, source: str | None = None,
           transcript: str | Path | None = None) -> Call[JobAccepted]:
    """Upload a file (and a .vtt/.srt/JSON transcript) to be ingested in the background."""
    uploads = {"file": Path(path), **({"transcript": Path(transcript)} if transcript is not None else {})}
    return Call("POST", "/items", _model(JobAccepted),
                data=_given({"metadata": json.dumps(metadata or {}), "source": source}), uploads=uploads)


def ingest_path(server_path: str, metadata: dict[str, Any] | None = None, *,
                source: str | None = None) -> Call[JobAccepted]:
    """Ingest a file already on the server (VATT_ALLOW_SERVER_PATHS, under VATT_SERVER_PATH_ROOTS)."""
    return Call("POST", "/items", _model(JobAccepted),
                json=_given({"path": server_path, "metadata": metadata or {}, "source": source}))


def list_items(*, kinds: Sequence[str] | None = None, where: dict[str, Any] | None = None, limit: int = 50,
               offset: int = 0, cursor: str | None = None) -> Call[ItemsPage]:
    params = _given({"kind": list(kinds) if kinds else None, "where": json.dumps(where) if where is not None else None,
                     "limit": limit, "offset": offset or None, "cursor": cursor})
    return Call("GET", "/items", _model(ItemsPage), params=params)


def get_item(item_id: str, *, vectors: bool = False) -> Call[ItemWithVectors]:
    return Call("GET", f"/items/{_id(item_id)}", _model(ItemWithVectors),
                params={"include": "vectors"} if vectors else None)


def patch_metadata(item_id: str, patch: dict[str, Any]) -> Call[ItemOut]:
    """A JSON merge patch (RFC 7396) on the metadata: None deletes a key."""
    return Call("PATCH", f"/items/{_id(item_id)}", _model(ItemOut), json={"metadata": patch})


def put_metadata(item_id: str, metadata: dict[str, Any]) -> Call[ItemOut]:
    return Call("PUT", f"/items/{_id(item_id)}/metadata", _model(ItemOut), json={"metadata": metadata})


def delete_item(item_id: str) -> Call[Deleted]:
    return Call("DELETE", f"/items/{_id(item_id)}", _model(Deleted))


def thumbnail(item_id: str, t: float | None = None) -> Call[bytes]:
    """A JPEG frame of a video item (`t` seconds in)."""
    return Call("GET", f"/items/{_id(item_id)}/thumbnail", lambda r: r.content, params=_given({"t": t}) or None)


def media_path(item_id: str) -> str:
    return f"/media/{_id(item_id)}"


def media(item_id: str, *, byte_range: tuple[int, int] | None = None) -> Call[bytes]:
    """The stored media, whole or the inclusive `byte_range` (start, end)."""
    headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else None
    return Call("GET", media_path(item_id), lambda r: r.content, headers=headers)


def transcript(item_id: str) -> Call[TranscriptOut]:
    return Call("GET", f"/items/{_id(item_id)}/transcript", _model(TranscriptOut), params={"format": "json"})


def transcript_vtt(item_id: str) -> Call[str]:
    return Call("GET", f"/items/{_id(item_id)}/transcript", lambda r: r.text)


def set_transcript(item_id: str, cues: Sequence[CueOut | dict[str, Any]] | str) -> Call[TranscriptOut]:
    """Replace the transcript: cues, or WebVTT / SubRip text; an empty list clears it."""
    path = f"/items/{_id(item_id)}/transcript"
    if isinstance(cues, str):
        kind = "text/vtt" if cues.lstrip("\ufeff").startswith("WEBVTT") else "application/x-subrip"
        return Call("PUT", path, _model(TranscriptOut), content=cues.encode(), headers={"Content-Type": kind})
    body = [c.model_dump() if isinstance(c, CueOut) else c for c in cues]
    return Call("PUT", path, _model(TranscriptOut), json={"cues": body})


# --- jobs --------------------------------------------------------------------------------------------
def list_jobs(*, status: str | None = None, limit: int = 50, offset: int = 0,
              cursor: str | None = None) -> Call[JobsPage]:
    params = _given({"status": status, "limit": limit, "offset": offset or None, "cursor": cursor})
    return Call("GET", "/jobs", _model(JobsPage), params=params)


def job(job_id: str) -> Call[JobOut]:
    return Call("GET", f"/jobs/{_id(job_id)}", _model(JobOut))


def cancel_job(job_id: str) -> Call[JobOut]:
    return Call("DELETE", f"/jobs/{_id(job_id)}", _model(JobOut))


# --- health ------------------------------------------------------------------------------------------
def healthz() -> Call[Health]:
    return Call("GET", "/healthz", _model(Health))


def readyz() -> Call[Readiness]:
    """Readiness; a server still loading (503) answers too, with ready=False and what it waits for."""
    return Call("GET", "/readyz", _model(Readiness), answers=(503,))


def metrics() -> Call[str]:
    return Call("GET", "/metrics", lambda r: r.text)


# --- OpenAI-compatible -------------------------------------------------------------------------------
def models() -> Call[OpenAIModelList]:
    return Call("GET", "/v1/models", _model(OpenAIModelList))


def embeddings(input: str | Sequence[str], model: str = "vatt", *,
               encoding_format: Literal["float", "base64"] = "float",
               dimensions: int | None = None) -> Call[OpenAIEmbeddingResponse]:
    body = _given({"input": input if isinstance(input, str) else list(input), "model": model,
                   "encoding_format": encoding_format, "dimensions": dimensions})
    return Call("POST", "/v1/embeddings", _model(OpenAIEmbeddingResponse), json=body)


# --- collections and snapshots (service-wide routes: never scoped by the client's collection) ---------
def create_collection(name: str, index_type: str | None = None,
                      index_options: dict[str, Any] | None = None) -> Call[CollectionOut]:
    body = _given({"name": name, "index_type": index_type, "index_options": index_options})
    return Call("POST", "/collections", _model(CollectionOut), json=body)


def list_collections() -> Call[CollectionsList]:
    return Call("GET", "/collections", _model(CollectionsList))


def get_collection(name: str) -> Call[CollectionOut]:
    return Call("GET", f"/collections/{_id(name)}", _model(CollectionOut))


def delete_collection(name: str) -> Call[CollectionDeleted]:
    return Call("DELETE", f"/collections/{_id(name)}", _model(CollectionDeleted))


def create_snapshot(name: str) -> Call[SnapshotOut]:
    return Call("POST", f"/collections/{_id(name)}/snapshots", _model(SnapshotOut))


def list_snapshots(name: str) -> Call[SnapshotsList]:
    return Call("GET", f"/collections/{_id(name)}/snapshots", _model(SnapshotsList))


def download_snapshot(name: str, snapshot: str) -> Call[bytes]:
    """The archive (a tar that `vatt index restore` reads)."""
    return Call("GET", f"/collections/{_id(name)}/snapshots/{_id(snapshot)}", lambda r: r.content)


def delete_snapshot(name: str, snapshot: str) -> Call[SnapshotDeleted]:
    return Call("DELETE", f"/collections/{_id(name)}/snapshots/{_id(snapshot)}", _model(SnapshotDeleted))
