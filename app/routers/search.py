"""POST /search: by text, by an uploaded file or by a catalogued item; best items with their moments."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from ..bodies import error_responses, form_model, json_model, named_upload, request_body
from ..deps import EncodeFileOrJson, PathsDep, QueryDep, SettingsDep, StoreDep
from ..schemas import (Confidence, MomentOut, SearchOptions, SearchRequest, SearchResponse, SearchResult,
                       TimelineCell, item_out)
from ..services.query import QueryVectors
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
    "include": {"type": "string", "description": "comma-separated: timeline"},
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
                               description="JSON {\"text\"|\"item_id\"|\"vector\", k, offset, score_threshold, "
                                           "kinds, where, space} or a multipart 'file' with the same fields as "
                                           "form values"),
)
async def search(request: Request, query: QueryDep, settings: SettingsDep, store: StoreDep, paths: PathsDep,
                 upload: EncodeFileOrJson) -> SearchResponse:
    form = upload.form
    if form is None:
        req = await json_model(request, SearchRequest, settings)
        if req.text is not None and req.mode == "keyword":  # words only: no embedding needed
            q = QueryVectors("text", {}, [0.0], [0.0])
        elif req.text is not None:
            q = await query.from_text(req.text)
        elif req.vector is not None:
            q = query.from_vector(req.vector, req.space)
        else:
            q = await run_in_threadpool(query.from_item, req.item_id)
        opts: SearchOptions = req
        text = req.text
    else:
        opts = form_model(SearchOptions, form, lists=("kinds", "include"), jsons=("where",))
        text = None
        with named_upload(form.file):
            q = await run_in_threadpool(lambda: query.from_file(form.file.path, cancel=upload.cancelled))
    space, hits = await run_in_threadpool(
        lambda: query.search(q, k=opts.k, kinds=opts.kinds, where=opts.where, space=opts.space,
                             moments=opts.moments, include_query_item=opts.include_query_item,
                             offset=opts.offset, score_threshold=opts.score_threshold, mode=opts.mode, text=text,
                             fusion=opts.fusion, rrf_k=opts.rrf_k, alpha=opts.alpha))
    standings = await query.standings(q, space, [h.score for h in hits])
    sources = MediaSources(store, paths)

    def per_hit() -> tuple[list[bool], list[list[tuple[float, float, float]]] | None]:
        timelines = [query.timeline(q, space, h.item.id) for h in hits] if "timeline" in (opts.include or ()) else None
        return [sources.playable(h.item) for h in hits], timelines

    playable, timelines = await run_in_threadpool(per_hit)
    results = [SearchResult(item=item_out(h.item, playable=playable[i]), score=h.score,
                            moments=[MomentOut(start=m.start, end=m.end, score=m.score, text=m.text)
                                     for m in h.moments],
                            confidence=None if standings is None else Confidence(**vars(standings[i])),
                            timeline=None if timelines is None else [TimelineCell(start=a, end=b, score=c)
                                                                     for a, b, c in timelines[i]])
               for i, h in enumerate(hits)]
    return SearchResponse(results=results, space=space, query_kind=q.kind, moment_floor=query.moment_floor,
                          mode=opts.mode)
