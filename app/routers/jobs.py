"""Ingest jobs: GET /jobs (status filter, paging), GET /jobs/{id}, DELETE /jobs/{id} (cancel)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from ..bodies import error_responses
from ..deps import IngestDep, WriteAuth
from ..errors import ServiceError
from ..schemas import JobOut, JobsPage, JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"])


def _missing(job_id: str) -> ServiceError:
    return ServiceError(404, f"no job with id {job_id!r} (finished jobs are kept for the job_retention_s setting)")


@router.get("", response_model=JobsPage, summary="List ingest jobs, newest first")
async def list_jobs(
    jobs: IngestDep,
    status: Annotated[JobStatus | None, Query(description="only jobs in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> JobsPage:
    page, total = await run_in_threadpool(jobs.list, status=status, limit=limit, offset=offset)
    return JobsPage(jobs=[JobOut.model_validate(j.to_dict()) for j in page], total=total, offset=offset, limit=limit)


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
