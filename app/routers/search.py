"""POST /search: by text, by an uploaded file, by a catalogued item or by positive/negative examples; best
items with their moments, fields chosen by include/exclude. POST /search/batch: several at once."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from model import whole_item_vector

from ..bodies import error_responses, form_model, json_body, json_model, named_upload, request_body
from ..deps import EncodeFileOrJson, QueryDep, SettingsDep, SourcesDep
from ..schemas import (Confidence, MomentOut, SearchBatchRequest, SearchBatchResponse, SearchOptions,
                       SearchRequest, SearchResponse, SearchResult, TimelineCell, item_out)
from ..services.query import QueryService, QueryVectors
from ..services.recommend import build_queries
from ..services.sources import MediaSources

router = APIRouter(tags=["search"])

_FORM = {
    "k": {"type": "integer", "minimum": 1, "maximum": 1000},
    "kinds": {"type": "string", "description": "comma-separated: video, audio, text"},
    "where": {"type": "string", "description": "metadata filter as a JSON object"},
    "space": {"type": "string", "enum": ["va", "vt"]},
    "moments": {"type": "integer", "minimum": 1, "maximum": 50},
    "offset": {"type": "integer", "minimum": 0, "maximum": 10000},
    "score_threshold": {"type": "number", "minimum": -1, "maximum": 1},
    "include": {"type": "string", "description": "comma-separated: timeline, vectors (metadata, moments: default)"},
    "exclude": {"type": "string", "description": "comma-separated: metadata, moments"},
    "mode": {"type": "string", "enum": ["vector", "keyword", "hybrid"]},
    "fusion": {"type": "string", "enum": ["rrf", "weighted"]},
    "rrf_k": {"type": "integer", "minimum": 1, "maximum": 10000},
    "alpha": {"type": "number", "minimum": 0, "maximum": 1},
}


@router.post(
    "/search", response_model=SearchResponse, summary="Search the catalogue by text, file or item",
    description="text -> video in vt; video -> video in va (default) or vt; audio <-> video and video -> audio "
                "in va. text -> audio has no shared space (400). A file or item query uses the normalised "
                "mean of its segment vectors. A vector query names its space; offset and score_threshold "
                "page and filter the ranked list. mode=keyword searches the transcripts' words (full-text "
                "index); mode=hybrid fuses both per moment (fusion=rrf with rrf_k, or weighted with alpha); "
                "each moment then carries its matched lines.",
    responses=error_responses(400, 401, 403, 404, 413, 415, 422, 429, 507),
    openapi_extra=request_body(SearchRequest, _FORM, required=["file"],
                               description="JSON {\"text\"|\"item_id\"|\"vector\"|\"positive\" (+\"negative\"), k, "
                                           "offset, score_threshold, kinds, where, space, include, exclude} or a "
                                           "multipart 'file' with the same fields as form values"),
)
async def search(request: Request, query: QueryDep, settings: SettingsDep, sources: SourcesDep,
                 upload: EncodeFileOrJson) -> JSONResponse:
    form = upload.form
    if form is None:
        req = await json_model(request, SearchRequest, settings)
        if req.text is not None and req.mode == "keyword":  # words only: no embedding needed
            q = QueryVectors("text", {}, [0.0], [0.0])
        else:
            (q,) = await build_queries(query, [req])
        opts: SearchOptions = req
        text = req.text
    else:
        opts = form_model(SearchOptions, form, lists=("kinds", "include", "exclude"), jsons=("where",))
        text = None
        with named_upload(form.file):
            q = await run_in_threadpool(lambda: query.from_file(form.file.path, cancel=upload.cancelled))
    return JSONResponse(await _answer(query, sources, q, opts, text))


@router.post(
    "/search/batch", response_model=SearchBatchResponse, summary="Several JSON searches in one request",
    description="Each entry is a POST /search JSON body; their texts (queries and recommend examples) are "
                "embedded in one forward pass. Answers come in the request's order.",
    responses=error_responses(400, 401, 403, 404, 413, 415, 422, 429),
    openapi_extra=json_body(SearchBatchRequest),
)
async def search_batch(request: Request, query: QueryDep, settings: SettingsDep,
                       sources: SourcesDep) -> JSONResponse:
    batch = await json_model(request, SearchBatchRequest, settings)
    queries = await build_queries(query, batch.searches)
    return JSONResponse({"responses": [await _answer(query, sources, q, opts, opts.text)
                                       for q, opts in zip(queries, batch.searches)]})


async def _answer(query: QueryService, sources: MediaSources, q: QueryVectors, opts: SearchOptions,
                  text: str | None) -> dict[str, Any]:
    """One search's response body, shaped by include/exclude (excluded fields are left out, not null);
    `text`: the query's words, for the keyword and hybrid modes."""
    include, exclude = set(opts.include or ()), set(opts.exclude or ())
    space, hits = await run_in_threadpool(
        lambda: query.search(q, k=opts.k, kinds=opts.kinds, where=opts.where, space=opts.space,
                             moments=opts.moments, include_query_item=opts.include_query_item,
                             offset=opts.offset, score_threshold=opts.score_threshold, mode=opts.mode, text=text,
                             fusion=opts.fusion, rrf_k=opts.rrf_k, alpha=opts.alpha))
    # the probes' yardstick is cosine: keyword and fused scores are not comparable with it
    standings = await query.standings(q, space, [h.score for h in hits]) if opts.mode == "vector" else None

    def per_hit() -> tuple[list[bool], list[list[tuple[float, float, float]]] | None, list[list[float]] | None]:
        timelines = [query.timeline(q, space, h.item.id) for h in hits] if "timeline" in include else None
        vectors = [whole_item_vector(query.catalog.item_vectors(h.item.id, space)[1]).tolist() for h in hits] \
            if "vectors" in include else None
        return [sources.playable(h.item) for h in hits], timelines, vectors

    playable, timelines, vectors = await run_in_threadpool(per_hit)
    results = [SearchResult(item=item_out(h.item, playable=playable[i], base=sources.base), score=h.score,
                            moments=[MomentOut(start=m.start, end=m.end, score=m.score, text=m.text)
                                     for m in h.moments],
                            confidence=None if standings is None else Confidence(**vars(standings[i])),
                            timeline=None if timelines is None else [TimelineCell(start=a, end=b, score=c)
                                                                     for a, b, c in timelines[i]],
                            vector=None if vectors is None else vectors[i])
               for i, h in enumerate(hits)]
    body = SearchResponse(results=results, space=space, query_kind=q.kind, moment_floor=query.moment_floor,
                          mode=opts.mode)
    drop: dict[str, Any] = {f: True for f in exclude & {"moments", "timeline"}}
    if "vectors" in exclude:
        drop["vector"] = True
    if "metadata" in exclude:
        drop["item"] = {"metadata"}
    return body.model_dump(mode="json", exclude={"results": {"__all__": drop}} if drop else None)
