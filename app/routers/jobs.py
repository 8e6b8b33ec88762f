"""GET /jobs/{id}: where an ingest stands (status, progress in segments, the item it makes)."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import JobsDep
from ..errors import ServiceError
from ..schemas import ErrorBody, JobOut

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobOut, summary="An ingest job's status and progress",
            responses={404: {"model": ErrorBody}})
async def get_job(job_id: str, jobs: JobsDep) -> JobOut:
    job = jobs.get(job_id)
    if job is None:
        raise ServiceError(404, f"no job with id {job_id!r} (jobs are kept in memory until the server restarts)")
    return JobOut.model_validate(job.to_dict())
