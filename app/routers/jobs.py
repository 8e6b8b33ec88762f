"""Ingest jobs: GET /jobs (status filter, offset or cursor paging), GET /jobs/{id}, DELETE /jobs/{id} (cancel)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from ..bodies import error_responses
from ..deps import IngestDep, WriteAuth
from ..errors import ServiceError
from ..paging import check_offset, decode_cursor, encode_cursor
from ..schemas import JobOut, JobsPage, JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"])


def _missing(job_id: str) -> ServiceError:
    return ServiceError(404, f"no job with id {job_id!r} (finished jobs are kept for the job_retention_s setting)")


@router.get("", response_model=JobsPage, summary="List ingest jobs, newest first",
            responses=error_responses(400, 422))
async def list_jobs(
    jobs: IngestDep,
    status: Annotated[JobStatus | None, Query(description="only jobs in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    cursor: Annotated[str | None, Query(description="the `next` of the previous page (instead of offset)")] = None,
) -> JobsPage:
    check_offset(offset, cursor)
    after = None if cursor is None else decode_cursor(cursor)
    page, total = await run_in_threadpool(jobs.list, status=status, limit=limit + 1, offset=offset, after=after)
    more, page = len(page) > limit, page[:limit]
    nxt = encode_cursor(page[-1].created, page[-1].id) if more else None
    return JobsPage(jobs=[JobOut.model_validate(j.to_dict()) for j in page], total=total, offset=offset, limit=limit,
                    next=nxt)


@router.get("/{job_id}", response_model=JobOut, summary="An ingest job's status and progress",
            responses=error_responses(404))
async def get_job(job_id: str, jobs: IngestDep) -> JobOut:
    job = await run_in_threadpool(jobs.get, job_id)
    if job is None:
        raise _missing(job_id)
    return JobOut.model_validate(job.to_dict())


@router.delete("/{job_id}", response_model=JobOut, dependencies=[WriteAuth],
               summary="Cancel a queued or running job (its partial work is rolled back)",
               responses=error_responses(401, 403, 404, 409))
async def cancel_job(job_id: str, jobs: IngestDep) -> JobOut:
    before = await run_in_threadpool(jobs.get, job_id)
    if before is None:
        raise _missing(job_id)
    if before.status not in ("queued", "running"):
        raise ServiceError(409, f"job {job_id} is already {before.status}; only queued or running jobs can be "
                                "cancelled")
    job = await run_in_threadpool(jobs.cancel, job_id)
    return JobOut.model_validate(job.to_dict())
