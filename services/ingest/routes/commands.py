"""Commands on an existing job: cancel, retry, change and delete.

Each is first run through the pure decider against the job as this ingest
knows it, so an impossible one is answered at once with a 409 problem
document. The decider in the processor has the last word: if the job moved
on meanwhile, it refuses the command there.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from fastapi import APIRouter, Body, Depends, Request

from schemas import (
    CancelJob,
    Command,
    DeleteJob,
    Job,
    Rejection,
    RetryJob,
    UpdateJob,
    decide,
)
from schemas.api import (
    CancelRequest,
    JobAccepted,
    JobLinks,
    UpdateJobRequest,
)
from services.ingest.auth import writer
from services.ingest.bodies import ContractRoute
from services.ingest.bootstrap import Ingest, IngestDep
from services.ingest.problems import PROBLEM_RESPONSE, PROBLEMS, Problem
from services.ingest.store import append_command, job_or_404

router = APIRouter(route_class=ContractRoute, tags=["jobs"])


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=202,
    response_model=JobAccepted,
    responses={**PROBLEMS, 404: PROBLEM_RESPONSE, 409: PROBLEM_RESPONSE, 503: PROBLEM_RESPONSE},
    summary="Cancel a job",
    description="A PENDING or QUEUED job is cancelled at once. A RUNNING one is told through "
    "`ctx.cancelled` and is cancelled after `grace_s` even if its handler ignores it. "
    "A job that already ended → 409.",
)
async def cancel_job(
    job_id: str, request: Request, state: IngestDep, body: CancelRequest | None = Body(None), tenant: str = Depends(writer)
) -> JobAccepted:
    body = body or CancelRequest()
    return await _command(
        state, request, job_id, tenant, lambda **common: CancelJob(**common, reason=body.reason, grace_s=body.grace_s)
    )


@router.post(
    "/jobs/{job_id}/retry",
    status_code=202,
    response_model=JobAccepted,
    responses={**PROBLEMS, 404: PROBLEM_RESPONSE, 409: PROBLEM_RESPONSE, 503: PROBLEM_RESPONSE},
    summary="Run a FAILED or CANCELLED job again",
    description="Queues a new attempt with a fresh attempt budget. Any other state → 409.",
)
async def retry_job(job_id: str, request: Request, state: IngestDep, tenant: str = Depends(writer)) -> JobAccepted:
    return await _command(state, request, job_id, tenant, lambda **common: RetryJob(**common))


@router.patch(
    "/jobs/{job_id}",
    status_code=202,
    response_model=JobAccepted,
    responses={**PROBLEMS, 404: PROBLEM_RESPONSE, 409: PROBLEM_RESPONSE, 503: PROBLEM_RESPONSE},
    summary="Change a job that has not started",
    description="`priority` of a PENDING or QUEUED job (a queued one is taken by its new rank); `run_at` of a "
    "PENDING job waiting for its time (a past time queues it now). Recorded as `jobledger.job.updated`. A job "
    "that has started or ended → 409, as does run_at for a job already queued.",
)
async def update_job(
    job_id: str, request: Request, state: IngestDep, body: UpdateJobRequest, tenant: str = Depends(writer)
) -> JobAccepted:
    return await _command(
        state, request, job_id, tenant, lambda **common: UpdateJob(**common, priority=body.priority, run_at=body.run_at)
    )


@router.delete(
    "/jobs/{job_id}",
    status_code=202,
    response_model=JobAccepted,
    responses={**PROBLEMS, 404: PROBLEM_RESPONSE, 409: PROBLEM_RESPONSE, 503: PROBLEM_RESPONSE},
    summary="Delete a job that ended",
    description="The read models forget it (its reads answer 404, lists leave it out, its events and log lines "
    "go); the log keeps its whole history, a `jobledger.job.deleted` event last, so `jobledger audit verify` still "
    "passes and a replay deletes it again. A job that has not ended → 409.",
)
async def delete_job(job_id: str, request: Request, state: IngestDep, tenant: str = Depends(writer)) -> JobAccepted:
    return await _command(state, request, job_id, tenant, lambda **common: DeleteJob(**common))


async def _command(state: Ingest, request: Request, job_id: str, tenant: str, build) -> JobAccepted:
    job = await job_or_404(state, job_id, tenant)
    command: Command = build(
        command_id=str(uuid.uuid4()),
        job_id=job_id,
        tenant=tenant,
        issued_at=datetime.now(timezone.utc),
        correlation_id=request.headers.get("x-correlation-id"),
    )
    refused = refusal(command, job)
    if refused is not None:
        # The log's tail of this ingest may lag the read model, which a client
        # may have read meanwhile (a job stream begins there): before refusing,
        # decide again on the read model's version if it is newer.
        stored = await job_or_404(state, job_id, tenant, tail_first=False)
        if stored.version > job.version:
            job, refused = stored, refusal(command, stored)
    if refused is not None:
        raise Problem(409, refused.code, "The job cannot do that now", refused.detail, job_id=job_id, state=job.status.value)
    await append_command(state, command)
    return JobAccepted(id=job_id, state=job.status, links=JobLinks.of(job_id))


def refusal(command: Command, job: Job) -> Rejection | None:
    """Why the decider would refuse ``command`` on ``job``; ``None`` if it would not."""
    try:
        decide(command, job)
    except Rejection as rejection:
        return rejection
    return None
