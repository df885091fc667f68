"""HTTP routes: thin. They validate, append a command, or read a read model.

Commands on an existing job (cancel, retry) are first run through the pure
decider against the job as the read model has it, so an impossible one is
answered at once with a 409 problem document. The decider in the processor
has the last word: if the read model lagged, it refuses the command there.
"""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from datetime import datetime, timezone

import orjson
from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from pydantic import TypeAdapter
from pymongo import DESCENDING
from sse_starlette import EventSourceResponse

from schemas import (
    CONCURRENCY_LIMIT_REACHED,
    TERMINAL,
    AnyEvent,
    CancelJob,
    Command,
    Job,
    JobStatus,
    Priority,
    Rejection,
    RetryJob,
    SubmitJob,
    decide,
    encode_command,
    evolve,
    fold,
    parse_event,
    topics,
)
from schemas.values import INT64_MAX, Moment, label_key_problem
from services.common.readmodel import JOB_EVENTS, JOBS, job_from_document
from services.ingest.auth import tenant_of
from services.ingest.bodies import ContractRoute
from services.ingest.lag import consumer_lag
from services.ingest.models import (
    BatchAccepted,
    BatchItem,
    BatchRequest,
    CancelRequest,
    JobAccepted,
    JobLinks,
    JobList,
    JobView,
    StatusView,
    SubmitJobRequest,
    job_path,
)
from services.ingest.problems import PROBLEM_JSON, Problem, field_error, invalid
from services.ingest.submissions import idempotent_job_id, parse_request, submit_command
from services.ingest.watch import GAP_RECHECK_S, Follower

router = APIRouter(route_class=ContractRoute)

_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "RFC 9457 problem document"}
PROBLEMS = {401: _PROBLEM, 422: _PROBLEM}
MAX_WAIT_S = 60.0


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobAccepted,
    responses={
        200: {"model": JobAccepted, "description": "the job an earlier request with this Idempotency-Key created"},
        **PROBLEMS,
        409: _PROBLEM,
        503: _PROBLEM,
    },
    summary="Submit a job",
    description="Answers 202 once the broker has acknowledged the SubmitJob command (acks=all): "
    "an accepted job is never lost. With an `Idempotency-Key` header, repeating the request returns the "
    "original job (200) — even after a restart — and reusing the key for a different request is a 422.",
)
async def submit_job(
    body: SubmitJobRequest,
    request: Request,
    response: Response,
    tenant: str = Depends(tenant_of),
    idempotency_key: str | None = Header(None, max_length=255, description="a key you choose; one job per key and tenant"),
) -> JobAccepted:
    state = request.app.state
    job_id = idempotent_job_id(tenant, idempotency_key) if idempotency_key is not None else str(uuid.uuid4())
    command = _submit_command(state, body, tenant, job_id, request, idempotency_key)
    if idempotency_key is None:
        return await _submit(state, response, command, body)
    async with state.idempotency_locks.setdefault(job_id, asyncio.Lock()):
        try:
            existing = await _find_job(state, job_id, tenant)
            if existing is None:
                return await _submit(state, response, command, body)
            if existing.request_hash != command.request_hash:
                raise Problem(
                    422,
                    "idempotency-key-reused",
                    "Idempotency-Key reused for a different request",
                    f"The key {idempotency_key!r} was used for job {job_id} with another body.",
                    errors=[field_error(("header", "Idempotency-Key"), "already used for a different request")],
                    job_id=job_id,
                )
            response.status_code = 200
            response.headers["Location"] = job_path(job_id)
            return JobAccepted(id=job_id, state=existing.status, links=JobLinks.of(job_id))
        finally:
            state.idempotency_locks.pop(job_id, None)


def _submit_command(state, body: SubmitJobRequest, tenant: str, job_id: str, request: Request, idempotency_key=None) -> SubmitJob:
    return submit_command(
        state.job_types,
        body,
        tenant=tenant,
        job_id=job_id,
        issued_at=datetime.now(timezone.utc),
        idempotency_key=idempotency_key,
        correlation_id=request.headers.get("x-correlation-id"),
    )


async def _submit(state, response: Response, command: SubmitJob, body: SubmitJobRequest) -> JobAccepted:
    await _append(state, command)
    state.accepted.remember(command)
    job_state = JobStatus.PENDING
    if command.options.on_conflict == "reject":
        job = await _slot_decision(state, command)
        if job.status is JobStatus.REJECTED:
            raise _rejected(job, command)
        job_state = job.status
    response.headers["Location"] = job_path(command.job_id)
    return JobAccepted(id=command.job_id, state=job_state, links=JobLinks.of(command.job_id))


async def _slot_decision(state, command: SubmitJob) -> Job:
    """``on_conflict: reject`` is decided by the slot decider, in log order, so
    no race passes the limit. Wait (up to ``produce_timeout_s``) to hear its
    answer; a job still PENDING after that shows a refusal later, as REJECTED."""
    job_id, tenant = command.job_id, command.tenant

    def decided(job: Job) -> bool:  # queued or rejected; or waiting for its run_at, to be decided then
        return job.status is not JobStatus.PENDING or (job.due_at is not None and not job.awaiting_slot)

    return await state.watch.until(job_id, lambda: _job_or_404(state, job_id, tenant), decided, state.settings.produce_timeout_s)


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
    responses={**PROBLEMS, 503: _PROBLEM},
    summary="Submit up to 1,000 jobs in one request",
    description="Each item is validated on its own and answered in `items` at its index: `status` 202 with "
    "the job's `id`, or 422 (or 409, 503) with a problem document naming the bad field. Valid items are "
    "appended as one produce batch and answered only once the broker acknowledged them (acks=all). "
    "An invalid item never stops the others. Items take no Idempotency-Key; use POST /jobs for that.",
)
async def submit_batch(
    request: Request, body: BatchRequest, tenant: str = Depends(tenant_of)
) -> BatchAccepted:
    state = request.app.state
    results: list[BatchItem | None] = [None] * len(body.jobs)
    commands: list[tuple[int, SubmitJob]] = []
    for index, raw in enumerate(body.jobs):
        try:
            item = parse_request(raw)
            command = _submit_command(state, item, tenant, str(uuid.uuid4()), request)
            commands.append((index, command))
        except Problem as problem:
            results[index] = BatchItem(index=index, status=problem.status, problem=problem.body(f"/jobs:batch#{index}"))
    unavailable = Problem(503, "broker-unavailable", "The job log is unavailable", "Not acknowledged; not accepted.")
    sent = []
    for index, command in commands:
        try:
            delivery = await state.producer.send(topics.COMMANDS, key=command.job_id.encode(), value=encode_command(command))
        except Exception:  # the producer's buffer refused it
            results[index] = BatchItem(index=index, status=503, problem=unavailable.body(f"/jobs:batch#{index}"))
            continue
        sent.append((index, command, asyncio.wait_for(delivery, state.settings.produce_timeout_s)))
    acks = await asyncio.gather(*(ack for _, _, ack in sent), return_exceptions=True)
    for (index, command, _), ack in zip(sent, acks):
        if isinstance(ack, BaseException):
            results[index] = BatchItem(index=index, status=503, problem=unavailable.body(f"/jobs:batch#{index}"))
            continue
        state.accepted.remember(command)
        results[index] = BatchItem(
            index=index, status=202, id=command.job_id, state=JobStatus.PENDING, links=JobLinks.of(command.job_id)
        )
    rejectable = [(index, command) for index, command, _ in sent if results[index].status == 202 and command.options.on_conflict == "reject"]
    decided = await asyncio.gather(*(_slot_decision(state, command) for _, command in rejectable))
    for (index, command), job in zip(rejectable, decided):
        if job.status is JobStatus.REJECTED:
            problem = _rejected(job, command).body(f"/jobs:batch#{index}")
            results[index] = BatchItem(index=index, status=409, id=command.job_id, problem=problem)
        else:
            results[index] = results[index].model_copy(update={"state": job.status})
    accepted = sum(1 for item in results if item.status == 202)
    return BatchAccepted(accepted=accepted, rejected=len(results) - accepted, items=results)


@router.get(
    "/jobs/{job_id}",
    response_model=JobView,
    responses={**PROBLEMS, 404: _PROBLEM},
    summary="Get a job (optionally as it was at a past moment)",
)
async def get_job(
    job_id: str,
    request: Request,
    tenant: str = Depends(tenant_of),
    as_of: Moment | None = Query(None, description="the job as it was at this time: its events up to then, folded"),
    wait_s: float | None = Query(
        None,
        ge=0,
        le=MAX_WAIT_S,
        description="hold the answer up to this many seconds until the job has ended (or, with after_version, "
        "until its version is past that), then answer the job as it is; a long poll that hears of changes at once",
    ),
    after_version: int | None = Query(None, ge=0, le=INT64_MAX, description="with wait_s: wait for a version past this one"),
) -> JobView:
    state = request.app.state
    if as_of is None:
        job = await _job_or_404(state, job_id, tenant)
        if wait_s:
            done = (lambda j: j.version > after_version) if after_version is not None else (lambda j: j.status.terminal)
            job = await state.watch.until(job_id, lambda: _job_or_404(state, job_id, tenant), done, wait_s)
        return JobView.of(job)
    if wait_s is not None or after_version is not None:
        raise invalid([field_error(("query", "wait_s"), "as_of reads the past: it cannot be combined with wait_s or after_version")])
    await _job_or_404(state, job_id, tenant)
    query = {"job_id": job_id, "tenant": tenant, "occurred_at": {"$lte": as_of}}
    job = fold([parse_event(document["event"]) async for document in _sorted_events(state, query)])
    if job is None:
        raise Problem(404, "job-not-found", "No such job then", f"Job {job_id!r} did not exist at {as_of.isoformat()}.")
    return JobView.of(job)


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=202,
    response_model=JobAccepted,
    responses={**PROBLEMS, 404: _PROBLEM, 409: _PROBLEM, 503: _PROBLEM},
    summary="Cancel a job",
    description="A PENDING or QUEUED job is cancelled at once. A RUNNING one is told through "
    "`ctx.cancelled` and is cancelled after `grace_s` even if its handler ignores it. "
    "A job that already ended → 409.",
)
async def cancel_job(
    job_id: str, request: Request, body: CancelRequest | None = Body(None), tenant: str = Depends(tenant_of)
) -> JobAccepted:
    body = body or CancelRequest()
    return await _command(
        request, job_id, tenant, lambda **common: CancelJob(**common, reason=body.reason, grace_s=body.grace_s)
    )


@router.post(
    "/jobs/{job_id}/retry",
    status_code=202,
    response_model=JobAccepted,
    responses={**PROBLEMS, 404: _PROBLEM, 409: _PROBLEM, 503: _PROBLEM},
    summary="Run a FAILED or CANCELLED job again",
    description="Queues a new attempt with a fresh attempt budget. Any other state → 409.",
)
async def retry_job(job_id: str, request: Request, tenant: str = Depends(tenant_of)) -> JobAccepted:
    return await _command(request, job_id, tenant, lambda **common: RetryJob(**common))


@router.get(
    "/jobs/{job_id}/events",
    responses={**PROBLEMS, 404: _PROBLEM},
    summary="A job's history: its events in seq order, as CloudEvents",
)
async def job_events(
    job_id: str,
    request: Request,
    tenant: str = Depends(tenant_of),
    until: str | None = Query(None, description="only events up to this seq (an integer) or time (ISO 8601, with a zone)"),
) -> dict:
    state = request.app.state
    await _job_or_404(state, job_id, tenant)
    query: dict = {"job_id": job_id, "tenant": tenant}
    if until is not None:
        query.update(_until(until))
    return {"items": [document["event"] async for document in _sorted_events(state, query)]}


def _sorted_events(state, query: dict):
    return state.db[JOB_EVENTS].find(query).sort("seq", 1)


@router.get(
    "/jobs/{job_id}/stream",
    responses={**PROBLEMS, 404: _PROBLEM, 200: {"content": {"text/event-stream": {}}}},
    summary="Server-sent events: each change of the job until it ends",
    description="One SSE message per job event (`event:` its type, `id:` its seq, `data:` the job's state, "
    "progress and the event). Closes after the job reaches SUCCEEDED, FAILED or CANCELLED. Send "
    "`Last-Event-ID` to resume after a seq.",
)
async def job_stream(
    job_id: str,
    request: Request,
    tenant: str = Depends(tenant_of),
    last_event_id: int = Header(0, ge=0, le=INT64_MAX, description="resume after this seq"),
):
    state = request.app.state
    await _job_or_404(state, job_id, tenant)

    async def messages():
        async with state.watch.follow(job_id) as follower:
            async for message in _stream_messages(state, job_id, tenant, last_event_id, follower):
                yield message

    return EventSourceResponse(messages(), ping=15)


async def _stream_messages(state, job_id: str, tenant: str, last_event_id: int, follower: Follower):
    """One message per event of the job, in seq order: first those the read model
    holds, then those the log's tail brings (the read model again after a gap)."""
    job: Job | None = None
    ahead: dict[int, AnyEvent] = {}
    look_in_store = True

    def version() -> int:
        return job.version if job is not None else 0

    while True:
        if look_in_store:
            query = {"job_id": job_id, "tenant": tenant, "seq": {"$gt": version()}}
            async for document in state.db[JOB_EVENTS].find(query).sort("seq", 1):
                event = parse_event(document["event"])
                if event.seq != version() + 1:
                    break  # a gap: the projector has not written the missing one yet
                job = evolve(job, event)
                if event.seq > last_event_id:
                    yield _message(job, event)
        for event in follower.take():
            if event.seq > version():
                ahead[event.seq] = event
        while version() + 1 in ahead:
            event = ahead.pop(version() + 1)
            job = evolve(job, event)
            if event.seq > last_event_id:
                yield _message(job, event)
        for seq in [seq for seq in ahead if seq <= version()]:
            del ahead[seq]
        if job is not None and job.status in TERMINAL:
            return
        if ahead:
            await asyncio.sleep(GAP_RECHECK_S)
            look_in_store = True
        else:
            look_in_store = not await follower.arrival(state.watch.poll_s)


def _message(job: Job, event: AnyEvent) -> dict:
    return {
        "id": str(event.seq),
        "event": event.type,
        "data": orjson.dumps(
            {"state": job.status, "progress": job.progress, "progress_message": job.progress_message, "event": event.recorded()}
        ).decode(),
    }


@router.get("/jobs", response_model=JobList, responses=PROBLEMS, summary="List jobs, newest first")
async def list_jobs(
    request: Request,
    tenant: str = Depends(tenant_of),
    limit: int = Query(50, ge=1, le=1000, description="how many jobs to return"),
    state: JobStatus | None = Query(None, description="only jobs in this state"),
    type: str | None = Query(None, description="only jobs of this type"),
    priority: Priority | None = Query(None, description="only jobs of this priority"),
    label: list[str] = Query([], description="only jobs with this label, as key:value (repeat to require several)"),
    created_after: Moment | None = Query(None, description="only jobs created at or after this time (with a zone)"),
    created_before: Moment | None = Query(None, description="only jobs created before this time (with a zone)"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
) -> JobList:
    query: dict = {"tenant": tenant}
    if state is not None:
        query["status"] = state.value
    if type is not None:
        query["job_type"] = type
    if priority is not None:
        query["options.priority"] = priority.value
    for index, item in enumerate(label):
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise invalid([field_error(("query", "label", index), "a label filter is key:value")])
        problem = label_key_problem(key)
        if problem is not None:
            raise invalid([field_error(("query", "label", index), problem)])
        query[f"options.labels.{key}"] = value
    created: dict = {}
    if created_after is not None:
        created["$gte"] = created_after
    if created_before is not None:
        created["$lt"] = created_before
    if created:
        query["created_at"] = created
    if cursor is not None:
        at, last_id = _decode_cursor(cursor)
        query = {"$and": [query, {"$or": [{"created_at": {"$lt": at}}, {"created_at": at, "_id": {"$lt": last_id}}]}]}
    found = request.app.state.db[JOBS].find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1)
    jobs = [job_from_document(document) async for document in found]
    next_cursor = _encode_cursor(jobs[limit - 1]) if len(jobs) > limit else None
    return JobList(items=[JobView.of(job) for job in jobs[:limit]], next_cursor=next_cursor)


@router.get("/status", response_model=StatusView, responses=PROBLEMS, summary="Jobs per state and consumer lag")
async def status(request: Request, tenant: str = Depends(tenant_of)) -> StatusView:
    state = request.app.state
    counts = {status.value: 0 for status in JobStatus}
    pipeline = [{"$match": {"tenant": tenant}}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
    async for row in await state.db[JOBS].aggregate(pipeline):
        counts[row["_id"]] = row["n"]
    lag = await consumer_lag(state.settings)
    return StatusView(jobs=counts, lag=lag)


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


# --- helpers ---------------------------------------------------------------------


async def _find_job(state, job_id: str, tenant: str) -> Job | None:
    """The job as the read model has it, or as accepted here, with what the
    log's tail has heard since (read-your-writes within this ingest)."""
    document = await state.db[JOBS].find_one({"_id": job_id, "tenant": tenant})
    job = job_from_document(document) if document is not None else state.accepted.get(job_id, tenant)
    caught_up = state.watch.catch_up(job_id, job)
    return caught_up if caught_up is not None and caught_up.tenant == tenant else job


async def _job_or_404(state, job_id: str, tenant: str) -> Job:
    job = await _find_job(state, job_id, tenant)
    if job is None:
        raise Problem(404, "job-not-found", "No such job", f"There is no job {job_id!r}.", job_id=job_id)
    return job


async def _command(request: Request, job_id: str, tenant: str, build) -> JobAccepted:
    state = request.app.state
    job = await _job_or_404(state, job_id, tenant)
    command: Command = build(
        command_id=str(uuid.uuid4()),
        job_id=job_id,
        tenant=tenant,
        issued_at=datetime.now(timezone.utc),
        correlation_id=request.headers.get("x-correlation-id"),
    )
    try:
        decide(command, job)
    except Rejection as rejection:
        raise Problem(
            409, rejection.code, "The job cannot do that now", rejection.detail, job_id=job_id, state=job.status.value
        ) from None
    await _append(state, command)
    return JobAccepted(id=job_id, state=job.status, links=JobLinks.of(job_id))


async def _append(state, command: Command) -> None:
    await append_record(state, topics.COMMANDS, command.job_id, encode_command(command))


async def append_record(state, topic: str, key: str, value: bytes) -> None:
    """Append a command and wait for the broker's acknowledgement, or answer 503."""
    try:
        future = await state.producer.send(topic, key=key.encode(), value=value)
        await asyncio.wait_for(future, state.settings.produce_timeout_s)
    except Exception as error:
        raise Problem(
            503,
            "broker-unavailable",
            "The job log is unavailable",
            f"The command was not acknowledged ({type(error).__name__}); nothing was accepted. Retry later.",
            headers={"Retry-After": "1"},
        ) from None


_SEQ = re.compile(r"[0-9]{1,19}")
_MOMENT: TypeAdapter[datetime] = TypeAdapter(Moment)


def _until(until: str) -> dict:
    """``?until=``: a seq (a non-negative 64-bit integer) or a time with a zone."""
    if _SEQ.fullmatch(until) and int(until) <= INT64_MAX:
        return {"seq": {"$lte": int(until)}}
    try:  # ISO 8601 only: pydantic would also read "-1" as a Unix time
        return {"occurred_at": {"$lte": _MOMENT.validate_python(datetime.fromisoformat(until))}}
    except ValueError:  # ValidationError is one
        message = "a seq (an integer from 0 to 2**63-1) or an ISO 8601 time with a zone, e.g. 2026-01-01T00:00:00Z"
        raise invalid([field_error(("query", "until"), message)]) from None


def _encode_cursor(job: Job) -> str:
    raw = orjson.dumps([job.created_at.isoformat(), job.job_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, job_id = orjson.loads(raw)
        return _MOMENT.validate_python(at), str(job_id)
    except (ValueError, TypeError):
        raise invalid([field_error(("query", "cursor"), "not a cursor from a previous page")]) from None
