"""The HTTP API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas import Job, JobStatus


class SubmitJobRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"type": "sleep", "payload": {"seconds": 3}}]},
    )

    type: str = Field(min_length=1, max_length=200, description="job type, e.g. sleep, noop, fail")
    payload: dict[str, Any] = Field(default_factory=dict, description="input of the job type")


class JobLinks(BaseModel):
    self: str


class JobAccepted(BaseModel):
    id: str
    state: JobStatus
    links: JobLinks


class JobView(BaseModel):
    id: str
    type: str
    state: JobStatus
    payload: dict[str, Any]
    attempt: int
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    version: int = Field(description="seq of the last event folded into this view; 0 before the first")
    links: JobLinks

    @classmethod
    def of(cls, job: Job) -> "JobView":
        return cls(
            id=job.job_id,
            type=job.job_type,
            state=job.status,
            payload=job.payload,
            attempt=job.attempt,
            result=job.result,
            error=job.error,
            error_type=job.error_type,
            created_at=job.created_at,
            updated_at=job.updated_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            version=job.version,
            links=JobLinks(self=job_path(job.job_id)),
        )


class JobList(BaseModel):
    items: list[JobView]


def job_path(job_id: str) -> str:
    return f"/jobs/{job_id}"
