"""HTTP routes: thin. They validate, append a command, or read a read model."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError
from pymongo import DESCENDING

from schemas import JobStatus, SubmitJob, encode_command, topics
from services.common.readmodel import JOBS, job_from_document
from services.ingest.auth import tenant_of
from services.ingest.models import JobAccepted, JobLinks, JobList, JobView, SubmitJobRequest, job_path
from services.ingest.problems import PROBLEM_JSON, Problem, field_error, invalid, pydantic_errors
from services.processor.handlers import UnknownJobType

router = APIRouter()

_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "RFC 9457 problem document"}
PROBLEMS = {401: _PROBLEM, 422: _PROBLEM}


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobAccepted,
    responses={**PROBLEMS, 503: _PROBLEM},
    summary="Submit a job",
    description="Answers 202 once the broker has acknowledged the SubmitJob command (acks=all): "
    "an accepted job is never lost.",
)
async def submit_job(
    body: SubmitJobRequest, request: Request, response: Response, tenant: str = Depends(tenant_of)
) -> JobAccepted:
    state = request.app.state
    try:
        payload = state.registry.validate(body.type, body.payload)
    except UnknownJobType as unknown:
        raise invalid([field_error(("type",), str(unknown))]) from None
    except ValidationError as error:
        raise invalid(pydantic_errors(error.errors(), ("payload",))) from None
    job_id = str(uuid.uuid4())
    try:
        command = SubmitJob(
            command_id=str(uuid.uuid4()),
            job_id=job_id,
            tenant=tenant,
            issued_at=datetime.now(timezone.utc),
            correlation_id=request.headers.get("x-correlation-id"),
            job_type=body.type,
            payload=payload.model_dump(mode="json"),
        )
    except ValidationError as error:
        raise invalid(pydantic_errors(error.errors())) from None
    await _append(state, command)
    state.accepted.remember(command)
    response.headers["Location"] = job_path(job_id)
    return JobAccepted(id=job_id, state=JobStatus.PENDING, links=JobLinks(self=job_path(job_id)))


@router.get("/jobs/{job_id}", response_model=JobView, responses={**PROBLEMS, 404: _PROBLEM}, summary="Get a job")
async def get_job(job_id: str, request: Request, tenant: str = Depends(tenant_of)) -> JobView:
    state = request.app.state
    document = await state.db[JOBS].find_one({"_id": job_id, "tenant": tenant})
    if document is not None:
        return JobView.of(job_from_document(document))
    accepted = state.accepted.get(job_id, tenant)
    if accepted is not None:
        return accepted
    raise Problem(404, "job-not-found", "No such job", f"There is no job {job_id!r}.", job_id=job_id)


@router.get("/jobs", response_model=JobList, responses=PROBLEMS, summary="List jobs, newest first")
async def list_jobs(
    request: Request,
    tenant: str = Depends(tenant_of),
    limit: int = Query(50, ge=1, le=1000, description="how many jobs to return"),
    state: JobStatus | None = Query(None, description="only jobs in this state"),
) -> JobList:
    query: dict = {"tenant": tenant}
    if state is not None:
        query["status"] = state.value
    cursor = request.app.state.db[JOBS].find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
    return JobList(items=[JobView.of(job_from_document(document)) async for document in cursor])


@router.get("/healthz", summary="The process is alive", tags=["operations"])
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Broker and database answer", tags=["operations"], responses={503: _PROBLEM})
async def readyz(request: Request) -> dict:
    state = request.app.state
    checks = {}
    try:
        await asyncio.wait_for(state.producer.client.fetch_all_metadata(), 3)
        checks["broker"] = "ok"
    except Exception as error:
        checks["broker"] = f"unavailable: {type(error).__name__}"
    try:
        await asyncio.wait_for(state.db.command("ping"), 3)
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"unavailable: {type(error).__name__}"
    if any(value != "ok" for value in checks.values()):
        raise Problem(503, "not-ready", "Not ready", "A dependency does not answer.", checks=checks)
    return {"status": "ready", "checks": checks}


async def _append(state, command: SubmitJob) -> None:
    """Append a command and wait for the broker's acknowledgement, or answer 503."""
    try:
        future = await state.producer.send(topics.COMMANDS, key=command.job_id.encode(), value=encode_command(command))
        await asyncio.wait_for(future, state.settings.produce_timeout_s)
    except Exception as error:
        raise Problem(
            503,
            "broker-unavailable",
            "The job log is unavailable",
            f"The command was not acknowledged ({type(error).__name__}); nothing was accepted. Retry later.",
            headers={"Retry-After": "1"},
        ) from None
