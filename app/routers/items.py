"""Items: ingest (202 + a job), list, get (optionally with vectors), patch metadata, delete, thumbnail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from index import Catalog
from model import whole_item_vector
from model.captions import format_vtt

from ..bodies import error_responses, form_model, json_body, json_model, named_upload, request_body, where_param
from ..deps import CatalogDep, FileOrJson, IngestDep, PathsDep, QueryDep, SettingsDep, SourcesDep, StoreDep, WriteAuth
from ..errors import ServiceError
from ..paging import check_offset, decode_cursor, encode_cursor
from ..schemas import (CueOut, Deleted, ItemCreateRequest, ItemForm, ItemOut, ItemPatch, ItemsPage, ItemWithVectors,
                       JobAccepted, Kind, SegmentVector, SpaceVectors, TranscriptOut, item_out)
from ..services.sources import MediaSources
from ..settings import Settings
from ..services.transcripts import parse_upload
from ..uploads import read_body

router = APIRouter(prefix="/items", tags=["items"])


@router.post(
    "", status_code=202, response_model=JobAccepted, dependencies=[WriteAuth],
    summary="Ingest an uploaded file (or a server path) in the background",
    responses=error_responses(400, 401, 403, 404, 413, 415, 422, 507),
    openapi_extra=request_body(ItemCreateRequest, {
        "metadata": {"type": "string", "description": "a JSON object, e.g. {\"title\": \"...\"}"},
        "source": {"type": "string", "description": "defaults to the file name"},
        "transcript": {"type": "string", "format": "binary",
                       "description": "optional .vtt, .srt or JSON cues [{start, end, text}]"}},
        required=["file"], description="multipart 'file' (+ 'metadata' JSON string), or JSON {\"path\": ...} "
                                       "when server paths are enabled"),
)
async def create_item(request: Request, jobs: IngestDep, settings: SettingsDep, paths: PathsDep,
                      upload: FileOrJson) -> JobAccepted:
    form = upload.form
    if form is None:
        body = await json_model(request, ItemCreateRequest, settings)
        path = paths.check(body.path)
        job = await run_in_threadpool(jobs.accept_path, path, source=body.source or str(path), metadata=body.metadata)
    else:
        opts = form_model(ItemForm, form, jsons=("metadata",))
        file = form.file
        source = opts.source or Path(file.filename).name or "upload"
        sent = form.small_files.get("transcript")
        cues = parse_upload(sent[1], filename=sent[0]) if sent is not None else None
        with named_upload(file):
            job = await run_in_threadpool(jobs.accept_upload, file.path, source=source,
                                          metadata=opts.metadata, sha256=file.sha256, cues=cues)
    return JobAccepted(job_id=job.id, item_id=job.item_id, status=job.status, note=job.note)


@router.get("", response_model=ItemsPage, summary="List items, filtered by kind and metadata",
            responses=error_responses(400, 422))
async def list_items(
    catalog: CatalogDep, sources: SourcesDep,
    kind: Annotated[list[Kind] | None, Query(description="repeat to allow several kinds")] = None,
    where: Annotated[str | None, Query(description="metadata filter as a JSON object")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    cursor: Annotated[str | None, Query(description="the `next` of the previous page (instead of offset)")] = None,
) -> ItemsPage:
    filters = where_param(where)
    check_offset(offset, cursor)
    after = None if cursor is None else decode_cursor(cursor)

    def page() -> tuple[list[ItemOut], int, str | None]:
        items = catalog.list_items(kinds=kind, where=filters, limit=limit + 1, offset=offset, after=after)
        more, items = len(items) > limit, items[:limit]
        nxt = encode_cursor(items[-1].created, items[-1].id) if more else None
        return ([item_out(i, playable=sources.playable(i), base=sources.base) for i in items], catalog.count(kinds=kind, where=filters),
                nxt)

    items, total, nxt = await run_in_threadpool(page)
    return ItemsPage(items=items, total=total, offset=offset, limit=limit, next=nxt)


@router.get("/{item_id}", response_model=ItemWithVectors,
            summary="One item (with its vectors per space on ?include=vectors)", responses=error_responses(404, 422))
async def get_item(
    item_id: str, catalog: CatalogDep, query: QueryDep, sources: SourcesDep,
    include: Annotated[list[Literal["vectors"]] | None, Query(description="'vectors': per segment and whole item")] = None,
) -> ItemWithVectors:
    found = await run_in_threadpool(catalog.get_item, item_id)
    item = item_out(found, playable=await run_in_threadpool(sources.playable, found), base=sources.base)
    if not include:
        return ItemWithVectors(**item.model_dump())
    per_space = await run_in_threadpool(query.item_vectors, item_id)
    vectors = {space: SpaceVectors(segments=[SegmentVector(start=s.start, end=s.end, vector=v.tolist())
                                             for s, v in zip(segs, x)],
                                   item=whole_item_vector(x).tolist())
               for space, (segs, x) in per_space.items()}
    return ItemWithVectors(**item.model_dump(), vectors=vectors)


@router.patch("/{item_id}", response_model=ItemOut, dependencies=[WriteAuth],
              summary="Merge into an item's metadata as a JSON merge patch (RFC 7396: null deletes a key; "
                      "vectors untouched; `where` filters see it at once)",
              responses=error_responses(400, 401, 403, 404, 413, 415, 422),
              openapi_extra=json_body(ItemPatch))
async def patch_item(item_id: str, request: Request, catalog: CatalogDep, settings: SettingsDep,
                     sources: SourcesDep) -> ItemOut:
    return await _set_metadata(item_id, request, catalog, settings, sources, merge=True)


@router.put("/{item_id}/metadata", response_model=ItemOut, dependencies=[WriteAuth],
            summary="Replace an item's metadata whole (vectors untouched; `where` filters see it at once)",
            responses=error_responses(400, 401, 403, 404, 413, 415, 422),
            openapi_extra=json_body(ItemPatch))
async def put_metadata(item_id: str, request: Request, catalog: CatalogDep, settings: SettingsDep,
                       sources: SourcesDep) -> ItemOut:
    return await _set_metadata(item_id, request, catalog, settings, sources, merge=False)


async def _set_metadata(item_id: str, request: Request, catalog: Catalog, settings: Settings, sources: MediaSources, *,
                        merge: bool) -> ItemOut:
    """PATCH (an RFC 7396 merge) and PUT (a replacement) of an item's metadata: one body, one store write."""
    body = await json_model(request, ItemPatch, settings)
    item = await run_in_threadpool(catalog.update_metadata, item_id, body.metadata, merge=merge)
    return item_out(item, playable=await run_in_threadpool(sources.playable, item), base=sources.base)


@router.delete("/{item_id}", response_model=Deleted, dependencies=[WriteAuth], summary="Delete an item and its media",
               responses=error_responses(401, 403, 404))
async def delete_item(item_id: str, catalog: CatalogDep, store: StoreDep) -> Deleted:
    item = await run_in_threadpool(catalog.delete_item, item_id)
    await run_in_threadpool(store.remove, item.id)
    return Deleted(id=item.id)


@router.get("/{item_id}/thumbnail", summary="A JPEG frame of a video item",
            responses={200: {"content": {"image/jpeg": {}}, "description": "JPEG"}, **error_responses(404, 422)})
async def thumbnail(item_id: str, catalog: CatalogDep, store: StoreDep, sources: SourcesDep,
                    t: Annotated[float | None, Query(ge=0, le=1e7, description="seconds into the item")] = None) -> Response:
    item = await run_in_threadpool(catalog.get_item, item_id)
    if item.kind != "video":
        raise ServiceError(404, f"item {item_id} is {item.kind}: only video items have thumbnails")
    path = await run_in_threadpool(sources.path, item)
    jpeg = None if path is None else await run_in_threadpool(lambda: store.thumbnail(item.id, t, path=path))
    if jpeg is None:
        raise ServiceError(404, f"the media of item {item_id} is not stored on this server")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


# --- transcripts -------------------------------------------------------------------------------------
@router.get("/{item_id}/transcript", summary="An item's transcript: WebVTT, or JSON cues with ?format=json",
            responses={200: {"content": {"text/vtt": {}, "application/json": {
                "schema": {"$ref": "#/components/schemas/TranscriptOut"}}}}, **error_responses(404, 422)})
async def get_transcript(item_id: str, catalog: CatalogDep,
                         format: Annotated[Literal["vtt", "json"], Query(description="vtt (default) or json")] = "vtt",
                         ) -> Response:
    cues = await run_in_threadpool(catalog.transcript, item_id)
    if format == "json":
        body = TranscriptOut(item_id=item_id, cues=[CueOut(start=s, end=e, text=t) for s, e, t in cues])
        return Response(body.model_dump_json(), media_type="application/json")
    return Response(format_vtt(cues), media_type="text/vtt; charset=utf-8")


@router.put("/{item_id}/transcript", response_model=TranscriptOut, dependencies=[WriteAuth],
            summary="Replace an item's transcript (body: WebVTT, SubRip or JSON cues; an empty list clears it)",
            responses=error_responses(400, 401, 403, 404, 413, 422),
            openapi_extra={"requestBody": {"required": True, "content": {
                "text/vtt": {"schema": {"type": "string"}}, "application/x-subrip": {"schema": {"type": "string"}},
                "application/json": {"schema": {"$ref": "#/components/schemas/TranscriptOut"}}}}})
async def put_transcript(item_id: str, request: Request, catalog: CatalogDep, settings: SettingsDep) -> TranscriptOut:
    data = await read_body(request, max_bytes=settings.max_transcript_bytes, what="transcript")
    cues = parse_upload(data, content_type=request.headers.get("content-type"))
    await run_in_threadpool(catalog.set_transcript, item_id, cues)
    stored = await run_in_threadpool(catalog.transcript, item_id)
    return TranscriptOut(item_id=item_id, cues=[CueOut(start=s, end=e, text=t) for s, e, t in stored])
