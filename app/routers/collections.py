"""Collections: create, list, describe, delete; and their snapshots (write, list, download, delete).

Every catalogue route (items, jobs, search, classify, media, thumbnails) is also mounted under
/collections/{collection} by app/main.py: the same routers, their collection resolved by app/deps.py.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import FileResponse

from index.snapshot import SnapshotInfo

from ..bodies import error_responses, json_body, json_model
from ..deps import CollectionDep, CollectionsDep, InCollection, SettingsDep, WriteAuth
from ..errors import ServiceError
from ..schemas import (CollectionCreate, CollectionDeleted, CollectionOut, CollectionsList, SnapshotDeleted,
                       SnapshotOut, SnapshotsList)
from ..services.collections import Collection

router = APIRouter(prefix="/collections", tags=["collections"])


def _out(col: Collection) -> CollectionOut:
    return CollectionOut.model_validate(col.describe())


def _snapshot_out(col: Collection, info: SnapshotInfo) -> SnapshotOut:
    return SnapshotOut(**info.to_dict(), url=f"/collections/{col.name}/snapshots/{info.name}")


@router.post("", status_code=201, response_model=CollectionOut, dependencies=[WriteAuth],
             summary="Create a named collection (its own catalogue, media and jobs; the model is shared)",
             responses=error_responses(400, 401, 403, 409, 413, 415, 422, 507), openapi_extra=json_body(CollectionCreate))
async def create_collection(request: Request, settings: SettingsDep, collections: CollectionsDep) -> CollectionOut:
    body = await json_model(request, CollectionCreate, settings)
    col = await run_in_threadpool(collections.create, body.name, index_type=body.index_type,
                                  index_options=body.index_options)
    return await run_in_threadpool(_out, col)


@router.get("", response_model=CollectionsList, summary="Every collection with its counts")
async def list_collections(collections: CollectionsDep) -> CollectionsList:
    return CollectionsList(collections=await run_in_threadpool(lambda: [_out(c) for c in collections.all()]))


@router.get("/{collection}", response_model=CollectionOut, dependencies=[InCollection],
            summary="One collection: items per kind, vectors per space, index type, model",
            responses=error_responses(400, 404))
async def get_collection(col: CollectionDep) -> CollectionOut:
    return await run_in_threadpool(_out, col)


@router.delete("/{collection}", response_model=CollectionDeleted, dependencies=[WriteAuth],
               summary="Delete a collection with its items, media, thumbnails and jobs (its snapshots stay on disk)",
               responses=error_responses(400, 401, 403, 404))
async def delete_collection(collection: str, collections: CollectionsDep) -> CollectionDeleted:
    col = await run_in_threadpool(collections.delete, collection)
    return CollectionDeleted(name=col.name)


@router.post("/{collection}/snapshots", status_code=201, response_model=SnapshotOut, dependencies=[WriteAuth, InCollection],
             summary="Write a consistent snapshot (catalogue at one epoch + its items' media) while serving goes on",
             responses=error_responses(400, 401, 403, 404, 409, 507))
async def create_snapshot(col: CollectionDep) -> SnapshotOut:
    info = await run_in_threadpool(col.snapshot)
    return _snapshot_out(col, info)


@router.get("/{collection}/snapshots", response_model=SnapshotsList, dependencies=[InCollection],
            summary="A collection's snapshots, oldest first",
            responses=error_responses(400, 404))
async def list_snapshots(col: CollectionDep) -> SnapshotsList:
    found = await run_in_threadpool(col.snapshots)
    return SnapshotsList(snapshots=[_snapshot_out(col, s) for s in found])


@router.get("/{collection}/snapshots/{snapshot}", dependencies=[InCollection],
            summary="Download a snapshot archive (a tar; `vatt index restore`)",
            responses={200: {"content": {"application/x-tar": {}}, "description": "the archive"},
                       **error_responses(400, 404)})
async def download_snapshot(col: CollectionDep, snapshot: str) -> FileResponse:
    path = col.snapshot_file(snapshot)
    return FileResponse(path, media_type="application/x-tar", filename=f"{col.name}-{snapshot}.tar")


@router.delete("/{collection}/snapshots/{snapshot}", response_model=SnapshotDeleted,
               dependencies=[WriteAuth, InCollection],
               summary="Delete a snapshot archive", responses=error_responses(400, 401, 403, 404))
async def delete_snapshot(col: CollectionDep, snapshot: str) -> SnapshotDeleted:
    path = col.snapshot_file(snapshot)
    try:
        path.unlink()
    except FileNotFoundError:
        raise ServiceError(404, f"snapshot {snapshot!r} was deleted meanwhile", code="not_found") from None
    return SnapshotDeleted(name=snapshot)
