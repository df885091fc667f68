"""Submitting jobs: one (``POST /jobs``, idempotent with a key) or a batch."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Header, Request, Response

from schemas import (
    CONCURRENCY_LIMIT_REACHED,
    Job,
    JobStatus,
    SubmitJob,
    topics,
)
from schemas.api import (
    BatchAccepted,
    BatchRequest,
    JobAccepted,
    JobLinks,
    SubmitJobRequest,
    job_links,
    job_path,
)
from schemas.errors import ProblemCode
from schemas.options import OnConflict
from services.common.ids import random_id
from services.ingest.auth import writer
from services.ingest.bodies import ContractRoute
from services.ingest.bootstrap import Ingest, IngestDep
from services.ingest.problems import PROBLEM_RESPONSE, PROBLEMS, Problem, field_error
from services.ingest.responses import JSON, answer
from services.ingest.store import append_record, find_job, job_or_404
from services.ingest.submissions import ServiceCalls, Submission, idempotent_job_id, parse_request, submission

router = APIRouter(route_class=ContractRoute, tags=["jobs"])


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobAccepted,
    responses={
        200: {"model": JobAccepted, "description": "the job an earlier request with this Idempotency-Key created"},
        **PROBLEMS,
        409: PROBLEM_RESPONSE,
        503: PROBLEM_RESPONSE,
    },
    summary="Submit a job",
    description="Answers 202 once the broker has acknowledged the SubmitJob command (acks=all): "
    "an accepted job is never lost. With an `Idempotency-Key` header, repeating the request returns the "
    "original job (200) — even after a restart — and reusing the key for a different request is a 422.",
)
async def submit_job(
    body: SubmitJobRequest,
    request: Request,
    state: IngestDep,
    tenant: str = Depends(writer),
    idempotency_key: str | None = Header(None, max_length=255, description="a key you choose; one job per key and tenant"),
) -> Response:
    job_id = idempotent_job_id(tenant, idempotency_key) if idempotency_key is not None else random_id()
    submitted = prepare_submission(state, body, tenant, job_id, request.headers.get("x-correlation-id"), idempotency_key)
    command = submitted.command
    if idempotency_key is None:
        return await accept_submission(state, submitted)
    async with state.idempotency_locks.setdefault(job_id, asyncio.Lock()):
        try:
            existing = await find_job(state, job_id, tenant)
            if existing is None:
                return await accept_submission(state, submitted)
            if existing.request_hash != command.request_hash:
                raise Problem(
                    422,
                    ProblemCode.IDEMPOTENCY_KEY_REUSED,
                    "Idempotency-Key reused for a different request",
                    f"The key {idempotency_key!r} was used for job {job_id} with another body.",
                    errors=[field_error(("header", "Idempotency-Key"), "already used for a different request")],
                    job_id=job_id,
                )
            accepted = JobAccepted(id=job_id, state=existing.status, links=JobLinks.of(job_id))
            return answer(accepted, 200, {"Location": job_path(job_id)})
        finally:
            state.idempotency_locks.pop(job_id, None)


def prepare_submission(
    state: Ingest,
    body: SubmitJobRequest,
    tenant: str,
    job_id: str,
    correlation_id: str | None,
    idempotency_key: str | None = None,
) -> Submission:
    return submission(
        state.job_types,
        body,
        calls=ServiceCalls(tenant, state.services.get),
        tenant=tenant,
        job_id=job_id,
        issued_at=datetime.now(timezone.utc),
        idempotency_key=idempotency_key,
        correlation_id=correlation_id,
    )


async def accept_submission(state: Ingest, submitted: Submission) -> Response:
    """Append a prepared submit and answer 202 once acknowledged (a 409 problem
    if it asked to be refused rather than wait, and was)."""
    command = submitted.command
    await append_record(state, topics.COMMANDS, command.job_id, submitted.value)
    state.accepted.remember(command)
    job_state = JobStatus.PENDING
    if command.options.on_conflict == OnConflict.REJECT:
        job = await _slot_decision(state, command)
        if job.status is JobStatus.REJECTED:
            raise _rejected(job, command)
        job_state = job.status
    accepted = JobAccepted(id=command.job_id, state=job_state, links=JobLinks.of(command.job_id))
    return answer(accepted, 202, {"Location": job_path(command.job_id)})


async def _slot_decision(state: Ingest, command: SubmitJob) -> Job:
    """``on_conflict: reject`` is decided by the slot decider, in log order, so
    no race passes the limit. Wait (up to ``produce_timeout_s``) to hear its
    answer; a job still PENDING after that shows a refusal later, as REJECTED."""
    job_id, tenant = command.job_id, command.tenant

    def decided(job: Job) -> bool:  # queued or rejected; or waiting for its run_at, to be decided then
        return job.status is not JobStatus.PENDING or (job.due_at is not None and not job.awaiting_slot)

    return await state.watch.until(
        job_id, lambda tail_first: job_or_404(state, job_id, tenant, tail_first), decided, state.settings.produce_timeout_s
    )


def _rejected(job: Job, command: SubmitJob) -> Problem:
    job_id = job.job_id
    return Problem(
        409,
        CONCURRENCY_LIMIT_REACHED,
        "The concurrency key is busy",
        f"Job {job_id} was rejected: {job.error}.",
        job_id=job_id,
        concurrency_key=command.options.concurrency_key,
        headers={"Location": job_path(job_id)},
    )


@router.post(
    "/jobs:batch",
    response_model=BatchAccepted,
    responses={**PROBLEMS, 503: PROBLEM_RESPONSE},
    summary="Submit up to 1,000 jobs in one request",
    description="Each item is validated on its own and answered in `items` at its index: `status` 202 with "
    "the job's `id`, or 422 (or 409, 503) with a problem document naming the bad field. Valid items are "
    "appended as one produce batch and answered only once the broker acknowledged them (acks=all). "
    "An invalid item never stops the others. Items take no Idempotency-Key; use POST /jobs for that.",
)
async def submit_batch(request: Request, state: IngestDep, body: BatchRequest, tenant: str = Depends(writer)) -> Response:
    results: list[dict[str, Any] | None] = [None] * len(body.jobs)
    commands: list[tuple[int, Submission]] = []
    correlation_id = request.headers.get("x-correlation-id")
    for index, raw in enumerate(body.jobs):
        try:
            item = parse_request(raw, values_checked=True)  # the whole body was, by ContractRoute
            commands.append((index, prepare_submission(state, item, tenant, random_id(), correlation_id)))
        except Problem as problem:
            results[index] = _item(index, problem.status, problem=problem.body(f"/jobs:batch#{index}"))
    unavailable = Problem(503, ProblemCode.BROKER_UNAVAILABLE, "The job log is unavailable", "Not acknowledged; not accepted.")
    # One produce call and one deadline for the whole batch: what the broker has not
    # acknowledged when the deadline passes (or refused) is answered 503.
    sent: list[tuple[int, SubmitJob]] = []
    if not commands:
        return _batch_answer(results)
    deliveries = await state.producer.send_many(
        topics.COMMANDS, [(submitted.command.job_id.encode(), submitted.value) for _, submitted in commands]
    )
    await asyncio.wait([deliveries.done], timeout=state.settings.produce_timeout_s)
    for position, (index, submitted) in enumerate(commands):
        command = submitted.command
        if not deliveries.acknowledged(position):
            results[index] = _item(index, 503, problem=unavailable.body(f"/jobs:batch#{index}"))
            continue
        sent.append((index, command))
        state.accepted.remember(command)
        results[index] = _item(index, 202, command.job_id, JobStatus.PENDING)
    rejectable = [(index, command) for index, command in sent if command.options.on_conflict == OnConflict.REJECT]
    decided = await asyncio.gather(*(_slot_decision(state, command) for _, command in rejectable))
    for (index, command), job in zip(rejectable, decided, strict=True):
        if job.status is JobStatus.REJECTED:
            refusal = _rejected(job, command).body(f"/jobs:batch#{index}")
            results[index] = _item(index, 409, command.job_id, problem=refusal)
        else:
            results[index] = _item(index, 202, command.job_id, job.status)
    return _batch_answer(results)


def _item(
    index: int, status: int, job_id: str | None = None, state: JobStatus | None = None, problem: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A :class:`BatchItem` as its JSON: the route made every value, so nothing is
    validated again (a model per item and its links were a sixth of a batch's CPU)."""
    links = job_links(job_id) if status == 202 and job_id is not None else None
    return {"index": index, "status": status, "id": job_id, "state": state and state.value, "links": links, "problem": problem}


def _batch_answer(results: list[dict[str, Any] | None]) -> Response:
    """The :class:`BatchAccepted` answer, written as JSON at once."""
    items = [item for item in results if item is not None]  # (each index is answered by now)
    accepted = sum(1 for item in items if item["status"] == 202)
    return Response(orjson.dumps({"accepted": accepted, "rejected": len(items) - accepted, "items": items}), media_type=JSON)
