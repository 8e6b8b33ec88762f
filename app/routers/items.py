"""Items: ingest (202 + a job), list, get (optionally with vectors), patch metadata, delete, thumbnail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from ..bodies import DOCUMENTED_MODELS, form_model, json_model, named_upload, request_body, where_param
from ..deps import CatalogDep, FileOrJson, JobsDep, PathsDep, QueryDep, SettingsDep, StoreDep, WriteAuth
from ..errors import ServiceError
from ..paging import check_offset, decode_cursor, encode_cursor
from ..schemas import (Deleted, ErrorBody, ItemCreateRequest, ItemForm, ItemOut, ItemPatch, ItemsPage, ItemWithVectors,
                       JobAccepted, Kind, SegmentVector, SpaceVectors, item_out)
from ..services.encoder import normalized_mean
from ..services.sources import MediaSources

router = APIRouter(prefix="/items", tags=["items"])
DOCUMENTED_MODELS[ItemPatch.__name__] = ItemPatch  # PATCH reads its body with json_model

def _E(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries: these statuses answer with the ErrorBody shape."""
    return {c: {"model": ErrorBody} for c in codes}


@router.post(
    "", status_code=202, response_model=JobAccepted, dependencies=[WriteAuth],
    summary="Ingest an uploaded file (or a server path) in the background",
    responses=_E(400, 401, 403, 404, 413, 415, 422, 507),
    openapi_extra=request_body(ItemCreateRequest, {
        "metadata": {"type": "string", "description": "a JSON object, e.g. {\"title\": \"...\"}"},
        "source": {"type": "string", "description": "defaults to the file name"}},
        required=["file"], description="multipart 'file' (+ 'metadata' JSON string), or JSON {\"path\": ...} "
                                       "when server paths are enabled"),
)
async def create_item(request: Request, jobs: JobsDep, settings: SettingsDep, paths: PathsDep,
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
        with named_upload(file):
            job = await run_in_threadpool(jobs.accept_upload, file.path, source=source,
                                          metadata=opts.metadata, sha256=file.sha256)
    return JobAccepted(job_id=job.id, item_id=job.item_id, status=job.status, note=job.note)


@router.get("", response_model=ItemsPage, summary="List items, filtered by kind and metadata",
            responses=_E(400, 422))
async def list_items(
    catalog: CatalogDep, store: StoreDep, paths: PathsDep,
    kind: Annotated[list[Kind] | None, Query(description="repeat to allow several kinds")] = None,
    where: Annotated[str | None, Query(description="metadata filter as a JSON object")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    cursor: Annotated[str | None, Query(description="the `next` of the previous page (instead of offset)")] = None,
) -> ItemsPage:
    filters = where_param(where)
    check_offset(offset, cursor)
    after = None if cursor is None else decode_cursor(cursor)

    sources = MediaSources(store, paths)

    def page() -> tuple[list[ItemOut], int, str | None]:
        items = catalog.list_items(kinds=kind, where=filters, limit=limit + 1, offset=offset, after=after)
        more, items = len(items) > limit, items[:limit]
        nxt = encode_cursor(items[-1].created, items[-1].id) if more else None
        return ([item_out(i, playable=sources.playable(i)) for i in items], catalog.count(kinds=kind, where=filters),
                nxt)

    items, total, nxt = await run_in_threadpool(page)
    return ItemsPage(items=items, total=total, offset=offset, limit=limit, next=nxt)


@router.get("/{item_id}", response_model=ItemWithVectors,
            summary="One item (with its vectors per space on ?include=vectors)", responses=_E(404, 422))
async def get_item(
    item_id: str, catalog: CatalogDep, query: QueryDep, store: StoreDep, paths: PathsDep,
    include: Annotated[list[Literal["vectors"]] | None, Query(description="'vectors': per segment and whole item")] = None,
) -> ItemWithVectors:
    found = await run_in_threadpool(catalog.get_item, item_id)
    item = item_out(found, playable=await run_in_threadpool(MediaSources(store, paths).playable, found))
    if not include:
        return ItemWithVectors(**item.model_dump())
    per_space = await run_in_threadpool(query.item_vectors, item_id)
    vectors = {space: SpaceVectors(segments=[SegmentVector(start=s.start, end=s.end, vector=v.tolist())
                                             for s, v in zip(segs, x)],
                                   item=normalized_mean(x).tolist())
               for space, (segs, x) in per_space.items()}
    return ItemWithVectors(**item.model_dump(), vectors=vectors)


@router.patch("/{item_id}", response_model=ItemOut, dependencies=[WriteAuth],
              summary="Merge into an item's metadata as a JSON merge patch (RFC 7396: null deletes a key; "
                      "vectors untouched; `where` filters see it at once)",
              responses=_E(400, 401, 403, 404, 413, 415, 422),
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": {"$ref": "#/components/schemas/ItemPatch"}}}}})
async def patch_item(item_id: str, request: Request, catalog: CatalogDep, settings: SettingsDep, store: StoreDep,
                     paths: PathsDep) -> ItemOut:
    body = await json_model(request, ItemPatch, settings)
    item = await run_in_threadpool(catalog.update_metadata, item_id, body.metadata, merge=True)
    return item_out(item, playable=await run_in_threadpool(MediaSources(store, paths).playable, item))


@router.put("/{item_id}/metadata", response_model=ItemOut, dependencies=[WriteAuth],
            summary="Replace an item's metadata whole (vectors untouched; `where` filters see it at once)",
            responses=_E(400, 401, 403, 404, 413, 415, 422),
            openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ItemPatch"}}}}})
async def put_metadata(item_id: str, request: Request, catalog: CatalogDep, settings: SettingsDep, store: StoreDep,
                       paths: PathsDep) -> ItemOut:
    body = await json_model(request, ItemPatch, settings)
    item = await run_in_threadpool(catalog.update_metadata, item_id, body.metadata, merge=False)
    return item_out(item, playable=await run_in_threadpool(MediaSources(store, paths).playable, item))


@router.delete("/{item_id}", response_model=Deleted, dependencies=[WriteAuth], summary="Delete an item and its media",
               responses=_E(401, 403, 404))
async def delete_item(item_id: str, catalog: CatalogDep, store: StoreDep) -> Deleted:
    item = await run_in_threadpool(catalog.delete_item, item_id)
    await run_in_threadpool(store.remove, item.id)
    return Deleted(id=item.id)


@router.get("/{item_id}/thumbnail", summary="A JPEG frame of a video item",
            responses={200: {"content": {"image/jpeg": {}}, "description": "JPEG"}, **_E(404, 422)})
async def thumbnail(item_id: str, catalog: CatalogDep, store: StoreDep, paths: PathsDep,
                    t: Annotated[float | None, Query(ge=0, le=1e7, description="seconds into the item")] = None) -> Response:
    item = await run_in_threadpool(catalog.get_item, item_id)
    if item.kind != "video":
        raise ServiceError(404, f"item {item_id} is {item.kind}: only video items have thumbnails")
    path = await run_in_threadpool(MediaSources(store, paths).path, item)
    jpeg = None if path is None else await run_in_threadpool(lambda: store.thumbnail(item.id, t, path=path))
    if jpeg is None:
        raise ServiceError(404, f"the media of item {item_id} is not stored on this server")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})
